// Tenant network policy (issue 16) in a real lab: three nodes (node-c hidden behind a NAT router), four workloads
// (two of them on node-a's bridge), two access devices, and a default-deny policy with one rule per form:
//   selectors workload: device: node: group: cidr: any — ports tcp/N tcp/N-M udp/N icmp any,
// from workloads, devices and nodes. The matrix (labs/matrix.ts) expects every check reach or denied as the
// policy compiled on the destination's node says (src/plan/policy.ts evaluate); UDP is checked by hand. Then an
// access device widens its wg-quick config (AllowedIPs and addresses) and gains nothing the policy does not give,
// and a rule change is applied while a denied TCP flow retries and an allowed one streams: the stream is not
// reset and keeps going, the denied flow starts working only once a rule allows it (time from submission to the
// rule being in force on the node: a diagnostic, goal ≤ 100 ms).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { downAndCheck, labDir, labUp, openLab, type PairResult } from '../../labs/index.ts';
import { ensureIdentity } from '../../labs/agents.ts';
import { planLab, pushAll } from '../../labs/control.ts';
import { endpointArgv, endpointsOf, ensureDeviceTunnel, ensureEcho, policyPorts, workloadPids, type Endpoint } from '../../labs/endpoints.ts';
import { ECHO_PORT } from '../../labs/layout.ts';
import { checksOf, judge, parseProbe, runMatrix, sourceAddress } from '../../labs/matrix.ts';
import { loadLabSpec } from '../../labs/spec.ts';
import { nodePaths, writeState } from '../../labs/state.ts';
import type { NetworkPolicy } from '../../src/blueprint/types.ts';
import { call } from '../../src/admin/client.ts';
import { nodePart } from '../../src/plan/part.ts';
import { compilePolicy, evaluate, type CompiledPolicy } from '../../src/plan/policy.ts';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- pure parts ------------------------------------------------------------------------------------------

const ep = (id: string, kind: Endpoint['kind'], address: string, extra: Partial<Endpoint> = {}): Endpoint => {
  const [path, host] = id.split('@');
  const net = path.split('/').slice(0, 3).join('/');
  return { id, net, tenant: net.split('/')[0], kind, host, networkId: 'aaaaaaaaaa', address, owns: [address], ...extra };
};

