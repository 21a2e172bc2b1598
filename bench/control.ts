// Control-plane benchmark: a real etcd (one member, data on /dev/shm), the controller, and 200 and 1,000
// simulated agents in process (each a NodeWatch on its own prefix, spread over a few gRPC connections, that
// reassembles its part and fetches the signed envelope like the agent does; the pipeline itself is not run).
// Figures per size:
//   changeMs    time from a blueprint change (a new signed version) to every agent having received its part
//               and read the new signed envelope (median of 3); partsSeenMs: to every agent having its new part
//   joinPublic / joinHidden   etcd writes for one node joining (puts, key+value bytes, transactions, nodes touched)
//               and the time until every touched agent has it
// Network shape: one network over all nodes, 10% public (access nodes, full mesh) and 90% hidden behind them —
// edge nodes behind NAT; at 200 also 90% public (a full mesh), the worst case for join writes.
// BENCH_CONTROL_CASES=edge10000 runs the 10,000-node case alone (issue #17). Last line: one JSON object.
// Simulated agents are *full* (each reassembles its whole part on every change, as the agent does) or, past 5,000
// nodes, *light* (BENCH_CONTROL_AGENTS=light|full overrides): each reads its head and its networks' directory heads
// only, every 100th reassembles its whole part, and the figure `assembleMs` (median, max) is what that costs one
// agent. The reassembly is O(part) on every node's own CPU; 10,000 of them in this one process are O(n²) on 2
// cores (a 3,000-node run spent 42 of its 129 s of CPU there), which would measure the machine, not the control
// plane. The envelope is still read by every agent once per version.
import { randomBytes } from 'node:crypto';
import { assemblePart, Controller, connectEtcd, ControlOps, Keys, NodeWatch, parseHead, prefixEnd, signRecord, type Entries, type Etcd3 } from '../src/control/index.ts';
import type { Watcher } from 'etcd3';
import { signBlueprint } from '../src/blueprint/index.ts';
import type { Blueprint } from '../src/blueprint/types.ts';
import { ed25519KeyPair, x25519KeyPair, X25519Secret } from '../src/crypto/keys.ts';
import { seededRandom } from '../src/crypto/rng.ts';
import { startEtcd } from '../test/helpers/etcd.ts';
import { directoryHash, isDirectoryHead, type DirectoryHead } from '../src/control/directory.ts';
import { ROSTER_HINT } from '../src/control/roster.ts';

const CONNECTIONS = 8;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const tenant = ed25519KeyPair(seededRandom('bench-tenant')(32));

interface Case {
  nodes: number;
  publicShare: number;
}

interface JoinFigures {
  puts: number;
  bytes: number;
  txns: number;
  nodesTouched: number;
  ms: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function bp(ids: string[], version: number, egress: boolean): Blueprint {
  return {
    tenant: 'bench',
    name: 'edge',
    version,
    networks: [{ name: 'mesh', ipRange: ids.length > 4096 ? '10.0.0.0/8' : '10.64.0.0/12', subnetPrefix: 24, nodes: ids, access: [], egress }],
    workloads: [],
    volumes: [],
  };
}

async function runCase(c: Case): Promise<Record<string, unknown>> {
  const cluster = await startEtcd({ args: ['--quota-backend-bytes', String(4 * 1024 ** 3)] });
  const clients: Etcd3[] = [];
  const watches: NodeWatch[] = [];
  const dirWatches: Watcher[] = [];
  let controller: Controller | null = null;
  try {
    const keys = new Keys();
    const admin = connectEtcd({ urls: cluster.urls });
    clients.push(admin);
    const ops = new ControlOps(admin);
    await ops.addTenant('bench', tenant.publicKey.toString());
    const n = c.nodes;
    const all = Array.from({ length: n + 2 }, (_, i) => `n${String(i + 1).padStart(4, '0')}`);
    // Every 10th node public (10%), or all but every 10th (90%).
    const isPublic = (i: number) => (c.publicShare < 0.5 ? i % 10 === 0 : i % 10 !== 9);
    const identities = all.map((id) => new X25519Secret(x25519KeyPair(seededRandom(`bench-id:${id}`)(32)).privateKey));
    const lease = admin.lease(600);
    // Each node enrolled (the operator pins its key), then its registration signed with that key, as agents do.
    for (let i = 0; i < all.length; i += 100) await Promise.all(all.slice(i, i + 100).map((id, j) => ops.approveNode(id, identities[i + j].publicKey.toString())));
    const register = (i: number, pub: boolean) => {
      const key = keys.node(all[i]);
      return lease.put(key).value(signRecord(key, { id: all[i], publicKey: identities[i].publicKey.toString(), endpoints: pub ? [`198.18.${i >> 8}.${i & 255}`] : [], reservedPorts: [] }, identities[i]));
    };
    for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => register(i + j, isPublic(i + j))));

