// `zmesh lab …`: multi-node test beds in network namespaces (labs/). Thin over labs/index.ts.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ZmeshError } from '../errors.ts';
import { colour, table } from './text.ts';

interface Json {
  json?: boolean;
}

const c = () => colour(Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);

interface Pair {
  from: string;
  to: string;
  expect: 'reach' | 'denied' | 'isolated';
  ok: boolean;
  rttMs: number | null;
  proto?: string;
  port?: number | null;
  rule?: number | null;
  seen: string | null;
  error?: string;
  /** 4 or 6 (absent in rows from before IPv6). */
  family?: number;
  /** Name rows (proto dns): the name asked, what the resolver answered; `skip`: not checked. */
  name?: string;
  answer?: string[];
  skip?: string;
}

const what = (p: Pair) => {
  const probe = p.proto === 'icmp' ? 'icmp' : p.proto === 'tcp' ? `tcp/${p.port}` : p.proto === 'dns' ? `name ${p.name}` : '';
  const parts = [probe, p.family === 6 ? 'IPv6' : ''].filter(Boolean);
  return parts.length ? ` (${parts.join(', ')})` : '';
};

/** The matrix as a grid (one screen): rows are sources, columns targets; a pair with several checks (a network
 *  with a policy: ICMP and TCP per port) is one cell. */
