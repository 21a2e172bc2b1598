// Lab endpoints: every tenant resource (a node's tenant namespace n-<id>) and every access device, each with
// a small echo service (busybox httpd) that answers with its identity, and every workload (a container the
// node's agent runs; it serves its own identity page on port 80). Devices join their tenant network with the
// planner's wg-quick config through real `wg-quick up` (wireguard-go when there is no kernel module).
// In a network with a policy (docs/policy.md) every endpoint also listens on the TCP ports the rules name (at
// most MAX_POLICY_PORTS): resources and devices with one more echo service per port, workloads with a small
// httpd started inside their container (docker exec) answering their page.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodePolicy } from '../src/agent/policy.ts';
import { parsePort } from '../src/blueprint/policy.ts';
import type { Blueprint, NetworkPolicy } from '../src/blueprint/types.ts';
import type { Plan } from '../src/plan/index.ts';
import { nodePart } from '../src/plan/part.ts';
import type { CompiledPolicy } from '../src/plan/policy.ts';
import { containerName } from '../runtime/names.ts';
import { ECHO_PORT, type HostLayout, type Layout } from './layout.ts';
import type { LabState } from './state.ts';
import { dockerClient, workloadPid } from './docker.ts';
import { alive, fileInode, inHolder, inTenant, nsInode, run, signal, spawnDetached, waitGone, type ProcRef } from './sys.ts';
import { liveHolder } from './underlay.ts';

export interface Endpoint {
  /** "tenant/blueprint/network@node-or-device"; a workload: "tenant/blueprint/network/workload@node". */
  id: string;
  /** "tenant/blueprint/network". */
  net: string;
  tenant: string;
  kind: 'resource' | 'device' | 'workload';
  /** The node or device it lives on. */
  host: string;
  networkId: string;
  /** The address the matrix dials (a resource's gateway, a device's address, a workload's address). */
  address: string;
  /** TCP port the identity answers on (default: the echo service's, 7777; workloads: 80). */
  port?: number;
  /** A workload's key "tenant/blueprint/workload" (what its page names). */
  workload?: string;
  /** Addresses this endpoint owns in its network (for telling an own answer from a foreign one). A resource:
   *  its gateway, then its WireGuard address. */
  owns: string[];
  /** Present when its network has a policy: what guards it and the ports the rules name. */
  policy?: EndpointPolicy;
  /** Dual-stack networks (the plan's gateway6, address6, ip6): the IPv6 address the matrix dials, and the IPv6
   *  addresses it owns (a resource: gateway6, then its WireGuard address6). */
  address6?: string;
  owns6?: string[];
  /** The name the network's resolver serves for it ("<workload>.<network>", "<node>.<network>",
   *  "<device>.<network>"); absent when an endpoint of an earlier kind (workload, then device) took the label. */
  dnsName?: string;
  /** The resolver this endpoint asks: its node's resource (a device: its access node's) — the node and the
   *  gateway address it answers on. */
  resolver?: { node: string; address: string };
}

export interface EndpointPolicy {
  /** The node that enforces the policy for this endpoint (its own node; a device's access node), or null. */
  node: string | null;
  /** What that node compiled for the network (src/agent/policy.ts nodePolicy), or null when none guards it. */
  guard: CompiledPolicy | null;
  /** TCP ports the network's rules name (policyPorts): its listeners answer there, the matrix probes them. */
  ports: number[];
}

/** At most this many TCP ports named by a network's rules get listeners and probes. */
export const MAX_POLICY_PORTS = 8;

/**
 * The TCP ports a policy's rules name, for listeners and probes: every tcp/N, and both ends of every tcp/N-M,
 * in rule order up to MAX_POLICY_PORTS, sorted. (udp, icmp and any name no TCP port.)
 */