    // The direct-peer directories and the rosters, as every agent watches those of its networks: one shared copy
    // here (each real node reads its networks' alone; in one process 10,000 copies of a 10,000-entry roster would be
    // the O(n²) that rosters and directories exist to avoid). An agent has its part only once every roster and
    // directory its part names holds what the part says.
    const dirs = new Map<string, Map<string, string>>();
    const dirHash = new Map<string, string>();
    const waitingDir = new Map<string, NodeWatch>();
    const watchEpochs = async (kind: 'directory' | 'roster') => {
      const prefix = keys.epochRoot(kind);
      const w = await admin.watch().prefix(prefix).create();
      w.on('data', (res) => {
        for (const e of res.events) {
          const key = e.kv.key.toString();
          const p = keys.parseEpochKey(kind, key);
          if (!p || p.node === ROSTER_HINT) continue;
          const id = `${kind}:${p.network}/${p.epoch}`;
          let m = dirs.get(id);
          if (!m) dirs.set(id, (m = new Map()));
          if (e.type === 'Put') m.set(p.node, e.kv.value.toString());
          else m.delete(p.node);
          dirHash.delete(id);
        }
        for (const x of waitingDir.values()) x.poke(new Set(x.cache.keys()));
      });
      return w;
    };
    dirWatches.push(await watchEpochs('directory'), await watchEpochs('roster'));
    const directoryReady = (kind: 'directory' | 'roster', heads: Map<string, DirectoryHead>, networkIdOf: (name: string) => string | undefined) => {
      for (const [name, h] of heads) {
        const id = `${kind}:${networkIdOf(name)}/${h.epoch}`;
        const m = dirs.get(id);
        if (!m || m.size !== h.n) return false;
        let sha = dirHash.get(id);
        if (sha === undefined) dirHash.set(id, (sha = directoryHash(m.values())));
        if (sha !== h.sha256) return false;
      }
      return true;
    };

    // Simulated agents: what each has received (version, generation), and when.
    const light = process.env.BENCH_CONTROL_AGENTS ? process.env.BENCH_CONTROL_AGENTS === 'light' : n > 5000;
    const assembleMs: number[] = [];
    const received = new Map<string, { version: number; generation: number; at: number }>();
    const envelopes = new Map<string, number>();
    const heads = new Map<string, { version: number; at: number }>();
    for (let k = 0; k < CONNECTIONS; k++) clients.push(connectEtcd({ urls: cluster.urls }));
    for (let i = 0; i < n; i++) {
      const node = all[i];
      const client = clients[1 + (i % CONNECTIONS)];
      const w: NodeWatch = new NodeWatch({
        client,
        keys,
        node,
        onBatch: async (b) => {
          for (const id of b.ids) {
            const [t, name] = id.split('/');
            const entries = w.cache.get(id) ?? new Map();
            const full = !light || i % 100 === 0;
            const t1 = performance.now();
            const a = full ? assemblePart({ node, tenant: t, blueprint: name }, entries) : lightPart(entries);
            if (full && light) assembleMs.push(performance.now() - t1);
            if (!a) continue;
            const idOf = (net: string) => a.part.networks.find((x) => x.name === net)?.id;
            if (!directoryReady('roster', a.rosters, idOf) || !directoryReady('directory', a.directories, idOf)) {
              waitingDir.set(node, w);
              continue;
            }
            waitingDir.delete(node);
            if ((heads.get(node)?.version ?? 0) < a.part.version) heads.set(node, { version: a.part.version, at: performance.now() });
            if (envelopes.get(node) !== a.part.version) {
              await client.get(a.head.envelope).string();
              envelopes.set(node, a.part.version);
            }
            received.set(node, { version: a.part.version, generation: a.part.generation, at: performance.now() });
          }
        },
      });
      watches.push(w);
      w.start();
    }
    await Promise.all(watches.map((w) => waitUntil(() => w.syncs > 0, 60000)));

