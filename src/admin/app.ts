/**
 * src/admin — the local admin API: its routes on the HTTP layer of http.ts, built apart from the unix-socket listener.
 *
 * Does: /v1 routes over the agent's core service, schema-validated and size-limited bodies, errors with codes,
 * read-only mode (for a group socket). Does not: bind sockets (listen.ts does), hold state, or return secrets.
 */
import type { Agent } from '../agent/agent.ts';
import { HttpApp, RequestGate, type Request } from './http.ts';

export { RequestGate };
import { DEFAULT_ADMIN, DEFAULT_READ, type SocketLimits } from './limits.ts';
import type { ConnectionStats } from './listen.ts';

export interface AdminDeps {
  agent: Agent;
  /** Refuse every write route (a read-only socket). */
  readOnly?: boolean;
  /** Bodies larger than this are refused (bytes); default: the limits' (4 MiB for the admin socket). */
  bodyLimit?: number;
  /** Timeouts and concurrency of this socket (src/admin/limits.ts); default: DEFAULT_ADMIN, or DEFAULT_READ when read-only. */
  limits?: SocketLimits;
  /** Connection figures of the listeners (their gates), shown in /v1/metrics. */
  connections?: () => AdminSocketFigures[];
}

/** A follow stream whose reader has fallen this far behind is closed (a client that never reads). */
export const FOLLOW_BACKLOG_BYTES = 1024 * 1024;

/** One admin socket's connection figures and limits (perUid null: peers are not told apart by uid). */
export interface AdminSocketFigures {
  socket: string;
  stats: ConnectionStats;
  maxConnections: number;
  perUid: number | null;
}

/** Prometheus lines for the admin sockets' connection figures. */
export function renderConnectionMetrics(list: AdminSocketFigures[]): string {
  if (!list.length) return '';
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const out: string[] = [];
  const family = (name: string, type: string, help: string, rows: [string, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) out.push(`${name}{${labels}} ${v}`);
  };
  family('zmesh_admin_connections', 'gauge', 'Connections open on an admin socket.', list.map((l) => [`socket="${esc(l.socket)}"`, l.stats.open]));
  family('zmesh_admin_connections_max', 'gauge', 'Connections an admin socket admits at once.', list.map((l) => [`socket="${esc(l.socket)}"`, l.maxConnections]));
  const perUid = list.filter((l) => l.perUid !== null);
  if (perUid.length) family('zmesh_admin_connections_per_uid_max', 'gauge', 'Connections an admin socket admits at once from one peer uid (SO_PEERCRED).', perUid.map((l) => [`socket="${esc(l.socket)}"`, l.perUid!]));
  family('zmesh_admin_connections_peak', 'gauge', 'The most connections open at once on an admin socket since the agent started.', list.map((l) => [`socket="${esc(l.socket)}"`, l.stats.peakOpen]));
  family('zmesh_admin_connections_accepted_total', 'counter', 'Connections admitted to an admin socket.', list.map((l) => [`socket="${esc(l.socket)}"`, l.stats.accepted]));
  family(
    'zmesh_admin_connections_refused_total',
    'counter',
    'Connections refused by an admin socket: it was full (reason="socket") or the peer uid had its share open (reason="uid").',
    list.flatMap((l) => [
      [`socket="${esc(l.socket)}",reason="socket"`, l.stats.refusedSocket] as [string, number],
      [`socket="${esc(l.socket)}",reason="uid"`, l.stats.refusedUid] as [string, number],
    ]),
  );
  family('zmesh_admin_accept_errors_total', 'counter', 'accept(2) failures on an admin socket (EMFILE, ENFILE).', list.map((l) => [`socket="${esc(l.socket)}"`, l.stats.acceptErrors]));
  return out.join('\n') + '\n';
}

