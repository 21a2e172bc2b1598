/**
 * src/admin — the local admin API: a fastify app built apart from its unix-socket listener.
 *
 * Does: /v1 routes over the agent's core service, schema-validated and size-limited bodies, errors with codes,
 * read-only mode (for a group socket). Does not: bind sockets (listen.ts does), hold state, or return secrets.
 */
import { createRequire } from 'node:module';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Agent } from '../agent/agent.ts';
import { CODES, httpStatus } from '../codes.ts';
import { ZmeshError } from '../errors.ts';
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
  /** 'fastify': fastify's compilers, built when the app starts (its default); tests compare it with the lazy ones. */
  schemaCompilers?: 'lazy' | 'fastify';
}

/** A follow stream whose reader has fallen this far behind is closed (a client that never reads). */
export const FOLLOW_BACKLOG_BYTES = 1024 * 1024;

/**
 * Requests that run commands or call the engine, at most `max` at once and `queue` waiting; more are refused
 * with 503 E_BUSY. A request whose client left while it waited is dropped when its turn comes.
 */
export class RequestGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(
    readonly max: number,
    readonly queue: number,
  ) {}
  async run<T>(req: FastifyRequest | null, fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) {
      if (this.waiting.length >= this.queue) {
        throw new ZmeshError('E_BUSY', `too many requests that run commands at once on this socket (${this.running} running, ${this.waiting.length} waiting)`, {
          kind: 'retryable',
          hint: 'retry in a moment',
        });
      }
      await new Promise<void>((r) => this.waiting.push(r));
    } else this.running++;
    try {
      if (req && (req.raw.destroyed || req.raw.socket?.destroyed)) throw new ZmeshError('E_REQUEST', 'the client went away', { hint: '' });
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

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

/** An error's HTTP status is its code's in the registry (src/codes.ts, docs/errors.md). */
function sendError(reply: FastifyReply, e: ZmeshError) {
  if (e.code === 'E_BUSY') reply.header('retry-after', '1');
  return reply.code(httpStatus(e.code, e.kind)).send({ error: e.toJSON() });
}

/** The error body for an error fastify raised (not a ZmeshError), in the same shape as ours (kind from the registry). */
function frameworkError(code: 'E_TOO_LARGE' | 'E_REQUEST' | 'E_INTERNAL', message: string) {
  return { error: { code, kind: CODES[code].kind, message, problems: [] } };
}

type Compilers = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type BuildValidator = NonNullable<Compilers['buildValidator']>;
type BuildSerializer = NonNullable<Compilers['buildSerializer']>;
type Validate = ((data: unknown, ctx?: unknown) => unknown) & { errors?: unknown; schemaEnv?: unknown };

/** Fastify's own compilers, required from where fastify resolves them (its dependencies, not ours). */
const fromFastify = (name: string) => createRequire(createRequire(import.meta.url).resolve('fastify'))(name) as () => unknown;

/**
 * Fastify's own validator compiler (@fastify/ajv-compiler, with the options fastify passes), but loaded, built and
 * run on the first request a schema applies to, not when the app starts. Ajv and the compilation of the routes'
 * schemas were ~95 ms of the ~600 ms of CPU an agent spends before its socket answers, and both sockets paid them;
 * most routes of most agents never see a request with a body or a query. Same compiler, same options: the same
 * validation (test/unit/admin-lazy-schemas.test.ts). A custom compiler also makes fastify leave header schemas as
 * written (not lower-cased): no route here has one, and buildAdminApp refuses a route that brings one.
 */
export const lazyValidators: BuildValidator = (externalSchemas, options) => {
  let build: ((def: unknown) => Validate) | null = null;
  return ((def: unknown) => {
    let fn: Validate | null = null;
    // fastify hands an Ajv function (one with a schemaEnv) the request as the parent of the value, so that Ajv can
    // coerce a root value in place: the lazy one says it is one and passes that on.
    const lazy: Validate = (data, ctx) => {
      build ??= (fromFastify('@fastify/ajv-compiler')() as BuildValidator)(externalSchemas, options) as unknown as (def: unknown) => Validate;
      fn ??= build(def);
      const r = ctx === undefined ? fn(data) : fn(data, ctx);
      lazy.errors = fn.errors;
      return r;
    };
    lazy.schemaEnv = true;
    return lazy;
  }) as ReturnType<BuildValidator>;
};

/** The same for response serializers (none of our routes has a response schema: the compiler is never loaded). */
export const lazySerializers: BuildSerializer = (externalSchemas, options) => {
  let build: ((def: unknown) => (data: unknown) => string) | null = null;
  return ((def: unknown) => {
    let fn: ((data: unknown) => string) | null = null;
    return (data: unknown) => {
      build ??= (fromFastify('@fastify/fast-json-stringify-compiler')() as BuildSerializer)(externalSchemas, options) as unknown as (def: unknown) => (data: unknown) => string;
      return (fn ??= build(def))(data);
    };
  }) as ReturnType<BuildSerializer>;
};

export function buildAdminApp(deps: AdminDeps): FastifyInstance {
  const limits = deps.limits ?? (deps.readOnly ? DEFAULT_READ : DEFAULT_ADMIN);
  const heavy = new RequestGate(limits.heavyConcurrent, limits.heavyQueue);
  const app = Fastify({
    logger: false,
    bodyLimit: deps.bodyLimit ?? limits.bodyLimit,
    // Timeouts (node checks them every checkIntervalMs, on unix sockets too: test/integration/admin-socket.test.ts):
    // a silent or half-sent request gets 408 after headersTimeoutMs, a slow body after requestTimeoutMs, an idle
    // keep-alive connection is closed after keepAliveTimeoutMs, and (read-only socket) any connection with no
    // traffic for idleTimeoutMs.
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
      maxHeaderSize: 16 * 1024,
    },
    // On close: the read-only socket drops every connection; the admin socket lets requests in flight finish.
    forceCloseConnections: deps.readOnly ? true : 'idle',
    routerOptions: { maxParamLength: 256 },
    ...(deps.schemaCompilers === 'fastify' ? {} : { schemaController: { compilersFactory: { buildValidator: lazyValidators, buildSerializer: lazySerializers } } }),
    // Errors the router raises before any route (bad URL, over-long parameter) get our coded shape too; an
    // over-long URL parameter is E_TOO_LARGE with 414 (URI too long) rather than the code's 413.
    frameworkErrors: (err, _req, reply) => {
      const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
      (reply as FastifyReply).code(tooLong ? 414 : httpStatus('E_REQUEST', 'invalid')).send(frameworkError(tooLong ? 'E_TOO_LARGE' : 'E_REQUEST', err.message.slice(0, 300)));
    },
  });
  const { agent } = deps;
  app.addHook('onRoute', (route) => {
    // Header schemas are not lower-cased under a custom compiler (lazyValidators): none here, and none slips in.
    if (route.schema?.headers !== undefined) throw new Error(`admin route ${route.method} ${route.url}: header schemas are not supported (see lazyValidators)`);
  });

  // Errors fastify answers by itself (router limits, bad URLs) get the same coded shape as ours.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string') return payload;
    let body: { error?: unknown; code?: string; message?: string };
    try {
      body = JSON.parse(payload);
    } catch {
      return payload;
    }
    if (body && typeof body.error === 'object' && body.error !== null) return payload;
    reply.header('content-type', 'application/json; charset=utf-8');
    const code = reply.statusCode === 414 ? 'E_TOO_LARGE' : reply.statusCode >= 500 ? 'E_INTERNAL' : 'E_REQUEST';
    return JSON.stringify(frameworkError(code, String(body?.message ?? 'bad request')));
  });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof ZmeshError) return sendError(reply, err);
    const fe = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (fe.validation) {
      return sendError(reply, new ZmeshError('E_REQUEST', `bad request: ${fe.message}`, { hint: 'see docs/admin-api.md for the request shape' }));
    }
    if (fe.statusCode === 413) return reply.code(httpStatus('E_TOO_LARGE', 'invalid')).send(frameworkError('E_TOO_LARGE', fe.message));
    // Other 4xx fastify answers (415 for another content type, …) keep their status, with our code.
    if (fe.statusCode && fe.statusCode < 500) return reply.code(fe.statusCode).send(frameworkError('E_REQUEST', fe.message));
    return reply.code(httpStatus('E_INTERNAL', 'internal')).send(frameworkError('E_INTERNAL', fe.message));
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new ZmeshError('E_NOT_FOUND', `no route ${req.method} ${req.url}`, { hint: 'routes are under /v1; see docs/admin-api.md' })),
  );

  const writable = () => {
    if (deps.readOnly) throw new ZmeshError('E_READ_ONLY', 'this socket is read-only', { hint: 'use the admin socket (root) for changes' });
  };

  app.get('/v1/status', async () => agent.status());
  app.get('/v1/networks', async () => ({ networks: agent.networks() }));
  app.get<{ Params: { name: string } }>('/v1/networks/:name', async (req) => heavy.run(req, () => agent.network(req.params.name)));
  // The names the network's resolver serves on this node (docs/dns.md). Read-only, no command.
  app.get<{ Params: { name: string } }>('/v1/networks/:name/dns', async (req) => agent.dns(req.params.name));
  app.get<{ Querystring: { network: string; peer?: string } }>(
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
    async (req) => heavy.run(req, () => agent.diagnose(req.query.network, req.query.peer)),
  );
  // Network policy (docs/policy.md): which rule allows or drops a flow, and the rules' counters.
  app.get<{ Querystring: { network: string; from: string; to: string; port?: string } }>(
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
    async (req) => heavy.run(req, async () => agent.policyCheck(req.query.network, req.query.from, req.query.to, req.query.port)),
  );
  app.get<{ Querystring: { network: string } }>(
    '/v1/policy',
    { schema: { querystring: { type: 'object', required: ['network'], additionalProperties: false, properties: { network: { type: 'string', minLength: 1, maxLength: 200 } } } } },
    async (req) => heavy.run(req, () => agent.policy(req.query.network)),
  );
  app.get<{ Querystring: { after?: number; limit?: number; follow?: boolean } }>(
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
    async (req, reply) => {
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
        else if (!res.destroyed) res.write(line);
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
  app.get<{ Params: { name: string }; Querystring: { follow?: boolean; tail?: number } }>(
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
    async (req, reply) => {
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

  app.post<{ Body: { signed: unknown; part: unknown } }>(
    '/v1/blueprints',
    {
      schema: {
        body: {
          type: 'object',
          required: ['signed', 'part'],
          additionalProperties: false,
          properties: { signed: { type: 'object' }, part: { type: 'object' } },
        },
      },
    },
    async (req, reply) => {
      writable();
      const result = await agent.submit(req.body.signed, req.body.part);
      return reply.code(result.networks.every((n) => n.ok) && result.runtime?.ok !== false ? 200 : 202).send(result);
    },
  );
  app.delete<{ Params: { tenant: string; name: string } }>('/v1/blueprints/:tenant/:name', async (req) => {
    writable();
    return agent.remove(req.params.tenant, req.params.name);
  });
  // Direct paths between hidden nodes (docs/paths.md).
  app.get<{ Querystring: { network?: string } }>(
    '/v1/paths',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { network: { type: 'string', minLength: 1, maxLength: 200 } } } } },
    // The read-only socket does not see other nodes' LAN and post-NAT addresses (GET /v1/candidates is refused there too).
    async (req) => ({ paths: agent.pathViews(req.query.network, deps.readOnly === true) }),
  );
  // What this node tells the control plane, and what the control plane tells it: the admin socket only.
  app.get('/v1/candidates', async (req) => {
    writable();
    return heavy.run(req, () => agent.candidateReport());
  });
  app.put('/v1/candidates', { bodyLimit: 256 * 1024, schema: { body: { type: 'object' } } }, async (req) => {
    writable();
    return agent.setCandidates(req.body);
  });
  app.post('/v1/reconcile', async () => {
    writable();
    return agent.reconcile('requested');
  });
  return app;
}
