// The lab underlay: an "internet" namespace (one bridge, 203.0.113.0/24), NAT routers (SNAT with conntrack,
// nftables) with a LAN bridge each, and per node or device a network namespace with a holder process that
// owns a mount namespace with a private /run. Every step reads first and creates only what is missing.
// `underlay: ipv6 | dual` (labs/layout.ts mirror6) adds or puts IPv6 in place of IPv4 on every link: the
// internet bridge 2001:db8:cb00:7100::1/64, NAT routers doing NAT66 (nft masquerade in the ip6 family, the same
// rules as for IPv4), hosts with a /64 and a default route to their gateway; addresses `nodad` (usable at once).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ZmeshError } from '../src/errors.ts';
import { INET_BRIDGE, INTERNET6_GW, INTERNET_GW, LAN_BRIDGE, UNDERLAY6_PREFIX, UNDERLAY_IF, WAN_LINK, underlayFamilies, type HostLayout, type Layout, type NatLayout } from './layout.ts';
import type { LabState } from './state.ts';
import { holderRunSource } from './cleanup.ts';
import { alive, cmdline, fileInode, inNs, nsInode, run, spawnDetached, waitFor, type ProcRef } from './sys.ts';

export interface LinkInfo {
  ifname: string;
  master?: string;
  flags: string[];
  operstate: string;
}

export async function links(ns: string): Promise<Map<string, LinkInfo>> {
  const r = await run(['ip', '-n', ns, '-j', 'link', 'show'], { okCodes: [0, 1, 255] });
  if (r.exitCode !== 0) return new Map();
  const list = JSON.parse(r.stdout || '[]') as LinkInfo[];
  return new Map(list.map((l) => [l.ifname, l]));
}

/** The addresses of a link (IPv4; with `family: 'inet6'` the global IPv6 ones), as "addr/prefix". */
async function addrs(ns: string, dev: string, family: 'inet' | 'inet6' = 'inet'): Promise<string[]> {
  const r = await run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', dev], { okCodes: [0, 1, 255] });
  if (r.exitCode !== 0) return [];
  const list = JSON.parse(r.stdout || '[]') as { addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[] }[];
  return list.flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === family && (family === 'inet' || a.scope === 'global')).map((a) => `${a.local}/${a.prefixlen}`));
}

/** `ip -6 -batch` lines giving an IPv6 underlay link its address (global ones replaced; link-local kept) and,
 *  with `gateway`, the default route. */
export function ipv6LinkBatch(dev: string, address: string, gateway?: string): string[] {
  return [`addr flush dev ${dev} scope global`, `addr add ${address}/${UNDERLAY6_PREFIX} dev ${dev} nodad`, `link set ${dev} up`, ...(gateway ? [`route replace default via ${gateway}`] : [])];
}

/** Creates a named network namespace (accepting "exists"), loopback up. */
export async function ensureNetns(ns: string): Promise<boolean> {
  let created = false;
  if (fileInode(`/run/netns/${ns}`) === null) {
    await run(['ip', 'netns', 'add', ns], { okCodes: [0, 1] });
    if (fileInode(`/run/netns/${ns}`) === null) throw new ZmeshError('E_LAB_NETNS', `could not create namespace ${ns}`, { kind: 'internal' });
    created = true;
  }
  if (created) await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  return created;
}

async function sysctl(ns: string, key: string, value: string): Promise<void> {
  await run(inNs(ns, ['sysctl', '-qw', `${key}=${value}`]));
}

