// A hostile (or merely busy) local user of the read-only admin socket, for test/torture/admin-flood.test.ts.
// Plain JavaScript without dependencies: the test copies it to a world-readable place and runs it with setpriv as
// an unprivileged uid in the socket's group. Bounded: at most `attempts` connections and `seconds` of time.
// Prints one JSON line with its figures, then exits.
//   node admin-flood-client.mjs '{"path":"/…/read.sock","mode":"half","attempts":3000,"seconds":10,"inflight":400}'
// Modes:
//   half       slowloris: connections that send half a header and hold it; each one that ends is replaced at
//              once (so refusals turn into a reconnect storm)
//   keepalive  one request per connection, then the connection stays idle (keep-alive); replaced when closed
//   diagnose   `inflight` loops of GET /v1/diagnose (each runs pings on the node)
//   status     one loop of GET /v1/status every 250 ms, each retried up to 3 times (a well-behaved member)
/* global process, setTimeout, setImmediate */
import net from 'node:net';
import http from 'node:http';

const o = JSON.parse(process.argv[2]);
const t0 = Date.now();
const end = t0 + o.seconds * 1000;
const f = { mode: o.mode, attempted: 0, connected: 0, refused503: 0, timedOut408: 0, otherAnswers: 0, dropped: 0, closedLater: 0, heldAtEnd: 0, connectErrors: {} };
const open = new Set();

function finish() {
  f.heldAtEnd = open.size;
  for (const s of open) s.destroy();
  f.seconds = (Date.now() - t0) / 1000;
  process.stdout.write(JSON.stringify(f) + '\n');
  process.exit(0);
}

function connection(send) {
  if (f.attempted >= o.attempts || Date.now() >= end) return;
  f.attempted++;
  const s = net.connect(o.path);
  let data = '';
  let connectedAt = 0;
  s.on('connect', () => {
    f.connected++;
    connectedAt = Date.now();
    open.add(s);
    s.write(send);
  });
  s.on('data', (d) => {
    data += d;
  });
  s.on('error', (e) => {
    if (!connectedAt) f.connectErrors[e.code] = (f.connectErrors[e.code] || 0) + 1;
  });
  s.on('close', () => {
    open.delete(s);
    if (connectedAt) {
      const first = data.split('\r\n')[0];
      if (first.startsWith('HTTP/1.1 503')) f.refused503++;
      else if (first.startsWith('HTTP/1.1 408')) f.timedOut408++;
      else if (first) f.otherAnswers++;
      else if (Date.now() - connectedAt < 1000) f.dropped++;
      else f.closedLater++;
    }
    // Replace it: a reconnect storm while refused, a steady slowloris while admitted. A connect error
    // (backlog full) waits a little, like a client would.
    if (connectedAt) setImmediate(() => connection(send));
    else setTimeout(() => connection(send), 20);
  });
}

function get(path) {
  return new Promise((resolve) => {
    const t = Date.now();
    const req = http.get({ socketPath: o.path, path, agent: false, timeout: 10000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, ms: Date.now() - t }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: e.code || e.message, ms: Date.now() - t }));
  });
}

/** Requests in a loop; with `tries` > 1 a failed one (connect error, 503) is retried after 100 ms, as the CLI's user would. */
async function loop(path, pauseMs, tries = 1) {
  while (Date.now() < end && f.attempted < o.attempts) {
    f.attempted++;
    const t = Date.now();
    let r;
    for (let i = 0; i < tries; i++) {
      if (i) await new Promise((res) => setTimeout(res, 100));
      r = await get(path);
      if (r.status === 200) {
        if (i === 0) f.okFirstTry = (f.okFirstTry || 0) + 1;
        break;
      }
      const why = r.status === 503 ? 'busy' : r.status ? `http${r.status}` : `error:${r.body}`;
      f[`try:${why}`] = (f[`try:${why}`] || 0) + 1;
    }
    const key = r.status === 200 ? 'ok' : r.status === 503 ? 'busy' : r.status ? `http${r.status}` : `error:${r.body}`;
    f[key] = (f[key] || 0) + 1;
    f.maxMs = Math.max(f.maxMs || 0, Date.now() - t);
    if (pauseMs) await new Promise((res) => setTimeout(res, pauseMs));
  }
}

setTimeout(finish, o.seconds * 1000 + 200);
if (o.mode === 'half') {
  for (let i = 0; i < o.inflight; i++) connection('GET /v1/status HTTP/1.1\r\nHost: x\r\n');
} else if (o.mode === 'keepalive') {
  for (let i = 0; i < o.inflight; i++) connection('GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n');
} else if (o.mode === 'diagnose') {
  for (let i = 0; i < o.inflight; i++) void loop(`/v1/diagnose?network=${encodeURIComponent(o.network)}`, 0);
} else if (o.mode === 'status') {
  void loop('/v1/status', 250, 3);
}
