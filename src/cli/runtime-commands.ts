// Operator commands for workloads and volumes: ps, logs, vol ls (over the agent's admin socket), and
// `image base`, which builds the offline base image straight into a Docker engine.
import { request } from 'node:http';
import { createRequire } from 'node:module';
import type { Command } from 'commander';
import type { VolumeView, WorkloadView } from '../../runtime/types.ts';
import { BASE_IMAGE, baseImageTar, importImage, parseApplets } from '../../runtime/image.ts';
import { ZmeshError } from '../errors.ts';
import { call, printList, socketPath } from './lazy.ts';
import { colour, humanBytes, table, withOutputOption } from './text.ts';

interface Json {
  json?: boolean;
}

const c = () => colour(Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);

export function humanUptime(sec: number | null): string {
  if (sec === null) return '-';
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${String(sec % 60).padStart(2, '0')}s`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h${String(Math.floor((sec % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(sec / 86400)}d${Math.floor((sec % 86400) / 3600)}h`;
}

export function psTable(ws: WorkloadView[], colours = c()): string {
  return table([
    ['WORKLOAD', 'NODE', 'STATE', 'ADDRESS', 'RESTARTS', 'UPTIME', 'LAST EXIT'],
    ...ws.map((w) => [
      `${w.tenant}/${w.blueprint}/${w.name}`,
      w.node,
      w.state === 'running' ? colours.green(w.state) : colours.red(w.state),
      w.address ?? `(${w.plannedAddress})`,
      String(w.restarts),
      humanUptime(w.uptimeSec),
      w.lastExit ? `${w.lastExit.oomKilled ? 'OOM killed, ' : ''}exit ${w.lastExit.exitCode}` : '-',
    ]),
  ]);
}

export function volTable(vs: VolumeView[]): string {
  return table([
    ['VOLUME', 'NODE', 'SIZE', 'USED', 'STATE', 'MOUNTED BY'],
    ...vs.map((v) => [`${v.tenant}/${v.blueprint}/${v.name}`, v.node, humanBytes(v.size), v.used === null ? '-' : humanBytes(v.used), v.state, v.mountedBy.join(',') || '-']),
  ]);
}

/** GET a text stream from the agent and copy it to stdout until it ends. */
function rawStream(socket: string, path: string, onData: (b: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'GET', path }, (res) => {
      if ((res.statusCode ?? 500) >= 400) {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          let err: { code?: string; message?: string; kind?: string } = {};
          try {
            err = JSON.parse(Buffer.concat(chunks).toString('utf8')).error ?? {};
          } catch {
            /* not JSON */
          }
          reject(new ZmeshError(err.code ?? 'E_HTTP', err.message ?? `HTTP ${res.statusCode}`, { kind: (err.kind as 'invalid') ?? 'internal' }));
        });
        return;
      }
      res.on('data', onData);
      res.on('end', () => resolve());
      res.on('error', reject);
    });
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? new ZmeshError('E_SOCKET_MISSING', `no agent is listening on ${socket}`, { kind: 'retryable', cause: e }) : e),
    );
    req.end();
  });
}

export function registerRuntimeCommands(program: Command): void {
  const sock = () => socketPath(program.opts().socket);

  withOutputOption(program.command('ps').description('workloads on this node: state, address, restarts, uptime').option('--json', 'print JSON'))
    .action(async (flags: Json & { output?: string }) => {
      const r = await call<{ workloads: WorkloadView[] }>(await sock(), 'GET', '/v1/workloads');
      await printList(flags, r, r.workloads as unknown as Record<string, unknown>[], () => psTable(r.workloads), 'no workloads');
    });

  program
    .command('logs')
    .description("a workload's output (stdout and stderr)")
    .argument('<workload>', 'tenant/blueprint/workload, or a name unique on the node')
    .option('-f, --follow', 'keep printing new output')
    .option('--tail <n>', 'only the last n lines')
    .action(async (name: string, flags: { follow?: boolean; tail?: string }) => {
      const q = new URLSearchParams();
      if (flags.follow) q.set('follow', 'true');
      if (flags.tail !== undefined) {
        if (!/^\d+$/.test(flags.tail)) throw new ZmeshError('E_USAGE', `--tail takes a number, got ${flags.tail}`);
        q.set('tail', flags.tail);
      }
      await rawStream(await sock(), `/v1/workloads/${encodeURIComponent(name)}/logs${q.size ? `?${q}` : ''}`, (b) => process.stdout.write(b));
    });

  const vol = program.command('vol').description('volumes on this node');
  withOutputOption(vol.command('ls').description('list volumes with size and usage').option('--json', 'print JSON'))
    .action(async (flags: Json & { output?: string }) => {
      const r = await call<{ volumes: VolumeView[] }>(await sock(), 'GET', '/v1/volumes');
      await printList(flags, r, r.volumes as unknown as Record<string, unknown>[], () => volTable(r.volumes), 'no volumes');
    });

  const image = program.command('image').description('container images');
  image
    .command('base')
    .description(`build the offline base image (static busybox) into a Docker engine as ${BASE_IMAGE}`)
    .option('--docker-socket <path>', 'Docker socket', '/var/run/docker.sock')
    .option('--tag <ref>', 'image reference', BASE_IMAGE)
    .option('--busybox <path>', 'static busybox binary', '/bin/busybox')
    .option('--json', 'print JSON')
    .action(async (flags: Json & { dockerSocket: string; tag: string; busybox: string }) => {
      const t0 = performance.now();
      const { execa } = await import('execa');
      const list = await execa(flags.busybox, ['--list'], { reject: false });
      const applets = list.exitCode === 0 ? parseApplets(String(list.stdout)) : [];
      const tar = baseImageTar({ busyboxPath: flags.busybox, applets });
      // By require(): a CommonJS package through import() can come out empty (src/control/etcd.ts).
      const Docker = createRequire(import.meta.url)('dockerode') as typeof import('dockerode');
      const docker = new Docker({ socketPath: flags.dockerSocket });
      let id: string;
      try {
        id = await importImage(docker, tar, flags.tag);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ECONNREFUSED') {
          throw new ZmeshError('E_DOCKER_UNREACHABLE', `no Docker engine on ${flags.dockerSocket}`, { kind: 'retryable', hint: 'start dockerd or pass --docker-socket', cause: e });
        }
        throw e;
      }
      const r = { image: flags.tag, id, bytes: tar.length, applets: applets.length, ms: Math.round(performance.now() - t0) };
      process.stdout.write(flags.json ? JSON.stringify(r, null, 2) + '\n' : `${c().green('built')} ${r.image} ${id.slice(0, 19)} (${humanBytes(r.bytes)}, ${r.applets} applets, ${r.ms} ms)\n`);
    });
}