export async function ensureInternet(layout: Layout): Promise<void> {
  const ns = layout.internetNs;
  await ensureNetns(ns);
  const l = await links(ns);
  const fam = underlayFamilies(layout);
  if (!l.has(INET_BRIDGE)) {
    await run(['ip', '-n', ns, '-batch', '-'], {
      input: [`link add ${INET_BRIDGE} type bridge`, ...(fam.v4 ? [`addr add ${INTERNET_GW}/24 dev ${INET_BRIDGE}`] : []), `link set ${INET_BRIDGE} up`].join('\n') + '\n',
    });
  }
  if (fam.v6 && !(await addrs(ns, INET_BRIDGE, 'inet6')).includes(`${INTERNET6_GW}/${UNDERLAY6_PREFIX}`)) {
    await run(['ip', '-n', ns, '-6', '-batch', '-'], { input: ipv6LinkBatch(INET_BRIDGE, INTERNET6_GW).join('\n') + '\n' });
  }
}

/**
 * nftables of a NAT router's IPv6 side (NAT66, as a home router that masquerades IPv6 too): the same rules as
 * natRuleset in the ip6 family, and neighbour discovery accepted on the WAN (the router must answer for its
 * address; ND is not tracked by conntrack). Hidden nodes are unreachable from outside except by replies.
 */
export function natRuleset6(type: 'cone' | 'symmetric' = 'cone'): string {
  return natRuleset(type)
    .replaceAll('table ip zlab_nat', 'table ip6 zlab_nat6')
    .replace(
      `    iifname "${WAN_LINK}" drop`,
      `    iifname "${WAN_LINK}" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n    iifname "${WAN_LINK}" drop`,
    );
}

/** The NAT router's whole ruleset for the layout's families (IPv4 alone: natRuleset, exactly as before). */
export function natRulesetFor(layout: Pick<Layout, 'underlay'>, type: 'cone' | 'symmetric' = 'cone'): string {
  const fam = underlayFamilies(layout);
  return (fam.v4 ? natRuleset(type) : '') + (fam.v6 ? natRuleset6(type) : '');
}

/**
 * nftables of a NAT router: masquerade out of the WAN link, only replies (conntrack) come back in, and nothing
 * unsolicited reaches the router itself from the WAN (as on a home router; it also keeps an unanswered probe
 * from leaving a conntrack entry that would make masquerade pick another port); hosts on the LAN reach each
 * other. cone: masquerade keeps the
 * inside port, one mapping per socket; symmetric: `masquerade random`, a new port per destination. No hairpin.
 */
