// Containers as a hostile tenant would use them: real workloads (a private dockerd, btrfs storage driver) made
// by the Runtime on a tenant bridge in a namespace of the test's own (bridge b-<id> holding the gateway, as the
// netns driver makes it), one attacker and one victim workload.
//   In the container (its own capabilities): raw sockets (arping, ping), claiming another address or MAC,
//   mounting a tmpfs, making a device node — all refused (no NET_RAW, NET_ADMIN, SYS_ADMIN, MKNOD).
//   From the attacker's network namespace with every capability (nsenter from the host, Python raw frames): the
//   L2 binding alone must stop forged ARP (claiming the gateway to the victim, the victim to the gateway,
//   gratuitous, full impersonation that would move the victim's MAC in the bridge's FDB), forged IPv4 sources
//   and MACs, VLAN-tagged and priority-tagged frames, IPv6. Each of these runs first as a control with the
//   binding table deleted, to prove the check sees the attack when nothing stops it.
//   Resources: writing past the disk limit (also through hard links and renames, and from a volume into /tmp),
//   a volume past its quota, /dev/shm past its size, a fork bomb against the pids limit.
//   Drift: a container of the workload made by hand with NET_RAW is replaced; a deleted binding table is
//   noticed by CHECK and rebuilt.
// Summary (exposures found: must be 0) goes to bench/results/torture-containers.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { BASE_IMAGE, MemoryRuntimeStore, PIDS_LIMIT, Runtime, addressMac, baseImageTar, containerName, importImage, vethNames, type DesiredVolume, type DesiredWorkload, type RuntimeReport } from '../../runtime/index.ts';
import { dexec, loopsOf, startDockerd, type PrivateDockerd } from '../helpers/dockerd.ts';
import { delNs, makeNs, rand, sh } from '../helpers/host.ts';
import { ProcessRunner, type Runner } from '../../netns/runner.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const MiB = 1024 * 1024;

/** Raw Ethernet frames: `arp OP ETH_SRC SHA SPA THA TPA ETH_DST`, `udp ETH_SRC ETH_DST SRC DST PORT TEXT`,
 *  `udp6 ETH_SRC SRC6 PORT TEXT` (to ff02::1); an optional last `vlan=N` tags the frame. Sent 3 times. */
const FORGE_PY = `
import socket, struct, sys
def mac(s): return bytes(int(x, 16) for x in s.split(":"))
def ip4(s): return socket.inet_aton(s)
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
a = sys.argv[1:]
vlan = int(a.pop()[5:]) if a[-1].startswith("vlan=") else None
def eth(dst, src, etype, payload):
    h = mac(dst) + mac(src)
    if vlan is not None: h += struct.pack("!HH", 0x8100, vlan)
    return h + struct.pack("!H", etype) + payload
kind = a[0]
if kind == "arp":
    op, esrc, sha, spa, tha, tpa, edst = a[1:8]
    f = eth(edst, esrc, 0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, int(op)) + mac(sha) + ip4(spa) + mac(tha) + ip4(tpa))
elif kind == "udp":
    esrc, edst, src, dst, port, text = a[1:7]
    u = struct.pack("!HHHH", 40000, int(port), 8 + len(text), 0) + text.encode()
    u = u[:6] + struct.pack("!H", csum(ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, len(u)) + u) or 0xffff) + u[8:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0, ip4(src), ip4(dst))
    f = eth(edst, esrc, 0x0800, h[:10] + struct.pack("!H", csum(h)) + h[12:] + u)
else:
    esrc, src, port, text = a[1:5]
    S, D = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, "ff02::1")
    u = struct.pack("!HHHH", 40000, int(port), 8 + len(text), 0) + text.encode()
    u = u[:6] + struct.pack("!H", csum(S + D + struct.pack("!IxxxB", len(u), 17) + u) or 0xffff) + u[8:]
    f = eth("33:33:00:00:00:01", esrc, 0x86dd, struct.pack("!IHBB", 6 << 28, len(u), 17, 64) + S + D + u)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3): s.send(f)
`;

