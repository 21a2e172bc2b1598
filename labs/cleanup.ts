// Tearing labs down, also after the lab command crashed: find every process inside a lab namespace by
// namespace inode (/proc/*/ns/net and /proc/*/ns/mnt) or in a lab node's container cgroup (/proc/*/cgroup:
// workloads run in namespaces of their own), kill it by PID (never by name), delete the named namespaces
// (their links go with them; the nodes' mount namespaces, and with them the storage pools' mounts, go when
// their last process does), wait for the pools' loop devices to be released (detaching what is left),
// remove the containers' cgroups, then the lab directory. Leftovers are found by the name prefix.
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stopControlPlane } from './etcd.ts';
import { stopCarrier } from './candidates.ts';
import { LAB_NS_PREFIX, labPrefix } from './layout.ts';
import { LAB_NAME_RE } from './spec.ts';
import { labRoot, readState, type LabState } from './state.ts';
import { alive, allPids, fileInode, listNetns, nsInode, run, sleep, startTime, waitFor } from './sys.ts';

/** Namespace inodes of the host itself (never a lab's): PID 1's and this process's. */
function hostInodes(): Set<number> {
  const s = new Set<number>();
  for (const pid of [1, process.pid]) for (const k of ['net', 'mnt'] as const) {
    const i = nsInode(pid, k);
    if (i !== null) s.add(i);
  }
  return s;
}