export function matrixGrid(pairs: Pair[]): string {
  const k = c();
  const ids = [...new Set(pairs.flatMap((p) => [p.from, p.to]))].sort();
  const num = new Map(ids.map((id, i) => [id, String(i + 1)]));
  const cell = new Map<string, Pair[]>();
  for (const p of pairs) {
    const key = `${p.from}→${p.to}`;
    cell.set(key, [...(cell.get(key) ?? []), p]);
  }
  const rows: string[][] = [['', ...ids.map((id) => num.get(id)!)]];
  for (const a of ids) {
    rows.push([
      `${num.get(a)} ${a}`,
      ...ids.map((b) => {
        if (a === b) return k.dim('-');
        const ps = cell.get(`${a}→${b}`)?.filter((p) => !p.skip);
        if (!ps?.length) return ' ';
        if (ps.some((p) => !p.ok)) return k.red('X');
        if (ps.every((p) => p.expect === 'isolated')) return k.dim('·');
        if (ps.every((p) => p.expect === 'reach')) return k.green('✓');
        return ps.some((p) => p.expect === 'reach') ? k.yellow('◐') : k.yellow('○');
      }),
    ]);
  }
  const bad = pairs.filter((p) => !p.ok && !p.skip);
  const skipped = pairs.filter((p) => p.skip);
  const count = (e: Pair['expect']) => {
    const all = pairs.filter((p) => p.expect === e && !p.skip);
    return `${all.filter((p) => p.ok).length}/${all.length}`;
  };
  const rtts = pairs.filter((p) => p.expect === 'reach').map((p) => p.rttMs).filter((r): r is number => r !== null);
  const denied = pairs.some((p) => p.expect === 'denied');
  const lines = [
    table(rows),
    '',
    `✓ reached (same network)  · isolated (other tenant or network)${denied ? '  ◐ partly / ○ wholly denied by policy (as expected)' : ''}  X unexpected`,
    `${pairs.length} ${denied ? 'checks' : 'pairs'}: ${count('reach')} reach, ${denied ? `${count('denied')} denied, ` : ''}${count('isolated')} isolated` +
      (rtts.length ? `; RTT median ${median(rtts).toFixed(2)} ms, max ${Math.max(...rtts).toFixed(2)} ms` : ''),
  ];
  const families = new Set(pairs.map((p) => p.family ?? 4));
  const names = pairs.filter((p) => p.proto === 'dns' && !p.skip);
  if (families.size > 1 || names.length) {
    lines.push(`IPv4 ${pairs.filter((p) => p.family !== 6 && p.proto !== 'dns').length} checks, IPv6 ${pairs.filter((p) => p.family === 6).length}; names ${names.filter((p) => p.ok).length}/${names.length} as expected`);
  }
  if (skipped.length) {
    const why = [...new Set(skipped.map((p) => p.skip))].join(', ');
    lines.push(k.yellow(`${skipped.length} check(s) not run: ${why}`));
  }
  if (bad.length) {
    lines.push('', k.red(`${bad.length} unexpected result(s):`));
    for (const p of bad.slice(0, 20)) {
      const ans = p.proto === 'dns' ? ` (answered: ${p.answer?.length ? p.answer.join(', ') : 'nothing'})` : p.seen ? ` (answered: ${p.seen})` : '';
      const got = p.expect === 'reach' ? `not reached${ans}` : `REACHED${ans}`;
      lines.push(`  ${p.from} → ${p.to}${what(p)}: expected ${p.expect}, ${got}${p.error ? ` [${p.error}]` : ''}`);
    }
    if (bad.length > 20) lines.push(`  … and ${bad.length - 20} more (--json for all)`);
  }
  return lines.join('\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function matrixList(pairs: Pair[]): string {
  const k = c();
  return table([
    ['FROM', 'TO', 'PROBE', 'FAMILY', 'EXPECT', 'RULE', 'RESULT', 'RTT'],
    ...pairs.map((p) => [
      p.from,
      p.to,
      p.proto === 'tcp' ? `tcp/${p.port}` : p.proto === 'dns' ? `name ${p.name}` : (p.proto ?? 'icmp+tcp'),
      `IPv${p.family ?? 4}`,
      p.expect,
      p.rule === undefined ? '' : p.rule === null ? 'default' : `rule ${p.rule}`,
      p.skip ? k.yellow(p.skip) : p.ok ? k.green('ok') : k.red('FAIL'),
      p.rttMs === null ? '-' : `${p.rttMs.toFixed(2)} ms`,
    ]),
  ]);
}

const progress = (line: string) => process.stderr.write(`  ${line}\n`);

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('multi-node test beds in network namespaces (labs/README.md)');

  lab
    .command('up')
    .description('build a lab from a spec (or reconcile a running one), wait for convergence, print the matrix')
    .argument('<spec>', 'lab spec (YAML), e.g. labs/quickstart.yaml')
    .option('--name <name>', "lab name (default: the spec's name)")
    .option('--no-wait', 'do not wait for a green matrix')
    .option('--keep', 'keep a new lab whose build failed (default: take it down again)')
    .option('--list', 'print the matrix as a list instead of a grid')
    .option('--json', 'print the summary and matrix as JSON')
    .action(async (spec: string, flags: Json & { name?: string; wait: boolean; list?: boolean; keep?: boolean }) => {
      const { labUp } = await import('../../labs/index.ts');
      const s = await labUp(spec, { name: flags.name, wait: flags.wait, keepOnFailure: flags.keep, progress: flags.json ? undefined : progress });
      if (flags.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      } else {
        const k = c();
        const lines = [
          `lab ${k.bold(s.lab)}: ${s.nodes} node(s), ${s.devices} device(s), ${s.tenants} tenant(s), ${s.workloads ? `${s.workloads} workload(s), ` : ''}${s.endpoints} endpoint(s); ${s.dir}`,
        ];
        if (flags.wait) {
          lines.push(s.green ? k.green(`green in ${s.secondsToGreen!.toFixed(1)} s`) : k.red(`NOT green after ${s.seconds.toFixed(1)} s`), '');
          lines.push(flags.list ? matrixList(s.matrix) : matrixGrid(s.matrix));
          const node = s.example?.node ?? 'NODE';
          const net = s.example?.network ?? 'TENANT/BLUEPRINT/NETWORK';
          const hints: [string, string][] = [
            [`zmesh lab status ${s.lab}`, 'nodes, NAT routers, agents, networks'],
            [`zmesh --socket "$(zmesh lab socket ${s.lab} ${node})" peers ${net}`, 'handshakes, traffic'],
            [`zmesh --socket "$(zmesh lab socket ${s.lab} ${node})" diagnose ${net}`, 'checks, first failure'],
            ...(s.workloads
              ? ([
                  [`zmesh --socket "$(zmesh lab socket ${s.lab} ${node})" ps`, "the node's workloads: state, address, restarts"],
                  [`zmesh lab exec ${s.lab} ${node} -- docker ps`, "the node's own Docker engine"],
                ] as [string, string][])
              : []),
            [`zmesh lab matrix ${s.lab} [--json]`, 'every pair again'],
            [`zmesh lab graph ${s.lab} --out ${s.lab}.svg`, 'tunnels coloured by handshake health'],
            [`zmesh lab exec ${s.lab} ${node} -- wg show`, "inside a node's namespaces"],
            [`zmesh lab fault ${s.lab} ${node} cut`, `then: … ${node} restore --wait`],
          ];
          const w = Math.max(...hints.map(([h]) => h.length)) + 2;
          lines.push('', 'look around:', ...hints.map(([h, why]) => `  ${h.padEnd(w)}# ${why}`), 'take it down:', `  zmesh lab down ${s.lab}`);
        }
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (flags.wait && !s.green) process.exitCode = 1;
    });

  lab
    .command('matrix')
    .description('check every pair of endpoints (ping + TCP, by identity; with a policy: per port, reach or denied); non-zero exit on any unexpected result')
    .argument('<name>', 'lab name')
    .option('--json', 'print a JSON list of {from, to, expect, ok, rttMs, proto, port, …}')
    .option('--list', 'print a list instead of a grid')
    .action(async (name: string, flags: Json & { list?: boolean }) => {
      const { labMatrix } = await import('../../labs/index.ts');
      const pairs = await labMatrix(name);
      if (flags.json) process.stdout.write(JSON.stringify(pairs, null, 2) + '\n');
      else process.stdout.write((flags.list ? matrixList(pairs) : matrixGrid(pairs)) + '\n');
      if (!pairs.length || pairs.some((p) => !p.ok && !p.skip)) process.exitCode = 1;
    });

  lab
    .command('wait')
    .description('wait until the matrix is green (after a fault), bounded')
    .argument('<name>', 'lab name')
    .option('--timeout <seconds>', 'give up after this long', '120')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: Json & { timeout: string }) => {
      const { labWaitGreen } = await import('../../labs/index.ts');
      const r = await labWaitGreen(name, Math.max(1, Number(flags.timeout) || 120) * 1000, flags.json ? undefined : progress);
      if (flags.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write((r.green ? c().green(`green after ${r.seconds.toFixed(1)} s`) : c().red(`not green after ${r.seconds.toFixed(1)} s`)) + '\n' + matrixGrid(r.matrix) + '\n');
      if (!r.green) process.exitCode = 1;
    });

  lab
    .command('status')
    .description("nodes, devices, NAT routers, agents, shaping, faults and each node's networks")
    .argument('<name>', 'lab name')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: Json) => {
      const { labStatus } = await import('../../labs/index.ts');
      const s = await labStatus(name);
      if (flags.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      const k = c();
      const fmtShape = (o: Record<string, unknown>) =>
        Object.entries(o)
          .map(([a, b]) => `${a.replace(/Ms$|Pct$|Kbit$/, '')}=${String(b)}${a.endsWith('Ms') ? 'ms' : a.endsWith('Pct') ? '%' : a.endsWith('Kbit') ? 'kbit' : ''}`)
          .join(' ') || '-';
      const rows = s.hosts.map((h) => {
        const nets = h.node?.networks ?? [];
        const applied = nets.filter((n) => n.applied).length;
        return [
          h.name,
          h.role,
          h.attach,
          h.address6 ? `${h.address} ${h.address6}` : h.address,
          h.holder ? String(h.holder) : k.red('down'),
          h.role === 'node' ? (h.agent ? String(h.agent) : k.red('down')) : '-',
          h.role === 'node' ? (h.node?.reachable ? `${applied}/${nets.length} applied` : k.red('no answer')) : '-',
          h.workloads ? (h.workloads.running === h.workloads.total ? `${h.workloads.running}/${h.workloads.total} running` : k.yellow(`${h.workloads.running}/${h.workloads.total} running`)) : h.dockerd === null && h.role === 'node' && 'workloads' in h ? k.red('engine down') : '-',
          fmtShape(h.shaping as Record<string, unknown>),
          Object.keys(h.faults).length ? k.yellow(fmtShape(h.faults as Record<string, unknown>)) : '-',
        ];
      });
      const lines = [
        `lab ${k.bold(s.lab)} in ${s.dir}${s.lastGreenSec !== undefined ? `; last up went green in ${s.lastGreenSec.toFixed(1)} s` : ''}`,
        '',
        table([['HOST', 'ROLE', 'ATTACHED', 'ADDRESS', 'HOLDER', 'AGENT', 'NETWORKS', 'WORKLOADS', 'SHAPING', 'FAULTS'], ...rows]),
      ];
      if (s.nats.length) lines.push('', table([['NAT', 'WAN', 'LAN'], ...s.nats.map((n) => [n.name, [n.wanAddress, n.wanAddress6].filter(Boolean).join(' '), [n.lan, n.lan6].filter(Boolean).join(' ')])]));
      if (s.controlPlane) {
        const cp = s.controlPlane;
        lines.push('', `control plane: etcd; controller ${cp.controller ? `PID ${cp.controller}` : k.red('down')}`, table([['ETCD MEMBER', 'URL', 'PID'], ...cp.members.map((m) => [m.name, m.url, m.pid ? String(m.pid) : k.red('down')])]));
      }
      lines.push('', table([['BLUEPRINT', 'VERSION', 'GENERATION', 'NODES'], ...Object.entries(s.blueprints).map(([key, b]) => [key, String(b.version), String(b.generation), b.nodes.join(',')])]));
      const errs = s.hosts.flatMap((h) => (h.node?.errors ?? []).map((e) => `  ${h.name}: ${e.networkId}: ${e.message}`));
      if (errs.length) lines.push('', k.red('agent errors:'), ...errs);
      lines.push('', `agents' admin sockets: zmesh --socket "$(zmesh lab socket ${s.lab} NODE)" status   (last handshake ages: peers NET)`);
      process.stdout.write(lines.join('\n') + '\n');
    });

  lab
    .command('exec')
    .description("run a command inside a node's (or device's) network and mount namespaces")
    .argument('<name>', 'lab name')
    .argument('<node>', 'node or device')
    .argument('<cmd...>', 'the command (after --)')
    .action(async (name: string, node: string, cmd: string[]) => {
      const { labExecArgv } = await import('../../labs/index.ts');
      const argv = labExecArgv(name, node, cmd);
      const code = await new Promise<number>((resolve) => {
        const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit' });
        child.on('error', () => resolve(127));
        child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
      });
      process.exitCode = code;
    });

  lab
    .command('socket')
    .description("print the path of a node agent's admin socket (zmesh --socket \"$(zmesh lab socket LAB NODE)\" …)")
    .argument('<name>', 'lab name')
    .argument('<node>', 'node')
    .action(async (name: string, node: string) => {
      const { labSocket } = await import('../../labs/index.ts');
      process.stdout.write(labSocket(name, node) + '\n');
    });

  lab
    .command('candidates')
    .description('carry direct-path candidates between the lab\'s nodes (lab up runs it for labs with hidden nodes; docs/paths.md)')
    .argument('<name>', 'lab name')
    .option('--once', 'one round: print what each hidden node is told, and exit')
    .action(async (name: string, flags: { once?: boolean }) => {
      const { openLab } = await import('../../labs/index.ts');
      const { carryOnce, runCarrier } = await import('../../labs/candidates.ts');
      const { dir, layout } = openLab(name);
      if (flags.once) {
        const r = await carryOnce(layout, dir, new Map());
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        if (r.errors.length) process.exitCode = 1;
        return;
      }
      await runCarrier(dir, { say: (l) => process.stdout.write(l + '\n') });
    });

  lab
    .command('graph')
    .description('draw the lab: nodes, NAT routers, devices, tunnels coloured by handshake health (graphviz)')
    .argument('<name>', 'lab name')
    .option('--out <file>', 'write an image (format from the extension: .svg, .png, .pdf; .dot writes DOT)')
    .action(async (name: string, flags: { out?: string }) => {
      const { labGraph } = await import('../../labs/index.ts');
      const dot = await labGraph(name);
      if (!flags.out) {
        process.stdout.write(dot);
        return;
      }
      const ext = (/\.([a-z]+)$/i.exec(flags.out)?.[1] ?? 'svg').toLowerCase();
      if (ext === 'dot' || ext === 'gv') {
        writeFileSync(flags.out, dot);
        return;
      }
      const { execa } = await import('execa');
      const r = await execa('dot', [`-T${ext}`, '-o', flags.out], { input: dot, reject: false });
      if (r.failed) {
        throw new ZmeshError('E_GRAPHVIZ', `dot failed: ${String(r.stderr || r.shortMessage).slice(0, 300)}`, {
          kind: 'retryable',
          hint: 'install graphviz (apt-get install --no-install-recommends graphviz), or write DOT with --out FILE.dot',
        });
      }
      process.stdout.write(`${flags.out}\n`);
    });

  lab
    .command('fault')
    .description('inject a fault: cut | restore | loss PCT | delay MS | kill-agent | restart-agent | reboot | nat-restart | roam')
    .argument('<name>', 'lab name')
    .argument('<node>', 'node (or device, for cut/restore/loss/delay/reboot/roam; or a NAT router, for nat-restart/roam)')
    .argument('<fault>', 'cut, restore, loss, delay, kill-agent, restart-agent, reboot, nat-restart (conntrack lost) or roam (new underlay address)')
    .argument('[value]', 'loss: percent; delay: milliseconds')
    .option('--wait', 'then wait for a green matrix and print how long recovery took')
    .option('--timeout <seconds>', 'with --wait: give up after this long', '120')
    .action(async (name: string, node: string, fault: string, value: string | undefined, flags: { wait?: boolean; timeout: string }) => {
      const { labFault, labWaitGreen, FAULTS } = await import('../../labs/index.ts');
      if (!(FAULTS as string[]).includes(fault)) throw new ZmeshError('E_USAGE', `unknown fault ${fault}`, { hint: FAULTS.join(', ') });
      const v = value === undefined ? undefined : Number(String(value).replace(/(%|ms)$/, ''));
      const t0 = Date.now();
      process.stdout.write((await labFault(name, node, fault as (typeof FAULTS)[number], v)) + '\n');
      if (flags.wait) {
        const r = await labWaitGreen(name, Math.max(1, Number(flags.timeout) || 120) * 1000, progress);
        const secs = (Date.now() - t0) / 1000;
        process.stdout.write((r.green ? c().green(`green again ${secs.toFixed(1)} s after the fault`) : c().red(`not green ${secs.toFixed(1)} s after the fault`)) + '\n');
        if (!r.green) {
          process.stdout.write(matrixGrid(r.matrix) + '\n');
          process.exitCode = 1;
        }
      }
    });

  lab
    .command('down')
    .description('remove a lab completely (also after a crash); --all: every lab and every leftover by prefix')
    .argument('[name]', 'lab name')
    .option('--all', 'every lab under the lab directory and every zl-* namespace on this machine')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, flags: Json & { all?: boolean }) => {
      const { downLab, downAll, labDir } = await import('../../labs/index.ts');
      if (!name && !flags.all) throw new ZmeshError('E_USAGE', 'name a lab or pass --all', { hint: 'zmesh lab down quickstart' });
      const reports = flags.all ? await downAll() : [await downLab(name!, labDir(name!))];
      if (flags.json) process.stdout.write(JSON.stringify(reports, null, 2) + '\n');
      else {
        for (const r of reports) {
          const loops = r.detached?.length ? `, detached ${r.detached.length} loop device(s)` : '';
          process.stdout.write(`${r.lab}: killed ${r.killed} process(es), removed ${r.namespaces.length} namespace(s)${loops}${r.removedDir ? ' and the lab directory' : ''}\n`);
        }
        if (!reports.length) process.stdout.write('no labs\n');
      }
    });
}
