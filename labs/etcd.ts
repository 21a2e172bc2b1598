// The lab's etcd control plane (spec `controlPlane: etcd`): a real 3-member etcd cluster and a controller
// (`zmesh controller --etcd …`), all in the lab's internet namespace on its gateway address 203.0.113.1 (distinct
// ports), data dirs under <lab>/etcd/. Deployed like a real one (docs/control-plane.md, "Trust"): TLS for clients
// and peers with client certificates from the lab's CA (<lab>/etcd/pki/), etcd auth on, the operator as CN root,
// the controller as zmesh-controller, each agent as zmesh-node-<id> with a role for its own keys only; every
// node is enrolled (its identity key pinned) before the controller starts. Public nodes reach the members on the internet bridge, hidden nodes
// through their NAT. Tenants and signed blueprints go into etcd through ControlOps (src/control/ops.ts), run by
// this module itself as a helper inside the internet namespace (the host's namespace has no route to the lab).
// Processes are recorded by PID and start time in <lab>/etcd/state.json and stopped by PID only.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { call } from '../src/admin/client.ts';
import { Key, clampX25519, x25519PublicKey } from '../src/crypto/keys.ts';
import { ZmeshError } from '../src/errors.ts';
import type { Plan } from '../src/plan/index.ts';
import { wgQuickConfig } from '../src/plan/planner.ts';
import { agentAlive, ensureIdentity, zmeshArgv } from './agents.ts';
import { Pki, type CertFiles } from './pki.ts';
import { CONTROLLER_USER, nodeRole, ROOT_USER } from '../src/control/rbac.ts';
import { signerOf } from '../src/control/signed.ts';
import type { BlueprintPlan, PushResult } from './control.ts';
import { INTERNET_GW, type Layout } from './layout.ts';
import type { LabSpec } from './spec.ts';
import { nodePaths, type LabState } from './state.ts';
import { alive, inNs, signal, sleep, spawnDetached, waitGone, writePrivateFile, type ProcRef } from './sys.ts';

export const ETCD_MEMBERS = 3;
/** Agents' lease TTL and the controller's grace in a lab: a dead access node is re-planned after ≈ 5 + 1 s. */
export const LAB_LEASE_TTL = '5s';
export const LAB_GRACE = '1s';
export const LAB_HOLD_DOWN = '15m';

const clientPort = (i: number) => 2379 + 2 * i;
const peerPort = (i: number) => 2380 + 2 * i;
export const memberUrl = (i: number) => `https://${INTERNET_GW}:${clientPort(i)}`;
const peerUrl = (i: number) => `https://${INTERNET_GW}:${peerPort(i)}`;
export const etcdUrls = () => Array.from({ length: ETCD_MEMBERS }, (_, i) => memberUrl(i));

export interface ControlPlaneState {
  token: string;
  members: (ProcRef | null)[];
  controller: ProcRef | null;
}

const cpDir = (dir: string) => join(dir, 'etcd');

/** The lab's CA and certificates (made once, kept while the lab exists). */
export function labPki(dir: string): Pki {
  return new Pki(join(cpDir(dir), 'pki'), 'ca', 30);
}

/** Client TLS files as etcd user `cn` (root, zmesh-controller, zmesh-node-<id>). */
export function labCredentials(dir: string, cn: string): { cacert: string; cert: string; key: string } {
  const pki = labPki(dir);
  const f = pki.leaf(cn);
  return { cacert: pki.ca, cert: f.cert, key: f.key };
}

/** The lab operator's and controller's ed25519 secrets (made once): enrollments and parts are signed. */
function labSigningKey(dir: string, who: 'operator' | 'controller'): { file: string; secret: Key; publicKey: string } {
  const file = join(cpDir(dir), `${who}.key`);
  if (!existsSync(file)) writePrivateFile(file, Key.fromBytes(new Uint8Array(randomBytes(32))).toString() + '\n');
  const secret = Key.parse(readFileSync(file, 'utf8').trim());
  return { file, secret, publicKey: signerOf(secret) };
}

function serverCert(dir: string): CertFiles {
  return labPki(dir).leaf('server', { cn: 'etcd', san: [INTERNET_GW, '127.0.0.1'], usage: 'both' });
}
const cpFile = (dir: string) => join(cpDir(dir), 'state.json');

