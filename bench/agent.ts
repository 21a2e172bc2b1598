// Agent benchmark (as root): what one node agent costs, with 1, 10 and 50 tenant networks (each a 10-node
// network: this node and 9 public peers), beside Nebula 1.6.1 running the same number of networks (Nebula runs
// one process per network: its own certificate, tun and port).
//   rss            the agent's resident memory once the networks are applied and it is idle (VmRSS), its peak
//                  (VmHWM), and the wireguard-go daemons' memory (sum of RSS, and of PSS: shared pages split)
//   apply          time of the submission that creates the networks (verify, record, apply), and of a
//                  change that adds one peer to every network (the one-node "blueprint change → applied")
//   noop           a reconcile with nothing to change (median of 15 `POST /v1/reconcile`): wall time, CPU ms
//                  of the agent and of the commands it ran (ip, wg, nft; from the agent's own accounting,
//                  docs/admin-api.md), commands read/mutating; and per network
//   nebula         the RSS/PSS sums of N Nebula processes, their start to all tuns up
//   policy         a policy rule changed (the first network's rule opens another port), one submission at a
//                  time: request → the rule in the kernel (nft monitor in the tenant namespace), and → the
//                  answer (median/max of 10); beside nebulaReload
//   nebulaReload   Nebula's config reload between two hosts (median of 3): the server's firewall drops ICMP;
//                  its config is rewritten to allow it and the process gets SIGHUP; time from the signal to
//                  the first echo reply (pings every 10 ms). Nebula has no control plane: getting the new file
//                  to each node is left to the operator. zmesh's counterpart is changeMs here (one node) and
//                  the lab part's blueprint change (every node).
// The agent runs from dist/ when it is fresh (as a deployed agent would), otherwise through tsx (noted), with the
// deployed Node flags (AGENT_NODE_FLAGS; BENCH_AGENT_NODE_FLAGS="..." replaces them, e.g. "" for Node's defaults).
// Last line: one JSON object.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { call } from '../src/admin/client.ts';
import { AGENT_NODE_FLAGS, zmeshArgv } from '../labs/agents.ts';
import { blueprint, net, type NodeDef } from '../test/helpers/fixtures.ts';
import { part, planFor, signed } from '../test/helpers/agent-fixtures.ts';
import { destroyAgentHost, makeAgentHost, waitFor, type AgentHost } from '../test/helpers/agent-host.ts';
import type { Plan } from '../src/plan/index.ts';
import { sh } from '../test/helpers/host.ts';
import { childrenNamed, pssKiB, statusKiB } from './proc.ts';
import { Pair, execIn, load1, median, nebulaTunnel, round, type Tunnel } from './dataplane-lib.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SIZES = (process.env.BENCH_AGENT_NETWORKS ?? '1,10,50').split(',').map(Number);
const NOOP_RUNS = 15;

const mib = (kib: number) => round(kib / 1024, 1);

export interface AgentFigures {
  networks: number;
  idleRssMiB: number;
  rssMiB: number;
  hwmMiB: number;
  wireguardGo: { processes: number; rssMiB: number; pssMiB: number };
  createMs: number;
  changeMs: number;
  noop: { ms: number; agentCpuMs: number; commandsCpuMs: number; reads: number; mutating: number; perNetwork: { agentCpuMs: number; commandsCpuMs: number; reads: number } };
  /** A policy rule changed (the first network's one rule opens another port), submitted one at a time (median and
   *  max of POLICY_RUNS): from the request to the rule in the kernel (`nft monitor` in the tenant namespace
   *  prints it), and to the agent's answer. */
  policy: { inForceMs: number; inForceMaxMs: number; answeredMs: number; answeredMaxMs: number };
}

const POLICY_RUNS = 10;

const peers: NodeDef[] = Array.from({ length: 10 }, (_, i) => ({ id: `p-${i}`, endpoints: [`203.0.113.${i + 2}`] }));
const self: NodeDef = { id: 'node-a', endpoints: ['203.0.113.1'] };

/** port: the first network gets a deny-by-default policy whose one rule opens tcp/port from p-0 to this node. */
function bpFor(n: number, version: number, peerCount: number, port?: number) {
  const nodes = [self, ...peers.slice(0, peerCount)].map((x) => x.id);
  const policy = (i: number) => (port !== undefined && i === 0 ? { policy: { default: 'deny' as const, rules: [{ from: ['node:p-0'], to: ['node:node-a'], ports: [`tcp/${port}`] }] } } : {});
  return blueprint(
    Array.from({ length: n }, (_, i) => net({ name: `net${i}`, ipRange: `10.${i + 1}.0.0/16`, nodes, ...policy(i) })),
    { tenant: 'acme', name: 'bench', version },
  );
}

