// The credentials of the process at the other end of a unix socket connection (SO_PEERCRED: pid, uid, gid as
// they were when it connected). Node has no API for it; getsockopt(2) is called through koffi, a maintained FFI
// library that ships prebuilt binaries (no compiler at install), on the descriptor of the accepted socket.
// Linux only; where it cannot load, peerCredReader() returns null and the listeners bound per socket only.
import type { Socket } from 'node:net';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export type PeerCredReader = (socket: Socket) => PeerCred | null;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

let cached: Promise<PeerCredReader | null> | null = null;

/** A reader of SO_PEERCRED, or null (not Linux, or koffi/libc cannot be loaded: `why` says which). */
export function peerCredReader(): Promise<PeerCredReader | null> {
  return (cached ??= load().catch((e: unknown) => {
    lastError = e instanceof Error ? e.message : String(e);
    return null;
  }));
}

let lastError: string | null = null;
/** Why peerCredReader() returned null. */
export function peerCredUnavailable(): string | null {
  return lastError;
}

async function load(): Promise<PeerCredReader | null> {
  if (process.platform !== 'linux') {
    lastError = `SO_PEERCRED is read on Linux only (this is ${process.platform})`;
    return null;
  }
  const koffi = (await import('koffi')).default;
  const libc = koffi.load('libc.so.6');
  const ucred = koffi.struct('zmesh_ucred', { pid: 'int32', uid: 'uint32', gid: 'uint32' });
  const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ zmesh_ucred *val, _Inout_ uint32_t *len)');
  void ucred;
  const read: PeerCredReader = (socket) => {
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return null;
    const out = { pid: 0, uid: 0, gid: 0 };
    const len = [12];
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, out, len) !== 0 || len[0] !== 12) return null;
    return { pid: out.pid, uid: out.uid, gid: out.gid };
  };
  return read;
}
