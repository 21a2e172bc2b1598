// Signing and verification: round trip, envelope shape, tampering with any field, tenant keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Key } from '../../src/crypto/keys.ts';
import { ValidationError } from '../../src/errors.ts';
import {
  canonicalize,
  loadBlueprintOrSigned,
  parseBlueprint,
  signBlueprint,
  tenantPublicKey,
  validateBlueprint,
  verifySigned,
  type Blueprint,
  type SignedBlueprint,
} from '../../src/blueprint/index.ts';

const TENANT = Key.fromBytes(new Uint8Array(32).fill(7));
const OTHER = Key.fromBytes(new Uint8Array(32).fill(9));
const DEVICE_KEY = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';

const BLUEPRINT = parseBlueprint(`
tenant: acme
name: shop
version: 7
networks:
  - name: backend
    ipRange: 10.20.0.0/16
    nodes: [node-a, node-b, node-c]
    access: [{name: laptop}, {name: phone, publicKey: ${DEVICE_KEY}}]
    egress: true
  - name: admin
    ipRange: 10.30.0.0/20
    subnetPrefix: 26
    nodes: [node-a]
workloads:
  - {name: web, node: node-a, image: nginx:1.27, network: {name: backend, ip: 10.20.0.10}, cpu: 0.5, memory: 512Mi,
     command: [nginx, -g, daemon off;], volumes: [{name: data, mount: /srv/data}]}
  - {name: db, node: node-b, image: postgres:16, network: {name: backend}}
volumes:
  - {name: data, node: node-a, size: 2Gi}
`);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

function signed(): SignedBlueprint {
  return JSON.parse(JSON.stringify(signBlueprint(BLUEPRINT, TENANT)));
}

function codeOf(f: () => unknown): string[][] {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    return err.problems.map((p) => [p.code, p.path]);
  }
  return [];
}

test('sign → verify round trip gives the blueprint back', () => {
  const env = signed();
  assert.equal(env.format, 'zmesh-signed-blueprint/1');
  assert.equal(env.signature.alg, 'ed25519');
  assert.equal(env.signature.publicKey, tenantPublicKey(TENANT));
  assert.deepEqual(verifySigned(env), BLUEPRINT);
  assert.deepEqual(verifySigned(env, { tenantKey: tenantPublicKey(TENANT) }), BLUEPRINT);
  assert.deepEqual(signBlueprint(BLUEPRINT, TENANT), signBlueprint(BLUEPRINT, TENANT), 'ed25519 is deterministic');
});

test('the signature covers "zmesh-blueprint-v1\\n" + the canonical form', () => {
  const env = signed();
  const message = new TextEncoder().encode('zmesh-blueprint-v1\n' + canonicalize(BLUEPRINT));
  const sig = new Uint8Array(Buffer.from(env.signature.signature, 'base64'));
  assert.ok(ed25519.verify(sig, message, Key.parse(env.signature.publicKey).bytes));
});

test('a valid signature by another key fails with E_TENANT_KEY; a malformed expected key with E_KEY_FORMAT', () => {
  const env = signed();
  assert.deepEqual(codeOf(() => verifySigned(env, { tenantKey: tenantPublicKey(OTHER) })), [['E_TENANT_KEY', 'signature.publicKey']]);
  assert.deepEqual(codeOf(() => verifySigned(env, { tenantKey: 'nope' })), [['E_KEY_FORMAT', 'tenantKey']]);
});

test('swapping in another public key fails with E_SIGNATURE', () => {
  const env = signed();
  env.signature.publicKey = tenantPublicKey(OTHER);
  assert.deepEqual(codeOf(() => verifySigned(env)), [['E_SIGNATURE', 'signature.signature']]);
});

