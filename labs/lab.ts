// The lab runner: `up` (build or reconcile), wait for a green matrix, faults, and the views (status, exec).
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { call } from '../src/admin/client.ts';
import { ZmeshError } from '../src/errors.ts';
import type { Blueprint, SignedBlueprint } from '../src/blueprint/index.ts';
import type { Plan } from '../src/plan/index.ts';
import { agentAlive, ensureIdentity, startAgent, stopAgent, writeAgentConfig } from './agents.ts';
import { downLab, killInside, nodeCgroups, releaseLoops, removeCgroups } from './cleanup.ts';
import { dockerdAlive, ensureBaseImage, ensureDockerd } from './docker.ts';
import { nodeStatus, planLab, pushAll, removePlanFiles, savedPlans, trustedTenants, type BlueprintPlan, type NodeStatus, type PushResult } from './control.ts';
import { endpointsOf, ensureDeviceTunnel, ensureEcho, workloadPids, type Endpoint } from './endpoints.ts';
import { labToDot } from './graph.ts';
import { ensureCarrier, stopCarrier, wantsCarrier } from './candidates.ts';
import { EXTRA_FAULTS, extraFault, type ExtraFaultKind } from './faults-extra.ts';
import { controlPlaneStatus, ensureControlPlane, ensureDeviceKeys, etcdApply, etcdUrls } from './etcd.ts';
import { hostByName, layoutFor, type HostLayout, type Layout } from './layout.ts';
import { matrixOk, runMatrix, type PairResult } from './matrix.ts';
import { applyShaping } from './shaping.ts';
import { loadLabSpec, workloadNodes, type LabSpec } from './spec.ts';
import { labDir, newState, nodePaths, readState, requireState, writeState, type Faults, type LabState } from './state.ts';
import { alive, fileInode, inHolder, nsInode, run, sleep } from './sys.ts';
import { ensureHolder, ensureHostLink, ensureInternet, ensureNat, liveHolder, setPort } from './underlay.ts';

export type Progress = (line: string) => void;

/** One lab command at a time per lab: a lock file holding the PID (a dead holder's lock is taken over). */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, 'lock');
  let fd: number | null = null;
  for (let i = 0; i < 3 && fd === null; i++) {
    try {
      fd = openSync(lock, 'wx', 0o600);
    } catch {
      const pid = Number(readFileSync(lock, 'utf8').trim());
      let running = false;
      try {
        if (pid > 0 && pid !== process.pid) running = (process.kill(pid, 0), true);
      } catch {
        running = false;
      }
      if (running) throw new ZmeshError('E_LAB_BUSY', `another lab command (PID ${pid}) is working on this lab`, { kind: 'retryable', hint: 'wait for it, or remove ' + lock });
      rmSync(lock, { force: true });
    }
  }
  if (fd === null) throw new ZmeshError('E_LAB_BUSY', 'cannot take the lab lock', { kind: 'retryable', hint: `remove ${lock}` });
  writeSync(fd, `${process.pid}\n`);
  closeSync(fd);
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/**
 * Tears down one node or device: every process in its namespaces (by inode, PID) and in its containers'
 * cgroups, then the namespace; waits for its storage pool's loop device to be released (its mount namespace
 * is gone) and removes the containers' cgroups, so a rebuilt node mounts its pool afresh.
 */
async function teardownHost(host: HostLayout, state: LabState, dir: string): Promise<void> {
  const h = state.holders[host.name];
  const cgroups = nodeCgroups(state.name, host.name);
  await killInside(
    () => {
      const seed = new Set<number>();
      const ino = fileInode(`/run/netns/${host.ns}`);
      if (ino !== null) seed.add(ino);
      if (h && alive(h) && nsInode(h.pid, 'net') === h.net && nsInode(h.pid, 'mnt') === h.mnt) {
        seed.add(h.net);
        seed.add(h.mnt);
      }
      return seed;
    },
    10000,
    cgroups,
  );
  await run(['ip', 'netns', 'del', host.ns], { okCodes: [0, 1] });
  await run(['ip', '-n', host.upstreamNs, 'link', 'del', host.port], { okCodes: [0, 1, 2] });
  if (host.role === 'node') {
    await releaseLoops(nodePaths(dir, host.name).dir);
    await removeCgroups(cgroups);
  }
  delete state.holders[host.name];
  delete state.agents[host.name];
  delete state.dockerd[host.name];
  delete state.delayLines[host.port];
  for (const k of Object.keys(state.echo)) if (k.startsWith(`${host.name}/`) || k.startsWith(`device:${host.name}/`)) delete state.echo[k];
}