export function natRuleset(type: 'cone' | 'symmetric' = 'cone'): string {
  return [
    'table ip zlab_nat',
    'delete table ip zlab_nat',
    'table ip zlab_nat {',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    oifname "${WAN_LINK}" masquerade${type === 'symmetric' ? ' random' : ''}`,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname "${WAN_LINK}" ct state established,related accept`,
    `    iifname "${WAN_LINK}" drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    '    ct state established,related accept',
    `    iifname "${LAN_BRIDGE}" oifname "${WAN_LINK}" accept`,
    // Hosts on the LAN reach each other (bridged frames pass this hook where br_netfilter is on, as here).
    `    iifname "${LAN_BRIDGE}" oifname "${LAN_BRIDGE}" accept`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** A NAT router's LAN bridge MAC: locally administered, fixed per router namespace. */
export function lanBridgeMac(ns: string): string {
  const h = createHash('sha256').update(ns).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export async function ensureNat(nat: NatLayout, layout: Layout): Promise<void> {
  const ns = nat.ns;
  await ensureNetns(ns);
  const l = await links(ns);
  const fam = underlayFamilies(layout);
  const batch: string[] = [];
  if (!l.has(LAN_BRIDGE) && !fam.v4) {
    batch.push(`link add ${LAN_BRIDGE} address ${lanBridgeMac(nat.ns)} type bridge`, `link set ${LAN_BRIDGE} up`);
  } else if (!l.has(LAN_BRIDGE)) {
    // The bridge's MAC pinned (a bridge otherwise takes its lowest port's, and changes it when ports come and go —
    // a reboot, a delay line spliced in —: hosts then send to a gateway MAC that is gone, the frames are bridged,
    // and conntrack keeps an un-NATed entry for the flow that the hidden nodes' 25 s keepalives never let expire).
    batch.push(`link add ${LAN_BRIDGE} address ${lanBridgeMac(nat.ns)} type bridge`, `addr add ${nat.lanGateway}/${nat.lan.split('/')[1]} dev ${LAN_BRIDGE}`, `link set ${LAN_BRIDGE} up`);
  }
  if (batch.length) await run(['ip', '-n', ns, '-batch', '-'], { input: batch.join('\n') + '\n' });
  if (!l.has(WAN_LINK)) {
    await run(['ip', '-n', layout.internetNs, 'link', 'del', nat.port], { okCodes: [0, 1, 2] });
    await run(['ip', '-n', ns, 'link', 'add', WAN_LINK, 'type', 'veth', 'peer', 'name', nat.port, 'netns', layout.internetNs]);
  }
  if (fam.v4 && !(await addrs(ns, WAN_LINK)).includes(`${nat.wanAddress}/24`)) {
    await run(['ip', '-n', ns, '-batch', '-'], {
      input: [`addr flush dev ${WAN_LINK}`, `addr add ${nat.wanAddress}/24 dev ${WAN_LINK}`, `link set ${WAN_LINK} up`, `route replace default via ${INTERNET_GW}`].join('\n') + '\n',
    });
  }
  if (fam.v6) {
    const b: string[] = [];
    if (!(await addrs(ns, WAN_LINK, 'inet6')).includes(`${nat.wanAddress6}/${UNDERLAY6_PREFIX}`)) b.push(...ipv6LinkBatch(WAN_LINK, nat.wanAddress6!, INTERNET6_GW));
    if (!(await addrs(ns, LAN_BRIDGE, 'inet6')).includes(`${nat.lanGateway6}/${UNDERLAY6_PREFIX}`)) b.push(...ipv6LinkBatch(LAN_BRIDGE, nat.lanGateway6!));
    if (b.length) await run(['ip', '-n', ns, '-6', '-batch', '-'], { input: b.join('\n') + '\n' });
  }
  await run(['ip', '-n', layout.internetNs, 'link', 'set', nat.port, 'master', INET_BRIDGE, 'up']);
  if (fam.v4) await sysctl(ns, 'net.ipv4.ip_forward', '1');
  if (fam.v6) await sysctl(ns, 'net.ipv6.conf.all.forwarding', '1');
  await run(inNs(ns, ['nft', '-f', '-']), { input: natRulesetFor(layout, nat.type) });
}

/** The shell a holder runs: drop the copies of the host's /run mounts, mount a private tmpfs on /run (its
 *  source names the lab: `lab down` recognises lab mount namespaces by it) and a sysfs of its own network
 *  namespace — keeping the host's cgroup mounts under it (moved over from a temporary place), which a
 *  node's Docker engine needs — then sleep forever (its PID keeps the mount namespace). */
export function holderScript(lab: string): string {
  return [
    "awk '$2 ~ \"^/run(/|$)\" {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l \"$m\" 2>/dev/null; done",
    `mount -t tmpfs -o mode=0755,size=64m ${holderRunSource(lab)} /run`,
    'mkdir -p /run/netns /run/wireguard /run/zmesh /run/.cgroup',
    '{ ! mountpoint -q /sys/fs/cgroup || mount --rbind /sys/fs/cgroup /run/.cgroup; }',
    'umount -l /sys && mount -t sysfs sysfs /sys',
    '{ ! mountpoint -q /run/.cgroup || mount --move /run/.cgroup /sys/fs/cgroup; }',
    'rmdir /run/.cgroup',
    'exec sleep infinity',
  ].join(' && ');
}

function isHolder(pid: number): boolean {
  const c = cmdline(pid);
  return c[0] === 'sleep' && c[1] === 'infinity';
}

export interface Holder extends ProcRef {
  net: number;
  mnt: number;
}

/** A live holder of this host's namespaces (checked by PID, start time and namespace inode), or null. */
export function liveHolder(host: HostLayout, state: LabState): Holder | null {
  const h = state.holders[host.name];
  if (!h || !alive(h) || nsInode(h.pid, 'net') !== h.net || nsInode(h.pid, 'mnt') !== h.mnt) return null;
  if (fileInode(`/run/netns/${host.ns}`) !== h.net) return null;
  return h;
}

/** The namespace and its holder (a mount namespace with a private /run), creating what is missing. */
export async function ensureHolder(host: HostLayout, state: LabState, logFile: string): Promise<Holder> {
  await ensureNetns(host.ns);
  const h = liveHolder(host, state);
  if (h) return h;
  const p = spawnDetached(['nsenter', `--net=/run/netns/${host.ns}`, '--', 'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', holderScript(state.name)], {
    logFile,
  });
  const ok = await waitFor(() => isHolder(p.pid), 5000, 20);
  if (!ok) {
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8').split('\n').slice(-5).join(' | ');
    } catch {
      /* no log */
    }
    throw new ZmeshError('E_LAB_HOLDER', `the namespace holder of ${host.name} did not start`, { kind: 'internal', hint: log || 'see the holder log' });
  }
  const holder: Holder = { pid: p.pid, start: p.start, net: nsInode(p.pid, 'net')!, mnt: nsInode(p.pid, 'mnt')! };
  state.holders[host.name] = holder;
  return holder;
}

/** The underlay veth of a node or device: eth0 inside, its port on the internet bridge or a NAT's LAN bridge;
 *  its addresses in the families of the lab's underlay. */
export async function ensureHostLink(host: HostLayout, underlay?: Layout['underlay']): Promise<void> {
  const l = await links(host.ns);
  if (!l.has(UNDERLAY_IF)) {
    // 2: the port went away by itself meanwhile (a deleted namespace takes its veth pair asynchronously).
    await run(['ip', '-n', host.upstreamNs, 'link', 'del', host.port], { okCodes: [0, 1, 2] });
    await run(['ip', '-n', host.ns, 'link', 'add', UNDERLAY_IF, 'type', 'veth', 'peer', 'name', host.port, 'netns', host.upstreamNs]);
  }
  if (underlayFamilies({ underlay }).v4 && !(await addrs(host.ns, UNDERLAY_IF)).includes(`${host.address}/${host.prefix}`)) {
    await run(['ip', '-n', host.ns, '-batch', '-'], {
      input: [`addr flush dev ${UNDERLAY_IF}`, `addr add ${host.address}/${host.prefix} dev ${UNDERLAY_IF}`, `link set ${UNDERLAY_IF} up`, `route replace default via ${host.gateway}`].join('\n') + '\n',
    });
  }
  if (underlayFamilies({ underlay }).v6 && host.address6 && !(await addrs(host.ns, UNDERLAY_IF, 'inet6')).includes(`${host.address6}/${UNDERLAY6_PREFIX}`)) {
    await run(['ip', '-n', host.ns, '-6', '-batch', '-'], { input: ipv6LinkBatch(UNDERLAY_IF, host.address6, host.gateway6).join('\n') + '\n' });
  }
}

/** The bridge a host's port belongs on. */
export function upstreamBridge(host: HostLayout): string {
  return host.attach.kind === 'internet' ? INET_BRIDGE : LAN_BRIDGE;
}

/** Attaches (or detaches, for a delay line) the host's port and sets it up or down (the `cut` fault). */
export async function setPort(host: HostLayout, opts: { up: boolean; bridged: boolean }): Promise<void> {
  const argv = ['ip', '-n', host.upstreamNs, 'link', 'set', host.port];
  if (opts.bridged) argv.push('master', upstreamBridge(host));
  else argv.push('nomaster');
  argv.push(opts.up ? 'up' : 'down');
  await run(argv);
}