async function startDistAgent(bed: AgentHost): Promise<number> {
  const { argv } = zmeshArgv();
  const p = bed.host.spawn([argv[0], ...nodeFlags, ...argv.slice(1), 'agent', '--config', bed.config]);
  p.stderr!.on('data', (d: Buffer) => bed.log.push(d.toString()));
  bed.agent = p;
  await waitFor(async () => (await call<{ lastReconcile: unknown }>(bed.socket, 'GET', '/v1/status').catch(() => null))?.lastReconcile != null, 30_000, 'the agent to reconcile once');
  return p.pid!;
}

async function agentRun(n: number): Promise<AgentFigures> {
  // Reconciles only when asked (the interval is long), so the figures are the requested runs alone.
  const bed = await makeAgentHost({ interval: '1h' });
  try {
    const pid = await startDistAgent(bed);
    await sleep(1000);
    const idle = statusKiB(pid, 'VmRSS');
    const bp1 = bpFor(n, 1, 9);
    const plan1: Plan = planFor(bp1, [self, ...peers.slice(0, 9)]);
    let t0 = performance.now();
    await call(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bp1), part: part(plan1, 'node-a') }, 600_000);
    const createMs = performance.now() - t0;
    const nets = await call<{ networks: { applied: boolean }[] }>(bed.socket, 'GET', '/v1/networks');
    if (nets.networks.length !== n || !nets.networks.every((x) => x.applied)) throw new Error(`${n} networks not applied: ${JSON.stringify(nets).slice(0, 300)}`);
    // The change: version 2 adds a tenth peer to every network.
    const bp2 = bpFor(n, 2, 10);
    const plan2 = planFor(bp2, [self, ...peers], plan1);
    t0 = performance.now();
    await call(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bp2), part: part(plan2, 'node-a') }, 600_000);
    const changeMs = performance.now() - t0;
    const runs: { durationMs: number; cost: { agentCpuMs: number; commandsCpuMs: number; reads: number; mutating: number } }[] = [];
    for (let i = 0; i < NOOP_RUNS; i++) {
      const r = await call<{ durationMs: number; changes: number; cost: (typeof runs)[number]['cost'] }>(bed.socket, 'POST', '/v1/reconcile', undefined, 120_000);
      if (r.changes !== 0) throw new Error(`no-op reconcile ${i} made ${r.changes} change(s)`);
      runs.push(r);
    }
    // The policy changes: version 3 adds the policy, 4… change its port.
    let prev = planFor(bp2, [self, ...peers], plan1);
    const policyMs: number[] = [];
    const inForceMs: number[] = [];
    const ns0 = `n-${plan1.networks[0].id}`;
    for (let v = 3; v < 4 + POLICY_RUNS; v++) {
      const port = 1000 + v;
      const bp = bpFor(n, v, 10, port);
      const plan = planFor(bp, [self, ...peers], prev);
      prev = plan;
      const body = { signed: signed(bp), part: part(plan, 'node-a') };
      // The kernel's word on when the rule is there: nft monitor prints each rule as it is committed.
      const monitor = bed.host.spawn(['nsenter', `--net=/run/netns/${ns0}`, '--', 'nft', 'monitor', 'rules']);
      let seen = 0;
      const inForce = new Promise<void>((resolve) => {
        let buf = '';
        monitor.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          if (!seen && buf.includes(`dport ${port} `)) {
            seen = performance.now();
            resolve();
          }
        });
      });
      await sleep(300);
      t0 = performance.now();
      const r = await call<{ networks: { ok: boolean; changes: string[] }[] }>(bed.socket, 'POST', '/v1/blueprints', body, 60_000);
      const ms = performance.now() - t0;
      await Promise.race([inForce, sleep(2000)]);
      monitor.kill('SIGKILL');
      if (!r.networks.every((x) => x.ok) || !r.networks[0].changes.some((c) => c.startsWith('nft table'))) throw new Error(`policy change ${v} not applied: ${JSON.stringify(r).slice(0, 300)}`);
      if (!seen) throw new Error(`policy change ${v}: nft monitor never showed tcp dport ${port}`);
      if (v > 3) {
        policyMs.push(ms);
        inForceMs.push(seen - t0);
      }
      // The full reconcile that follows a submission (src/agent/agent.ts FOLLOW_UP_MS) ends before the next one.
      const since = Date.now() - ms;
      await waitFor(async () => {
        const st = await call<{ lastReconcile: { at: string; reason: string } | null }>(bed.socket, 'GET', '/v1/status');
        return st.lastReconcile?.reason === 'after submit acme/bench' && Date.parse(st.lastReconcile.at) >= since;
      }, 60_000, 'the follow-up reconcile');
    }
    await sleep(2000);
    const wg = childrenNamed([pid], 'wireguard-go');
    const noop = {
      ms: round(median(runs.map((r) => r.durationMs))),
      agentCpuMs: round(median(runs.map((r) => r.cost.agentCpuMs))),
      commandsCpuMs: round(median(runs.map((r) => r.cost.commandsCpuMs))),
      reads: median(runs.map((r) => r.cost.reads)),
      mutating: Math.max(...runs.map((r) => r.cost.mutating)),
    };
    return {
      networks: n,
      idleRssMiB: mib(idle),
      rssMiB: mib(statusKiB(pid, 'VmRSS')),
      hwmMiB: mib(statusKiB(pid, 'VmHWM')),
      wireguardGo: { processes: wg.length, rssMiB: mib(wg.reduce((a, p) => a + statusKiB(p, 'VmRSS'), 0)), pssMiB: mib(wg.reduce((a, p) => a + pssKiB(p), 0)) },
      createMs: round(createMs),
      changeMs: round(changeMs),
      policy: { inForceMs: round(median(inForceMs)), inForceMaxMs: round(Math.max(...inForceMs)), answeredMs: round(median(policyMs)), answeredMaxMs: round(Math.max(...policyMs)) },
      noop: { ...noop, perNetwork: { agentCpuMs: round(noop.agentCpuMs / n, 2), commandsCpuMs: round(noop.commandsCpuMs / n, 2), reads: round(noop.reads / n, 1) } },
    };
  } finally {
    await destroyAgentHost(bed);
  }
}

