// Operator commands over the agent's admin socket: status, net ls/show, peers, diagnose, policy, apply, rm, events.
import type { Command } from 'commander';
import type { NetworkSummary, StatusView, SubmitResult } from '../agent/agent.ts';
import { policyCheckLines, type Diagnosis, type PolicyFlowCheck, type PolicyView } from '../agent/diagnose.ts';
import type { PathView } from '../agent/paths.ts';
import type { ActualNetwork, DataplaneInfo, DesiredNetwork } from '../agent/ports.ts';
import type { AgentEvent } from '../agent/state.ts';
import { BATCHED_SINCE } from '../../netns/tuning.ts';
import { ZmeshError } from '../errors.ts';
import { call, printList, readJsonDocument, socketPath, stream } from './lazy.ts';
import { colour, humanAge, humanBytes, table, withOutputOption } from './text.ts';

interface Json {
  json?: boolean;
}

function out(flags: Json, data: unknown, human: () => string): void {
  process.stdout.write(flags.json ? JSON.stringify(data, null, 2) + '\n' : human() + '\n');
}

const c = () => colour(Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);

/** One line for `zmesh net show`: the network's wireguard-go and its UDP sockets' drops. */
export function daemonLine(d: NonNullable<ActualNetwork['daemon']>): string {
  if (!d.alive) return `wireguard-go: pid ${d.pid} NOT RUNNING`;
  return `wireguard-go: pid ${d.pid}, ${d.udpSockets} UDP socket(s), ${d.udpDrops} datagram(s) dropped (receive buffer full)`;
}