/** Removes what the previous layout had and the new one does not (or has elsewhere). */
async function removeStale(prev: Layout | null, next: Layout, state: LabState, dir: string): Promise<void> {
  if (!prev) return;
  for (const h of [...prev.nodes, ...prev.devices]) {
    const n = hostByName(next, h.name);
    if (!n || n.role !== h.role || n.upstreamNs !== h.upstreamNs || n.port !== h.port || n.address !== h.address) {
      if (!n || n.role !== h.role) await teardownHost(h, state, dir);
      else {
        // Same host, new attachment: drop its underlay link (the new one is made below).
        await run(['ip', '-n', h.ns, 'link', 'del', 'eth0'], { okCodes: [0, 1, 2] });
        await run(['ip', '-n', h.upstreamNs, 'link', 'del', h.port], { okCodes: [0, 1, 2] });
      }
    }
  }
  for (const r of prev.nats) {
    const n = next.nats.find((x) => x.name === r.name);
    if (!n || n.lan !== r.lan || n.wanAddress !== r.wanAddress || n.port !== r.port) {
      await killInside(() => {
        const ino = fileInode(`/run/netns/${r.ns}`);
        return ino === null ? [] : [ino];
      });
      await run(['ip', 'netns', 'del', r.ns], { okCodes: [0, 1] });
      await run(['ip', '-n', prev.internetNs, 'link', 'del', r.port], { okCodes: [0, 1, 2] });
    }
  }
}

/** Brings a node or device up to its layout: namespaces, holder, underlay link, shaping. */
async function ensureHost(host: HostLayout, state: LabState, dir: string): Promise<void> {
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  if (!liveHolder(host, state) && fileInode(`/run/netns/${host.ns}`) !== null) {
    // The namespace outlived its holder (killed from outside): whatever still runs in it belongs to a mount
    // namespace the new holder will not share (an agent, wireguard-go holding ports, a Docker engine and its
    // containers). Clear it, as a reboot.
    await killInside(
      () => {
        const ino = fileInode(`/run/netns/${host.ns}`);
        return ino === null ? [] : [ino];
      },
      10000,
      host.role === 'node' ? nodeCgroups(state.name, host.name) : undefined,
    );
    if (host.role === 'node') {
      await releaseLoops(nodePaths(dir, host.name).dir);
      await removeCgroups(nodeCgroups(state.name, host.name));
    }
    delete state.agents[host.name];
    delete state.dockerd[host.name];
    for (const k of Object.keys(state.echo)) if (k.startsWith(`${host.name}/`) || k.startsWith(`device:${host.name}/`)) delete state.echo[k];
  }
  const h = await ensureHolder(host, state, join(logs, `holder-${host.name}.log`));
  await ensureHostLink(host, state.layout?.underlay);
  await applyShaping(host, h.pid, state, join(logs, `delay-${host.port}.log`));
}

/** Whether the node's agent is configured with a lab Docker engine (its config names a dockerSocket). */
function hasEngineConfig(dir: string, node: string): boolean {
  try {
    return /^dockerSocket: /m.test(readFileSync(nodePaths(dir, node).config, 'utf8'));
  } catch {
    return false;
  }
}

export interface UpSummary {
  lab: string;
  dir: string;
  nodes: number;
  devices: number;
  tenants: number;
  endpoints: number;
  /** Workloads in the lab (each a matrix endpoint). */
  workloads: number;
  pushed: PushResult[];
  matrix: PairResult[];
  green: boolean;
  secondsToGreen: number | null;
  seconds: number;
  /** A node and a network of it, for the "look around" hints. */
  example: { node: string; network: string } | null;
}

