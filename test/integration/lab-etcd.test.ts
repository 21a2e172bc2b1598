// A lab on the etcd control plane (`controlPlane: etcd`): a real 3-member etcd cluster and a controller in the
// lab's internet namespace, 3 public nodes and 1 hidden behind a NAT, one tenant.
//   green; kill one etcd member → a blueprint change still reaches every node, green;
//   kill the controller → the data plane keeps working; a restarted controller resumes (another change applied);
//   kill the hidden node's access node (agent SIGKILL + underlay cut) → the hidden node is re-homed onto another
//   public node and the matrix among the live nodes is green again within 30 s (measured 7–12 s: lease 5 s + grace 1 s +
//   debounce + apply + handshake);
//   bring it back → live and green again, and the hidden node stays where it moved (no flapping).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signBlueprint, type Blueprint, type SignedBlueprint } from '../../src/blueprint/index.ts';
import { Key } from '../../src/crypto/keys.ts';
import { awaitEtcdPlans, controllerAlive, downAndCheck, ensureControlPlane, killMember, labDir, labFault, labMatrix, labStatus, labUp, labWaitGreen, matrixOk, memberAlive, openLab, readEtcd, startController, stopController, submitToEtcd } from '../../labs/index.ts';
import { labExecArgv, waitGreen } from '../../labs/lab.ts';
import { ensureIdentity } from '../../labs/agents.ts';
import { nodePaths } from '../../labs/state.ts';
import { labCredentials, memberUrl } from '../../labs/etcd.ts';
import { INTERNET_GW } from '../../labs/layout.ts';
import { inNs } from '../../labs/sys.ts';
import { namesFor } from '../../netns/names.ts';
import { spawnSync } from 'node:child_process';
import { etcdAvailable } from '../helpers/etcd.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
const name = `et-${randomBytes(3).toString('hex')}`;
const NODES = ['node-a', 'node-b', 'node-c', 'node-h'];

const SPEC = `name: ${name}
controlPlane: etcd
nats:
  - name: home
nodes:
  - name: node-a
  - name: node-b
  - name: node-c
  - name: node-h
    nat: home
tenants:
  - name: blue
    blueprints:
      - name: office
        networks:
          - name: lan
            ipRange: 10.1.0.0/16
            nodes: [${NODES.join(', ')}]
            egress: true
`;

const KEY = 'blue/office';

function tail(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).map((l) => l.slice(0, 400)).join('\n');
  } catch (e) {
    return `(${(e as Error).message})`;
  }
}

