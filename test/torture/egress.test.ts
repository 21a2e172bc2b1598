// Egress goes to the outside only (issue #14, part 2). The lab of the report, in simulated hosts running the
// netns driver: public nodes a and b on the lab's internet (203.0.113.0/24), hidden node h behind a NAT router on
// a home LAN (198.51.100.0/24, with another tenant's laptop at .3), an ISP router in front of the outside
// (192.0.2.0/24) with a control-plane endpoint (192.0.2.20, like etcd) and a private range (172.20.0.0/24)
// behind it. Tenant ta (egress on) spans a, b and h (hidden via a); tenant tb (egress on) shares a. The drivers
// know the control plane (DriverOptions.egress.controlPlane), as an agent with etcd endpoints does.
// From workloads (namespaces on the tenant bridge) and the tenant namespaces, every attack of the report is
// tried, ICMP and TCP (and UDP 53, and fragmented ICMP), and counted as an exposure when anything answers:
//   (a) the node's own underlay address, (b) its LAN: the NAT router's LAN address and a neighbour,
//   (c) a private range beyond a router, (d) the control plane, and other nodes' underlay (the mesh), and
//   (e) the outside, which must still work; plus other tenants' transfer addresses, IPv6 out of a tenant
//   namespace, an access device widening its AllowedIPs (nothing out unless its entry has egress), and a
//   hidden node routing its workloads' egress into the tunnel. The blocked set follows the host's addresses
//   (drift), an operator's allow-list opens the control plane, and a no-op apply stays one with real nft.
// Summary (exposures found: must be 0) goes to bench/results/torture-egress.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ApplyReport, DesiredResource, EgressPolicy } from '../../netns/index.ts';
import { x25519KeyPair } from '../../src/crypto/index.ts';
import { delNs, makeNatRouter, makeNs, rand, sh, SimHost, Switch, wire } from '../helpers/host.ts';
import { handPlan } from '../helpers/plan.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const BACKEND = (process.env.ZMESH_TEST_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';
const POLICY: EgressPolicy = { controlPlane: ['192.0.2.20'] };

function okReport(r: ApplyReport): void {
  assert.ok(r.ok, `apply failed: ${JSON.stringify([...r.resources.flatMap((x) => x.failures), ...r.removed.flatMap((x) => x.failures)], null, 1)}`);
}

/**
 * Probes in parallel, one thread each; prints whether each answered, in order. icmp: a ping reply (optionally with a payload
 * that needs fragments); tcp: connected OR refused (a RST came back: the destination was reached); tcp-data:
 * the responder's banner was read; udp: a reply or a port-unreachable (connected socket).
 */
const PROBE_PY = `
import json, socket, subprocess, sys, threading
probes = json.loads(sys.argv[1])
out = [False] * len(probes)
def run(i, p):
    k, ip, port = p["kind"], p["ip"], p.get("port")
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    ok = False
    try:
        if k == "icmp":
            argv = ["ping", "-n", "-q", "-c", "1", "-W", "2"] + (["-s", str(p["size"])] if p.get("size") else []) + [ip]
            ok = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5).returncode == 0
        elif k in ("tcp", "tcp-data"):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect((ip, port))
                ok = True if k == "tcp" else s.recv(64).startswith(b"zmesh-egress-probe")
            except ConnectionRefusedError:
                ok = k == "tcp"
            except OSError:
                ok = False
            finally:
                s.close()
        elif k == "udp":
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.settimeout(2)
            try:
                s.connect((ip, port))
                s.send(b"zmesh-probe")
                s.recv(64)
                ok = True
            except ConnectionRefusedError:
                ok = True
            except OSError:
                ok = False
            finally:
                s.close()
    except Exception:
        ok = False
    out[i] = ok
ts = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(probes)]
for t in ts: t.start()
for t in ts: t.join(10)
print(json.dumps(out))
`;

/** Answers TCP (a banner) and UDP (an echo) on the given ports of every address, for `secs` seconds. */
const RESPONDER_PY = `
import socket, sys, threading, time
deadline = time.time() + float(sys.argv[1])
def tcp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64); s.settimeout(0.5)
    while time.time() < deadline:
        try:
            c, _ = s.accept()
        except OSError:
            continue
        try:
            c.sendall(b"zmesh-egress-probe\\n")
        except OSError:
            pass
        c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port)); s.settimeout(0.5)
    while time.time() < deadline:
        try:
            d, a = s.recvfrom(64)
            s.sendto(d, a)
        except OSError:
            continue
for p in sys.argv[2].split(","):
    threading.Thread(target=tcp, args=(int(p),), daemon=True).start()
for p in sys.argv[3].split(","):
    threading.Thread(target=udp, args=(int(p),), daemon=True).start()
time.sleep(0.3)
print("ready", flush=True)
while time.time() < deadline:
    time.sleep(0.5)
`;

