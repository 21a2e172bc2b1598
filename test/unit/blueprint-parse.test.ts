// Text parsing (YAML and JSON), its limits against hostile input, and byte-size units.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.ts';
import { MAX_TEXT_BYTES, parseBlueprint, parseSize, parseText, validateBlueprint } from '../../src/blueprint/index.ts';

const YAML = `
tenant: acme
name: shop
version: 2
networks:
  - name: backend
    ipRange: 10.20.0.0/16
    nodes: [node-a]
`;

function codesOf(text: string): string[][] {
  try {
    parseBlueprint(text);
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    return err.problems.map((p) => [p.code, p.path]);
  }
  return [];
}

test('YAML and JSON of the same blueprint give the same object', () => {
  const fromYaml = parseBlueprint(YAML);
  const fromJson = parseBlueprint(JSON.stringify(validateBlueprint(fromYaml)));
  assert.deepEqual(fromJson, fromYaml);
  assert.equal(fromYaml.networks[0].subnetPrefix, 24);
});

const syntaxCases: Array<{ name: string; text: string; want: string[][] }> = [
  { name: 'unclosed flow list', text: 'tenant: [a', want: [['E_YAML_SYNTAX', '']] },
  { name: 'duplicate YAML key', text: `${YAML}version: 3\n`, want: [['E_YAML_SYNTAX', '']] },
  { name: 'duplicate JSON key', text: '{"tenant": "a", "tenant": "b"}', want: [['E_YAML_SYNTAX', '']] },
  { name: 'duplicate JSON key spelled with an escape', text: '{"tenant": "a", "\\u0074enant": "b"}', want: [['E_YAML_SYNTAX', '']] },
  { name: 'duplicate JSON key in a nested object', text: '{"networks": [{"name": "a", "x": {}, "name": "b"}]}', want: [['E_YAML_SYNTAX', '']] },
  { name: 'deep JSON nesting', text: `{"tenant": ${'['.repeat(100)}${']'.repeat(100)}}`, want: [['E_TOO_DEEP', '']] },
  { name: 'JSON __proto__ key is an unknown field', text: '{"__proto__": {"x": 1}}', want: [['E_UNKNOWN_FIELD', '__proto__'], ['E_REQUIRED', 'tenant'], ['E_REQUIRED', 'name'], ['E_REQUIRED', 'version'], ['E_REQUIRED', 'networks']] },
  { name: 'two documents', text: `${YAML}---\n${YAML}`, want: [['E_YAML_SYNTAX', '']] },
  { name: 'empty text', text: '  \n# nothing\n', want: [['E_YAML_SYNTAX', '']] },
  { name: 'explicit tag', text: YAML.replace('name: shop', 'name: !!binary c2hvcA=='), want: [['E_YAML_SYNTAX', '']] },
  { name: 'custom tag', text: YAML.replace('name: shop', 'name: !shop x'), want: [['E_YAML_SYNTAX', '']] },
  {
    name: 'alias bomb',
    text: 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
    want: [['E_YAML_SYNTAX', '']],
  },
  { name: 'merge keys are plain (unknown) keys', text: `${YAML}<<: {x: 1}\n`, want: [['E_UNKNOWN_FIELD', '["<<"]']] },
  { name: 'YAML .nan is rejected', text: YAML.replace('version: 2', 'version: .nan'), want: [['E_TYPE', 'version']] },
  { name: 'YAML .inf is rejected', text: YAML.replace('version: 2', 'version: .inf'), want: [['E_TYPE', 'version']] },
  { name: 'YAML 1.1 "yes" is a string', text: `${YAML}    egress: yes\n`, want: [['E_TYPE', 'networks[0].egress']] },
  { name: 'deep flow nesting', text: `tenant: ${'['.repeat(100)}${']'.repeat(100)}`, want: [['E_TOO_DEEP', '']] },
  { name: 'deep block nesting', text: Array.from({ length: 1300 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'), want: [['E_TOO_DEEP', '']] },
  { name: 'text over 1 MiB', text: `# ${'x'.repeat(MAX_TEXT_BYTES)}\n${YAML}`, want: [['E_TOO_LARGE', '']] },
  { name: 'multi-byte text over 1 MiB', text: `# ${'€'.repeat(MAX_TEXT_BYTES / 3 + 1)}\n${YAML}`, want: [['E_TOO_LARGE', '']] },
];

for (const c of syntaxCases) {
  test(`text: ${c.name}`, () => {
    assert.deepEqual(codesOf(c.text), c.want);
  });
}

test('syntax errors say where', () => {
  assert.throws(
    () => parseText('a: 1\na: 2\n'),
    (e: unknown) => e instanceof ValidationError && /line 2, column 1/.test(e.problems[0].message),
  );
});

test('brackets inside quoted strings and comments do not count as nesting', () => {
  const text = `${YAML}    access: [{name: dev}]\n# ${'['.repeat(200)}\n`;
  assert.equal(parseBlueprint(text).networks[0].access[0].name, 'dev');
  const quoted = YAML.replace('nodes: [node-a]', `nodes: [node-a]\nworkloads: [{name: w, node: node-a, image: x, network: {name: backend}, command: ["${'['.repeat(200)}", '${'{'.repeat(100)}']}]`);
  assert.equal(parseBlueprint(quoted).workloads[0].command[0].length, 200);
});

test('parseText never returns objects with a polluted prototype', () => {
  const v = parseText('__proto__: {polluted: 1}\nx: 1') as Record<string, unknown>;
  assert.ok(Object.hasOwn(v, '__proto__'));
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

const sizeCases: Array<[unknown, number | string]> = [
  [0, 0],
  [1048576, 1048576],
  ['1048576', 1048576],
  ['1K', 1000],
  ['1Ki', 1024],
  ['256Mi', 268435456],
  ['512M', 512000000],
  ['1G', 1e9],
  ['1Gi', 1073741824],
  ['2Ti', 2 * 1024 ** 4],
  ['1.5Gi', 1610612736],
  ['0.5K', 500],
  ['1.5', 'E_SIZE_FORMAT'],
  ['1.0001K', 'E_SIZE_FORMAT'],
  ['1 Gi', 'E_SIZE_FORMAT'],
  ['1gi', 'E_SIZE_FORMAT'],
  ['1GB', 'E_SIZE_FORMAT'],
  ['-1', 'E_SIZE_FORMAT'],
  ['01Mi', 'E_SIZE_FORMAT'],
  ['', 'E_SIZE_FORMAT'],
  [1.5, 'E_SIZE_FORMAT'],
  [-1, 'E_SIZE_FORMAT'],
  [2 ** 53, 'E_SIZE_RANGE'],
  ['9000Ti', 'E_SIZE_RANGE'],
  [NaN, 'E_TYPE'],
  [true, 'E_TYPE'],
];

test('size units: exact bytes or the right code', () => {
  for (const [input, want] of sizeCases) {
    const r = parseSize(input);
    const got = r.ok ? r.bytes : { type: 'E_TYPE', format: 'E_SIZE_FORMAT', range: 'E_SIZE_RANGE' }[r.kind];
    assert.equal(got, want, `parseSize(${JSON.stringify(input)})`);
  }
});
