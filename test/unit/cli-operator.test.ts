// Operator experience (issue #19): errors that name their file once (`FILE:LINE:COL: CODE: …`), one sentence for a
// missing file, a directory or the wrong kind of document, "did you mean …?" for unknown fields everywhere and
// "missing" for absent ones, `sign --out` (nothing left behind on failure), `zmesh version`, `--no-color`, and
// completion scripts generated from the command tree. In process (exit overridden, output captured), so it is fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { runCaptured } from '../helpers/cli-capture.ts';
import { bashCompletion, commandTable, fishCompletion, zshCompletion } from '../../src/cli/meta-commands.ts';
import { nearest, unknownField, ValidationError } from '../../src/errors.ts';
import { parseBlueprint, verifySigned } from '../../src/blueprint/index.ts';
import { validateInventory } from '../../src/plan/inventory.ts';
import { parseAgentConfig } from '../../src/agent/config.ts';
import { parseLabSpec } from '../../labs/spec.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const EXAMPLE = join(ROOT, 'examples/tenant-blueprint.yaml');

/** Runs `zmesh ARGS` in this process: exit code, stdout and stderr (commander's and zmesh's own). */
async function zmesh(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCaptured(await buildProgram(), args);
}

async function inTempDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-op-'));
  try {
    await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('nearest: a typo, another case, a prefix; nothing when nothing is close', () => {
  const fields = ['name', 'ipRange', 'subnetPrefix', 'nodes', 'access', 'egress', 'policy'];
  assert.equal(nearest('iprange', fields), 'ipRange');
  assert.equal(nearest('ipRnage', fields), 'ipRange');
  assert.equal(nearest('node', fields), 'nodes');
  assert.equal(nearest('subnet', fields), 'subnetPrefix');
  assert.equal(nearest('polcy', fields), 'policy');
  assert.equal(nearest('colour', fields), null);
  assert.equal(nearest('x', fields), null);
  assert.deepEqual(unknownField('a.b', 'nmae', ['name', 'key']), {
    code: 'E_UNKNOWN_FIELD',
    path: 'a.b',
    message: 'unknown field "nmae", did you mean name?',
    hint: 'rename it to name',
  });
  assert.match(unknownField('z', 'zzz', ['name', 'key']).hint, /allowed here: name, key/);
});

test('unknown fields suggest the nearest known one everywhere (blueprint, envelope, inventory, agent config, lab spec); absent ones are "missing"', () => {
  const problems = (f: () => unknown): { code: string; path: string; message: string }[] => {
    try {
      f();
    } catch (e) {
      if (e instanceof ValidationError) return e.problems.map(({ code, path, message }) => ({ code, path, message }));
      throw e;
    }
    assert.fail('no problems');
  };
  assert.deepEqual(problems(() => parseBlueprint('tenant: acme\nname: shop\nversion: 1\nnetworks:\n  - name: n\n    iprange: 10.1.0.0/16\n    nodes: [a]\n')), [
    { code: 'E_UNKNOWN_FIELD', path: 'networks[0].iprange', message: 'unknown field "iprange", did you mean ipRange?' },
    { code: 'E_REQUIRED', path: 'networks[0].ipRange', message: 'missing' },
  ]);
  assert.deepEqual(problems(() => validateInventory({ nodes: [{ id: 'a', publickey: 'x', endpoint: ['203.0.113.1'] }], node: [] })), [
    { code: 'E_UNKNOWN_FIELD', path: 'node', message: 'unknown field "node", did you mean nodes?' },
    { code: 'E_UNKNOWN_FIELD', path: 'nodes[0].publickey', message: 'unknown field "publickey", did you mean publicKey?' },
    { code: 'E_UNKNOWN_FIELD', path: 'nodes[0].endpoint', message: 'unknown field "endpoint", did you mean endpoints?' },
    { code: 'E_REQUIRED', path: 'nodes[0].publicKey', message: 'missing' },
  ]);
  const env = problems(() => verifySigned({ format: 'zmesh-signed-blueprint/1', blueprint: {}, signatur: {} }));
  assert.ok(env.some((p) => p.message === 'unknown field "signatur", did you mean signature?'), JSON.stringify(env));
  assert.ok(env.some((p) => p.path === 'signature' && p.message === 'missing'), JSON.stringify(env));
  assert.deepEqual(problems(() => validateInventory({})), [{ code: 'E_REQUIRED', path: 'nodes', message: 'missing' }]);
  const agent = problems(() => parseAgentConfig('nodeId: a\nidentityKeyFile: /k\nstateDir: /s\nreconcileIntervall: 5s\n', '/'));
  assert.deepEqual(agent.filter((p) => p.code === 'E_UNKNOWN_FIELD'), [
    { code: 'E_UNKNOWN_FIELD', path: 'reconcileIntervall', message: 'unknown field "reconcileIntervall", did you mean reconcileInterval?' },
  ]);
  const lab = problems(() => parseLabSpec('name: x\nnodes: [{name: a, lan: b}]\nnat: []\n', { baseDir: '/', readFile: () => '' }));
  assert.ok(lab.some((p) => p.message === 'unknown field "nat", did you mean nats?'), JSON.stringify(lab));
});

test('errors name the file once: FILE:LINE:COL: CODE: message, no dangling colon; ZMESH_JSON_ERRORS carries file, line and column', async () => {
  await inTempDir(async (dir) => {
    const inv = join(dir, 'inventory.yaml');
    writeFileSync(inv, 'nodes:\n  - id: a\n b: 1\n');
    const r = await zmesh('plan', EXAMPLE, '--nodes', inv);
    assert.equal(r.code, 2);
    assert.equal(r.err.split('\n')[0], `${inv}:3:1: E_YAML_SYNTAX: All mapping items must start at the same column`);
    assert.equal(r.err.split(inv).length, 2, `the file once: ${r.err}`);

    const bp = join(dir, 'bp.yaml');
    writeFileSync(bp, 'tenant: acme\nname: [\n');
    const v = await zmesh('validate', bp);
    assert.equal(v.code, 2);
    assert.match(v.out, new RegExp(`^${bp}:3:1: E_YAML_SYNTAX: [^\\n]*[^:]\\n  → `));
    const s = await zmesh('sign', bp, '--key', join(dir, 'none.key'));
    assert.match(s.err, new RegExp(`^${bp}:3:1: E_YAML_SYNTAX: `));

    writeFileSync(inv, 'nodes:\n  - {id: a, publickey: x}\n');
    const typo = await zmesh('plan', EXAMPLE, '--nodes', inv);
    assert.equal(typo.code, 2);
    assert.match(typo.err, new RegExp(`^${inv}: 2 problems:\\n  E_UNKNOWN_FIELD  nodes\\[0\\]\\.publickey: unknown field "publickey", did you mean publicKey\\?`));

    process.env.ZMESH_JSON_ERRORS = '1';
    try {
      writeFileSync(inv, 'nodes:\n  - id: a\n b: 1\n');
      const j = JSON.parse((await zmesh('plan', EXAMPLE, '--nodes', inv)).err) as { code: string; file: string; problems: { line: number; column: number }[] };
      assert.equal(j.code, 'E_YAML_SYNTAX');
      assert.equal(j.file, inv);
      assert.deepEqual([j.problems[0].line, j.problems[0].column], [3, 1]);
      const usage = await zmesh('sign', EXAMPLE);
      assert.equal(usage.code, 2);
      assert.deepEqual(JSON.parse(usage.err), {
        code: 'E_USAGE',
        kind: 'invalid',
        message: "required option '--key <file>' not specified",
        problems: [{ code: 'E_USAGE', path: '', message: "required option '--key <file>' not specified", hint: 'see --help' }],
      });
    } finally {
      delete process.env.ZMESH_JSON_ERRORS;
    }
  });
});

test('a missing file, a directory, the wrong kind of document: one sentence saying what it is and which command wants what (exit 2)', async () => {
  await inTempDir(async (dir) => {
    const key = join(dir, 't.key');
    assert.equal((await zmesh('keygen', 'tenant', key)).code, 0);
    const signed = join(dir, 'shop.signed.json');
    assert.equal((await zmesh('sign', EXAMPLE, '--key', key, '--out', signed)).code, 0);
    const cases: [string[], RegExp][] = [
      [['validate', join(dir, 'nope.yaml')], /^zmesh: E_FILE: \S+nope\.yaml does not exist; `zmesh validate` wants a blueprint \(YAML or JSON\) here\n/],
      [['validate', dir], /^zmesh: E_FILE: \S+ is a directory; `zmesh validate` wants a blueprint/],
      [['sign', EXAMPLE, '--key', join(dir, 'nope.key')], /E_FILE: \S+nope\.key does not exist; `zmesh sign` wants a tenant ed25519 secret key file here/],
      [['validate', signed], /^zmesh: E_DOCUMENT_KIND: \S+shop\.signed\.json is a signed blueprint \(`zmesh sign` output\); `zmesh validate` wants a blueprint \(YAML or JSON\)\n {2}→ it is already signed: check it with `zmesh verify /],
      [['verify', EXAMPLE], /^zmesh: E_DOCUMENT_KIND: \S+tenant-blueprint\.yaml is a plain \(unsigned\) blueprint; `zmesh verify` wants a signed blueprint \(`zmesh sign` output\)\n {2}→ sign it first: `zmesh sign /],
      [['apply', signed, '--plan', EXAMPLE], /^zmesh: E_DOCUMENT_KIND: \S+tenant-blueprint\.yaml is a plain \(unsigned\) blueprint; `zmesh apply --plan` wants a plan \(`zmesh plan` output\) or a node's plan part\n/],
      [['plan', EXAMPLE, '--nodes', EXAMPLE], /`zmesh plan --nodes` wants a node inventory/],
      [['validate', key], /^zmesh: E_DOCUMENT_KIND: \S+t\.key is a key file \(`zmesh keygen` output\); `zmesh validate` wants a blueprint/],
    ];
    for (const [args, want] of cases) {
      const r = await zmesh(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, want, args.join(' '));
    }
  });
});

test('sign --out writes the whole file or nothing (no 0-byte file, no temporary left behind)', async () => {
  await inTempDir(async (dir) => {
    const key = join(dir, 't.key');
    const node = join(dir, 'n.key');
    await zmesh('keygen', 'tenant', key);
    await zmesh('keygen', 'node', node);
    const out = join(dir, 'out', 'shop.signed.json');
    const ok = await zmesh('sign', EXAMPLE, '--key', key, '--out', out);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out, '');
    assert.equal(JSON.parse(readFileSync(out, 'utf8')).format, 'zmesh-signed-blueprint/1');
    const before = readFileSync(out, 'utf8');
    const wrongKey = await zmesh('sign', EXAMPLE, '--key', node, '--out', out);
    assert.equal(wrongKey.code, 2);
    assert.match(wrongKey.err, /E_KEY_KIND/);
    assert.equal(readFileSync(out, 'utf8'), before, 'a failed sign leaves the old file alone');
    const fresh = join(dir, 'fresh.json');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'tenant: acme\n');
    assert.equal((await zmesh('sign', bad, '--key', key, '--out', fresh)).code, 2);
    const unwritable = join(dir, 'ro');
    mkdirSync(unwritable, { mode: 0o500 });
    if (process.getuid?.() !== 0) assert.equal((await zmesh('sign', EXAMPLE, '--key', key, '--out', join(unwritable, 'x.json'))).code, 1);
    assert.deepEqual(readdirSync(dir).sort(), ['bad.yaml', 'n.key', 'out', 'ro', 't.key']);
    assert.deepEqual(readdirSync(join(dir, 'out')), ['shop.signed.json']);
    assert.equal(statSync(key).mode & 0o777, 0o600, 'secrets stay 0600');
  });
});

