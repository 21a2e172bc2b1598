// The JSON Schemas in schemas/: they compile under ajv's strict mode, every example in the repository passes its
// schema, and schema and zmesh's validators agree on structure (a field one of them does not know, a missing
// field, a wrong type is refused by both). The inventory reader uses the schema at run time: its findings carry
// zmesh's codes ("did you mean", "missing").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SCHEMA_NAMES, schemaErrors, structuralProblems, type SchemaName } from '../../src/cli/schemas.ts';
import { validateBlueprint } from '../../src/blueprint/index.ts';
import { validateInventory } from '../../src/plan/inventory.ts';
import { parseAgentConfig } from '../../src/agent/config.ts';
import { parseLabSpec } from '../../labs/spec.ts';
import { ValidationError } from '../../src/errors.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const read = (p: string) => parseYaml(readFileSync(join(ROOT, p), 'utf8')) as unknown;

test('every schema compiles (ajv strict) and every example passes its schema', () => {
  for (const name of SCHEMA_NAMES) assert.ok(Array.isArray(schemaErrors(name, {})), name); // compiles in strict mode, or throws
  const examples: [SchemaName, string][] = [
    ['blueprint', 'examples/tenant-blueprint.yaml'],
    ['inventory', 'examples/nodes.yaml'],
    ['agent-config', 'examples/agent.yaml'],
    ['lab-spec', 'labs/quickstart.yaml'],
    ...readdirSync(join(ROOT, 'labs/examples')).filter((f) => f.endsWith('.yaml')).map((f): [SchemaName, string] => ['lab-spec', `labs/examples/${f}`]),
  ];
  for (const [name, file] of examples) assert.deepEqual(schemaErrors(name, read(file)), [], file);
});

/** Whether zmesh's own validator refuses `data` (of the kind `name`). */
function zmeshRefuses(name: SchemaName, data: unknown): boolean {
  try {
    if (name === 'blueprint') validateBlueprint(data);
    else if (name === 'inventory') validateInventory(data);
    else if (name === 'agent-config') parseAgentConfig(JSON.stringify(data), '/', () => '');
    else parseLabSpec(JSON.stringify(data), { baseDir: '/', readFile: () => 'tenant: acme\nname: shop\nversion: 1\nnetworks: [{name: n, ipRange: 10.1.0.0/16, nodes: [a]}]\n' });
    return false;
  } catch (e) {
    if (e instanceof ValidationError) return true;
    throw e;
  }
}

test('schema and validators agree on structure: an unknown field, a missing one, a wrong type', () => {
  const bp = read('examples/tenant-blueprint.yaml') as Record<string, unknown> & { networks: Record<string, unknown>[] };
  const inv = read('examples/nodes.yaml') as { nodes: Record<string, unknown>[] };
  const agent = read('examples/agent.yaml') as Record<string, unknown>;
  const lab = { name: 'x', nodes: [{ name: 'a' }], tenants: [{ name: 'acme', blueprints: ['bp.yaml'] }] };
  const net0 = bp.networks[0];
  const cases: [SchemaName, string, unknown][] = [
    ['blueprint', 'a typo at the top', { ...bp, netwroks: [] }],
    ['blueprint', 'a typo in a network', { ...bp, networks: [{ ...net0, iprange: '10.9.0.0/16' }] }],
    ['blueprint', 'no version', { ...bp, version: undefined }],
    ['blueprint', 'nodes a string', { ...bp, networks: [{ ...net0, nodes: 'node-a' }] }],
    ['inventory', 'a typo in a node', { nodes: [{ ...inv.nodes[0], endpoint: [] }] }],
    ['inventory', 'no nodes', {}],
    ['inventory', 'reservedPorts a number', { nodes: [{ ...inv.nodes[0], reservedPorts: 51820 }] }],
    ['agent-config', 'a typo', { ...agent, stateDirectory: '/x' }],
    ['agent-config', 'no stateDir', { ...agent, stateDir: undefined }],
    ['lab-spec', 'a typo at the top', { ...lab, nat: [] }],
    ['lab-spec', 'a typo in a node', { ...lab, nodes: [{ name: 'a', shapping: {} }] }],
  ];
  for (const [name, what, data] of cases) {
    const clean = JSON.parse(JSON.stringify(data)) as unknown;
    assert.ok(schemaErrors(name, clean).length > 0, `${name}, ${what}: the schema accepts it`);
    assert.ok(zmeshRefuses(name, clean), `${name}, ${what}: zmesh accepts it`);
  }
  assert.equal(zmeshRefuses('lab-spec', lab), false);
  assert.deepEqual(schemaErrors('lab-spec', lab), []);
});

test('structural problems carry zmesh codes: did you mean, missing, expected type; values are left to zmesh', () => {
  const key = 'a'.repeat(43) + '=';
  assert.deepEqual(structuralProblems('inventory', { nodes: [{ id: 'Bad Name', publickey: key, reservedPorts: 'x' }] }), [
    { code: 'E_UNKNOWN_FIELD', path: 'nodes[0].publickey', message: 'unknown field "publickey", did you mean publicKey?', hint: 'rename it to publicKey' },
    { code: 'E_REQUIRED', path: 'nodes[0].publicKey', message: 'missing', hint: 'add it (schemas/inventory.schema.json)' },
    { code: 'E_TYPE', path: 'nodes[0].reservedPorts', message: 'expected array', hint: 'use the type the format documents for this field' },
  ]);
  assert.deepEqual(structuralProblems('inventory', { nodes: [{ id: 'a', publicKey: key }] }), []);
});
