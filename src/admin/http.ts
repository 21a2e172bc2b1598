/**
 * src/admin/http.ts — the small HTTP layer the admin API stands on, over node:http.
 *
 * Does: routes (static segments and `:param`s), the query string and JSON or text bodies (size-limited, prototype
 * poisoning refused), JSON Schema validation of the query and body (ajv, loaded on the first request a schema
 * applies to), replies (JSON, text, streams; HEAD for every GET), errors in the coded shape, the server's timeouts
 * and its close. Does not: know any route of the API (app.ts) or bind sockets (listen.ts).
 *
 * It replaced fastify (issue #18): fastify and pino, which it loads, were ~11 MiB of an idle agent's ~64 MiB and
 * ~120 ms of the CPU of its start (docs/benchmarks.md). Its answers are fastify's, request for request:
 * test/unit/admin-http.test.ts replays test/helpers/admin-requests.ts against the answers fastify 5 gave.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { CODES, httpStatus } from '../codes.ts';
import { ZmeshError } from '../errors.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface Request<Q = Record<string, unknown>, B = unknown, P = Record<string, string>> {
  method: string;
  url: string;
  params: P;
  query: Q;
  body: B;
  raw: IncomingMessage;
}

type Handler = (req: Request<never, never, never>, reply: Reply) => Promise<unknown>;

export interface RouteOptions {
  schema?: { querystring?: object; body?: object };
  /** Bodies larger than this are refused (bytes); default: the app's. */
  bodyLimit?: number;
}

interface Route {
  method: Method;
  pattern: string;
  /** Static segments as they are; a parameter as null, its name in `names`. */
  segments: (string | null)[];
  names: string[];
  handler: Handler;
  bodyLimit?: number;
  query?: Validator;
  body?: Validator;
}

export interface ServerOptions {
  bodyLimit: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** A connection with no traffic for this long is closed (0: never). */
  idleTimeoutMs: number;
  checkIntervalMs: number;
  /** On close: drop every connection (true), or let requests in flight finish ('idle'). */
  forceCloseConnections: true | 'idle';
  maxParamLength: number;
  maxHeaderSize: number;
}

/** The error body for an error of the HTTP layer (not a ZmeshError), in the same shape (kind from the registry). */
export function frameworkError(code: 'E_TOO_LARGE' | 'E_REQUEST' | 'E_INTERNAL' | 'E_STOPPING', message: string) {
  return { error: { code, kind: CODES[code].kind, message, problems: [] } };
}

/** An error the HTTP layer answers with its own status (413, 414, 415, 400 for a body or URL it cannot take). */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: 'E_TOO_LARGE' | 'E_REQUEST',
    message: string,
  ) {
    super(message);
  }
}

// ── validation ──────────────────────────────────────────────────────────────────────────────────────────────

type AjvValidate = ((data: unknown) => boolean) & { errors?: { instancePath?: string; message?: string }[] | null };
type Validator = (data: unknown, dataVar: 'querystring' | 'body') => string | null;

/** ajv, built on the first request a schema applies to, with the options fastify gave it (@fastify/ajv-compiler):
 *  coercion (an array of one value to the value too), defaults, additional properties removed, the first error only. */
let ajv: { compile(schema: object): AjvValidate } | null = null;
const ajvInstance = () => {
  if (ajv) return ajv;
  const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  ajv = new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: true, addUsedSchema: false, allErrors: false }) as unknown as { compile(schema: object): AjvValidate };
  return ajv;
};

/** A validator compiled on its first use; it answers with fastify's message for the first error, or null. */
function lazyValidator(schema: object): Validator {
  let fn: AjvValidate | null = null;
  return (data, dataVar) => {
    fn ??= ajvInstance().compile(schema);
    if (fn(data)) return null;
    return (fn.errors ?? []).map((e) => `${dataVar}${e.instancePath ?? ''} ${e.message ?? 'is not valid'}`).join(', ');
  };
}

// ── parsing ─────────────────────────────────────────────────────────────────────────────────────────────────

/** The query string as an object without a prototype; a name given more than once gets an array. */
export function parseQuery(search: string): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  for (const [k, v] of new URLSearchParams(search)) {
    const had = out[k];
    out[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
  }
  return out;
}

/** JSON.parse that refuses what could poison a prototype (a `__proto__` key, or `constructor.prototype`), as
 *  fastify's parser (secure-json-parse) does; the slower reviver runs only when the text could hold one. */
export function parseJsonSecure(text: string): unknown {
  if (!text.includes('__proto__') && !text.includes('constructor') && !text.includes('\\u')) return JSON.parse(text);
  return JSON.parse(text, function (key, value) {
    if (key === '__proto__') throw new SyntaxError('forbidden prototype property');
    if (key === 'constructor' && value !== null && typeof value === 'object' && Object.prototype.hasOwnProperty.call(value, 'prototype')) {
      throw new SyntaxError('forbidden prototype property');
    }
    return value;
  });
}

const BODYLESS = new Set(['GET', 'HEAD', 'TRACE']);

