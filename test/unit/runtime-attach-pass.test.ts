// The attacher's pass (issue #18, no-op reconcile cost): inside one compute pass each tenant namespace's links
// and binding table are read once for every CHECK and the GC; a mutating command forgets what was read; outside a
// pass every call reads as before. A scripted runner answers like ip/nft and counts what ran.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Attacher, l2FromRuleset } from '../../runtime/attach.ts';
import { NS_READ } from '../../netns/state.ts';
import { VETH_MARKER } from '../../runtime/names.ts';
import type { Attachment } from '../../runtime/types.ts';
import type { RunOptions, RunResult, Runner } from '../../netns/runner.ts';

const NS = '/run/netns/n-aaaaaaaaaa';

class ScriptedRunner implements Runner {
  readonly ran: string[] = [];
  /** veths present in the tenant namespace (name → container pid). */
  veths = new Map<string, number>([
    ['v-one', 101],
    ['v-two', 102],
  ]);
  async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    const line = argv.join(' ');
    this.ran.push(`${opts.mutating ? 'M' : 'r'} ${line.replace(NS, 'NS')}`);
    const ok = (stdout: string): RunResult => ({ argv, stdout, stderr: '', exitCode: 0 });
    const link = (index: number, name: string, extra: object) => ({ ifindex: index, ifname: name, mtu: 1420, flags: ['UP'], addr_info: [], ...extra });
    if (line.startsWith(`nsenter --net=${NS} -- ip -j -d addr show`)) {
      const all = [link(1, 'b-aaaaaaaaaa', { linkinfo: { info_kind: 'bridge' } }), ...[...this.veths].map(([name, pid], i) => link(10 + i, name, { master: 'b-aaaaaaaaaa', ifalias: `${VETH_MARKER}acme/bp/${name}`, link_index: 2, pid }))];
      const dev = argv.indexOf('dev') > 0 ? argv[argv.indexOf('dev') + 1] : null;
      if (dev && !all.some((l) => l.ifname === dev)) return { argv, stdout: '', stderr: `Device "${dev}" does not exist.`, exitCode: 1 };
      return ok(JSON.stringify(dev ? all.filter((l) => l.ifname === dev) : all));
    }
    if (line.startsWith(`nsenter --net=${NS} -- nft -j list table`)) return { argv, stdout: '', stderr: 'Error: No such file or directory', exitCode: 1 };
    if (line.startsWith(`nsenter --net=${NS} -- ip link del dev `)) {
      this.veths.delete(argv.at(-1)!);
      return ok('');
    }
    if (argv[0] === 'nsenter' && argv[1] === '-t') {
      // The container's eth0 (index 2), the peer of the veth started for this pid (10 + its position).
      const peer = 10 + [...this.veths.values()].indexOf(Number(argv[2]));
      const eth0 = link(2, 'eth0', { link_index: peer, addr_info: [{ family: 'inet', local: '10.1.0.2', prefixlen: 24 }] });
      return ok(`${JSON.stringify([eth0])}\n${JSON.stringify([{ dst: 'default', gateway: '10.1.0.1', dev: 'eth0' }])}\n`);
    }
    throw new Error(`unexpected command: ${line}`);
  }
  spawnDaemon(): never {
    throw new Error('not here');
  }
}

const attachment = (hostIf: string, pid: number, hostIfIndex = 10): Attachment => ({
  workload: `acme/bp/${hostIf}`,
  containerId: `c-${hostIf}`,
  pid,
  networkId: 'aaaaaaaaaa',
  netns: NS,
  bridge: 'b-aaaaaaaaaa',
  hostIf,
  hostIfIndex,
  containerIf: 'eth0',
  containerIfIndex: 2,
  address: '10.1.0.2/24',
  gateway: '10.1.0.1',
  mtu: 1420,
  mac: '02:5a:0a:01:00:02',
  at: '2026-12-05T00:00:00.000Z',
});

/** What CHECK finds in this fake when the pair itself is healthy: it answers that the binding table is absent. */
const NO_TABLE = ['nft table bridge zmesh-wl is missing'];