export interface NebulaFigures {
  networks: number;
  processes: number;
  rssMiB: number;
  pssMiB: number;
  startMs: number;
}

/** N Nebula processes in one throwaway host, one per network (own CA-signed certificate, tun nbI, port). */
async function nebulaRun(n: number): Promise<NebulaFigures> {
  const bed = await makeAgentHost({ interval: '1h' });
  const dir = join(bed.dir, 'nebula');
  const procs: ReturnType<AgentHost['host']['spawn']>[] = [];
  try {
    await sh(['mkdir', '-p', dir]);
    await sh(['nebula-cert', 'ca', '-name', 'zmesh-bench', '-out-crt', join(dir, 'ca.crt'), '-out-key', join(dir, 'ca.key')]);
    for (let i = 0; i < n; i++) {
      await sh(['nebula-cert', 'sign', '-ca-crt', join(dir, 'ca.crt'), '-ca-key', join(dir, 'ca.key'), '-name', `net${i}`, '-ip', `100.64.${i}.1/24`, '-out-crt', join(dir, `${i}.crt`), '-out-key', join(dir, `${i}.key`)]);
      const cfg = {
        pki: { ca: join(dir, 'ca.crt'), cert: join(dir, `${i}.crt`), key: join(dir, `${i}.key`) },
        // The same shape as the zmesh networks: 9 peers with public addresses (documentation range).
        static_host_map: Object.fromEntries(peers.slice(0, 9).map((p, k) => [`100.64.${i}.${k + 2}`, [`${p.endpoints![0]}:4242`]])),
        lighthouse: { am_lighthouse: false, interval: 60, hosts: [] },
        listen: { host: '0.0.0.0', port: 4242 + i },
        punchy: { punch: false },
        tun: { disabled: false, dev: `nb${i}`, drop_local_broadcast: false, drop_multicast: false, tx_queue: 500, routes: [], unsafe_routes: [] },
        logging: { level: 'warning', format: 'text' },
        firewall: { outbound: [{ port: 'any', proto: 'any', host: 'any' }], inbound: [{ port: 'any', proto: 'any', host: 'any' }] },
      };
      writeFileSync(join(dir, `${i}.yml`), stringify(cfg), { mode: 0o600 });
    }
    const t0 = performance.now();
    for (let i = 0; i < n; i++) procs.push(bed.host.spawn(['nebula', '-config', join(dir, `${i}.yml`)]));
    await waitFor(async () => {
      const links = JSON.parse((await bed.host.exec(['ip', '-json', 'link', 'show'])).stdout) as { ifname: string }[];
      return links.filter((l) => /^nb\d+$/.test(l.ifname)).length === n;
    }, 60_000, `${n} nebula tuns`);
    const startMs = performance.now() - t0;
    await sleep(2000);
    const pids = procs.map((p) => p.pid!);
    return {
      networks: n,
      processes: pids.filter((p) => statusKiB(p, 'VmRSS') > 0).length,
      rssMiB: mib(pids.reduce((a, p) => a + statusKiB(p, 'VmRSS'), 0)),
      pssMiB: mib(pids.reduce((a, p) => a + pssKiB(p), 0)),
      startMs: round(startMs),
    };
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await destroyAgentHost(bed);
  }
}

