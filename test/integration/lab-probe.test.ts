// The lab matrix's prober (labs/probe.py) against services on loopback, as root (raw ICMP sockets): ping in both
// families, TCP identity, refused and silent ports, and DNS (A + AAAA, NXDOMAIN, no answer, no server) from a
// small resolver of our own. Exact output lines, parsed by parseProbe as the matrix does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket as NetSocket } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseProbe, probeArgv } from '../../labs/matrix.ts';
import { ECHO_PORT } from '../../labs/layout.ts';

const run = promisify(execFile);

/** A DNS answer for a query: A/AAAA records from `zone`, NXDOMAIN for names not in it. */
function answer(q: Buffer, zone: Map<string, { a: string[]; aaaa: string[] }>): Buffer {
  let i = 12;
  const labels: string[] = [];
  while (q[i] !== 0) {
    labels.push(q.subarray(i + 1, i + 1 + q[i]).toString('ascii'));
    i += 1 + q[i];
  }
  const qtype = q.readUInt16BE(i + 1);
  const question = q.subarray(12, i + 5);
  const rec = zone.get(labels.join('.'));
  const rrs: Buffer[] = [];
  for (const addr of rec ? (qtype === 1 ? rec.a : qtype === 28 ? rec.aaaa : []) : []) {
    const data = qtype === 1 ? Buffer.from(addr.split('.').map(Number)) : ipv6Bytes(addr);
    const head = Buffer.alloc(12);
    head.writeUInt16BE(0xc00c, 0);
    head.writeUInt16BE(qtype, 2);
    head.writeUInt16BE(1, 4);
    head.writeUInt32BE(60, 6);
    head.writeUInt16BE(data.length, 10);
    rrs.push(head, data);
  }
  const h = Buffer.alloc(12);
  q.copy(h, 0, 0, 2);
  h.writeUInt16BE(0x8180 | (rec ? 0 : 3), 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(rrs.length / 2, 6);
  return Buffer.concat([h, question, ...rrs]);
}

function ipv6Bytes(a: string): Buffer {
  const [l, r = ''] = a.split('::');
  const left = l ? l.split(':') : [];
  const right = r ? r.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const b = Buffer.alloc(16);
  groups.forEach((g, k) => b.writeUInt16BE(parseInt(g, 16), k * 2));
  return b;
}

test('labs/probe.py: ping, TCP identity, refused, silent, DNS; exact lines', { timeout: 60_000 }, async () => {
  const servers: (Server | UdpSocket)[] = [];
  const open: NetSocket[] = [];
  try {
    const echo = createServer((c) => c.end('zmesh-lab-echo t/b/n@a\nmore\n'));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    servers.push(echo);
    const port = (echo.address() as { port: number }).port;
    // One that answers and keeps the connection open: what arrived before the 1 s of silence counts.
    const lingering = createServer((c) => {
      open.push(c);
      c.write('zmesh-lab-echo t/b/l@a\n');
    });
    await new Promise<void>((r) => lingering.listen(0, '127.0.0.1', r));
    servers.push(lingering);
    const lingerPort = (lingering.address() as { port: number }).port;
    // A listener that never answers: the read times out (1 s) and reports nothing seen.
    const mute = createServer(() => undefined);
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    servers.push(mute);
    const mutePort = (mute.address() as { port: number }).port;
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const zone = new Map([['web.lan', { a: ['10.1.0.2'], aaaa: ['fd00::2'] }], ['v4only.lan', { a: ['10.1.0.3'], aaaa: [] }], ['empty.lan', { a: [], aaaa: [] }]]);
    const dns = createSocket('udp4');
    dns.on('message', (m, rinfo) => dns.send(answer(m, zone), rinfo.port, rinfo.address));
    await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
    servers.push(dns);
    const dnsPort = dns.address().port;
    const argv = probeArgv([`127.0.0.1:${port},${mutePort},${closedPort},${lingerPort}`, '[::1]:', `@127.0.0.1#${dnsPort}`, '?web.lan', '?v4only.lan', '?nx.lan', '?empty.lan', `@127.0.0.9#${dnsPort}`, '?web.lan.']);
    assert.deepEqual(argv.slice(1, 4), ['-I', '-S', argv[3]]);
    assert.equal(argv[4], `echo=${ECHO_PORT}`);
    const t0 = Date.now();
    const r = await run(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 15_000 });
    const secs = (Date.now() - t0) / 1000;
    const m = parseProbe(r.stdout);
    assert.equal(m.get('127.0.0.1')?.ping, true, r.stdout);
    assert.ok((m.get('127.0.0.1')?.rttMs ?? -1) >= 0);
    assert.equal(m.get('[::1]')?.ping, true, r.stdout);
    assert.equal(m.get(`127.0.0.1:${port}`)?.seen, 't/b/n@a', 'the identity after zmesh-lab-echo, to the end of its line');
    assert.equal(m.get(`127.0.0.1:${lingerPort}`)?.seen, 't/b/l@a', 'an answer on a connection left open');
    assert.equal(m.get(`127.0.0.1:${mutePort}`)?.seen ?? null, null);
    assert.notEqual(m.get(`127.0.0.1:${mutePort}`)?.refused, true);
    assert.equal(m.get(`127.0.0.1:${closedPort}`)?.refused, true);
    const names = r.stdout.split('\n').filter((l) => l.startsWith('N ')).sort();
    assert.deepEqual(names, ['N empty.lan !fail', 'N nx.lan !nx', 'N v4only.lan 10.1.0.3', 'N web.lan 10.1.0.2,fd00::2', 'N web.lan. !fail'], r.stdout);
    // Everything at once: the silent port's 1 s read bounds the run, not the sum of the probes.
    assert.ok(secs < 4, `all probes at once: ${secs} s`);
  } finally {
    for (const s of servers) s.close();
    for (const c of open) c.destroy();
  }
});