/** Tenant namespaces (n-*) a live process's private /run/netns holds. */
function privateNetns(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/root/run/netns`)
      .map((n) => fileInode(`/proc/${pid}/root/run/netns/${n}`))
      .filter((i): i is number => i !== null);
  } catch {
    return [];
  }
}

/** The tmpfs a lab holder mounts on /run (its source names the lab): the signature of a lab mount namespace. */
export function holderRunSource(lab: string): string {
  return `${labPrefix(lab)}run`;
}

/** Whether a process's mount namespace is a lab holder's: its /run is a lab tmpfs. */
function inLabMountNs(pid: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  } catch {
    return false;
  }
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[4] !== '/run') continue;
    const rest = line.slice(line.indexOf(' - ') + 3).split(' ');
    if (rest[0] === 'tmpfs' && rest[1]?.startsWith(LAB_NS_PREFIX) && rest[1].endsWith('_run')) return true;
  }
  return false;
}

/** Which cgroup path segments are a lab's (the cgroup parent of a node's containers, labs/docker.ts). */
export type CgroupMatch = (segment: string) => boolean;

/** A node's container cgroups. */
export function nodeCgroups(lab: string, node: string): CgroupMatch {
  const seg = `${labPrefix(lab)}n-${node}`;
  return (s) => s === seg;
}

/** Every node's container cgroups of a lab. */
export function labCgroups(lab: string): CgroupMatch {
  const p = `${labPrefix(lab)}n-`;
  return (s) => s.startsWith(p);
}

/** Container cgroups of any lab (`lab down --all`). */
export const anyLabCgroups: CgroupMatch = (s) => /^zl-[a-z0-9-]{1,20}_n-[a-z0-9-]+$/.test(s);

/** Whether a process sits in a lab's container cgroup (any hierarchy). */
function inLabCgroup(pid: number, match: CgroupMatch): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return false;
  }
  for (const line of text.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    if (path.split('/').some((seg) => seg !== '' && match(seg))) return true;
  }
  return false;
}

/** Cgroup directories of a lab's containers, deepest first, in every mounted hierarchy. */
export function labCgroupDirs(match: CgroupMatch): string[] {
  const root = '/sys/fs/cgroup';
  const bases = [root, ...readdirSafe(root).map((d) => join(root, d))].filter(isDir);
  const out: string[] = [];
  const walk = (d: string) => {
    for (const c of readdirSafe(d)) if (isDir(join(d, c))) walk(join(d, c));
    out.push(d);
  };
  for (const b of bases) for (const e of readdirSafe(b)) if (match(e) && isDir(join(b, e))) walk(join(b, e));
  return out;
}

/** Removes a lab's (empty) container cgroups; bounded retries while killed processes finish exiting. */
export async function removeCgroups(match: CgroupMatch, timeoutMs = 3000): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  let left = labCgroupDirs(match);
  for (let round = 0; round < 100 && left.length && Date.now() < end; round++) {
    for (const d of left) {
      try {
        rmdirSync(d);
      } catch {
        /* busy a moment longer, or already gone */
      }
    }
    left = labCgroupDirs(match);
    if (left.length) await sleep(50);
  }
  return left;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Every process inside the given namespaces (by inode), closing over what is verifiably a lab's: the mount
 * namespace of a process found in a lab network namespace is added only when it is a lab holder's (its /run
 * is a lab tmpfs), and then the tenant namespaces bound in its private /run/netns. So a process that merely
 * entered a lab network namespace from some other mount namespace (a delay line, a shell) is found, but that
 * other mount namespace and its processes are not. The host's own namespaces are never added.
 */
export function labProcesses(seed: Iterable<number>, cgroups?: CgroupMatch): { pids: number[]; inodes: Set<number> } {
  const host = hostInodes();
  const inodes = new Set([...seed].filter((i) => !host.has(i)));
  const procs = allPids().map((pid) => ({ pid, net: nsInode(pid, 'net'), mnt: nsInode(pid, 'mnt') }));
  const checked = new Set<number>();
  for (let round = 0; round < 10; round++) {
    let grew = false;
    for (const p of procs) {
      if (p.mnt === null || host.has(p.mnt)) continue;
      const mntIn = inodes.has(p.mnt);
      if (!mntIn && !(p.net !== null && inodes.has(p.net))) continue;
      if (!mntIn) {
        if (checked.has(p.mnt)) continue;
        checked.add(p.mnt);
        if (!inLabMountNs(p.pid)) continue;
        inodes.add(p.mnt);
        grew = true;
      }
      for (const i of privateNetns(p.pid)) {
        if (!host.has(i) && !inodes.has(i)) {
          inodes.add(i);
          grew = true;
        }
      }
    }
    if (!grew) break;
  }
  const pids = procs
    .filter((p) => (p.net !== null && inodes.has(p.net)) || (p.mnt !== null && inodes.has(p.mnt)) || (cgroups !== undefined && inLabCgroup(p.pid, cgroups)))
    .map((p) => p.pid);
  return { pids: pids.sort((a, b) => a - b), inodes };
}

/**
 * SIGKILLs, by PID, every process inside the namespaces seed() names (and in the container cgroups `cgroups`
 * matches), until none is left (bounded). seed() is asked again every round and must only name namespaces
 * that are verifiably the lab's right now (named lab namespaces, holders checked by start time): a freed
 * namespace's inode number is soon reused by another.
 */
export async function killInside(seed: () => Iterable<number>, timeoutMs = 10000, cgroups?: CgroupMatch): Promise<number> {
  let killed = 0;
  const end = Date.now() + timeoutMs;
  for (let round = 0; round < 100 && Date.now() < end; round++) {
    const found = labProcesses(seed(), cgroups);
    if (!found.pids.length) return killed;
    for (const pid of found.pids) {
      const net = nsInode(pid, 'net');
      const mnt = nsInode(pid, 'mnt');
      const inNs = (net !== null && found.inodes.has(net)) || (mnt !== null && found.inodes.has(mnt));
      if (startTime(pid) === null || !(inNs || (cgroups !== undefined && inLabCgroup(pid, cgroups)))) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        /* already gone */
      }
    }
    await sleep(50);
  }
  const left = labProcesses(seed(), cgroups).pids.filter((p) => startTime(p) !== null);
  if (left.length) throw new Error(`processes still inside the lab namespaces after ${timeoutMs} ms: ${left.join(', ')}`);
  return killed;
}

export interface DownReport {
  lab: string;
  killed: number;
  namespaces: string[];
  removedDir: boolean;
  /** Loop devices still attached after the mount namespaces went, detached by hand. */
  detached?: string[];
}

/** Deletes named namespaces (links inside go with them; veth peers in other lab namespaces too). */
async function deleteNetns(names: string[]): Promise<void> {
  for (const n of names) {
    await run(['ip', 'netns', 'del', n], { okCodes: [0, 1] });
  }
}

/** The namespace inodes that are verifiably a lab's now: its named namespaces, and its holders (checked by
 *  start time) with the tenant namespaces in their private /run/netns. */
function seedInodes(name: string, state: LabState | null): { seed: Set<number>; names: string[] } {
  const names = listNetns().filter((n) => n.startsWith(labPrefix(name)));
  const seed = new Set<number>();
  for (const n of names) {
    const i = fileInode(`/run/netns/${n}`);
    if (i !== null) seed.add(i);
  }
  for (const h of Object.values(state?.holders ?? {})) {
    if (startTime(h.pid) === h.start && nsInode(h.pid, 'net') === h.net && nsInode(h.pid, 'mnt') === h.mnt) {
      seed.add(h.net);
      seed.add(h.mnt);
      for (const i of privateNetns(h.pid)) seed.add(i);
    }
  }
  return { seed, names };
}

/** Every process inside a lab right now (PID and start time), e.g. to check later that none survived. */
export function processesOf(name: string, dir: string): { pid: number; start: number }[] {
  const { seed } = seedInodes(name, readState(dir));
  return labProcesses(seed, labCgroups(name))
    .pids.map((pid) => ({ pid, start: startTime(pid) }))
    .filter((p): p is { pid: number; start: number } => p.start !== null);
}

/** Takes one lab down completely: processes, namespaces (and so links, mounts, sockets), its directory. */
export async function downLab(name: string, dir: string, opts: { keepDir?: boolean } = {}): Promise<DownReport> {
  const state = readState(dir);
  // The candidate carrier (labs/candidates.ts) runs outside the lab's namespaces: by its recorded PID.
  await stopCarrier(dir, state).catch(() => undefined);
  // controlPlane: etcd — the members and the controller, by their recorded PIDs, and their data.
  await stopControlPlane(dir).catch(() => undefined);
  const { names } = seedInodes(name, state);
  const cgroups = labCgroups(name);
  const killed = await killInside(() => seedInodes(name, state).seed, 10000, cgroups);
  await deleteNetns(names);
  // A namespace someone re-created meanwhile (a racing `up`) would show here: a second pass.
  const again = listNetns().filter((n) => n.startsWith(labPrefix(name)));
  if (again.length) {
    await killInside(() => seedInodes(name, null).seed, 10000, cgroups);
    await deleteNetns(again);
  }
  // The nodes' mount namespaces are gone with their processes, and with them the pools' mounts; `mount -o
  // loop` releases the loop device then (within milliseconds): wait for it, detach what is left.
  const detached = await releaseLoops(dir);
  await removeCgroups(cgroups);
  let removedDir = false;
  if (!opts.keepDir && existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    removedDir = true;
  }
  return { lab: name, killed, namespaces: names, removedDir, ...(detached.length ? { detached } : {}) };
}