test('pure: the ports a policy names, checks per pair, and judging a denied check', () => {
  const pol = (ports: string[]): NetworkPolicy => ({ default: 'deny', rules: [{ from: ['any'], to: ['any'], ports }] });
  assert.deepEqual(policyPorts(pol(['tcp/5432', 'tcp/6379-6380', 'udp/53', 'icmp', 'any', 'tcp/80'])), [80, 5432, 6379, 6380]);
  // Bounded: both ends of ranges, in rule order, at most 8.
  assert.deepEqual(policyPorts(pol(['tcp/1-2', 'tcp/3-4', 'tcp/5-6', 'tcp/7-8', 'tcp/9-10'])), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(policyPorts(pol(['udp/1-100', 'icmp'])), []);

  // A compiled policy on node "b": web (10.1.0.2) may reach db (10.1.1.2) on tcp/5432; icmp from anywhere.
  const policy: NetworkPolicy = {
    default: 'deny',
    rules: [
      { from: ['workload:web'], to: ['workload:db'], ports: ['tcp/5432'] },
      { from: ['any'], to: ['any'], ports: ['icmp'] },
    ],
  };
  const members = { nodes: { a: ['10.1.0.1/32', '10.1.0.254/32'], b: ['10.1.1.1/32', '10.1.1.254/32'] }, workloads: { web: '10.1.0.2/32', db: '10.1.1.2/32' }, devices: {} };
  const guardB: CompiledPolicy = compilePolicy(policy, '10.1.0.0/16', members, { workloads: {}, devices: {} }, { node: ['10.1.1.1/32', '10.1.1.254/32'], workloads: ['db'], devices: [] });
  const ports = policyPorts(policy);
  const web = ep('t/b/n/web@a', 'workload', '10.1.0.2', { port: 80, workload: 't/b/web' });
  const db = ep('t/b/n/db@b', 'workload', '10.1.1.2', { port: 80, workload: 't/b/db', policy: { node: 'b', guard: guardB, ports } });
  const a = ep('t/b/n@a', 'resource', '10.1.0.1', { owns: ['10.1.0.1', '10.1.0.254'] });
  const other = ep('u/b/n@a', 'resource', '10.1.0.1');
  assert.deepEqual(
    checksOf(web, db).map((c) => [c.proto, c.port, c.expect, c.rule]),
    [
      ['icmp', null, 'reach', 1],
      ['tcp', 80, 'denied', null],
      ['tcp', 5432, 'reach', 0],
    ],
  );
  // A node's source is its WireGuard address towards other nodes' destinations.
  assert.equal(sourceAddress(a, db), '10.1.0.254');
  assert.deepEqual(checksOf(a, db).map((c) => c.expect), ['reach', 'denied', 'denied']);
  // Other networks: one isolated check, as without a policy.
  assert.deepEqual(checksOf(other, db), [{ proto: 'icmp+tcp', port: 80, expect: 'isolated' }]);

  const own = new Set(['10.1.0.2', '10.1.1.2']);
  const [, tcp80, tcp5432] = checksOf(web, db);
  // Denied holds when the probe ran and nothing came back…
  assert.equal(judge(web, db, { ping: true, rttMs: 1, seen: null, tried: true }, own, undefined, tcp80).ok, true);
  // … not when it did not run, when the target answered, or when a reset came back (the SYN got through).
  assert.equal(judge(web, db, undefined, own, 'gone', tcp80).ok, false);
  assert.equal(judge(web, db, { ping: false, rttMs: null, seen: null, tried: false }, own, undefined, tcp80).ok, false);
  assert.equal(judge(web, db, { ping: false, rttMs: null, seen: db.id, tried: true }, own, undefined, tcp80).ok, false);
  assert.equal(judge(web, db, { ping: false, rttMs: null, seen: null, refused: true, tried: true }, own, undefined, tcp80).ok, false);
  // Reach over TCP is the target's identity; the row names proto, port and rule.
  const r = judge(web, db, { ping: true, rttMs: 1, seen: db.id, tried: true }, own, undefined, tcp5432);
  assert.deepEqual([r.expect, r.ok, r.proto, r.port, r.rule, r.rttMs], ['reach', true, 'tcp', 5432, 0, null]);
  const m = parseProbe('P 10.1.1.2 0.5\nT 10.1.1.2:80 refused\nT 10.1.1.2:5432 zmesh-wl t/b/db\r\nT 10.1.1.2:6379 -\n');
  assert.deepEqual(m.get('10.1.1.2:80'), { ping: false, rttMs: null, seen: null, refused: true });
  assert.deepEqual(m.get('10.1.1.2:5432'), { ping: false, rttMs: null, seen: 'wl:t/b/db' });
  assert.deepEqual(m.get('10.1.1.2'), { ping: true, rttMs: 0.5, seen: null });
});

// ---- the lab ---------------------------------------------------------------------------------------------

const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
const name = `pt-${randomBytes(3).toString('hex')}`;

const web = (w: string, node: string, groups?: string[]) => ({
  name: w,
  node,
  image: 'zmesh/base:latest',
  command: ['sh', '-c', `echo zmesh-wl blue/office/${w} > /var/www/index.html && exec httpd -f -p 80 -h /var/www`],
  network: { name: 'lan' },
  memory: '16Mi',
  ...(groups ? { groups } : {}),
});

/** One rule per form. The planner gives node-a 10.1.0.0/24, node-b 10.1.1.0/24, node-c 10.1.2.0/24 (checked). */
const RULES = [
  { from: ['group:web'], to: ['workload:db'], ports: ['tcp/5432'] }, // 0: group → workload, tcp/N
  { from: ['workload:web'], to: ['group:data'], ports: ['tcp/6379-6380'] }, // 1: workload → group, tcp/N-M
  { from: ['device:laptop'], to: ['any'], ports: ['any'] }, // 2: device → any, any
  { from: ['node:node-a'], to: ['workload:cache', 'device:phone'], ports: ['tcp/7777', 'icmp'] }, // 3: node → workload, device
  { from: ['cidr:10.1.0.0/23'], to: ['node:node-c'], ports: ['tcp/8080'] }, // 4: cidr → node
  { from: ['any'], to: ['cidr:10.1.1.0/24'], ports: ['udp/5353', 'icmp'] }, // 5: any → cidr, udp/N
  { from: ['group:staff'], to: ['node:node-b'], ports: ['tcp/8080'] }, // 6: device group → node
];

function specDoc(extraRules: object[] = []): object {
  return {
    name,
    nats: [{ name: 'home' }],
    nodes: [{ name: 'node-a' }, { name: 'node-b' }, { name: 'node-c', nat: 'home' }],
    tenants: [
      {
        name: 'blue',
        blueprints: [
          {
            name: 'office',
            networks: [
              {
                name: 'lan',
                ipRange: '10.1.0.0/16',
                nodes: ['node-a', 'node-b', 'node-c'],
                access: [
                  { name: 'laptop', groups: ['admins'] },
                  { name: 'phone', groups: ['staff'] },
                ],
                policy: { default: 'deny', rules: [...RULES, ...extraRules] },
              },
            ],
            workloads: [web('web', 'node-a', ['web']), web('job', 'node-a'), web('db', 'node-b', ['data']), web('cache', 'node-c', ['data'])],
          },
        ],
      },
    ],
    devices: [
      { name: 'laptop', tenant: 'blue', network: 'lan' },
      { name: 'phone', tenant: 'blue', network: 'lan' },
    ],
  };
}

const E = {
  a: 'blue/office/lan@node-a',
  b: 'blue/office/lan@node-b',
  c: 'blue/office/lan@node-c',
  laptop: 'blue/office/lan@laptop',
  phone: 'blue/office/lan@phone',
  web: 'blue/office/lan/web@node-a',
  job: 'blue/office/lan/job@node-a',
  db: 'blue/office/lan/db@node-b',
  cache: 'blue/office/lan/cache@node-c',
};

/** A small tool run inside endpoints' namespaces with this machine's node (one mode per use). */
const HELPER = String.raw`
const net = require('net');
const dgram = require('dgram');
const [mode, ...a] = process.argv.slice(1);
const out = (s) => process.stdout.write(s + '\n');
if (mode === 'sink') {
  let total = 0, last = -1;
  for (const p of a) net.createServer((s) => { out('A ' + p + ' ' + s.remoteAddress); s.on('data', (d) => (total += d.length)); s.on('error', (e) => out('E ' + p + ' ' + (e.code || e.message))); s.on('close', () => out('C ' + p)); }).listen(Number(p), '0.0.0.0', () => out('L ' + p));
  setInterval(() => { if (total !== last) { last = total; out('B ' + total + ' ' + Date.now()); } }, 20);
} else if (mode === 'udp') {
  const [addr, ...ports] = a;
  for (const p of ports) { const s = dgram.createSocket('udp4'); s.on('message', (m, r) => { out('U ' + p + ' ' + r.address); s.send('pong', r.port, r.address); }); s.bind(Number(p), addr, () => out('L ' + p)); }
} else if (mode === 'udpsend') {
  const [src, dst, port] = a;
  const s = dgram.createSocket('udp4');
  s.on('message', () => { out('R yes'); process.exit(0); });
  s.on('error', (e) => { out('R error ' + e.code); process.exit(0); });
  s.bind(src === '-' ? { port: 0 } : { port: 0, address: src }, () => { for (let i = 0; i < 3; i++) setTimeout(() => s.send('ping', Number(port), dst), i * 100); });
  setTimeout(() => { out('R no'); process.exit(0); }, 1500);
} else if (mode === 'tcptry') {
  const [src, dst, port] = a;
  const s = net.connect(src === '-' ? { host: dst, port: Number(port) } : { host: dst, port: Number(port), localAddress: src });
  const t = setTimeout(() => { out('C timeout'); process.exit(0); }, 1500);
  s.on('connect', () => { clearTimeout(t); out('C ok'); s.destroy(); process.exit(0); });
  s.on('error', (e) => { clearTimeout(t); out('C ' + (e.code === 'ECONNREFUSED' ? 'refused' : e.code)); process.exit(0); });
} else if (mode === 'retry') {
  const [dst, port, every] = a;
  let n = 0;
  setInterval(() => out('N ' + n + ' ' + Date.now()), 100);
  setInterval(() => {
    const start = Date.now();
    n++;
    const s = net.connect({ host: dst, port: Number(port) });
    const t = setTimeout(() => s.destroy(), 300);
    s.on('connect', () => { out('OK ' + start + ' ' + Date.now()); process.exit(0); });
    s.on('error', (e) => { clearTimeout(t); out('F ' + e.code + ' ' + start); });
  }, Number(every));
} else if (mode === 'stream') {
  const [dst, port] = a;
  let sent = 0, last = -1;
  const chunk = Buffer.alloc(4096, 120);
  const s = net.connect({ host: dst, port: Number(port) });
  s.on('connect', () => { out('O ' + Date.now()); setInterval(() => { if (s.writableLength < 65536) { s.write(chunk); sent += chunk.length; } }, 2); });
  s.on('error', (e) => out('E ' + (e.code || e.message) + ' ' + Date.now()));
  s.on('close', () => { out('C ' + Date.now()); process.exit(0); });
  setInterval(() => { if (sent !== last) { last = sent; out('W ' + sent + ' ' + Date.now()); } }, 50);
}
`;

const procs: ChildProcess[] = [];

async function argvIn(id: string, argv: string[]): Promise<string[]> {
  const o = openLab(name);
  const e = o.endpoints.find((x) => x.id === id);
  assert.ok(e, `no endpoint ${id}`);
  const pids = e.kind === 'workload' ? (await workloadPids([e], o.dir)).pids : undefined;
  const full = endpointArgv(e, o.layout, o.state, argv, pids);
  assert.ok(full, `${id}: its namespace is not there`);
  return full;
}

/** Runs the helper in an endpoint's namespace to its end; its output. */
async function helper(id: string, args: string[], timeoutMs = 10_000): Promise<string> {
  const argv = await argvIn(id, [process.execPath, '-e', HELPER, ...args]);
  try {
    return (await execFileP(argv[0], argv.slice(1), { encoding: 'utf8', timeout: timeoutMs })).stdout;
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '');
  }
}