export function policyPorts(p: NetworkPolicy): number[] {
  const out = new Set<number>();
  for (const r of p.rules) {
    for (const text of r.ports) {
      const q = parsePort(text);
      if ('error' in q || q.proto !== 'tcp') continue;
      for (const n of [q.from, q.to]) if (out.size < MAX_POLICY_PORTS) out.add(n);
    }
  }
  return [...out].sort((a, b) => a - b);
}

/** The ports an endpoint answers its identity on: its own port first, then its network's rule-named ones. */
export function endpointPorts(e: Endpoint): number[] {
  const own = e.port ?? ECHO_PORT;
  return [own, ...(e.policy?.ports ?? []).filter((p) => p !== own)];
}

/** The address without a prefix length ("fd00::1/128" → "fd00::1"). */
const bare = (a: string) => a.split('/')[0];

/** The endpoint as seen in one family: its IPv6 address and owned addresses in place of the IPv4 ones, or null
 *  when it has none (an IPv4-only network). */
export function inFamily(e: Endpoint, family: 4 | 6): Endpoint | null {
  if (family === 4) return e;
  if (!e.address6) return null;
  return { ...e, address: e.address6, owns: e.owns6 ?? [e.address6] };
}

/** The port a workload endpoint serves its identity page on. */
export const WORKLOAD_PORT = 80;

/** The echo service's answer: one line naming the endpoint. */
export function echoText(id: string): string {
  return `zmesh-lab-echo ${id}\n`;
}

/** The page a lab workload serves on port 80: one line naming it ("zmesh-wl tenant/blueprint/workload"). */
export function workloadText(key: string): string {
  return `zmesh-wl ${key}\n`;
}

/** The identity in an answer: an echo service's endpoint id, or "wl:<tenant/blueprint/workload>" for a
 *  workload's page (the matrix maps it to the workload's endpoint id); null when there is none. */
export function parseEcho(text: string): string | null {
  const m = /zmesh-lab-echo (\S+)/.exec(text);
  if (m) return m[1];
  const w = /zmesh-wl (\S+)/.exec(text);
  return w ? `wl:${w[1]}` : null;
}

/** The network part of an endpoint id ("tenant/blueprint/network"), or null for anything else. */
export function netOfId(id: string): string | null {
  const at = id.indexOf('@');
  if (at <= 0) return null;
  const parts = id.slice(0, at).split('/');
  return parts.length === 3 || parts.length === 4 ? parts.slice(0, 3).join('/') : null;
}

/**
 * The endpoints of the plans. With the signed blueprint (`blueprint`), endpoints of a network with a policy
 * carry what guards them: the policy compiled for their node exactly as that node's agent compiles it.
 */