export function readCp(dir: string): ControlPlaneState | null {
  try {
    return JSON.parse(readFileSync(cpFile(dir), 'utf8')) as ControlPlaneState;
  } catch {
    return null;
  }
}

function writeCp(dir: string, s: ControlPlaneState): void {
  mkdirSync(cpDir(dir), { recursive: true, mode: 0o700 });
  writeFileSync(cpFile(dir), JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
}

function healthy(layout: Layout, dir: string, i: number): boolean {
  const c = labCredentials(dir, ROOT_USER);
  const argv = inNs(layout.internetNs, ['etcdctl', '--endpoints', memberUrl(i), '--cacert', c.cacert, '--cert', c.cert, '--key', c.key, '--dial-timeout', '1s', '--command-timeout', '2s', 'endpoint', 'health']);
  return spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 5000 }).status === 0;
}

/** Starts member i (again, with its data dir) in the internet namespace; does not wait. */
export function startMember(layout: Layout, dir: string, i: number): void {
  const s = readCp(dir) ?? { token: `zl-${layout.internetNs}-${randomBytes(4).toString('hex')}`, members: [], controller: null };
  const data = join(cpDir(dir), `m${i}`);
  const fresh = !existsSync(join(data, 'member'));
  const cluster = Array.from({ length: ETCD_MEMBERS }, (_, j) => `m${j}=${peerUrl(j)}`).join(',');
  const server = serverCert(dir);
  const ca = labPki(dir).ca;
  const argv = inNs(layout.internetNs, [
    process.env.ZMESH_ETCD_BIN ?? '/usr/bin/etcd',
    '--name', `m${i}`,
    '--data-dir', data,
    '--listen-client-urls', memberUrl(i),
    '--advertise-client-urls', memberUrl(i),
    '--listen-peer-urls', peerUrl(i),
    '--initial-advertise-peer-urls', peerUrl(i),
    '--cert-file', server.cert, '--key-file', server.key, '--client-cert-auth', '--trusted-ca-file', ca,
    '--peer-cert-file', server.cert, '--peer-key-file', server.key, '--peer-client-cert-auth', '--peer-trusted-ca-file', ca,
    '--initial-cluster', cluster,
    '--initial-cluster-token', s.token,
    '--initial-cluster-state', fresh ? 'new' : 'existing',
    '--heartbeat-interval', '100',
    '--election-timeout', '1000',
    '--max-txn-ops', '1024',
    // As docs/control-plane.md asks of every deployment: etcd keeps no unbounded history.
    '--auto-compaction-mode', 'revision',
    '--auto-compaction-retention', '10000',
    '--log-level', 'error',
    '--logger', 'zap',
  ]);
  mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  s.members[i] = spawnDetached(argv, { logFile: join(dir, 'logs', `etcd-m${i}.log`) });
  writeCp(dir, s);
}

export function memberAlive(dir: string, i: number): boolean {
  return alive(readCp(dir)?.members[i]);
}

/** SIGKILL member i by PID (a crash). */
export async function killMember(dir: string, i: number): Promise<void> {
  const s = readCp(dir);
  const p = s?.members[i];
  if (s && p && alive(p)) {
    signal(p, 'SIGKILL');
    await waitGone(p, 5000);
  }
  if (s) {
    s.members[i] = null;
    writeCp(dir, s);
  }
}

export function startController(layout: Layout, dir: string): void {
  const s = readCp(dir)!;
  const z = zmeshArgv();
  const c = labCredentials(dir, CONTROLLER_USER);
  const signing = ['--signing-key', labSigningKey(dir, 'controller').file, '--operator-key', labSigningKey(dir, 'operator').publicKey];
  const argv = inNs(layout.internetNs, [...z.argv, 'controller', '--etcd', etcdUrls().join(','), '--cacert', c.cacert, '--cert', c.cert, '--key', c.key, ...signing, '--grace', LAB_GRACE, '--hold-down', LAB_HOLD_DOWN, '--max-txn-ops', '1024']);
  s.controller = spawnDetached(argv, { logFile: join(dir, 'logs', 'controller.log'), cwd: z.cwd });
  writeCp(dir, s);
}

