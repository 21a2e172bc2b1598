// Benchmark of the netns driver (real namespaces, the selected WireGuard backend — wireguard-go here).
// Runs inside a simulated host (own network + mount namespace, see test/helpers/host.ts) so nothing touches
// the machine's own namespace, and removes everything at the end. Times are measured inside the host's
// driver (ApplyReport.ms), medians of several runs. Prints a table, then one JSON object on the last line.
//   node --import tsx bench/apply.ts
import { cpus, loadavg } from 'node:os';
import { seededRandom, x25519KeyPair } from '../src/crypto/index.ts';
import type { ApplyReport, DesiredResource } from '../netns/index.ts';
import { SimHost } from '../test/helpers/host.ts';
import { handPlan } from '../test/helpers/plan.ts';

const backend = (process.env.ZMESH_BENCH_BACKEND as 'auto' | 'kernel' | 'userspace' | undefined) ?? 'auto';
const rnd = seededRandom('zmesh-bench');
const peerKeys = Array.from({ length: 5000 }, () => x25519KeyPair(rnd(32)).publicKey.toString());

function withPeers(d: DesiredResource, n: number): DesiredResource {
  const out = structuredClone(d);
  out.resource.peers = peerKeys.slice(0, n).map((publicKey, i) => ({
    node: `p${i}`,
    kind: 'node' as const,
    publicKey,
    endpoint: `198.51.100.${(i % 250) + 1}:${40000 + i}`,
    allowedIps: [`10.${100 + Math.floor(i / 250)}.${i % 250}.0/24`],
    persistentKeepalive: null,
  }));
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x: number) => Math.round(x * 10) / 10;

function check(r: ApplyReport, what: string): ApplyReport {
  if (!r.ok) throw new Error(`${what}: ${JSON.stringify(r.resources.flatMap((x) => x.failures))}`);
  return r;
}

const host = await SimHost.start('bench', { backend, underlayMtu: 1500 });
const results: Record<string, number | string> = {};
try {
  results.backend = await host.call<string>('backend');
  const identityPlan = handPlan({ ipRange: '10.60.0.0/16', nodes: [{ node: 'h', underlay: '198.51.100.1' }], seed: 'bench-id' });
  const identity = identityPlan.identity.get('h')!;
  const fresh = (i: number) =>
    handPlan({ ipRange: '10.60.0.0/16', nodes: [{ node: 'h', underlay: '198.51.100.1' }], seed: `bench-${i}`, identity: identityPlan.identity }).desired.get('h')!;

  let k = 0;
  for (const n of [1, 100, 1000]) {
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const d = withPeers(fresh(k++), n);
      const r = check(await host.apply([d], identity), `create ${n}`);
      times.push(r.ms);
      check(await host.apply([], identity), 'remove');
    }
    results[`create_${n}_peers_ms`] = ms(median(times));
  }

  const big = withPeers(fresh(k++), 1000);
  check(await host.apply([big], identity), 'create 1000');
  const noop: number[] = [];
  let noopMutating = 0;
  for (let i = 0; i < 20; i++) {
    const r = check(await host.apply([big], identity), 'no-op');
    noop.push(r.ms);
    noopMutating += r.commands.mutating;
  }
  results.noop_1000_peers_ms = ms(median(noop));
  results.noop_mutating_commands = noopMutating;

  const change: number[] = [];
  let changeCommands = 0;
  for (let i = 0; i < 20; i++) {
    const d = structuredClone(big);
    d.resource.peers[500].allowedIps = [i % 2 === 0 ? '10.200.0.0/24' : '10.200.1.0/24'];
    const r = check(await host.apply([d], identity), 'change');
    change.push(r.ms);
    changeCommands = r.commands.mutating;
  }
  results.change_1_of_1000_ms = ms(median(change));
  results.change_1_of_1000_mutating_commands = changeCommands;

  // What one process costs right now on this machine (the figures above are mostly a few of these).
  const trivial = Array.from({ length: 50 }, () => ({ argv: ['true'] }));
  results.one_process_ms = ms((await host.call<number>('execMany', { cmds: trivial })) / 50);

  // The naive way: one `wg set` process per peer, re-setting all 1,000.
  const wgIf = `w-${big.networkId}`;
  const wgNetns = results.backend === 'kernel' ? `n-${big.networkId}` : undefined;
  const cmds = big.resource.peers.map((p) => ({
    argv: ['wg', 'set', wgIf, 'peer', p.publicKey, 'endpoint', p.endpoint!, 'allowed-ips', p.allowedIps.join(',')],
    netns: wgNetns,
  }));
  results.naive_change_1000_wg_processes_ms = ms(await host.call<number>('execMany', { cmds }, 120_000));
  check(await host.apply([], identity), 'remove');

  // Issue #17: a part with 5,000 peers (a node of a 5,000-node mesh): create ≤ 2 s, no-op ≤ 100 ms with zero
  // mutating commands.
  const create5k: number[] = [];
  let huge = big;
  for (let run = 0; run < 3; run++) {
    huge = withPeers(fresh(k++), 5000);
    create5k.push(check(await host.apply([huge], identity), 'create 5000').ms);
    if (run < 2) check(await host.apply([], identity), 'remove');
  }
  results.create_5000_peers_ms = ms(median(create5k));
  const noop5k: number[] = [];
  let noop5kMutating = 0;
  for (let i = 0; i < 10; i++) {
    const r = check(await host.apply([huge], identity), 'no-op 5000');
    noop5k.push(r.ms);
    noop5kMutating += r.commands.mutating;
  }
  results.noop_5000_peers_ms = ms(median(noop5k));
  results.noop_5000_mutating_commands = noop5kMutating;
  check(await host.apply([], identity), 'remove');
  results.leftovers = (await host.listOwned()).length;
  results.load_average = Math.round(loadavg()[0] * 100) / 100;

  const rows: [string, string, string][] = [
    ['create, 1 peer (wireguard-go start included)', `${results.create_1_peers_ms} ms`, ''],
    ['create, 100 peers', `${results.create_100_peers_ms} ms`, ''],
    ['create, 1,000 peers', `${results.create_1000_peers_ms} ms`, 'target ≤ 500 ms'],
    ['no-op apply, 1,000 peers', `${results.noop_1000_peers_ms} ms`, `target ≤ 30 ms; mutating commands in 20 runs: ${results.noop_mutating_commands}`],
    ['change 1 peer of 1,000', `${results.change_1_of_1000_ms} ms`, `target ≤ 40 ms; mutating commands: ${results.change_1_of_1000_mutating_commands}`],
    ['create, 5,000 peers', `${results.create_5000_peers_ms} ms`, 'target ≤ 2,000 ms (issue #17)'],
    ['no-op apply, 5,000 peers', `${results.noop_5000_peers_ms} ms`, `target ≤ 100 ms; mutating commands in 10 runs: ${results.noop_5000_mutating_commands}`],
    ['naive: 1,000 wg set processes', `${results.naive_change_1000_wg_processes_ms} ms`, ''],
    ['one trivial process through the runner', `${results.one_process_ms} ms`, `load average ${loadavg()[0].toFixed(2)} on ${cpus().length} CPUs`],
  ];
  console.log(`netns driver benchmark (backend ${results.backend}, medians)`);
  for (const [a, b, c] of rows) console.log(`  ${a.padEnd(46)} ${b.padStart(10)}  ${c}`);
} finally {
  await host.close();
}
console.log(JSON.stringify(results));
