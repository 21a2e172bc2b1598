// Budgets of the admin sockets, computed from the descriptor limit the agent runs with (pure).
//
// Every connection to an admin socket holds a descriptor, and a request may hold more while it runs (a log
// stream holds a connection to the Docker engine; a diagnose runs up to 16 pings, each with its pipes). The
// listeners together may use at most a quarter of RLIMIT_NOFILE; the rest is kept for the agent's own work
// (its store, the commands of a reconcile, wireguard-go logs, the engine, etcd). The root socket and the
// read-only group socket have budgets of their own, so a group member can never starve the root socket, and on
// the group socket each peer uid (SO_PEERCRED) has a share, so one member cannot starve the others.

/** Limits of one admin socket (its listener and its app). */
export interface SocketLimits {
  /** Connections open at once on this socket; more are answered 503 and closed. */
  maxConnections: number;
  /** Connections open at once per peer uid (SO_PEERCRED); equal to maxConnections where every peer is root. */
  perUid: number;
  /** The request line and headers must arrive within this (a silent or half-sent request: 408, closed). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way is closed after this while a response is pending; 0: never. */
  idleTimeoutMs: number;
  /** How often node checks the header and request timeouts. */
  checkIntervalMs: number;
  /** Requests that run commands or call the engine (network detail, diagnose, metrics, workloads, volumes, logs) at once. */
  heavyConcurrent: number;
  /** Such requests waiting for a slot; more are answered 503 E_BUSY. */
  heavyQueue: number;
  /** Largest request body (bytes). */
  bodyLimit: number;
}

export interface AdminBudget {
  /** RLIMIT_NOFILE the budgets were computed from (the soft limit; node raises it to the hard one at start). */
  nofile: number;
  /** Descriptors the admin sockets may use at most, by the accounting below. */
  adminFds: number;
  /** Descriptors kept for the agent's own work. */
  reserved: number;
  admin: SocketLimits;
  read: SocketLimits;
  /** Set when the limit is too low for even the smallest budgets (the agent logs it). */
  warning: string | null;
}

/** Descriptors one connection may hold (the socket, and a log stream's connection to the engine). */
export const FDS_PER_CONNECTION = 2;
/** Descriptors one heavy request may hold: a diagnose runs 16 pings at once, each with its pipes. */
export const FDS_PER_HEAVY = 64;
/** At least this many descriptors are always kept for the agent's own work. */
export const MIN_RESERVED = 768;

export const DEFAULT_ADMIN: SocketLimits = {
  maxConnections: 64,
  perUid: 64,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  // Root's own requests may run long (a large apply); the socket is root's alone.
  idleTimeoutMs: 0,
  checkIntervalMs: 1_000,
  heavyConcurrent: 4,
  heavyQueue: 64,
  bodyLimit: 4 * 1024 * 1024,
};

export const DEFAULT_READ: SocketLimits = {
  maxConnections: 64,
  perUid: 16,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  checkIntervalMs: 1_000,
  heavyConcurrent: 2,
  heavyQueue: 16,
  // Reads have no body.
  bodyLimit: 16 * 1024,
};

const MIN = { adminConnections: 8, readConnections: 4, perUid: 2, heavy: 1 };

/** Descriptors a socket with these limits may hold at most. */
export function socketFds(l: Pick<SocketLimits, 'maxConnections' | 'heavyConcurrent'>): number {
  return l.maxConnections * FDS_PER_CONNECTION + l.heavyConcurrent * FDS_PER_HEAVY;
}

function scaled(l: SocketLimits, factor: number, minConnections: number, perUidShare: number | null): SocketLimits {
  const maxConnections = Math.max(minConnections, Math.floor(l.maxConnections * factor));
  const heavyConcurrent = Math.max(MIN.heavy, Math.floor(l.heavyConcurrent * factor));
  const perUid = perUidShare === null ? maxConnections : Math.min(maxConnections, Math.max(MIN.perUid, Math.floor(maxConnections * perUidShare)));
  return { ...l, maxConnections, heavyConcurrent, perUid, heavyQueue: Math.max(heavyConcurrent, Math.floor(l.heavyQueue * Math.min(1, factor))) };
}

/**
 * The budgets for a descriptor limit: the defaults when they fit in a quarter of it (with at least
 * MIN_RESERVED kept), else both sockets scaled down alike (never below a few connections each).
 */
export function adminBudget(nofile: number, wanted: { admin?: SocketLimits; read?: SocketLimits } = {}): AdminBudget {
  const admin0 = wanted.admin ?? DEFAULT_ADMIN;
  const read0 = wanted.read ?? DEFAULT_READ;
  const limit = nofile === Infinity ? 1 << 20 : Number.isFinite(nofile) && nofile > 0 ? Math.floor(nofile) : 1024;
  const share = Math.max(0, Math.min(Math.floor(limit / 4), limit - MIN_RESERVED));
  const want = socketFds(admin0) + socketFds(read0);
  const factor = want <= share ? 1 : share / want;
  const readShare = read0.perUid / read0.maxConnections;
  const admin = factor === 1 ? admin0 : scaled(admin0, factor, MIN.adminConnections, null);
  const read = factor === 1 ? read0 : scaled(read0, factor, MIN.readConnections, readShare);
  const adminFds = socketFds(admin) + socketFds(read);
  const warning =
    adminFds > share
      ? `RLIMIT_NOFILE is ${limit}: too low to keep ${MIN_RESERVED} descriptors for the agent beside the admin sockets' smallest budgets (${adminFds}); raise LimitNOFILE (deploy/zmesh-agent.service sets 65536)`
      : null;
  return { nofile: limit, adminFds, reserved: limit - adminFds, admin, read, warning };
}

/** The soft and hard "Max open files" of a /proc/<pid>/limits text; null when absent. "unlimited" is Infinity. */
export function parseNofile(limitsText: string): { soft: number; hard: number } | null {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'));
  if (!line) return null;
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)\s+files/.exec(line.trim());
  if (!m) return null;
  const n = (v: string) => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: n(m[1]), hard: n(m[2]) };
}