test('zmesh version: zmesh (package.json), Node, the wireguard-go asked with --version', async () => {
  await inTempDir(async (dir) => {
    const fake = join(dir, 'wireguard-go');
    writeFileSync(fake, '#!/bin/sh\necho "wireguard-go v0.0.20250522"\necho\necho "Userspace WireGuard daemon for linux-amd64."\n', { mode: 0o755 });
    const r = await zmesh('version', '--json', '--wireguard-go', fake);
    assert.equal(r.code, 0, r.err);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual(JSON.parse(r.out), { zmesh: pkg.version, node: process.version, wireguardGo: { path: fake, version: '0.0.20250522', batched: true } });
    const text = await zmesh('version', '--wireguard-go', fake);
    assert.equal(text.out, `zmesh ${pkg.version}\nnode ${process.version}\nwireguard-go 0.0.20250522 (${fake}; batched I/O)\n`);
    const none = await zmesh('version', '--json', '--wireguard-go', join(dir, 'missing'));
    assert.equal(none.code, 0);
    assert.equal(JSON.parse(none.out).wireguardGo.version, null);
    assert.equal((await zmesh('--version')).out, `${pkg.version}\n`);
  });
});

test('--no-color (before or after the command) turns colour off as NO_COLOR does', async () => {
  const had = process.env.NO_COLOR;
  try {
    for (const args of [['--no-color', 'completion', 'bash'], ['completion', 'bash', '--no-color']]) {
      delete process.env.NO_COLOR;
      assert.equal((await zmesh(...args)).code, 0);
      assert.equal(process.env.NO_COLOR, '1', args.join(' '));
    }
  } finally {
    if (had === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = had;
  }
});

/** A small fixed tree, so that the golden script changes only when the generator does. */
function demoProgram(): Command {
  const p = new Command('demo').option('--socket <path>', 'socket').option('--no-color', 'no colours');
  const key = p.command('keygen').description('make a key');
  key.command('tenant').description("a tenant's key").argument('<file>').option('--public-out <file>', 'public key file');
  p.command('sign').description('sign it').argument('<bp>').requiredOption('--key <file>', 'key');
  return p;
}

test('completion: the bash script for a fixed tree is exactly the golden one', () => {
  const golden = join(ROOT, 'test/unit/golden/completion-demo.bash');
  const got = bashCompletion(demoProgram());
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, got);
  assert.equal(got, readFileSync(golden, 'utf8'));
});

