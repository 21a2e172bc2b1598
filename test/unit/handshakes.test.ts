// Handshakes started by one side of each pair of public nodes (src/agent/handshakes.ts): which peers, what each
// check does with what the device shows, and the starter's bounded sequence of checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handshakeCandidates, handshakeStep, HandshakeStarter, MAX_ATTEMPTS, MAX_PER_CHECK, type HandshakeNetwork } from '../../src/agent/handshakes.ts';
import { buildKick } from '../../netns/build.ts';
import type { PeerCounters } from '../../src/agent/paths.ts';

const K = (c: string) => c.repeat(43) + '=';

test('handshakeCandidates: public peers whose key sorts after ours; never hidden, keepalive, direct or device peers', () => {
  const peers = [
    { publicKey: K('M'), endpoint: '203.0.113.2:51820', persistentKeepalive: null }, // after ours: started here
    { publicKey: K('A'), endpoint: '203.0.113.3:51820', persistentKeepalive: null }, // before ours: the other side starts
    { publicKey: K('Z'), endpoint: null, persistentKeepalive: null }, // hidden node or device: it dials us
    { publicKey: K('Y'), endpoint: '203.0.113.5:51820', persistentKeepalive: 25 }, // an access node: its keepalive starts it
    { publicKey: K('X'), endpoint: null, persistentKeepalive: null, directSubnet: '10.1.9.0/24' }, // a direct peer: docs/paths.md
    { publicKey: K('W'), endpoint: '203.0.113.6:51820', persistentKeepalive: 0 },
  ];
  assert.deepEqual(handshakeCandidates(K('F'), peers), [K('M'), K('W')]);
  // The pair seen from the other side: M sorts after F, so M starts nothing with F.
  assert.deepEqual(handshakeCandidates(K('M'), [{ publicKey: K('F'), endpoint: '203.0.113.1:51820', persistentKeepalive: null }]), []);
});

test('handshakeStep: a kick when nothing was sent, a reset when sent without a handshake, done on a handshake or out of attempts', () => {
  const c = (k: string, latestHandshake: number, txBytes: number, rxBytes = 0): PeerCounters => ({ publicKey: K(k), rxBytes, txBytes, latestHandshake, endpoint: null });
  const waiting = new Map([
    [K('A'), 0], // nothing sent: started
    [K('B'), 1], // an initiation sent (148 B), no handshake: lost or crossed
    [K('C'), 2], // a handshake: done
    [K('D'), MAX_ATTEMPTS], // out of attempts, sent to: cleared, not started
    [K('E'), MAX_ATTEMPTS], // out of attempts, nothing sent: just done
    [K('F'), 0], // not on the device yet
    [K('G'), MAX_ATTEMPTS], // out of attempts, sent to, but something came back: maybe a handshake completing, left alone
  ]);
  const counters = [c('A', 0, 0), c('B', 0, 148), c('C', 1_700_000_000, 240), c('D', 0, 296), c('E', 0, 0), c('G', 0, 92, 148)];
  assert.deepEqual(handshakeStep(waiting, counters), { kick: [K('A')], reset: [K('B')], clear: [K('D')], done: [K('C'), K('D'), K('E'), K('G')], absent: [K('F')] });
  // At most `max` started or reset per check; the rest wait for the next.
  assert.deepEqual(handshakeStep(new Map([[K('A'), 0], [K('B'), 0], [K('G'), 0]]), [c('A', 0, 0), c('B', 0, 148), c('G', 0, 0)], 2), { kick: [K('A')], reset: [K('B')], clear: [], done: [], absent: [] });
});

test('buildKick: keepalive on, then off, per peer; split past the argument limit with whole peers', () => {
  assert.deepEqual(buildKick('w-abc', [K('M'), K('N')]), [['wg', 'set', 'w-abc', 'peer', K('M'), 'persistent-keepalive', '1', 'peer', K('M'), 'persistent-keepalive', 'off', 'peer', K('N'), 'persistent-keepalive', '1', 'peer', K('N'), 'persistent-keepalive', 'off']]);
  const split = buildKick('w-abc', [K('M'), K('N'), K('O')], 350);
  assert.deepEqual(split.map((a) => a.filter((x) => x.endsWith('=')).length), [4, 2]);
  assert.throws(() => buildKick('w-abc', ['bad key']), /./);
});

