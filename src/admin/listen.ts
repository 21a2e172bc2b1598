// Binds the admin app to a unix socket created with mode 0600 (no window where it is wider): the process umask
// is tightened around bind, then the mode is checked. A read-only socket may be opened to one group (0660).
//
// Connections are admitted by a gate (docs/admin-api.md#limits): at most `maxConnections` open on the socket
// and `perUid` per peer uid (SO_PEERCRED, src/admin/peercred.ts); a connection over either is answered
// `503 E_BUSY` and closed within 100 ms (at once in a storm), so refused connections hold few descriptors. Accept errors (EMFILE) are
// counted and logged, never an unhandled 'error' event. Header, request and idle timeouts are the app's
// (buildAdminApp with SocketLimits).
import type { HttpApp } from './http.ts';
import type { Socket } from 'node:net';
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import type { SocketLimits } from './limits.ts';
import type { PeerCredReader } from './peercred.ts';

function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  const line = execFileSync('getent', ['group', name], { encoding: 'utf8' }).trim();
  return Number(line.split(':')[2]);
}

/** Where refusals and accept errors are reported (src/log.ts's logger fits). */
export interface GateLog {
  warn(obj: object, msg: string): void;
}

export interface ConnectionStats {
  /** Connections open now. */
  open: number;
  /** The most that were open at once. */
  peakOpen: number;
  accepted: number;
  /** Refused because the socket had maxConnections open (by the gate, or by node's backstop). */
  refusedSocket: number;
  /** Refused because the peer's uid had perUid open. */
  refusedUid: number;
  /** accept(2) failures (EMFILE, ENFILE…); the listener keeps going. */
  acceptErrors: number;
  /** Open connections by peer uid ("?" when the uid could not be read). */
  byUid: Record<string, number>;
}

const BUSY_BODY = JSON.stringify({
  error: {
    code: 'E_BUSY',
    kind: 'retryable',
    message: 'too many connections to this admin socket',
    problems: [{ code: 'E_BUSY', path: '', message: 'too many connections to this admin socket', hint: 'close idle connections and retry' }],
  },
});
const BUSY = Buffer.from(
  `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(BUSY_BODY)}\r\n\r\n${BUSY_BODY}`,
);

/** Refused connections answered (503) at once; beyond that they are closed without an answer. */
export const REFUSALS_ANSWERED = 16;
/** How long a refused connection may take to read its answer. */
export const REFUSAL_LINGER_MS = 100;

/** listen(2) backlog of the admin sockets. */
export const LISTEN_BACKLOG = 4096;

/** Admission of connections to one socket: counts per socket and per peer uid. */
export class ConnectionGate {
  private answering = 0;
  private readonly stats: ConnectionStats = { open: 0, peakOpen: 0, accepted: 0, refusedSocket: 0, refusedUid: 0, acceptErrors: 0, byUid: {} };
  private readonly perUid = new Map<string, number>();
  private lastLog = -Infinity;
  private unlogged = { socket: 0, uid: 0, accept: 0 };