/** For `secs`: a UDP socket on port P prints "udp ADDR TEXT" per datagram; a packet socket on eth0 prints
 *  "wire TAG" per frame that carries a ZTAG-xxxxxx tag (whatever its kind: IPv6, VLAN-tagged, ...). */
const LISTEN_PY = `
import re, socket, sys, time, select
p, secs = int(sys.argv[1]), float(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", p))
w = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); w.bind(("eth0", 0))
print("ready", flush=True)
end = time.time() + secs
while time.time() < end:
    r, _, _ = select.select([u, w], [], [], 0.1)
    for s in r:
        d, a = s.recvfrom(4096)
        if s is u: print("udp", a[0], d.decode(errors="replace"), flush=True)
        else:
            for m in re.findall(rb"ZTAG-[0-9a-f]{6}", d): print("wire", m.decode(), flush=True)
`;


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Case {
  name: string;
  /** Whether the attack got through (an exposure). */
  through: boolean;
  /** With the L2 binding table deleted: whether the same attack got through (null: no control run). */
  control: boolean | null;
  detail: string;
}

test('containers: no raw sockets, no forged ARP or sources through the bridge, disk, shm, pids and volume limits hold, drift is replaced', { timeout: 240_000 }, async (t) => {
  const cases: Case[] = [];
  const exposures: string[] = [];
  const record = (c: Case) => {
    cases.push(c);
    if (c.through) exposures.push(`${c.name}: ${c.detail}`);
  };
  let dockerd: PrivateDockerd | null = null;
  const ns = `zc-${rand()}`;
  const netId = `tc${rand(4)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'zmesh-torture-c-'));
  let rt: Runtime | null = null;
  const t0 = performance.now();
  try {
    // The tenant namespace as the netns driver leaves it: a bridge holding the gateway, with the gateway's MAC.
    await makeNs(ns);
    const gw = '10.77.1.1';
    const gwMac = addressMac(gw);
    await sh(['ip', '-n', ns, 'link', 'add', `b-${netId}`, 'mtu', '1420', 'address', gwMac, 'type', 'bridge']);
    await sh(['ip', '-n', ns, 'addr', 'add', `${gw}/24`, 'dev', `b-${netId}`]);
    await sh(['ip', '-n', ns, 'link', 'set', `b-${netId}`, 'up']);
    const inNs = (argv: string[], okCodes = [0]) => sh(['ip', 'netns', 'exec', ns, ...argv], { okCodes });

    dockerd = await startDockerd();
    const docker = dockerd.docker;
    await importImage(docker, baseImageTar(), BASE_IMAGE);
    // Every command the runtime runs, so a no-op reconcile can be shown to run no mutating one.
    const commands: { argv: string[]; mutating: boolean }[] = [];
    const base = new ProcessRunner();
    const runner: Runner = {
      run: (argv, o) => (commands.push({ argv, mutating: o.mutating }), base.run(argv, o)),
      spawnDaemon: (argv, o) => base.spawnDaemon(argv, o),
    };
    rt = new Runtime({ node: 'node-t', store: new MemoryRuntimeStore(), stateDir, dockerSocket: dockerd.socket, storage: { size: 256 * MiB }, netnsPath: () => `/run/netns/${ns}`, maxBackoffMs: 1000, runner });
    const wl = (name: string, ip: string, over: Partial<DesiredWorkload> = {}): DesiredWorkload => ({
      tenant: 'acme', blueprint: 'shop', name, node: 'node-t', image: BASE_IMAGE, command: ['sleep', '3600'], cpu: 0.5, memory: 64 * MiB, disk: 32 * MiB,
      network: { id: netId, name: 'net', ip, prefix: 24, gateway: gw }, mounts: [], ...over,
    });
    const victim = wl('victim', '10.77.1.10');
    const attacker = wl('attacker', '10.77.1.11', { memory: 128 * MiB, mounts: [{ volume: 'data', path: '/data' }] });
    const data: DesiredVolume = { tenant: 'acme', blueprint: 'shop', name: 'data', node: 'node-t', size: 8 * MiB };
    let want = { workloads: [victim, attacker], volumes: [data] };
    const apply = async (): Promise<RuntimeReport> => {
      const r = await rt!.apply(want);
      assert.deepEqual(r.errors, [], JSON.stringify(r.errors));
      return r;
    };
    await apply();
    t.diagnostic(`dockerd, image, pool, volume and 2 workloads in ${Math.round(performance.now() - t0)} ms`);
    const idOf = async (w: DesiredWorkload) => (await rt!.compute.containerOf(w))!;
    const pidOf = async (w: DesiredWorkload) => (await docker.getContainer(await idOf(w)).inspect()).State.Pid;
    const V = { ip: victim.network.ip, mac: addressMac(victim.network.ip) };
    const A = { ip: attacker.network.ip, mac: addressMac(attacker.network.ip) };
    const OTHER = '10.77.1.99';

    await t.test('in the container: raw sockets, another address or MAC, tmpfs, device nodes are refused', async () => {
      const id = await idOf(attacker);
      const tries: [string, string[]][] = [
        ['gratuitous ARP claiming the victim (busybox arping -U)', ['busybox', 'arping', '-U', '-c', '2', '-w', '1', '-I', 'eth0', '-s', V.ip, V.ip]],
        ['raw ICMP (busybox ping)', ['ping', '-c', '1', '-W', '1', gw]],
        ["claim the victim's address (ip addr add)", ['ip', 'addr', 'add', `${V.ip}/24`, 'dev', 'eth0']],
        ["take the victim's MAC (ip link set address)", ['ip', 'link', 'set', 'eth0', 'address', V.mac]],
        ['mount a tmpfs', ['mount', '-t', 'tmpfs', 'none', '/tmp']],
        ['make a block device node', ['busybox', 'mknod', '/tmp/sda', 'b', '8', '0']],
      ];
      for (const [name, cmd] of tries) {
        const r = await dexec(docker, id, cmd);
        const refused = r.exitCode !== 0 && /not permitted|permission denied|are you root/i.test(r.out);
        record({ name: `in-container: ${name}`, through: !refused, control: null, detail: `exit ${r.exitCode}: ${r.out.trim().split('\n').pop()}` });
      }
      const status = (await dexec(docker, id, ['cat', '/proc/self/status'])).out;
      assert.match(status, /CapEff:\s+00000000000004eb/);
      assert.deepEqual(exposures, []);
    });

    // ---- L2: forged frames from the attacker's namespace with every capability ----
    const forge = async (args: string[]) => {
      const r = await sh(['nsenter', '-t', String(await pidOf(attacker)), '-n', '--', PYTHON, '-c', FORGE_PY, ...args], { okCodes: [0, 1] });
      assert.equal(r.exitCode, 0, r.stderr);
    };
    const neighOf = async (argvPrefix: string[], ip: string, dev: string): Promise<string | null> => {
      const r = await sh([...argvPrefix, 'ip', '-j', 'neigh', 'show', ip, 'dev', dev], { okCodes: [0, 1] });
      const e = (JSON.parse(r.stdout || '[]') as { lladdr?: string }[])[0];
      return e?.lladdr ?? null;
    };
    const inVictim = async () => ['nsenter', '-t', String(await pidOf(victim)), '-n', '--'];
    /** Fresh neighbour entries on both sides (victim → gateway, gateway → victim), then past ARP's locktime. */
    const freshNeighbours = async () => {
      await sh([...(await inVictim()), 'ip', 'neigh', 'flush', 'dev', 'eth0'], { okCodes: [0, 1, 2] });
      await inNs(['ip', 'neigh', 'flush', 'dev', `b-${netId}`], [0, 1, 2]);
      await sh([...(await inVictim()), 'ping', '-c', '1', '-W', '1', gw]);
      assert.equal(await neighOf(await inVictim(), gw, 'eth0'), gwMac);
      assert.equal(await neighOf(['ip', 'netns', 'exec', ns], V.ip, `b-${netId}`), V.mac);
      await sleep(1050); // ARP's locktime (1 s): a neighbour entry updated less than that ago ignores replies
    };
    const victimFdbPort = async (): Promise<string | null> => {
      const r = await inNs(['bridge', '-j', 'fdb', 'show', 'br', `b-${netId}`]);
      return (JSON.parse(r.stdout || '[]') as { mac: string; ifname: string }[]).find((e) => e.mac === V.mac && e.ifname.startsWith('v-'))?.ifname ?? null;
    };
    /** Runs `send` while the victim listens; returns the datagrams it saw. */
    const heard = async (send: () => Promise<void>): Promise<string[]> => {
      const victimPid = await pidOf(victim);
      const listener = execa('nsenter', ['-t', String(victimPid), '-n', '--', PYTHON, '-c', LISTEN_PY, '7777', '0.9'], { reject: false, timeout: 10_000 });
      let out = '';
      listener.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      for (let i = 0; i < 50 && !out.includes('ready'); i++) await sleep(50);
      await send();
      await listener;
      return out.split('\n').filter((l) => l && l !== 'ready');
    };

    interface Attack {
      name: string;
      run: () => Promise<string | null>;
      /** Whether the control (no binding table) must show it getting through. */
      control: boolean;
    }
    const arpAttack = (name: string, frame: string[], observe: () => Promise<string | null>, control = true): Attack => ({
      name,
      control,
      run: async () => {
        await freshNeighbours();
        await forge(frame);
        await sleep(300);
        return observe();
      },
    });
    const victimSeesGateway = async () => {
      const m = await neighOf(await inVictim(), gw, 'eth0');
      return m !== gwMac ? `the victim's neighbour entry for the gateway says ${m}` : null;
    };
    const gatewaySeesVictim = async () => {
      const m = await neighOf(['ip', 'netns', 'exec', ns], V.ip, `b-${netId}`);
      return m !== V.mac ? `the gateway's neighbour entry for the victim says ${m}` : null;
    };
    /** `on`: 'socket' — through when the victim's UDP socket gets it; 'wire' — when its eth0 sees the frame. */
    const udpAttack = (name: string, args: (tag: string) => string[], on: 'socket' | 'wire' = 'socket', control = true): Attack => ({
      name,
      control,
      run: async () => {
        const tag = `ZTAG-${rand(3)}`;
        const got = await heard(() => forge(args(tag)));
        const mine = got.filter((l) => l.startsWith(on === 'socket' ? 'udp ' : 'wire ') && l.endsWith(tag));
        return mine.length ? `the victim's ${on === 'socket' ? 'socket' : 'eth0'} got ${mine.length}: ${mine[0]}` : null;
      },
    });
    // The victim's entry for the gateway and the gateway's entry for the victim are permanent (runtime/attach.ts:
    // each side's MAC is known from the address), so no ARP reply moves them, with or without the binding table:
    // those attacks have no control any more (before permanent entries they all got through without the table).
    const attacks: Attack[] = [
      arpAttack('ARP reply to the victim: the gateway is at the attacker', ['arp', '2', A.mac, A.mac, gw, V.mac, V.ip, V.mac], victimSeesGateway, false),
      arpAttack('ARP reply to the gateway: the victim is at the attacker', ['arp', '2', A.mac, A.mac, V.ip, gwMac, gw, gwMac], gatewaySeesVictim, false),
      arpAttack("gratuitous ARP (broadcast) claiming the victim's address", ['arp', '1', A.mac, A.mac, V.ip, '00:00:00:00:00:00', V.ip, 'ff:ff:ff:ff:ff:ff'], gatewaySeesVictim, false),
      // Linux learns no new neighbour from a gratuitous ARP (arp_accept 0): no control.
      arpAttack('gratuitous ARP claiming an unused address of the subnet', ['arp', '1', A.mac, A.mac, OTHER, '00:00:00:00:00:00', OTHER, 'ff:ff:ff:ff:ff:ff'], async () => {
        const m = await neighOf(['ip', 'netns', 'exec', ns], OTHER, `b-${netId}`);
        return m ? `the gateway learnt ${OTHER} at ${m}` : null;
      }, false),
      arpAttack("full impersonation: the victim's MAC as Ethernet and ARP sender (moves it in the bridge's FDB)", ['arp', '2', V.mac, V.mac, V.ip, gwMac, gw, gwMac], async () => {
        const port = await victimFdbPort();
        return port !== vethNames(victim).host ? `the bridge forwards the victim's MAC to ${port}` : null;
      }),
      // Without the binding the victim ignores it too (it has no VLAN 5 device); the UDP case below shows the tagged
      // frame reaching its eth0.
      arpAttack('VLAN 5 tagged ARP reply claiming the gateway', ['arp', '2', A.mac, A.mac, gw, V.mac, V.ip, V.mac, 'vlan=5'], victimSeesGateway, false),
      arpAttack('priority-tagged (VLAN 0) ARP reply claiming the gateway', ['arp', '2', A.mac, A.mac, gw, V.mac, V.ip, V.mac, 'vlan=0'], victimSeesGateway, false),
      udpAttack("UDP from a neighbour's address (own MAC)", (tag) => ['udp', A.mac, V.mac, OTHER, V.ip, '7777', tag]),
      udpAttack("UDP from the gateway's address", (tag) => ['udp', A.mac, V.mac, gw, V.ip, '7777', tag]),
      udpAttack('UDP from its own address but another MAC', (tag) => ['udp', '02:5a:0a:4d:01:63', V.mac, A.ip, V.ip, '7777', tag]),
      udpAttack('UDP from 0.0.0.0 (on the wire)', (tag) => ['udp', A.mac, V.mac, '0.0.0.0', V.ip, '7777', tag], 'wire'),
      udpAttack('priority-tagged (VLAN 0) UDP from a forged address', (tag) => ['udp', A.mac, V.mac, OTHER, V.ip, '7777', tag, 'vlan=0']),
      udpAttack('VLAN 5 tagged UDP from a forged address (on the wire)', (tag) => ['udp', A.mac, V.mac, OTHER, V.ip, '7777', tag, 'vlan=5'], 'wire'),
      udpAttack('IPv6 from a link-local source to all nodes (on the wire)', (tag) => ['udp6', A.mac, 'fe80::5a:aff:fe4d:10b', '7778', tag], 'wire'),
    ];

    await t.test('control: with the binding table deleted, forged frames get through (the checks see an exposure)', async () => {
      const state = async (argv: string[], ip: string, dev: string) => ((JSON.parse((await sh([...argv, 'ip', '-j', 'neigh', 'show', ip, 'dev', dev])).stdout || '[]') as { state?: string[] }[])[0]?.state ?? []).join(',');
      assert.equal(await state(await inVictim(), gw, 'eth0'), 'PERMANENT', "the victim's entry for the gateway");
      assert.equal(await state(['ip', 'netns', 'exec', ns], V.ip, `b-${netId}`), 'PERMANENT', "the gateway's entry for the victim");
      await inNs(['nft', 'delete', 'table', 'bridge', 'zmesh-wl']);
      for (const a of attacks) {
        const got = await a.run();
        cases.push({ name: `control (no binding): ${a.name}`, through: got !== null, control: null, detail: got ?? 'stopped' });
        if (a.control) assert.ok(got !== null, `control: ${a.name} should get through without the binding table`);
      }
    });

    await t.test("CHECK notices the deleted binding table and rebuilds it; the victim's entries are restored", async () => {
      const r = await apply();
      const drift = r.events.filter((e) => e.kind === 'workload.drift').map((e) => e.message);
      assert.ok(drift.some((m) => /nft table bridge zmesh-wl is missing/.test(m)), JSON.stringify(r.events));
      const list = await inNs(['nft', 'list', 'set', 'bridge', 'zmesh-wl', 'ports']);
      for (const w of [victim, attacker]) assert.match(list.stdout, new RegExp(`"${vethNames(w).host}" \\. ${addressMac(w.network.ip)} \\. ${w.network.ip.replace(/\./g, '\\.')}`));
      commands.length = 0;
      const again = await rt!.apply(want);
      assert.equal(again.changes, 0, 'then a no-op');
      assert.deepEqual(commands.filter((c) => c.mutating).map((c) => c.argv.join(' ')), [], 'a no-op reconcile runs no mutating command');
      assert.ok(commands.some((c) => c.argv.includes('nft') && c.argv.includes('list')), 'it reads the bindings');
      record({ name: 'drift: binding table deleted', through: false, control: null, detail: `rebuilt by the next reconcile (${drift.length} workloads re-attached)` });
    });

    await t.test('with the binding: every forged frame is dropped at the bridge', async () => {
      for (const a of attacks) {
        const got = await a.run();
        const control = cases.find((c) => c.name === `control (no binding): ${a.name}`)?.through ?? null;
        record({ name: `L2 (all capabilities, nsenter): ${a.name}`, through: got !== null, control, detail: got ?? 'dropped' });
      }
      // And the legitimate traffic still flows: the victim hears the attacker's own address and MAC.
      const ok = await heard(() => forge(['udp', A.mac, V.mac, A.ip, V.ip, '7777', 'legit']));
      assert.ok(ok.some((l) => l === `udp ${A.ip} legit`), `own MAC and address pass: ${ok}`);
      const tag = `ZTAG-${rand(3)}`;
      const wire = await heard(() => forge(['udp', A.mac, 'ff:ff:ff:ff:ff:ff', A.ip, '10.77.1.255', '7777', tag]));
      assert.ok(wire.includes(`wire ${tag}`), `a broadcast from its own MAC and address reaches the victim's eth0 (the sniffer works): ${wire}`);
      assert.equal(await victimFdbPort(), vethNames(victim).host);
      const drops = await inNs(['nft', 'list', 'chain', 'bridge', 'zmesh-wl', 'ports-in']);
      t.diagnostic(`bridge drops: ${/counter packets (\d+)/.exec(drops.stdout)?.[1]} packets`);
      assert.deepEqual(exposures, []);
    });

    // ---- resources ----
    await t.test('disk: /tmp past the limit, hard links and renames, a volume past its quota and into /tmp', async () => {
      const id = await idOf(attacker);
      const w = await dexec(docker, id, ['sh', '-c', 'dd if=/dev/zero of=/tmp/big bs=1M count=300 2>&1; echo rc=$?; stat -c %s /tmp/big'], 60_000);
      const size = Number(w.out.trim().split('\n').pop());
      record({ name: 'disk: 300 MB into /tmp with a 32 MiB limit', through: !/quota exceeded|No space left/.test(w.out) || size > 32 * MiB, control: null, detail: `stopped at ${(size / MiB).toFixed(1)} MiB: ${/dd: .*/.exec(w.out)?.[0]}` });
      const l = await dexec(docker, id, ['sh', '-c', 'ln /tmp/big /tmp/link && mv /tmp/link /moved && cp /tmp/big /tmp/copy 2>&1; echo rc=$?; dd if=/dev/zero of=/again bs=1M count=4 2>&1'], 60_000);
      record({ name: 'disk: hard link, rename and copy past the limit', through: !/quota exceeded|No space left/.test(l.out), control: null, detail: l.out.trim().split('\n').filter((x) => /dd:|cp:|rc=/.test(x)).join('; ') });
      // Docker's own /etc files live in its data root, outside the limit: the runtime's are read-only.
      const e = await dexec(docker, id, ['sh', '-c', 'for f in /etc/hosts /etc/hostname /etc/resolv.conf; do dd if=/dev/zero of=$f bs=1M count=100 2>&1 | tail -1; done; echo; wc -c /etc/hosts | cut -d" " -f1']);
      const hostsSize = Number(e.out.trim().split('\n').pop());
      record({ name: 'disk: 100 MB each into /etc/hosts, /etc/hostname, /etc/resolv.conf (outside the writable layer)', through: !/Read-only file system/.test(e.out) || hostsSize > 4096, control: null, detail: `${e.out.trim().split('\n')[0]}; /etc/hosts is ${hostsSize} bytes` });
      // Freed space returns to the qgroup when btrfs commits: sync.
      await dexec(docker, id, ['sh', '-c', 'rm -f /tmp/big /moved /tmp/copy /again; sync']);
      const v = await dexec(docker, id, ['sh', '-c', 'dd if=/dev/zero of=/data/big bs=1M count=64 2>&1; echo rc=$?; stat -c %s /data/big'], 60_000);
      const vsize = Number(v.out.trim().split('\n').pop());
      record({ name: 'volume: 64 MB into an 8 MiB volume', through: !/quota exceeded|No space left/.test(v.out) || vsize > 8 * MiB, control: null, detail: `stopped at ${(vsize / MiB).toFixed(1)} MiB` });
      // Across filesystems a rename is a copy: it lands under the disk limit, not around it.
      await dexec(docker, id, ['sh', '-c', 'dd if=/dev/zero of=/tmp/fill bs=1M count=26 2>/dev/null; sync; true']);
      const mv = await dexec(docker, id, ['sh', '-c', 'mv /data/big /tmp/from-volume 2>&1; echo rc=$?']);
      record({ name: 'volume: rename a volume file into a nearly full /tmp', through: /rc=0/.test(mv.out), control: null, detail: mv.out.trim().replace(/\s+/g, ' ') });
      await dexec(docker, id, ['sh', '-c', 'rm -f /tmp/fill /tmp/from-volume /data/big; sync']);
      const df = (await dexec(docker, id, ['df', '-k', '/'])).out.trim().split('\n').pop()!.trim().split(/\s+/);
      t.diagnostic(`df / in the container: ${(Number(df[1]) / 1024).toFixed(0)} MiB (the engine's btrfs image); the limit is enforced by its qgroup`);
      assert.deepEqual(exposures, []);
    });

    await t.test('/dev/shm past its size, and a fork bomb against the pids limit', async () => {
      const id = await idOf(attacker);
      const shm = await dexec(docker, id, ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/x bs=1M count=200 2>&1; echo rc=$?; stat -c %s /dev/shm/x'], 60_000);
      const shmSize = Number(shm.out.trim().split('\n').pop());
      const oom = (await docker.getContainer(id).inspect()).State.OOMKilled;
      record({ name: '/dev/shm: 200 MB into a 64 MiB shm (memory limit 64 MiB)', through: !oom && !(shmSize <= 64 * MiB), control: null, detail: oom ? 'OOM killed' : `stopped at ${(shmSize / MiB).toFixed(1)} MiB` });
      await dexec(docker, id, ['rm', '-f', '/dev/shm/x']).catch(() => undefined);

      // The bomb runs 2 s (it reaches ~1,000 processes at 0.5 CPU); then the runtime removes it: Docker's kill
      // signals init only, which starves behind its siblings, so the runtime kills the whole cgroup first.
      const bomb = wl('bomb', '10.77.1.12', { command: ['sh', '-c', 'f() { f | f & }; f; sleep 3600'], memory: 256 * MiB });
      want = { ...want, workloads: [...want.workloads, bomb] };
      await apply();
      const bid = await idOf(bomb);
      const cg = readFileSync(`/proc/${(await docker.getContainer(bid).inspect()).State.Pid}/cgroup`, 'utf8').split('\n').find((l) => /:pids:/.test(l))?.split(':')[2];
      const pidsDir = cg ? `/sys/fs/cgroup/pids${cg}` : null;
      let peak = 0;
      for (let i = 0; i < 20; i++) {
        const cur = pidsDir && existsSync(`${pidsDir}/pids.current`) ? Number(readFileSync(`${pidsDir}/pids.current`, 'utf8')) : 0;
        peak = Math.max(peak, cur);
        await sleep(100);
      }
      const max = pidsDir && existsSync(`${pidsDir}/pids.max`) ? readFileSync(`${pidsDir}/pids.max`, 'utf8').trim() : 'unknown';
      t.diagnostic(`fork bomb: peak ${peak} processes, pids.max ${max}`);
      record({ name: 'fork bomb', through: max !== String(PIDS_LIMIT) || peak > PIDS_LIMIT, control: null, detail: `peak ${peak} processes in the container, pids.max ${max}` });
      want = { ...want, workloads: want.workloads.filter((x) => x.name !== 'bomb') };
      const t1 = performance.now();
      const r = await apply();
      const removeMs = Math.round(performance.now() - t1);
      t.diagnostic(`fork bomb removed in ${removeMs} ms`);
      assert.ok(r.events.some((e) => e.kind === 'workload.removed'));
      assert.equal(await rt!.compute.containerOf(bomb), null);
      record({ name: 'fork bomb: the workload can still be removed', through: removeMs > 15_000, control: null, detail: `removed in ${removeMs} ms` });
      assert.deepEqual(exposures, []);
    });

    await t.test('drift: a container of the workload made by hand with NET_RAW is replaced by the next reconcile', async () => {
      const old = await docker.getContainer(await idOf(victim)).inspect();
      await docker.getContainer(old.Id).remove({ force: true });
      const c = await docker.createContainer({ name: containerName(victim), Image: BASE_IMAGE, Cmd: ['sleep', '3600'], Labels: old.Config.Labels, HostConfig: { NetworkMode: 'none', CapAdd: ['NET_RAW', 'NET_ADMIN'], StorageOpt: { size: String(victim.disk) }, PidsLimit: PIDS_LIMIT, SecurityOpt: ['no-new-privileges'] } });
      await c.start();
      const r = await apply();
      const replaced = r.events.find((e) => e.kind === 'workload.replaced');
      const now = await docker.getContainer(await idOf(victim)).inspect();
      const through = !replaced || now.Id === c.id || (now.HostConfig.CapAdd ?? []).some((x: string) => /NET_RAW|NET_ADMIN/.test(x));
      record({ name: 'drift: container with NET_RAW and NET_ADMIN', through, control: null, detail: replaced?.message ?? 'not replaced' });
      assert.match(replaced?.message ?? '', /security settings drifted \(capabilities added \[CAP_NET_ADMIN, CAP_NET_RAW\]/);
      assert.deepEqual(exposures, []);
    });

    await t.test('removal leaves no container, veth, binding or table', async () => {
      want = { workloads: [], volumes: [] };
      await apply();
      assert.deepEqual(await docker.listContainers({ all: true }), []);
      assert.doesNotMatch((await inNs(['ip', '-o', 'link'])).stdout, /v-[a-z2-7]{10}/);
      assert.doesNotMatch((await inNs(['nft', 'list', 'tables'])).stdout, /zmesh-wl/);
    });
  } finally {
    await rt?.close().catch(() => undefined);
    if (dockerd) await dockerd.stop().catch(() => undefined);
    await rt?.storage.close().catch(() => undefined);
    await delNs(ns);
    if (rt) {
      for (let i = 0; i < 40 && loopsOf(rt.storage.image).length; i++) await sleep(250);
      for (const l of loopsOf(rt.storage.image)) await sh(['losetup', '-d', l], { okCodes: [0, 1] });
    }
    rmSync(stateDir, { recursive: true, force: true });
    mkdirSync(`${ROOT}bench/results`, { recursive: true });
    const attacks = cases.filter((c) => !c.name.startsWith('control'));
    writeFileSync(
      `${ROOT}bench/results/torture-containers.json`,
      JSON.stringify({ cases: attacks.length, exposures, seconds: Math.round((performance.now() - t0) / 100) / 10, detail: cases }, null, 2) + '\n',
    );
  }
  assert.deepEqual(exposures, []);
});