interface Probe {
  name: string;
  kind: 'icmp' | 'tcp' | 'tcp-data' | 'udp';
  ip: string;
  port?: number;
  size?: number;
}

test('egress reaches the outside only: not the node, its LAN, private ranges, the mesh or the control plane', { timeout: 240_000 }, async (t) => {
  const t0 = performance.now();
  const sw = await Switch.create();
  const home = await Switch.create();
  const isp = `zt-isp-${rand()}`;
  const nat = `zt-nat-${rand()}`;
  const far = `zt-far-${rand()}`;
  const nb = `zt-nb-${rand()}`;
  const lan2 = `zt-lan-${rand()}`;
  const hosts: SimHost[] = [];
  const responders: ChildProcess[] = [];
  const exposures: string[] = [];
  const cases: { name: string; answered: boolean; must: 'answer' | 'not answer' }[] = [];
  const timings: Record<string, number> = {};
  try {
    const [a, b, h, l] = await Promise.all(['a', 'b', 'h', 'l'].map((x) => SimHost.start(x, { backend: BACKEND, egress: POLICY })));
    hosts.push(a, b, h, l);
    // The ISP router: the internet on one side, the outside (and a private range, and the control plane) on the other.
    await makeNs(isp);
    await makeNs(far);
    await sh(['ip', 'netns', 'exec', isp, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await sw.attach({ ns: isp, ifname: 'r0', addr: '203.0.113.254/24' });
    await wire({ ns: isp, ifname: 'r1', addr: '192.0.2.1/24' }, { ns: far, ifname: 'x0', addr: '192.0.2.10/24' });
    await sh(['ip', '-n', isp, 'addr', 'add', '172.20.0.1/24', 'dev', 'r1']);
    for (const extra of ['192.0.2.20/24', '172.20.0.10/24']) await sh(['ip', '-n', far, 'addr', 'add', extra, 'dev', 'x0']);
    await sh(['ip', '-n', far, 'route', 'add', 'default', 'via', '192.0.2.1']);
    // The home: a NAT router, the hidden node h and a neighbour (another tenant's laptop).
    await makeNatRouter(nat);
    await makeNs(nb);
    await sw.attach({ ns: nat, ifname: 'wan', addr: '203.0.113.3/24' });
    await home.attach({ ns: nat, ifname: 'lan', addr: '198.51.100.1/24' });
    await sh(['ip', '-n', nat, 'route', 'add', 'default', 'via', '203.0.113.254']);
    await home.attach({ ns: h.ns, ifname: 'u0', addr: '198.51.100.2/24' });
    await home.attach({ ns: nb, ifname: 'n0', addr: '198.51.100.3/24' });
    await sh(['ip', '-n', nb, 'route', 'add', 'default', 'via', '198.51.100.1']);
    await h.underlay('u0', '198.51.100.1');
    for (const [host, addr] of [[a, '203.0.113.1/24'], [b, '203.0.113.2/24'], [l, '203.0.113.50/24']] as const) {
      await sw.attach({ ns: host.ns, ifname: 'u0', addr });
      await host.underlay('u0', '203.0.113.254');
    }
    // Something answers everywhere a tenant must not get to (and at the outside).
    const respond = async (argv: string[]) => {
      const p = spawn(argv[0], [...argv.slice(1), PYTHON, '-I', '-S', '-c', RESPONDER_PY, '200', '80,2379,7777,8080,9999', '53'], { stdio: ['ignore', 'pipe', 'inherit'] });
      responders.push(p);
      const ready = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('responder did not start')), 10_000);
        createInterface({ input: p.stdout! }).once('line', () => {
          clearTimeout(timer);
          resolve();
        });
        p.once('exit', (c) => reject(new Error(`responder exited ${c}`)));
      });
      await ready;
    };
    for (const ns of [far, nat, nb]) await respond(['ip', 'netns', 'exec', ns]);
    for (const host of [a, b, h]) await respond(['nsenter', `--net=/proc/${host.anchorPid}/ns/net`, '--']);

    // The laptop: an access device of ta entering through a, with its own key.
    const laptop = x25519KeyPair(randomBytes(32));
    const ta = handPlan({
      tenant: 'ta',
      ipRange: '10.81.0.0/16',
      egress: true,
      nodes: [
        { node: 'a', underlay: '203.0.113.1' },
        { node: 'b', underlay: '203.0.113.2' },
        { node: 'h', hidden: true, accessNode: 'a', keepalive: 5 },
      ],
    });
    const tb = handPlan({ tenant: 'tb', ipRange: '10.82.0.0/16', egress: true, nodes: [{ node: 'a', underlay: '203.0.113.1' }], identity: ta.identity, basePort: 51900 });
    const taA = structuredClone(ta.desired.get('a')!);
    taA.resource.peers.push({ node: 'laptop', kind: 'device', publicKey: laptop.publicKey.toString(), endpoint: null, allowedIps: ['10.81.9.0/24'], persistentKeepalive: null });
    const applyA = (over: Partial<DesiredResource> = {}, egress?: EgressPolicy) => a.apply([{ ...taA, ...over }, tb.desired.get('a')!], ta.identity.get('a')!, egress);
    const ts = performance.now();
    for (const r of await Promise.all([applyA(), b.apply([ta.desired.get('b')!], ta.identity.get('b')!)])) okReport(r);
    okReport(await h.apply([ta.desired.get('h')!], ta.identity.get('h')!));
    const [TA, TB] = [`n-${ta.networkId}`, `n-${tb.networkId}`];
    assert.ok(await h.waitPing(TA, '10.81.1.1'), 'ta: h → a through the tunnel');
    assert.ok(await a.waitPing(TA, '10.81.2.1'), 'ta: a → b');
    timings.setupMs = Math.round(performance.now() - t0);
    timings.applyMs = Math.round(performance.now() - ts);

    // Workloads: a namespace with a veth on the tenant bridge, as a container has.
    const workload = async (host: SimHost, addr: string, gw: string) => {
      const br = `b-${ta.networkId}`;
      const mtu = (JSON.parse((await host.execIn(TA, ['ip', '-j', 'link', 'show', br])).stdout) as { mtu: number }[])[0].mtu;
      await host.exec(['ip', 'netns', 'add', 'zwl']);
      await host.exec(['ip', '-n', 'zwl', 'link', 'add', 'wl0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'vwl', 'mtu', String(mtu), 'netns', TA]);
      await host.exec(['ip', '-n', TA, 'link', 'set', 'vwl', 'master', br, 'up']);
      await host.exec(['ip', '-n', 'zwl', '-batch', '-'], { input: `link set lo up\nlink set wl0 up\naddr add ${addr} dev wl0\nroute add default via ${gw}\n` });
    };
    await workload(a, '10.81.1.50/24', '10.81.1.1');
    await workload(h, '10.81.3.50/24', '10.81.3.1');

    /** Runs probes from a namespace of a host ('' = the host namespace); records cases and exposures. */
    const probe = async (host: SimHost, ns: string, from: string, probes: (Probe & { must?: 'answer' })[]) => {
      const argv = [PYTHON, '-I', '-S', '-c', PROBE_PY, JSON.stringify(probes)];
      const r = ns ? await host.execIn(ns, argv, { timeoutMs: 30_000 }) : await host.exec(argv, { timeoutMs: 30_000 });
      const got = JSON.parse(r.stdout) as boolean[];
      const lines: string[] = [];
      probes.forEach((p, i) => {
        const name = `${from} → ${p.name} (${p.kind} ${p.ip}${p.port ? `:${p.port}` : ''}${p.size ? `, ${p.size} bytes` : ''})`;
        const must = p.must ?? 'not answer';
        cases.push({ name, answered: got[i], must });
        if (must === 'not answer' && got[i]) exposures.push(`${name} answered`);
        lines.push(`${got[i] ? 'answered' : 'silent  '} ${must === 'answer' ? '(must answer)' : ''} ${name}`);
      });
      for (const line of lines) t.diagnostic(line);
      return got;
    };
    const both = (name: string, ip: string, port: number): Probe[] => [
      { name, kind: 'icmp', ip },
      { name, kind: 'tcp', ip, port },
    ];
    const outside = (tag: string): (Probe & { must: 'answer' })[] => [
      { name: `the outside${tag}`, kind: 'icmp', ip: '192.0.2.10', must: 'answer' },
      { name: `the outside${tag}`, kind: 'tcp-data', ip: '192.0.2.10', port: 8080, must: 'answer' },
      { name: `the outside${tag}`, kind: 'icmp', ip: '192.0.2.10', size: 3000, must: 'answer' },
    ];
    const controls = () => cases.filter((c) => c.must === 'answer' && !c.answered).map((c) => c.name);

    await t.test('a hidden node: not its own address, its LAN (router, resolver, neighbour), private ranges, its access node, the control plane', async () => {
      await probe(h, 'zwl', 'h workload', [
        ...both("h's own underlay address", '198.51.100.2', 9999),
        ...both("the NAT router's LAN address", '198.51.100.1', 80),
        { name: 'the LAN resolver (DNS on the router)', kind: 'udp', ip: '198.51.100.1', port: 53 },
        ...both("another tenant's laptop on the LAN", '198.51.100.3', 7777),
        { name: "another tenant's laptop, fragmented", kind: 'icmp', ip: '198.51.100.3', size: 3000 },
        ...both('a private range beyond the router', '172.20.0.10', 80),
        ...both('the control plane beyond the router', '192.0.2.20', 2379),
        ...both("the access node's underlay address", '203.0.113.1', 9999),
        ...outside(''),
      ]);
      assert.deepEqual(exposures, []);
      assert.deepEqual(controls(), [], 'the outside still answers');
    });

    await t.test('a public node: not its own address, other nodes on its subnet, private ranges, the control plane, other tenants', async () => {
      const tbAct = await a.readActual(tb.networkId);
      const taAct = await a.readActual(ta.networkId);
      const tbHostEnd = tbAct.hostLink!.addresses[0].split('/')[0];
      const tbTenantEnd = tbAct.links.find((x) => x.name === `eg-${tb.networkId}`)!.addresses[0].split('/')[0];
      const taHostEnd = taAct.hostLink!.addresses[0].split('/')[0];
      await probe(a, 'zwl', 'a workload', [
        ...both("a's own underlay address", '203.0.113.1', 9999),
        ...both("b's underlay address (another node, where etcd was reached)", '203.0.113.2', 9999),
        ...both("the home NAT router's WAN address (a neighbour on a's subnet)", '203.0.113.3', 80),
        ...both('a private range beyond the router', '172.20.0.10', 80),
        ...both('the control plane beyond the router', '192.0.2.20', 2379),
        ...both("tb's egress link, host end", tbHostEnd, 9999),
        ...both("tb's egress link, tenant end", tbTenantEnd, 9999),
        ...both("ta's own egress link, host end", taHostEnd, 9999),
        ...outside(''),
      ]);
      await probe(a, TA, 'ta namespace on a', [
        ...both("b's underlay address", '203.0.113.2', 9999),
        ...both('a private range beyond the router', '172.20.0.10', 80),
        { name: 'the outside', kind: 'tcp-data', ip: '192.0.2.10', port: 8080, must: 'answer' },
      ]);
      await probe(a, TB, 'tb namespace on a', [
        ...both("ta's egress link, tenant end", taAct.links.find((x) => x.name === `eg-${ta.networkId}`)!.addresses[0].split('/')[0], 9999),
        ...both("the NAT router's WAN address", '203.0.113.3', 80),
        { name: 'the outside', kind: 'tcp-data', ip: '192.0.2.10', port: 8080, must: 'answer' },
      ]);
      assert.deepEqual(exposures, []);
      assert.deepEqual(controls(), []);
    });

    await t.test('the operator allow-lists the control plane: reachable; without it, blocked again', async () => {
      const open = await applyA({}, { ...POLICY, allow: ['192.0.2.20/32'] });
      okReport(open);
      assert.deepEqual(open.mutations, ['nft -f -', 'nft -f -'], 'one transaction per host table');
      await probe(a, 'zwl', 'a workload, control plane allow-listed', [{ name: 'the control plane', kind: 'tcp-data', ip: '192.0.2.20', port: 2379, must: 'answer' }]);
      okReport(await applyA());
      await probe(a, 'zwl', 'a workload, allow-list gone', both('the control plane', '192.0.2.20', 2379));
      assert.deepEqual(exposures, []);
      assert.deepEqual(controls(), []);
    });

    await t.test('an access device widening its AllowedIPs gets nothing out unless its blueprint entry has egress', async () => {
      const port = taA.resource.listenPort;
      // A wg-quick config with AllowedIPs = 0.0.0.0/0: everything but the laptop's own LAN into the tunnel.
      await l.exec(['wireguard-go', 'zl0']); // daemonizes (inside l: killed with it)
      // The key in a 0600 file on l's private /run (wg cannot read a socket as /dev/stdin).
      await l.exec(['sh', '-c', 'umask 077 && cat > /run/laptop.key'], { input: `${laptop.privateKey.toString()}\n` });
      const wgSet = ['wg', 'set', 'zl0', 'private-key', '/run/laptop.key', 'peer', taA.resource.publicKey, 'endpoint', `203.0.113.1:${port}`, 'allowed-ips', '0.0.0.0/0', 'persistent-keepalive', '1'];
      let set = false;
      for (let i = 0; i < 50 && !set; i++) {
        set = (await l.exec(wgSet, { okCodes: [0, 1] })).exitCode === 0;
        if (!set) await new Promise((r) => setTimeout(r, 100));
      }
      await l.exec(['rm', '-f', '/run/laptop.key']);
      assert.ok(set, "the laptop's wireguard-go is configured");
      await l.exec(['ip', '-batch', '-'], { input: 'address add 10.81.9.1/32 dev zl0\nlink set dev zl0 up\nroute add 10.81.0.0/16 dev zl0\nroute replace default dev zl0\n' });
      let tunnel = false;
      for (let i = 0; i < 15 && !tunnel; i++) tunnel = (await l.exec(['ping', '-n', '-q', '-c', '1', '-W', '1', '10.81.1.1'], { okCodes: [0, 1, 2] })).exitCode === 0;
      assert.ok(tunnel, "the laptop reaches ta's gateway on a through the tunnel");
      await probe(l, '', 'laptop (no egress)', [
        ...both('the outside through a', '192.0.2.10', 8080),
        ...both('a private range through a', '172.20.0.10', 80),
      ]);
      const on = await applyA({ egressDevices: ['10.81.9.0/24'] });
      okReport(on);
      assert.deepEqual(on.mutations, [`[n-${ta.networkId}] nft -f -`], "only ta's tenant table changes");
      await probe(l, '', 'laptop (egress: true)', [
        ...outside(' through a'),
        ...both('a private range through a', '172.20.0.10', 80),
        ...both('the control plane through a', '192.0.2.20', 2379),
      ]);
      okReport(await applyA());
      await probe(l, '', 'laptop (egress taken away)', both('the outside through a', '192.0.2.10', 8080));
      assert.deepEqual(exposures, []);
      assert.deepEqual(controls(), []);
    });

    await t.test("a hidden node routing its workloads' egress into the tunnel gets nothing out through its access node", async () => {
      // As a hostile node would: ta's default route on h through the tunnel instead of its own egress link, and
      // its access node's allowed IPs widened so that WireGuard sends it there.
      await h.execIn(TA, ['ip', 'route', 'replace', 'default', 'dev', `w-${ta.networkId}`]);
      await h.exec(['wg', 'set', `w-${ta.networkId}`, 'peer', taA.resource.publicKey, 'allowed-ips', '0.0.0.0/0']);
      await probe(h, 'zwl', 'h workload via the tunnel', both('the outside through a', '192.0.2.10', 8080));
      const fixed = await h.apply([ta.desired.get('h')!], ta.identity.get('h')!);
      okReport(fixed);
      assert.ok(fixed.mutations.length > 0, 'the route is repaired');
      assert.deepEqual(exposures, []);
    });

    await t.test('IPv6 out of a tenant namespace (given an address and a route) never leaves the host', async () => {
      await a.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
      await a.exec(['ip', '-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'u0', 'nodad']);
      await b.exec(['ip', '-6', 'addr', 'add', '2001:db8:1::2/64', 'dev', 'u0', 'nodad']);
      const eg = `eg-${ta.networkId}`;
      const ze = (JSON.parse((await a.exec(['ip', '-j', 'addr', 'show', 'dev', `ze-${ta.networkId}`])).stdout) as { address: string; addr_info: { family: string; scope: string; local: string }[] }[])[0];
      const hostLL = ze.addr_info.find((x) => x.family === 'inet6' && x.scope === 'link')?.local;
      assert.ok(hostLL, 'the host end has a link-local address');
      // The host's input drop stops neighbour discovery toward it; a static neighbour goes around that.
      await a.execIn(TA, ['ip', '-6', 'addr', 'add', '2001:db8:66::2/64', 'dev', eg, 'nodad']);
      await a.execIn(TA, ['ip', '-6', 'neigh', 'replace', hostLL, 'lladdr', ze.address, 'dev', eg, 'nud', 'permanent']);
      await a.execIn(TA, ['ip', '-6', 'route', 'add', '2001:db8:1::/64', 'via', hostLL, 'dev', eg]);
      // What arrives at b, counted before anything of b's filters it.
      await b.exec(['nft', '-f', '-'], { input: 'table inet zspy {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n\t\tip6 saddr 2001:db8:66::2 counter\n\t}\n}\n' });
      await probe(a, TA, 'ta namespace on a, IPv6', [
        { name: "b's IPv6 underlay address", kind: 'icmp', ip: '2001:db8:1::2' },
        { name: "b's IPv6 underlay address", kind: 'tcp', ip: '2001:db8:1::2', port: 9999 },
        { name: "a's own IPv6 address", kind: 'icmp', ip: '2001:db8:1::1' },
      ]);
      const spy = JSON.parse((await b.exec(['nft', '-j', 'list', 'table', 'inet', 'zspy'])).stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] };
      const arrived = spy.nftables.flatMap((x) => x.rule?.expr ?? []).reduce((n, e) => n + (e.counter?.packets ?? 0), 0);
      cases.push({ name: 'ta namespace on a → b over IPv6 (packets arriving at b)', answered: arrived > 0, must: 'not answer' });
      if (arrived > 0) exposures.push(`${arrived} IPv6 packets from ta's namespace arrived at b`);
      assert.deepEqual(exposures, []);
    });

    await t.test("the blocked set follows the host's addresses; a no-op apply issues no mutating command (real nft)", async () => {
      okReport(await applyA()); // a's IPv6 addresses above changed its sets
      const noop = await applyA();
      assert.equal(noop.commands.mutating, 0, noop.mutations.join('\n'));
      // a gets another LAN (198.51.100.128/25, with a neighbour): a new address, so a new connected subnet.
      await makeNs(lan2);
      await wire({ ns: a.ns, ifname: 'u9', addr: '198.51.100.129/25' }, { ns: lan2, ifname: 'x0', addr: '198.51.100.130/25' });
      const grew = await applyA();
      okReport(grew);
      assert.deepEqual(grew.mutations, ['nft -f -', 'nft -f -'], 'the host tables, nothing else');
      const set = async () => (await a.exec(['nft', 'list', 'set', 'inet', `zmesh_h_${ta.networkId}`, 'blocked4'])).stdout;
      assert.match(await set(), /198\.51\.100\.128\/25/);
      await probe(a, 'zwl', 'a workload, a has a new LAN', both('a neighbour on the new LAN', '198.51.100.130', 80));
      assert.equal((await applyA()).commands.mutating, 0, 'no-op again');
      await a.exec(['ip', 'link', 'del', 'u9']);
      const shrank = await applyA();
      assert.deepEqual(shrank.mutations, ['nft -f -', 'nft -f -']);
      assert.doesNotMatch(await set(), /198\.51\.100\.128/);
      await probe(a, 'zwl', 'a workload, after the LAN went', outside(' (after drift)'));
      assert.deepEqual(exposures, []);
      assert.deepEqual(controls(), []);
    });
    timings.totalMs = Math.round(performance.now() - t0);
  } finally {
    for (const p of responders) p.kill('SIGKILL');
    for (const host of hosts) await host.close().catch(() => undefined);
    for (const ns of [isp, far, nat, nb, lan2]) await delNs(ns);
    await sw.destroy();
    await home.destroy();
    mkdirSync(`${ROOT}bench/results`, { recursive: true });
    // cases: the attacks tried (each must get no answer); controls: what must still work (the outside).
    const attacksTried = cases.filter((c) => c.must === 'not answer').length;
    writeFileSync(
      `${ROOT}bench/results/torture-egress.json`,
      JSON.stringify({ cases: attacksTried, controls: cases.length - attacksTried, exposures, timings, detail: cases }, null, 2) + '\n',
    );
  }
  assert.deepEqual(exposures, []);
});
