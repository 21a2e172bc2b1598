// An in-memory model of the bits of Linux the netns driver touches, behind the Runner interface: it answers
// the read commands (`ip -json`, `wg show dump`, `nft -j`) from its state and applies the mutating ones
// (`ip -batch`, `ip netns`, `wg set`, `nft -f`, `sysctl`). It models the kernel behaviours the driver relies on
// (connected routes follow addresses of up links; routes through a link vanish when it goes down, is deleted,
// moves, or loses its last address; a veth pair dies together; a namespace takes its links with it).
// Any command it does not know is recorded in `unexpected` and fails. `dump()` prints the state as text.
import { Key, x25519PublicKey } from '../../src/crypto/index.ts';
import { canonicalCidr, cidrContains, parseCidr, parseIp } from '../../netns/ip.ts';
import { HOST_READ, NS_READ, NS_READ6 } from '../../netns/state.ts';
import type { DaemonHandle, RunOptions, RunResult, Runner } from '../../netns/runner.ts';

export interface FakeLink {
  index: number;
  name: string;
  kind: 'loopback' | 'bridge' | 'wireguard' | 'veth' | 'ether';
  mtu: number;
  up: boolean;
  alias: string | null;
  mac: string;
  addrs: string[];
  /** The other end of a veth. */
  peer: FakeLink | null;
  wg: FakeWg | null;
  ns: FakeNs;
}

export interface FakePeer {
  endpoint: string | null;
  allowedIps: string[];
  keepalive: number | null;
  latestHandshake: number;
}

export interface FakeWg {
  privateKey: string | null;
  listenPort: number;
  peers: Map<string, FakePeer>;
}

export interface FakeRoute {
  dst: string;
  dev: string;
  gateway: string | null;
}

export interface FakeNftTable {
  family: string;
  name: string;
  chains: { name: string; type: string; hook: string; prio: number }[];
  rules: { chain: string; comment: string | null }[];
  /** Named interval sets: elements as written ("a/len" or "a-b"). */
  sets: { name: string; type: string; elements: string[] }[];
}

export interface FakeNs {
  name: string;
  links: Map<string, FakeLink>;
  routes: FakeRoute[];
  /** IPv6 routes (only the host's are ever read, for the egress blocked set). */
  routes6: FakeRoute[];
  forwarding: boolean;
  /** IPv6 forwarding and accept_ra ("all" and "default"), as the dual-stack sysctl sets them. */
  forwarding6: boolean;
  acceptRa: boolean;
  nft: Map<string, FakeNftTable>;
}

class CmdFail extends Error {
  constructor(
    msg: string,
    readonly code = 1,
  ) {
    super(msg);
  }
}

function newNs(name: string): FakeNs {
  return { name, links: new Map(), routes: [], routes6: [], forwarding: false, forwarding6: false, acceptRa: true, nft: new Map() };
}

export class FakeOs implements Runner {
  readonly host: FakeNs = newNs('(host)');
  readonly namespaces = new Map<string, FakeNs>();
  readonly unexpected: string[] = [];
  readonly commands: { argv: string[]; netns?: string; mutating: boolean }[] = [];
  private nextIndex = 1;

  netnsExists(name: string): boolean {
    return this.namespaces.has(name);
  }

  constructor() {
    this.addLink(this.host, 'lo', 'loopback', 65536).up = true;
    const eth = this.addLink(this.host, 'eth0', 'ether', 1500);
    eth.up = true;
    eth.addrs.push('192.0.2.2/24');
    this.host.routes.push({ dst: 'default', dev: 'eth0', gateway: '192.0.2.1' });
  }

  private addLink(ns: FakeNs, name: string, kind: FakeLink['kind'], mtu: number): FakeLink {
    if (ns.links.has(name)) throw new CmdFail('RTNETLINK answers: File exists', 2);
    if (name.length > 15) throw new CmdFail(`Error: argument "${name}" is wrong: "name" not a valid ifname`, 255);
    const l: FakeLink = { index: this.nextIndex++, name, kind, mtu, up: false, alias: null, mac: `aa:00:00:00:${((this.nextIndex >> 8) & 255).toString(16).padStart(2, '0')}:${(this.nextIndex & 255).toString(16).padStart(2, '0')}`, addrs: [], peer: null, wg: null, ns };
    if (kind === 'wireguard') l.wg = { privateKey: null, listenPort: 0, peers: new Map() };
    ns.links.set(name, l);
    return l;
  }