export function controllerAlive(dir: string): boolean {
  return alive(readCp(dir)?.controller);
}

/** Stops the controller by PID (kill: SIGKILL, a crash). */
export async function stopController(dir: string, opts: { kill?: boolean } = {}): Promise<void> {
  const s = readCp(dir);
  const p = s?.controller;
  if (s && p && alive(p)) {
    signal(p, opts.kill ? 'SIGKILL' : 'SIGTERM');
    if (!(await waitGone(p, 8000))) {
      signal(p, 'SIGKILL');
      await waitGone(p, 3000);
    }
  }
  if (s) {
    s.controller = null;
    writeCp(dir, s);
  }
}

/**
 * Every member running and healthy, auth on and every lab node enrolled (its identity key pinned, its etcd user
 * and role made), and the controller running (bounded waits).
 */
export async function ensureControlPlane(layout: Layout, dir: string): Promise<void> {
  for (let i = 0; i < ETCD_MEMBERS; i++) if (!memberAlive(dir, i)) startMember(layout, dir, i);
  for (let i = 0; i < ETCD_MEMBERS; i++) {
    let ok = false;
    for (let k = 0; k < 100 && !ok; k++) {
      ok = healthy(layout, dir, i);
      if (!ok) await sleep(200);
    }
    if (!ok) throw new ZmeshError('E_LAB_ETCD', `etcd member m${i} did not become healthy`, { kind: 'retryable', hint: `see ${join(dir, 'logs', `etcd-m${i}.log`)}` });
  }
  // The operator's part: auth on (once), then every node approved with the key the lab made for it.
  const nodes = Object.fromEntries(layout.nodes.map((n) => [n.name, ensureIdentity(nodePaths(dir, n.name).identity)]));
  helper(layout, dir, 'enroll', { nodes, operatorKey: labSigningKey(dir, 'operator').secret.toString() });
  if (!controllerAlive(dir)) startController(layout, dir);
}

/** Stops the members and the controller by PID and removes their data (lab down). */
export async function stopControlPlane(dir: string): Promise<void> {
  const s = readCp(dir);
  if (!s) return;
  await stopController(dir, { kill: true });
  for (let i = 0; i < s.members.length; i++) await killMember(dir, i);
  for (let i = 0; i < ETCD_MEMBERS; i++) rmSync(join(cpDir(dir), `m${i}`), { recursive: true, force: true });
}

export function controlPlaneStatus(dir: string): { kind: 'etcd'; urls: string[]; members: { name: string; url: string; pid: number | null }[]; controller: number | null } | null {
  const s = readCp(dir);
  if (!s) return null;
  return {
    kind: 'etcd',
    urls: etcdUrls(),
    members: etcdUrls().map((url, i) => ({ name: `m${i}`, url, pid: alive(s.members[i]) ? s.members[i]!.pid : null })),
    controller: alive(s.controller) ? s.controller!.pid : null,
  };
}

/** The agent config's etcd section: the node's own client certificate (CN zmesh-node-<id>). */
export function agentEtcdSection(dir: string, node: string): { endpoints: string[]; leaseTtl: string; cacert: string; cert: string; key: string; controllerKeys: string[] } {
  return { endpoints: etcdUrls(), leaseTtl: LAB_LEASE_TTL, ...labCredentials(dir, nodeRole(node)), controllerKeys: [labSigningKey(dir, 'controller').publicKey] };
}

const devKeyFile = (dir: string, tenant: string, bp: string, net: string, dev: string) => join(dir, 'device-keys', `${tenant}--${bp}--${net}--${dev}.key`);

/**
 * Access devices bring their own key in etcd mode (E_DEVICE_KEY_REQUIRED): the lab makes each device's key pair
 * (private key 0600 in <lab>/device-keys/) and puts the public key into the spec's blueprints before signing.
 */