const kinds = (ran: string[]) => ({
  links: ran.filter((c) => c.startsWith('r nsenter --net=NS -- ip -j -d addr show')).length,
  l2: ran.filter((c) => c.startsWith('r nsenter --net=NS -- nft -j list table')).length,
  container: ran.filter((c) => c.startsWith('r nsenter -t')).length,
  mutating: ran.filter((c) => c.startsWith('M ')).length,
});

test('a pass reads each namespace once for every CHECK and the GC; outside a pass every call reads', async () => {
  const run = new ScriptedRunner();
  const att = new Attacher(run);
  const one = attachment('v-one', 101);
  const two = attachment('v-two', 102);
  const outside = [await att.check(one, 101), await att.check(two, 102), await att.gc([NS], new Set(['v-one', 'v-two']))];
  assert.deepEqual(kinds(run.ran), { links: 3, l2: 3, container: 2, mutating: 0 });

  run.ran.length = 0;
  const inside = await att.pass(async () => [await att.check(one, 101), await att.check(two, 102), await att.gc([NS], new Set(['v-one', 'v-two']))]);
  assert.deepEqual(kinds(run.ran), { links: 1, l2: 1, container: 2, mutating: 0 }, 'the same work, 3 reads fewer (namespace links and binding table once)');
  assert.deepEqual(inside, outside, 'the same answers');
});

test('in a pass a mutating command forgets what was read: the next CHECK reads again and sees the change', async () => {
  const run = new ScriptedRunner();
  const att = new Attacher(run);
  const two = attachment('v-two', 102);
  await att.pass(async () => {
    assert.deepEqual(await att.check(two, 102), NO_TABLE, 'v-two is there (this fake has no binding table)');
    // The GC removes v-two (no workload wants it any more): a mutating command.
    assert.deepEqual(await att.gc([NS], new Set(['v-one'])), [`${NS}:v-two`]);
    const after = await att.check(two, 102);
    assert.ok(after.includes(`v-two is missing in ${NS}`), `the CHECK after the GC sees v-two gone: ${after.join('; ')}`);
  });
  assert.equal(kinds(run.ran).links, 2, 'read, then read again after the delete');
  assert.equal(kinds(run.ran).mutating, 1);
});

test('a failed read is not kept for the rest of the pass', async () => {
  let fail = true;
  const run = new ScriptedRunner();
  const inner = run.run.bind(run);
  run.run = async (argv, opts) => {
    if (fail && argv.includes('addr')) {
      fail = false;
      return { argv, stdout: '', stderr: 'Error: something odd', exitCode: 1 };
    }
    return inner(argv, opts);
  };
  const att = new Attacher(run);
  await att.pass(async () => {
    await assert.rejects(att.check(attachment('v-one', 101), 101), /cannot read/);
    assert.deepEqual(await att.check(attachment('v-one', 101), 101), NO_TABLE);
  });
});

test("a caller outside the pass (another request meanwhile) reads for itself, and never sees the pass's reads", async () => {
  const run = new ScriptedRunner();
  const att = new Attacher(run);
  const one = attachment('v-one', 101);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const pass = att.pass(async () => {
    await att.check(one, 101);
    await gate;
    await att.check(one, 101);
  });
  await new Promise((r) => setTimeout(r, 10));
  await att.check(one, 101);
  release();
  await pass;
  // The pass: links and table once for its two CHECKs; the outside CHECK: its own two reads.
  assert.deepEqual(kinds(run.ran), { links: 2, l2: 2, container: 3, mutating: 0 });
});

// ---- the data plane's reads of a reconcile (Runner.sharedRead) -------------------------------------------------

/** The scripted runner, plus what the data plane read of NS in this reconcile: `ip -d -json -batch` (NS_READ) and
 *  `nft -j list ruleset` (with an unrelated table and the binding table). */
