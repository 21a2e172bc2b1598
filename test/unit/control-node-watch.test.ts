// NodeWatch (src/control/node-watch.ts) with a fake etcd client: after a failed read it waits out its backoff,
// unless reconnect() says etcd is reachable again — then it reads at once (a node back from a partition).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { NodeWatch, type Batch } from '../../src/control/node-watch.ts';
import { Keys } from '../../src/control/keys.ts';

function fakeClient(failReads: number): { client: Etcd3; reads: () => number } {
  let reads = 0;
  const watcher = { on: () => watcher, cancel: async () => undefined };
  const client = {
    kv: {
      range: async () => {
        reads++;
        if (reads <= failReads) throw new Error('14 UNAVAILABLE: No connection established');
        return { kvs: [], header: { revision: '7' } };
      },
    },
    watch: () => ({ prefix: () => ({ startRevision: () => ({ create: async () => watcher }) }) }),
  };
  return { client: client as unknown as Etcd3, reads: () => reads };
}

test('NodeWatch: reconnect() reads at once instead of waiting out the backoff; a healthy watch is left alone', async () => {
  const { client, reads } = fakeClient(1);
  const batches: Batch[] = [];
  const w = new NodeWatch({ client, keys: new Keys(), node: 'node-a', onBatch: async (b) => void batches.push(b), retryMinMs: 60_000, retryMaxMs: 60_000 });
  try {
    w.start();
    for (let i = 0; i < 100 && reads() < 1; i++) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(reads(), 1, 'the first read failed; the next waits 60 s');
    assert.equal(w.syncs, 0);
    w.reconnect();
    for (let i = 0; i < 100 && w.syncs < 1; i++) await new Promise((r) => setTimeout(r, 5));
    await w.settled();
    assert.equal(reads(), 3, 'one failed read, then the parts and the cluster id');
    assert.equal(w.syncs, 1);
    assert.deepEqual(batches.map((b) => [b.full, b.revision, [...b.ids]]), [[true, '7', []]]);
    w.reconnect();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(reads(), 3, 'nothing pending: no read');
  } finally {
    await w.stop();
  }
});
