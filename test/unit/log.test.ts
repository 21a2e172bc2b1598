// src/log.ts: the agent's and the controller's log lines, in pino's format (what pino 10 wrote for the same calls).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, isLevel } from '../../src/log.ts';
import { parseAgentConfig } from '../../src/agent/config.ts';

const capture = (level?: string) => {
  const lines: string[] = [];
  const log = createLogger({ level, base: { node: 'node-a' }, write: (l) => lines.push(l), now: () => 1796476800646 });
  return { log, lines };
};

test('lines are pino\'s: level, time, base fields, the object\'s fields, msg; one per line', () => {
  const { log, lines } = capture();
  log.info({ socket: '/run/zmesh/admin.sock', n: 2 }, 'agent listening');
  log.warn('no fields');
  log.error({ err: 'boom', argv: ['ip', 'link'] }, 'reconcile threw');
  log.info({ msg: 'from the object' });
  assert.deepEqual(lines, [
    '{"level":30,"time":1796476800646,"node":"node-a","socket":"/run/zmesh/admin.sock","n":2,"msg":"agent listening"}\n',
    '{"level":40,"time":1796476800646,"node":"node-a","msg":"no fields"}\n',
    '{"level":50,"time":1796476800646,"node":"node-a","err":"boom","argv":["ip","link"],"msg":"reconcile threw"}\n',
    '{"level":30,"time":1796476800646,"node":"node-a","msg":"from the object"}\n',
  ]);
});

test('levels below the threshold are dropped; silent drops all; child lines carry its bindings', () => {
  const a = capture('warn');
  a.log.debug('x');
  a.log.info('x');
  a.log.warn('kept');
  a.log.fatal('kept too');
  assert.deepEqual(a.lines.map((l) => JSON.parse(l).level), [40, 60]);
  const s = capture('silent');
  s.log.fatal('x');
  assert.equal(s.lines.length, 0);
  const c = capture('trace');
  c.log.child({ network: 'n1' }).trace({ k: 1 }, 'child');
  assert.equal(c.lines[0], '{"level":10,"time":1796476800646,"node":"node-a","network":"n1","k":1,"msg":"child"}\n');
});

test('an Error is written as type, message and stack (as pino\'s err serializer); bigints as strings', () => {
  const { log, lines } = capture();
  const e = new TypeError('bad thing');
  log.error({ err: e, big: 10n }, 'failed');
  const o = JSON.parse(lines[0]);
  assert.deepEqual([o.err.type, o.err.message, typeof o.err.stack, o.big, o.msg], ['TypeError', 'bad thing', 'string', '10', 'failed']);
  log.error(e);
  assert.equal(JSON.parse(lines[1]).msg, 'bad thing');
});

test('an unknown level is refused: by the logger, and in the agent config with its path', () => {
  assert.equal(isLevel('info'), true);
  assert.equal(isLevel('toString'), false);
  assert.throws(() => createLogger({ level: 'loud' }), /unknown log level "loud"/);
  assert.throws(
    () => parseAgentConfig('nodeId: n1\nidentityKeyFile: /k\nstateDir: /s\nadminSocket: /a\nlogLevel: loud\n', '/'),
    (e: { problems?: { path: string; message: string }[] }) => e.problems?.some((p) => p.path === 'logLevel' && /logLevel is one of trace, debug/.test(p.message)) === true,
  );
});