/** Every lab under the lab root plus every namespace with the lab prefix. */
export async function downAll(): Promise<DownReport[]> {
  const reports: DownReport[] = [];
  const root = labRoot();
  let dirs: string[] = [];
  try {
    dirs = readdirSync(root).filter((d) => existsSync(join(root, d, 'state.json')));
  } catch {
    /* no lab root */
  }
  for (const d of dirs) {
    let name = d;
    try {
      name = (JSON.parse(readFileSync(join(root, d, 'state.json'), 'utf8')) as LabState).name ?? d;
    } catch {
      /* use the directory name */
    }
    reports.push(await downLab(name, join(root, d)));
  }
  // Leftovers of labs whose directory is gone (or lives under another ZMESH_LAB_DIR).
  const left = listNetns().filter((n) => n.startsWith(LAB_NS_PREFIX));
  if (left.length) {
    const seed = () => {
      const s = new Set<number>();
      for (const n of left) {
        const i = fileInode(`/run/netns/${n}`);
        if (i !== null) s.add(i);
      }
      return s;
    };
    const killed = await killInside(seed, 10000, anyLabCgroups);
    await deleteNetns(left);
    // The directories of those labs, when their processes made them again after the state was gone (an agent's
    // state and resolver directories are created with their parents): `zl-<lab>_…` names the lab, and a lab's
    // directory is <lab root>/<lab>. Only once nothing of the lab runs any more.
    let removedDir = false;
    for (const lab of new Set(left.map((n) => n.slice(LAB_NS_PREFIX.length).split('_')[0]))) {
      const d = join(root, lab);
      if (!LAB_NAME_RE.test(lab) || !existsSync(d) || existsSync(join(d, 'state.json'))) continue;
      rmSync(d, { recursive: true, force: true });
      removedDir = true;
    }
    reports.push({ lab: '(leftovers)', killed, namespaces: left, removedDir });
  }
  // Containers of labs whose namespaces are gone already, their cgroups, and pool loop devices of labs whose
  // directory was removed (under this lab root).
  if (labProcesses([], anyLabCgroups).pids.length) {
    const killed = await killInside(() => [], 10000, anyLabCgroups);
    reports.push({ lab: '(containers)', killed, namespaces: [], removedDir: false });
  }
  await removeCgroups(anyLabCgroups);
  const loops = loopsUnder(root).filter(([, f]) => f.endsWith(' (deleted)'));
  for (const [dev] of loops) await run(['losetup', '-d', dev], { okCodes: [0, 1] });
  if (loops.length) reports.push({ lab: '(loop devices)', killed: 0, namespaces: [], removedDir: false, detached: loops.map(([d, f]) => `${d} (${f})`) });
  return reports;
}

