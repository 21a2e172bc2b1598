// A tenant network's resolver (netns/dns.ts) in real namespaces: two tenants' namespaces, built here by hand
// (a bridge with the same gateway addresses in both: tenants' ranges may overlap), each with its dnsmasq.
// Queried with busybox nslookup from inside each namespace: A and AAAA answers, NXDOMAIN for the other tenant's
// names and for the outside world, a no-op ensure (no command, same daemon), a reload after a change, a killed
// daemon restarted, a recreated namespace, adoption after a restart, a query flood, and nothing left at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ProcessRunner } from '../../netns/runner.ts';
import { Resolvers, type DesiredResolver } from '../../netns/dns.ts';
import { nameRecords, type NetworkNames } from '../../src/plan/names.ts';

const run = new ProcessRunner();
const rid = () => `h3${randomBytes(8).toString('hex').replace(/[^a-z0-9]/g, '').slice(0, 8)}`;

async function sh(argv: string[], netns?: string, okCodes = [0]) {
  return run.run(argv, { mutating: true, netns, okCodes, timeoutMs: 20_000 });
}

async function makeNs(id: string): Promise<string> {
  const ns = `n-${id}`;
  await sh(['ip', 'netns', 'add', ns]);
  const batch = [`link set lo up`, `link add b-${id} type bridge`, `link set b-${id} up`, `addr add 10.77.1.1/24 dev b-${id}`, `addr add fd77:1:1:1::1/64 dev b-${id} nodad`].join('\n') + '\n';
  await run.run(['ip', '-batch', '-'], { netns: ns, input: batch, mutating: true });
  return ns;
}

/** `busybox nslookup [-type=T] NAME SERVER` inside a namespace: the answered addresses, or null for NXDOMAIN. */
async function lookup(ns: string, name: string, type?: 'A' | 'AAAA', server = '10.77.1.1'): Promise<string[] | null> {
  const r = await run.run(['busybox', 'nslookup', ...(type ? [`-type=${type}`] : []), name, server], { netns: ns, mutating: false, okCodes: [0, 1], timeoutMs: 10_000 });
  if (/NXDOMAIN/.test(r.stdout + r.stderr)) return null;
  assert.equal(r.exitCode, 0, `nslookup ${name}: ${r.stdout}${r.stderr}`);
  const out: string[] = [];
  const body = r.stdout.split('\n').slice(3).join('\n');
  for (const m of body.matchAll(/^Address: (\S+)$/gm)) out.push(m[1]);
  return out.sort();
}

/** A reverse lookup (`busybox nslookup ADDR SERVER`: a PTR query): the names answered, or null for NXDOMAIN. */
async function reverse(ns: string, address: string, server = '10.77.1.1'): Promise<string[] | null> {
  const r = await run.run(['busybox', 'nslookup', address, server], { netns: ns, mutating: false, okCodes: [0, 1], timeoutMs: 10_000 });
  if (/NXDOMAIN/.test(r.stdout + r.stderr)) return null;
  assert.equal(r.exitCode, 0, `nslookup ${address}: ${r.stdout}${r.stderr}`);
  return [...r.stdout.matchAll(/\sname = (\S+)$/gm)].map((m) => m[1]).sort();
}

function resolverOf(id: string, network: string, names: NetworkNames): DesiredResolver {
  return { networkId: id, network, listen: ['10.77.1.1', 'fd77:1:1:1::1'], records: nameRecords(network, names) };
}

