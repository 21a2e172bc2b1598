// Reading a wireguard-go device over its UAPI socket (/run/wireguard/<if>.sock) — exactly what `wg show`
// does for a userspace interface, without starting a process (the driver's no-op apply must be cheap).
// The protocol: send "get=1\n\n", read key=value lines up to "errno=N" and an empty line.
// https://www.wireguard.com/xplatform/#cross-platform-userspace-implementation
import { connect } from 'node:net';
import { Key, x25519PublicKey } from '../src/crypto/index.ts';
import { canonicalEndpoint, memo } from './ip.ts';
import { ParseError, type WgDevice, type WgPeer } from './parse.ts';

function hexKey(hex: string, what: string): Key {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new ParseError(`uapi: bad ${what}`);
  return Key.fromBytes(new Uint8Array(Buffer.from(hex, 'hex')));
}

/**
 * A peer's public key, hex → base64 (what `wg show` prints): the same 5,000 keys come back every reconcile. At
 * most 20,000 kept (~4 MB; a 10,000-node network's peers fit), then the memo starts over: keys that change
 * often cannot grow it.
 */
const peerKey = memo((hex: string): string => {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new ParseError('uapi: bad public_key');
  return Buffer.from(hex, 'hex').toString('base64');
}, 20_000);

/**
 * Parses a UAPI "get" response into the same shape as `wg show dump`. The device's public key is derived
 * from its private key, which is then dropped (only whether one is set is kept).
 */
export function parseUapiGet(text: string): WgDevice {
  const dev: WgDevice = { hasPrivateKey: false, publicKey: null, listenPort: 0, fwmark: null, peers: [] };
  let peer: WgPeer | null = null;
  let errno: number | null = null;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new ParseError(`uapi: bad line ${JSON.stringify(line.slice(0, 40))}`);
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    if (k === 'errno') {
      errno = Number(v);
      continue;
    }
    if (k === 'public_key') {
      peer = {
        publicKey: peerKey(v),
        hasPresharedKey: false,
        endpoint: null,
        allowedIps: [],
        latestHandshake: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: null,
      };
      dev.peers.push(peer);
      continue;
    }
    if (!peer) {
      if (k === 'private_key') {
        const priv = hexKey(v, 'private_key');
        dev.hasPrivateKey = !priv.bytes.every((b) => b === 0);
        dev.publicKey = dev.hasPrivateKey ? x25519PublicKey(priv).toString() : null;
        priv.bytes.fill(0);
      } else if (k === 'listen_port') dev.listenPort = Number(v);
      else if (k === 'fwmark') dev.fwmark = Number(v) || null;
      continue;
    }
    switch (k) {
      case 'preshared_key':
        peer.hasPresharedKey = !/^0+$/.test(v);
        break;
      case 'endpoint':
        peer.endpoint = canonicalEndpoint(v) ?? v;
        break;
      case 'allowed_ip':
        peer.allowedIps.push(v);
        break;
      case 'last_handshake_time_sec':
        peer.latestHandshake = Number(v);
        break;
      case 'rx_bytes':
        peer.rxBytes = Number(v);
        break;
      case 'tx_bytes':
        peer.txBytes = Number(v);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = Number(v) || null;
        break;
      default:
        break; // protocol_version, last_handshake_time_nsec, ...
    }
  }
  if (errno === null) throw new ParseError('uapi: truncated response (no errno)');
  if (errno !== 0) throw new ParseError(`uapi: errno ${errno}`);
  return dev;
}

/** The device behind a UAPI socket, or null when there is no daemon listening there. */
export function readUapi(socketPath: string, timeoutMs = 2000): Promise<WgDevice | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    // The end of the answer is looked for in the last bytes only: a device with 5,000 peers answers ~1.5 MB in
    // dozens of chunks, and joining and scanning everything per chunk was quadratic (bench/apply.ts, issue #17).
    let tail = '';
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      fn();
    };
    const sock = connect(socketPath);
    const timer = setTimeout(() => finish(() => reject(new Error(`uapi: ${socketPath} did not answer within ${timeoutMs} ms`))), timeoutMs);
    sock.on('connect', () => sock.write('get=1\n\n'));
    sock.on('data', (d) => {
      chunks.push(d);
      tail = (tail + d.toString('latin1')).slice(-64);
      if (/(^|\n)errno=-?\d+\n\n$/.test(tail)) {
        finish(() => {
          try {
            resolve(parseUapiGet(Buffer.concat(chunks).toString('latin1')));
          } catch (e) {
            reject(e);
          }
        });
      }
    });
    // Closed before a complete answer: the daemon went away.
    sock.on('end', () => finish(() => resolve(null)));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // No daemon behind the socket (absent, stale after a SIGKILL, or dying right now).
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EPIPE') finish(() => resolve(null));
      else finish(() => reject(e));
    });
  });
}
