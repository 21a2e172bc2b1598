// Attacks on the candidate channel (direct paths between hidden nodes, docs/paths.md): what PUT /v1/candidates
// may tell a hidden node. A candidate is data from the network, so every hostile submission must be refused as a
// whole (E_CANDIDATES, HTTP 400; 413 over the route's 256 KiB; 403 on the read-only socket) and change nothing:
// the candidates the node holds (GET /v1/paths), no `wg set` (setPeers), and the same desired peers on the next
// reconcile (no endpoint, allowed-ips, key or subnet moved on any peer). Each battery runs twice: before any
// candidate is known, and after a valid submission (which must survive every hostile one that follows).
// Then: valid candidates through probing, a proven direct path and a stale one can only ever set a direct peer's
// endpoint and keepalive, and give it exactly the two halves of its planned subnet (directAllowedIps).
// Each attempt is a case; one that gets through (or errors instead of a refusal) is an exposure.
// Summary: bench/results/torture-candidates.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.ts';
import { buildAdminApp } from '../../src/admin/app.ts';
import { Agent } from '../../src/agent/agent.ts';
import { MAX_CANDIDATES } from '../../src/agent/candidates.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import type { PeerCounters } from '../../src/agent/paths.ts';
import type { DesiredNetwork } from '../../src/agent/ports.ts';
import { State } from '../../src/agent/state.ts';
import { openStore } from '../../src/agent/store.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';
import { ZmeshError } from '../../src/errors.ts';
import type { Peer, Resource } from '../../src/plan/types.ts';
import { parseCidr } from '../../topology/cidr.ts';
import { directAllowedIps, PATH_PARAMS, routeOf } from '../../topology/paths.ts';
import { FakeDriver, part, planFor, signed, tenantKeys } from '../helpers/agent-fixtures.ts';
import { blueprint, identity, net } from '../helpers/fixtures.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const ROUTE_LIMIT = 256 * 1024;
const ME = 'h1';

/** The fake data plane with the optional direct-path methods: counters the test sets, setPeers recorded. */
class PathDriver extends FakeDriver {
  setPeersCalls: { networkId: string; peers: Peer[] }[] = [];
  /** By WireGuard public key. */
  counters = new Map<string, { rxBytes: number; latestHandshake: number; endpoint: string | null }>();
  async peerCounters(networkId: string): Promise<PeerCounters[] | null> {
    const d = this.current.get(networkId);
    if (!d) return null;
    return d.resource.peers.map((p) => ({ publicKey: p.publicKey, rxBytes: 0, latestHandshake: 0, endpoint: p.endpoint, ...this.counters.get(p.publicKey) }));
  }
  async setPeers(networkId: string, peers: Resource['peers']): Promise<string[]> {
    this.setPeersCalls.push({ networkId, peers: structuredClone(peers) });
    return [`set ${peers.length} peers of ${networkId}`];
  }
  async underlayAddresses(): Promise<string[]> {
    return ['192.168.1.10', '2001:db8:1::10'];
  }
}

// acme/shop: h1 (this node), h2, h3 hidden behind pa/pb. globex/web: h1 and g2 hidden. initech/ops: not here.
const acmeBp = blueprint([net({ nodes: ['pa', 'pb', 'h1', 'h2', 'h3'] })]);
const acmePlan = planFor(acmeBp, ['pa', 'pb', { id: 'h1' }, { id: 'h2' }, { id: 'h3' }]);
const globexBp = blueprint([net({ nodes: ['pa', 'h1', 'g2'], ipRange: '10.2.0.0/16' })], { tenant: 'globex', name: 'web' });
const globexPlan = planFor(globexBp, ['pa', { id: 'h1', reservedPorts: [51820] }, { id: 'g2' }]);
const initechBp = blueprint([net({ nodes: ['pa', 'x1', 'x2'], ipRange: '10.3.0.0/16' })], { tenant: 'initech', name: 'ops' });
const A = acmePlan.networks[0].id;
const G = globexPlan.networks[0].id;
const X = planFor(initechBp, ['pa', { id: 'x1' }, { id: 'x2' }]).networks[0].id;
const acmeMine = acmePlan.networks[0].resources.find((r) => r.node === ME)!;
const ACCESS = acmeMine.accessNode!;
const OTHER_PUBLIC = ['pa', 'pb'].find((n) => n !== ACCESS)!;