export function ensureDeviceKeys(spec: LabSpec, dir: string): void {
  for (const t of spec.tenants) {
    for (const { blueprint } of t.blueprints) {
      for (const n of blueprint.networks) {
        for (const d of n.access) {
          if (d.publicKey) continue;
          const f = devKeyFile(dir, t.name, blueprint.name, n.name, d.name);
          if (!existsSync(f)) writePrivateFile(f, clampX25519(randomBytes(32)).toString() + '\n');
          d.publicKey = x25519PublicKey(Key.parse(readFileSync(f, 'utf8').trim())).toString();
        }
      }
    }
  }
}

/** The wg-quick config of a device from the etcd plan and the lab-made private key (as the planner writes it). */
export function deviceConfig(layout: Layout, dir: string, plan: Plan, net: Plan['networks'][number], dev: Plan['networks'][number]['access'][number]): string | undefined {
  const f = devKeyFile(dir, plan.tenant, plan.blueprint, net.name, dev.name);
  if (!existsSync(f)) return undefined;
  const via = net.resources.find((r) => r.node === dev.via);
  const host = layout.nodes.find((n) => n.name === dev.via);
  if (!via || !host || host.attach.kind !== 'internet') return undefined;
  // The planner's own config (src/plan/planner.ts): both families on a dual-stack network, the resolver as DNS.
  return wgQuickConfig({
    name: dev.name,
    privateKey: readFileSync(f, 'utf8').trim(),
    address: dev.address,
    address6: dev.address6 ?? null,
    peerKey: via.publicKey,
    endpoint: `${host.address}:${via.listenPort}`,
    range: net.ipRange,
    range6: net.ipv6Range ?? null,
    dns: via.gateway6 !== undefined ? [via.gateway, via.gateway6] : [via.gateway],
    network: net.name,
    context: `${plan.tenant}/${plan.blueprint} network ${net.name}; lab-made key`,
  });
}

interface ReadOut {
  plans: Record<string, Plan>;
  submitted: Record<string, number | null>;
  heads: Record<string, Record<string, number>>;
  members: Record<string, string>;
  /** Nodes with a registration signed by their pinned key now (their lease is alive). */
  registered: string[];
  /** The controller's last round as it reported it (n, reason, at in ms since the epoch), or null. */
  round: { n: number; reason: string; at: number } | null;
}

