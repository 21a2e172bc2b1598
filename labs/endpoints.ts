// Lab endpoints: every tenant resource (a node's tenant namespace n-<id>) and every access device, each with
// a small echo service (busybox httpd) that answers with its identity. Devices join their tenant network with
// the planner's wg-quick config through real `wg-quick up` (wireguard-go when there is no kernel module).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '../src/plan/index.ts';
import { ECHO_PORT, type HostLayout, type Layout } from './layout.ts';
import type { LabState } from './state.ts';
import { alive, fileInode, inHolder, inTenant, nsInode, run, signal, spawnDetached, waitGone, type ProcRef } from './sys.ts';
import { liveHolder } from './underlay.ts';

export interface Endpoint {
  /** "tenant/blueprint/network@node-or-device". */
  id: string;
  /** "tenant/blueprint/network". */
  net: string;
  tenant: string;
  kind: 'resource' | 'device';
  /** The node or device it lives on. */
  host: string;
  networkId: string;
  /** The address the matrix dials (a resource's gateway, a device's address). */
  address: string;
  /** Addresses this endpoint owns in its network (for telling an own answer from a foreign one). */
  owns: string[];
}

/** The echo service's answer: one line naming the endpoint. */
export function echoText(id: string): string {
  return `zmesh-lab-echo ${id}\n`;
}

export function parseEcho(text: string): string | null {
  const m = /zmesh-lab-echo (\S+)/.exec(text);
  return m ? m[1] : null;
}

export function endpointsOf(plans: { plan: Plan }[], layout: Layout): Endpoint[] {
  const out: Endpoint[] = [];
  const devices = new Set(layout.devices.map((d) => d.name));
  for (const { plan } of plans) {
    for (const n of plan.networks) {
      const net = `${plan.tenant}/${plan.blueprint}/${n.name}`;
      for (const r of n.resources) {
        out.push({ id: `${net}@${r.node}`, net, tenant: plan.tenant, kind: 'resource', host: r.node, networkId: n.id, address: r.gateway, owns: [r.gateway, r.wgAddress.split('/')[0]] });
      }
      for (const d of n.access) {
        if (!devices.has(d.name)) continue;
        out.push({ id: `${net}@${d.name}`, net, tenant: plan.tenant, kind: 'device', host: d.name, networkId: n.id, address: d.address, owns: [d.address] });
      }
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** argv running in the endpoint's network namespace, or null when it is not there (yet). */
export function endpointArgv(e: Endpoint, layout: Layout, state: LabState, argv: string[]): string[] | null {
  const host = e.kind === 'resource' ? layout.nodes.find((n) => n.name === e.host) : layout.devices.find((d) => d.name === e.host);
  if (!host) return null;
  const h = liveHolder(host, state);
  if (!h) return null;
  if (e.kind === 'device') return inHolder(h.pid, argv);
  if (fileInode(`/proc/${h.pid}/root/run/netns/n-${e.networkId}`) === null) return null;
  return inTenant(h.pid, e.networkId, argv);
}

/** The inode of the endpoint's network namespace, or null. */
function endpointNetInode(e: Endpoint, host: HostLayout, state: LabState): number | null {
  const h = liveHolder(host, state);
  if (!h) return null;
  return e.kind === 'device' ? h.net : fileInode(`/proc/${h.pid}/root/run/netns/n-${e.networkId}`);
}

const echoKey = (e: Endpoint) => (e.kind === 'device' ? `device:${e.host}/${e.networkId}` : `${e.host}/${e.networkId}`);

/** Starts (or restarts) each endpoint's echo service when it is missing or in a stale namespace. */
export async function ensureEcho(endpoints: Endpoint[], layout: Layout, state: LabState, dir: string): Promise<{ started: number; missing: string[] }> {
  let started = 0;
  const missing: string[] = [];
  const wanted = new Set(endpoints.map(echoKey));
  for (const [k, p] of Object.entries(state.echo)) {
    if (!wanted.has(k)) {
      signal(p, 'SIGKILL');
      delete state.echo[k];
    }
  }
  for (const e of endpoints) {
    const host = e.kind === 'resource' ? layout.nodes.find((n) => n.name === e.host) : layout.devices.find((d) => d.name === e.host);
    if (!host) continue;
    const key = echoKey(e);
    const ino = endpointNetInode(e, host, state);
    if (ino === null) {
      missing.push(e.id);
      continue;
    }
    const cur = state.echo[key];
    if (cur && alive(cur) && nsInode(cur.pid, 'net') === ino) continue;
    if (cur) {
      signal(cur, 'SIGKILL');
      await waitGone(cur, 2000);
    }
    const root = join(dir, 'echo', key.replace(/[/:]/g, '-'));
    mkdirSync(root, { recursive: true, mode: 0o755 });
    writeFileSync(join(root, 'index.html'), echoText(e.id), { mode: 0o644 });
    const argv = endpointArgv(e, layout, state, ['busybox', 'httpd', '-f', '-p', String(ECHO_PORT), '-h', root]);
    if (!argv) {
      missing.push(e.id);
      continue;
    }
    const p: ProcRef = spawnDetached(argv, { logFile: join(root, 'httpd.log') });
    state.echo[key] = { ...p, net: ino };
    started++;
  }
  return { started, missing };
}

export const WG_DEVICE_IF = 'zl0';

/** Brings an access device's tunnel up with `wg-quick` (again when its config changed or it is down). */
export async function ensureDeviceTunnel(device: HostLayout, config: string, state: LabState, dir: string): Promise<boolean> {
  const h = liveHolder(device, state);
  if (!h) return false;
  const ddir = join(dir, 'devices', device.name);
  mkdirSync(ddir, { recursive: true, mode: 0o700 });
  const conf = join(ddir, `${WG_DEVICE_IF}.conf`);
  const old = existsSync(conf) ? readFileSync(conf, 'utf8') : null;
  if (old !== config) writeFileSync(conf, config, { mode: 0o600 });
  const env = ['env', 'WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go', 'WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1'];
  const show = await run(inHolder(h.pid, ['wg', 'show', WG_DEVICE_IF, 'public-key']), { okCodes: [0, 1] });
  if (show.exitCode === 0 && old === config) return false;
  if (show.exitCode === 0) await run(inHolder(h.pid, [...env, 'wg-quick', 'down', conf]), { okCodes: [0, 1] });
  await run(inHolder(h.pid, [...env, 'wg-quick', 'up', conf]), { timeoutMs: 30000 });
  return true;
}