  constructor(
    readonly name: string,
    readonly limits: Pick<SocketLimits, 'maxConnections' | 'perUid'>,
    private readonly peerCred: PeerCredReader | null,
    private readonly log?: GateLog,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether peers are told apart by uid (SO_PEERCRED could be read). */
  get perUidEnforced(): boolean {
    return this.peerCred !== null;
  }

  snapshot(): ConnectionStats {
    return { ...this.stats, byUid: Object.fromEntries(this.perUid) };
  }

  /** Decides on a new connection; a refused one is answered 503 and destroyed. */
  admit(socket: Socket): boolean {
    const cred = this.peerCred ? this.peerCred(socket) : null;
    const uid = this.peerCred ? (cred ? String(cred.uid) : '?') : '*';
    if (this.stats.open >= this.limits.maxConnections) return this.refuse(socket, 'socket', uid);
    const mine = this.perUid.get(uid) ?? 0;
    if (this.peerCred && mine >= this.limits.perUid) return this.refuse(socket, 'uid', uid);
    this.perUid.set(uid, mine + 1);
    this.stats.open++;
    this.stats.accepted++;
    if (this.stats.open > this.stats.peakOpen) this.stats.peakOpen = this.stats.open;
    socket.once('close', () => {
      this.stats.open--;
      const n = (this.perUid.get(uid) ?? 1) - 1;
      if (n > 0) this.perUid.set(uid, n);
      else this.perUid.delete(uid);
    });
    return true;
  }

  /** Node's own maxConnections backstop closed a connection before the gate saw it. */
  dropped(): void {
    this.stats.refusedSocket++;
    this.unlogged.socket++;
    this.report(null);
  }

  acceptError(e: NodeJS.ErrnoException): void {
    this.stats.acceptErrors++;
    this.unlogged.accept++;
    this.report(e.code ?? e.message);
  }

  private refuse(socket: Socket, why: 'socket' | 'uid', uid: string): false {
    if (why === 'socket') this.stats.refusedSocket++;
    else this.stats.refusedUid++;
    this.unlogged[why]++;
    this.report(null, why === 'uid' ? uid : undefined);
    socket.on('error', () => undefined);
    if (this.answering >= REFUSALS_ANSWERED) {
      // A storm: close at once (holding nothing) rather than answer.
      socket.destroy();
      return false;
    }
    // Answer 503 and read what the client sends meanwhile (closing a unix socket with unread data resets the
    // peer, which then may never read the answer); close when it is done or after REFUSAL_LINGER_MS. At most
    // REFUSALS_ANSWERED such connections at once, so refused connections hold a few descriptors at most.
    this.answering++;
    const close = () => socket.destroy();
    const timer = setTimeout(close, REFUSAL_LINGER_MS);
    timer.unref();
    socket.once('end', close);
    socket.once('close', () => {
      clearTimeout(timer);
      this.answering--;
    });
    socket.resume();
    socket.end(BUSY);
    return false;
  }

  /** At most one log line per 10 s with what was refused since the last one. */
  private report(acceptCode: string | null, uid?: string): void {
    const t = this.now();
    if (!this.log || t - this.lastLog < 10_000) return;
    this.lastLog = t;
    const u = this.unlogged;
    this.log.warn(
      { socket: this.name, refusedSocket: u.socket, refusedUid: u.uid, acceptErrors: u.accept, open: this.stats.open, ...(uid ? { uid: Number(uid) } : {}), ...(acceptCode ? { acceptError: acceptCode } : {}) },
      `admin socket ${this.name}: refused ${u.socket + u.uid} connection(s) (${u.socket} socket full, ${u.uid} over the per-uid limit), ${u.accept} accept error(s)`,
    );
    this.unlogged = { socket: 0, uid: 0, accept: 0 };
  }
}

export interface ListenOptions {
  /** Open the socket to this group (0660; a name or a gid); default: root only (0600). */
  group?: string;
  /** Connections admitted at once, per socket and per peer uid; default: no gate. */
  limits?: Pick<SocketLimits, 'maxConnections' | 'perUid'>;
  /** Reads the peer's uid; null: every peer counts against the socket's budget only. */
  peerCred?: PeerCredReader | null;
  log?: GateLog;
  /** The socket's name in logs and metrics (default: the path). */
  name?: string;
}

/** Binds; returns the gate (null without limits) whose figures /v1/metrics shows. */
export async function listenUnix(app: HttpApp, path: string, opts: ListenOptions = {}): Promise<ConnectionGate | null> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
    else throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const server = app.server;
  const gate = opts.limits ? new ConnectionGate(opts.name ?? path, opts.limits, opts.peerCred ?? null, opts.log) : null;
  if (gate) {
    // The gate decides before node's http machinery sees the connection: the listeners node's http server put on
    // 'connection' run only for admitted sockets.
    await app.ready();
    const inner = server.listeners('connection') as ((s: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (!gate.admit(socket)) return;
      for (const l of inner) l.call(server, socket);
    });
    // Backstop: node closes connections beyond this before any JavaScript object is made for them (refused
    // sockets count until their close event, so a reconnect storm cannot pile them up either).
    server.maxConnections = gate.limits.maxConnections + REFUSALS_ANSWERED + 64;
    server.on('drop', () => gate.dropped());
  }
  const old = process.umask(0o177);
  try {
    // A deep accept queue (capped by net.core.somaxconn): while a flood fills it faster than the gate refuses,
    // other peers' connects wait their turn in it rather than fail with EAGAIN. It holds no descriptor of ours.
    await app.listen({ path, backlog: LISTEN_BACKLOG });
  } finally {
    process.umask(old);
  }
  // After listen nothing listens for 'error' (HttpApp.listen's listener is gone): an accept failure (EMFILE) would be an unhandled
  // 'error' event. libuv keeps accepting once descriptors are free again.
  server.on('error', (e: NodeJS.ErrnoException) => {
    if (gate) gate.acceptError(e);
    else opts.log?.warn({ socket: opts.name ?? path, err: e.message }, 'admin socket error');
  });
  if (opts.group !== undefined) {
    chownSync(path, process.getuid?.() ?? 0, groupId(opts.group));
    chmodSync(path, 0o660);
  } else chmodSync(path, 0o600);
  const mode = lstatSync(path).mode & 0o777;
  if (mode !== (opts.group !== undefined ? 0o660 : 0o600)) throw new Error(`socket ${path} has mode ${mode.toString(8)}`);
  return gate;
}
