// The CLI's start-up (issues #17/#18): commands are declared without their implementations, so `zmesh --version`,
// `--help` and `completion` load commander alone (or at least none of the heavy packages), and `zmesh plan` loads
// the planner's packages only. Each case runs the CLI in a child process with test/helpers/load-trace.mjs, which
// records every module the process loaded (ES imports through a module hook, CommonJS files from require's cache).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { loadSchema, schemaErrors, structurallyClean, structuralProblems, SCHEMA_NAMES } from '../../src/cli/schemas.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Never loaded by a command that does not talk to the agent, etcd, Docker or a process (nor by `plan`). */
const HEAVY = ['execa', 'fastify', 'etcd3', 'dockerode', 'better-sqlite3', 'koffi', 'pino'];

const dir = mkdtempSync(join(tmpdir(), 'zmesh-start-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

let runs = 0;
/** Runs `zmesh ARGS` from source: exit status, stdout, and the npm packages it loaded (tsx and esbuild, the runner, left out). */
function zmesh(...args: string[]): { status: number | null; out: string; err: string; packages: string[] } {
  const trace = join(dir, `trace-${runs++}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', join(ROOT, 'test/helpers/load-trace.mjs'), join(ROOT, 'src/cli/main.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ZMESH_LOAD_TRACE: trace, ZMESH_CONFIG: join(dir, 'no-config.yaml'), NO_COLOR: '1' },
  });
  const packages = new Set<string>();
  for (const m of readFileSync(trace, 'utf8').matchAll(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//g)) packages.add(m[1]);
  packages.delete('tsx');
  packages.delete('esbuild');
  return { status: r.status, out: r.stdout, err: r.stderr, packages: [...packages].sort() };
}

test('the load trace sees what a program loads (execa through `zmesh version`, which asks wireguard-go)', () => {
  const r = zmesh('version', '--wireguard-go', '/bin/true', '--json');
  assert.equal(r.status, 0, r.err);
  assert.equal((JSON.parse(r.out) as { zmesh: string }).zmesh, VERSION);
  assert.ok(r.packages.includes('execa'), r.packages.join(' '));
});

test('--version, --help and a command help load commander and nothing else', () => {
  const v = zmesh('--version');
  assert.equal(v.status, 0, v.err);
  assert.equal(v.out, `${VERSION}\n`);
  assert.deepEqual(v.packages, ['commander']);
  for (const args of [['--help'], ['plan', '--help'], ['keygen', '--help'], ['controller', 'node', '--help']]) {
    const h = zmesh(...args);
    assert.equal(h.status, 0, `${args.join(' ')}: ${h.err}`);
    assert.match(h.out, /^Usage: zmesh/, args.join(' '));
    assert.deepEqual(h.packages, ['commander'], args.join(' '));
  }
});

test('completion walks the whole declared tree without loading a heavy package', () => {
  const r = zmesh('completion', 'bash');
  assert.equal(r.status, 0, r.err);
  assert.match(r.out, /'controller node'\) echo /);
  assert.match(r.out, /'plan part'\) echo /);
  assert.deepEqual(r.packages.filter((p) => [...HEAVY, 'ajv'].includes(p)), []);
});

test('plan loads the planner and its parsers only: commander, yaml, @noble (not ajv for a well-formed inventory)', () => {
  const out = join(dir, 'plan.json');
  const r = zmesh('plan', join(ROOT, 'examples/tenant-blueprint.yaml'), '--nodes', join(ROOT, 'examples/nodes.yaml'), '--seed', 'start', '--out', out);
  assert.equal(r.status, 0, r.err);
  assert.equal((JSON.parse(readFileSync(out, 'utf8')) as { format: string }).format, 'zmesh-plan/2');
  assert.deepEqual(r.packages.filter((p) => HEAVY.includes(p)), []);
  // ajv is not loaded: a well-formed inventory passes structurallyClean (below) without it.
  const allowed = ['commander', 'yaml', '@noble/ciphers', '@noble/curves', '@noble/hashes'];
  assert.deepEqual(r.packages.filter((p) => !allowed.includes(p)), []);
});

test('plan of JSON inputs loads neither yaml nor ajv: exactly commander and @noble', () => {
  const bp = join(dir, 'bp.json');
  const inv = join(dir, 'nodes.json');
  writeFileSync(bp, JSON.stringify(parseYaml(readFileSync(join(ROOT, 'examples/tenant-blueprint.yaml'), 'utf8'))));
  writeFileSync(inv, JSON.stringify(parseYaml(readFileSync(join(ROOT, 'examples/nodes.yaml'), 'utf8'))));
  const out = join(dir, 'plan-json.json');
  const r = zmesh('plan', bp, '--nodes', inv, '--seed', 'start', '--out', out);
  assert.equal(r.status, 0, r.err);
  assert.equal((JSON.parse(readFileSync(out, 'utf8')) as { format: string }).format, 'zmesh-plan/2');
  assert.deepEqual(r.packages, ['@noble/ciphers', '@noble/curves', '@noble/hashes', 'commander']);
});

test('usage errors keep exit 2 and commander’s message when the implementation is not loaded', () => {
  const r = zmesh('plan', 'x.yaml');
  assert.equal(r.status, 2);
  assert.equal(r.err, "error: required option '--nodes <inventory>' not specified\n");
  // The preAction hook reads the CLI config (yaml); the planner's reader (ajv) is not loaded.
  assert.deepEqual(r.packages.filter((p) => [...HEAVY, 'ajv'].includes(p)), []);
});

const STRUCTURAL = new Set(['additionalProperties', 'required', 'type']);
const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

test('structurallyClean is true exactly when ajv finds no unknown field, missing field or wrong type (inventory)', () => {
  const inventory = loadSchema('inventory');
  const value = fc.oneof(
    fc.constantFrom('node-a', KEY, '10.0.0.1', '', 1, 51820, 1.5, -1, true, null, [], {}, ['198.51.100.1'], [1, 2], ['x', 3]),
    fc.dictionary(fc.constantFrom('id', 'x'), fc.constantFrom('a', 1)),
  );
  const node = fc.dictionary(fc.constantFrom('id', 'publicKey', 'endpoints', 'reservedPorts', 'publickey', 'extra'), value, { maxKeys: 5 });
  const doc = fc.oneof(
    fc.record({ nodes: fc.array(node, { maxLength: 4 }) }),
    fc.dictionary(fc.constantFrom('nodes', 'node', 'tenants'), fc.oneof(fc.array(node, { maxLength: 3 }), value), { maxKeys: 2 }),
    value,
  );
  fc.assert(
    fc.property(doc, (d) => {
      const structural = schemaErrors('inventory', d).filter((e) => STRUCTURAL.has(e.keyword));
      assert.equal(structurallyClean(inventory, d), structural.length === 0);
    }),
    { numRuns: 2000, seed: 17 },
  );
  const good = { nodes: [{ id: 'node-a', publicKey: KEY, endpoints: ['198.51.100.1'] }, { id: 'node-b', publicKey: KEY }] };
  assert.equal(structurallyClean(inventory, good), true);
  assert.deepEqual(structuralProblems('inventory', good), []);
  // Found by the walk, reported by ajv as before: the unknown field with its suggestion, then the missing one.
  assert.deepEqual(structuralProblems('inventory', { nodes: [{ id: 'node-a', publickey: KEY }] }), [
    { code: 'E_UNKNOWN_FIELD', path: 'nodes[0].publickey', message: 'unknown field "publickey", did you mean publicKey?', hint: 'rename it to publicKey' },
    { code: 'E_REQUIRED', path: 'nodes[0].publicKey', message: 'missing', hint: 'add it (schemas/inventory.schema.json)' },
  ]);
});

test('structurallyClean never says clean where ajv finds a structural problem, for every schema (null: it cannot tell)', () => {
  const docs: unknown[] = [{}, [], 'x', { tenant: 'acme', name: 'shop', version: 1, networks: [] }, { nodes: [] }, { nodeId: 'a', extra: 1 }, { nodes: [{ id: 'a' }] }];
  for (const name of SCHEMA_NAMES) {
    for (const d of docs) {
      const clean = structurallyClean(loadSchema(name), d);
      if (clean === true) assert.deepEqual(schemaErrors(name, d).filter((e) => STRUCTURAL.has(e.keyword)), [], `${name} ${JSON.stringify(d)}`);
    }
  }
});
