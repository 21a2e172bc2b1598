// The `zmesh keygen|sign|verify|validate` commands, run as real processes on files in a temp dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Key } from '../../src/crypto/keys.ts';
import { tenantPublicKey } from '../../src/blueprint/index.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const EXAMPLE = join(ROOT, 'examples/tenant-blueprint.yaml');

function zmesh(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ZMESH_JSON_ERRORS: '' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function withTempDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-bp-cli-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('keygen tenant writes a 0600 secret, prints its public key, and refuses to overwrite', () => {
  withTempDir((dir) => {
    const file = join(dir, 'keys', 'tenant.key');
    const r = zmesh('keygen', 'tenant', file);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const secret = readFileSync(file, 'utf8');
    assert.match(secret, /^-----BEGIN ZMESH TENANT ED25519 SECRET KEY-----\n[A-Za-z0-9+/]{43}=\n-----END ZMESH TENANT ED25519 SECRET KEY-----\n$/);
    assert.equal(r.stdout, `${tenantPublicKey(Key.parse(secret.split('\n')[1]))}\n`);

    const again = zmesh('keygen', 'tenant', file);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /E_FILE_EXISTS/);
    assert.equal(readFileSync(file, 'utf8'), secret, 'the old key is untouched');
  });
});

test('keygen node prints what `wg pubkey` prints for the secret', () => {
  withTempDir((dir) => {
    const file = join(dir, 'node.key');
    const r = zmesh('keygen', 'node', file);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    // The key block's body is a WireGuard key; it goes to wg through stdin, never argv.
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^-----BEGIN ZMESH NODE X25519 SECRET KEY-----\n/);
    const wg = spawnSync('/usr/bin/wg', ['pubkey'], { input: text.split('\n')[1] + '\n', encoding: 'utf8' });
    assert.equal(wg.status, 0, wg.stderr);
    assert.equal(r.stdout, wg.stdout);
  });
});

test('key files say what they hold: the wrong kind or a public key is refused (E_KEY_KIND); bare files still read', () => {
  withTempDir((dir) => {
    const bp = join(ROOT, 'examples/tenant-blueprint.yaml');
    zmesh('keygen', 'node', join(dir, 'node.key'));
    const pub = zmesh('keygen', 'tenant', join(dir, 't.key'), '--public-out', join(dir, 't.pub')).stdout.trim();
    assert.match(readFileSync(join(dir, 't.pub'), 'utf8'), new RegExp(`^-----BEGIN ZMESH TENANT ED25519 PUBLIC KEY-----\n${pub.replace(/[+/]/g, '\\$&')}\n`));
    const asNode = zmesh('sign', bp, '--key', join(dir, 'node.key'));
    assert.equal(asNode.code, 2);
    assert.match(asNode.stderr, /E_KEY_KIND: .*node\.key holds a node x25519 secret key: this needs a tenant ed25519 secret key/);
    const asPub = zmesh('sign', bp, '--key', join(dir, 't.pub'));
    assert.equal(asPub.code, 2);
    assert.match(asPub.stderr, /E_KEY_KIND: .*holds a tenant ed25519 public key, not a secret/);
    assert.equal(zmesh('sign', bp, '--key', join(dir, 't.key')).code, 0);
    // A key file of an earlier version (one bare base64 line) is still read.
    const bare = join(dir, 'bare.key');
    writeFileSync(bare, readFileSync(join(dir, 't.key'), 'utf8').split('\n')[1] + '\n', { mode: 0o600 });
    const signed = zmesh('sign', bp, '--key', bare);
    assert.equal(signed.code, 0, signed.stderr);
    assert.equal(JSON.parse(signed.stdout).signature.publicKey, pub);
    writeFileSync(join(dir, 'junk.key'), 'not a key\n', { mode: 0o600 });
    assert.match(zmesh('sign', bp, '--key', join(dir, 'junk.key')).stderr, /E_KEY_FORMAT/);
  });
});

test('sign → verify: valid, tenant key checked, tampering caught', () => {
  withTempDir((dir) => {
    const key = join(dir, 'tenant.key');
    const pub = zmesh('keygen', 'tenant', key).stdout.trim();
    const other = zmesh('keygen', 'tenant', join(dir, 'other.key')).stdout.trim();

    const s = zmesh('sign', EXAMPLE, '--key', key);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(s.stdout.startsWith('{\n  "format": "zmesh-signed-blueprint/1",'), 'pretty JSON, 2 spaces');
    const signedFile = join(dir, 'shop.signed.json');
    writeFileSync(signedFile, s.stdout);

    const v = zmesh('verify', signedFile, '--tenant-key', pub);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, `valid: acme/shop version 1, key ${pub}\n`);

    const wrong = zmesh('verify', signedFile, '--tenant-key', other);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /E_TENANT_KEY/);

    const env = JSON.parse(s.stdout);
    env.blueprint.networks[0].egress = false;
    writeFileSync(signedFile, JSON.stringify(env));
    const tampered = zmesh('verify', signedFile);
    assert.equal(tampered.code, 2);
    assert.match(tampered.stderr, /E_SIGNATURE/);
  });
});

test('validate prints every problem and exits 2; sign refuses an invalid blueprint', () => {
  withTempDir((dir) => {
    const ok = zmesh('validate', EXAMPLE);
    assert.deepEqual([ok.code, ok.stdout], [0, 'valid\n']);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'tenant: Acme\nname: shop\nversion: 0\nnetworks: [{name: n, ipRange: 10.0.0.1/16, nodes: [a]}]\n');
    const r = zmesh('validate', bad);
    assert.equal(r.code, 2);
    for (const code of ['E_NAME_FORMAT', 'E_VERSION', 'E_RANGE_HOST_BITS']) assert.match(r.stdout, new RegExp(code));
    assert.match(r.stdout, /3 problems/);

    const j = zmesh('validate', bad, '--json');
    assert.equal(j.code, 2);
    const out = JSON.parse(j.stdout);
    assert.equal(out.valid, false);
    assert.deepEqual(out.problems.map((p: { path: string }) => p.path), ['tenant', 'version', 'networks[0].ipRange']);

    const key = join(dir, 'tenant.key');
    zmesh('keygen', 'tenant', key);
    const s = zmesh('sign', bad, '--key', key);
    assert.equal(s.code, 2);
    assert.equal(s.stdout, '');
    assert.match(s.stderr, /E_VERSION/);
  });
});