export function endpointsOf(plans: { plan: Plan; blueprint?: Blueprint }[], layout: Layout): Endpoint[] {
  const out: Endpoint[] = [];
  const devices = new Set(layout.devices.map((d) => d.name));
  for (const { plan, blueprint } of plans) {
    for (const n of plan.networks) {
      const net = `${plan.tenant}/${plan.blueprint}/${n.name}`;
      const spec = blueprint?.networks.find((s) => s.name === n.name);
      const guards = new Map<string, CompiledPolicy>();
      if (n.policy && spec?.policy && blueprint) {
        for (const r of n.resources) {
          const part = nodePart(plan, r.node);
          const np = part.networks.find((x) => x.id === n.id);
          if (np?.members) guards.set(r.node, nodePolicy(blueprint, spec, np, part.workloads));
        }
      }
      const ports = spec?.policy ? policyPorts(spec.policy) : [];
      const policyOf = (node: string | null): { policy?: EndpointPolicy } =>
        spec?.policy ? { policy: { node, guard: (node && guards.get(node)) || null, ports } } : {};
      // Names as the network's resolver serves them: workloads first, then devices, then nodes (src/plan/names.ts).
      const taken = new Set<string>();
      const nameOf = (label: string): { dnsName?: string } => {
        if (taken.has(label)) return {};
        taken.add(label);
        return { dnsName: `${label}.${n.name}` };
      };
      const workloadNames = new Map((plan.workloads ?? []).filter((w) => w.network === n.name).map((w) => [w.name, nameOf(w.name)]));
      const deviceNames = new Map(n.access.map((d) => [d.name, nameOf(d.name)]));
      const resolverOf = (node: string | null): { resolver?: { node: string; address: string } } => {
        const r = node ? n.resources.find((x) => x.node === node) : undefined;
        return r ? { resolver: { node: r.node, address: r.gateway } } : {};
      };
      for (const r of n.resources) {
        out.push({
          id: `${net}@${r.node}`,
          net,
          tenant: plan.tenant,
          kind: 'resource',
          host: r.node,
          networkId: n.id,
          address: r.gateway,
          owns: [r.gateway, bare(r.wgAddress)],
          ...policyOf(r.node),
          ...(r.gateway6 ? { address6: r.gateway6, owns6: [r.gateway6, ...(r.wgAddress6 ? [bare(r.wgAddress6)] : [])] } : {}),
          ...nameOf(r.node),
          ...resolverOf(r.node),
        });
      }
      for (const d of n.access) {
        if (!devices.has(d.name)) continue;
        const access = n.resources.find((r) => r.peers.some((p) => p.kind === 'device' && p.node === d.name))?.node ?? null;
        out.push({
          id: `${net}@${d.name}`,
          net,
          tenant: plan.tenant,
          kind: 'device',
          host: d.name,
          networkId: n.id,
          address: d.address,
          owns: [d.address],
          ...policyOf(access),
          ...(d.address6 ? { address6: bare(d.address6), owns6: [bare(d.address6)] } : {}),
          ...deviceNames.get(d.name),
          ...resolverOf(access),
        });
      }
      for (const w of plan.workloads ?? []) {
        if (w.network !== n.name) continue;
        out.push({
          id: `${net}/${w.name}@${w.node}`,
          net,
          tenant: plan.tenant,
          kind: 'workload',
          host: w.node,
          networkId: n.id,
          address: w.ip,
          port: WORKLOAD_PORT,
          workload: `${plan.tenant}/${plan.blueprint}/${w.name}`,
          owns: [w.ip],
          ...policyOf(w.node),
          ...(w.ip6 ? { address6: w.ip6, owns6: [w.ip6] } : {}),
          ...workloadNames.get(w.name),
          ...resolverOf(w.node),
        });
      }
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** argv running in the endpoint's network namespace, or null when it is not there (yet). A workload runs it
 *  in its container's network namespace (found by the container's PID, from `pids`) with this machine's
 *  tools (the host's mount namespace). */
export function endpointArgv(e: Endpoint, layout: Layout, state: LabState, argv: string[], pids?: Map<string, number>): string[] | null {
  if (e.kind === 'workload') {
    const pid = pids?.get(e.id);
    return pid ? ['nsenter', `--net=/proc/${pid}/ns/net`, '--', ...argv] : null;
  }
  const host = e.kind === 'resource' ? layout.nodes.find((n) => n.name === e.host) : layout.devices.find((d) => d.name === e.host);
  if (!host) return null;
  const h = liveHolder(host, state);
  if (!h) return null;
  if (e.kind === 'device') return inHolder(h.pid, argv);
  if (fileInode(`/proc/${h.pid}/root/run/netns/n-${e.networkId}`) === null) return null;
  return inTenant(h.pid, e.networkId, argv);
}

/**
 * The PIDs of the workload endpoints' running containers (asked from each node's Docker engine); workloads
 * whose container is not running (yet) are in `missing`.
 */
export async function workloadPids(endpoints: Endpoint[], dir: string): Promise<{ pids: Map<string, number>; missing: string[] }> {
  const pids = new Map<string, number>();
  const missing: string[] = [];
  await Promise.all(
    endpoints
      .filter((e) => e.kind === 'workload')
      .map(async (e) => {
        const [tenant, blueprint, name] = e.workload!.split('/');
        const pid = await workloadPid(dockerClient(dir, e.host, 5000), { node: e.host, tenant, blueprint, name });
        if (pid) pids.set(e.id, pid);
        else missing.push(e.id);
      }),
  );
  return { pids, missing };
}

/** The inode of the endpoint's network namespace, or null. */
function endpointNetInode(e: Endpoint, host: HostLayout, state: LabState): number | null {
  const h = liveHolder(host, state);
  if (!h) return null;
  return e.kind === 'device' ? h.net : fileInode(`/proc/${h.pid}/root/run/netns/n-${e.networkId}`);
}

const echoKey = (e: Endpoint) => (e.kind === 'device' ? `device:${e.host}/${e.networkId}` : `${e.host}/${e.networkId}`);
/** The state key of an echo service: the identity port's is the endpoint's key, a rule-named port's "key#port". */
const echoPortKey = (e: Endpoint, port: number) => (port === ECHO_PORT ? echoKey(e) : `${echoKey(e)}#${port}`);

/** Ports of sockets in state `st` in /proc/<pid>/net/<table> ("0A": TCP listening, "07": UDP bound). */
function socketPorts(pid: number, tables: string[], st: string): Set<number> | null {
  try {
    const out = new Set<number>();
    for (const t of tables) {
      for (const line of readFileSync(`/proc/${pid}/net/${t}`, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length > 3 && f[3] === st) out.add(parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16));
      }
    }
    return out;
  } catch {
    return null;
  }
}

/** TCP ports listened on in the network namespace of `pid` (its /proc net/tcp and net/tcp6: state 0A), or null.
 *  (busybox httpd listens on [::], which only net/tcp6 shows.) */
export function listeningPorts(pid: number): Set<number> | null {
  return socketPorts(pid, ['tcp', 'tcp6'], '0A');
}

/**
 * Whether a node's resolver is running for a tenant network: something bound to UDP port 53 in its tenant
 * namespace n-<id> (seen through the echo service, which lives there). null: not known (no echo service yet).
 */
export function resolverRunning(state: LabState, node: string, networkId: string): boolean | null {
  const echo = state.echo[`${node}/${networkId}`];
  if (!echo || !alive(echo)) return null;
  const udp = socketPorts(echo.pid, ['udp', 'udp6'], '07');
  return udp === null ? null : udp.has(53);
}

/**
 * Starts, inside a workload's container, a small httpd answering the workload's page on each rule-named port
 * it does not listen on yet (docker exec through the node's engine; it goes with the container). Returns how
 * many it started.
 */
async function ensureWorkloadPorts(e: Endpoint, pid: number, dir: string): Promise<number> {
  const ports = endpointPorts(e).filter((p) => p !== (e.port ?? WORKLOAD_PORT));
  if (!ports.length) return 0;
  const listening = listeningPorts(pid);
  if (!listening) return 0;
  const missing = ports.filter((p) => !listening.has(p));
  if (!missing.length) return 0;
  const [tenant, blueprint, name] = e.workload!.split('/');
  const c = dockerClient(dir, e.host, 5000).getContainer(containerName({ node: e.host, tenant, blueprint, name }));
  const root = '/tmp/zmesh-lab-echo';
  let started = 0;
  for (const port of missing) {
    try {
      const x = await c.exec({ Cmd: ['sh', '-c', `mkdir -p ${root} && echo '${workloadText(e.workload!).trim()}' > ${root}/index.html && exec httpd -f -p ${port} -h ${root}`], AttachStdout: false, AttachStderr: false });
      await x.start({ Detach: true });
      started++;
    } catch {
      /* the container is going away: the next round tries again */
    }
  }
  return started;
}

/**
 * Starts (or restarts) each endpoint's echo services when missing or in a stale namespace: one per port it
 * answers on (endpointPorts). Workloads serve their own page; on rule-named ports besides theirs (when `pids`
 * gives their containers) a listener is started inside the container.
 */
export async function ensureEcho(endpoints: Endpoint[], layout: Layout, state: LabState, dir: string, pids?: Map<string, number>): Promise<{ started: number; missing: string[] }> {
  let started = 0;
  const missing: string[] = [];
  const wanted = new Set(endpoints.filter((e) => e.kind !== 'workload').flatMap((e) => endpointPorts(e).map((p) => echoPortKey(e, p))));
  for (const [k, p] of Object.entries(state.echo)) {
    if (!wanted.has(k)) {
      signal(p, 'SIGKILL');
      delete state.echo[k];
    }
  }
  const workloads = endpoints.filter((e) => e.kind === 'workload' && e.policy && pids?.get(e.id));
  const wl = Promise.all(workloads.map((e) => ensureWorkloadPorts(e, pids!.get(e.id)!, dir)));
  for (const e of endpoints) {
    if (e.kind === 'workload') continue; // the node's agent runs it
    const host = e.kind === 'resource' ? layout.nodes.find((n) => n.name === e.host) : layout.devices.find((d) => d.name === e.host);
    if (!host) continue;
    const ino = endpointNetInode(e, host, state);
    if (ino === null) {
      missing.push(e.id);
      continue;
    }
    const root = join(dir, 'echo', echoKey(e).replace(/[/:]/g, '-'));
    for (const port of endpointPorts(e)) {
      const key = echoPortKey(e, port);
      const cur = state.echo[key];
      if (cur && alive(cur) && nsInode(cur.pid, 'net') === ino) continue;
      if (cur) {
        signal(cur, 'SIGKILL');
        await waitGone(cur, 2000);
      }
      mkdirSync(root, { recursive: true, mode: 0o755 });
      writeFileSync(join(root, 'index.html'), echoText(e.id), { mode: 0o644 });
      const argv = endpointArgv(e, layout, state, ['busybox', 'httpd', '-f', '-p', String(port), '-h', root]);
      if (!argv) {
        missing.push(e.id);
        break;
      }
      const p: ProcRef = spawnDetached(argv, { logFile: join(root, port === ECHO_PORT ? 'httpd.log' : `httpd-${port}.log`) });
      state.echo[key] = { ...p, net: ino };
      started++;
    }
  }
  started += (await wl).reduce((a, b) => a + b, 0);
  return { started, missing };
}

export const WG_DEVICE_IF = 'zl0';

/** A device's wg-quick config as the lab brings it up: the planner's, without `DNS =` lines. */
export function deviceTunnelConfig(config: string): string {
  return config.replace(/^DNS\s*=.*(\r?\n|$)/gm, '');
}

/** Brings an access device's tunnel up with `wg-quick` (again when its config changed or it is down). */
export async function ensureDeviceTunnel(device: HostLayout, config: string, state: LabState, dir: string): Promise<boolean> {
  const h = liveHolder(device, state);
  if (!h) return false;
  const ddir = join(dir, 'devices', device.name);
  mkdirSync(ddir, { recursive: true, mode: 0o700 });
  const conf = join(ddir, `${WG_DEVICE_IF}.conf`);
  // Without its `DNS =` line: wg-quick would hand it to resolvconf, which is not there (exit 127) and would write
  // the host's /etc/resolv.conf (a device shares the host's /etc). The matrix asks the resolver by address.
  config = deviceTunnelConfig(config);
  const old = existsSync(conf) ? readFileSync(conf, 'utf8') : null;
  if (old !== config) writeFileSync(conf, config, { mode: 0o600 });
  const env = ['env', 'WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go', 'WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1'];
  const show = await run(inHolder(h.pid, ['wg', 'show', WG_DEVICE_IF, 'public-key']), { okCodes: [0, 1] });
  if (show.exitCode === 0 && old === config) return false;
  if (show.exitCode === 0) await run(inHolder(h.pid, [...env, 'wg-quick', 'down', conf]), { okCodes: [0, 1] });
  await run(inHolder(h.pid, [...env, 'wg-quick', 'up', conf]), { timeoutMs: 30000 });
  return true;
}
