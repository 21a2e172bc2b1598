// The base image, built offline (no registry is reachable): a root filesystem holding Debian's static busybox
// as /bin/busybox with a symlink per applet (sh, httpd, nc, wget, ip, sleep, …), a minimal /etc, written as
// a tar stream by a small ustar writer and imported into the engine (`POST /images/create?fromSrc=-`).
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { ZmeshError } from '../src/errors.ts';

export const BASE_IMAGE = 'zmesh/base:latest';
export const BUSYBOX_PATH = '/bin/busybox';

export interface TarEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  data?: Buffer;
  target?: string;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** One 512-byte ustar header. Paths up to 100 bytes (prefix field for longer ones up to 255). Pure. */
export function tarHeader(e: TarEntry, mtime = 0): Buffer {
  const h = Buffer.alloc(512, 0);
  let name = e.path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`tar: path too long: ${e.path}`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  const size = e.type === 'file' ? (e.data?.length ?? 0) : 0;
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii'); // uid
  h.write(octal(0, 8), 116, 8, 'ascii'); // gid
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(mtime, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder
  h.write(e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', 156, 1, 'ascii');
  if (e.type === 'symlink') h.write(e.target ?? '', 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  if (prefix) h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return h;
}

/** A whole tar archive (with the two zero end blocks). Pure. */
export function tarArchive(entries: TarEntry[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e, mtime));
    if (e.type === 'file' && e.data?.length) {
      parts.push(e.data);
      const pad = (512 - (e.data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

/** Applets worth linking (busybox --list gives every applet; this list is the fallback). */
export const DEFAULT_APPLETS = [
  'sh', 'ash', 'cat', 'cp', 'date', 'dd', 'df', 'du', 'echo', 'env', 'false', 'grep', 'head', 'hostname', 'httpd', 'id', 'ifconfig', 'ip',
  'kill', 'ln', 'ls', 'mkdir', 'mount', 'mv', 'nc', 'nslookup', 'ping', 'ps', 'pwd', 'rm', 'route', 'sed', 'seq', 'sleep', 'sort', 'stat',
  'sync', 'tail', 'tee', 'test', 'timeout', 'top', 'touch', 'tr', 'true', 'uname', 'uptime', 'wc', 'wget', 'xargs', 'yes',
];

/** The base image's root filesystem entries, around a static busybox binary. Pure. */
export function baseRootfs(busybox: Buffer, applets: string[] = DEFAULT_APPLETS): TarEntry[] {
  const dirs = ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'var', 'var/www', 'usr', 'usr/bin', 'sbin', 'data'];
  const entries: TarEntry[] = dirs.map((d) => ({ path: `${d}/`, type: 'dir', mode: d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755 }));
  entries.push({ path: 'bin/busybox', type: 'file', mode: 0o755, data: busybox });
  const seen = new Set(['busybox']);
  for (const a of applets) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(a) || seen.has(a)) continue;
    seen.add(a);
    entries.push({ path: `bin/${a}`, type: 'symlink', mode: 0o777, target: 'busybox' });
  }
  entries.push({ path: 'etc/passwd', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n') });
  entries.push({ path: 'etc/group', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:\nnogroup:x:65534:\n') });
  entries.push({ path: 'var/www/index.html', type: 'file', mode: 0o644, data: Buffer.from('zmesh base image\n') });
  return entries;
}

/** Applets of a busybox --list output (one per line). Pure. */
export function parseApplets(list: string): string[] {
  return list
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => /^[a-z0-9][a-z0-9._-]*$/.test(s));
}

/** Builds the base image tar from this host's busybox. `applets` from `busybox --list` when available. */
export function baseImageTar(opts: { busyboxPath?: string; applets?: string[] } = {}): Buffer {
  const path = opts.busyboxPath ?? BUSYBOX_PATH;
  let bin: Buffer;
  try {
    bin = readFileSync(path);
  } catch (e) {
    throw new ZmeshError('E_BUSYBOX_MISSING', `cannot read ${path}: ${(e as Error).message}`, { hint: 'apt-get install busybox-static', cause: e });
  }
  return tarArchive(baseRootfs(bin, opts.applets?.length ? opts.applets : DEFAULT_APPLETS));
}

/** Imports a root filesystem tar as `ref` (repo:tag), with PATH and a default command. Returns the image id. */
export async function importImage(docker: Docker, tar: Buffer, ref: string = BASE_IMAGE): Promise<string> {
  const i = ref.lastIndexOf(':');
  const [repo, tag] = i > 0 && !ref.slice(i).includes('/') ? [ref.slice(0, i), ref.slice(i + 1)] : [ref, 'latest'];
  const stream = await docker.importImage(Readable.from([tar]), {
    repo,
    tag,
    changes: ['ENV PATH=/bin:/sbin:/usr/bin', 'CMD ["/bin/sh"]', 'WORKDIR /'],
  } as unknown as Record<string, unknown>);
  const out = await new Promise<unknown[]>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, res: unknown[]) => (err ? reject(err) : resolve(res))));
  const failed = out.find((o) => (o as { error?: string }).error);
  if (failed) throw new ZmeshError('E_IMAGE_IMPORT', `import of ${ref} failed: ${(failed as { error: string }).error}`, { kind: 'retryable' });
  const inspect = await docker.getImage(ref).inspect();
  return inspect.Id;
}