/** Runs this module's helper in the internet namespace (it reaches the members), as the operator (CN root). */
function helper(layout: Layout, dir: string, cmd: 'sync' | 'read' | 'enroll', input?: unknown): unknown {
  const c = labCredentials(dir, ROOT_USER);
  const self = fileURLToPath(import.meta.url);
  const argv = inNs(layout.internetNs, [process.execPath, ...(self.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : []), self, cmd]);
  const r = spawnSync(argv[0], argv.slice(1), {
    encoding: 'utf8',
    input: input === undefined ? '' : JSON.stringify(input),
    env: { ...process.env, ZMESH_ETCD: etcdUrls().join(','), ZMESH_ETCD_CACERT: c.cacert, ZMESH_ETCD_CERT: c.cert, ZMESH_ETCD_KEY: c.key },
    timeout: 60000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    throw new ZmeshError('E_LAB_ETCD', `etcd helper ${cmd} failed: ${(r.stderr || r.stdout || String(r.error ?? '')).trim().split('\n').slice(-3).join(' | ').slice(0, 600)}`, { kind: 'retryable' });
  }
  return JSON.parse(r.stdout) as unknown;
}

export function readEtcd(layout: Layout, dir: string): ReadOut {
  return helper(layout, dir, 'read') as ReadOut;
}

/** Tenants and signed envelopes into etcd (ControlOps); blueprints in etcd that the lab no longer has are removed. */
export function submitToEtcd(layout: Layout, dir: string, tenants: Record<string, string>, plans: BlueprintPlan[]): void {
  helper(layout, dir, 'sync', { tenants, envelopes: plans.map((p) => p.signed) });
}

/**
 * Waits (bounded) until the controller planned every submitted version and each live node's agent applied
 * its part's generation (asked through its admin socket); then writes the etcd plans over the lab's plan
 * files (with device wg-quick configs), so the matrix, status and graph read what the controller planned.
 */
export async function awaitEtcdPlans(
  layout: Layout,
  dir: string,
  plans: BlueprintPlan[],
  opts: { timeoutMs?: number; skipNodes?: Set<string>; say?: (l: string) => void; state?: LabState } = {},
): Promise<BlueprintPlan[]> {
  const end = Date.now() + (opts.timeoutMs ?? 90000);
  let last = '';
  for (let round = 0; round < 500 && Date.now() < end; round++) {
    const r = readEtcd(layout, dir);
    const pending: string[] = [];
    // Every node of the lab (but those cut off on purpose) must be a live member: a node whose agent never
    // registered is left out of the controller's plans, and a matrix of those plans alone would be green without it.
    const st = opts.state;
    if (st) {
      for (const n of layout.nodes) {
        if (opts.skipNodes?.has(n.name) || st.faults[n.name]?.cut) continue;
        if (!agentAlive(st, n.name)) {
          const log = nodePaths(dir, n.name).log;
          const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-2).join(' | ').slice(-300) : '';
          throw new ZmeshError('E_LAB_ETCD', `${n.name}: its agent exited while the etcd control plane converged: ${tail}`, { kind: 'retryable', hint: `see ${log}` });
        }
        if (r.members[n.name] !== 'live') pending.push(`${n.name}: not a live member yet`);
      }
    }
    for (const p of plans) {
      const ep = r.plans[p.key];
      if (!ep || ep.version < p.signed.blueprint.version) pending.push(`${p.key}: not planned yet`);
    }
    if (!pending.length) {
      for (const [node, heads] of Object.entries(r.heads)) {
        if (opts.skipNodes?.has(node) || r.members[node] !== 'live') continue;
        let have: { tenant: string; blueprint: string; generation: number }[] = [];
        try {
          have = (await call<{ networks: typeof have }>(nodePaths(dir, node).socket, 'GET', '/v1/networks', undefined, 5000)).networks;
        } catch {
          pending.push(`${node}: agent not answering`);
          continue;
        }
        for (const [key, gen] of Object.entries(heads)) {
          if (!plans.some((p) => p.key === key)) continue;
          const mine = have.filter((n) => `${n.tenant}/${n.blueprint}` === key);
          if (!mine.length || mine.some((n) => n.generation < gen)) pending.push(`${node}: ${key}@${gen}`);
        }
      }
    }
    if (!pending.length) {
      return plans.map((p) => {
        const plan = r.plans[p.key];
        for (const n of plan.networks) for (const d of n.access) {
          const cfg = deviceConfig(layout, dir, plan, n, d);
          if (cfg) d.wgQuickConfig = cfg;
        }
        writePrivateFile(join(dir, 'plans', `${p.key.replace('/', '--')}.json`), JSON.stringify(plan, null, 2) + '\n');
        return { ...p, plan };
      });
    }
    const line = pending.slice(0, 4).join(', ');
    if (line !== last) opts.say?.(`etcd: waiting for ${line}${pending.length > 4 ? ` (+${pending.length - 4})` : ''}`);
    last = line;
    await sleep(500);
  }
  throw new ZmeshError('E_LAB_ETCD', `the etcd control plane did not converge: ${last}`, { kind: 'retryable', hint: `see ${join(dir, 'logs', 'controller.log')} and the agent logs` });
}

/** `lab up` in etcd mode: instead of pushing parts, tenants and envelopes go into etcd; waits for the nodes. */
export async function etcdApply(spec: LabSpec, layout: Layout, dir: string, state: LabState, plans: BlueprintPlan[], say: (l: string) => void): Promise<PushResult[]> {
  const tenants = Object.fromEntries(spec.tenants.map((t) => [t.name, state.tenants[t.name].publicKey]));
  submitToEtcd(layout, dir, tenants, plans);
  say(`etcd: ${spec.tenants.length} tenant(s), ${plans.length} signed blueprint(s) submitted; waiting for the controller and the agents`);
  const got = await awaitEtcdPlans(layout, dir, plans, { say, state });
  got.forEach((g, i) => {
    plans[i] = g;
    const rec = state.blueprints[g.key];
    if (rec) rec.generation = g.plan.generation;
  });
  return layout.nodes.map((n) => ({ node: n.name, pushed: [], removed: [], errors: [] }));
}

// ---- the helper, run inside the internet namespace ----

