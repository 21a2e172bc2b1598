// Binds the admin app to a unix socket created with mode 0600 (no window where it is wider): the process umask
// is tightened around bind, then the mode is checked. A read-only socket may be opened to one group (0660).
import type { FastifyInstance } from 'fastify';
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';

function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  const line = execFileSync('getent', ['group', name], { encoding: 'utf8' }).trim();
  return Number(line.split(':')[2]);
}

export async function listenUnix(app: FastifyInstance, path: string, opts: { group?: string } = {}): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
    else throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const old = process.umask(0o177);
  try {
    await app.listen({ path });
  } finally {
    process.umask(old);
  }
  if (opts.group !== undefined) {
    chownSync(path, process.getuid?.() ?? 0, groupId(opts.group));
    chmodSync(path, 0o660);
  } else chmodSync(path, 0o600);
  const mode = lstatSync(path).mode & 0o777;
  if (mode !== (opts.group !== undefined ? 0o660 : 0o600)) throw new Error(`socket ${path} has mode ${mode.toString(8)}`);
}