export interface UpOptions {
  name?: string;
  progress?: Progress;
  /** Wait for a green matrix (default true). */
  wait?: boolean;
  /** Keep a new lab whose build failed (default: take it down). */
  keepOnFailure?: boolean;
}

/** Builds the lab, or reconciles a running one to the spec. */
export async function labUp(specFile: string, opts: UpOptions = {}): Promise<UpSummary> {
  const t0 = Date.now();
  const progress = opts.progress ?? (() => undefined);
  const say: Progress = (line) => progress(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${line}`);
  const spec = loadLabSpec(specFile, (p) => readFileSync(p, 'utf8'), opts.name);
  const dir = labDir(spec.name);
  const existed = readState(dir)?.layout != null;
  return withLock(dir, async () => {
    try {
      return await upLocked(spec, specFile, dir, opts, say, t0);
    } catch (e) {
      // A new lab that failed half-way is taken down (a running lab that failed to reconcile stays up).
      if (!existed && !opts.keepOnFailure) {
        say(`failed (${(e as Error).message.split('\n')[0].slice(0, 200)}); taking the new lab down`);
        await downLab(spec.name, dir, { keepDir: false }).catch(() => undefined);
      }
      throw e;
    }
  });
}

async function upLocked(spec: LabSpec, specFile: string, dir: string, opts: UpOptions, say: Progress, t0: number): Promise<UpSummary> {
  const state = readState(dir) ?? newState(spec.name, resolve(specFile));
  const reconciling = state.layout !== null;
  state.specFile = resolve(specFile);
  copyFileSync(specFile, join(dir, 'spec.yaml'));
  const prev = state.layout;
  const layout = layoutFor(spec, prev);
  say(`${reconciling ? 'reconciling' : 'building'} lab ${spec.name} in ${dir}`);
  await removeStale(prev, layout, state, dir);
  state.layout = layout;
  for (const k of Object.keys(state.faults)) if (!hostByName(layout, k)) delete state.faults[k];
  writeState(dir, state);

  say(`underlay: internet, ${layout.nats.length} NAT router(s), ${layout.nodes.length} node(s), ${layout.devices.length} device(s)`);
  try {
    await ensureInternet(layout);
    for (const nat of layout.nats) await ensureNat(nat, layout);
    writeState(dir, state);
    await pool([...layout.nodes, ...layout.devices], 4, (h) => ensureHost(h, state, dir));
  } finally {
    writeState(dir, state);
  }

  if (spec.controlPlane === 'etcd') {
    // controlPlane: etcd (labs/etcd.ts): devices bring their own keys; etcd and the controller before the agents.
    ensureDeviceKeys(spec, dir);
    await ensureControlPlane(layout, dir);
    say(`control plane: etcd ${etcdUrls().join(',')} (in ${layout.internetNs}), controller running`);
  }
  const identities = new Map(layout.nodes.map((n) => [n.name, ensureIdentity(nodePaths(dir, n.name).identity)]));
  const trusted = trustedTenants(dir, spec, state);
  // Nodes hosting workloads or volumes get a private Docker engine in their namespaces, with the base image;
  // a node keeps its engine once it has one (its agent removes containers no blueprint wants through it).
  const wanted = workloadNodes(spec);
  const engines = new Set(layout.nodes.filter((n) => wanted.has(n.name) || state.dockerd[n.name] || hasEngineConfig(dir, n.name)).map((n) => n.name));
  if (engines.size) {
    say(`underlay up; starting ${engines.size} Docker engine(s)`);
    let imported = 0;
    try {
      await pool(
        layout.nodes.filter((n) => engines.has(n.name)),
        4,
        async (n) => {
          await ensureDockerd(n, liveHolder(n, state)!.pid, dir, state);
          if (await ensureBaseImage(dir, n.name)) imported++;
        },
      );
    } finally {
      writeState(dir, state);
    }
    say(`engines: ${engines.size} answering${imported ? `, base image imported into ${imported}` : ''}; starting ${layout.nodes.length} agent(s)`);
  } else say(`underlay up; starting ${layout.nodes.length} agent(s)`);
  try {
    await pool(layout.nodes, 4, async (n) => {
      const changed = writeAgentConfig(spec, n, dir, trusted, engines.has(n.name));
      if (agentAlive(state, n.name) && !changed) return;
      await stopAgent(state, n.name);
      await startAgent(n, liveHolder(n, state)!.pid, dir, state);
    });
  } finally {
    writeState(dir, state);
  }
  say(`agents: ${layout.nodes.length} answering`);

  const plans = planLab(spec, layout, dir, state, identities);
  for (const key of Object.keys(state.blueprints)) {
    if (!plans.some((p) => p.key === key)) {
      delete state.blueprints[key];
      removePlanFiles(dir, key);
    }
  }
  writeState(dir, state);
  const pushed = spec.controlPlane === 'etcd' ? await etcdApply(spec, layout, dir, state, plans, say) : await pushAll(layout, plans, dir);
  const errs = pushed.flatMap((p) => p.errors.map((e) => `${p.node}: ${e}`));
  say(`plans: ${plans.length} blueprint(s), pushed ${pushed.reduce((a, p) => a + p.pushed.length, 0)} part(s)${errs.length ? `, ${errs.length} error(s)` : ''}`);
  if (errs.length) {
    throw new ZmeshError('E_LAB_PUSH', `pushing plans failed: ${errs.join('; ')}`, { kind: 'retryable', hint: 'see `zmesh lab status` and the agent logs under the lab directory' });
  }

  await ensureDevices(spec, layout, plans, state, dir);
  // Direct paths between hidden nodes: with the embedded control plane the lab carries their candidates.
  if (wantsCarrier(layout, spec.controlPlane)) ensureCarrier(spec.name, dir, state);
  else await stopCarrier(dir, state);
  writeState(dir, state);
  const endpoints = endpointsOf(plans, layout);
  let matrix: PairResult[] = [];
  let green = false;
  if (opts.wait !== false) {
    say(`devices up; ${endpoints.length} endpoints, waiting for a green matrix`);
    const w = await waitGreen(dir, state, layout, endpoints, spec.options.convergeTimeoutMs, say);
    matrix = w.matrix;
    green = w.green;
    if (green) state.lastGreenSec = (Date.now() - t0) / 1000;
    writeState(dir, state);
  }
  const firstResource = endpoints.find((e) => e.kind === 'resource');
  return {
    lab: spec.name,
    dir,
    nodes: layout.nodes.length,
    devices: layout.devices.length,
    tenants: spec.tenants.length,
    endpoints: endpoints.length,
    workloads: endpoints.filter((e) => e.kind === 'workload').length,
    pushed,
    matrix,
    green,
    secondsToGreen: green ? (Date.now() - t0) / 1000 : null,
    seconds: (Date.now() - t0) / 1000,
    example: firstResource ? { node: firstResource.host, network: firstResource.net } : null,
  };
}

/** Each device's wg-quick tunnel with the planner's config. */
async function ensureDevices(spec: LabSpec, layout: Layout, plans: BlueprintPlan[], state: LabState, dir: string): Promise<void> {
  for (const d of spec.devices) {
    const plan = plans.find((p) => p.tenant === d.tenant && p.blueprint.name === d.blueprint)?.plan;
    const cfg = plan?.networks.find((n) => n.name === d.network)?.access.find((a) => a.name === d.name)?.wgQuickConfig;
    const host = layout.devices.find((x) => x.name === d.name);
    if (!cfg || !host) throw new ZmeshError('E_LAB_DEVICE', `no wg-quick config for device ${d.name}`, { kind: 'internal' });
    state.devices[d.name] = { tenant: d.tenant, blueprint: d.blueprint!, network: d.network };
    await ensureDeviceTunnel(host, cfg, state, dir);
  }
  for (const k of Object.keys(state.devices)) if (!spec.devices.some((d) => d.name === k)) delete state.devices[k];
}

/**
 * Waits (bounded) for a green matrix: first only the pairs expected to reach (fast when they work), then the
 * whole matrix. Echo services are (re)started each round. A reach check that passed in an earlier round of this
 * wait is not probed again (each round probes only what has not reached yet: every check expected to reach must
 * have reached once since the wait began); the whole matrix then probes every isolated and denied check afresh.
 */
export async function waitGreen(
  dir: string,
  state: LabState,
  layout: Layout,
  endpoints: Endpoint[],
  timeoutMs: number,
  say: Progress,
): Promise<{ green: boolean; matrix: PairResult[]; rounds: number }> {
  const end = Date.now() + timeoutMs;
  let matrix: PairResult[] = [];
  let rounds = 0;
  let reached: PairResult[] = [];
  for (; rounds < 200 && Date.now() < end; rounds++) {
    const wl = await workloadPids(endpoints, dir);
    const echo = await ensureEcho(endpoints, layout, state, dir, wl.pids);
    if (echo.started) writeState(dir, state);
    const missing = echo.missing.length + wl.missing.length;
    const reach = await runMatrix(endpoints, layout, state, { reachOnly: true, workloadPids: wl.pids, reuse: reached, retry: false });
    reached = reach.filter((r) => r.ok);
    const good = reached.length;
    const notYet = reach.filter((r) => !r.ok && !r.skip);
    const eg = notYet.length ? `; not yet: ${notYet.slice(0, 3).map((r) => `${r.from} → ${r.to}${r.family === 6 ? ' (IPv6)' : ''} ${r.proto}${r.port !== null && r.proto !== 'icmp' ? `/${r.port}` : ''}`).join(', ')}${notYet.length > 3 ? ', …' : ''}` : '';
    say(`waiting: ${good}/${reach.length} reachable pairs ok${missing ? `, ${missing} endpoint(s) not there yet` : ''}${eg}`);
    if (matrixOk(reach) || reach.length === 0) {
      // The whole matrix: what is expected isolated or denied, with the reachable checks just passed.
      matrix = await runMatrix(endpoints, layout, state, { workloadPids: wl.pids, reuse: reach });
      if (matrixOk(matrix)) return { green: true, matrix, rounds: rounds + 1 };
      say(`matrix: ${matrix.filter((r) => !r.ok).length} unexpected result(s), retrying`);
    } else matrix = reach;
    await sleep(Math.min(1000, Math.max(0, end - Date.now())));
  }
  if (!matrix.some((r) => r.expect === 'isolated')) matrix = await runMatrix(endpoints, layout, state, { workloadPids: (await workloadPids(endpoints, dir)).pids });
  return { green: false, matrix, rounds };
}

/** The signed blueprint the lab last pushed for `key` (control.ts writes it beside the plan), or undefined. */
function savedBlueprint(dir: string, key: string): Blueprint | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'signed', `${key.replace('/', '--')}.json`), 'utf8')) as SignedBlueprint).blueprint;
  } catch {
    return undefined;
  }
}

/** A running lab's spec, layout, endpoints and saved plans (with their signed blueprints: the policies). */
export function openLab(name: string): { dir: string; state: LabState; layout: Layout; plans: { key: string; plan: Plan; blueprint?: Blueprint }[]; endpoints: Endpoint[] } {
  const { dir, state } = requireState(name);
  const layout = state.layout!;
  const plans = savedPlans(dir, state).map((p) => ({ ...p, blueprint: savedBlueprint(dir, p.key) }));
  return { dir, state, layout, plans, endpoints: endpointsOf(plans, layout) };
}

export async function labMatrix(name: string): Promise<PairResult[]> {
  const { dir, state, layout, endpoints } = openLab(name);
  const pids = (await workloadPids(endpoints, dir)).pids;
  const echo = await ensureEcho(endpoints, layout, state, dir, pids);
  if (echo.started) writeState(dir, state);
  return runMatrix(endpoints, layout, state, { workloadPids: pids });
}

export interface HostStatus {
  name: string;
  role: 'node' | 'device';
  namespace: string;
  attach: string;
  address: string;
  /** `underlay: dual`: the IPv6 address besides the IPv4 one. */
  address6?: string;
  holder: number | null;
  agent: number | null;
  /** The node's private Docker engine (PID), when it has one. */
  dockerd: number | null;
  /** Its workloads as the agent reports them (nodes with an engine). */
  workloads?: { total: number; running: number };
  shaping: Record<string, unknown>;
  faults: Faults;
  node?: NodeStatus;
}

async function workloadCounts(dir: string, node: string): Promise<{ total: number; running: number } | undefined> {
  try {
    const r = await call<{ workloads: { state: string; address: string | null }[] }>(nodePaths(dir, node).socket, 'GET', '/v1/workloads', undefined, 5000);
    return { total: r.workloads.length, running: r.workloads.filter((w) => w.state === 'running' && w.address).length };
  } catch {
    return undefined;
  }
}

export async function labStatus(name: string): Promise<{
  lab: string;
  dir: string;
  hosts: HostStatus[];
  nats: Layout['nats'];
  blueprints: LabState['blueprints'];
  lastGreenSec?: number;
  controlPlane?: ReturnType<typeof controlPlaneStatus>;
}> {
  const { dir, state, layout } = openLab(name);
  const hosts: HostStatus[] = [];
  for (const h of [...layout.nodes, ...layout.devices]) {
    const holder = liveHolder(h, state);
    hosts.push({
      name: h.name,
      role: h.role,
      namespace: h.ns,
      attach: h.attach.kind === 'internet' ? 'internet' : `nat ${h.attach.nat}`,
      // The address it is dialled at (IPv6 on an IPv6-only underlay); with `underlay: dual` also the IPv6 one.
      address: layout.underlay === 'ipv6' ? h.address6! : h.address,
      ...(layout.underlay === 'dual' ? { address6: h.address6 } : {}),
      holder: holder?.pid ?? null,
      agent: h.role === 'node' && agentAlive(state, h.name) ? state.agents[h.name].pid : null,
      dockerd: h.role === 'node' && dockerdAlive(state, h.name) ? state.dockerd[h.name].pid : null,
      ...(h.role === 'node' && state.dockerd[h.name] ? { workloads: await workloadCounts(dir, h.name) } : {}),
      shaping: { ...h.shaping },
      faults: state.faults[h.name] ?? {},
      node: h.role === 'node' ? await nodeStatus(dir, h.name) : undefined,
    });
  }
  const controlPlane = controlPlaneStatus(dir);
  return { lab: name, dir, hosts, nats: layout.nats, blueprints: state.blueprints, lastGreenSec: state.lastGreenSec, ...(controlPlane ? { controlPlane } : {}) };
}

/** argv run inside a node's (or device's) network and mount namespaces. */
export function labExecArgv(name: string, hostName: string, argv: string[]): string[] {
  const { state, layout } = openLab(name);
  const host = hostByName(layout, hostName);
  if (!host) throw new ZmeshError('E_LAB_HOST', `lab ${name} has no node or device ${hostName}`, { hint: `one of: ${[...layout.nodes, ...layout.devices].map((h) => h.name).join(', ')}` });
  const h = liveHolder(host, state);
  if (!h) throw new ZmeshError('E_LAB_HOST_DOWN', `${hostName}'s namespaces are not running`, { kind: 'retryable', hint: `zmesh lab up again, or zmesh lab fault ${name} ${hostName} reboot` });
  return inHolder(h.pid, argv);
}

export function labSocket(name: string, node: string): string {
  const { dir, layout } = openLab(name);
  if (!layout.nodes.some((n) => n.name === node)) throw new ZmeshError('E_LAB_HOST', `lab ${name} has no node ${node}`, { hint: `one of: ${layout.nodes.map((n) => n.name).join(', ')}` });
  return nodePaths(dir, node).socket;
}

export type FaultKind = 'cut' | 'restore' | 'loss' | 'delay' | 'kill-agent' | 'restart-agent' | 'reboot' | ExtraFaultKind;
export const FAULTS: FaultKind[] = ['cut', 'restore', 'loss', 'delay', 'kill-agent', 'restart-agent', 'reboot', ...EXTRA_FAULTS];

/** Injects a fault into one node (or device, for the underlay faults). */
export async function labFault(name: string, hostName: string, kind: FaultKind, value?: number): Promise<string> {
  const { dir, state, layout } = openLab(name);
  // nat-restart and roam (labs/faults-extra.ts) also take a NAT router's name.
  if (kind === 'nat-restart' || kind === 'roam') return withLock(dir, () => extraFault(dir, state, hostName, kind));
  const host = hostByName(layout, hostName);
  if (!host) throw new ZmeshError('E_LAB_HOST', `lab ${name} has no node or device ${hostName}`, { hint: `one of: ${[...layout.nodes, ...layout.devices].map((h) => h.name).join(', ')}` });
  if (!FAULTS.includes(kind)) throw new ZmeshError('E_USAGE', `unknown fault ${kind}`, { hint: FAULTS.join(', ') });
  if ((kind === 'loss' || kind === 'delay') && (value === undefined || !Number.isFinite(value) || value < 0 || (kind === 'loss' ? value > 100 : value > 10000))) {
    throw new ZmeshError('E_USAGE', `${kind} needs a value (${kind === 'loss' ? 'percent 0–100' : 'milliseconds 0–10000'})`, { hint: `e.g. zmesh lab fault ${name} ${hostName} ${kind} ${kind === 'loss' ? 20 : 100}` });
  }
  if ((kind === 'kill-agent' || kind === 'restart-agent') && host.role !== 'node') throw new ZmeshError('E_USAGE', `${hostName} is a device: it has no agent`, { hint: 'pick a node' });
  return withLock(dir, async () => {
    const logs = join(dir, 'logs');
    const f = (state.faults[host.name] ??= {});
    let msg = '';
    try {
      switch (kind) {
        case 'cut':
        case 'restore':
        case 'loss':
        case 'delay': {
          if (kind === 'cut') f.cut = true;
          if (kind === 'restore') delete state.faults[host.name];
          if (kind === 'loss') f.lossPct = value;
          if (kind === 'delay') f.delayMs = value;
          const h = liveHolder(host, state);
          if (!h) throw new ZmeshError('E_LAB_HOST_DOWN', `${hostName}'s namespaces are not running`, { kind: 'retryable', hint: 'zmesh lab up again' });
          await applyShaping(host, h.pid, state, join(logs, `delay-${host.port}.log`));
          if (kind === 'cut') await setPort(host, { up: false, bridged: !state.delayLines[host.port] });
          msg = kind === 'restore' ? `${hostName}: link up, shaping back to the spec` : kind === 'cut' ? `${hostName}: underlay cut` : `${hostName}: ${kind} ${value}${kind === 'loss' ? '%' : ' ms'}`;
          break;
        }
        case 'kill-agent':
          await stopAgent(state, host.name, { kill: true });
          msg = `${hostName}: agent killed (SIGKILL); its tenant networks keep running`;
          break;
        case 'restart-agent': {
          await stopAgent(state, host.name);
          const h = liveHolder(host, state);
          if (!h) throw new ZmeshError('E_LAB_HOST_DOWN', `${hostName}'s namespaces are not running`, { kind: 'retryable', hint: 'reboot it' });
          await startAgent(host, h.pid, dir, state);
          msg = `${hostName}: agent restarted (PID ${state.agents[host.name].pid})`;
          break;
        }
        case 'reboot': {
          await teardownHost(host, state, dir);
          delete state.faults[host.name];
          writeState(dir, state);
          await ensureHost(host, state, dir);
          if (host.role === 'node') {
            // Its Docker engine first (same data root: its containers are there, stopped), then the agent,
            // which mounts its pool again and restarts its containers with their addresses from its state.
            if (hasEngineConfig(dir, host.name)) {
              await ensureDockerd(host, liveHolder(host, state)!.pid, dir, state);
              writeState(dir, state);
            }
            await startAgent(host, liveHolder(host, state)!.pid, dir, state);
          }
          else {
            const d = state.devices[host.name];
            const plan = d && savedPlans(dir, state).find((p) => p.key === `${d.tenant}/${d.blueprint}`)?.plan;
            const cfg = plan?.networks.find((n) => n.name === d.network)?.access.find((a) => a.name === host.name)?.wgQuickConfig;
            if (!cfg) throw new ZmeshError('E_LAB_DEVICE', `no wg-quick config for device ${host.name}`, { kind: 'internal', hint: 'run zmesh lab up again' });
            await ensureDeviceTunnel(host, cfg, state, dir);
          }
          msg = `${hostName}: rebooted (namespaces rebuilt${host.role === 'node' ? `${state.dockerd[host.name] ? ', Docker engine' : ''}, agent restarted from its state directory` : ', tunnel up again'})`;
          break;
        }
      }
    } finally {
      if (state.faults[host.name] && Object.keys(state.faults[host.name]).length === 0) delete state.faults[host.name];
      writeState(dir, state);
    }
    return msg;
  });
}

/** Waits for a green matrix of a running lab (after a fault), bounded. */
export async function labWaitGreen(name: string, timeoutMs: number, say: Progress = () => undefined): Promise<{ green: boolean; matrix: PairResult[]; seconds: number }> {
  const t0 = Date.now();
  const { dir, state, layout, endpoints } = openLab(name);
  const timed: Progress = (line) => say(`${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${line}`);
  const w = await withLock(dir, () => waitGreen(dir, state, layout, endpoints, timeoutMs, timed));
  return { green: w.green, matrix: w.matrix, seconds: (Date.now() - t0) / 1000 };
}


/** The lab as Graphviz DOT, with each tunnel's handshake age read from the agents. */
export async function labGraph(name: string): Promise<string> {
  const { dir, state, layout, plans } = openLab(name);
  const handshakes = new Map<string, number | null>();
  const down = new Set<string>();
  const direct = new Set<string>();
  const now = Math.floor(Date.now() / 1000);
  for (const n of layout.nodes) {
    if (state.faults[n.name]?.cut || !agentAlive(state, n.name)) down.add(n.name);
    // A hidden node's direct paths (one call for all its networks).
    if (plans.some(({ plan }) => plan.networks.some((net) => net.resources.some((x) => x.node === n.name && x.hidden)))) {
      try {
        const r = await call<{ paths: { networkId: string; node: string; path: string }[] }>(nodePaths(dir, n.name).socket, 'GET', '/v1/paths', undefined, 5000);
        for (const v of r.paths) if (v.path === 'direct') direct.add(`${v.networkId}|${n.name}|${v.node}`);
      } catch {
        /* agent down: nothing drawn direct */
      }
    }
    for (const { plan } of plans) {
      for (const net of plan.networks) {
        const r = net.resources.find((x) => x.node === n.name);
        if (!r) continue;
        try {
          const d = await call<{ actual: { wireguard: { peers: { publicKey: string; latestHandshake: number }[] } | null } | null }>(
            nodePaths(dir, n.name).socket,
            'GET',
            `/v1/networks/${net.id}`,
            undefined,
            5000,
          );
          const actual = new Map((d.actual?.wireguard?.peers ?? []).map((p) => [p.publicKey, p.latestHandshake]));
          for (const p of r.peers) {
            const hs = actual.get(p.publicKey);
            handshakes.set(`${net.id}|${n.name}|${p.node}`, hs ? now - hs : null);
          }
        } catch {
          /* agent down: unknown */
        }
      }
    }
  }
  for (const d of layout.devices) if (state.faults[d.name]?.cut) down.add(d.name);
  return labToDot({ layout, plans, handshakes, down, direct });
}
