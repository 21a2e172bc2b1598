// Direct paths between hidden nodes, in a real lab (labs/examples/direct.yaml): five hidden nodes behind four
// NAT routers and one public access node "a".
//   h1 (cone NAT home1) ↔ h3 (cone NAT home3): direct through both NATs (within 30 s here; the figure is printed,
//   and bench/paths.ts measures the 10 s target: a missed first handshake costs WireGuard's 5 s retry);
//   h2 ↔ h4 (the same cone NAT, no hairpin): direct over their LAN addresses;
//   h5 (symmetric NAT): stays relayed, and the matrix stays green.
//   A ping flood h1 → h3 on the direct path: the access node's WireGuard counters for h1 and h3 do not grow.
//   One direction of h2 ↔ h4 lost for 8 s: reachable again soon after, and direct again (a fresh handshake).
//   A NAT router restart (conntrack lost) and a cut of one side: h1 reaches h3 again within 15 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { call } from '../../src/admin/client.ts';
import type { PathView } from '../../src/agent/paths.ts';
import { downAndCheck, labDir, labExecArgv, labFault, labMatrix, labUp, matrixOk, nodePaths, openLab } from '../../labs/index.ts';

const run = promisify(execFile);
const SPEC = fileURLToPath(new URL('../../labs/examples/direct.yaml', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const name = `dp-${randomBytes(3).toString('hex')}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tailOf(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).map((l) => l.slice(0, 400)).join('\n');
  } catch (e) {
    return `(${(e as Error).message})`;
  }
}

async function paths(node: string): Promise<PathView[]> {
  return (await call<{ paths: PathView[] }>(nodePaths(labDir(name), node).socket, 'GET', '/v1/paths')).paths;
}

async function pathOf(from: string, to: string): Promise<PathView | undefined> {
  return (await paths(from)).find((p) => p.node === to);
}

/** Waits (bounded) until `from` and `to` are direct both ways; seconds, or null. */
async function untilDirect(from: string, to: string, timeoutMs: number): Promise<number | null> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const [a, b] = await Promise.all([pathOf(from, to), pathOf(to, from)]);
    if (a?.path === 'direct' && b?.path === 'direct') return (Date.now() - t0) / 1000;
    await sleep(250);
  }
  return null;
}

function tenant(): { id: string; gateway: (node: string) => string } {
  const plan = openLab(name).plans[0].plan;
  const net = plan.networks[0];
  return { id: net.id, gateway: (node) => net.resources.find((r) => r.node === node)!.gateway };
}

/** Runs argv in a node's tenant namespace; stdout (also when the command failed). */
async function inTenant(node: string, argv: string[], timeoutMs = 60_000): Promise<string> {
  const a = labExecArgv(name, node, ['ip', 'netns', 'exec', `n-${tenant().id}`, ...argv]);
  try {
    return (await run(a[0], a.slice(1), { encoding: 'utf8', timeout: timeoutMs })).stdout;
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '');
  }
}

/** The access node's WireGuard counters (rx + tx bytes) for a peer node. */
async function accessBytes(peerNode: string): Promise<number> {
  const plan = openLab(name).plans[0].plan;
  const key = plan.networks[0].resources.find((r) => r.node === peerNode)!.publicKey;
  const v = await call<{ actual: { wireguard: { peers: { publicKey: string; rxBytes: number; txBytes: number }[] } } }>(nodePaths(labDir(name), 'a').socket, 'GET', `/v1/networks/${tenant().id}`);
  const p = v.actual.wireguard.peers.find((x) => x.publicKey === key)!;
  return p.rxBytes + p.txBytes;
}

/** Pings `to`'s gateway from `from`'s tenant namespace every 200 ms for `ms`: the longest run without a reply (s). */
async function longestGap(from: string, to: string, ms: number, t0: number): Promise<{ gap: number; firstOkAfter: number | null }> {
  // ping -D prints a timestamp per reply; -O reports the ones missing.
  const out = await inTenant(from, ['ping', '-n', '-D', '-i', '0.2', '-W', '1', '-w', String(Math.ceil(ms / 1000)), tenant().gateway(to)], ms + 10_000);
  const times = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
  if (!times.length) return { gap: ms / 1000, firstOkAfter: null };
  let gap = (times[0] - t0) / 1000;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, (times[i] - times[i - 1]) / 1000);
  return { gap, firstOkAfter: (times[0] - t0) / 1000 };
}

test('direct paths between hidden nodes: cone, same NAT, symmetric; flood off the relay; recovery', { timeout: 600_000 }, async (t) => {
  const dir = labDir(name);
  const left: string[] = [];
  const figures: Record<string, number | string | null> = {};
  try {
    const s = await labUp(SPEC, { name });
    assert.ok(s.green, 'the lab is green');
    const layout = openLab(name).layout;

    // Two different cone NATs: direct. The time is a figure (2.8–5.8 s here, once past 10 s: each missed first
    // handshake costs WireGuard's 5 s retry), asserted only as a bound that says it works at all.
    const cone = await untilDirect('h1', 'h3', 30_000);
    figures.coneDirectSec = cone;
    t.diagnostic(`h1 ↔ h3 (two cone NATs): direct ${cone === null ? 'NOT within 30 s' : `${cone.toFixed(1)} s after lab up returned`}`);
    assert.notEqual(cone, null, `h1 ↔ h3 not direct: ${JSON.stringify(await pathOf('h1', 'h3'))}`);
    const nat3 = layout.nats.find((n) => n.name === 'home3')!.wanAddress;
    assert.equal((await pathOf('h1', 'h3'))!.endpoint?.split(':')[0], nat3, "h1 dials h3 at its NAT's public address");

    // The same NAT: direct over the LAN (the NAT does not hairpin). Usually at once (0.0 s); the bound is the
    // cone pair's, for the same reason (a missed first handshake costs WireGuard's 5 s retry, then the probe
    // window and the backoff): CI's second dry run of session 30 saw h4 still probing after 20 s, once in eight
    // runs. When it fails it says what both sides and their agents saw.
    const lan = await untilDirect('h2', 'h4', 30_000);
    figures.sameNatDirectSec = lan;
    if (lan === null) {
      for (const n of ['h2', 'h4']) t.diagnostic(`${n} log, path lines:\n${tailOf(nodePaths(labDir(name), n).log, 400).split('\n').filter((l) => l.includes('path.')).slice(-15).join('\n')}`);
    }
    assert.notEqual(lan, null, `h2 ↔ h4 not direct: ${JSON.stringify(await pathOf('h2', 'h4'))} / ${JSON.stringify(await pathOf('h4', 'h2'))}`);
    const h4 = layout.nodes.find((n) => n.name === 'h4')!.address;
    assert.equal((await pathOf('h2', 'h4'))!.endpoint?.split(':')[0], h4, 'h2 dials h4 at its LAN address');

    // One direction lost for 8 s (h2's packets to h4 dropped on h2's underlay; h4's still arrive): the sides
    // disagree for a while (h4 goes stale first). Each side that goes back to the relay drops the direct peer's
    // session, so the other goes stale too within the stale time, and the next probe needs a fresh handshake:
    // reachable again soon after the restore, and direct again. Before, the old session meant no handshake, so
    // every probe failed its proof (relayed for minutes), and a pair one side of which stayed direct dropped
    // each other's packets until a rekey (61–87 s in a CI soak).
    {
      const h2ns = layout.nodes.find((n) => n.name === 'h2')!.ns;
      const nft = (input: string) => {
        const r = spawnSync('ip', ['netns', 'exec', h2ns, 'nft', '-f', '-'], { input, encoding: 'utf8', timeout: 10_000 });
        assert.equal(r.status, 0, r.stderr);
      };
      const t0 = Date.now();
      const probes = Promise.all([longestGap('h2', 'h4', 35_000, t0), longestGap('h4', 'h2', 35_000, t0)]);
      await sleep(1000);
      nft(`table inet zmesh_test_oneway {\n chain out {\n type filter hook output priority 0; policy accept;\n ip daddr ${h4} meta l4proto udp drop\n }\n}\n`);
      try {
        await sleep(8000);
      } finally {
        nft('delete table inet zmesh_test_oneway\n');
      }
      const gaps = await probes;
      figures.oneWayGapSec = `${gaps[0].gap.toFixed(1)}, ${gaps[1].gap.toFixed(1)}`;
      const again = await untilDirect('h2', 'h4', 30_000);
      figures.oneWayDirectAgainSec = again;
      t.diagnostic(`h2 → h4 lost for 8 s: longest gap h2 → h4 ${gaps[0].gap.toFixed(1)} s, h4 → h2 ${gaps[1].gap.toFixed(1)} s; direct again ${again?.toFixed(1)} s after the probes ended`);
      // 8 s of loss + the stale time on each side (6 s) + a probe: ≤ 22 s; direct again (a fresh handshake).
      for (const g of gaps) assert.ok(g.gap <= 22, `h2 ↔ h4 unreachable for ${g.gap} s after a one-way loss of 8 s`);
      assert.notEqual(again, null, `h2 ↔ h4 not direct again: ${JSON.stringify([await pathOf('h2', 'h4'), await pathOf('h4', 'h2')])}`);
    }

    // Symmetric NAT: relayed with a reason, and everything still reaches everything.
    for (const other of ['h1', 'h2', 'h3', 'h4']) {
      const p = (await pathOf('h5', other))!;
      assert.equal(p.path, 'relay', `h5 → ${other} stays relayed`);
      assert.equal(p.via, 'a');
      assert.ok(p.reason === 'no-handshake' || p.reason === 'probing', `h5 → ${other}: ${p.reason}`);
      assert.equal((await pathOf(other, 'h5'))!.path, 'relay');
    }
    const m = await labMatrix(name);
    assert.ok(matrixOk(m), `matrix: ${JSON.stringify(m.filter((p) => !p.ok).slice(0, 3))}`);

    // A flood on the direct path passes the access node by.
    const before = [await accessBytes('h1'), await accessBytes('h3')];
    const flood = await inTenant('h1', ['ping', '-n', '-q', '-c', '500', '-i', '0.005', '-s', '1000', '-W', '1', tenant().gateway('h3')]);
    const after = [await accessBytes('h1'), await accessBytes('h3')];
    const loss = Number(/(\d+(?:\.\d+)?)% packet loss/.exec(flood)?.[1] ?? 100);
    figures.floodLossPct = loss;
    figures.accessGrowthBytes = `${after[0] - before[0]}, ${after[1] - before[1]}`;
    t.diagnostic(`flood h1 → h3 (500 × 1000 B, ${loss}% lost): the access node's counters for h1/h3 grew by ${after[0] - before[0]} / ${after[1] - before[1]} bytes`);
    assert.ok(loss <= 2, `flood loss ${loss}%`);
    // ~1 MB went h1 ↔ h3; the relay saw at most keepalives and probes (h5's) meanwhile.
    assert.ok(after[0] - before[0] < 20_000 && after[1] - before[1] < 20_000, 'the flood did not pass the access node');

    // The control: the same flood to h5 (relayed) does pass the access node, and its counters show it.
    const h5before = await accessBytes('h5');
    await inTenant('h1', ['ping', '-n', '-q', '-c', '200', '-i', '0.005', '-s', '1000', '-W', '1', tenant().gateway('h5')]);
    const relayed = (await accessBytes('h5')) - h5before;
    t.diagnostic(`control: 200 × 1000 B h1 → h5 (relayed) grew the access node's counters for h5 by ${relayed} bytes`);
    assert.ok(relayed > 200_000, `the relayed flood shows on the access node (${relayed} bytes)`);

    // NAT router restart on h3's side: h1 reaches h3 again within 15 s (direct again, or relayed).
    const t1 = Date.now();
    const probe = longestGap('h1', 'h3', 25_000, t1);
    await sleep(1000);
    await labFault(name, 'home3', 'nat-restart');
    const r1 = await probe;
    figures.natRestartGapSec = r1.gap;
    t.diagnostic(`NAT restart of home3: longest gap h1 → h3 ${r1.gap.toFixed(1)} s; path now ${(await pathOf('h1', 'h3'))?.path}`);
    assert.ok(r1.gap <= 15, `h1 → h3 unreachable for ${r1.gap} s after the NAT restart`);

    // A cut of h3 for 5 s: reachable again within 15 s of the restore.
    await labFault(name, 'h3', 'cut');
    await sleep(5000);
    const t2 = Date.now();
    await labFault(name, 'h3', 'restore');
    const r2 = await longestGap('h1', 'h3', 20_000, t2);
    figures.cutRestoreFirstOkSec = r2.firstOkAfter;
    t.diagnostic(`cut h3 5 s, restore: first reply ${r2.firstOkAfter?.toFixed(1)} s after the restore; path ${(await pathOf('h1', 'h3'))?.path}`);
    assert.ok(r2.firstOkAfter !== null && r2.firstOkAfter <= 15, `h1 → h3 not back within 15 s of the restore`);
    assert.notEqual(await untilDirect('h1', 'h3', 60_000), null, 'h1 ↔ h3 direct again after the cut');
    // The other pairs of h3 recover on their own schedule (h3's new NAT mapping reaches them with the carrier's next
    // round; a direct path that went silent meanwhile is demoted to the relay): green within 45 s, the time a figure
    // (a CI run found h2 ↔ h3 still down when the matrix ran at once).
    const t3 = Date.now();
    let m2 = await labMatrix(name);
    while (!matrixOk(m2) && Date.now() - t3 < 45_000) {
      await sleep(2000);
      m2 = await labMatrix(name);
    }
    figures.greenAfterFaultsSec = Math.round((Date.now() - t3) / 100) / 10;
    t.diagnostic(`green after the faults ${figures.greenAfterFaultsSec} s after h1 ↔ h3 was direct again`);
    assert.ok(matrixOk(m2), `green after the faults: ${JSON.stringify(m2.filter((p) => !p.ok && !p.skip).slice(0, 4))}; paths h2: ${JSON.stringify(await paths('h2'))}; paths h3: ${JSON.stringify(await paths('h3'))}`);
  } finally {
    left.push(...(await downAndCheck(name, dir)));
    mkdirSync(join(fileURLToPath(new URL('../../bench/results', import.meta.url))), { recursive: true });
    writeFileSync(fileURLToPath(new URL('../../bench/results/lab-direct.json', import.meta.url)), JSON.stringify({ at: new Date().toISOString(), figures }, null, 2) + '\n');
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});