const shapeCases: Array<[string, (e: Any) => unknown, string[][]]> = [
  ['not a mapping', () => [], [['E_ENVELOPE', '']]],
  ['format missing', (e) => delete e.format, [['E_ENVELOPE', 'format']]],
  ['format of another version', (e) => (e.format = 'zmesh-signed-blueprint/2'), [['E_ENVELOPE', 'format']]],
  ['extra top-level field', (e) => (e.note = 'hi'), [['E_ENVELOPE', 'note']]],
  ['signature not a mapping', (e) => (e.signature = 'abc'), [['E_ENVELOPE', 'signature']]],
  ['alg other than ed25519', (e) => (e.signature.alg = 'rsa'), [['E_ENVELOPE', 'signature.alg']]],
  ['publicKey malformed', (e) => (e.signature.publicKey = 'AAAA'), [['E_ENVELOPE', 'signature.publicKey']]],
  ['signature too short', (e) => (e.signature.signature = e.signature.signature.slice(4)), [['E_ENVELOPE', 'signature.signature']]],
  ['signature non-canonical base64', (e) => (e.signature.signature = e.signature.signature.slice(0, 85) + 'B=='), [['E_ENVELOPE', 'signature.signature']]],
  ['extra signature field', (e) => (e.signature.kid = 'x'), [['E_ENVELOPE', 'signature.kid']]],
  ['blueprint missing', (e) => delete e.blueprint, [['E_ENVELOPE', 'blueprint']]],
  ['blueprint invalid', (e) => (e.blueprint.version = 0), [['E_VERSION', 'blueprint.version']]],
  ['blueprint not normalized', (e) => (e.blueprint.workloads[0].memory = '512Mi'), [['E_ENVELOPE', 'blueprint']]],
  ['blueprint with a default left out', (e) => delete e.blueprint.networks[0].egress, [['E_ENVELOPE', 'blueprint']]],
];

for (const [name, edit, want] of shapeCases) {
  test(`envelope: ${name}`, () => {
    let env: Any = signed();
    const replaced = edit(env);
    if (Array.isArray(replaced)) env = replaced;
    assert.deepEqual(codeOf(() => verifySigned(env)), want);
  });
}

const tamperCases: Array<[string, (b: Any) => void]> = [
  ['tenant', (b) => (b.tenant = 'acme2')],
  ['name', (b) => (b.name = 'shop2')],
  ['version', (b) => (b.version = 8)],
  ['network name', (b) => (b.networks[1].name = 'admin2')],
  ['ipRange', (b) => (b.networks[1].ipRange = '10.40.0.0/20')],
  ['subnetPrefix', (b) => (b.networks[1].subnetPrefix = 27)],
  ['a node added', (b) => b.networks[0].nodes.push('node-d')],
  ['nodes reordered', (b) => b.networks[0].nodes.reverse()],
  ['access device renamed', (b) => (b.networks[0].access[0].name = 'tablet')],
  ['access key added', (b) => (b.networks[0].access[0].publicKey = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=')],
  ['access key removed', (b) => delete b.networks[0].access[1].publicKey],
  ['egress', (b) => (b.networks[0].egress = false)],
  ['workload image', (b) => (b.workloads[0].image = 'nginx:1.28')],
  ['workload node', (b) => { b.workloads[1].node = 'node-c'; }],
  ['workload command', (b) => (b.workloads[0].command[2] = 'daemon on;')],
  ['workload ip', (b) => (b.workloads[0].network.ip = '10.20.0.11')],
  ['workload ip removed', (b) => delete b.workloads[0].network.ip],
  ['cpu', (b) => (b.workloads[0].cpu = 0.75)],
  ['memory', (b) => (b.workloads[0].memory += 1)],
  ['mount', (b) => (b.workloads[0].volumes[0].mount = '/srv/other')],
  ['volume size', (b) => (b.volumes[0].size *= 2)],
  ['a workload removed', (b) => b.workloads.pop()],
];

test('tampering with any field of a signed blueprint fails with E_SIGNATURE', () => {
  for (const [name, edit] of tamperCases) {
    const env: Any = signed();
    edit(env.blueprint);
    validateBlueprint(env.blueprint); // still a valid blueprint: only the signature can catch it
    assert.deepEqual(codeOf(() => verifySigned(env)), [['E_SIGNATURE', 'signature.signature']], name);
  }
});

test('a flipped bit in the signature fails with E_SIGNATURE', () => {
  const env = signed();
  const sig = Buffer.from(env.signature.signature, 'base64');
  sig[10] ^= 1;
  env.signature.signature = sig.toString('base64');
  assert.deepEqual(codeOf(() => verifySigned(env)), [['E_SIGNATURE', 'signature.signature']]);
});

/** Every place in a JSON value, as a list of keys. */
function placesOf(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...placesOf(x, [...at, i])));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...placesOf(x, [...at, k]));
  return out;
}