/** Runs a command in an endpoint's namespace; its output (also when it failed). */
async function runIn(id: string, argv: string[], timeoutMs = 10_000): Promise<string> {
  const full = await argvIn(id, argv);
  try {
    return (await execFileP(full[0], full.slice(1), { encoding: 'utf8', timeout: timeoutMs })).stdout;
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '');
  }
}

/** Starts the helper in an endpoint's namespace in the background: its output lines, and a wait for one. */
async function startHelper(id: string, args: string[]): Promise<{ proc: ChildProcess; lines: string[]; wait: (re: RegExp, ms: number) => Promise<string | null> }> {
  const argv = await argvIn(id, [process.execPath, '-e', HELPER, ...args]);
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  procs.push(proc);
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const wait = async (re: RegExp, ms: number): Promise<string | null> => {
    const end = Date.now() + ms;
    for (;;) {
      const l = lines.find((x) => re.test(x));
      if (l) return l;
      if (Date.now() >= end) return null;
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, Math.max(1, end - Date.now()));
      });
    }
  };
  return { proc, lines, wait };
}

/** Echo services up and the full matrix (or from some sources only), with the lab's current policy. */
async function matrix(sources?: string[]): Promise<{ m: PairResult[]; endpoints: Endpoint[] }> {
  const o = openLab(name);
  const wl = await workloadPids(o.endpoints, o.dir);
  const echo = await ensureEcho(o.endpoints, o.layout, o.state, o.dir, wl.pids);
  if (echo.started) {
    writeState(o.dir, o.state);
    await sleep(300); // listeners started inside containers by docker exec bind asynchronously
  }
  return { m: await runMatrix(o.endpoints, o.layout, o.state, { workloadPids: wl.pids, ...(sources ? { sources } : {}) }), endpoints: o.endpoints };
}