test('direct paths on etcd: the controller carries candidates from the nodes\' signed statuses', { timeout: 600_000 }, async (t) => {
  // The same topology with controlPlane: etcd (and so a second lab name, and its own spec file).
  const ename = `de-${randomBytes(3).toString('hex')}`;
  const specDir = mkdtempSync('/tmp/zmesh-lab-spec-');
  const spec = join(specDir, 'direct-etcd.yaml');
  writeFileSync(spec, readFileSync(SPEC, 'utf8').replace(/^name: direct$/m, `name: ${ename}\ncontrolPlane: etcd`));
  const dir = labDir(ename);
  const left: string[] = [];
  const pathOfE = async (from: string, to: string) =>
    (await call<{ paths: PathView[] }>(nodePaths(dir, from).socket, 'GET', '/v1/paths')).paths.find((p) => p.node === to);
  try {
    const s = await labUp(spec, { name: ename });
    assert.ok(s.green, 'the etcd lab is green');
    const t0 = Date.now();
    let both: number | null = null;
    // When each direction first had candidates and first went direct (s after lab up): this wait once took 56 s
    // of its 60 (session 29; 0–7 s otherwise), and which of the two was late says where to look.
    const dirs = [['h1', 'h3'], ['h3', 'h1'], ['h2', 'h4'], ['h4', 'h2']] as const;
    const firstCandidates = new Map<string, number>();
    const firstDirect = new Map<string, number>();
    while (Date.now() - t0 < 60_000 && both === null) {
      const ps = await Promise.all(dirs.map(([a, b]) => pathOfE(a, b)));
      const at = (Date.now() - t0) / 1000;
      ps.forEach((p, i) => {
        const k = dirs[i].join('→');
        if (p && p.candidates.length > 0 && !firstCandidates.has(k)) firstCandidates.set(k, at);
        if (p?.path === 'direct' && !firstDirect.has(k)) firstDirect.set(k, at);
      });
      if (ps.every((p) => p?.path === 'direct')) both = at;
      else await sleep(500);
    }
    const timeline = dirs.map(([a, b]) => `${a}→${b}: candidates ${firstCandidates.get(`${a}→${b}`) ?? '-'} s, direct ${firstDirect.get(`${a}→${b}`) ?? '-'} s`).join('; ');
    t.diagnostic(`etcd: h1 ↔ h3 and h2 ↔ h4 direct ${both === null ? 'NOT within 60 s' : `${both.toFixed(1)} s after lab up returned`} (${timeline})`);
    if (both === null || both > 20) {
      for (const [what, file] of [['controller', join(dir, 'logs', 'controller.log')], ['h1', nodePaths(dir, 'h1').log], ['h3', nodePaths(dir, 'h3').log]] as const) {
        t.diagnostic(`${what} log, last lines:\n${tailOf(file, 30)}`);
      }
    }
    assert.notEqual(both, null, `not direct: ${JSON.stringify(await pathOfE('h1', 'h3'))} ${JSON.stringify(await pathOfE('h2', 'h4'))}`);
    assert.equal((await pathOfE('h5', 'h1'))?.path, 'relay', 'h5 (symmetric NAT) stays relayed');
    assert.ok(matrixOk(await labMatrix(ename)), 'green with direct paths');
  } finally {
    left.push(...(await downAndCheck(ename, dir)));
    rmSync(specDir, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});