    controller = new Controller({ client: admin, graceMs: 60000, holdDownMs: 3600000, debounceMs: 50, random: (k) => new Uint8Array(randomBytes(k)) });
    controller.start();
    await controller.whenLeader(60000);
    const ids = all.slice(0, n + 2);
    let version = 1;
    const everyone = (v: number) => all.slice(0, n).every((id) => received.get(id)?.version === v);
    const t0 = performance.now();
    await ops.submit(signBlueprint(bp(ids, version, false), tenant.privateKey));
    // Progress on stderr for the big case (minutes): agents with the version, waiting for a directory, rounds.
    const progress = setInterval(() => {
      const have = all.slice(0, n).filter((id) => received.get(id)?.version === version).length;
      const r = controller?.lastRound;
      process.stderr.write(`bench: ${Math.round((performance.now() - t0) / 1000)} s: ${have}/${n} agents have version ${version}, ${waitingDir.size} wait for a directory; round ${r?.n ?? '-'} (${r?.durationMs ?? '-'} ms, ${r?.nodesWritten ?? '-'} nodes written); rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB\n`);
    }, n > 2000 ? 10000 : 3600000);
    progress.unref();
    await waitUntil(() => everyone(version), n > 2000 ? 900000 : 300000);
    const initialMs = performance.now() - t0;
    await controller.idle();
    const keyCount = (await admin.kv.range({ key: Buffer.from(keys.parts()), range_end: prefixEnd(keys.parts()), count_only: true })).count;
    const directoryKeys = (await admin.kv.range({ key: Buffer.from(keys.directories()), range_end: prefixEnd(keys.directories()), count_only: true })).count;
    const rosterKeys = (await admin.kv.range({ key: Buffer.from(keys.rosters()), range_end: prefixEnd(keys.rosters()), count_only: true })).count;
    // What the shared copy above hides: each real agent reads its network's roster whole when it takes the network
    // and again on every new epoch (a member leaving). One such read, paged as the agent reads it.
    const rosterRead = async () => {
      const t = performance.now();
      let from = Buffer.from(keys.rosters());
      let revision: string | undefined;
      let bytes = 0;
      for (let page = 0; page < 64; page++) {
        const res = await admin.kv.range({ key: from, range_end: prefixEnd(keys.rosters()), limit: 2000, ...(revision ? { revision } : {}) });
        revision ??= res.header.revision;
        for (const kv of res.kvs) bytes += kv.key.length + kv.value.length;
        if (!res.more || !res.kvs.length) break;
        from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
      }
      return { bytes, ms: performance.now() - t };
    };
    const rosterReads = [await rosterRead(), await rosterRead(), await rosterRead()];

    // Blueprint changes: a new version each time (the egress flag flips), to every agent.
    const changes: number[] = [];
    const headTimes: number[] = [];
    const rounds: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      version++;
      const s = performance.now();
      await ops.submit(signBlueprint(bp(ids, version, version % 2 === 0), tenant.privateKey));
      await waitUntil(() => everyone(version), n > 2000 ? 900000 : 300000);
      const last = Math.max(...all.slice(0, n).map((id) => received.get(id)!.at));
      changes.push(last - s);
      headTimes.push(Math.max(...all.slice(0, n).map((id) => heads.get(id)!.at)) - s);
      await controller.idle();
      rounds.push(controller.lastRound!.durationMs);
    }

    // Joins: one public node, then one hidden node.
    const join = async (i: number, pub: boolean): Promise<JoinFigures> => {
      await controller!.idle();
      const before = { ...controller!.stats };
      const gens = new Map(all.slice(0, n).map((id) => [id, received.get(id)!.generation]));
      const gen = controller!.lastRound!.blueprints['bench/edge'].generation! + 1;
      const s = performance.now();
      await register(i, pub);
      await waitUntil(() => controller!.lastRound?.blueprints['bench/edge']?.generation === gen, 60000);
      await controller!.idle();
      const touched = controller!.lastRound!.nodesWritten;
      // Every agent whose part changed has the new generation.
      await waitUntil(() => {
        let moved = 0;
        for (const [id, g] of gens) if ((received.get(id)?.generation ?? 0) > g) moved++;
        // The joined nodes (this one and the one before) have no simulated agent.
        return moved >= touched - (i - n + 1);
      }, 60000);
      const ms = performance.now() - s;
      const st = controller!.stats;
      return { puts: st.puts - before.puts, bytes: st.bytes - before.bytes, txns: st.txns - before.txns, nodesTouched: touched, ms: Math.round(ms) };
    };
    const joinPublic = await join(n, true);
    const joinHidden = await join(n + 1, false);
    lease.release();
    clearInterval(progress);
    return {
      nodes: n,
      publicNodes: all.slice(0, n).filter((_, i) => isPublic(i)).length,
      initialMs: Math.round(initialMs),
      partKeys: Number(keyCount),
      // Hidden nodes' direct peers: one entry per hidden member and network (not one per pair in every part).
      directoryKeys: Number(directoryKeys),
      // Every member's subnet, name and policy addresses: one entry per member and network (not in every part).
      rosterKeys: Number(rosterKeys),
      // One agent's whole read of its roster (bytes, median ms of 3); × members = what a first plan or a leave costs.
      rosterRead: { bytes: rosterReads[0].bytes, ms: Math.round(median(rosterReads.map((r) => r.ms))) },
      changeMs: Math.round(median(changes)),
      changeRunsMs: changes.map((x) => Math.round(x)),
      partsSeenMs: Math.round(median(headTimes)),
      controllerRoundMs: median(rounds),
      joinPublic,
      joinHidden,
      // The bench process: the controller AND every simulated agent's watch and reassembled part (an upper bound
      // of the controller's own memory; etcd runs apart).
      processRssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
      agents: light ? 'light' : 'full',
      ...(light ? { assembleMs: { median: Math.round(median(assembleMs) * 10) / 10, max: Math.round(Math.max(...assembleMs) * 10) / 10, samples: assembleMs.length } } : {}),
      heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
    };
  } finally {
    for (const w of watches) await w.stop().catch(() => undefined);
    await controller?.kill().catch(() => undefined);
    for (const cl of clients) cl.close();
    await cluster.stop();
  }
}

