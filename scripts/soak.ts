// The soak (as root; docs/soak.md): `npm run soak -- --minutes N --seed S [--spec FILE] [--name LAB] [--out FILE]`.
// --etcd (or --control-plane etcd): the same spec on the etcd control plane (3 members and a controller in the
// lab; the schedule adds controller-kill); --control-plane embedded forces the other way.
// --grace SEC (default 60): how long after the last moment a fault may start the soak still waits for green;
// --wall SEC: the whole run's budget, lab up and down included (the faults stop early enough to keep it).
// Prints the seed first (a failing run is replayed with the same seed), a line per fault, and as its last line
// one JSON object: faults, byKind (time to green: median, max), wrongOver60s, leaks, rssDriftPct, … (the steps
// only go to --out). Exits 1 when a pair was wrong longer than 60 s, something was left after `lab down`, an
// isolated pair was reached, the matrix was not green at the end, or the agents' RSS drifted more than 10 %.
// SIGINT / SIGTERM end the schedule early; the lab is taken down either way.
import { randomBytes, randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runSoak } from '../labs/soak.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    seed: { type: 'string' },
    spec: { type: 'string', default: fileURLToPath(new URL('../labs/examples/soak.yaml', import.meta.url)) },
    name: { type: 'string' },
    out: { type: 'string' },
    grace: { type: 'string', default: '60' },
    wall: { type: 'string' },
    'max-rss-drift': { type: 'string', default: '10' },
    etcd: { type: 'boolean', default: false },
    'control-plane': { type: 'string' },
  },
});
const minutes = Number(values.minutes);
const graceSec = Number(values.grace);
const wallSec = values.wall === undefined ? undefined : Number(values.wall);
const seed = values.seed === undefined ? randomInt(1, 2 ** 31) : Number(values.seed);
if (!(minutes > 0 && minutes <= 24 * 60) || !Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32 || !(graceSec >= 0 && graceSec <= 600) || (wallSec !== undefined && !(wallSec >= 60))) {
  console.error('usage: npm run soak -- [--minutes N (default 30)] [--seed S (0 ≤ S < 2^32)] [--spec FILE] [--name LAB] [--out FILE] [--grace SEC (default 60)] [--wall SEC] [--max-rss-drift PCT (default 10)] [--etcd | --control-plane embedded|etcd]');
  process.exit(2);
}
const cpFlag = values['control-plane'];
const controlPlane = values.etcd ? 'etcd' : cpFlag === 'etcd' || cpFlag === 'embedded' ? cpFlag : undefined;
if ((cpFlag !== undefined && controlPlane !== cpFlag) || (values.etcd && cpFlag === 'embedded')) {
  console.error('soak: --control-plane is embedded or etcd (--etcd is --control-plane etcd)');
  process.exit(2);
}
const name = values.name ?? `soak-${randomBytes(3).toString('hex')}`;
console.log(`soak: seed ${seed} (replay: npm run soak -- --minutes ${minutes} --seed ${seed}${controlPlane ? ` --control-plane ${controlPlane}` : ''})`);
console.log(`soak: lab ${name}, ${values.spec}${controlPlane ? ` (control plane: ${controlPlane})` : ''}, ${minutes} min; lab root ${process.env.ZMESH_LAB_DIR ?? '/var/lib/zmesh-labs'}`);

const stop = new AbortController();
let signals = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (++signals > 1) {
      console.error(`soak: ${sig} again: exiting now; take the lab down with: zmesh lab down ${name}`);
      process.exit(130);
    }
    console.error(`soak: ${sig}: ending the schedule, taking the lab down`);
    stop.abort();
  });
}

const report = await runSoak({ specFile: values.spec, name, minutes, seed, graceSec, wallSec, ...(controlPlane ? { controlPlane } : {}), log: (l) => console.log(l), signal: stop.signal });
if (values.out) writeFileSync(values.out, JSON.stringify(report, null, 2) + '\n');
const { steps: _steps, ...last } = report;
void _steps;
const maxDrift = Number(values['max-rss-drift']);
const failed =
  report.wrongOver60s > 0 ||
  report.leaks > 0 ||
  report.breaches > 0 ||
  !report.greenAtEnd ||
  report.faults === 0 ||
  (report.rssDriftPct !== null && report.rssDriftPct > maxDrift);
console.log(JSON.stringify(last));
process.exit(failed ? 1 : 0);
