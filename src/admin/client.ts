// The admin API's client: HTTP over the agent's unix socket, with clear messages when the socket is missing or
// access is denied. Which socket to use is the caller's (the CLI resolves it from its flags and config).
import { request } from 'node:http';
import { ZmeshError } from '../errors.ts';

export interface ApiError {
  code: string;
  kind?: string;
  message: string;
  problems?: { code: string; path: string; message: string; hint: string }[];
}

function connectError(socket: string, e: NodeJS.ErrnoException): ZmeshError {
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
    return new ZmeshError('E_SOCKET_MISSING', `no agent is listening on ${socket}`, {
      kind: 'retryable',
      hint: 'start the agent (systemctl start zmesh-agent, or zmesh agent --config FILE) or pass --socket PATH',
      cause: e,
    });
  }
  if (e.code === 'EACCES' || e.code === 'EPERM') {
    return new ZmeshError('E_SOCKET_DENIED', `permission denied on ${socket}`, {
      kind: 'invalid',
      hint: 'the admin socket is for root; run as root, or use the read-only socket if one is configured',
      cause: e,
    });
  }
  return new ZmeshError('E_SOCKET', `cannot reach the agent on ${socket}: ${e.message}`, { kind: 'retryable', cause: e });
}

/** One request; resolves with the parsed JSON (or text) body, rejects with a ZmeshError for API errors. */
export function call<T = unknown>(socket: string, method: string, path: string, body?: unknown, timeoutMs = 120000): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const isJson = (res.headers['content-type'] ?? '').includes('json');
          const data = isJson && text ? JSON.parse(text) : text;
          if ((res.statusCode ?? 500) >= 400) {
            // zmesh's error body is {error: {code, kind, message, problems}}; anything else (a proxy, the web
            // framework's own 404 {error: "Not Found", message}) is E_HTTP with what it said.
            const body = data?.error;
            const zmesh = body !== null && typeof body === 'object' && typeof body.code === 'string' && typeof body.message === 'string';
            const said = typeof data?.message === 'string' ? `: ${String(data.message).slice(0, 200)}` : '';
            const err: ApiError = zmesh ? body : { code: 'E_HTTP', message: `HTTP ${res.statusCode}${said}` };
            const problems = zmesh && Array.isArray(err.problems) && err.problems.length ? err.problems : undefined;
            reject(
              new ZmeshError(err.code, err.message, {
                kind: err.kind === 'invalid' || err.kind === 'retryable' ? err.kind : 'internal',
                problems,
                hint: problems?.[0]?.hint,
                path: problems?.[0]?.path,
                received: zmesh,
              }),
            );
          } else resolve(data as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the agent within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(e.code ? connectError(socket, e) : e));
    if (payload) req.write(payload);
    req.end();
  });
}

/** Streams newline-delimited JSON objects until the connection ends. */
export function stream(socket: string, path: string, onItem: (item: unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'GET', path }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line) onItem(JSON.parse(line));
        }
      });
      res.on('end', () => resolve());
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(e.code ? connectError(socket, e) : e));
    req.end();
  });
}