test('HandshakeStarter: started at once, repaired once a second, at most MAX_ATTEMPTS checks, then cleared and left alone', async () => {
  const net: HandshakeNetwork = { networkId: 'n1', subject: 't/b/net', ownKey: K('F'), hidden: false, peers: [{ publicKey: K('M'), endpoint: '203.0.113.2:51820', persistentKeepalive: null }, { publicKey: K('P'), endpoint: '203.0.113.3:51820', persistentKeepalive: null }] };
  // M answers after its second start; P never does (its node is down): every start sends 148 bytes.
  const tx = new Map([[K('M'), 0], [K('P'), 0]]);
  let mHandshake = 0;
  const calls: string[] = [];
  const events: string[] = [];
  const s = new HandshakeStarter({
    read: async () => [...tx].map(([publicKey, txBytes]) => ({ publicKey, txBytes, rxBytes: 0, endpoint: null, latestHandshake: publicKey === K('M') ? mHandshake : 0 })),
    start: async (_n, start, reset) => {
      calls.push(`start ${start.map((k) => k[0]).join('')} reset ${reset.map((k) => k[0]).join('')}`);
      for (const k of reset) tx.set(k, 0);
      for (const k of start) tx.set(k, tx.get(k)! + 148);
      if (start.includes(K('M')) && calls.length === 2) mHandshake = 1_700_000_000;
      return [];
    },
    event: (_l, kind) => events.push(kind),
  });
  assert.equal(s.arm([net]), true);
  assert.equal(s.arm([{ ...net, ownKey: K('Z') }]), false, 'all peers sort first: the other sides start');
  assert.equal(s.arm([net]), true);
  const rounds: boolean[] = [];
  for (let i = 0; i < MAX_ATTEMPTS + 1; i++) rounds.push(await s.check([net]));
  assert.deepEqual(calls, ['start MP reset ', 'start MP reset MP', 'start P reset P', 'start P reset P', 'start P reset P', 'start  reset P']);
  assert.deepEqual(rounds, [true, true, true, true, true, false]);
  assert.deepEqual(events, ['handshake.retried', 'handshake.retried', 'handshake.retried', 'handshake.retried', 'handshake.none']);
  // Done with: a later reconcile's arm leaves both alone; a new peer key waits again.
  assert.equal(s.arm([net]), false);
  assert.equal(s.arm([{ ...net, peers: [...net.peers, { publicKey: K('Q'), endpoint: '203.0.113.4:51820', persistentKeepalive: null }] }]), true);
  assert.equal(s.pending(), 1);
  // A new key of this node in the network (a new device): every peer is new again, even one done with.
  assert.equal(s.arm([{ ...net, ownKey: K('G') }]), true);
  assert.equal(s.pending(), 2, 'M and P again');
  // A device that cannot be read still uses up the attempts.
  const dead = new HandshakeStarter({ read: async () => null, start: async () => [], event: () => undefined });
  dead.arm([net]);
  let n = 0;
  while (await dead.check([net])) n++;
  assert.equal(n, MAX_ATTEMPTS, 'MAX_ATTEMPTS checks, then done');
});

test('HandshakeStarter: past the per-check bound every waiting peer gets its turn', async () => {
  const key = (i: number) => `B${String(i).padStart(42, '0')}=`;
  const peers = Array.from({ length: MAX_PER_CHECK + 2 }, (_, i) => ({ publicKey: key(i), endpoint: '203.0.113.2:51820', persistentKeepalive: null }));
  const net: HandshakeNetwork = { networkId: 'n1', subject: 't/b/net', ownKey: 'A'.repeat(43) + '=', hidden: false, peers };
  const turns: string[][] = [];
  const s = new HandshakeStarter({
    // Nobody ever answers and nothing counts as sent: every check starts again.
    read: async () => peers.map((p) => ({ publicKey: p.publicKey, txBytes: 0, rxBytes: 0, endpoint: null, latestHandshake: 0 })),
    start: async (_n, start) => {
      turns.push([...start]);
      return [];
    },
    event: () => undefined,
  });
  s.arm([net]);
  await s.check([net]);
  await s.check([net]);
  assert.deepEqual(turns.map((t) => t.length), [MAX_PER_CHECK, MAX_PER_CHECK]);
  assert.deepEqual(turns[0], peers.slice(0, MAX_PER_CHECK).map((p) => p.publicKey));
  // The two left out first come first in the next check; the rest follow in the order they were started.
  assert.deepEqual(turns[1], [key(MAX_PER_CHECK), key(MAX_PER_CHECK + 1), ...peers.slice(0, MAX_PER_CHECK - 2).map((p) => p.publicKey)]);
});