/** Waits (bounded) until every check expected to reach does. */
async function settle(boundMs: number): Promise<{ ms: number; rounds: number }> {
  const t0 = Date.now();
  for (let rounds = 1; ; rounds++) {
    const o = openLab(name);
    const wl = await workloadPids(o.endpoints, o.dir);
    const echo = await ensureEcho(o.endpoints, o.layout, o.state, o.dir, wl.pids);
    if (echo.started) writeState(o.dir, o.state);
    const reach = await runMatrix(o.endpoints, o.layout, o.state, { reachOnly: true, workloadPids: wl.pids });
    if (!wl.missing.length && !echo.missing.length && reach.length > 0 && reach.every((r) => r.ok)) return { ms: Date.now() - t0, rounds };
    if (Date.now() - t0 > boundMs) assert.fail(`not converged in ${boundMs} ms: ${JSON.stringify(reach.filter((r) => !r.ok).slice(0, 5))}`);
    await sleep(500);
  }
}

const fmt = (r: PairResult) => `${r.from} → ${r.to} ${r.proto}${r.port !== null ? '/' + r.port : ''}: expected ${r.expect}${r.rule !== undefined ? ` (${r.rule === null ? 'default' : 'rule ' + r.rule})` : ''}, ${r.ok ? 'ok' : r.reached ? 'REACHED' : 'not reached'}`;

