// Per-host underlay shaping on the underlay veth: delay, loss and rate. With netem (tc qdisc netem) all three
// go into one netem qdisc on eth0. Kernels built without netem (this project's CI machine is one) get:
// rate from tc tbf on eth0, loss from an nftables rule on eth0's egress (numgen random), and delay from a
// userspace delay line (labs/delayline.py) spliced between the host's port and its bridge upstream.
import type { Shaping } from './spec.ts';
import { UNDERLAY_IF, type HostLayout } from './layout.ts';
import type { Faults, LabState } from './state.ts';
import { alive, cmdline, inHolder, inNs, labScript, python, run, signal, spawnDetached, waitGone, type ProcRef } from './sys.ts';
import { setPort, upstreamBridge } from './underlay.ts';

let netemCache: boolean | null = null;

/** Whether the kernel has netem; probed once on the loopback of a lab namespace. */
export async function hasNetem(probeNs: string): Promise<boolean> {
  if (netemCache !== null) return netemCache;
  if (process.env.ZMESH_LAB_NETEM === '0') return (netemCache = false);
  const r = await run(inNs(probeNs, ['tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']), { okCodes: [0, 1, 2] });
  if (r.exitCode === 0) await run(inNs(probeNs, ['tc', 'qdisc', 'del', 'dev', 'lo', 'root']), { okCodes: [0, 1, 2] });
  netemCache = r.exitCode === 0;
  return netemCache;
}

/** The shaping in force: the spec's, with faults' loss and delay taking precedence. */
export function effective(spec: Shaping, faults: Faults | undefined): Shaping {
  const s: Shaping = { ...spec };
  if (faults?.lossPct !== undefined) s.lossPct = faults.lossPct || undefined;
  if (faults?.delayMs !== undefined) s.delayMs = faults.delayMs || undefined;
  return s;
}

/** nft ruleset dropping lossPct % of the packets leaving eth0 (or removing the table). */
export function lossRuleset(lossPct: number | undefined): string {
  const head = ['table inet zlab_shape', 'delete table inet zlab_shape'];
  if (!lossPct) return head.join('\n') + '\n';
  // numgen gives 0..9999: drop when below lossPct × 100 (0.01 % steps).
  const threshold = Math.round(lossPct * 100);
  return [
    ...head,
    'table inet zlab_shape {',
    '  chain out {',
    '    type filter hook postrouting priority 0; policy accept;',
    `    oifname "${UNDERLAY_IF}" numgen random mod 10000 < ${threshold} drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export function delayLinePath(): string {
  return labScript('delayline.py');
}

function delayLineRunning(p: ProcRef | undefined, host: HostLayout, ms: number): boolean {
  if (!p || !alive(p)) return false;
  const c = cmdline(p.pid);
  return c.includes(delayLinePath()) && c[c.length - 4] === host.port && c[c.length - 2] === String(ms);
}

const qName = (host: HostLayout) => `q${host.port}`;
const bName = (host: HostLayout) => `b${host.port}`;

async function stopDelayLine(host: HostLayout, state: LabState, up: boolean): Promise<void> {
  const p = state.delayLines[host.port];
  if (p) {
    signal(p, 'SIGKILL');
    await waitGone(p, 3000);
    delete state.delayLines[host.port];
  }
  await run(['ip', '-n', host.upstreamNs, 'link', 'del', qName(host)], { okCodes: [0, 1] });
  await setPort(host, { up, bridged: true });
}

async function startDelayLine(host: HostLayout, state: LabState, ms: number, up: boolean, logFile: string): Promise<void> {
  if (delayLineRunning(state.delayLines[host.port], host, ms)) return;
  const old = state.delayLines[host.port];
  if (old) {
    signal(old, 'SIGKILL');
    await waitGone(old, 3000);
  }
  const ns = host.upstreamNs;
  await run(['ip', '-n', ns, 'link', 'del', qName(host)], { okCodes: [0, 1] });
  await run(['ip', '-n', ns, '-batch', '-'], {
    input: [`link add ${qName(host)} type veth peer name ${bName(host)}`, `link set ${bName(host)} master ${upstreamBridge(host)} up`, `link set ${qName(host)} up`].join('\n') + '\n',
  });
  await setPort(host, { up, bridged: false });
  state.delayLines[host.port] = spawnDetached(inNs(ns, [python(), '-I', '-S', delayLinePath(), host.port, qName(host), String(ms), '0']), { logFile });
}

/** Converges a host's shaping (spec + faults) and its port state (cut or not). */
export async function applyShaping(host: HostLayout, holderPid: number, state: LabState, logFile: string): Promise<void> {
  const f = state.faults[host.name];
  const s = effective(host.shaping, f);
  const up = !f?.cut;
  const tc = (argv: string[], okCodes = [0]) => run(inHolder(holderPid, ['tc', ...argv]), { okCodes });
  if (await hasNetem(host.upstreamNs)) {
    if (s.delayMs || s.lossPct) {
      const args = ['qdisc', 'replace', 'dev', UNDERLAY_IF, 'root', 'netem'];
      if (s.delayMs) args.push('delay', `${s.delayMs}ms`);
      if (s.lossPct) args.push('loss', `${s.lossPct}%`);
      if (s.rateKbit) args.push('rate', `${s.rateKbit}kbit`);
      await tc(args);
    } else if (s.rateKbit) {
      await tc(['qdisc', 'replace', 'dev', UNDERLAY_IF, 'root', 'tbf', 'rate', `${s.rateKbit}kbit`, 'burst', '32kbit', 'latency', '400ms']);
    } else await tc(['qdisc', 'del', 'dev', UNDERLAY_IF, 'root'], [0, 1, 2]);
    await setPort(host, { up, bridged: true });
    return;
  }
  if (s.rateKbit) await tc(['qdisc', 'replace', 'dev', UNDERLAY_IF, 'root', 'tbf', 'rate', `${s.rateKbit}kbit`, 'burst', '32kbit', 'latency', '400ms']);
  else await tc(['qdisc', 'del', 'dev', UNDERLAY_IF, 'root'], [0, 1, 2]);
  await run(inHolder(holderPid, ['nft', '-f', '-']), { input: lossRuleset(s.lossPct) });
  if (s.delayMs) await startDelayLine(host, state, s.delayMs, up, logFile);
  else await stopDelayLine(host, state, up);
}
