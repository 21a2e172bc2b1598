// A hostile node's own status record (status/<id>, validly signed by its pinned key) must not reach the operator's
// terminal raw through `zmesh controller status` (ANSI/OSC escape sequences, newlines that forge table rows), nor
// crash it (a blueprint entry that is null). Found by a red-team review of issue #14; printable() fixes both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { identity } from '../helpers/fixtures.ts';
import { controlBed, waitFor } from '../helpers/control-bed.ts';
import { etcdAvailable } from '../helpers/etcd.ts';
import { signRecord } from '../../src/control/index.ts';
import { X25519Secret } from '../../src/crypto/keys.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const skip = etcdAvailable() ? false : 'etcd is not installed';

test('a node status record cannot inject into `zmesh controller status` output, nor crash it', { skip, timeout: 90000 }, async (t) => {
  const bed = await controlBed();
  try {
    const k = bed.keys;
    const c = await bed.controller();
    const pa = await bed.agent('pa', ['203.0.113.1']);
    await waitFor('pa a member', () => c.lastRound?.members.pa === 'live');
    await pa.link.stop({ revoke: false }); // its own writer stops; the record below is what "pa" says (signed by pa)
    const me = new X25519Secret(identity('pa').privateKey);
    const status = (v: unknown) => bed.client.put(k.status('pa')).value(signRecord(k.status('pa'), v, me));
    const cli = () => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'controller', 'status', '--etcd', bed.cluster.urls], { cwd: ROOT, encoding: 'utf8', timeout: 30000 });

    await t.test('escape sequences and forged rows', async () => {
      await status({ node: 'pa', blueprints: { '\x1b]0;owned\x07\x1b[2J\x1b[Hacme/shop': { generation: '7\npb      live   203.0.113.2  acme/shop@7', ok: true } }, peers: {} });
      const r = cli();
      const esc = r.stdout.includes('\x1b]0;') || r.stdout.includes('\x1b[2J');
      const forged = /\npb +live/.test(r.stdout);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!esc && !forged, `raw escapes: ${esc}; a forged "pb live" row: ${forged}\n${JSON.stringify(r.stdout)}`);
      assert.match(r.stdout, /\?\]0;owned\?\?\[2J\?\[Hacme\/shop@7\?pb/);
    });

    await t.test('a null blueprint entry', async () => {
      await status({ node: 'pa', blueprints: { 'acme/shop': null }, peers: {} });
      const r = cli();
      assert.equal(r.status, 0, r.stderr.split('\n').slice(0, 2).join(' | '));
      assert.match(r.stdout, /acme\/shop@undefined!/);
    });
  } finally {
    await bed.close();
  }
});