test('policy in a real lab: every rule form, a device widening its AllowedIPs, a rule change under traffic', { timeout: 600_000 }, async (t) => {
  const dir = labDir(name);
  const specFile = join(root, 'policy.yaml');
  writeFileSync(specFile, stringify(specDoc()));
  const left: string[] = [];
  try {
    const t0 = Date.now();
    // Not `wait`: a node's own traffic to what it guards is not filtered yet (the todo below), so this lab's
    // matrix is not green; the test waits for the checks that must reach itself.
    await labUp(specFile, { name, wait: false });
    const s = await settle(120_000);
    t.diagnostic(`lab up in ${((Date.now() - t0 - s.ms) / 1000).toFixed(1)} s, every reachable check ok ${(s.ms / 1000).toFixed(1)} s later (${s.rounds} round(s))`);

    const t1 = Date.now();
    const { m, endpoints } = await matrix();
    const byId = new Map(endpoints.map((e) => [e.id, e]));
    const count = (x: string) => m.filter((r) => r.expect === x).length;
    /** From a node's tenant namespace to something that node guards itself (its workloads, its devices). */
    const own = (r: PairResult) => byId.get(r.from)!.kind === 'resource' && byId.get(r.to)!.policy?.node === byId.get(r.from)!.host;
    t.diagnostic(`matrix: ${m.length} checks (${count('reach')} reach, ${count('denied')} denied) in ${((Date.now() - t1) / 1000).toFixed(1)} s; ${m.filter(own).length} from a node to what it guards itself`);

    await t.test('every rule form, from workloads, devices and nodes: reach and denied as the policy says', () => {
      assert.deepEqual([E.a, E.b, E.c].map((id) => byId.get(id)!.address), ['10.1.0.1', '10.1.1.1', '10.1.2.1'], 'the node subnets the cidr rules assume');
      assert.deepEqual(m.filter((r) => !r.ok && !own(r)).map(fmt), []);
      for (let i = 0; i < RULES.length; i++) assert.ok(m.some((r) => r.rule === i && r.expect === 'reach' && r.ok && !own(r)), `rule ${i} ${JSON.stringify(RULES[i])} let nothing through`);
      // TCP to every identity port and every port the rules name; ICMP to every target.
      assert.deepEqual([...new Set(m.filter((r) => r.proto === 'tcp').map((r) => r.port))].sort((x, y) => x! - y!), [80, 5432, 6379, 6380, ECHO_PORT, 8080]);
      // Dual-stack: ICMP to every target in each family.
      assert.equal(m.filter((r) => r.proto === 'icmp' && r.family === 4).length, 9 * 8);
      assert.equal(m.filter((r) => r.proto === 'icmp' && r.family === 6).length, 9 * 8);
      for (const kind of ['resource', 'device', 'workload']) {
        const from = m.filter((r) => byId.get(r.from)!.kind === kind && !own(r));
        assert.ok(from.some((r) => r.proto === 'tcp' && r.expect === 'reach' && r.rule !== 2), `${kind}: something reached over TCP by a rule`);
        assert.ok(from.some((r) => r.proto === 'tcp' && r.expect === 'denied'), `${kind}: TCP denied`);
        assert.ok(from.some((r) => r.proto === 'icmp' && r.expect === 'denied'), `${kind}: ICMP denied`);
      }
      const check = (from: string, to: string, port: number | null, expect: 'reach' | 'denied', rule?: number | null) => {
        const r = m.find((x) => x.from === from && x.to === to && x.port === port && x.proto === (port === null ? 'icmp' : 'tcp'));
        assert.ok(r, `no check ${from} → ${to} ${port}`);
        assert.equal(r.expect, expect, fmt(r));
        assert.ok(r.ok, fmt(r));
        if (rule !== undefined) assert.equal(r.rule, rule, fmt(r));
      };
      check(E.web, E.db, 5432, 'reach', 0); // group:web → workload:db, tcp/5432
      check(E.job, E.db, 5432, 'denied', null); // job is not in group web
      check(E.web, E.db, 80, 'denied', null);
      check(E.web, E.cache, 6379, 'reach', 1); // workload:web → group:data, tcp/6379-6380 (both ends)
      check(E.web, E.cache, 6380, 'reach', 1);
      check(E.web, E.db, 6380, 'reach', 1);
      check(E.web, E.cache, 5432, 'denied');
      check(E.job, E.cache, 6379, 'denied');
      check(E.web, E.job, 80, 'denied'); // two workloads on the same bridge
      check(E.laptop, E.job, 80, 'reach', 2); // device:laptop → any, any
      check(E.laptop, E.c, 8080, 'reach', 2);
      check(E.laptop, E.cache, null, 'reach', 2);
      check(E.a, E.cache, 7777, 'reach', 3); // node:node-a → workload:cache, tcp/7777 and icmp
      check(E.a, E.cache, null, 'reach', 3);
      check(E.a, E.cache, 80, 'denied');
      check(E.b, E.cache, 7777, 'denied');
      check(E.b, E.c, 8080, 'reach', 4); // cidr:10.1.0.0/23 → node:node-c, tcp/8080
      check(E.db, E.c, 8080, 'reach', 4);
      check(E.cache, E.c, 8080, 'denied'); // 10.1.2.2 is outside the cidr
      check(E.phone, E.c, 8080, 'denied');
      check(E.cache, E.b, null, 'reach', 5); // any → cidr:10.1.1.0/24, icmp (udp/5353 below)
      check(E.cache, E.db, null, 'reach', 5);
      check(E.cache, E.a, null, 'denied');
      check(E.phone, E.b, 8080, 'reach', 6); // group:staff (a device's group) → node:node-b, tcp/8080
      check(E.phone, E.b, 7777, 'denied');
      check(E.phone, E.laptop, null, 'denied');
    });

    await t.test(
      "a node's own traffic to what it guards (its workloads, the devices it serves) follows the policy",
      () => {
        assert.deepEqual(m.filter((r) => own(r) && !r.ok).map(fmt), []);
      },
    );

    const nodeB = byId.get(E.b)!;
    const guardOf = (id: string) => byId.get(id)!.policy!.guard!;
    const udp = await startHelper(E.b, ['udp', nodeB.address, '5353', '5354']);
    assert.ok(await udp.wait(/^L 5354/, 10_000), 'udp server up');

    await t.test('udp/N: datagrams pass (and are answered) only as the rules say', async () => {
      const cases: [string, number][] = [
        [E.cache, 5353],
        [E.cache, 5354],
        [E.phone, 5353],
        [E.a, 5354],
        [E.laptop, 5354],
        [E.web, 5353],
        [E.job, 5354],
      ];
      const got = await Promise.all(cases.map(([from, port]) => helper(from, ['udpsend', '-', nodeB.address, String(port)])));
      await sleep(200);
      for (const [i, [from, port]] of cases.entries()) {
        const src = sourceAddress(byId.get(from)!, nodeB);
        const allowed = evaluate(guardOf(E.b), { src, dst: nodeB.address, proto: 'udp', port }).allowed;
        const logged = udp.lines.some((l) => l === `U ${port} ${src}`);
        assert.equal(/R yes/.test(got[i]), allowed, `${from} → udp/${port}: reply ${got[i].trim()}, policy ${allowed ? 'allows' : 'denies'}`);
        assert.equal(logged, allowed, `${from} → udp/${port}: ${logged ? 'arrived' : 'did not arrive'}`);
      }
      assert.ok(cases.some(([from, port]) => evaluate(guardOf(E.b), { src: sourceAddress(byId.get(from)!, nodeB), dst: nodeB.address, proto: 'udp', port }).allowed));
    });

    await t.test('an access device that widens its AllowedIPs and sends from other addresses gains nothing', async () => {
      const o = openLab(name);
      const phoneHost = o.layout.devices.find((d) => d.name === 'phone')!;
      const acc = o.plans[0].plan.networks[0].access;
      const phone = acc.find((a) => a.name === 'phone')!;
      const laptop = acc.find((a) => a.name === 'laptop')!;
      const original = phone.wgQuickConfig!;
      const spare = phone.subnet.replace(/\.0\/\d+$/, '.77'); // another address of the phone's own subnet
      const widened = original.replace(/^Address = (.*)$/m, `Address = $1, ${spare}/32, ${laptop.address}/32`).replace(/^AllowedIPs = .*$/m, 'AllowedIPs = 10.0.0.0/8, fc00::/7');
      assert.notEqual(widened, original);
      assert.match(widened, /AllowedIPs = 10\.0\.0\.0\/8, fc00::\/7/);
      const reachB = async () => {
        for (let i = 0; i < 40; i++) {
          if (/ 0% packet loss/.test(await runIn(E.phone, ['busybox', 'ping', '-c', '1', '-W', '1', nodeB.address]))) return true;
          await sleep(250);
        }
        return false;
      };
      try {
        await ensureDeviceTunnel(phoneHost, widened, o.state, o.dir);
        writeState(o.dir, o.state);
        assert.ok(await reachB(), 'the phone reaches node-b again with its widened config');
        assert.match(await runIn(E.phone, ['ip', '-4', 'route', 'show', 'dev', 'zl0']), /10\.0\.0\.0\/8/);

        // Its own address: exactly what it had (but towards the laptop, whose address it now has itself).
        const mine = (await matrix([E.phone])).m.filter((r) => r.to !== E.laptop);
        assert.ok(mine.length > 40);
        assert.deepEqual(mine.filter((r) => !r.ok).map(fmt), []);

        // Another address of its own subnet (its access node accepts it): only what the policy gives that address.
        const targets: [string, number][] = [
          [E.b, 8080],
          [E.b, ECHO_PORT],
          [E.c, 8080],
          [E.db, 5432],
          [E.db, 80],
          [E.web, 80],
          [E.a, ECHO_PORT],
        ];
        const tcp = await Promise.all(targets.map(([to, port]) => helper(E.phone, ['tcptry', spare, byId.get(to)!.address, String(port)])));
        for (const [i, [to, port]] of targets.entries()) {
          const allowed = evaluate(guardOf(to), { src: spare, dst: byId.get(to)!.address, proto: 'tcp', port }).allowed;
          assert.equal(/C ok/.test(tcp[i]), allowed, `from ${spare} to ${to} tcp/${port}: ${tcp[i].trim()}; the policy ${allowed ? 'allows' : 'denies'} it`);
          assert.ok(allowed || /C timeout/.test(tcp[i]), `dropped, not refused: ${tcp[i].trim()}`);
        }
        assert.ok(!evaluate(guardOf(E.b), { src: spare, dst: nodeB.address, proto: 'tcp', port: 8080 }).allowed, 'what group:staff gives the phone is not its subnet’s');
        for (const [to, allowed] of [
          [E.b, true], // any → cidr:10.1.1.0/24 icmp
          [E.a, false],
        ] as const) {
          const out = await runIn(E.phone, ['busybox', 'ping', '-I', spare, '-c', '1', '-W', '1', byId.get(to)!.address]);
          assert.equal(/ 0% packet loss/.test(out), allowed, `ping from ${spare} to ${to}`);
          assert.equal(evaluate(guardOf(to), { src: spare, dst: byId.get(to)!.address, proto: 'icmp' }).allowed, allowed);
        }
        const before = udp.lines.length;
        const fromSpare = await helper(E.phone, ['udpsend', spare, nodeB.address, '5353']);
        assert.match(fromSpare, /R yes/, 'any → cidr:10.1.1.0/24 udp/5353 covers the spare address');

        // The laptop's address (it may reach everything): dropped by the access node (not the phone's allowed
        // IPs) before any policy; nothing arrives.
        const [spoofUdp, spoofTcp] = await Promise.all([
          helper(E.phone, ['udpsend', laptop.address, nodeB.address, '5353']),
          helper(E.phone, ['tcptry', laptop.address, nodeB.address, String(ECHO_PORT)]),
        ]);
        await sleep(300);
        const arrived = udp.lines.slice(before);
        assert.ok(arrived.includes(`U 5353 ${spare}`), JSON.stringify(arrived));
        assert.ok(!arrived.some((l) => l.endsWith(` ${laptop.address}`)), `a datagram with the laptop's address arrived: ${JSON.stringify(arrived)}`);
        assert.match(spoofUdp, /R no/);
        assert.doesNotMatch(spoofTcp, /C ok/);
      } finally {
        await ensureDeviceTunnel(phoneHost, original, o.state, o.dir);
        writeState(o.dir, o.state);
      }
      assert.ok(await reachB(), 'the phone is back on its own config');
    });
    udp.proc.kill('SIGKILL');

    await t.test('a rule change under traffic: the allowed stream is not reset, the denied flow starts only when allowed', async () => {
      const sink = await startHelper(E.b, ['sink', '6000', '6001']);
      assert.ok(await sink.wait(/^L 6001/, 10_000), 'sink up');
      const stream = await startHelper(E.laptop, ['stream', nodeB.address, '6000']); // rule 2: the laptop reaches anything
      assert.ok(await stream.wait(/^O /, 10_000), `the allowed stream connects: ${stream.lines.join(' | ')}`);
      const retry = await startHelper(E.phone, ['retry', nodeB.address, '6001', '5']); // denied: staff gets node-b's 8080 only
      await sleep(1000);
      const attempts = () => Number(retry.lines.filter((l) => l.startsWith('N ')).at(-1)?.split(' ')[1] ?? 0);

      /** Signs and plans the spec with extra rules (a new blueprint version), submits node-b's part (timed),
       *  then pushes every node; the lab's plan, envelope and state follow. */
      const submit = async (extra: object[]): Promise<{ t0: number; postMs: number }> => {
        const file = join(root, 'policy-2.yaml');
        writeFileSync(file, stringify(specDoc(extra)));
        const spec = loadLabSpec(file, (p) => readFileSync(p, 'utf8'), name);
        const o = openLab(name);
        const ids = new Map(o.layout.nodes.map((n) => [n.name, ensureIdentity(nodePaths(o.dir, n.name).identity)]));
        const plans = planLab(spec, o.layout, o.dir, o.state, ids);
        writeState(o.dir, o.state);
        const p = plans[0];
        assert.ok(p.changed);
        const t0 = Date.now();
        const r = await call<{ networks: { ok: boolean }[] }>(nodePaths(o.dir, 'node-b').socket, 'POST', '/v1/blueprints', { signed: p.signed, part: nodePart(p.plan, 'node-b') }, 60_000);
        const postMs = Date.now() - t0;
        assert.ok(r.networks.every((n) => n.ok), JSON.stringify(r));
        const pushed = await pushAll(o.layout, plans, o.dir);
        assert.deepEqual(pushed.flatMap((x) => x.errors), []);
        return { t0, postMs };
      };

      // A change that does not allow the denied flow (another node's port): it stays denied.
      const unrelated = { from: ['group:staff'], to: ['node:node-c'], ports: ['tcp/6001'] };
      const c1 = await submit([unrelated]);
      const n1 = attempts();
      await sleep(1000);
      assert.ok(attempts() > n1 + 50, `the denied flow keeps retrying (${n1} → ${attempts()} attempts)`);
      assert.equal(retry.lines.find((l) => l.startsWith('OK ')), undefined, 'not allowed by the unrelated change');
      t.diagnostic(`unrelated change: node-b answered the submission in ${c1.postMs} ms; the denied flow stayed denied`);

      // The change that allows it.
      const c2 = await submit([unrelated, { from: ['device:phone'], to: ['node:node-b'], ports: ['tcp/6001'] }]);
      const ok = await retry.wait(/^OK /, 10_000);
      assert.ok(ok, `the denied flow never got through: ${retry.lines.filter((l) => !l.startsWith('N ')).slice(-5).join(' | ')}`);
      const inForce = Number(ok.split(' ')[1]) - c2.t0;
      t.diagnostic(`rule in force on node-b ${inForce} ms after submission (first connection attempt that got through started then; attempts every 5 ms; node-b answered the submission after ${c2.postMs} ms; goal ≤ 100 ms)`);
      assert.ok(inForce < 10_000);

      await sleep(1000);
      const samples = sink.lines.filter((l) => l.startsWith('B ')).map((l) => l.split(' ').slice(1).map(Number));
      const during = samples.filter(([, at]) => at >= c1.t0 - 500);
      let gap = 0;
      for (let i = 1; i < during.length; i++) gap = Math.max(gap, during[i][1] - during[i - 1][1]);
      const after = samples.filter(([, at]) => at > c2.t0);
      const moved = after.length ? after.at(-1)![0] - after[0][0] : 0;
      t.diagnostic(`allowed stream: ${(samples.at(-1)![0] / 1e6).toFixed(1)} MB in all, ${(moved / 1e6).toFixed(1)} MB after the second change; longest pause across both changes ${gap} ms`);
      assert.deepEqual(stream.lines.filter((l) => /^[EC] /.test(l)), [], 'the stream saw no error and no close');
      assert.deepEqual(sink.lines.filter((l) => /^[EC] 6000/.test(l)), [], 'the sink saw no error and no close on the stream');
      assert.equal(sink.lines.filter((l) => l.startsWith('A 6000')).length, 1, 'one connection all along');
      assert.ok(moved > 100_000, `the stream kept transferring (${moved} bytes after the change)`);
      assert.ok(gap < 3000, `the stream paused ${gap} ms`);
      for (const p of [sink, stream, retry]) p.proc.kill('SIGKILL');
      await sleep(300);

      // The matrix reads the new policy: the phone now reaches node-b on 6001 (a port it now probes).
      const { m: m2, endpoints: e2 } = await matrix();
      const by2 = new Map(e2.map((e) => [e.id, e]));
      const own2 = (r: PairResult) => by2.get(r.from)!.kind === 'resource' && by2.get(r.to)!.policy?.node === by2.get(r.from)!.host;
      assert.deepEqual(m2.filter((r) => !r.ok && !own2(r)).map(fmt), []);
      const r6001 = m2.find((r) => r.from === E.phone && r.to === E.b && r.port === 6001);
      assert.ok(r6001 && r6001.expect === 'reach' && r6001.ok && r6001.rule === RULES.length + 1, r6001 && fmt(r6001));
      const c6001 = m2.find((r) => r.from === E.phone && r.to === E.c && r.port === 6001);
      assert.ok(c6001 && c6001.expect === 'reach' && c6001.ok && c6001.rule === RULES.length, c6001 && fmt(c6001));
      assert.ok(m2.some((r) => r.from === E.job && r.to === E.b && r.port === 6001 && r.expect === 'denied' && r.ok));
    });
    // endpointsOf is what openLab uses; a plan without its blueprint has no policy to read.
    assert.equal(endpointsOf(openLab(name).plans.map(({ plan }) => ({ plan })), openLab(name).layout).some((e) => e.policy), false);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    left.push(...(await downAndCheck(name, dir)));
    rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});
