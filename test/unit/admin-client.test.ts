// The admin client reads any error answer without crashing: zmesh's own body, a code only a newer agent knows,
// and bodies that are not zmesh's (the web framework's 404, plain text). Seen in CI: a {error: "Not Found"} body
// made a ZmeshError with code undefined, which threw inside the response handler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from '../../src/admin/client.ts';
import { ZmeshError } from '../../src/errors.ts';

test('error answers of every shape become a ZmeshError', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-client-'));
  const socket = join(dir, 's.sock');
  const answers: Record<string, [number, string, string]> = {
    '/zmesh': [409, 'application/json', JSON.stringify({ error: { code: 'E_REPLAY', kind: 'invalid', message: 'version 3 is not newer', problems: [{ code: 'E_REPLAY', path: 'version', message: 'not newer', hint: 'raise the version' }] } })],
    '/newer': [400, 'application/json', JSON.stringify({ error: { code: 'E_FROM_THE_FUTURE', kind: 'invalid', message: 'a newer agent says no', problems: [] } })],
    '/framework': [404, 'application/json; charset=utf-8', JSON.stringify({ message: 'Route GET:/framework not found', error: 'Not Found', statusCode: 404 })],
    '/text': [502, 'text/plain', 'bad gateway'],
  };
  const server = createServer((req, res) => {
    const [status, type, body] = answers[req.url ?? ''] ?? [500, 'text/plain', ''];
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(socket, r));
  try {
    const err = async (path: string) => {
      try {
        await call(socket, 'GET', path);
      } catch (e) {
        assert.ok(e instanceof ZmeshError, `${path}: ${String(e)}`);
        return e;
      }
      throw new Error(`${path} did not fail`);
    };
    const own = await err('/zmesh');
    assert.deepEqual([own.code, own.kind, own.path, own.hint], ['E_REPLAY', 'invalid', 'version', 'raise the version']);
    const newer = await err('/newer');
    assert.deepEqual([newer.code, newer.kind, newer.message], ['E_FROM_THE_FUTURE', 'invalid', 'a newer agent says no']);
    const fw = await err('/framework');
    assert.deepEqual([fw.code, fw.kind, fw.message], ['E_HTTP', 'internal', 'HTTP 404: Route GET:/framework not found']);
    const text = await err('/text');
    assert.deepEqual([text.code, text.message], ['E_HTTP', 'HTTP 502']);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