export function buildAdminApp(deps: AdminDeps): HttpApp {
  const limits = deps.limits ?? (deps.readOnly ? DEFAULT_READ : DEFAULT_ADMIN);
  const heavy = new RequestGate(limits.heavyConcurrent, limits.heavyQueue);
  const app = new HttpApp({
    bodyLimit: deps.bodyLimit ?? limits.bodyLimit,
    // Timeouts (node checks them every checkIntervalMs, on unix sockets too: test/integration/admin-socket.test.ts):
    // a silent or half-sent request gets 408 after headersTimeoutMs, a slow body after requestTimeoutMs, an idle
    // keep-alive connection is closed after keepAliveTimeoutMs, and (read-only socket) any connection with no
    // traffic for idleTimeoutMs.
    headersTimeoutMs: limits.headersTimeoutMs,
    requestTimeoutMs: limits.requestTimeoutMs,
    keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
    idleTimeoutMs: limits.idleTimeoutMs,
    checkIntervalMs: limits.checkIntervalMs,
    maxHeaderSize: 16 * 1024,
    // On close: the read-only socket drops every connection; the admin socket lets requests in flight finish.
    forceCloseConnections: deps.readOnly ? true : 'idle',
    readOnly: deps.readOnly === true,
    // An over-long URL segment is E_TOO_LARGE with 414 (URI too long).
    maxParamLength: 256,
  });
  const { agent } = deps;

  // Routes declared `write: true` are refused on the read-only socket (403 E_READ_ONLY) by the HTTP layer, before
  // their body is read.
  app.get('/v1/status', async () => agent.status());
  app.get('/v1/networks', async () => ({ networks: agent.networks() }));
  app.get('/v1/networks/:name', async (req: Request<never, never, { name: string }>) => heavy.run(req, () => agent.network(req.params.name)));
  // The names the network's resolver serves on this node (docs/dns.md). Read-only, no command.
  app.get('/v1/networks/:name/dns', async (req: Request<never, never, { name: string }>) => agent.dns(req.params.name));
  app.get(
    '/v1/diagnose',
    {
      schema: {
        querystring: {
          type: 'object',
          required: ['network'],
          additionalProperties: false,
          properties: { network: { type: 'string', minLength: 1, maxLength: 200 }, peer: { type: 'string', minLength: 1, maxLength: 200 } },
        },
      },
    },
    async (req: Request<{ network: string; peer?: string }>) => heavy.run(req, () => agent.diagnose(req.query.network, req.query.peer)),
  );
  // Network policy (docs/policy.md): which rule allows or drops a flow, and the rules' counters.
  app.get(
    '/v1/policy/check',
    {
      schema: {
        querystring: {
          type: 'object',
          required: ['network', 'from', 'to'],
          additionalProperties: false,
          properties: {
            network: { type: 'string', minLength: 1, maxLength: 200 },
            from: { type: 'string', minLength: 1, maxLength: 200 },
            to: { type: 'string', minLength: 1, maxLength: 200 },
            port: { type: 'string', minLength: 1, maxLength: 16 },
          },
        },
      },
    },
    // No command runs, but it may compile a policy of up to 1,000 rules for another node: it takes a slot.
    async (req: Request<{ network: string; from: string; to: string; port?: string }>) => heavy.run(req, async () => agent.policyCheck(req.query.network, req.query.from, req.query.to, req.query.port)),
  );
  app.get(
    '/v1/policy',
    { schema: { querystring: { type: 'object', required: ['network'], additionalProperties: false, properties: { network: { type: 'string', minLength: 1, maxLength: 200 } } } } },
    async (req: Request<{ network: string }>) => heavy.run(req, () => agent.policy(req.query.network)),
  );
  app.get(
    '/v1/events',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            after: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            follow: { type: 'boolean' },
          },
        },
      },
    },
    async (req: Request<{ after?: number; limit?: number; follow?: boolean }>, reply) => {
      const after = req.query.after ?? 0;
      const limit = req.query.limit ?? 200;
      if (!req.query.follow) return { events: agent.events(after, limit) };
      // Follow: newline-delimited JSON, the backlog first, then events as they happen, until the client goes.
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.flushHeaders();
      // A reader that stops reading is dropped once FOLLOW_BACKLOG_BYTES wait for it, rather than buffered forever.
      const send = (line: string) => {
        if (res.writableLength > FOLLOW_BACKLOG_BYTES) res.destroy();
        else if (!res.destroyed && !res.writableEnded) res.write(line);
      };
      for (const e of agent.events(after, limit)) send(JSON.stringify(e) + '\n');
      const off = agent.onEvent((e) => send(JSON.stringify(e) + '\n'));
      const ping = setInterval(() => send('\n'), 15000);
      req.raw.on('close', () => {
        off();
        clearInterval(ping);
      });
    },
  );
  app.get('/v1/workloads', async (req) => ({ workloads: await heavy.run(req, () => agent.workloads()) }));
  app.get('/v1/volumes', async (req) => ({ volumes: await heavy.run(req, () => agent.volumes()) }));
  app.get(
    '/v1/workloads/:name/logs',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { follow: { type: 'boolean' }, tail: { type: 'integer', minimum: 0, maximum: 100000 } },
        },
      },
    },
    async (req: Request<{ follow?: boolean; tail?: number }, never, { name: string }>, reply) => {
      // The engine call takes a slot; the stream itself (with backpressure) does not.
      const stream = await heavy.run(req, () => agent.logs(req.params.name, { follow: req.query.follow ?? false, tail: req.query.tail }));
      req.raw.on('close', () => stream.destroy());
      // A quiet workload's follow stream is not an idle connection (bounded by the per-uid connection limit).
      if (req.query.follow) req.raw.socket?.setTimeout(0);
      return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(stream);
    },
  );
  app.get('/v1/metrics', async (req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    const text = await heavy.run(req, () => agent.metrics());
    return deps.connections ? text + renderConnectionMetrics(deps.connections()) : text;
  });

  app.post(
    '/v1/blueprints',
    {
      write: true,
      schema: {
        body: {
          type: 'object',
          required: ['signed', 'part'],
          additionalProperties: false,
          properties: { signed: { type: 'object' }, part: { type: 'object' } },
        },
      },
    },
    async (req: Request<never, { signed: unknown; part: unknown }>, reply) => {
      const result = await agent.submit(req.body.signed, req.body.part);
      return reply.code(result.networks.every((n) => n.ok) && result.runtime?.ok !== false ? 200 : 202).send(result);
    },
  );
  app.delete('/v1/blueprints/:tenant/:name', { write: true }, async (req: Request<never, never, { tenant: string; name: string }>) =>
    agent.remove(req.params.tenant, req.params.name),
  );
  // Direct paths between hidden nodes (docs/paths.md).
  app.get(
    '/v1/paths',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { network: { type: 'string', minLength: 1, maxLength: 200 } } } } },
    // The read-only socket does not see other nodes' LAN and post-NAT addresses (GET /v1/candidates is refused there too).
    async (req: Request<{ network?: string }>) => ({ paths: agent.pathViews(req.query.network, deps.readOnly === true) }),
  );
  // What this node tells the control plane, and what the control plane tells it: the admin socket only.
  app.get('/v1/candidates', { write: true }, async (req) => heavy.run(req, () => agent.candidateReport()));
  app.put('/v1/candidates', { write: true, bodyLimit: 256 * 1024, schema: { body: { type: 'object' } } }, async (req) => agent.setCandidates(req.body));
  app.post('/v1/reconcile', { write: true }, async () => agent.reconcile('requested'));
  return app;
}
