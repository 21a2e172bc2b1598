// The attacher's pass (issue #18, no-op reconcile cost): inside one compute pass each tenant namespace's links
// and binding table are read once for every CHECK and the GC; a mutating command forgets what was read; outside a
// pass every call reads as before. A scripted runner answers like ip/nft and counts what ran.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Attacher } from '../../runtime/attach.ts';
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