/**
 * What a light simulated agent reads of its part: the head, and each network's name, id, roster and directory heads (the
 * net entries); the rest of the part is left unread (see the header).
 */
function lightPart(entries: Entries): {
  head: NonNullable<ReturnType<typeof parseHead>>;
  part: { version: number; generation: number; networks: { name: string; id: string }[] };
  directories: Map<string, DirectoryHead>;
  rosters: Map<string, DirectoryHead>;
} | null {
  const head = parseHead(entries.get('gen'));
  if (!head) return null;
  const networks: { name: string; id: string }[] = [];
  const directories = new Map<string, DirectoryHead>();
  const rosters = new Map<string, DirectoryHead>();
  for (const [suffix, text] of entries) {
    if (!suffix.startsWith('net/')) continue;
    const v = JSON.parse(text) as { name: string; id: string; direct?: unknown; roster?: unknown };
    networks.push({ name: v.name, id: v.id });
    if (v.direct !== undefined && isDirectoryHead(v.direct)) directories.set(v.name, v.direct);
    if (v.roster !== undefined && isDirectoryHead(v.roster)) rosters.set(v.name, v.roster);
  }
  return { head, part: { version: head.version, generation: head.generation, networks }, directories, rosters };
}

async function waitUntil(fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!fn()) {
    if (performance.now() > deadline) throw new Error('bench: timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const allCases: (Case & { key: string })[] = [
  { key: 'edge200', nodes: 200, publicShare: 0.1 },
  { key: 'mesh200', nodes: 200, publicShare: 0.9 },
  { key: 'edge1000', nodes: 1000, publicShare: 0.1 },
  // Issue #17's size: one public node joining reaches every agent ≤ 10 s. Not in the default run (minutes, GiBs).
  // 9,998 live and the 2 that join: the blueprint lists 10,000 nodes (its limit).
  { key: 'edge10000', nodes: 9_998, publicShare: 0.1 },
];
/** BENCH_CONTROL_CASES=edge1000,edge10000 picks cases; default: the first three. */
const picked = process.env.BENCH_CONTROL_CASES?.split(',').filter(Boolean);
const cases = picked ? allCases.filter((c) => picked.includes(c.key)) : allCases.slice(0, 3);
const results: Record<string, Record<string, unknown>> = {};
console.log('case        nodes  public  part keys  change→all (ms)  join public: puts  bytes    ms   join hidden: puts  bytes    ms');
for (const c of cases) {
  const r = await runCase(c);
  results[c.key] = r;
  const jp = r.joinPublic as JoinFigures;
  const jh = r.joinHidden as JoinFigures;
  console.log(
    `${c.key.padEnd(10)} ${String(r.nodes).padStart(6)} ${String(r.publicNodes).padStart(7)} ${String(r.partKeys).padStart(10)} ${String(r.changeMs).padStart(16)} ` +
      `${String(jp.puts).padStart(18)} ${String(jp.bytes).padStart(7)} ${String(jp.ms).padStart(5)} ${String(jh.puts).padStart(19)} ${String(jh.bytes).padStart(6)} ${String(jh.ms).padStart(5)}`,
  );
}
console.log(
  JSON.stringify({
    bench: 'control',
    runs: RUNS,
    connections: CONNECTIONS,
    ...results,
    bytesPerJoin: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, { public: (r.joinPublic as JoinFigures).bytes, hidden: (r.joinHidden as JoinFigures).bytes }])),
  }),
);
process.exit(0);