test('a lab on etcd: member loss, controller loss, re-homing within 30 s, no flapping', { skip, timeout: 240_000 }, async (t) => {
  const dir = labDir(name);
  const specFile = join(root, 'spec.yaml');
  writeFileSync(specFile, SPEC);
  const left: string[] = [];
  const t0 = Date.now();
  const lap = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);

  /** A new signed version of the blueprint, submitted through the ops API, applied by every live node. */
  const change = async (version: number, networks: Blueprint['networks']) => {
    const signed = JSON.parse(readFileSync(join(dir, 'signed', 'blue--office.json'), 'utf8')) as SignedBlueprint;
    const secret = Key.parse(readFileSync(join(dir, 'tenants', 'blue.key'), 'utf8').trim());
    const next = signBlueprint({ ...signed.blueprint, version, networks }, secret);
    writeFileSync(join(dir, 'signed', 'blue--office.json'), JSON.stringify(next, null, 2) + '\n');
    const { layout, state } = openLab(name);
    const bp = { key: KEY, tenant: 'blue', blueprint: next.blueprint, signed: next, plan: openLab(name).plans[0].plan, changed: true };
    submitToEtcd(layout, dir, { blue: state.tenants.blue.publicKey }, [bp]);
    const [got] = await awaitEtcdPlans(layout, dir, [bp], { timeoutMs: 45000 });
    assert.equal(got.plan.version, version);
    return got.plan;
  };
  const hiddenAccess = () => readEtcd(openLab(name).layout, dir).plans[KEY].networks[0].resources.find((r) => r.node === 'node-h')!.accessNode;

  try {
    const up = await labUp(specFile, { name });
    assert.ok(up.green, 'the etcd lab starts green');
    lap(`lab up green in ${up.secondsToGreen?.toFixed(1)} s`);
    const st = await labStatus(name);
    assert.equal(st.controlPlane?.members.filter((m) => m.pid).length, 3);
    assert.ok(st.controlPlane?.controller);
    const lan = openLab(name).plans[0].plan.networks[0];

    // Deployed like a real control plane (issue #14): from the lab's internet, a client without a certificate gets
    // nothing; node-b's own certificate cannot write node-a's registration or read its part; and the tenant's
    // egress cannot even open a connection to etcd (it is on the node's underlay subnet).
    const { layout } = openLab(name);
    const etcdctl = (cred: { cacert: string; cert?: string; key?: string }, args: string[]) => {
      const tlsArgs = ['--cacert', cred.cacert, ...(cred.cert ? ['--cert', cred.cert, '--key', cred.key!] : [])];
      const argv = inNs(layout.internetNs, ['etcdctl', '--endpoints', memberUrl(1), ...tlsArgs, '--dial-timeout', '2s', '--command-timeout', '3s', ...args]);
      return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10000 });
    };
    const rootCred = labCredentials(dir, 'root');
    assert.notEqual(etcdctl({ cacert: rootCred.cacert }, ['get', '--prefix', '/zmesh/']).status, 0, 'no client certificate: refused');
    const asB = labCredentials(dir, 'zmesh-node-node-b');
    const put = etcdctl(asB, ['put', '/zmesh/v1/nodes/node-a', '{}']);
    assert.notEqual(put.status, 0);
    assert.match(put.stderr, /permission denied/);
    assert.match(etcdctl(asB, ['get', '--prefix', '/zmesh/v1/parts/node-a/']).stderr, /permission denied/);
    const pinned = JSON.parse(etcdctl(rootCred, ['get', '/zmesh/v1/enroll/node-a', '--print-value-only']).stdout) as { format: string; enrollment: { publicKey: string } };
    assert.equal(pinned.format, 'zmesh-enrollment/v1', 'enrollments are signed by the lab operator');
    assert.equal(pinned.enrollment.publicKey, ensureIdentity(nodePaths(dir, 'node-a').identity), "node-a's identity key is pinned");
    const head = JSON.parse(etcdctl(rootCred, ['get', `/zmesh/v1/parts/node-a/${KEY}/gen`, '--print-value-only']).stdout) as { signature?: string };
    assert.ok(head.signature, "node-a's part is signed by the controller");
    const tenantNs = namesFor(lan.id).ns;
    const probe = spawnSync('bash', ['-c', `${labExecArgv(name, 'node-a', ['ip', 'netns', 'exec', tenantNs, 'timeout', '3', 'bash', '-c', `</dev/tcp/${INTERNET_GW}/2379`]).map((a) => `'${a}'`).join(' ')}`], { encoding: 'utf8', timeout: 10000 });
    assert.notEqual(probe.status, 0, `tenant egress reached etcd at ${INTERNET_GW}:2379`);
    lap('trust: no certificate refused, node-b cannot write node-a, tenant egress cannot reach etcd');
    const signed1 = () => JSON.parse(readFileSync(join(dir, 'signed', 'blue--office.json'), 'utf8')) as SignedBlueprint;
    const ops = { ...signed1().blueprint.networks[0], name: 'ops', ipRange: '10.2.0.0/16' };

    // One etcd member dies: a blueprint change (a second network) still reaches every node.
    await killMember(dir, 0);
    assert.equal(memberAlive(dir, 0), false);
    const p2 = await change(2, [...signed1().blueprint.networks, ops]);
    assert.equal(p2.networks.length, 2);
    assert.equal(p2.networks[0].id, lan.id, 'the first network keeps its id');
    const g2 = await labWaitGreen(name, 30000);
    assert.ok(g2.green, `green with a member down: ${JSON.stringify(g2.matrix.filter((p) => !p.ok).slice(0, 3))}`);
    lap('member m0 killed: change to version 2 applied everywhere, green');
    await ensureControlPlane(openLab(name).layout, dir); // m0 back with its data dir
    assert.ok(memberAlive(dir, 0));

    // The controller dies: the data plane keeps working; a restarted controller resumes.
    await stopController(dir, { kill: true });
    assert.equal(controllerAlive(dir), false);
    const m = await labMatrix(name);
    assert.ok(matrixOk(m), 'the data plane works without the controller');
    startController(openLab(name).layout, dir);
    const p3 = await change(3, [signed1().blueprint.networks[0]]);
    assert.equal(p3.networks.length, 1);
    assert.ok(p3.generation > p2.generation, 'generations continue');
    const g3 = await labWaitGreen(name, 30000);
    assert.ok(g3.green, 'green after the restarted controller applied version 3');
    lap('controller killed: data plane green; restarted, version 3 applied, green');

    // The hidden node's access node dies (agent SIGKILL, underlay cut).
    const old = hiddenAccess()!;
    assert.ok(old && old !== 'node-h');
    const tk = Date.now();
    await labFault(name, old, 'kill-agent');
    await labFault(name, old, 'cut');
    let moved: string | null = null;
    for (let i = 0; i < 120 && Date.now() - tk < 30000; i++) {
      moved = hiddenAccess();
      if (moved && moved !== old) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(moved && moved !== old, `node-h re-homed (was ${old}, now ${moved})`);
    const replanMs = Date.now() - tk;
    {
      const { layout, state, plans } = openLab(name);
      const signed = signed1();
      await awaitEtcdPlans(layout, dir, [{ key: KEY, tenant: 'blue', blueprint: signed.blueprint, signed, plan: plans[0].plan, changed: false }], {
        timeoutMs: Math.max(1000, 30000 - (Date.now() - tk)),
        skipNodes: new Set([old]),
      });
      const o = openLab(name);
      const live = o.endpoints.filter((e) => e.host !== old);
      const w = await waitGreen(dir, state, layout, live, Math.max(1000, 30000 - (Date.now() - tk)), () => undefined);
      assert.ok(w.green, `live nodes green: ${JSON.stringify(w.matrix.filter((p) => !p.ok).slice(0, 3))}`);
    }
    const healedMs = Date.now() - tk;
    lap(`access node ${old} died: node-h re-planned onto ${moved} after ${(replanMs / 1000).toFixed(1)} s, live matrix green after ${(healedMs / 1000).toFixed(1)} s`);
    assert.ok(healedMs < 30000, `re-homed and green within 30 s (${healedMs} ms)`);

    // It comes back: live, green, and node-h stays on its new access node.
    const genH = () => readEtcd(openLab(name).layout, dir);
    const tb = Date.now();
    await labFault(name, old, 'restore');
    await labFault(name, old, 'restart-agent');
    let state = '';
    let seen = '';
    for (let i = 0; i < 120 && Date.now() - tb < 30000; i++) {
      const r = genH();
      state = r.members[old];
      if (state === 'live') break;
      seen = JSON.stringify({ registered: r.registered.includes(old), lastRound: r.round && { ...r.round, agoMs: Date.now() - r.round.at } });
      await new Promise((r) => setTimeout(r, 250));
    }
    if (state !== 'live') {
      // In the assertion itself: CI shows the failure summary whole, not always the diagnostics above it. Whether
      // the agent registered again (its side) and whether the controller ran a round since (its side).
      const grepTail = (file: string, re: RegExp, n: number) => tail(file, 400).split('\n').filter((l) => re.test(l)).slice(-n).map((l) => l.slice(0, 300)).join(' | ');
      const pid = openLab(name).state.agents[old]?.pid;
      let alive = false;
      try {
        alive = !!pid && (process.kill(pid, 0), true);
      } catch {
        alive = false;
      }
      seen += ` agent ${pid} alive ${alive}: ${grepTail(nodePaths(dir, old).log, /etcd|regist|lease|listening|"level":(40|50|60)/i, 5)} controller: ${grepTail(join(dir, 'logs', 'controller.log'), /round|error|warn|watch/i, 3)}`;
      // What the controller and the returning agent said: the failure is otherwise gone with the lab.
      for (const [what, file] of [['controller', join(dir, 'logs', 'controller.log')], [old, nodePaths(dir, old).log]] as const) {
        t.diagnostic(`${what} log, last lines:\n${tail(file, 40)}`);
      }
    }
    assert.equal(state, 'live', `${old} live again (${state} ${((Date.now() - tb) / 1000).toFixed(1)} s after the restore; ${seen})`);
    const liveMs = Date.now() - tb;
    {
      const { layout, plans } = openLab(name);
      const signed = signed1();
      await awaitEtcdPlans(layout, dir, [{ key: KEY, tenant: 'blue', blueprint: signed.blueprint, signed, plan: plans[0].plan, changed: false }], { timeoutMs: 30000 });
    }
    const back = await labWaitGreen(name, 45000);
    assert.ok(back.green, `green with ${old} back: ${JSON.stringify(back.matrix.filter((p) => !p.ok).slice(0, 3))}`);
    const greenMs = Date.now() - tb;
    const headH = genH().heads['node-h'][KEY];
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(hiddenAccess(), moved, 'no flapping back');
    }
    assert.equal(genH().heads['node-h'][KEY], headH, "node-h's part was not touched");
    lap(`${old} back: live after ${(liveMs / 1000).toFixed(1)} s, green ${(greenMs / 1000).toFixed(1)} s after the restore, node-h stayed on ${moved}`);
  } finally {
    left.push(...(await downAndCheck(name, dir)));
    rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});

test('controlPlane: embedded by default, etcd in the example, anything else refused', async () => {
  const { loadLabSpec, parseLabSpec } = await import('../../labs/index.ts');
  const ex = loadLabSpec(new URL('../../labs/examples/etcd.yaml', import.meta.url).pathname, (p) => readFileSync(p, 'utf8'));
  assert.equal(ex.controlPlane, 'etcd');
  assert.equal(parseLabSpec('name: x\nnodes: [{name: a}]\n', { baseDir: root, readFile: (p) => readFileSync(p, 'utf8') }).controlPlane, 'embedded');
  assert.throws(() => parseLabSpec('name: x\ncontrolPlane: raft\nnodes: [{name: a}]\n', { baseDir: root, readFile: (p) => readFileSync(p, 'utf8') }), /controlPlane/);
});
