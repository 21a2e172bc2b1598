/**
 * src/admin — the local admin API: a fastify app built apart from its unix-socket listener.
 *
 * Does: /v1 routes over the agent's core service, schema-validated and size-limited bodies, errors with codes,
 * read-only mode (for a group socket). Does not: bind sockets (listen.ts does), hold state, or return secrets.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Agent } from '../agent/agent.ts';
import { ZmeshError } from '../errors.ts';

export interface AdminDeps {
  agent: Agent;
  /** Refuse every write route (a read-only socket). */
  readOnly?: boolean;
  /** Bodies larger than this are refused (bytes); default 4 MiB. */
  bodyLimit?: number;
}

function statusFor(e: ZmeshError): number {
  if (e.code === 'E_NOT_FOUND') return 404;
  if (e.code === 'E_AMBIGUOUS' || e.code === 'E_REPLAY') return 409;
  if (e.code === 'E_READ_ONLY') return 403;
  if (e.kind === 'invalid') return 400;
  if (e.kind === 'retryable') return 503;
  return 500;
}

function sendError(reply: FastifyReply, e: ZmeshError) {
  return reply.code(statusFor(e)).send({ error: e.toJSON() });
}

export function buildAdminApp(deps: AdminDeps): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: deps.bodyLimit ?? 4 * 1024 * 1024,
    routerOptions: { maxParamLength: 256 },
    // Errors the router raises before any route (bad URL, over-long parameter) get our coded shape too.
    frameworkErrors: (err, _req, reply) => {
      const code = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'E_TOO_LARGE' : 'E_REQUEST';
      (reply as FastifyReply).code(err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400).send({ error: { code, kind: 'invalid', message: err.message.slice(0, 300), problems: [] } });
    },
  });
  const { agent } = deps;

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
    return JSON.stringify({ error: { code, kind: reply.statusCode >= 500 ? 'internal' : 'invalid', message: String(body?.message ?? 'bad request'), problems: [] } });
  });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof ZmeshError) return sendError(reply, err);
    const fe = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (fe.validation) {
      return sendError(reply, new ZmeshError('E_REQUEST', `bad request: ${fe.message}`, { hint: 'see docs/admin-api.md for the request shape' }));
    }
    if (fe.statusCode === 413) return reply.code(413).send({ error: { code: 'E_TOO_LARGE', kind: 'invalid', message: fe.message, problems: [] } });
    if (fe.statusCode && fe.statusCode < 500) {
      return reply.code(fe.statusCode).send({ error: { code: 'E_REQUEST', kind: 'invalid', message: fe.message, problems: [] } });
    }
    return reply.code(500).send({ error: { code: 'E_INTERNAL', kind: 'internal', message: fe.message, problems: [] } });
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new ZmeshError('E_NOT_FOUND', `no route ${req.method} ${req.url}`, { hint: 'routes are under /v1; see docs/admin-api.md' })),
  );

  const writable = () => {
    if (deps.readOnly) throw new ZmeshError('E_READ_ONLY', 'this socket is read-only', { hint: 'use the admin socket (root) for changes' });
  };

  app.get('/v1/status', async () => agent.status());
  app.get('/v1/networks', async () => ({ networks: agent.networks() }));
  app.get<{ Params: { name: string } }>('/v1/networks/:name', async (req) => agent.network(req.params.name));
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
    async (req) => agent.diagnose(req.query.network, req.query.peer),
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
      for (const e of agent.events(after, limit)) res.write(JSON.stringify(e) + '\n');
      const off = agent.onEvent((e) => res.write(JSON.stringify(e) + '\n'));
      const ping = setInterval(() => res.write('\n'), 15000);
      req.raw.on('close', () => {
        off();
        clearInterval(ping);
      });
    },
  );
  app.get('/v1/workloads', async () => ({ workloads: await agent.workloads() }));
  app.get('/v1/volumes', async () => ({ volumes: await agent.volumes() }));
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
      const stream = await agent.logs(req.params.name, { follow: req.query.follow ?? false, tail: req.query.tail });
      req.raw.on('close', () => stream.destroy());
      return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(stream);
    },
  );
  app.get('/v1/metrics', async (_req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return agent.metrics();
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
  app.post('/v1/reconcile', async () => {
    writable();
    return agent.reconcile('requested');
  });
  return app;
}
