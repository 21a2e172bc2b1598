// One planner benchmark case in a fresh process (so peak RSS is this case's own).
// Usage: plan-case.ts plan N | replan N
import { seededRandom } from '../src/crypto/rng.ts';
import { x25519KeyPair } from '../src/crypto/keys.ts';
import { planBlueprint } from '../src/plan/planner.ts';
import type { Inventory } from '../src/plan/inventory.ts';
import type { Blueprint } from '../src/blueprint/types.ts';

const [mode, nText] = process.argv.slice(2);
const n = Number(nText);

function setup(count: number): { bp: Blueprint; inv: Inventory } {
  const rnd = seededRandom('bench-identities');
  const nodes = Array.from({ length: count }, (_, i) => ({
    id: `node-${String(i).padStart(5, '0')}`,
    publicKey: x25519KeyPair(rnd(32)).publicKey.toString(),
    // 10% hidden (no endpoints)
    endpoints: i % 10 === 9 ? [] : [`198.51.${100 + (i >> 8)}.${i & 255}`],
    reservedPorts: [],
  }));
  const bp: Blueprint = {
    tenant: 'bench',
    name: 'big',
    version: 1,
    // A /12 holds 4,096 /24s: larger cases take a /10 (the smaller ones keep the /12 their earlier figures had).
    networks: [{ name: 'mesh', ipRange: count > 4000 ? '10.0.0.0/10' : '10.0.0.0/12', subnetPrefix: 24, nodes: nodes.map((x) => x.id), access: [], egress: false }],
    workloads: [],
    volumes: [],
  };
  return { bp, inv: { nodes } };
}

const { bp, inv } = setup(n);
let ms: number;
let peers = 0;
if (mode === 'plan') {
  const t0 = performance.now();
  const plan = planBlueprint(bp, inv, { random: seededRandom('bench') });
  ms = performance.now() - t0;
  for (const r of plan.networks[0].resources) peers += r.peers.length;
} else {
  const first = planBlueprint(bp, inv, { random: seededRandom('bench') });
  const extra = setup(n + 1);
  const bp2 = { ...extra.bp, version: 2 };
  const t0 = performance.now();
  const plan = planBlueprint(bp2, extra.inv, { random: seededRandom('bench2'), previous: first });
  ms = performance.now() - t0;
  for (const r of plan.networks[0].resources) peers += r.peers.length;
}
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
process.stdout.write(JSON.stringify({ mode, nodes: n, ms: Math.round(ms * 10) / 10, peakRssMiB: Math.round(peakRssMiB), peerEntries: peers }) + '\n');