/** Reads the body the content type names, bounded by `limit`: undefined when there is none. */
function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const headers = req.headers;
  const hasBody = headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
  const type = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (!type) {
    if (!hasBody) return Promise.resolve(undefined);
    return Promise.reject(new HttpError(415, 'E_REQUEST', 'Unsupported Media Type'));
  }
  if (type !== 'application/json' && type !== 'text/plain') return Promise.reject(new HttpError(415, 'E_REQUEST', 'Unsupported Media Type'));
  const declared = Number(headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new HttpError(413, 'E_TOO_LARGE', 'Request body is too large'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        reject(new HttpError(413, 'E_TOO_LARGE', 'Request body is too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (over) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (type === 'text/plain') return resolve(text);
      if (text === '') return reject(new HttpError(400, 'E_REQUEST', "Body cannot be empty when content-type is set to 'application/json'"));
      try {
        resolve(parseJsonSecure(text));
      } catch {
        reject(new HttpError(400, 'E_REQUEST', "Body is not valid JSON but content-type is set to 'application/json'"));
      }
    });
  });
}

// ── replies ─────────────────────────────────────────────────────────────────────────────────────────────────

export class Reply {
  statusCode = 200;
  private readonly headers: Record<string, string> = {};
  private hijacked = false;

  constructor(
    readonly raw: ServerResponse,
    private readonly head: boolean,
  ) {}

  code(status: number): this {
    this.statusCode = status;
    return this;
  }

  header(name: string, value: string): this {
    this.headers[name.toLowerCase()] = value;
    return this;
  }

  type(contentType: string): this {
    return this.header('content-type', contentType);
  }

  /** The handler writes the response itself (a follow stream). */
  hijack(): void {
    this.hijacked = true;
  }

  get taken(): boolean {
    return this.hijacked || this.raw.headersSent || this.raw.writableEnded;
  }

  /** Sends a value as JSON, a string as text, a stream piped with backpressure. */
  send(payload: unknown): void {
    if (this.taken) return;
    const res = this.raw;
    if (payload !== null && typeof payload === 'object' && typeof (payload as Readable).pipe === 'function') {
      const stream = payload as Readable;
      res.writeHead(this.statusCode, this.headers);
      if (this.head) {
        stream.destroy();
        res.end();
        return;
      }
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      stream.pipe(res);
      return;
    }
    let body: Buffer;
    if (typeof payload === 'string') {
      this.headers['content-type'] ??= 'text/plain; charset=utf-8';
      body = Buffer.from(payload);
    } else if (Buffer.isBuffer(payload)) {
      this.headers['content-type'] ??= 'application/octet-stream';
      body = payload;
    } else if (payload === undefined) {
      body = Buffer.alloc(0);
    } else {
      this.headers['content-type'] ??= 'application/json; charset=utf-8';
      body = Buffer.from(JSON.stringify(payload));
    }
    this.headers['content-length'] = String(body.length);
    res.writeHead(this.statusCode, this.headers);
    res.end(this.head ? undefined : body);
  }
}

/** A ZmeshError's answer: its status from the registry (src/codes.ts), `retry-after` for E_BUSY. */
export function sendError(reply: Reply, e: ZmeshError): void {
  if (e.code === 'E_BUSY') reply.header('retry-after', '1');
  reply.code(httpStatus(e.code, e.kind)).send({ error: e.toJSON() });
}

// ── the app ─────────────────────────────────────────────────────────────────────────────────────────────────

export interface InjectOptions {
  method?: string;
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
}