  private dropRoutesVia(ns: FakeNs, dev: string): void {
    ns.routes = ns.routes.filter((r) => r.dev !== dev);
  }

  /** Deletes a link (and its veth peer) wherever it is. */
  removeLink(l: FakeLink): void {
    l.ns.links.delete(l.name);
    this.dropRoutesVia(l.ns, l.name);
    const p = l.peer;
    if (p && p.ns.links.get(p.name) === p) {
      p.ns.links.delete(p.name);
      this.dropRoutesVia(p.ns, p.name);
    }
  }

  private nsOf(netns: string | undefined): FakeNs {
    if (netns === undefined) return this.host;
    const ns = this.namespaces.get(netns);
    if (!ns) throw new CmdFail(`Cannot open network namespace "${netns}": No such file or directory`, 1);
    return ns;
  }

  /** Connected routes: from the addresses of links that are up. */
  private kernelRoutes(ns: FakeNs): { dst: string; dev: string }[] {
    const out: { dst: string; dev: string }[] = [];
    for (const l of ns.links.values()) {
      if (!l.up || l.kind === 'loopback') continue;
      for (const a of l.addrs) {
        const c = parseCidr(a)!;
        if (c.prefix < (c.family === 4 ? 32 : 128)) out.push({ dst: canonicalCidr(a), dev: l.name });
      }
    }
    return out;
  }

  // ---- Runner ---------------------------------------------------------------------------------------