class SharingRunner extends ScriptedRunner {
  shared = true;
  ruleset = {
    nftables: [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      { table: { family: 'inet', name: 'zmesh', handle: 1 } },
      { chain: { family: 'inet', table: 'zmesh', name: 'fwd', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
      { table: { family: 'bridge', name: 'zmesh-wl', handle: 2 } },
      { chain: { family: 'bridge', table: 'zmesh-wl', name: 'ports', handle: 1, type: 'filter', hook: 'prerouting', prio: -200, policy: 'accept' } },
    ],
  };
  sharedRead(argv: string[], opts: Pick<RunOptions, 'netns' | 'input' | 'okCodes'>): Promise<RunResult> | undefined {
    if (!this.shared || opts.okCodes !== undefined) return undefined;
    const line = argv.join(' ');
    const res = (stdout: string): Promise<RunResult> => Promise.resolve({ argv, stdout, stderr: '', exitCode: 0 });
    if (line === `nsenter --net=${NS} -- ip -d -json -batch -` && opts.input === NS_READ) {
      const own = this.ran.length;
      return this.run(inTenantNsArgv(['ip', '-j', '-d', 'addr', 'show']), { mutating: false }).then((r) => {
        this.ran.length = own; // what the data plane ran: not the attacher's
        return res(`${r.stdout}\n[]\n[]\n`);
      });
    }
    if (line === `nsenter --net=${NS} -- nft -j list ruleset` && opts.input === undefined) return res(JSON.stringify(this.ruleset));
    return undefined;
  }
}
const inTenantNsArgv = (argv: string[]) => ['nsenter', `--net=${NS}`, '--', ...argv];

test("l2FromRuleset: the binding table's part of a ruleset, as `list table bridge zmesh-wl` prints it; '' without it", () => {
  const r = new SharingRunner().ruleset;
  assert.equal(
    l2FromRuleset(JSON.stringify(r)),
    JSON.stringify({ nftables: [r.nftables[0], r.nftables[3], r.nftables[4]] }),
  );
  assert.equal(l2FromRuleset(JSON.stringify({ nftables: r.nftables.slice(0, 3) })), '');
  assert.throws(() => l2FromRuleset('{}'), /nftables/);
});

test("in a reconcile the attacher takes the namespace's links and binding table from the data plane's reads: the same answers, none of its own", async () => {
  // A runner whose own `nft -j list table` prints the same table as the data plane's ruleset holds.
  const own = new ScriptedRunner();
  const table = l2FromRuleset(JSON.stringify(new SharingRunner().ruleset));
  const scripted = own.run.bind(own);
  own.run = async (argv, opts) => {
    if (argv.join(' ') === `nsenter --net=${NS} -- nft -j list table bridge zmesh-wl`) {
      own.ran.push(`r ${argv.join(' ').replace(NS, 'NS')}`);
      return { argv, stdout: table, stderr: '', exitCode: 0 };
    }
    return scripted(argv, opts);
  };
  const att0 = new Attacher(own);
  const one = attachment('v-one', 101);
  const two = attachment('v-two', 102);
  // Its own reads…
  const alone = await att0.pass(async () => [await att0.check(one, 101), await att0.check(two, 102), await att0.gc([NS], new Set(['v-one', 'v-two']))]);
  assert.deepEqual(kinds(own.ran), { links: 1, l2: 1, container: 2, mutating: 0 });

  const run = new SharingRunner();
  const att = new Attacher(run);
  const shared = await att.pass(async () => [await att.check(one, 101), await att.check(two, 102), await att.gc([NS], new Set(['v-one', 'v-two']))]);
  assert.deepEqual(kinds(run.ran), { links: 0, l2: 0, container: 2, mutating: 0 }, 'only the containers are read');
  // …and from the data plane's: the same answers (here: the table holds no binding for either veth yet).
  assert.deepEqual(shared, alone);
  assert.match(String(shared[0]), /v-one is bound to \[\]/);

  // Without a shared read (outside a reconcile, or after a change) it reads for itself.
  run.shared = false;
  run.ran.length = 0;
  await att.check(one, 101);
  assert.deepEqual(kinds(run.ran), { links: 1, l2: 1, container: 1, mutating: 0 });
});