/** One line for `zmesh status`: the backend, the wireguard-go build and the tuning in force. */
export function dataplaneLine(d: DataplaneInfo | null, k: ReturnType<typeof colour>): string {
  if (!d) return 'not detected yet';
  if (d.backend === 'kernel') return 'kernel WireGuard';
  const wg = d.wireguardGo;
  const build = wg?.version ? `wireguard-go ${wg.version}` : 'wireguard-go (version unknown)';
  const t = d.tuning;
  const knobs = t
    ? [...Object.entries(t.daemonEnv).map(([n, v]) => `${n}=${v}`), ...(t.socketBufferBytes ? [`socket buffers ${humanBytes(t.socketBufferBytes)}`] : [])]
    : [];
  const stale = d.staleDaemons ?? [];
  const warn = stale.length
    ? `; ${k.yellow(`${stale.length} daemon(s) run a wireguard-go binary replaced on disk since they started (pid ${stale.slice(0, 5).map((x) => x.pid).join(', ')}${stale.length > 5 ? ', …' : ''}): \`kill PID\` one at a time and the agent restarts it on the installed build (its tunnels pause a few seconds)`)}`
    : '';
  return `${build}, ${wg?.batched ? 'batched I/O' : k.yellow(`one packet per system call: install a batched build (>= ${BATCHED_SINCE})`)}; tuning: ${knobs.length ? knobs.join(', ') : 'none'}${warn}`;
}

function netTable(nets: NetworkSummary[]): string {
  const k = c();
  return table([
    ['NETWORK', 'ID', 'RANGE', 'SUBNET', 'PORT', 'PEERS', 'GEN', 'STATE'],
    ...nets.map((n) => [
      `${n.tenant}/${n.blueprint}/${n.name}`,
      n.id,
      n.ipRange,
      n.subnet,
      String(n.listenPort),
      String(n.peers),
      String(n.generation),
      n.applied ? k.green('applied') : k.red(n.lastError ? `error: ${n.lastError}` : 'pending'),
    ]),
  ]);
}

export type NetworkDetail = { desired: DesiredNetwork; actual: ActualNetwork | null; generation: number; mtu: number };

/** One peer as `zmesh peers --json` prints it. */
export interface PeerLine {
  peer: string;
  publicKey: string;
  endpoint: string | null;
  allowedIps: string[];
  configured: boolean;
  handshakeAgeSec: number | null;
  rxBytes: number;
  txBytes: number;
  /** planned: a tunnel of the plan; direct | relay: a hidden node's direct peer (another hidden node). */
  path: 'planned' | 'direct' | 'relay';
  /** The access node that relays a direct peer's traffic (null for planned peers). */
  via: string | null;
  /** Why a direct peer is relayed: no-candidate | no-handshake | stale | probing (null when direct or planned). */
  reason: PathView['reason'];
  /** When a relayed pair is tried again (ms since the epoch), or null. */
  retryAt: number | null;
}

const REASON_TEXT: Record<NonNullable<PathView['reason']>, string> = { 'no-candidate': 'no candidate', 'no-handshake': 'no handshake', stale: 'went stale', probing: 'probing' };

/** The peers of a network with their paths (views: GET /v1/paths of the network). */
export function peerLines(d: NetworkDetail, views: PathView[], nowSec: number): PeerLine[] {
  const actual = new Map((d.actual?.wireguard?.peers ?? []).map((p) => [p.publicKey, p]));
  const byNode = new Map(views.filter((v) => v.networkId === d.desired.networkId).map((v) => [v.node, v]));
  const r = d.desired.resource;
  return r.peers.map((p) => {
    const a = actual.get(p.publicKey);
    const direct = r.hidden && p.directSubnet !== undefined;
    const v = direct ? byNode.get(p.node) : undefined;
    const path: PeerLine['path'] = !direct ? 'planned' : v?.path === 'direct' ? 'direct' : 'relay';
    return {
      peer: p.node,
      publicKey: p.publicKey,
      endpoint: a?.endpoint ?? p.endpoint,
      allowedIps: p.allowedIps,
      configured: Boolean(a),
      handshakeAgeSec: a && a.latestHandshake > 0 ? nowSec - a.latestHandshake : null,
      rxBytes: a?.rxBytes ?? 0,
      txBytes: a?.txBytes ?? 0,
      path,
      via: direct ? r.accessNode : null,
      reason: path === 'relay' ? (v?.reason ?? null) : null,
      retryAt: path === 'relay' ? (v?.retryAt ?? null) : null,
    };
  });
}

/** The PATH column: planned, direct, or "relay via a (why)". */
export function pathText(l: PeerLine, nowSec: number, k: ReturnType<typeof colour>): string {
  if (l.path === 'planned') return 'planned';
  if (l.path === 'direct') return k.green('direct');
  const retry = l.retryAt !== null && l.reason !== 'probing' ? `, retry in ${Math.max(0, Math.ceil(l.retryAt / 1000 - nowSec))}s` : '';
  const why = l.reason ? ` (${REASON_TEXT[l.reason]}${retry})` : '';
  return `relay via ${l.via ?? '?'}${why}`;
}

export const PEER_HEADER = ['PEER', 'ENDPOINT', 'ALLOWED IPS', 'PATH', 'HANDSHAKE', 'RX', 'TX', 'HEALTH'];

/**
 * Table rows of `zmesh peers` and `zmesh net show`. A relayed direct peer has no allowed-ips and needs no
 * handshake by design: its ALLOWED IPS say where its subnet goes and its HEALTH is "relayed" (the relay's health
 * is the access node's row). A direct one is judged like any other peer.
 */
export function peerRows(d: NetworkDetail, views: PathView[], nowSec: number, k: ReturnType<typeof colour>): string[][] {
  return peerLines(d, views, nowSec).map((l) => {
    const age = l.handshakeAgeSec;
    const relayed = l.path === 'relay';
    const health = !l.configured ? k.red('missing') : relayed ? 'relayed' : age === null ? k.red('no handshake') : age <= 180 ? k.green('ok') : k.yellow('stale');
    const allowed = relayed && l.allowedIps.length === 0 ? `(relayed via ${l.via ?? '?'})` : l.allowedIps.join(',') || '-';
    return [l.peer, l.endpoint ?? '-', allowed, pathText(l, nowSec, k), humanAge(age), l.configured ? humanBytes(l.rxBytes) : '-', l.configured ? humanBytes(l.txBytes) : '-', health];
  });
}

/** A network's detail and its direct paths (one extra call; an agent without GET /v1/paths shows none). */
async function detailWithPaths(socket: string, name: string): Promise<{ d: NetworkDetail; views: PathView[] }> {
  const [d, views] = await Promise.all([
    call<NetworkDetail>(socket, 'GET', `/v1/networks/${encodeURIComponent(name)}`),
    call<{ paths: PathView[] }>(socket, 'GET', `/v1/paths?${new URLSearchParams({ network: name })}`).then(
      (r) => r.paths ?? [],
      () => [] as PathView[],
    ),
  ]);
  return { d, views };
}

/** `zmesh diagnose NET A B`: the flow, where it is judged, notes, and the verdict (green allowed, red denied). */
export function policyCheckText(r: PolicyFlowCheck, k: ReturnType<typeof colour>): string {
  const lines = policyCheckLines(r);
  const last = lines.length - 1;
  lines[last] = r.allowed ? k.green(lines[last]) : k.red(lines[last]);
  return lines.join('\n');
}

/** `zmesh policy NET`: the rules with what this node counted; a rule that guards nothing here shows "-". */
export function policyTable(v: PolicyView, humanCounts = true): string {
  const p = v.policy;
  if (!p) return `network ${v.network} has no policy: everything inside the network is allowed`;
  const n = (x: number | null, bytes: boolean) => (x === null ? '-' : bytes && humanCounts ? humanBytes(x) : String(x));
  const rows = [
    ['RULE', 'FROM', 'TO', 'PORTS', 'PACKETS', 'BYTES'],
    ...p.rules.map((r) => [String(r.index), r.from.join(','), r.to.join(','), r.ports.join(','), n(r.packets, false), n(r.bytes, true)]),
    [`default (${p.defaultAction})`, 'any', 'any', 'any', n(p.defaultPackets, false), n(p.defaultBytes, true)],
  ];
  const head = `policy of ${v.network} on ${v.node}: default ${p.default}; guards ${p.local.length ? p.local.join(' ') : 'nothing here'}`;
  const foot = [
    ...(p.rules.some((r) => !r.here) ? ['-: the rule guards no destination of this node (its node counts it)'] : []),
    ...(p.counted ? ['counted since the tenant table was last written (a policy change starts again)'] : ['counters could not be read (the network is not applied here?)']),
  ];
  return [head, '', table(rows), '', ...foot].join('\n');
}

/** One line for `zmesh net show` when the network has a policy here. */
export function policyLine(d: NetworkDetail): string | null {
  const p = d.desired.policy;
  if (!p) return null;
  const c = d.actual?.policy;
  const counted = c ? `; accepted ${c.rules.reduce((a, r) => a + r.packets, 0)} packet(s) by rules, ${c.default ? `${c.default.action === 'drop' ? 'dropped' : 'accepted'} ${c.default.packets} by the default` : 'no default counter'}` : '; counters not read';
  return `policy: default ${p.default}, ${p.rules.length} rule(s) guard ${p.local.length} address(es) here${counted} (zmesh policy ${d.desired.networkName})`;
}

export function registerOpsCommands(program: Command): void {
  const sock = () => socketPath(program.opts().socket);

  program
    .command('status')
    .description("the agent's status: node, modules, networks, last reconcile, errors")
    .option('--json', 'print JSON')
    .action(async (flags: Json) => {
      const s = await call<StatusView>(await sock(), 'GET', '/v1/status');
      out(flags, s, () => {
        const k = c();
        const lr = s.lastReconcile;
        const lines = [
          `node ${k.bold(s.node)}  agent ${s.version}  modules ${Object.entries(s.modules).map(([m, v]) => `${m}@${v}`).join(' ')}`,
          ...(s.identity ? [`identity ${s.identity}`] : []),
          `data plane: ${dataplaneLine(s.dataplane ?? null, k)}`,
          `last reconcile: ${lr ? `${lr.at} (${lr.reason}) ${lr.durationMs} ms, ${lr.changes} change(s), ${lr.ok ? k.green('ok') : k.red(`${lr.errors.length} error(s)`)}${lr.cost ? `; cpu ${lr.cost.agentCpuMs} ms agent + ${lr.cost.commandsCpuMs ?? '?'} ms commands, ${lr.cost.reads ?? '?'} read(s), ${lr.cost.mutating ?? '?'} mutating` : ''}` : 'none yet'}`,
          '',
          s.networks.length ? netTable(s.networks) : 'no networks',
        ];
        if (s.errors.length) lines.push('', k.red('errors:'), ...s.errors.map((e) => `  ${e.networkId}: ${e.message}`));
        return lines.join('\n');
      });
    });

  const net = program.command('net').description('tenant networks on this node');
  withOutputOption(net.command('ls').description('list networks').option('--json', 'print JSON'))
    .action(async (flags: Json & { output?: string }) => {
      const r = await call<{ networks: NetworkSummary[] }>(await sock(), 'GET', '/v1/networks');
      await printList(flags, r, r.networks as unknown as Record<string, unknown>[], () => netTable(r.networks), 'no networks');
    });
  net
    .command('show')
    .description('desired beside actual state of one network')
    .argument('<name>', 'network id, tenant/blueprint/network, or a unique name')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: Json) => {
      const { d, views } = await detailWithPaths(await sock(), name);
      out(flags, d, () => {
        const r = d.desired.resource;
        const a = d.actual;
        const lines = [
          `network ${d.desired.tenant}/${d.desired.blueprint}/${d.desired.networkName} (id ${d.desired.networkId}, generation ${d.generation})`,
          `range ${d.desired.ipRange}  subnet ${r.subnet}  gateway ${r.gateway}  wg ${r.wgAddress}  port ${r.listenPort}  MTU ${d.mtu}${d.desired.egress ? '  egress' : ''}`,
          `namespace ${a?.namespace ?? '-'}: ${a?.namespaceExists ? 'present' : 'MISSING'}`,
          ...(a?.daemon ? [daemonLine(a.daemon)] : []),
          ...(policyLine(d) !== null ? [policyLine(d)!] : []),
          '',
          table([['INTERFACE', 'KIND', 'STATE', 'MTU', 'ADDRESSES'], ...(a?.interfaces ?? []).map((i) => [i.name, i.kind, i.up ? 'up' : 'down', String(i.mtu), i.addresses.join(' ')])]),
          '',
          table([['ROUTE', 'DEV'], ...(a?.routes ?? []).map((x) => [x.dst, x.dev])]),
          '',
          table([PEER_HEADER, ...peerRows(d, views, Math.floor(Date.now() / 1000), c())]),
        ];
        return lines.join('\n');
      });
    });

  program
    .command('peers')
    .description('peers of one network with handshake age, traffic, and (hidden nodes) direct or relayed paths')
    .argument('<network>', 'network id, tenant/blueprint/network, or a unique name')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: Json) => {
      const { d, views } = await detailWithPaths(await sock(), name);
      const now = Math.floor(Date.now() / 1000);
      const data = peerLines(d, views, now);
      out(flags, { network: d.desired.networkId, peers: data }, () => table([PEER_HEADER, ...peerRows(d, views, now, c())]));
    });

  program
    .command('diagnose')
    .description(
      "why can't this node reach a peer: ordered checks, the first failure says why; with two names A B: which policy rule (or the default) allows or drops the flow A → B (exit 0 allowed, 1 denied)",
    )
    .argument('<network>', 'network')
    .argument('[peer|A]', 'peer node, device name or public key (default: every peer); with B: the source of the flow (workload:NAME, device:NAME, node:NAME, a bare name or an address)')
    .argument('[B]', 'the destination of the flow, judged on its node')
    .option('--port <proto/port>', 'the flow: tcp/N, udp/N or icmp (default icmp); with A B only')
    .option('--json', 'print JSON')
    .action(async (name: string, peer: string | undefined, b: string | undefined, flags: Json & { port?: string }) => {
      if (b !== undefined) {
        const q = new URLSearchParams({ network: name, from: peer!, to: b, ...(flags.port !== undefined ? { port: flags.port } : {}) });
        const r = await call<PolicyFlowCheck>(await sock(), 'GET', `/v1/policy/check?${q}`);
        out(flags, r, () => policyCheckText(r, c()));
        if (!r.allowed) process.exitCode = 1;
        return;
      }
      if (flags.port !== undefined) throw new ZmeshError('E_USAGE', '--port needs a flow: zmesh diagnose NET A B --port tcp/5432', { hint: 'name the source and the destination' });
      const q = new URLSearchParams({ network: name, ...(peer ? { peer } : {}) });
      const d = await call<Diagnosis>(await sock(), 'GET', `/v1/diagnose?${q}`);
      out(flags, d, () => {
        const k = c();
        const mark = { pass: k.green('PASS'), fail: k.red('FAIL'), warn: k.yellow('WARN'), skip: k.dim('SKIP') };
        const lines = [table(d.checks.map((x) => [mark[x.verdict], x.name, x.detail]))];
        lines.push('', d.firstFailure ? k.red(`verdict: ${d.firstFailure.name}: ${d.firstFailure.detail}`) : k.green('verdict: all checks pass'));
        return lines.join('\n');
      });
      if (!d.ok) process.exitCode = 1;
    });

  program
    .command('policy')
    .description("a network's policy rules with the packets and bytes this node counted for each, and the default")
    .argument('<network>', 'network id, tenant/blueprint/network, or a unique name')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: Json) => {
      const v = await call<PolicyView>(await sock(), 'GET', `/v1/policy?${new URLSearchParams({ network: name })}`);
      out(flags, v, () => policyTable(v));
    });

  program
    .command('apply')
    .description("send a signed blueprint and this node's plan part to the agent")
    .argument('<signed>', 'signed envelope (zmesh sign)')
    .requiredOption('--plan <plan>', 'the full plan (this node part is cut out) or a node part')
    .option('--node <id>', 'node id to cut the part for (default: the agent node)')
    .option('--json', 'print JSON')
    .action(async (signedFile: string, flags: Json & { plan: string; node?: string }) => {
      const signed = await readJsonDocument(signedFile, ['signed']);
      const planData = await readJsonDocument(flags.plan, ['plan', 'part'], '--plan') as { format?: string };
      let part: unknown = planData;
      if (planData.format?.startsWith('zmesh-plan/')) {
        const node = flags.node ?? (await call<{ node: string }>(await sock(), 'GET', '/v1/status')).node;
        const { nodePart } = await import('../plan/part.ts');
        part = nodePart(planData as Parameters<typeof nodePart>[0], node);
      }
      const r = await call<SubmitResult>(await sock(), 'POST', '/v1/blueprints', { signed, part });
      out(flags, r, () =>
        [
          `applied ${r.tenant}/${r.name} version ${r.version} (generation ${r.generation})`,
          ...r.networks.map((n) => `  ${n.name} (${n.networkId}): ${n.ok ? 'ok' : 'FAILED'}, ${n.changes.length} change(s)${n.errors.length ? `; ${n.errors.map((e) => e.message).join('; ')}` : ''}`),
        ].join('\n'),
      );
      if (!r.networks.every((n) => n.ok)) process.exitCode = 1;
    });

  program
    .command('rm')
    .description('remove a blueprint from this node (its networks are torn down)')
    .argument('<tenant/name>', 'blueprint')
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Json) => {
      const m = /^([^/]+)\/([^/]+)$/.exec(id);
      if (!m) throw new ZmeshError('E_USAGE', `expected TENANT/NAME, got ${id}`, { hint: 'e.g. zmesh rm acme/shop' });
      const r = await call(await sock(), 'DELETE', `/v1/blueprints/${encodeURIComponent(m[1])}/${encodeURIComponent(m[2])}`);
      out(flags, r, () => `removed ${id}`);
    });

  program
    .command('events')
    .description("the agent's event log")
    .option('--follow', 'keep printing new events')
    .option('--after <id>', 'only events after this id', '0')
    .option('--json', 'print JSON lines')
    .action(async (flags: Json & { follow?: boolean; after: string }) => {
      const fmt = (e: AgentEvent) => {
        const k = c();
        const lvl = e.level === 'error' ? k.red('ERROR') : e.level === 'warn' ? k.yellow('WARN ') : 'INFO ';
        return `${e.ts} ${lvl} ${e.kind.padEnd(20)} ${e.subject}: ${e.message}`;
      };
      if (flags.follow) {
        await stream(await sock(), `/v1/events?follow=true&after=${Number(flags.after) || 0}`, (e) =>
          process.stdout.write((flags.json ? JSON.stringify(e) : fmt(e as AgentEvent)) + '\n'),
        );
        return;
      }
      const r = await call<{ events: AgentEvent[] }>(await sock(), 'GET', `/v1/events?after=${Number(flags.after) || 0}&limit=1000`);
      if (flags.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write(r.events.map(fmt).join('\n') + (r.events.length ? '\n' : 'no events\n'));
    });
}
