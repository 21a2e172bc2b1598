// The container engine behind a small interface (so compute can be tested against a fake), and its Docker
// implementation over dockerode. Containers get no Docker networking (NetworkMode none): zmesh attaches them.
// Every container is made with the same hardening (createOptions, checked by securityDrift on every reconcile):
//   capabilities  all dropped, then only WORKLOAD_CAPS added back (no NET_RAW: no forged ARP or sources, no
//                 raw sockets; no MKNOD, SETFCAP, SETPCAP, SYS_CHROOT, AUDIT_WRITE, FSETID)
//   privileges    no-new-privileges (setuid binaries and file capabilities gain nothing), never privileged
//   disk          StorageOpt size: the writable layer (image files included) is limited by the storage driver
//                 (btrfs qgroups, overlay2 on xfs with pquota); an engine that cannot enforce it refuses the
//                 container, and the runtime reports E_DISK_LIMIT_UNSUPPORTED rather than run it unlimited
//   processes     PidsLimit; memory without swap; no restart policy (zmesh restarts).
//   /etc files    hosts, hostname, resolv.conf written by the runtime (etc.ts) and bind-mounted read-only:
//                 Docker's own live in its data root, writable and outside the disk limit.
import { PassThrough, type Readable } from 'node:stream';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type Docker from 'dockerode';
import { ZmeshError } from '../src/errors.ts';
import { ETC_TARGETS } from './etc.ts';

export interface ContainerSpec {
  name: string;
  image: string;
  /** Empty: the image's default command. */
  command: string[];
  hostname: string;
  labels: Record<string, string>;
  nanoCpus: number;
  memory: number;
  /** Bytes of the writable layer (the storage driver enforces it). */
  disk: number;
  mounts: { source: string; target: string; readOnly?: boolean }[];
}

/**
 * The capabilities a plain service keeps (Docker's default set less NET_RAW, MKNOD, SETFCAP, SETPCAP,
 * SYS_CHROOT, AUDIT_WRITE and FSETID):
 *   CHOWN             entrypoints chown their data directories to the service user
 *   DAC_OVERRIDE      root in the container reads and writes files of other users (volumes made by another uid)
 *   FOWNER            chmod/utime/chattr on files it does not own (same)
 *   KILL              a master process signals workers that run as another user
 *   NET_BIND_SERVICE  listen on ports below 1024 after dropping to a service user (and as root)
 *   SETGID, SETUID    drop from root to a service user (su-exec, gosu, nginx/postgres workers)
 * Docker's names with the CAP_ prefix, sorted: as `docker inspect` shows them.
 */
export const WORKLOAD_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETGID', 'CAP_SETUID'] as const;
/** Processes (and threads) per container: a fork bomb stops there. */
export const PIDS_LIMIT = 4096;
export const NO_NEW_PRIVILEGES = 'no-new-privileges';

/** The security-relevant settings of a container as the engine reports them. */
export interface ContainerSecurity {
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
  securityOpt: string[];
  /** StorageOpt.size as given at create ("268435456"), or null. */
  storageSize: string | null;
  pidsLimit: number | null;
  networkMode: string;
  /** Targets of the read-only bind mounts. */
  readOnlyTargets: string[];
  /** The log driver and its rotation ("json-file 10m×2"): logs are written to the host's disk. */
  logs: string;
  /** RLIMIT_CORE as "soft:hard" ("0:0"), or null when the engine's default (a workload could raise it). */
  core: string | null;
}

/** Container logs on the host's disk: rotated, at most LOG_MAX_SIZE × LOG_MAX_FILES per container. */
export const LOG_MAX_SIZE = '10m';
export const LOG_MAX_FILES = '2';
const LOGS = `json-file ${LOG_MAX_SIZE}×${LOG_MAX_FILES}`;

