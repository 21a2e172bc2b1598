// The operator's CLI config file (docs/cli-config.md): where it is found, strict checking with paths and "did you
// mean", relative paths against the file's directory, files anyone may write refused, and for every setting the
// precedence flag > environment > file > built-in default — as a pure table, then through the real commands
// (status, controller, net ls, config show) in this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { buildProgram } from '../../src/cli/program.ts';
import { runCaptured } from '../helpers/cli-capture.ts';
import { configFile, loadCliConfig, parseCliConfig, resolveSettings, type CliFlags, type LoadedConfig } from '../../src/cli/config.ts';
import { ZmeshError } from '../../src/errors.ts';

const VARS = ['ZMESH_CONFIG', 'XDG_CONFIG_HOME', 'HOME', 'ZMESH_SOCKET', 'ZMESH_ETCD', 'ZMESH_ETCD_CACERT', 'ZMESH_ETCD_CERT', 'ZMESH_ETCD_KEY', 'ZMESH_OUTPUT', 'NO_COLOR', 'ZMESH_JSON_ERRORS'];

/** Runs `zmesh ARGS` in this process with exactly `env` for the variables zmesh reads (others unset). */
async function zmesh(env: Record<string, string>, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const saved = VARS.map((v) => [v, process.env[v]] as const);
  for (const v of VARS) delete process.env[v];
  Object.assign(process.env, env);
  try {
    return await runCaptured(await buildProgram(), args);
  } finally {
    for (const [v, val] of saved) {
      if (val === undefined) delete process.env[v];
      else process.env[v] = val;
    }
  }
}

async function inTempDir(f: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-cfg-'));
  try {
    await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function problemsOf(f: () => unknown): { code: string; path: string; message: string }[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ZmeshError, String(e));
    return e.problems.map(({ code, path, message }) => ({ code, path, message }));
  }
  assert.fail('no error');
}