interface Case {
  round: string;
  attack: string;
  expect: 'refused' | 'accepted' | 'unchanged';
  got: string;
  detail?: string;
}

async function candidateBed() {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-candidates-'));
  const { db, versions } = openStore(dir);
  const state = new State(db);
  const driver = new PathDriver();
  const clock = { now: 1_700_000_000_000 };
  const config: AgentConfig = {
    nodeId: ME,
    identityKeyFile: join(dir, 'identity.key'),
    stateDir: dir,
    adminSocket: join(dir, 'admin.sock'),
    endpoints: [],
    wireguardBackend: 'userspace',
    reconcileIntervalMs: 30000,
    trustedTenants: Object.fromEntries(['acme', 'globex'].map((t) => [t, tenantKeys(t).publicKey.toString()])),
    logLevel: 'silent',
  };
  const agent = new Agent({ config, state, identity: new X25519Secret(identity(ME).privateKey), driver, log: createLogger({ level: 'silent' }), moduleVersions: versions, now: () => clock.now });
  const app = buildAdminApp({ agent });
  const readApp = buildAdminApp({ agent, readOnly: true });
  for (const [bp, plan] of [
    [acmeBp, acmePlan],
    [globexBp, globexPlan],
  ] as const) {
    const r = await app.inject({ method: 'POST', url: '/v1/blueprints', payload: { signed: signed(bp), part: part(plan, ME) } });
    assert.equal(r.statusCode, 200, r.body);
  }
  return {
    agent,
    state,
    driver,
    clock,
    app,
    readApp,
    async close() {
      await app.close();
      await readApp.close();
      await agent.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
type Bed = Awaited<ReturnType<typeof candidateBed>>;

/** The planned desired networks (from the stored parts), as the agent builds them. */
function planned(bed: Bed): DesiredNetwork[] {
  return bed.state.blueprints().flatMap((b) =>
    b.part.networks.map((n) => ({ tenant: b.tenant, blueprint: b.name, networkId: n.id, networkName: n.name, ipRange: n.ipRange, egress: n.egress, resource: n.resource })),
  );
}

/** What a path decision may change on a planned resource; empty when it stays within that. */
function pathOnlyDiff(plannedRes: Resource, peers: Peer[], candidatesOf: (node: string) => string[], effectiveRes?: Resource): string[] {
  const out: string[] = [];
  if (effectiveRes) {
    const { peers: _a, ...restP } = plannedRes;
    const { peers: _b, ...restE } = effectiveRes;
    if (JSON.stringify(restP) !== JSON.stringify(restE)) out.push(`resource fields changed: ${JSON.stringify(restE).slice(0, 200)}`);
  }
  if (peers.length !== plannedRes.peers.length) return [...out, `${peers.length} peers, planned ${plannedRes.peers.length}`];
  plannedRes.peers.forEach((p, i) => {
    const e = peers[i] as Peer & { forceEndpoint?: boolean };
    const at = `${plannedRes.node}→${p.node}`;
    if (e.node !== p.node || e.kind !== p.kind || e.publicKey !== p.publicKey || e.directSubnet !== p.directSubnet) out.push(`${at}: identity changed (${e.node} ${e.publicKey} ${e.directSubnet})`);
    if (p.directSubnet === undefined) {
      if (JSON.stringify(e) !== JSON.stringify(p)) out.push(`${at}: a relay/public peer changed: ${JSON.stringify(e)}`);
      return;
    }
    // Dual-stack: the IPv6 subnet's halves move with the IPv4 ones (in the same wg set).
    const halves = [...directAllowedIps(p.directSubnet), ...(p.directSubnet6 ? directAllowedIps(p.directSubnet6) : [])];
    if (!(e.allowedIps.length === 0 || JSON.stringify(e.allowedIps) === JSON.stringify(halves))) out.push(`${at}: allowed-ips ${e.allowedIps.join(',')}`);
    if (e.endpoint !== null && !candidatesOf(p.node).includes(e.endpoint)) out.push(`${at}: endpoint ${e.endpoint} is no candidate`);
    if (![null, PATH_PARAMS.probeKeepalive, PATH_PARAMS.directKeepalive].includes(e.persistentKeepalive)) out.push(`${at}: keepalive ${e.persistentKeepalive}`);
    const extra = Object.keys(e).filter((k) => !(k in p) && k !== 'forceEndpoint');
    if (extra.length) out.push(`${at}: extra fields ${extra.join(',')}`);
    if (e.forceEndpoint !== undefined && (e.forceEndpoint !== true || e.endpoint === null)) out.push(`${at}: forceEndpoint ${String(e.forceEndpoint)} with endpoint ${e.endpoint}`);
  });
  return out;
}

test('the candidate channel: hostile submissions are refused whole and change nothing', { timeout: 300_000 }, async () => {
  const bed = await candidateBed();
  const cases: Case[] = [];
  const record = (c: Case) => cases.push(c);
  const { agent, driver, app, readApp } = bed;
  const paths = agent.paths!;
  assert.ok(paths, 'the agent has direct paths (its driver reads counters)');
  const candidatesOf = (networkId: string) => (node: string) => paths.candidatesOf(networkId, node);

  // Every `wg set` and every apply must stay within what a path decision may change (checked at the end too).
  let checkedSetPeers = 0;
  const invariantProblems = (): string[] => {
    const out: string[] = [];
    const byId = new Map(planned(bed).map((d) => [d.networkId, d]));
    for (const call of driver.setPeersCalls.slice(checkedSetPeers)) {
      const d = byId.get(call.networkId);
      if (!d) out.push(`setPeers on unknown network ${call.networkId}`);
      else out.push(...pathOnlyDiff(d.resource, call.peers, candidatesOf(call.networkId)).map((p) => `setPeers: ${p}`));
    }
    checkedSetPeers = driver.setPeersCalls.length;
    const applied = driver.calls.at(-1) ?? [];
    for (const e of applied) {
      const d = byId.get(e.networkId);
      if (!d) out.push(`apply: unknown network ${e.networkId}`);
      else out.push(...pathOnlyDiff(d.resource, e.resource.peers, candidatesOf(e.networkId), e.resource).map((p) => `apply: ${p}`));
    }
    return out;
  };

  // A settled reading: apply, one path tick (it reads what was applied), apply again.
  const snapshot = async () => {
    await agent.reconcile('candidates-torture');
    await paths.tick();
    await agent.reconcile('candidates-torture');
    return {
      views: JSON.stringify(agent.pathViews()),
      effective: JSON.stringify(planned(bed).map((d) => paths.effective(d).resource)),
      applied: JSON.stringify(driver.calls.at(-1)),
      setPeers: driver.setPeersCalls.length,
    };
  };

  /**
   * One attack: over HTTP (expected status and code), then straight into the agent (E_CANDIDATES), then a path
   * tick and a reconcile; the candidates, the effective peers, the applied peers and setPeers must be as before.
   */
  async function attack(
    round: string,
    name: string,
    body: unknown,
    opts: { raw?: string; http?: [number, string]; direct?: boolean; readOnly?: boolean } = {},
  ): Promise<void> {
    const before = await snapshot();
    const got: string[] = [];
    let detail = '';
    const payload = opts.raw ?? JSON.stringify(body);
    const [wantStatus, wantCode] = opts.http ?? (Buffer.byteLength(payload) > ROUTE_LIMIT ? [413, 'E_TOO_LARGE'] : [400, 'E_CANDIDATES']);
    try {
      const res = await (opts.readOnly ? readApp : app).inject({ method: 'PUT', url: '/v1/candidates', headers: { 'content-type': 'application/json' }, payload });
      const err = res.json()?.error as { code: string; problems: { code: string }[] } | undefined;
      detail = `HTTP ${res.statusCode} ${err?.code ?? ''}`;
      if (res.statusCode !== wantStatus) got.push(`HTTP ${res.statusCode} (want ${wantStatus}): ${res.body.slice(0, 160)}`);
      else if (wantCode === 'E_CANDIDATES') {
        // One problem: its code; several: E_INVALID, each problem E_CANDIDATES.
        if (!err || !['E_CANDIDATES', 'E_INVALID'].includes(err.code) || !err.problems.length || err.problems.some((p) => p.code !== 'E_CANDIDATES')) got.push(`HTTP error ${JSON.stringify(err).slice(0, 200)}`);
        if (err && err.problems.length > 50) got.push(`${err.problems.length} problems sent back`);
      } else if (err?.code !== wantCode) got.push(`HTTP code ${err?.code} (want ${wantCode})`);
    } catch (e) {
      got.push(`HTTP threw ${(e as Error).message}`);
    }
    if (opts.direct !== false) {
      const value = opts.raw !== undefined ? JSON.parse(opts.raw) : body;
      try {
        agent.setCandidates(value);
        got.push('accepted by the agent');
      } catch (e) {
        if (!(e instanceof ZmeshError) || e.problems.some((p) => p.code !== 'E_CANDIDATES')) got.push(`agent threw ${(e as Error).message.slice(0, 160)}`);
        else detail += `; agent ${e.code} ×${e.problems.length}: ${e.problems[0].message.slice(0, 100)}`;
      }
    }
    const after = await snapshot();
    if (after.views !== before.views) got.push(`candidates changed: ${after.views.slice(0, 200)}`);
    if (after.effective !== before.effective) got.push('effective peers changed');
    if (after.applied !== before.applied) got.push('applied peers changed');
    if (after.setPeers !== before.setPeers) got.push(`${after.setPeers - before.setPeers} setPeers calls`);
    record({ round, attack: name, expect: 'refused', got: got.length ? got.join('; ') : 'refused', detail });
  }

  const one = (networkId: string, node: string, list: unknown) => ({ networks: { [networkId]: { [node]: list } } });
  const good = {
    networks: {
      [A]: { h2: ['198.51.100.7:40001', '192.168.1.20:51820'], h3: ['[2001:db8::3]:51822'] },
      [G]: { g2: ['198.51.100.9:40009'] },
    },
  };

  async function battery(round: string): Promise<void> {
    // Addresses WireGuard must never be pointed at.
    const endpoints: [string, unknown][] = [
      ['loopback', '127.0.0.1:51820'],
      ['loopback (end of 127/8)', '127.255.255.254:51820'],
      ['IPv6 loopback', '[::1]:51820'],
      ['unspecified', '0.0.0.0:51820'],
      ['this network (0/8)', '0.1.2.3:51820'],
      ['IPv6 unspecified', '[::]:51820'],
      ['multicast', '224.0.0.1:51820'],
      ['multicast (SSDP)', '239.255.255.250:1900'],
      ['reserved (240/4)', '240.0.0.1:51820'],
      ['broadcast', '255.255.255.255:51820'],
      ['cloud metadata (link-local)', '169.254.169.254:80'],
      ['link-local', '169.254.0.1:51820'],
      ['IPv6 link-local', '[fe80::1]:51820'],
      ['IPv6 link-local (febf::)', '[febf::1]:51820'],
      ['IPv6 link-local with a zone', '[fe80::1%eth0]:51820'],
      ['IPv6 multicast', '[ff02::1]:51820'],
      ['v4-mapped', '[::ffff:1.2.3.4]:51820'],
      ['v4-mapped loopback', '[::ffff:127.0.0.1]:51820'],
      ['v4-mapped metadata', '[::ffff:169.254.169.254]:80'],
      ['v4-compatible loopback (::/96)', '[::7f00:1]:51820'],
      ['v4-compatible metadata (::/96)', '[::a9fe:a9fe]:80'],
      ["inside the network's range (own subnet)", '10.1.2.3:51820'],
      ["inside the network's range (h2's subnet)", '10.1.3.5:51820'],
      ["inside the network's range (its last address)", '10.1.255.255:51820'],
      // Not canonical "ip:port" / "[ipv6]:port".
      ['port with a leading zero, 6 digits', '1.2.3.4:051820'],
      ['port with a leading zero', '1.2.3.4:05182'],
      ['octet with a leading zero', '01.2.3.4:1'],
      ['port 0', '1.2.3.4:0'],
      ['port 65536', '1.2.3.4:65536'],
      ['port 99999', '1.2.3.4:99999'],
      ['port +1', '1.2.3.4:+1'],
      ['port 1e3', '1.2.3.4:1e3'],
      ['port in full-width digits', '1.2.3.4:５１８２０'],
      ['no port', '1.2.3.4'],
      ['empty port', '1.2.3.4:'],
      ['no host', ':51820'],
      ['bare IPv6', '::1'],
      ['bracketed IPv6 without port', '[::1]'],
      ['IPv6 without brackets', '2001:db8::1:51820'],
      ['IPv6 not compressed', '[2001:db8:0:0:0:0:0:1]:51820'],
      ['IPv6 upper case', '[2001:DB8::1]:51820'],
      ['IPv4 in brackets', '[1.2.3.4]:51820'],
      ['hostname', 'example.com:1'],
      ['localhost', 'localhost:51820'],
      ['metadata hostname', 'metadata.google.internal:80'],
      ['short IPv4', '127.1:51820'],
      ['hex IPv4', '0x7f.0.0.1:51820'],
      ['integer IPv4', '2130706433:51820'],
      ['leading space', ' 1.2.3.4:51820'],
      ['trailing space', '1.2.3.4:51820 '],
      ['trailing newline', '1.2.3.4:51820\n'],
      ['NUL', '1.2.3.4:51820\u0000'],
      ['two endpoints in one', '1.2.3.4:51820,5.6.7.8:1'],
      ['empty string', ''],
      ['65 characters', `[2001:db8::1]:1${' '.repeat(50)}`],
      ['10,000 characters', '1'.repeat(10_000)],
      ['a number', 16909060],
      ['null', null],
      ['true', true],
      ['an object', { ip: '1.2.3.4', port: 51820 }],
      ['a nested list', ['1.2.3.4:51820']],
    ];
    for (const [what, ep] of endpoints) await attack(round, `endpoint: ${what} ${JSON.stringify(ep).slice(0, 40)}`, one(A, 'h2', [ep]));

    // Who and where: only this node's direct peers, only in networks where it is hidden.
    await attack(round, 'an unknown network id', one('zzzzzzzzzz', 'h2', ['198.51.100.1:1']));
    await attack(round, "another tenant's network id (initech/ops, not on this node)", one(X, 'x2', ['198.51.100.1:1']));
    await attack(round, "acme's h2 under globex's network id", one(G, 'h2', ['198.51.100.1:1']));
    await attack(round, "globex's g2 under acme's network id", one(A, 'g2', ['198.51.100.1:1']));
    await attack(round, `the access node ${ACCESS}`, one(A, ACCESS, ['198.51.100.1:1']));
    await attack(round, `a public node ${OTHER_PUBLIC}`, one(A, OTHER_PUBLIC, ['198.51.100.1:1']));
    await attack(round, 'the node itself', one(A, ME, ['198.51.100.1:1']));
    await attack(round, 'an unknown node', one(A, 'ghost', ['198.51.100.1:1']));
    await attack(round, 'an empty node name', one(A, '', ['198.51.100.1:1']));
    await attack(round, 'a 10,000-character node name', one(A, 'n'.repeat(10_000), ['198.51.100.1:1']));
    await attack(round, 'an empty network id', one('', 'h2', ['198.51.100.1:1']));
    await attack(round, 'node "constructor"', one(A, 'constructor', ['198.51.100.1:1']));
    await attack(round, 'node "hasOwnProperty"', one(A, 'hasOwnProperty', ['198.51.100.1:1']));
    await attack(round, 'network "toString"', one('toString', 'h2', ['198.51.100.1:1']));

    // Volume.
    const valid = (i: number) => `198.51.${100 + Math.floor(i / 250)}.${(i % 250) + 1}:${40000 + (i % 1000)}`;
    await attack(round, `${MAX_CANDIDATES + 1} candidates for one peer`, one(A, 'h2', Array.from({ length: MAX_CANDIDATES + 1 }, (_, i) => valid(i))));
    await attack(round, `${MAX_CANDIDATES + 1} copies of one candidate`, one(A, 'h2', Array.from({ length: MAX_CANDIDATES + 1 }, () => valid(0))));
    await attack(round, '10,000 candidates for one peer', one(A, 'h2', Array.from({ length: 10_000 }, (_, i) => valid(i))));
    await attack(round, '10,000 peers', { networks: { [A]: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`p${i}`, []])) } });
    await attack(round, '10,000 peers with a candidate each (over the route limit)', { networks: { [A]: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`peer-${i}`, [valid(i)]])) } });
    await attack(round, '10,000 peers, h2 among them with a valid candidate', { networks: { [A]: { h2: [valid(1)], ...Object.fromEntries(Array.from({ length: 9_999 }, (_, i) => [`p${i}`, []])) } } });
    await attack(round, '10,000 networks', { networks: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`n${i}`, {}])) });
    const deep = (n: number): unknown => (n === 0 ? '1.2.3.4:1' : [deep(n - 1)]);
    await attack(round, 'a list nested 1,000 deep', one(A, 'h2', deep(1000)));

    // Shapes.
    await attack(round, 'an array body', [good], { http: [400, 'E_REQUEST'] });
    await attack(round, 'a null body', null, { http: [400, 'E_REQUEST'] });
    await attack(round, 'a string body', '198.51.100.1:1', { http: [400, 'E_REQUEST'] });
    await attack(round, 'an empty object', {});
    await attack(round, 'an extra top-level key', { ...good, extra: 1 });
    await attack(round, 'networks: null', { networks: null });
    await attack(round, 'networks: a list', { networks: [good.networks] });
    await attack(round, 'networks: a string', { networks: '198.51.100.1:1' });
    await attack(round, 'a network: a list of node names', { networks: { [A]: ['h2'] } });
    await attack(round, 'a network: a string', { networks: { [A]: 'h2' } });
    await attack(round, 'a network: null', { networks: { [A]: null } });
    await attack(round, 'a peer: a string instead of a list', one(A, 'h2', '198.51.100.1:1'));
    await attack(round, 'a peer: an object with index keys', one(A, 'h2', { 0: '198.51.100.1:1' }));
    await attack(round, 'a peer: a list of objects', one(A, 'h2', [{ endpoint: '198.51.100.1:1' }]));
    await attack(round, 'a peer: null', one(A, 'h2', null));
    await attack(round, 'a peer: an object with keys and subnets', one(A, 'h2', { endpoint: '198.51.100.1:1', publicKey: acmeMine.publicKey, allowedIps: ['0.0.0.0/0'], directSubnet: '10.1.0.0/16' }));
    const okJson = JSON.stringify(one(A, 'h2', ['198.51.100.1:1'])).slice(1, -1);
    await attack(round, '"__proto__" at the top', null, { raw: `{"__proto__":{"networks":{"${A}":{"h2":["198.51.100.1:1"]}}},${okJson}}`, http: [400, 'E_REQUEST'] });
    await attack(round, '"__proto__" as a network', null, { raw: `{"networks":{"__proto__":{"h2":["198.51.100.1:1"]}}}`, http: [400, 'E_REQUEST'] });
    await attack(round, '"__proto__" as a node', null, { raw: `{"networks":{"${A}":{"__proto__":["198.51.100.1:1"]}}}`, http: [400, 'E_REQUEST'] });
    await attack(round, '"constructor.prototype" at the top', null, { raw: `{${okJson},"constructor":{"prototype":{"polluted":true}}}`, http: [400, 'E_REQUEST'] });
    await attack(round, '"constructor.prototype" as a node', null, { raw: `{"networks":{"${A}":{"constructor":{"prototype":{"polluted":true}}}}}`, http: [400, 'E_REQUEST'] });
    await attack(round, 'a network id with a path separator', one(`${A}/h2`, 'h2', ['198.51.100.1:1']));

    // All or nothing: one bad entry among good ones.
    await attack(round, 'one loopback among good candidates', { networks: { ...good.networks, [A]: { h2: ['198.51.100.7:40001', '127.0.0.1:51820'], h3: ['[2001:db8::3]:51822'] } } });
    await attack(round, 'good candidates, one unknown node', { networks: { ...good.networks, [A]: { ...good.networks[A], ghost: ['198.51.100.1:1'] } } });
    await attack(round, 'good candidates, one foreign network', { networks: { ...good.networks, [X]: { x2: ['198.51.100.1:1'] } } });
    await attack(round, 'good candidates, one too many for g2', { networks: { ...good.networks, [G]: { g2: Array.from({ length: MAX_CANDIDATES + 1 }, (_, i) => valid(i)) } } });
    await attack(round, 'good candidates, one in the range of globex', { networks: { ...good.networks, [G]: { g2: ['198.51.100.9:40009', '10.2.1.1:51820'] } } });

    // Transport: over the route's limit (otherwise valid), and the read-only socket.
    await attack(round, `a valid body padded over ${ROUTE_LIMIT / 1024} KiB`, null, { raw: JSON.stringify(good) + ' '.repeat(ROUTE_LIMIT), http: [413, 'E_TOO_LARGE'], direct: false });
    await attack(round, 'PUT from the read-only socket (a valid body)', good, { readOnly: true, http: [403, 'E_READ_ONLY'], direct: false });
    const report = await readApp.inject({ method: 'GET', url: '/v1/candidates' });
    record({ round, attack: 'GET /v1/candidates (underlay addresses) from the read-only socket', expect: 'refused', got: report.statusCode === 403 && report.json().error.code === 'E_READ_ONLY' ? 'refused' : `HTTP ${report.statusCode}: ${report.body.slice(0, 120)}`, detail: `HTTP ${report.statusCode}` });
  }

  // The checker itself catches what it must (a key, a relay peer, allowed-ips, an endpoint that is no candidate).
  const mine = planned(bed).find((d) => d.networkId === A)!.resource;
  const none = () => [] as string[];
  const tamper = (i: number, over: Partial<Peer>) => mine.peers.map((p, j) => (j === i ? { ...p, ...over } : p));
  const directIdx = mine.peers.findIndex((p) => p.directSubnet !== undefined);
  const relayIdx = mine.peers.findIndex((p) => p.directSubnet === undefined);
  assert.deepEqual(pathOnlyDiff(mine, mine.peers, none, mine), []);
  for (const bad of [
    tamper(directIdx, { publicKey: mine.publicKey }),
    tamper(directIdx, { allowedIps: ['0.0.0.0/0'] }),
    tamper(directIdx, { allowedIps: [mine.peers[directIdx].directSubnet!] }),
    tamper(directIdx, { directSubnet: mine.subnet }),
    tamper(directIdx, { endpoint: '198.51.100.1:1' }),
    tamper(relayIdx, { endpoint: '198.51.100.1:1' }),
    tamper(relayIdx, { allowedIps: [] }),
  ]) {
    assert.notDeepEqual(pathOnlyDiff(mine, bad, none), [], JSON.stringify(bad));
  }
  assert.notDeepEqual(pathOnlyDiff(mine, mine.peers, none, { ...mine, subnet: '10.1.9.0/24' }), []);

  try {
    // ---- round 1: no candidate known yet ----
    const empty = agent.pathViews();
    assert.deepEqual(
      empty.map((v) => [v.networkId, v.node, v.path, v.candidates]).sort(),
      [
        [A, 'h2', 'relay', []],
        [A, 'h3', 'relay', []],
        [G, 'g2', 'relay', []],
      ].sort(),
    );
    await battery('no candidates yet');
    record({ round: 'no candidates yet', attack: 'no `wg set` while no candidate is known', expect: 'unchanged', got: driver.setPeersCalls.length === 0 ? 'unchanged' : `${driver.setPeersCalls.length} setPeers calls` });

    // ---- a valid submission is accepted and shows in GET /v1/paths ----
    const ok = await app.inject({ method: 'PUT', url: '/v1/candidates', payload: good });
    const shown = (await app.inject({ url: '/v1/paths' })).json().paths as { networkId: string; node: string; candidates: string[] }[];
    const got = Object.fromEntries(shown.map((v) => [`${v.networkId}/${v.node}`, v.candidates]));
    const want = { [`${A}/h2`]: good.networks[A].h2, [`${A}/h3`]: good.networks[A].h3, [`${G}/g2`]: good.networks[G].g2 };
    record({ round: 'valid', attack: 'a valid submission', expect: 'accepted', got: ok.statusCode === 200 && JSON.stringify(got) === JSON.stringify(want) ? 'accepted' : `HTTP ${ok.statusCode} ${ok.body.slice(0, 120)}; shows ${JSON.stringify(got)}`, detail: ok.body });
    assert.deepEqual(ok.json(), { networks: 2, peers: 3 });
    await paths.tick();
    const probing = agent.pathViews();
    assert.ok(probing.every((v) => v.probing), JSON.stringify(probing));
    assert.equal(driver.setPeersCalls.length, 2, 'one `wg set` per network with new candidates');
    const inv1 = invariantProblems();
    record({ round: 'valid', attack: 'probing valid candidates changes only endpoint/keepalive of direct peers', expect: 'unchanged', got: inv1.length ? inv1.join('; ') : 'unchanged' });

    // ---- round 2: the same attacks with good candidates in place (they must survive) ----
    await battery('after a valid submission');
    const kept = agent.pathViews();
    record({
      round: 'after a valid submission',
      attack: 'the good candidates survive every hostile submission',
      expect: 'unchanged',
      got: JSON.stringify(Object.fromEntries(kept.map((v) => [`${v.networkId}/${v.node}`, v.candidates]))) === JSON.stringify(want) && kept.every((v) => v.probing) ? 'unchanged' : JSON.stringify(kept),
    });
    const inv2 = invariantProblems();
    record({ round: 'after a valid submission', attack: 'every `wg set` and apply during the attacks', expect: 'unchanged', got: inv2.length ? inv2.join('; ') : 'unchanged' });

    // ---- a proven direct path: h2's subnet as two halves on h2's peer, nothing else moves ----
    const h2Key = acmeMine.peers.find((p) => p.node === 'h2')!.publicKey;
    const h2Subnet = acmeMine.peers.find((p) => p.node === 'h2')!.directSubnet!;
    const accessKey = acmeMine.peers.find((p) => p.node === ACCESS)!.publicKey;
    const h2Host = parseCidr(h2Subnet)!.base + 7;
    const routeToH2 = () => routeOf(h2Host, driver.calls.at(-1)!.find((d) => d.networkId === A)!.resource.peers);
    bed.clock.now += 100;
    driver.counters.set(h2Key, { rxBytes: 148, latestHandshake: Math.floor(bed.clock.now / 1000), endpoint: '198.51.100.7:40001' });
    await paths.tick();
    bed.clock.now += PATH_PARAMS.proofGapMs + 100;
    driver.counters.set(h2Key, { rxBytes: 296, latestHandshake: Math.floor(bed.clock.now / 1000), endpoint: '198.51.100.7:40001' });
    await paths.tick();
    await agent.reconcile('candidates-torture');
    const h2View = agent.pathViews().find((v) => v.networkId === A && v.node === 'h2')!;
    assert.equal(h2View.path, 'direct', JSON.stringify(h2View));
    const lastA = driver.setPeersCalls.filter((c) => c.networkId === A).at(-1)!;
    const h2Subnet6 = acmeMine.peers.find((p) => p.node === 'h2')!.directSubnet6;
    assert.deepEqual(lastA.peers.find((p) => p.node === 'h2')!.allowedIps, [...directAllowedIps(h2Subnet), ...(h2Subnet6 ? directAllowedIps(h2Subnet6) : [])]);
    const inv3 = invariantProblems();
    record({ round: 'direct', attack: 'a proven direct path takes exactly the halves of the planned subnet', expect: 'unchanged', got: inv3.length ? inv3.join('; ') : routeToH2() === h2Key ? 'unchanged' : `h2's subnet routes to ${routeToH2()}` });

    // A hostile submission now: refused, the direct path and the candidates stay.
    await attack('direct', 'loopback for h2 while its direct path is up', one(A, 'h2', ['127.0.0.1:51820']));
    await attack('direct', 'a foreign network while a direct path is up', one(X, 'x2', ['198.51.100.1:1']));
    assert.equal(agent.pathViews().find((v) => v.networkId === A && v.node === 'h2')!.path, 'direct');

    // Stale: no packet for STALE, back to the relay: the halves come off, h2's subnet goes back to the access node.
    bed.clock.now += PATH_PARAMS.staleMs + 100;
    await paths.tick();
    await agent.reconcile('candidates-torture');
    const inv4 = invariantProblems();
    const stale = agent.pathViews().find((v) => v.networkId === A && v.node === 'h2')!;
    record({
      round: 'direct',
      attack: 'a stale direct path hands the subnet back to the relay',
      expect: 'unchanged',
      got: inv4.length ? inv4.join('; ') : stale.path === 'relay' && routeToH2() === accessKey ? 'unchanged' : `${stale.path}; routes to ${routeToH2()}`,
    });

    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  } finally {
    await bed.close();
  }
  // Written only when every attack ran (a run that broke off leaves the part stale for the summary).
  const exposures = cases.filter((c) => c.got !== c.expect).map((c) => `${c.round}: ${c.attack} → ${c.got}`);
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  writeFileSync(`${ROOT}bench/results/torture-candidates.json`, JSON.stringify({ cases: cases.length, exposures, detail: cases }, null, 2) + '\n');
  assert.deepEqual(exposures, []);
  assert.ok(cases.length >= 200, `${cases.length} cases`);
});