async function helperMain(cmd: string): Promise<void> {
  const { connectEtcd, ControlOps, readPrefix, assemblePlan, parseHead, Keys, Rbac } = await import('../src/control/index.ts');
  const client = connectEtcd({ urls: process.env.ZMESH_ETCD!, cacert: process.env.ZMESH_ETCD_CACERT, cert: process.env.ZMESH_ETCD_CERT, key: process.env.ZMESH_ETCD_KEY });
  const ops = new ControlOps(client);
  try {
    if (cmd === 'enroll') {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { nodes: Record<string, string>; operatorKey: string };
      const rbac = new Rbac(client, ops.keys);
      await rbac.enable();
      for (const [id, key] of Object.entries(input.nodes)) {
        await ops.approveNode(id, key, { replace: true, operatorKey: Key.parse(input.operatorKey) });
        await rbac.ensureNode(id);
      }
      process.stdout.write('{}\n');
      return;
    }
    if (cmd === 'sync') {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { tenants: Record<string, string>; envelopes: { blueprint: { tenant: string; name: string } }[] };
      const have = await ops.tenants();
      for (const [t, k] of Object.entries(input.tenants)) if (have[t] !== k) await ops.addTenant(t, k);
      for (const e of input.envelopes) {
        try {
          await ops.submit(e);
        } catch (err) {
          // The very same envelope again (same version, same signature) is fine; anything else is an error.
          if ((err as ZmeshError).code !== 'E_REPLAY') throw err;
          const cur = (await client.get(new Keys().blueprint((e as { blueprint: { tenant: string } }).blueprint.tenant, (e as { blueprint: { name: string } }).blueprint.name)).string()) ?? '';
          if (!cur.includes((e as unknown as { signature: { signature: string } }).signature.signature)) throw err;
        }
      }
      const wanted = new Set(input.envelopes.map((e) => `${e.blueprint.tenant}/${e.blueprint.name}`));
      for (const key of Object.keys((await ops.overview()).submitted)) {
        if (wanted.has(key)) continue;
        const [t, b] = key.split('/');
        await ops.remove(t, b).catch(() => undefined);
      }
      process.stdout.write('{}\n');
      return;
    }
    const keys = new Keys();
    const o = await ops.overview();
    const { kvs } = await readPrefix(client, keys.plans());
    const byBp = new Map<string, Map<string, string>>();
    for (const [k, v] of kvs) {
      const p = keys.parsePlanKey(k);
      if (!p) continue;
      const id = `${p.tenant}/${p.blueprint}`;
      let m = byBp.get(id);
      if (!m) byBp.set(id, (m = new Map()));
      m.set(p.suffix, v);
    }
    const plans: Record<string, Plan> = {};
    for (const [id, entries] of byBp) {
      const [t, b] = id.split('/');
      const a = assemblePlan(t, b, entries);
      if (a) plans[id] = (await import('../src/plan/derive.ts')).expandPlan(a.plan); // stored compact: peers derived
    }
    const heads: Record<string, Record<string, number>> = {};
    const parts = await readPrefix(client, `${keys.prefix}/parts/`);
    for (const [k, v] of parts.kvs) {
      const m = /\/parts\/([^/]+)\/([^/]+)\/([^/]+)\/gen$/.exec(k);
      const h = m ? parseHead(v) : null;
      if (m && h) (heads[m[1]] ??= {})[`${m[2]}/${m[3]}`] = h.generation;
    }
    const members: Record<string, string> = { ...(o.controller?.members ?? {}) };
    const registered = Object.keys(o.registrations).filter((id) => o.registrations[id] !== null);
    const round = o.controller ? { n: o.controller.n, reason: o.controller.reason, at: o.controller.at } : null;
    process.stdout.write(JSON.stringify({ plans, submitted: o.submitted, heads, members, registered, round }) + '\n');
  } finally {
    client.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && ['sync', 'read', 'enroll'].includes(process.argv[2])) {
  helperMain(process.argv[2]).then(
    () => process.exit(0),
    (e: Error) => {
      process.stderr.write(`${(e as ZmeshError).code ?? ''} ${e.message}\n`);
      process.exit(1);
    },
  );
}