test('parseCliConfig: every field; relative paths against the file directory; endpoints as a list or a comma string', () => {
  assert.deepEqual(
    parseCliConfig({ socket: 'run/a.sock', etcd: { endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379/'], cacert: 'ca.pem', cert: '/abs/c.pem', key: '../k.pem' }, output: 'wide', color: false }, '/etc/zmesh'),
    { socket: '/etc/zmesh/run/a.sock', etcd: { endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379/'], cacert: '/etc/zmesh/ca.pem', cert: '/abs/c.pem', key: '/etc/k.pem' }, output: 'wide', color: false },
  );
  assert.deepEqual(parseCliConfig({ etcd: { endpoints: 'http://a:2379, http://b:2379' } }, '/x'), { etcd: { endpoints: ['http://a:2379', 'http://b:2379'] } });
  assert.deepEqual(parseCliConfig(null, '/x'), {}); // an empty file
});

test('parseCliConfig: unknown fields suggest the known one with their path; wrong types are E_TYPE; all problems at once', () => {
  assert.deepEqual(
    problemsOf(() => parseCliConfig({ sockt: '/a', colour: false, etcd: { endpoint: ['http://a:1'], cacrt: 'x', ca: 'y' }, output: 'xml', color: 'no' }, '/x')),
    [
      { code: 'E_UNKNOWN_FIELD', path: 'sockt', message: 'unknown field "sockt", did you mean socket?' },
      { code: 'E_UNKNOWN_FIELD', path: 'colour', message: 'unknown field "colour", did you mean color?' },
      { code: 'E_UNKNOWN_FIELD', path: 'etcd.endpoint', message: 'unknown field "endpoint", did you mean endpoints?' },
      { code: 'E_UNKNOWN_FIELD', path: 'etcd.cacrt', message: 'unknown field "cacrt", did you mean cacert?' },
      { code: 'E_UNKNOWN_FIELD', path: 'etcd.ca', message: 'unknown field "ca"' },
      { code: 'E_TYPE', path: 'output', message: 'output is one of table, wide, json, yaml' },
      { code: 'E_TYPE', path: 'color', message: 'color is true or false' },
    ],
  );
  assert.deepEqual(
    problemsOf(() => parseCliConfig({ socket: 5, etcd: { endpoints: ['10.0.0.1:2379'], key: '' } }, '/x')),
    [
      { code: 'E_TYPE', path: 'socket', message: 'socket is a file path' },
      { code: 'E_TYPE', path: 'etcd.endpoints', message: 'endpoints is a list of etcd client URLs' },
      { code: 'E_TYPE', path: 'etcd.key', message: 'etcd.key is a file path' },
    ],
  );
  assert.deepEqual(problemsOf(() => parseCliConfig({ etcd: [] }, '/x')), [{ code: 'E_TYPE', path: 'etcd', message: 'etcd is a mapping' }]);
  assert.deepEqual(problemsOf(() => parseCliConfig(['socket'], '/x')), [{ code: 'E_TYPE', path: '', message: 'the CLI config is a YAML mapping' }]);
});

test('which file: $ZMESH_CONFIG, else $XDG_CONFIG_HOME (or ~/.config)/zmesh/config.yaml, else the system file, else none', async () => {
  await inTempDir((dir) => {
    const home = join(dir, 'home');
    const xdg = join(dir, 'xdg');
    const system = join(dir, 'etc-cli.yaml');
    const explicit = join(dir, 'mine.yaml');
    const put = (p: string, text: string) => {
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, text, { mode: 0o600 });
    };
    const socketOf = (env: Record<string, string>) => loadCliConfig(env, system);
    assert.equal(configFile({ HOME: home }, system), null);
    assert.deepEqual(socketOf({ HOME: home }), { file: null, config: {}, warnings: [] });
    put(system, 'socket: /sys.sock\n');
    assert.deepEqual(socketOf({ HOME: home }), { file: system, config: { socket: '/sys.sock' }, warnings: [] });
    put(join(home, '.config/zmesh/config.yaml'), 'socket: home.sock\n');
    assert.deepEqual(socketOf({ HOME: home }).config, { socket: join(home, '.config/zmesh/home.sock') });
    assert.deepEqual(socketOf({ HOME: home, XDG_CONFIG_HOME: 'relative/ignored' }).config, { socket: join(home, '.config/zmesh/home.sock') });
    put(join(xdg, 'zmesh/config.yaml'), 'socket: /xdg.sock\n');
    assert.deepEqual(socketOf({ HOME: home, XDG_CONFIG_HOME: xdg }), { file: join(xdg, 'zmesh/config.yaml'), config: { socket: '/xdg.sock' }, warnings: [] });
    put(explicit, 'socket: /explicit.sock\n');
    assert.deepEqual(socketOf({ HOME: home, XDG_CONFIG_HOME: xdg, ZMESH_CONFIG: explicit }).config, { socket: '/explicit.sock' });
    assert.deepEqual(socketOf({ HOME: home, ZMESH_CONFIG: '/dev/null' }), { file: '/dev/null', config: {}, warnings: [] });
    // $ZMESH_CONFIG naming nothing is an error, not a silent fall-back to the other files.
    try {
      socketOf({ HOME: home, ZMESH_CONFIG: join(dir, 'missing.yaml') });
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof ZmeshError);
      assert.equal(e.code, 'E_CLI_CONFIG_MISSING');
      assert.equal(e.file, join(dir, 'missing.yaml'));
    }
    try {
      socketOf({ HOME: home, ZMESH_CONFIG: dir });
      assert.fail('no error');
    } catch (e) {
      assert.equal((e as ZmeshError).code, 'E_CLI_CONFIG_MISSING');
      assert.equal((e as ZmeshError).message, 'is not a regular file');
    }
  });
});

test('a config file anyone may write is refused, a group-writable one warned about, one owned by another user refused', async () => {
  await inTempDir((dir) => {
    const p = join(dir, 'cli.yaml');
    writeFileSync(p, 'socket: /a.sock\n', { mode: 0o600 });
    chmodSync(p, 0o666);
    assert.deepEqual(problemsOf(() => loadCliConfig({ ZMESH_CONFIG: p })), [
      { code: 'E_CLI_CONFIG_UNSAFE', path: '', message: 'is writable by every user: refused (anyone could point zmesh at their own socket or etcd)' },
    ]);
    chmodSync(p, 0o660);
    assert.deepEqual(loadCliConfig({ ZMESH_CONFIG: p }).warnings, [`${p}: group-writable; every member of its group can change where zmesh connects (chmod g-w ${p})`]);
    chmodSync(p, 0o644);
    assert.deepEqual(loadCliConfig({ ZMESH_CONFIG: p }), { file: p, config: { socket: '/a.sock' }, warnings: [] });
    if (process.getuid?.() === 0) {
      chownSync(p, 65534, 65534);
      assert.deepEqual(problemsOf(() => loadCliConfig({ ZMESH_CONFIG: p })), [
        { code: 'E_CLI_CONFIG_UNSAFE', path: '', message: 'is owned by uid 65534, neither root nor you (uid 0): refused' },
      ]);
    }
  });
});

// ---- precedence ---------------------------------------------------------------------------------------------

const FILE: LoadedConfig = {
  file: '/home/op/.config/zmesh/config.yaml',
  config: { socket: '/file.sock', etcd: { endpoints: ['https://file:2379'], cacert: '/f/ca.pem', cert: '/f/c.pem', key: '/f/k.pem' }, output: 'wide', color: false },
  warnings: [],
};
const NO_FILE: LoadedConfig = { file: null, config: {}, warnings: [] };
const ENV = { ZMESH_SOCKET: '/env.sock', ZMESH_ETCD: 'https://env1:2379,https://env2:2379', ZMESH_ETCD_CACERT: '/e/ca.pem', ZMESH_ETCD_CERT: '/e/c.pem', ZMESH_ETCD_KEY: '/e/k.pem', ZMESH_OUTPUT: 'yaml', NO_COLOR: '1' };
const FLAGS: CliFlags = { socket: '/flag.sock', etcd: 'https://flag:2379', cacert: '/l/ca.pem', cert: '/l/c.pem', key: '/l/k.pem', output: 'json', color: false };

const FIELDS = [
  { name: 'socket', get: 'socket', flag: ['/flag.sock', '--socket'], env: ['/env.sock', 'ZMESH_SOCKET'], file: '/file.sock', def: '/run/zmesh/admin.sock' },
  { name: 'etcd endpoints', get: 'etcdEndpoints', flag: [['https://flag:2379'], '--etcd'], env: [['https://env1:2379', 'https://env2:2379'], 'ZMESH_ETCD'], file: ['https://file:2379'], def: null },
  { name: 'etcd CA', get: 'etcdCacert', flag: ['/l/ca.pem', '--cacert'], env: ['/e/ca.pem', 'ZMESH_ETCD_CACERT'], file: '/f/ca.pem', def: null },
  { name: 'etcd client cert', get: 'etcdCert', flag: ['/l/c.pem', '--cert'], env: ['/e/c.pem', 'ZMESH_ETCD_CERT'], file: '/f/c.pem', def: null },
  { name: 'etcd client key', get: 'etcdKey', flag: ['/l/k.pem', '--key'], env: ['/e/k.pem', 'ZMESH_ETCD_KEY'], file: '/f/k.pem', def: null },
  { name: 'output', get: 'output', flag: ['json', '-o'], env: ['yaml', 'ZMESH_OUTPUT'], file: 'wide', def: 'table' },
  { name: 'color', get: 'color', flag: [false, '--no-color'], env: [false, 'NO_COLOR'], file: false, def: true },
] as const;

for (const f of FIELDS) {
  test(`precedence, ${f.name}: flag > environment > config file > built-in default`, () => {
    const get = (flags: CliFlags, env: Record<string, string>, loaded: LoadedConfig) => resolveSettings(flags, env, loaded)[f.get];
    assert.deepEqual(get(FLAGS, ENV, FILE), { value: f.flag[0], source: 'flag', from: f.flag[1] });
    assert.deepEqual(get({}, ENV, FILE), { value: f.env[0], source: 'env', from: f.env[1] });
    assert.deepEqual(get({}, {}, FILE), { value: f.file, source: 'file', from: FILE.file });
    assert.deepEqual(get({}, {}, NO_FILE), { value: f.def, source: 'default', from: 'built-in' });
    // An empty variable counts as unset.
    assert.equal(get({}, { [f.env[1]]: '' }, FILE).source, 'file');
  });
}

test('precedence: --json counts as -o json; a bad ZMESH_OUTPUT is an error (E_CLI_CONFIG_ENV)', () => {
  assert.deepEqual(resolveSettings({ json: true, output: 'wide' }, {}, FILE).output, { value: 'json', source: 'flag', from: '--json' });
  assert.deepEqual(problemsOf(() => resolveSettings({}, { ZMESH_OUTPUT: 'xml' }, FILE)), [
    { code: 'E_CLI_CONFIG_ENV', path: 'ZMESH_OUTPUT', message: 'ZMESH_OUTPUT="xml" is not one of table, wide, json, yaml' },
  ]);
});

// ---- through the commands -------------------------------------------------------------------------------------

test('zmesh status: the socket from the file, over it $ZMESH_SOCKET, over that --socket', async () => {
  await inTempDir(async (dir) => {
    const cfg = join(dir, 'cli.yaml');
    writeFileSync(cfg, 'socket: sockets/admin.sock\n', { mode: 0o600 });
    const env = { ZMESH_CONFIG: cfg };
    const missing = (sock: string) => `zmesh: E_SOCKET_MISSING: no agent is listening on ${sock}\n`;
    assert.ok((await zmesh(env, 'status')).err.startsWith(missing(join(dir, 'sockets/admin.sock'))));
    assert.ok((await zmesh({ ...env, ZMESH_SOCKET: join(dir, 'env.sock') }, 'status')).err.startsWith(missing(join(dir, 'env.sock'))));
    assert.ok((await zmesh({ ...env, ZMESH_SOCKET: join(dir, 'env.sock') }, '--socket', join(dir, 'f.sock'), 'status')).err.startsWith(missing(join(dir, 'f.sock'))));
    assert.ok((await zmesh({ ZMESH_CONFIG: '/dev/null' }, 'status')).err.startsWith(missing('/run/zmesh/admin.sock')));
  });
});

test('zmesh controller: etcd endpoints and TLS files from the file (relative to it), each overridden by its flag or variable', async () => {
  await inTempDir(async (dir) => {
    const cfg = join(dir, 'cli.yaml');
    writeFileSync(cfg, 'etcd:\n  endpoints: [https://127.0.0.1:9]\n  cacert: tls/ca.pem\n', { mode: 0o600 });
    const r = await zmesh({ ZMESH_CONFIG: cfg }, 'controller', 'tenant', 'ls');
    assert.equal(r.code, 2);
    assert.match(r.err, new RegExp(`^zmesh: E_ETCD_TLS: cannot read the CA certificate ${join(dir, 'tls/ca.pem')}: ENOENT`));
    const env = await zmesh({ ZMESH_CONFIG: cfg, ZMESH_ETCD_CACERT: join(dir, 'env-ca.pem') }, 'controller', 'tenant', 'ls');
    assert.match(env.err, new RegExp(`cannot read the CA certificate ${join(dir, 'env-ca.pem')}: ENOENT`));
    const flag = await zmesh({ ZMESH_CONFIG: cfg, ZMESH_ETCD_CACERT: join(dir, 'env-ca.pem') }, 'controller', '--cacert', join(dir, 'flag-ca.pem'), 'tenant', 'ls');
    assert.match(flag.err, new RegExp(`cannot read the CA certificate ${join(dir, 'flag-ca.pem')}: ENOENT`));
    // --etcd with http:// over the file's https:// endpoints: the file's CA is now refused for plain http.
    const http = await zmesh({ ZMESH_CONFIG: cfg }, 'controller', '--etcd', 'http://127.0.0.1:9', 'tenant', 'ls');
    assert.equal(http.err, 'zmesh: E_ETCD_TLS: TLS files given for http:// etcd URLs\n  → use https:// URLs with TLS\n');
    const none = await zmesh({ ZMESH_CONFIG: '/dev/null' }, 'controller', 'tenant', 'ls');
    assert.equal(none.code, 2);
    assert.match(none.err, /^zmesh: E_ETCD_URLS: no etcd URLs\n {2}→ pass --etcd http:\/\/host:2379\[,…\], set ZMESH_ETCD, or write etcd.endpoints in the CLI config/);
  });
});

test('a broken config file: commands that need it exit 2 naming the file and every problem; offline commands still run', async () => {
  await inTempDir(async (dir) => {
    const cfg = join(dir, 'cli.yaml');
    writeFileSync(cfg, 'sokcet: /a.sock\netcd:\n  endpoints: [https://a:2379]\n  kye: k.pem\n', { mode: 0o600 });
    const r = await zmesh({ ZMESH_CONFIG: cfg }, 'status');
    assert.equal(r.code, 2);
    assert.equal(
      r.err,
      `${cfg}: 2 problems:\n` +
        '  E_UNKNOWN_FIELD  sokcet: unknown field "sokcet", did you mean socket?\n      → rename it to socket\n' +
        '  E_UNKNOWN_FIELD  etcd.kye: unknown field "kye", did you mean key?\n      → rename it to key\n',
    );
    writeFileSync(cfg, 'socket: [\n');
    const syntax = await zmesh({ ZMESH_CONFIG: cfg }, 'config', 'show');
    assert.equal(syntax.code, 2);
    assert.match(syntax.err, new RegExp(`^${cfg}:\\d+:\\d+: E_YAML_SYNTAX: `));
    const json = await zmesh({ ZMESH_CONFIG: join(dir, 'nope.yaml'), ZMESH_JSON_ERRORS: '1' }, 'config', 'show');
    assert.deepEqual(JSON.parse(json.err), {
      code: 'E_CLI_CONFIG_MISSING',
      kind: 'invalid',
      message: 'does not exist ($ZMESH_CONFIG names it)',
      file: join(dir, 'nope.yaml'),
      problems: [{ code: 'E_CLI_CONFIG_MISSING', path: '', message: 'does not exist ($ZMESH_CONFIG names it)', hint: 'fix $ZMESH_CONFIG, or unset it; ZMESH_CONFIG=/dev/null reads no file' }],
    });
    // keygen needs nothing from the config: a broken one does not stop it.
    const key = await zmesh({ ZMESH_CONFIG: cfg }, 'keygen', 'tenant', join(dir, 't.key'));
    assert.equal(key.code, 0, key.err);
  });
});

test('zmesh net ls: output from the file, over it $ZMESH_OUTPUT, over that -o (fake agent socket)', async () => {
  const networks = [{ tenant: 'acme', blueprint: 'shop', name: 'backend', id: 'abcdefghij', ipRange: '10.1.0.0/16', subnet: '10.1.1.0/24', listenPort: 51820, peers: 2, generation: 3, applied: true, lastError: null }];
  await inTempDir(async (dir) => {
    const sock = join(dir, 'admin.sock');
    const cfg = join(dir, 'cli.yaml');
    writeFileSync(cfg, `socket: admin.sock\noutput: json\n`, { mode: 0o600 });
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/v1/networks' ? { networks } : {}));
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const fromFile = await zmesh({ ZMESH_CONFIG: cfg }, 'net', 'ls');
      assert.equal(fromFile.code, 0, fromFile.err);
      assert.equal(fromFile.out, JSON.stringify({ networks }, null, 2) + '\n');
      assert.equal((await zmesh({ ZMESH_CONFIG: cfg, ZMESH_OUTPUT: 'yaml' }, 'net', 'ls')).out.split('\n')[0], 'networks:');
      assert.match((await zmesh({ ZMESH_CONFIG: cfg, ZMESH_OUTPUT: 'yaml' }, 'net', 'ls', '-o', 'wide')).out, /^TENANT +BLUEPRINT +NAME/);
    } finally {
      server.close();
    }
  });
});

test('zmesh config show: each setting with where it came from; colour off by the file sets NO_COLOR for the command', async () => {
  await inTempDir(async (dir) => {
    const cfg = join(dir, 'cli.yaml');
    writeFileSync(cfg, 'etcd:\n  endpoints: https://10.0.0.1:2379,https://10.0.0.2:2379\n  cacert: ca.pem\n  key: /etc/zmesh/root-key.pem\ncolor: false\n', { mode: 0o600 });
    const r = await zmesh({ ZMESH_CONFIG: cfg, ZMESH_ETCD_CERT: '/env/cert.pem' }, '--socket', '/flag.sock', 'config', 'show', '--json');
    assert.equal(r.code, 0, r.err);
    const fromFile = { source: 'file', from: cfg };
    assert.deepEqual(JSON.parse(r.out), {
      file: cfg,
      settings: {
        socket: { value: '/flag.sock', source: 'flag', from: '--socket' },
        'etcd.endpoints': { value: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'], ...fromFile },
        'etcd.cacert': { value: join(dir, 'ca.pem'), ...fromFile },
        'etcd.cert': { value: '/env/cert.pem', source: 'env', from: 'ZMESH_ETCD_CERT' },
        'etcd.key': { value: '/etc/zmesh/root-key.pem', ...fromFile },
        output: { value: 'table', source: 'default', from: 'built-in' },
        color: { value: false, ...fromFile },
      },
    });
    const table = await zmesh({ ZMESH_CONFIG: cfg }, 'config', 'view');
    const rows = [
      ['SETTING', 'VALUE', 'FROM'],
      ['socket', '/run/zmesh/admin.sock', 'default'],
      ['etcd.endpoints', 'https://10.0.0.1:2379,https://10.0.0.2:2379', `file ${cfg}`],
      ['etcd.cacert', join(dir, 'ca.pem'), `file ${cfg}`],
      ['etcd.cert', '-', 'default'],
      ['etcd.key', '/etc/zmesh/root-key.pem', `file ${cfg}`],
      ['output', 'table', 'default'],
      ['color', 'false', `file ${cfg}`],
    ];
    const w = Math.max(...rows.map((r) => r[1].length));
    assert.equal(table.out, rows.map(([a, b, c]) => `${a.padEnd(14)}  ${b.padEnd(w)}  ${c}`).join('\n') + `\nconfig file: ${cfg}\n`);
    const noColor = await zmesh({ ZMESH_CONFIG: cfg, NO_COLOR: 'yes' }, '--no-color', 'config', 'show', '-o', 'json');
    assert.deepEqual(JSON.parse(noColor.out).settings.color, { value: false, source: 'flag', from: '--no-color' });
    const byEnv = await zmesh({ ZMESH_CONFIG: cfg, NO_COLOR: 'yes' }, 'config', 'show', '-o', 'json');
    assert.deepEqual(JSON.parse(byEnv.out).settings.color, { value: false, source: 'env', from: 'NO_COLOR' });
  });
});