/** Names a lab's links could have (they only ever live inside lab namespaces). */
const LAB_LINK_RE = /^(nd|dv|rt|qnd|bnd|qdv|bdv)\d+$/;

/**
 * What is left of a lab (empty when nothing): named namespaces, processes (the given PIDs with their start
 * times, e.g. from processesOf before the down), mounts, unix sockets and links in the host namespace, and
 * the lab directory.
 */
export function leftovers(name: string, dir: string, known: { procs?: { pid: number; start: number }[] } = {}): string[] {
  const out: string[] = [];
  for (const n of listNetns()) if (n.startsWith(labPrefix(name))) out.push(`namespace ${n}`);
  for (const p of known.procs ?? []) {
    if (startTime(p.pid) !== p.start) continue;
    // A SIGKILLed process in the middle of exiting has already dropped its namespaces and memory (no cmdline,
    // no readable ns links): it holds nothing of the lab and is gone a moment later.
    if (readCmd(p.pid) === '' && nsInode(p.pid, 'net') === null) continue;
    out.push(`process ${p.pid} (${readCmd(p.pid)})`);
  }
  const mounts = readText('/proc/self/mountinfo');
  for (const line of mounts.split('\n')) if (line.includes(labPrefix(name)) || line.includes(` ${dir}`)) out.push(`mount ${line.split(' ')[4]}`);
  for (const line of readText('/proc/net/unix').split('\n')) if (line.includes(`${dir}/`)) out.push(`unix socket ${line.trim().split(/\s+/).pop()}`);
  for (const l of readdirSafe('/sys/class/net')) if (LAB_LINK_RE.test(l)) out.push(`host link ${l}`);
  for (const [dev, file] of loopsUnder(dir)) out.push(`loop device ${dev} (${file})`);
  for (const d of labCgroupDirs(labCgroups(name))) out.push(`cgroup ${d}`);
  for (const pid of labProcesses([], labCgroups(name)).pids) out.push(`container process ${pid} (${readCmd(pid)})`);
  if (existsSync(dir)) out.push(`directory ${dir}`);
  return out;
}

function readText(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

function readdirSafe(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

function readCmd(pid: number): string {
  return readText(`/proc/${pid}/cmdline`).split('\0').join(' ').trim().slice(0, 120);
}

/** Loop devices whose backing file lies under `dir` (a storage pool image of a lab node): [device, file]. */
export function loopsUnder(dir: string): [string, string][] {
  const out: [string, string][] = [];
  for (const n of readdirSafe('/sys/block').filter((x) => /^loop\d+$/.test(x))) {
    let f: string;
    try {
      f = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim();
    } catch {
      continue; // not attached
    }
    const file = f.replace(/ \(deleted\)$/, '');
    if (file.startsWith(dir + '/')) out.push([`/dev/${n}`, f]);
  }
  return out;
}

/**
 * Waits (bounded) until no loop device is backed by a file under `dir` — a node's pool is unmounted when its
 * mount namespace goes, and `mount -o loop` detaches the device then — and detaches what is still left.
 */
export async function releaseLoops(dir: string, timeoutMs = 3000): Promise<string[]> {
  await waitFor(() => loopsUnder(dir).length === 0, timeoutMs, 50);
  const left = loopsUnder(dir);
  for (const [dev] of left) await run(['losetup', '-d', dev], { okCodes: [0, 1] });
  return left.map(([d, f]) => `${d} (${f})`);
}

/**
 * Takes a lab down and says what is left of it (empty: nothing): the processes that ran in it just before,
 * namespaces, mounts, sockets, links and the directory; a failed down is one entry too. For tests and labs'
 * own checks.
 */
export async function downAndCheck(name: string, dir: string): Promise<string[]> {
  const procs = processesOf(name, dir);
  const carrier = readState(dir)?.carrier ?? null;
  const failed = await downLab(name, dir).then(
    () => null,
    (e: unknown) => `lab down failed: ${(e as Error).message}`,
  );
  const carrierLeft = alive(carrier) ? [`candidate carrier PID ${carrier!.pid} still runs`] : [];
  return [...(failed ? [failed] : []), ...carrierLeft, ...leftovers(name, dir, { procs })];
}
