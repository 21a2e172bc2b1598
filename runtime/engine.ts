// The container engine behind a small interface (so compute can be tested against a fake), and its Docker
// implementation over dockerode. Containers get no Docker networking (NetworkMode none): zmesh attaches them.
import { PassThrough, type Readable } from 'node:stream';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Docker from 'dockerode';
import { ZmeshError } from '../src/errors.ts';

export interface ContainerSpec {
  name: string;
  image: string;
  /** Empty: the image's default command. */
  command: string[];
  hostname: string;
  labels: Record<string, string>;
  nanoCpus: number;
  memory: number;
  mounts: { source: string; target: string }[];
}

export interface ContainerSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: string;
}

export interface ContainerState {
  id: string;
  name: string;
  labels: Record<string, string>;
  /** running, exited, created, restarting, paused, dead. */
  status: string;
  running: boolean;
  pid: number;
  exitCode: number;
  oomKilled: boolean;
  error: string;
  startedAt: string | null;
  finishedAt: string | null;
  image: string;
}

export interface EngineEvent {
  id: string;
  action: string;
  labels: Record<string, string>;
}

export interface Engine {
  /** Whether the engine answers. */
  ping(): Promise<boolean>;
  /** Host CPUs the engine sees. */
  cpus(): Promise<number>;
  /** Every container (running or not) carrying all these labels. */
  list(labels: Record<string, string>): Promise<ContainerSummary[]>;
  inspect(idOrName: string): Promise<ContainerState | null>;
  imageExists(ref: string): Promise<boolean>;
  create(spec: ContainerSpec): Promise<string>;
  start(id: string): Promise<void>;
  /** Force-removes; a missing container is fine. */
  remove(id: string): Promise<void>;
  /** Raw log stream (Docker's multiplexed format; see demux.ts), or a finished one without follow. */
  logs(id: string, opts: { follow: boolean; tail?: number }): Promise<Readable>;
  /** Container events carrying these labels; returns a stop function. */
  watch(labels: Record<string, string>, onEvent: (e: EngineEvent) => void, onEnd: (err?: Error) => void): Promise<() => void>;
}

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number })?.statusCode;
}

function engineError(what: string, e: unknown): ZmeshError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES') {
    return new ZmeshError('E_DOCKER_UNREACHABLE', `${what}: the Docker engine is not reachable (${code})`, { kind: 'retryable', hint: 'start dockerd or set dockerSocket in the agent config', cause: e });
  }
  const msg = (e as { json?: { message?: string } })?.json?.message ?? (e as Error)?.message ?? String(e);
  return new ZmeshError('E_DOCKER', `${what}: ${String(msg).trim()}`, { kind: 'retryable', cause: e });
}

/** dockerode (and its ssh2, ~25 MiB resident) is loaded on first use: an agent without an engine never loads it. */
const loadDockerode = () => createRequire(import.meta.url)('dockerode') as typeof Docker;

export class DockerEngine implements Engine {
  private client: Docker | null = null;
  private ncpu: number | null = null;

  constructor(
    readonly socketPath: string,
    private readonly opts: { timeoutMs?: number } = {},
  ) {}

  get docker(): Docker {
    if (!this.client) {
      const D = loadDockerode();
      this.client = new D({ socketPath: this.socketPath, timeout: this.opts.timeoutMs ?? 60_000 });
    }
    return this.client;
  }

  async ping(): Promise<boolean> {
    // No socket, no engine (and no need to load the client).
    if (!this.client && !existsSync(this.socketPath)) return false;
    try {
      await this.docker.ping();
      return true;
    } catch {
      return false;
    }
  }

  async cpus(): Promise<number> {
    if (this.ncpu === null) {
      try {
        this.ncpu = Number((await this.docker.info()).NCPU) || 1;
      } catch (e) {
        throw engineError('docker info', e);
      }
    }
    return this.ncpu;
  }