const alive = (pid: number) => existsSync(`/proc/${pid}/cmdline`) && !/^\S+ \(\S+\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

test('tenant resolvers: answers, isolation, no-op, reload, repair, adoption, flood, removal', { timeout: 120_000 }, async (t) => {
  const idA = rid();
  const idB = rid();
  const stateDir = mkdtempSync(join(tmpdir(), 'h3dns-'));
  chmodSync(stateDir, 0o755);
  const counting = new ProcessRunner();
  let resolvers = new Resolvers(counting, { stateDir });
  const made: string[] = [];
  const namesA: NetworkNames = {
    workloads: { web: { ip: '10.77.1.2', ip6: 'fd77:1:1:1::2' }, db: { ip: '10.77.2.2', ip6: 'fd77:1:1:2::2' } },
    devices: { laptop: { ip: '10.77.3.1', ip6: 'fd77:1:1:3::1' } },
    nodes: { n1: { ip: '10.77.1.1', ip6: 'fd77:1:1:1::1' }, n2: { ip: '10.77.2.1', ip6: 'fd77:1:1:2::1' } },
  };
  const namesB: NetworkNames = { workloads: { secret: { ip: '10.77.1.9' } }, devices: {}, nodes: { n1: { ip: '10.77.1.1' } } };
  try {
    const nsA = await makeNs(idA);
    made.push(nsA);
    const nsB = await makeNs(idB);
    made.push(nsB);
    let pidA = 0;

    await t.test('start: A and AAAA answers on both gateway addresses', async () => {
      const ch = await resolvers.ensure(resolverOf(idA, 'neta', namesA));
      assert.match(ch.join('\n'), new RegExp(`^resolver ${nsA} started \\(pid \\d+, 14 records on 10\\.77\\.1\\.1, fd77:1:1:1::1\\)$`));
      await resolvers.ensure(resolverOf(idB, 'netb', namesB));
      pidA = resolvers.status(idA)!.pid;
      assert.deepEqual(await lookup(nsA, 'web.neta', 'A'), ['10.77.1.2']);
      assert.deepEqual(await lookup(nsA, 'web.neta', 'AAAA'), ['fd77:1:1:1::2']);
      assert.deepEqual(await lookup(nsA, 'web'), ['10.77.1.2', 'fd77:1:1:1::2']);
      assert.deepEqual(await lookup(nsA, 'db.neta', 'A', 'fd77:1:1:1::1'), ['10.77.2.2'], 'over IPv6 too');
      assert.deepEqual(await lookup(nsA, 'n2.neta', 'A'), ['10.77.2.1']);
      assert.deepEqual(await lookup(nsA, 'laptop.neta', 'AAAA'), ['fd77:1:1:3::1']);
      // dnsmasq runs as nobody, only on the gateway addresses.
      const status = readFileSync(`/proc/${pidA}/status`, 'utf8');
      assert.match(status, /^Uid:\s+65534\s/m);
      // Only dnsmasq's group reads the names: no other local user lists or reads them.
      const dnsDir = statSync(join(stateDir, 'dns'));
      const hostsFile = statSync(join(stateDir, 'dns', `${nsA}.hosts`));
      assert.deepEqual([dnsDir.mode & 0o777, dnsDir.uid, hostsFile.mode & 0o777, hostsFile.uid, hostsFile.gid], [0o750, 0, 0o640, 0, dnsDir.gid]);
      assert.equal(dnsDir.gid, 65534, 'group nogroup');
      const ss = await sh(['ss', '-Hlnu'], nsA);
      assert.deepEqual(ss.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)[3]).sort(), ['10.77.1.1:53', '[fd77:1:1:1::1]:53']);
    });

    await t.test("hostile tenant: another tenant's names and the outside world are NXDOMAIN", async () => {
      for (const n of ['secret.netb', 'secret', 'web.netb', 'example.com', 'x.neta', 'localhost', 'netb', 'n1.netb']) assert.equal(await lookup(nsA, n), null, `A: ${n}`);
      // The zone itself has names below it: no address, not NXDOMAIN (an empty non-terminal).
      assert.deepEqual(await lookup(nsA, 'neta'), []);
      assert.deepEqual(await lookup(nsB, 'secret', 'A'), ['10.77.1.9']);
      for (const n of ['web', 'web.neta', 'db.neta', 'n2.neta']) assert.equal(await lookup(nsB, n), null, `B: ${n}`);
    });

    await t.test('reverse lookups (PTR) from the same hosts file, in both families; none across tenants', async () => {
      assert.deepEqual(await reverse(nsA, '10.77.1.2'), ['web.neta']);
      assert.deepEqual(await reverse(nsA, 'fd77:1:1:1::2'), ['web.neta']);
      assert.deepEqual(await reverse(nsA, '10.77.2.1'), ['n2.neta']);
      assert.deepEqual(await reverse(nsB, '10.77.1.9'), ['secret.netb']);
      // B's workload's address is a private address A's resolver has no record of: NXDOMAIN (bogus-priv), never
      // forwarded; an address of the outside world likewise.
      for (const a of ['10.77.1.9', '192.0.2.1', 'fd77:9::1']) assert.equal(await reverse(nsA, a), null, `A: ${a}`);
      assert.equal(await reverse(nsB, '10.77.1.2'), null, "B: A's web");
    });

    await t.test('unchanged: zero commands, no signal, same daemon', async () => {
      const before = { ...counting.counts };
      const log = readFileSync(join(stateDir, 'dns', `${nsA}.log`), 'utf8');
      assert.deepEqual(await resolvers.ensure(resolverOf(idA, 'neta', namesA)), []);
      assert.deepEqual(counting.counts, before);
      assert.equal(readFileSync(join(stateDir, 'dns', `${nsA}.log`), 'utf8'), log, 'no reload');
      assert.equal(resolvers.status(idA)!.pid, pidA);
    });

    await t.test('changed records: SIGHUP reload, the new name answers, the removed one is NXDOMAIN', async () => {
      const next: NetworkNames = { ...namesA, workloads: { web: namesA.workloads.web, cache: { ip: '10.77.1.3', ip6: 'fd77:1:1:1::3' } } };
      const before = { ...counting.counts };
      const ch = await resolvers.ensure(resolverOf(idA, 'neta', next));
      assert.deepEqual(ch, [`resolver ${nsA} reloaded (pid ${pidA}, 14 records)`]);
      assert.deepEqual(counting.counts, before, 'a reload runs no command');
      assert.deepEqual(await lookup(nsA, 'cache.neta', 'A'), ['10.77.1.3']);
      assert.equal(await lookup(nsA, 'db.neta'), null);
      assert.equal(await lookup(nsA, 'db'), null);
      assert.equal(resolvers.status(idA)!.pid, pidA);
      namesA.workloads = next.workloads;
    });

    await t.test('killed daemon: reported dead, restarted by the next ensure', async () => {
      assert.ok(pidA > 1, 'the daemon was started');
      process.kill(pidA, 'SIGKILL');
      const deadline = Date.now() + 3000;
      while (alive(pidA) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(resolvers.status(idA), { pid: pidA, alive: false });
      const ch = await resolvers.ensure(resolverOf(idA, 'neta', namesA));
      assert.match(ch.join('\n'), /started \(pid \d+/);
      const pid = resolvers.status(idA)!.pid;
      assert.notEqual(pid, pidA);
      pidA = pid;
      assert.deepEqual(await lookup(nsA, 'cache', 'A'), ['10.77.1.3']);
    });

    await t.test('agent restart: a new instance adopts the running daemon (no-op)', async () => {
      resolvers = new Resolvers(counting, { stateDir });
      const before = { ...counting.counts };
      assert.deepEqual(await resolvers.ensure(resolverOf(idA, 'neta', namesA)), []);
      assert.deepEqual(counting.counts, before);
      assert.deepEqual(resolvers.status(idA), { pid: pidA, alive: true });
    });

    await t.test('namespace recreated under the daemon: the old one is stopped, a new one starts inside', async () => {
      await sh(['ip', 'netns', 'del', nsA]);
      await makeNs(idA);
      assert.equal(resolvers.status(idA)!.alive, false, 'a daemon in another namespace is not the live resolver');
      const ch = await resolvers.ensure(resolverOf(idA, 'neta', namesA));
      assert.deepEqual(ch[0], `resolver ${nsA} stopped (pid ${pidA})`);
      assert.ok(!alive(pidA), 'the old daemon is gone (and with it the old namespace)');
      pidA = resolvers.status(idA)!.pid;
      assert.deepEqual(await lookup(nsA, 'web', 'A'), ['10.77.1.2']);
    });

    await t.test('a query flood is answered and bounded by dnsmasq itself', async () => {
      const rss = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pidA}/status`, 'utf8'))![1]);
      const rss0 = rss();
      // 20 000 queries (half for names that do not exist), sent as fast as one socket allows, 200 in flight.
      const py = `
import socket, struct, time, random
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1<<20)
def q(i, name):
    h = struct.pack('>HHHHHH', i & 0xffff, 0x0100, 1, 0, 0, 0)
    return h + b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0' + struct.pack('>HH', 1, 1)
N = 20000; sent = got = 0; t0 = time.time()
while sent < N:
    for _ in range(200):
        s.sendto(q(sent, 'web.neta' if sent % 2 else 'nope%d.example' % sent), ('10.77.1.1', 53)); sent += 1
    try:
        for _ in range(200): s.recv(512); got += 1
    except socket.timeout: pass
print(sent, got, round(time.time() - t0, 2))
`;
      const r = await run.run(['python3', '-c', py], { netns: nsA, mutating: false, timeoutMs: 60_000 });
      const [sent, got, secs] = r.stdout.trim().split(' ').map(Number);
      const rss1 = rss();
      t.diagnostic(`flood: ${sent} queries, ${got} answered in ${secs} s (${Math.round(got / secs)}/s); dnsmasq RSS ${rss0} → ${rss1} KiB`);
      assert.equal(sent, 20000);
      assert.ok(got > 19000, `answered ${got}`);
      assert.ok(rss1 - rss0 < 4096, `dnsmasq grew ${rss1 - rss0} KiB`);
      assert.ok(alive(pidA));
      assert.deepEqual(await lookup(nsA, 'web', 'A'), ['10.77.1.2'], 'still answering');
    });

    await t.test('network removed: the daemon and every file go; nothing is left', async () => {
      const pidB = resolvers.status(idB)!.pid;
      const owned = resolvers.owned();
      assert.deepEqual(
        owned.filter((o) => o.kind === 'daemon').map((o) => [o.name, o.pid, o.marked]).sort(),
        [
          [`dnsmasq ${nsA}`, pidA, true],
          [`dnsmasq ${nsB}`, pidB, true],
        ].sort(),
      );
      const out = await resolvers.stopExcept(new Set([idB]));
      assert.deepEqual(out, [{ networkId: idA, changes: [`resolver ${nsA} stopped (pid ${pidA})`] }]);
      assert.ok(!alive(pidA));
      assert.deepEqual(resolvers.owned().filter((o) => o.networkId === idA), []);
      await resolvers.stopExcept(new Set());
      assert.ok(!alive(pidB));
      assert.deepEqual(resolvers.owned(), []);
      assert.deepEqual(resolvers.networkIds(), []);
    });
  } finally {
    for (const o of resolvers.owned()) if (o.pid && o.pid > 1) process.kill(o.pid, 'SIGKILL');
    for (const ns of made) await sh(['ip', 'netns', 'del', ns], undefined, [0, 1, 2]).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("another node's resolver (same conf path, its own /run) is never ours: not listed, not stopped", { timeout: 60_000 }, async () => {
  // Lab nodes share the PID namespace; each has its own /run, where the same network id gives the same conf path.
  const dir = mkdtempSync(join(tmpdir(), 'h3view-'));
  chmodSync(dir, 0o755);
  const id = rid();
  const conf = join(dir, `n-${id}.conf`);
  const script = `mount -t tmpfs none '${dir}' && printf 'port=5399\\nlisten-address=127.0.0.1\\nbind-interfaces\\nno-resolv\\nno-hosts\\n' > '${conf}' && ip link set lo up && exec dnsmasq --keep-in-foreground --conf-file='${conf}'`;
  const { spawn } = await import('node:child_process');
  const other = spawn('unshare', ['--mount', '--propagation', 'private', '--net', 'sh', '-c', script], { stdio: 'ignore' });
  const resolvers = new Resolvers(new ProcessRunner(), { dir });
  try {
    // Wait (bounded) until the other "node's" dnsmasq runs.
    let pid: number | null = null;
    for (let i = 0; i < 200 && pid === null; i++) {
      const p = other.pid!;
      if (existsSync(`/proc/${p}/cmdline`) && readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('dnsmasq\0')) pid = p;
      else await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(pid !== null, 'the other dnsmasq started');
    assert.deepEqual(resolvers.owned().filter((x) => x.kind === 'daemon'), [], 'not listed as ours');
    assert.deepEqual(await resolvers.stop(id), [], 'stop finds nothing of ours');
    assert.ok(alive(pid), 'the other dnsmasq still runs');
  } finally {
    other.kill('SIGKILL');
    await new Promise((r) => (other.exitCode !== null || other.signalCode !== null ? r(null) : other.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
});