export interface InjectResponse {
  statusCode: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
  payload: string;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export class HttpApp {
  readonly server: Server;
  private readonly routes: Route[] = [];
  private closing = false;
  private listening = false;

  constructor(readonly opts: ServerOptions) {
    this.server = createServer(
      {
        headersTimeout: opts.headersTimeoutMs,
        requestTimeout: opts.requestTimeoutMs,
        keepAliveTimeout: opts.keepAliveTimeoutMs,
        connectionsCheckingInterval: opts.checkIntervalMs,
        maxHeaderSize: opts.maxHeaderSize,
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.keepAliveTimeout = opts.keepAliveTimeoutMs;
    this.server.requestTimeout = opts.requestTimeoutMs;
    this.server.setTimeout(opts.idleTimeoutMs);
    this.server.on('clientError', clientError);
  }

  get(pattern: string, ...rest: [Handler] | [RouteOptions, Handler]): void {
    this.route('GET', pattern, ...rest);
  }
  post(pattern: string, ...rest: [Handler] | [RouteOptions, Handler]): void {
    this.route('POST', pattern, ...rest);
  }
  put(pattern: string, ...rest: [Handler] | [RouteOptions, Handler]): void {
    this.route('PUT', pattern, ...rest);
  }
  delete(pattern: string, ...rest: [Handler] | [RouteOptions, Handler]): void {
    this.route('DELETE', pattern, ...rest);
  }

  private route(method: Method, pattern: string, ...rest: [Handler] | [RouteOptions, Handler]): void {
    const [options, handler] = rest.length === 1 ? [{} as RouteOptions, rest[0]] : rest;
    const schema = options.schema ?? {};
    const extra = Object.keys(schema).filter((k) => k !== 'querystring' && k !== 'body');
    if (extra.length) throw new Error(`admin route ${method} ${pattern}: only querystring and body schemas are supported (not ${extra.join(', ')})`);
    const names: string[] = [];
    const segments = pattern
      .split('/')
      .slice(1)
      .map((s) => {
        if (!s.startsWith(':')) return s;
        names.push(s.slice(1));
        return null;
      });
    this.routes.push({
      method,
      pattern,
      segments,
      names,
      handler,
      bodyLimit: options.bodyLimit,
      query: schema.querystring ? lazyValidator(schema.querystring) : undefined,
      body: schema.body ? lazyValidator(schema.body) : undefined,
    });
  }

  /** The route for a method and decoded path segments, with its parameters; HEAD takes the GET route. */
  private match(method: string, segments: string[]): { route: Route; params: Record<string, string> } | null {
    const want = method === 'HEAD' ? 'GET' : method;
    for (const route of this.routes) {
      if (route.method !== want || route.segments.length !== segments.length) continue;
      const params: Record<string, string> = Object.create(null);
      let ok = true;
      let k = 0;
      for (let i = 0; i < segments.length && ok; i++) {
        const s = route.segments[i];
        if (s === null) params[route.names[k++]] = segments[i];
        else ok = s === segments[i];
      }
      if (ok) return { route, params };
    }
    return null;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const reply = new Reply(res, method === 'HEAD');
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    try {
      if (this.closing) {
        res.setHeader('connection', 'close');
        throw new ZmeshError('E_STOPPING', 'the agent is stopping', { kind: 'retryable', hint: 'retry once the agent runs again' });
      }
      const raw = path.split('/').slice(1);
      if (raw.some((s) => s.length > this.opts.maxParamLength)) {
        return reply.code(414).send(frameworkError('E_TOO_LARGE', `'${path}' is exceeding the max param length`.slice(0, 300)));
      }
      let segments: string[];
      try {
        segments = raw.map((s) => (s.includes('%') ? decodeURIComponent(s) : s));
      } catch {
        return reply.code(400).send(frameworkError('E_REQUEST', `'${path}' is not a valid url component`.slice(0, 300)));
      }
      const found = path.startsWith('/') ? this.match(method, segments) : null;
      if (!found) throw new ZmeshError('E_NOT_FOUND', `no route ${method} ${url}`, { hint: 'routes are under /v1; see docs/admin-api.md' });
      const { route, params } = found;
      const query = parseQuery(q < 0 ? '' : url.slice(q + 1));
      const body = BODYLESS.has(method) ? undefined : await readBody(req, route.bodyLimit ?? this.opts.bodyLimit);
      for (const [validate, data, dataVar] of [
        [route.query, query, 'querystring'],
        [route.body, body, 'body'],
      ] as const) {
        const problem = validate?.(data, dataVar);
        if (problem) throw new ZmeshError('E_REQUEST', `bad request: ${problem}`, { hint: 'see docs/admin-api.md for the request shape' });
      }
      const out = await route.handler({ method, url, params, query, body, raw: req } as never, reply);
      reply.send(out);
    } catch (e) {
      if (reply.taken) {
        if (!res.writableEnded) res.destroy();
        return;
      }
      if (e instanceof ZmeshError) return sendError(reply, e);
      if (e instanceof HttpError) {
        if (e.status === 413) res.setHeader('connection', 'close');
        return reply.code(e.status).send(frameworkError(e.code, e.message));
      }
      reply.code(httpStatus('E_INTERNAL', 'internal')).send(frameworkError('E_INTERNAL', e instanceof Error ? e.message : String(e)));
    }
  }

  /** For symmetry with a framework's app: routes are ready as they are added. */
  async ready(): Promise<void> {}

  listen(opts: { path: string; backlog?: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen({ path: opts.path, backlog: opts.backlog }, () => {
        this.server.off('error', onError);
        this.listening = true;
        resolve();
      });
    });
  }

  /** Stops listening. Read-only socket: every connection is dropped; admin socket: idle connections are closed
   *  and requests in flight finish (a new request on an open connection is answered 503 E_STOPPING). */
  close(): Promise<void> {
    this.closing = true;
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      if (this.opts.forceCloseConnections === true) this.server.closeAllConnections();
      else this.server.closeIdleConnections();
    });
  }

  /** A request without a socket (tests): light-my-request, as fastify's inject; loaded only when called. */
  async inject(opts: InjectOptions): Promise<InjectResponse> {
    const inject = createRequire(import.meta.url)('light-my-request') as (dispatch: (req: IncomingMessage, res: ServerResponse) => void, o: InjectOptions) => Promise<InjectResponse>;
    return inject((req, res) => void this.handle(req, res), opts);
  }
}

/** A request node could not parse or that took too long: a coded answer, then the connection is closed. */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'E_REQUEST' as const, 'the request did not arrive in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'E_TOO_LARGE' as const, 'the request headers are too large']
        : [400, 'E_REQUEST' as const, 'the request is not valid HTTP'];
  const body = JSON.stringify(frameworkError(code, message));
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy(err);
}