  async list(labels: Record<string, string>): Promise<ContainerSummary[]> {
    try {
      const filters = JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) });
      const all = await this.docker.listContainers({ all: true, filters });
      return all.map((c) => ({ id: c.Id, name: (c.Names[0] ?? '').replace(/^\//, ''), labels: c.Labels ?? {}, state: c.State }));
    } catch (e) {
      throw engineError('list containers', e);
    }
  }

  async inspect(idOrName: string): Promise<ContainerState | null> {
    try {
      const i = await this.docker.getContainer(idOrName).inspect();
      const s = i.State;
      const t = (x: string | undefined) => (x && !x.startsWith('0001-') ? x : null);
      return {
        id: i.Id,
        name: i.Name.replace(/^\//, ''),
        labels: i.Config.Labels ?? {},
        status: s.Status,
        running: s.Running,
        pid: s.Pid,
        exitCode: s.ExitCode,
        oomKilled: s.OOMKilled,
        error: s.Error ?? '',
        startedAt: t(s.StartedAt),
        finishedAt: t(s.FinishedAt),
        image: i.Config.Image,
      };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw engineError(`inspect ${idOrName}`, e);
    }
  }

  async imageExists(ref: string): Promise<boolean> {
    try {
      await this.docker.getImage(ref).inspect();
      return true;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw engineError(`inspect image ${ref}`, e);
    }
  }

  async create(spec: ContainerSpec): Promise<string> {
    try {
      const c = await this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        Cmd: spec.command.length ? spec.command : undefined,
        Hostname: spec.hostname,
        Labels: spec.labels,
        HostConfig: {
          NetworkMode: 'none',
          NanoCpus: spec.nanoCpus,
          Memory: spec.memory,
          MemorySwap: spec.memory,
          PidsLimit: 4096,
          RestartPolicy: { Name: 'no' },
          SecurityOpt: ['no-new-privileges'],
          LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
          Mounts: spec.mounts.map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: false })),
        },
      });
      return c.id;
    } catch (e) {
      throw engineError(`create ${spec.name}`, e);
    }
  }

  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (e) {
      if (statusOf(e) === 304) return; // already running
      throw engineError(`start ${id.slice(0, 12)}`, e);
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: false });
    } catch (e) {
      if (statusOf(e) === 404) return;
      // "removal already in progress" (409) settles by itself.
      if (statusOf(e) === 409 && /in progress/.test(String((e as Error).message))) return;
      throw engineError(`remove ${id.slice(0, 12)}`, e);
    }
  }

  async logs(id: string, opts: { follow: boolean; tail?: number }): Promise<Readable> {
    const c = this.docker.getContainer(id);
    const base = { stdout: true, stderr: true, timestamps: false, ...(opts.tail !== undefined ? { tail: opts.tail } : {}) };
    try {
      if (opts.follow) return (await c.logs({ ...base, follow: true })) as unknown as Readable;
      const buf = await c.logs({ ...base, follow: false });
      const s = new PassThrough();
      s.end(buf);
      return s;
    } catch (e) {
      throw engineError(`logs ${id.slice(0, 12)}`, e);
    }
  }

  async watch(labels: Record<string, string>, onEvent: (e: EngineEvent) => void, onEnd: (err?: Error) => void): Promise<() => void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getEvents({
        filters: { type: ['container'], event: ['die', 'oom', 'destroy'], label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
      });
    } catch (e) {
      throw engineError('events', e);
    }
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line) continue;
        try {
          const ev = JSON.parse(line) as { id?: string; Action?: string; Actor?: { Attributes?: Record<string, string> } };
          onEvent({ id: ev.id ?? '', action: ev.Action ?? '', labels: ev.Actor?.Attributes ?? {} });
        } catch {
          /* a partial or foreign line: ignore */
        }
      }
    });
    let ended = false;
    const end = (err?: Error) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    stream.on('end', () => end());
    stream.on('error', (e: Error) => end(e));
    return () => {
      ended = true;
      (stream as unknown as { destroy?: () => void }).destroy?.();
    };
  }
}