/** Milliseconds from SIGHUP (with a config that now allows ICMP) to the first echo reply through Nebula. */
async function nebulaReloadOnce(): Promise<number> {
  const pair = await Pair.create();
  let t: Tunnel | null = null;
  try {
    t = await nebulaTunnel(pair, { serverInbound: [{ port: 'any', proto: 'tcp', host: 'any' }] });
    // The tunnel is up (handshake done) but ICMP is dropped by the server's firewall.
    const blocked = await execIn(t.client, ['ping', '-n', '-c', '3', '-i', '0.2', '-w', '3', t.serverAddr], { okCodes: [0, 1] });
    if (blocked.exitCode === 0) throw new Error('ICMP got through a firewall that drops it');
    const cfg = readFileSync(t.serverConfig!, 'utf8');
    const allowed = cfg.replace(/proto: tcp/, 'proto: any');
    if (allowed === cfg) throw new Error('could not rewrite the Nebula firewall rule');
    writeFileSync(t.serverConfig!, allowed);
    const pinger = execIn(t.client, ['ping', '-D', '-n', '-i', '0.01', '-c', '1', '-w', '10', t.serverAddr], { okCodes: [0, 1, 2], timeoutMs: 15_000 });
    await sleep(100);
    const t0 = Date.now();
    process.kill(t.pids[1], 'SIGHUP');
    const r = await pinger;
    const m = /^\[(\d+\.\d+)\].*bytes from/m.exec(r.stdout);
    if (!m) throw new Error(`no echo reply after the reload: ${r.stdout.slice(-300)}`);
    return Number(m[1]) * 1000 - t0;
  } finally {
    await t?.down();
    await pair.close();
  }
}

const loadStart = load1();
const agent: AgentFigures[] = [];
const nebula: NebulaFigures[] = [];
const nodeFlags = process.env.BENCH_AGENT_NODE_FLAGS !== undefined ? process.env.BENCH_AGENT_NODE_FLAGS.split(' ').filter(Boolean) : AGENT_NODE_FLAGS;
const mode = zmeshArgv().argv.some((a) => a.endsWith('main.ts')) ? 'tsx' : 'dist';
for (const n of SIZES) {
  process.stderr.write(`  agent with ${n} network(s)\n`);
  agent.push(await agentRun(n));
  process.stderr.write(`  nebula with ${n} network(s)\n`);
  nebula.push(await nebulaRun(n));
}
const reloads: number[] = [];
for (let i = 0; i < 3; i++) reloads.push(round(await nebulaReloadOnce()));
const nebulaReload = { runsMs: reloads, medianMs: round(median(reloads)) };
console.log(`agent from ${mode}, node ${nodeFlags.join(' ') || '(no flags)'}; each network: this node + 9 public peers (+1 in the change)`);
console.log('networks  agent idle/RSS/peak MiB  wireguard-go n RSS/PSS MiB  create ms  change ms  no-op ms  agent cpu ms  commands cpu ms  reads  mutating  | nebula n RSS/PSS MiB  start ms');
for (let i = 0; i < agent.length; i++) {
  const a = agent[i];
  const b = nebula[i];
  console.log(
    `${String(a.networks).padStart(8)}  ${`${a.idleRssMiB}/${a.rssMiB}/${a.hwmMiB}`.padStart(22)}  ${`${a.wireguardGo.processes} ${a.wireguardGo.rssMiB}/${a.wireguardGo.pssMiB}`.padStart(26)}  ${String(a.createMs).padStart(9)}  ${String(a.changeMs).padStart(9)}  ${String(a.noop.ms).padStart(8)}  ${String(a.noop.agentCpuMs).padStart(12)}  ${String(a.noop.commandsCpuMs).padStart(15)}  ${String(a.noop.reads).padStart(5)}  ${String(a.noop.mutating).padStart(8)}  | ${`${b.processes} ${b.rssMiB}/${b.pssMiB}`.padStart(20)}  ${String(b.startMs).padStart(8)}`,
  );
}
console.log(`nebula config reload (SIGHUP → first echo reply allowed by the new firewall): ${reloads.join(' / ')} ms, median ${nebulaReload.medianMs} ms; zmesh blueprint change applied on one node: ${agent.map((a) => `${a.changeMs} ms (${a.networks} network${a.networks > 1 ? 's' : ''})`).join(', ')}`);
console.log(`zmesh policy rule changed (median/max of ${POLICY_RUNS}), submission → rule in the kernel; → answered: ${agent.map((a) => `${a.policy.inForceMs}/${a.policy.inForceMaxMs}; ${a.policy.answeredMs}/${a.policy.answeredMaxMs} ms (${a.networks} network${a.networks > 1 ? 's' : ''})`).join(', ')}`);
console.log(JSON.stringify({ bench: 'agent', agentMode: mode, nodeFlags, peersPerNetwork: 9, noopRuns: NOOP_RUNS, agent, nebula, nebulaReload, load: { start: loadStart, end: load1() } }));