  async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    this.commands.push({ argv, netns: opts.netns, mutating: opts.mutating });
    try {
      const stdout = this.exec(argv, opts);
      return { argv, exitCode: 0, stdout, stderr: '' };
    } catch (e) {
      if (e instanceof CmdFail) {
        const exitCode = e.code;
        if ((opts.okCodes ?? [0]).includes(exitCode)) return { argv, exitCode, stdout: '', stderr: e.message };
        const { CommandError } = await import('../../netns/runner.ts');
        throw new CommandError(argv, exitCode, e.message + '\n', { netns: opts.netns });
      }
      throw e;
    }
  }

  spawnDaemon(argv: string[]): DaemonHandle {
    this.unexpected.push(`spawn ${argv.join(' ')}`);
    throw new Error(`fake OS: unexpected daemon ${argv.join(' ')}`);
  }

  private fail(argv: string[], opts: RunOptions, why = 'unexpected command'): never {
    const line = `${opts.netns ? `[${opts.netns}] ` : ''}${argv.join(' ')}${opts.input ? ` <<< ${JSON.stringify(opts.input)}` : ''}`;
    this.unexpected.push(`${why}: ${line}`);
    throw new Error(`fake OS: ${why}: ${line}`);
  }

  private exec(argv: string[], opts: RunOptions): string {
    const a = argv.join(' ');
    // Reads.
    if (a === 'ip -d -json -batch -') {
      const want = opts.netns ? (opts.input === NS_READ6 ? NS_READ6 : NS_READ) : HOST_READ;
      if (opts.input !== want) this.fail(argv, opts, 'unexpected batch read');
      return this.readBatch(this.nsOf(opts.netns), want);
    }
    if (a === 'ip -json link show dev lo' && opts.netns) return JSON.stringify([this.linkJson(this.nsOf(opts.netns).links.get('lo')!, false)]);
    let m = /^wg show (\S+) dump$/.exec(a);
    if (m) return this.wgDump(this.nsOf(opts.netns), m[1]);
    if (a === 'nft -j list ruleset') return this.nftJson(this.nsOf(opts.netns));
    if (a === 'ip -4 -json route show table main') return this.readBatch(this.nsOf(opts.netns), 'route show table main\n');
    if (a === 'ip -6 -json route show table main') {
      return JSON.stringify(this.nsOf(opts.netns).routes6.map((r) => ({ dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), dev: r.dev, protocol: r.gateway ? 'static' : 'kernel', metric: 256, flags: [] })));
    }
    if (!opts.mutating) this.fail(argv, opts, 'unexpected read');
    // Mutations.
    m = /^ip netns add (\S+)$/.exec(a);
    if (m && !opts.netns) {
      if (this.namespaces.has(m[1])) throw new CmdFail(`Cannot create namespace file "/run/netns/${m[1]}": File exists`);
      const ns = newNs(m[1]);
      this.namespaces.set(m[1], ns);
      this.addLink(ns, 'lo', 'loopback', 65536);
      return '';
    }
    m = /^ip netns del (\S+)$/.exec(a);
    if (m && !opts.netns) {
      const ns = this.nsOf(m[1]);
      for (const l of [...ns.links.values()]) this.removeLink(l);
      this.namespaces.delete(m[1]);
      return '';
    }
    m = /^ip (link (?:set|del) .*)$/.exec(a);
    if (m) {
      this.ipLine(this.nsOf(opts.netns), m[1], argv, opts);
      return '';
    }
    m = /^ip (-force )?-batch -$/.exec(a);
    if (m) {
      const ns = this.nsOf(opts.netns);
      let failed: string | null = null;
      for (const line of (opts.input ?? '').split('\n').filter((l) => l !== '')) {
        try {
          this.ipLine(ns, line, argv, opts);
        } catch (e) {
          if (!(e instanceof CmdFail)) throw e;
          failed = failed ?? `${e.message}\nCommand failed -:${line}`;
          if (!m[1]) break;
        }
      }
      if (failed) throw new CmdFail(failed);
      return '';
    }
    m = /^wg set (\S+) (.*)$/.exec(a);
    if (m) {
      this.wgSet(this.nsOf(opts.netns), m[1], argv.slice(3), opts);
      return '';
    }
    if (a === 'sysctl -q -w net.ipv4.ip_forward=1') {
      this.nsOf(opts.netns).forwarding = true;
      return '';
    }
    if (a === 'sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0') {
      const ns = this.nsOf(opts.netns);
      ns.forwarding = true;
      ns.forwarding6 = true;
      ns.acceptRa = false;
      return '';
    }
    if (a === 'nft -f -') {
      this.nftScript(this.nsOf(opts.netns), opts.input ?? '', argv, opts);
      return '';
    }
    this.fail(argv, opts);
  }

  // ---- ip ------------------------------------------------------------------------------------------

  private linkJson(l: FakeLink, withAddrs: boolean): Record<string, unknown> {
    const flags = l.kind === 'loopback' ? ['LOOPBACK'] : l.kind === 'wireguard' ? ['POINTOPOINT', 'NOARP'] : ['BROADCAST', 'MULTICAST'];
    if (l.up) flags.push('UP', 'LOWER_UP');
    const j: Record<string, unknown> = {
      ifindex: l.index,
      ifname: l.name,
      flags,
      mtu: l.mtu,
      qdisc: 'noqueue',
      operstate: l.up ? 'UNKNOWN' : 'DOWN',
      group: 'default',
      link_type: l.kind === 'loopback' ? 'loopback' : l.kind === 'wireguard' ? 'none' : 'ether',
    };
    if (l.alias !== null) j.ifalias = l.alias;
    if (j.link_type === 'ether') j.address = l.mac;
    if (l.kind !== 'loopback' && l.kind !== 'ether') j.linkinfo = { info_kind: l.kind };
    if (withAddrs) {
      j.addr_info = l.addrs.map((c) => {
        const [local, prefixlen] = c.split('/');
        if (local.includes(':')) return { family: 'inet6', local, prefixlen: Number(prefixlen), scope: 'global', ...(l.kind === 'wireguard' ? {} : { nodad: true }), valid_life_time: 4294967295 };
        return { family: 'inet', local, prefixlen: Number(prefixlen), scope: 'global', label: l.name, valid_life_time: 4294967295 };
      });
    }
    return j;
  }

  private readBatch(ns: FakeNs, input: string): string {
    const out: string[] = [];
    for (const line of input.split('\n').filter((l) => l !== '')) {
      if (line === 'address show') out.push(JSON.stringify([...ns.links.values()].sort((x, y) => x.index - y.index).map((l) => this.linkJson(l, true))));
      else if (line === 'route show default') out.push(JSON.stringify(ns.routes.filter((r) => r.dst === 'default').map((r) => ({ dst: 'default', gateway: r.gateway, dev: r.dev, flags: [] }))));
      else if (line === 'route show table main' || line === 'route show table all') {
        // `table main` is IPv4's alone; `table all` lists both families and the local table (with a "table" field).
        const all = line === 'route show table all';
        const rows = [
          ...ns.routes.map((r) => ({ dst: r.dst, ...(r.gateway ? { gateway: r.gateway } : {}), dev: r.dev, protocol: 'static', ...(r.gateway ? {} : { scope: 'link' }), flags: [] })),
          ...this.kernelRoutes(ns).map((r) => ({ dst: r.dst, dev: r.dev, protocol: 'kernel', scope: 'link', flags: [] })),
        ].filter((r) => all || !r.dst.includes(':'));
        if (all) {
          for (const l of ns.links.values()) for (const c of l.addrs) rows.push({ type: 'local', dst: c.split('/')[0], table: 'local', dev: l.name, protocol: 'kernel', scope: 'host', flags: [] } as (typeof rows)[number]);
        }
        out.push(JSON.stringify(rows));
      } else if (line === 'netconf show') {
        out.push(
          JSON.stringify([
            { family: 'inet', interface: 'all', forwarding: ns.forwarding },
            { family: 'inet', interface: 'default', forwarding: ns.forwarding },
            { family: 'inet6', interface: 'all', forwarding: ns.forwarding6 },
            { family: 'inet6', interface: 'default', forwarding: ns.forwarding6 },
          ]),
        );
      }
      else if (line === 'netns list') {
        if (this.namespaces.size > 0) out.push(JSON.stringify([...this.namespaces.keys()].map((name) => ({ name }))));
      } else throw new Error(`fake OS: unexpected batch read line ${line}`);
    }
    return out.join('\n') + '\n';
  }

  private link(ns: FakeNs, name: string): FakeLink {
    const l = ns.links.get(name);
    if (!l) throw new CmdFail(`Cannot find device "${name}"`);
    return l;
  }

  private ipLine(ns: FakeNs, line: string, argv: string[], opts: RunOptions): void {
    const t = line.split(/\s+/);
    let m: RegExpExecArray | null;
    if ((m = /^link add name (\S+)(?: address (\S+))? type (bridge|wireguard)$/.exec(line))) {
      const l = this.addLink(ns, m[1], m[3] as 'bridge' | 'wireguard', m[3] === 'bridge' ? 1500 : 1420);
      if (m[2]) l.mac = m[2];
      return;
    }
    if ((m = /^link add name (\S+) type veth peer name (\S+) netns (\S+)$/.exec(line))) {
      const other = this.nsOf(m[3]);
      if (other.links.has(m[2])) throw new CmdFail('RTNETLINK answers: File exists', 2);
      const a = this.addLink(ns, m[1], 'veth', 1500);
      const b = this.addLink(other, m[2], 'veth', 1500);
      a.peer = b;
      b.peer = a;
      return;
    }
    if ((m = /^link set dev (\S+) netns (\S+)$/.exec(line))) {
      const l = this.link(ns, m[1]);
      const to = this.nsOf(m[2]);
      if (to.links.has(l.name)) throw new CmdFail('RTNETLINK answers: File exists', 2);
      ns.links.delete(l.name);
      this.dropRoutesVia(ns, l.name);
      l.ns = to;
      l.up = false;
      l.addrs = [];
      to.links.set(l.name, l);
      return;
    }
    if (t[0] === 'link' && t[1] === 'set' && t[2] === 'dev') {
      const l = this.link(ns, t[3]);
      for (let i = 4; i < t.length; i++) {
        if (t[i] === 'alias') l.alias = t[++i];
        else if (t[i] === 'mtu') l.mtu = Number(t[++i]);
        else if (t[i] === 'address') l.mac = t[++i];
        else if (t[i] === 'up') l.up = true;
        else if (t[i] === 'down') {
          l.up = false;
          this.dropRoutesVia(ns, l.name);
        } else this.fail(argv, opts, `unexpected ip line "${line}"`);
      }
      return;
    }
    if ((m = /^link del dev (\S+)$/.exec(line))) {
      this.removeLink(this.link(ns, m[1]));
      return;
    }
    if ((m = /^address (add|del) (\S+) dev (\S+)( nodad)?$/.exec(line))) {
      const l = this.link(ns, m[3]);
      const cidr = m[2];
      // IPv6 addresses are added nodad (usable at once), IPv4 ones never carry the flag.
      if (m[1] === 'add' && cidr.includes(':') !== (m[4] !== undefined)) this.fail(argv, opts, `unexpected ip line "${line}"`);
      if (m[1] === 'add') {
        if (l.addrs.includes(cidr)) throw new CmdFail('RTNETLINK answers: File exists', 2);
        l.addrs.push(cidr);
      } else {
        if (!l.addrs.includes(cidr)) throw new CmdFail('RTNETLINK answers: Cannot assign requested address', 2);
        l.addrs = l.addrs.filter((x) => x !== cidr);
        if (l.addrs.length === 0) this.dropRoutesVia(ns, l.name);
      }
      return;
    }
    if ((m = /^route replace (\S+)(?: via (\S+))? dev (\S+) proto static$/.exec(line))) {
      const [dst, gw, dev] = [m[1], m[2] ?? null, m[3]];
      const l = this.link(ns, dev);
      if (!l.up) throw new CmdFail('Error: Nexthop device is not up.', 2);
      if (gw) {
        const g = parseIp(gw)!;
        const onLink = l.addrs.some((a) => cidrContains(parseCidr(canonicalCidr(a))!, { family: g.family, value: g.value, prefix: 32 }));
        if (!onLink) throw new CmdFail('Error: Nexthop has invalid gateway.', 2);
      }
      ns.routes = ns.routes.filter((r) => r.dst !== dst);
      ns.routes.push({ dst, dev, gateway: gw });
      return;
    }
    if ((m = /^route del (\S+)(?: dev (\S+))? proto static$/.exec(line))) {
      const i = ns.routes.findIndex((r) => r.dst === m![1] && (m![2] === undefined || r.dev === m![2]));
      if (i < 0) throw new CmdFail('RTNETLINK answers: No such process', 2);
      ns.routes.splice(i, 1);
      return;
    }
    this.fail(argv, opts, `unexpected ip line "${line}"`);
  }

  // ---- wg ------------------------------------------------------------------------------------------

  private wgDev(ns: FakeNs, ifname: string): FakeWg {
    const l = ns.links.get(ifname);
    if (!l || !l.wg) throw new CmdFail(`Unable to access interface: No such device`);
    return l.wg;
  }

  private wgDump(ns: FakeNs, ifname: string): string {
    const w = this.wgDev(ns, ifname);
    const pub = w.privateKey ? x25519PublicKey(Key.parse(w.privateKey)).toString() : '(none)';
    const lines = [`${w.privateKey ?? '(none)'}\t${pub}\t${w.listenPort}\toff`];
    for (const [k, p] of w.peers) {
      lines.push([k, '(none)', p.endpoint ?? '(none)', p.allowedIps.join(',') || '(none)', p.latestHandshake, 0, 0, p.keepalive ?? 'off'].join('\t'));
    }
    return lines.join('\n') + '\n';
  }

  private wgSet(ns: FakeNs, ifname: string, args: string[], opts: RunOptions): void {
    const w = this.wgDev(ns, ifname);
    let peer: FakePeer | null = null;
    let key = '';
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a === 'listen-port' && !peer) w.listenPort = Number(args[++i]);
      else if (a === 'private-key' && !peer) {
        i++;
        if (opts.secretFile === undefined) this.fail(args, opts, 'private key not handed over as a secret file');
        w.privateKey = opts.secretFile.trim();
      } else if (a === 'peer') {
        key = args[++i];
        peer = w.peers.get(key) ?? { endpoint: null, allowedIps: [], keepalive: null, latestHandshake: 0 };
        w.peers.set(key, peer);
      } else if (peer && a === 'remove') w.peers.delete(key);
      else if (peer && a === 'endpoint') peer.endpoint = args[++i];
      else if (peer && a === 'persistent-keepalive') {
        const v = args[++i];
        peer.keepalive = v === 'off' ? null : Number(v);
      } else if (peer && a === 'allowed-ips') peer.allowedIps = args[++i] === '' ? [] : args[i].split(',').map((c) => canonicalCidr(c));
      else this.fail(args, opts, `unexpected wg set argument ${a}`);
    }
  }

  // ---- nft -----------------------------------------------------------------------------------------

  private nftJson(ns: FakeNs): string {
    const items: unknown[] = [{ metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } }];
    let handle = 1;
    for (const t of ns.nft.values()) {
      items.push({ table: { family: t.family, name: t.name, handle: handle++ } });
      for (const c of t.chains) items.push({ chain: { family: t.family, table: t.name, name: c.name, handle: handle++, type: c.type, hook: c.hook, prio: c.prio, policy: 'accept' } });
      for (const st of t.sets) {
        // As nft 1.0.6 prints them: a bare address for a full-length prefix, {prefix} or {range} otherwise.
        const elem = st.elements.map((e) => {
          const range = /^(.+)-(.+)$/.exec(e);
          if (range) return { range: [range[1], range[2]] };
          const [addr, len] = e.split('/');
          return Number(len) === (addr.includes(':') ? 128 : 32) ? addr : { prefix: { addr, len: Number(len) } };
        });
        items.push({ set: { family: t.family, name: st.name, table: t.name, type: st.type, handle: handle++, flags: ['interval'], ...(elem.length ? { elem } : {}) } });
      }
      for (const r of t.rules) items.push({ rule: { family: t.family, table: t.name, chain: r.chain, handle: handle++, ...(r.comment ? { comment: r.comment } : {}), expr: [] } });
    }
    return JSON.stringify({ nftables: items });
  }

  private nftScript(ns: FakeNs, script: string, argv: string[], opts: RunOptions): void {
    const next = new Map([...ns.nft].map(([k, t]) => [k, structuredClone(t)]));
    const lines = script.split('\n').map((l) => l.trim());
    let table: FakeNftTable | null = null;
    let chain: string | null = null;
    let set: FakeNftTable['sets'][number] | null = null;
    for (const line of lines) {
      if (line === '') continue;
      let m: RegExpExecArray | null;
      if (set) {
        if ((m = /^type (ipv4_addr|ipv6_addr)$/.exec(line))) set.type = m[1];
        else if (line === 'flags interval') {
          /* the only kind of set the driver writes */
        } else if ((m = /^elements = \{ (.+) \}$/.exec(line))) set.elements = m[1].split(', ');
        else if (line === '}') set = null;
        else this.fail(argv, opts, `unexpected nft set line "${line}"`);
        continue;
      }
      if (!table && (m = /^table (\w+) (\w+)$/.exec(line))) {
        const k = `${m[1]} ${m[2]}`;
        if (!next.has(k)) next.set(k, { family: m[1], name: m[2], chains: [], rules: [], sets: [] });
      } else if (!table && (m = /^delete table (\w+) (\w+)$/.exec(line))) {
        if (!next.delete(`${m[1]} ${m[2]}`)) throw new CmdFail('Error: Could not process rule: No such file or directory');
      } else if (!table && (m = /^table (\w+) (\w+) \{$/.exec(line))) {
        const k = `${m[1]} ${m[2]}`;
        table = next.get(k) ?? { family: m[1], name: m[2], chains: [], rules: [], sets: [] };
        next.set(k, table);
      } else if (table && !chain && /^comment ".*"$/.test(line)) {
        /* table comment */
      } else if (table && !chain && (m = /^set (\w+) \{$/.exec(line))) {
        set = { name: m[1], type: '', elements: [] };
        table.sets.push(set);
      } else if (table && !chain && (m = /^chain ([\w-]+) \{$/.exec(line))) {
        chain = m[1];
      } else if (table && chain && (m = /^type (\w+) hook (\w+) priority (\w+); policy accept;$/.exec(line))) {
        const prio = { filter: 0, srcnat: 100, dstnat: -100, mangle: -150 }[m[3]] ?? 0;
        table.chains.push({ name: chain, type: m[1], hook: m[2], prio });
      } else if (table && chain && line === '}') {
        chain = null;
      } else if (table && !chain && line === '}') {
        table = null;
      } else if (table && chain) {
        const c = /comment "([^"]*)"$/.exec(line);
        table.rules.push({ chain, comment: c ? c[1] : null });
      } else {
        this.fail(argv, opts, `unexpected nft line "${line}"`);
      }
    }
    ns.nft.clear();
    for (const [k, t] of next) ns.nft.set(k, t);
  }

  // ---- inspection ----------------------------------------------------------------------------------

  /** The state as sorted text (rule comments shown by tag, without their hash). */
  dump(): string {
    const out: string[] = [];
    const nsDump = (title: string, ns: FakeNs) => {
      out.push(title);
      for (const l of [...ns.links.values()].sort((x, y) => (x.name < y.name ? -1 : 1))) {
        if (ns === this.host && (l.name === 'lo' || l.name === 'eth0')) continue;
        const peer = l.peer ? ` peer ${l.peer.ns === this.host ? 'host' : l.peer.ns.name}/${l.peer.name}` : '';
        out.push(`  link ${l.name} ${l.kind} mtu ${l.mtu} ${l.up ? 'up' : 'down'} alias ${l.alias ?? '-'} addrs ${[...l.addrs].sort().join(',') || '-'}${peer}`);
        if (l.wg) {
          const pub = l.wg.privateKey ? x25519PublicKey(Key.parse(l.wg.privateKey)).toString() : '-';
          out.push(`    wg key ${pub} port ${l.wg.listenPort}`);
          for (const k of [...l.wg.peers.keys()].sort()) {
            const p = l.wg.peers.get(k)!;
            out.push(`    peer ${k} endpoint ${p.endpoint ?? '-'} allowed ${[...p.allowedIps].sort().join(',') || '-'} keepalive ${p.keepalive ?? 'off'}`);
          }
        }
      }
      if (ns !== this.host) {
        const routes = [...ns.routes.map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev} static`), ...this.kernelRoutes(ns).map((r) => `${r.dst} dev ${r.dev} kernel`)];
        for (const r of routes.sort()) out.push(`  route ${r}`);
        out.push(`  forwarding ${ns.forwarding ? 'on' : 'off'}`);
        if (ns.forwarding6) out.push(`  forwarding6 on accept_ra ${ns.acceptRa ? 'on' : 'off'}`);
      }
      for (const t of [...ns.nft.values()].sort((x, y) => (x.name < y.name ? -1 : 1))) {
        out.push(`  nft ${t.family} ${t.name}`);
        for (const st of t.sets) out.push(`    set ${st.name} ${st.type}: ${st.elements.join(',') || '-'}`);
        for (const c of t.chains) {
          const tags = t.rules.filter((r) => r.chain === c.name).map((r) => (r.comment ?? '-').replace(/^zmesh:[0-9a-f]+:/, ''));
          out.push(`    ${c.name} ${c.type}/${c.hook}: ${tags.join(' ')}`);
        }
      }
    };
    nsDump('host', this.host);
    for (const name of [...this.namespaces.keys()].sort()) nsDump(`netns ${name}`, this.namespaces.get(name)!);
    return out.join('\n') + '\n';
  }

  mutatingCount(): number {
    return this.commands.filter((c) => c.mutating).length;
  }
}
