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
  /** Bodies larger than this are refused (bytes); default: the app's (never more on a read-only app). */
  bodyLimit?: number;
  /** A write: a read-only app refuses it (403 E_READ_ONLY) before it reads the body. */
  write?: boolean;
}

interface Route {
  method: Method;
  pattern: string;
  /** Static segments as they are; a parameter as null, its name in `names`. */
  segments: (string | null)[];
  names: string[];
  handler: Handler;
  bodyLimit?: number;
  write: boolean;
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
  /** Refuse every route declared a write. */
  readOnly?: boolean;
  /** Requests with a body read, parsed and handled at once (default 4) and waiting (default 64); more get 503
   *  E_BUSY. Node hands over pipelined requests at once: without this, one connection could have every body it
   *  pipelines parsed and held while the first is handled. */
  bodyConcurrent?: number;
  bodyQueue?: number;
}

/**
 * At most `max` requests at once and `queue` waiting; more are refused with 503 E_BUSY. A request whose client left
 * while it waited is dropped when its turn comes.
 */
export class RequestGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(
    readonly max: number,
    readonly queue: number,
    readonly what = 'requests that run commands',
  ) {}
  async run<T>(req: { raw: IncomingMessage } | null, fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) {
      if (this.waiting.length >= this.queue) {
        throw new ZmeshError('E_BUSY', `too many ${this.what} at once on this socket (${this.running} running, ${this.waiting.length} waiting)`, {
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
    if (had === undefined) out[k] = v;
    else if (Array.isArray(had)) had.push(v);
    else out[k] = [had, v];
  }
  return out;
}

// A key that is `__proto__` or `constructor`, letters possibly written as \u escapes (secure-json-parse's test).
const PROTO_KEY = /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"\s*:/;
const CONSTRUCTOR_KEY = /"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"\s*:/;

/** JSON.parse that refuses what could poison a prototype (a `__proto__` key, or `constructor.prototype`), as
 *  fastify's parser (secure-json-parse) does: a plain parse, then a walk of the result only when the text has a
 *  key that could be one. */
export function parseJsonSecure(text: string): unknown {
  const value: unknown = JSON.parse(text);
  const proto = PROTO_KEY.test(text);
  const ctor = CONSTRUCTOR_KEY.test(text);
  if (!proto && !ctor) return value;
  const todo: unknown[] = [value];
  while (todo.length) {
    const node = todo.pop();
    if (node === null || typeof node !== 'object') continue;
    if (proto && Object.prototype.hasOwnProperty.call(node, '__proto__')) throw new SyntaxError('forbidden prototype property');
    const c = ctor && Object.prototype.hasOwnProperty.call(node, 'constructor') ? (node as Record<string, unknown>).constructor : undefined;
    if (c !== null && typeof c === 'object' && Object.prototype.hasOwnProperty.call(c, 'prototype')) throw new SyntaxError('forbidden prototype property');
    for (const k in node) todo.push((node as Record<string, unknown>)[k]);
  }
  return value;
}

/**
 * Whether a request's body is parsed, as fastify decides: POST, PUT and PATCH always when they name a content
 * type, and without one when they carry a body (then 415); DELETE and OPTIONS only when they name a content type
 * and carry a length or a transfer encoding; other methods (GET, HEAD) never.
 */
export function bodyToParse(method: string, headers: IncomingMessage['headers']): boolean {
  const typed = headers['content-type'] !== undefined;
  const te = headers['transfer-encoding'] !== undefined;
  if (method === 'POST' || method === 'PUT' || method === 'PATCH') return typed || te || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
  if (method === 'DELETE' || method === 'OPTIONS') return typed && (te || headers['content-length'] !== undefined);
  return false;
}

/** Reads the body the content type names, bounded by `limit` (bodyToParse said there is one to parse). */
function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const headers = req.headers;
  const type = (headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (!type) return Promise.reject(new HttpError(415, 'E_REQUEST', 'Unsupported Media Type'));
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

/** What a reply needs of its app: whether it is stopping, and the responses that stay open (streams). */
interface ReplyHost {
  readonly closing: boolean;
  /** Open responses and how each is ended when the app closes. */
  readonly streams: Map<ServerResponse, () => void>;
}

export class Reply {
  statusCode = 200;
  private readonly headers: Record<string, string> = {};
  private hijacked = false;
  /** send() ran (a piped stream sends its head only with its first bytes). */
  private sent = false;

  constructor(
    readonly raw: ServerResponse,
    private readonly head: boolean,
    private readonly host: ReplyHost,
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

  /** The handler writes the response itself (a follow stream): the app ends it when it closes. */
  hijack(): void {
    this.hijacked = true;
    this.keepOpen(() => this.raw.end());
  }

  /** A response that stays open is ended when the app closes (else close() would wait for it forever). */
  private keepOpen(end: () => void): void {
    const res = this.raw;
    this.host.streams.set(res, end);
    res.on('close', () => this.host.streams.delete(res));
  }

  get taken(): boolean {
    return this.hijacked || this.sent || this.raw.headersSent || this.raw.writableEnded;
  }

  /** Sends a value as JSON, a string as text, a stream piped with backpressure. */
  send(payload: unknown): void {
    if (this.taken) return;
    const res = this.raw;
    // Stopping: the answer ends its connection (a keep-alive would hold the stop up).
    if (this.host.closing) this.headers.connection = 'close';
    if (payload !== null && typeof payload === 'object' && typeof (payload as Readable).pipe === 'function') {
      this.sent = true;
      const stream = payload as Readable;
      if (this.head) {
        stream.destroy();
        res.writeHead(this.statusCode, this.headers);
        res.end();
        return;
      }
      // The head goes with the first bytes: a stream that fails before any still gets a coded 500.
      res.statusCode = this.statusCode;
      for (const [k, v] of Object.entries(this.headers)) res.setHeader(k, v);
      // On close: the source stops first, then the response ends (no write after its end).
      this.keepOpen(() => {
        stream.unpipe(res);
        stream.destroy();
        res.end();
      });
      stream.on('error', (e) => {
        if (res.headersSent) return void res.destroy();
        res.statusCode = httpStatus('E_INTERNAL', 'internal');
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.end(JSON.stringify(frameworkError('E_INTERNAL', e.message)));
      });
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
      // A value JSON cannot write throws here, before anything is sent: the caller answers 500.
      body = Buffer.from(JSON.stringify(payload));
      this.headers['content-type'] ??= 'application/json; charset=utf-8';
    }
    this.sent = true;
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

export class HttpApp implements ReplyHost {
  readonly server: Server;
  private readonly routes: Route[] = [];
  closing = false;
  private listening = false;
  /** Responses that stay open (follow streams, piped logs): ended on close. */
  readonly streams = new Map<ServerResponse, () => void>();
  private readonly bodies: RequestGate;

  constructor(readonly opts: ServerOptions) {
    this.server = createServer(
      {
        headersTimeout: opts.headersTimeoutMs,
        requestTimeout: opts.requestTimeoutMs,
        keepAliveTimeout: opts.keepAliveTimeoutMs,
        connectionsCheckingInterval: opts.checkIntervalMs,
        maxHeaderSize: opts.maxHeaderSize,
      },
      (req, res) => this.dispatch(req, res),
    );
    this.server.keepAliveTimeout = opts.keepAliveTimeoutMs;
    this.server.requestTimeout = opts.requestTimeoutMs;
    this.server.setTimeout(opts.idleTimeoutMs);
    this.server.on('clientError', clientError);
    this.bodies = new RequestGate(opts.bodyConcurrent ?? 4, opts.bodyQueue ?? 64, 'requests with a body');
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
      // A read-only app never reads more than its own limit, whatever a route allows.
      bodyLimit: options.bodyLimit !== undefined && this.opts.readOnly ? Math.min(options.bodyLimit, this.opts.bodyLimit) : options.bodyLimit,
      write: options.write === true,
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

  /** Handles a request; whatever escapes the handling (an answer that cannot be written) ends the connection,
   *  never the agent (an unhandled rejection would). */
  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    this.handle(req, res).catch(() => res.destroy());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const reply = new Reply(res, method === 'HEAD', this);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    try {
      // Reply.send closes the connection of every answer while stopping.
      if (this.closing) {
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
      // A write on a read-only socket is refused before its body is read.
      if (route.write && this.opts.readOnly) throw new ZmeshError('E_READ_ONLY', 'this socket is read-only', { hint: 'use the admin socket (root) for changes' });
      const query = parseQuery(q < 0 ? '' : url.slice(q + 1));
      const run = async (body: unknown) => {
        for (const [validate, data, dataVar] of [
          [route.query, query, 'querystring'],
          [route.body, body, 'body'],
        ] as const) {
          const problem = validate?.(data, dataVar);
          if (problem) throw new ZmeshError('E_REQUEST', `bad request: ${problem}`, { hint: 'see docs/admin-api.md for the request shape' });
        }
        reply.send(await route.handler({ method, url, params, query, body, raw: req } as never, reply));
      };
      if (!bodyToParse(method, req.headers)) return await run(undefined);
      await this.bodies.run({ raw: req }, async () => run(await readBody(req, route.bodyLimit ?? this.opts.bodyLimit)));
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
      // Streams never end by themselves: they end now (a follow reader sees its stream end).
      for (const end of this.streams.values()) end();
      this.streams.clear();
      if (this.opts.forceCloseConnections === true) this.server.closeAllConnections();
      else this.server.closeIdleConnections();
    });
  }

  /** A request without a socket (tests): light-my-request, as fastify's inject; loaded only when called. */
  async inject(opts: InjectOptions): Promise<InjectResponse> {
    const inject = createRequire(import.meta.url)('light-my-request') as (dispatch: (req: IncomingMessage, res: ServerResponse) => void, o: InjectOptions) => Promise<InjectResponse>;
    return inject((req, res) => this.dispatch(req, res), opts);
  }
}

/** A request node could not parse or that took too long: a coded answer, then the connection is closed. */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // A response already under way on this connection (a stream) is not written into: the connection just ends.
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (current?.headersSent) return void socket.destroy(err);
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