function mutate(v: unknown, kind: number, text: string): unknown {
  if (typeof v === 'string') return kind % 2 === 0 ? v + (text || 'x') : text;
  if (typeof v === 'number') return [v + 1, v - 1, v * 2, v / 2][kind % 4];
  if (typeof v === 'boolean') return !v;
  if (Array.isArray(v)) return [v.slice(1), [...v, ...v.slice(0, 1)], [...v].reverse(), [...v, text]][kind % 4];
  const o = { ...(v as Record<string, unknown>) };
  const keys = Object.keys(o);
  if (kind % 2 === 0 && keys.length > 0) delete o[keys[kind % keys.length]];
  else o[text || 'extra'] = kind;
  return o;
}

test('property: any change anywhere in the blueprint breaks verification', () => {
  const original = signed();
  const places = placesOf(original.blueprint).filter((p) => p.length > 0);
  const before = canonicalize(original.blueprint);
  fc.assert(
    fc.property(fc.nat(), fc.nat(), fc.string({ maxLength: 6 }), (where, kind, text) => {
      const env: Any = structuredClone(original);
      const place = places[where % places.length];
      let parent = env.blueprint;
      for (const k of place.slice(0, -1)) parent = parent[k];
      parent[place[place.length - 1]] = mutate(parent[place[place.length - 1]], kind, text);
      fc.pre(canonicalize(env.blueprint) !== before);
      let bp: Blueprint | null = null;
      try {
        bp = validateBlueprint(env.blueprint);
      } catch {
        // an invalid blueprint: verification must fail too (checked below)
      }
      const codes = codeOf(() => verifySigned(env)).map(([c]) => c);
      assert.ok(codes.length > 0, `mutating ${place.join('.')} was not detected`);
      if (bp && canonicalize(bp) === canonicalize(env.blueprint)) assert.deepEqual(codes, ['E_SIGNATURE']);
    }),
    { numRuns: 600, seed: 20240601 },
  );
});

test('loadBlueprintOrSigned accepts a plain blueprint or a verified envelope', () => {
  const plain = loadBlueprintOrSigned('tenant: a\nname: b\nversion: 1\nnetworks: []\n');
  assert.equal(plain.signed, undefined);
  assert.equal(plain.blueprint.tenant, 'a');
  const text = JSON.stringify(signed());
  const loaded = loadBlueprintOrSigned(text, { tenantKey: tenantPublicKey(TENANT) });
  assert.deepEqual(loaded.blueprint, BLUEPRINT);
  assert.deepEqual(loaded.signed, signed());
  assert.deepEqual(codeOf(() => loadBlueprintOrSigned(text, { tenantKey: tenantPublicKey(OTHER) })), [['E_TENANT_KEY', 'signature.publicKey']]);
  assert.deepEqual(codeOf(() => loadBlueprintOrSigned('tenant: a\nname: b\nversion: 1\nnetworks: []\n', { requireSigned: true })), [['E_ENVELOPE', '']]);
  const tampered = signed();
  tampered.blueprint.version = 8;
  assert.deepEqual(codeOf(() => loadBlueprintOrSigned(JSON.stringify(tampered))), [['E_SIGNATURE', 'signature.signature']]);
});
