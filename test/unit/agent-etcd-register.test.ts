// How fast an agent registers again after a partition (issue #21): the wait between registration attempts is
// short and bounded whatever the outage's length, with jitter; each call of an attempt has its own deadline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REGISTER_CALL_MS, REGISTER_RETRY_MAX_MS, REGISTER_RETRY_MIN_MS, registerRetryMs } from '../../src/agent/etcd-link.ts';

test('registerRetryMs: doubling from 500 ms, capped at 2 s, ±20 % jitter', () => {
  const mid = () => 0.5; // no jitter
  const seq: number[] = [];
  let d = 0;
  for (let i = 0; i < 6; i++) seq.push((d = registerRetryMs(d, mid)));
  assert.deepEqual(seq, [500, 1000, 2000, 2000, 2000, 2000]);
  assert.equal(registerRetryMs(2000, () => 0), 1600);
  assert.equal(registerRetryMs(2000, () => 1), 2400);
  assert.equal(registerRetryMs(0, () => 0), 400);
  // After an hour of failures the next attempt is still at most 2.4 s away.
  assert.ok(registerRetryMs(3_600_000, () => 0.999) <= REGISTER_RETRY_MAX_MS * 1.2);
  assert.deepEqual([REGISTER_RETRY_MIN_MS, REGISTER_RETRY_MAX_MS, REGISTER_CALL_MS], [500, 2000, 3000]);
});