/** Docker's createContainer options for a spec. Pure. */
export function createOptions(spec: ContainerSpec): Docker.ContainerCreateOptions {
  return {
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
      PidsLimit: PIDS_LIMIT,
      RestartPolicy: { Name: 'no' },
      CapDrop: ['ALL'],
      CapAdd: [...WORKLOAD_CAPS],
      Privileged: false,
      SecurityOpt: [NO_NEW_PRIVILEGES],
      StorageOpt: { size: String(spec.disk) },
      LogConfig: { Type: 'json-file', Config: { 'max-size': LOG_MAX_SIZE, 'max-file': LOG_MAX_FILES } },
      // No core dumps: where core_pattern pipes to a host service (systemd-coredump) they would land on the
      // host's disk, outside the workload's disk limit.
      Ulimits: [{ Name: 'core', Soft: 0, Hard: 0 }],
      Mounts: spec.mounts.map((m) => ({ Type: 'bind' as const, Source: m.source, Target: m.target, ReadOnly: m.readOnly === true })),
    },
  };
}

/** How a container's security settings differ from what createOptions makes for a `disk` limit (empty: none). Pure. */
export function securityDrift(s: ContainerSecurity, disk: number): string[] {
  const p: string[] = [];
  const caps = (xs: string[]) => [...new Set(xs.map((c) => c.toUpperCase().replace(/^(CAP_)?/, 'CAP_')))].sort();
  const add = caps(s.capAdd);
  if (JSON.stringify(add) !== JSON.stringify([...WORKLOAD_CAPS])) p.push(`capabilities added [${add.join(', ')}], expected [${WORKLOAD_CAPS.join(', ')}]`);
  if (!s.capDrop.some((c) => c.toUpperCase() === 'ALL')) p.push(`capabilities dropped [${s.capDrop.join(', ')}], expected ALL`);
  if (s.privileged) p.push('privileged');
  if (!s.securityOpt.some((o) => o === NO_NEW_PRIVILEGES || o === `${NO_NEW_PRIVILEGES}:true` || o === `${NO_NEW_PRIVILEGES}=true`)) p.push(`security options [${s.securityOpt.join(', ')}] lack ${NO_NEW_PRIVILEGES}`);
  if (s.storageSize !== String(disk)) p.push(`disk limit ${s.storageSize ?? 'none'}, expected ${disk}`);
  if (s.pidsLimit !== PIDS_LIMIT) p.push(`pids limit ${s.pidsLimit ?? 'none'}, expected ${PIDS_LIMIT}`);
  if (s.networkMode !== 'none') p.push(`network mode ${s.networkMode}, expected none`);
  const rw = ETC_TARGETS.filter((t) => !s.readOnlyTargets.includes(t));
  if (rw.length) p.push(`${rw.join(', ')} not mounted read-only from the runtime's files`);
  if (s.logs !== LOGS) p.push(`logs ${s.logs || 'unbounded'}, expected ${LOGS}`);
  if (s.core !== '0:0') p.push(`core dumps ${s.core ?? 'allowed'}, expected 0:0`);
  return p;
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
  security: ContainerSecurity;
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
  /** The storage driver and its backing filesystem ("overlay2 on extfs"), for messages. */
  storageDriver(): Promise<string>;
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

/** Engine messages that mean "this storage driver cannot limit a container's size" (Docker 20.10 to 27). */
export const NO_STORAGE_OPT = /--storage-opt|storage-?opt(ion)? (is )?not supported|StorageOpt/i;

/**
 * The cgroup.procs file of a container's cgroup from its init's /proc/<pid>/cgroup (cgroup v2's unified line,
 * or v1's pids hierarchy), or null. Only a cgroup whose path names the container id (never the root, never a
 * shared parent) is returned. Pure.
 */
export function containerProcsFile(cgroupText: string, containerId: string): string | null {
  const lines = cgroupText.split('\n');
  const v1 = lines.find((l) => /^\d+:pids:/.test(l));
  const v2 = lines.find((l) => l.startsWith('0::'));
  const [root, path] = v1 ? ['/sys/fs/cgroup/pids', v1.split(':').slice(2).join(':')] : v2 ? ['/sys/fs/cgroup', v2.slice(3)] : [null, ''];
  if (!root || !/^[0-9a-f]{64}$/.test(containerId) || !path.includes(containerId) || path.includes('..')) return null;
  return `${root}${path}/cgroup.procs`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * SIGKILL to every process of a container's cgroup, until none is left (bounded). Docker's kill signals the
 * container's init only: behind a fork bomb (thousands of runnable siblings sharing its CPU quota) init may not
 * run for minutes to exit, and the removal fails. A task with SIGKILL pending forks no more.
 */
export async function killContainerProcesses(containerId: string, initPid: number, timeoutMs = 20_000): Promise<number> {
  let file: string | null;
  try {
    file = containerProcsFile(readFileSync(`/proc/${initPid}/cgroup`, 'utf8'), containerId);
  } catch {
    return 0;
  }
  if (!file) return 0;
  let killed = 0;
  const end = Date.now() + timeoutMs;
  for (let wait = 5; Date.now() < end; wait = Math.min(200, wait * 2)) {
    let pids: number[];
    try {
      pids = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      break; // the cgroup is gone
    }
    if (!pids.length) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        /* gone already */
      }
    }
    await sleep(wait);
  }
  return killed;
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
        security: {
          capAdd: i.HostConfig.CapAdd ?? [],
          capDrop: i.HostConfig.CapDrop ?? [],
          privileged: i.HostConfig.Privileged === true,
          securityOpt: i.HostConfig.SecurityOpt ?? [],
          storageSize: (i.HostConfig as { StorageOpt?: Record<string, string> | null }).StorageOpt?.size ?? null,
          pidsLimit: i.HostConfig.PidsLimit ?? null,
          networkMode: i.HostConfig.NetworkMode ?? '',
          readOnlyTargets: (i.HostConfig.Mounts ?? []).filter((m) => m.ReadOnly === true).map((m) => m.Target),
          logs: i.HostConfig.LogConfig?.Type ? `${i.HostConfig.LogConfig.Type} ${i.HostConfig.LogConfig.Config?.['max-size'] ?? '∞'}×${i.HostConfig.LogConfig.Config?.['max-file'] ?? '1'}` : '',
          core: ((c) => (c ? `${c.Soft}:${c.Hard}` : null))((i.HostConfig.Ulimits ?? []).find((u) => u.Name === 'core')),
        },
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

  async storageDriver(): Promise<string> {
    try {
      const info = await this.docker.info();
      const fs = ((info.DriverStatus ?? []) as [string, string][]).find(([k]) => k === 'Backing Filesystem')?.[1];
      return `${info.Driver}${fs ? ` on ${fs}` : ''}`;
    } catch (e) {
      throw engineError('docker info', e);
    }
  }

  async create(spec: ContainerSpec): Promise<string> {
    try {
      const c = await this.docker.createContainer(createOptions(spec));
      return c.id;
    } catch (e) {
      const err = engineError(`create ${spec.name}`, e);
      if (err.code === 'E_DOCKER' && NO_STORAGE_OPT.test(err.message)) {
        const driver = await this.storageDriver().catch(() => 'unknown');
        throw new ZmeshError('E_DISK_LIMIT_UNSUPPORTED', `the Docker engine cannot limit ${spec.name}'s disk (storage driver ${driver}): ${err.message}; the workload is not run without its limit`, {
          kind: 'internal',
          hint: 'run dockerd with --storage-driver=btrfs and its data root on btrfs (or overlay2 on xfs mounted with pquota); see docs/runtime.md',
          cause: e,
        });
      }
      throw err;
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

  /** Force-removes: every process of a running container's cgroup is killed first (see killContainerProcesses). */
  async remove(id: string): Promise<void> {
    const st = await this.inspect(id).catch(() => null);
    if (st?.running && st.pid > 0) await killContainerProcesses(st.id, st.pid);
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
