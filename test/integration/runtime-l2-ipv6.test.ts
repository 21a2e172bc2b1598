// A dual-stack workload port behind the runtime's L2 binding (runtime/l2.ts), in real namespaces built here: a
// tenant namespace with a bridge (gateway 10.9.0.1 and fd00:9::1) and a "container" namespace on a veth port.
// With the port bound (its MAC, IPv4 and IPv6 address), NDP and ping work both ways in both families; a second
// IPv6 address the workload gives itself sends nothing; the table reads back current; unbinding removes every element.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessRunner } from '../../netns/runner.ts';
import { l2ElementText, l2ReplaceText, parseL2, type PortBinding } from '../../runtime/l2.ts';
import { addressMac } from '../../netns/ip.ts';

const run = new ProcessRunner();
const ping = async (ns: string, to: string, from?: string) =>
  (await run.run(['ping', '-n', '-q', '-c', '1', '-W', '2', ...(from ? ['-I', from] : []), to], { netns: ns, mutating: false, okCodes: [0, 1, 2] })).exitCode === 0;

test('L2 binding of a dual-stack port: NDP and ping in both families, a spoofed IPv6 source dropped', { timeout: 60_000 }, async () => {
  const T = `h3l2t${process.pid}`;
  const C = `h3l2c${process.pid}`;
  const A: PortBinding = { ifname: 'v-h3aaaa', mac: addressMac('10.9.0.10'), ip: '10.9.0.10', ip6: 'fd00:9::a' };
  const made: string[] = [];
  try {
    for (const ns of [T, C]) {
      await run.run(['ip', 'netns', 'add', ns], { mutating: true });
      made.push(ns);
    }
    await run.run(['ip', '-batch', '-'], {
      netns: T,
      mutating: true,
      input: ['link set lo up', 'link add b0 type bridge', 'link set b0 up', 'addr add 10.9.0.1/24 dev b0', 'addr add fd00:9::1/64 dev b0 nodad', `link add ${A.ifname} type veth peer name eth0 netns ${C} address ${A.mac}`, `link set ${A.ifname} master b0 up`, ''].join('\n'),
    });
    await run.run(['ip', '-batch', '-'], { netns: C, mutating: true, input: ['link set eth0 up', 'addr add 10.9.0.10/24 dev eth0', 'addr add fd00:9::a/64 dev eth0 nodad', ''].join('\n') });
    await run.run(['nft', '-f', '-'], { netns: T, mutating: true, input: l2ReplaceText([]) });
    assert.equal(await ping(C, 'fd00:9::1'), false, 'an unbound port sends nothing');
    await run.run(['nft', '-f', '-'], { netns: T, mutating: true, input: l2ElementText([], [A]) });
    // The failed attempt left the neighbours unresolved (FAILED); start afresh.
    for (const ns of [T, C]) await run.run(['ip', 'neigh', 'flush', 'all'], { netns: ns, mutating: true });
    const listed = await run.run(['nft', '-j', 'list', 'table', 'bridge', 'zmesh-wl'], { netns: T, mutating: false });
    assert.deepEqual(parseL2(listed.stdout), { exists: true, current: true, elements: [A] });
    assert.ok(await ping(C, 'fd00:9::1'), 'workload → gateway6');
    assert.ok(await ping(T, 'fd00:9::a'), 'gateway6 → workload (its neighbour advertisement passed)');
    assert.ok(await ping(C, '10.9.0.1'), 'workload → gateway');
    await run.run(['ip', 'addr', 'add', 'fd00:9::b/64', 'dev', 'eth0', 'nodad'], { netns: C, mutating: true });
    assert.equal(await ping(C, 'fd00:9::1', 'fd00:9::b'), false, 'another IPv6 source is dropped');
    await run.run(['nft', '-f', '-'], { netns: T, mutating: true, input: l2ElementText([A], []) });
    const after = await run.run(['nft', '-j', 'list', 'table', 'bridge', 'zmesh-wl'], { netns: T, mutating: false });
    assert.deepEqual(parseL2(after.stdout), { exists: true, current: true, elements: [] });
  } finally {
    for (const ns of made) await run.run(['ip', 'netns', 'del', ns], { mutating: true, okCodes: [0, 1, 2] }).catch(() => undefined);
  }
});
