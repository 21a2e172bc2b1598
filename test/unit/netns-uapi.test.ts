// The wireguard-go UAPI "get" response parser (the userspace backend reads devices this way, like `wg show`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Key, x25519PublicKey } from '../../src/crypto/index.ts';
import { parseUapiGet } from '../../netns/uapi.ts';

const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
const PRIV = 'wJHey2sQhHtGXfhVI9DSoJbsfn2L40RjGW6bP8WXV0I=';
const K1 = 'uDQGRd21oGG6fCisU/PmbEOZitpeuhz303F3P3ZSi0Y=';
const K2 = 'vF78/cGqsG+LTCMg/1PBDslFvYhupfEi98xsBbJlMmE=';

test('UAPI get → device with derived public key, peers, "none" values; the private key is not kept', () => {
  const text =
    `private_key=${hex(PRIV)}\nlisten_port=51820\n` +
    `public_key=${hex(K1)}\npreshared_key=${'0'.repeat(64)}\nprotocol_version=1\nendpoint=203.0.113.2:51821\n` +
    'last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=8972\nrx_bytes=9236\npersistent_keepalive_interval=0\n' +
    'allowed_ip=10.1.2.0/24\nallowed_ip=10.1.9.0/24\n' +
    `public_key=${hex(K2)}\npreshared_key=${'0'.repeat(64)}\nprotocol_version=1\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n` +
    'tx_bytes=148\nrx_bytes=0\npersistent_keepalive_interval=25\nerrno=0\n\n';
  const dev = parseUapiGet(text);
  assert.deepEqual(dev, {
    hasPrivateKey: true,
    publicKey: x25519PublicKey(Key.parse(PRIV)).toString(),
    listenPort: 51820,
    fwmark: null,
    peers: [
      { publicKey: K1, hasPresharedKey: false, endpoint: '203.0.113.2:51821', allowedIps: ['10.1.2.0/24', '10.1.9.0/24'], latestHandshake: 1700000000, rxBytes: 9236, txBytes: 8972, persistentKeepalive: null },
      { publicKey: K2, hasPresharedKey: false, endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 148, persistentKeepalive: 25 },
    ],
  });
  assert.ok(!JSON.stringify(dev).includes(PRIV));
  assert.deepEqual(parseUapiGet('listen_port=0\nerrno=0\n\n'), { hasPrivateKey: false, publicKey: null, listenPort: 0, fwmark: null, peers: [] });
  assert.throws(() => parseUapiGet('listen_port=1\n'), /truncated/);
  assert.throws(() => parseUapiGet('errno=22\n\n'), /errno 22/);
  assert.throws(() => parseUapiGet('public_key=zz\nerrno=0\n\n'), /public_key/);
});

test('readUapi: a 5,000-peer answer in 1 KiB pieces (the end split across pieces) is read whole', async () => {
  const { createServer } = await import('node:net');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { readUapi } = await import('../../netns/uapi.ts');
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-uapi-'));
  const path = join(dir, 'wg.sock');
  const peer = (i: number) => `public_key=${Buffer.alloc(32, i % 251).toString('hex').slice(0, 60)}${i.toString(16).padStart(4, '0')}\nprotocol_version=1\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=10.${i >> 8}.${i & 255}.0/24\n`;
  const text = `private_key=${hex(PRIV)}\nlisten_port=51820\n` + Array.from({ length: 5000 }, (_, i) => peer(i)).join('') + 'errno=0\n\n';
  const server = createServer((s) => {
    s.once('data', async () => {
      for (let o = 0; o < text.length; o += 1024) {
        s.write(text.slice(o, o + 1024));
        if (o % (64 * 1024) === 0) await new Promise((r) => setImmediate(r));
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    const dev = await readUapi(path, 10_000);
    assert.equal(dev?.peers.length, 5000);
    assert.deepEqual(dev?.peers[4999].allowedIps, ['10.19.135.0/24']);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