test('completion: every command of the real tree is completed; bash completes words; zsh and fish scripts name every command', async () => {
  const program = await buildProgram();
  const table = commandTable(program);
  const bash = bashCompletion(program);
  for (const n of table) assert.ok(bash.includes(`    '${n.path}') echo `), n.path);
  const zsh = zshCompletion(program);
  const fish = fishCompletion(program);
  for (const n of table.filter((t) => t.path)) {
    const last = n.path.split(' ').pop()!;
    assert.ok(zsh.includes(`'${last}:`), `zsh: ${n.path}`);
    assert.ok(fish.includes(`-a '${last}'`), `fish: ${n.path}`);
  }
  const complete = (...words: string[]) => {
    const script = `${bash}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _zmesh; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '-c', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split('\n').filter(Boolean);
  };
  assert.deepEqual(complete('zmesh', 'key'), ['keygen']);
  assert.deepEqual(complete('zmesh', '--socket', '/x', 'keygen', 'te'), ['tenant']);
  assert.deepEqual(complete('zmesh', 'sign', 'bp.yaml', '--'), ['--key', '--out', '--help']);
  assert.deepEqual(complete('zmesh', 'completion', ''), ['bash', 'zsh', 'fish']);
  assert.ok(complete('zmesh', 'lab', '').includes('matrix'));
});

test('list commands: -o json|yaml|wide beside --json (net ls against a fake agent socket)', async () => {
  const networks = [
    { tenant: 'acme', blueprint: 'shop', name: 'backend', id: 'abcdefghij', ipRange: '10.1.0.0/16', subnet: '10.1.1.0/24', listenPort: 51820, peers: 2, generation: 3, applied: true, lastError: null },
  ];
  await inTempDir(async (dir) => {
    const sock = join(dir, 'admin.sock');
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/v1/networks' ? { networks } : {}));
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const run = async (...args: string[]) => {
        const r = await zmesh('--socket', sock, 'net', 'ls', ...args);
        assert.equal(r.code, 0, r.err);
        return r.out;
      };
      assert.deepEqual(JSON.parse(await run('-o', 'json')), { networks });
      assert.equal(await run('--json'), await run('-o', 'json'));
      assert.deepEqual(parseYaml(await run('-o', 'yaml')), { networks });
      assert.equal(
        await run('-o', 'wide'),
        [
          'TENANT  BLUEPRINT  NAME     ID          IP RANGE     SUBNET       LISTEN PORT  PEERS  GENERATION  APPLIED  LAST ERROR',
          'acme    shop       backend  abcdefghij  10.1.0.0/16  10.1.1.0/24  51820        2      3           true     -',
          '',
        ].join('\n'),
      );
      assert.match(await run(), /^NETWORK +ID +RANGE +SUBNET +PORT +PEERS +GEN +STATE\nacme\/shop\/backend +abcdefghij/);
      const bad = await zmesh('--socket', sock, 'net', 'ls', '-o', 'xml');
      assert.equal(bad.code, 2);
      assert.match(bad.err, /error: option '-o, --output <format>' argument 'xml' is invalid/);
    } finally {
      server.close();
    }
  });
});

test('a public key may be given as its --public-out file; a secret key file there is refused (E_KEY_KIND) and not echoed', async () => {
  await inTempDir(async (dir) => {
    const key = join(dir, 't.key');
    const pub = join(dir, 't.pub');
    const printed = (await zmesh('keygen', 'tenant', key, '--public-out', pub)).out.trim();
    const signed = join(dir, 's.json');
    assert.equal((await zmesh('sign', EXAMPLE, '--key', key, '--out', signed)).code, 0);
    const byFile = await zmesh('verify', signed, '--tenant-key', pub);
    assert.equal(byFile.code, 0, byFile.err);
    assert.equal(byFile.out, `valid: acme/shop version 1, key ${printed}\n`);
    const bySecret = await zmesh('verify', signed, '--tenant-key', key);
    assert.equal(bySecret.code, 2);
    assert.match(bySecret.err, /^zmesh: E_KEY_KIND: --tenant-key \S+t\.key holds a tenant ed25519 secret key: this needs a tenant ed25519 public key/);
    const secret = readFileSync(key, 'utf8').split('\n')[1];
    assert.ok(!bySecret.err.includes(secret) && !bySecret.out.includes(secret), 'the secret is not printed');
    const node = join(dir, 'n.key');
    const nodePub = join(dir, 'n.pub');
    await zmesh('keygen', 'node', node, '--public-out', nodePub);
    assert.match((await zmesh('verify', signed, '--tenant-key', nodePub)).err, /E_KEY_KIND: .*holds a node x25519 public key: this needs a tenant ed25519 public key/);
  });
});
