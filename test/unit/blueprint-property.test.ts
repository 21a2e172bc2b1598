// Property tests: hostile or random input only ever yields a ValidationError, and whatever is accepted
// normalizes to a fixed point.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ValidationError } from '../../src/errors.ts';
import { canonicalize, parseBlueprint, parseText, validateBlueprint } from '../../src/blueprint/index.ts';

function onlyValidationErrors(f: () => unknown): unknown {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    assert.ok(err.problems.length > 0);
    for (const p of err.problems) {
      assert.match(p.code, /^E_[A-Z0-9_]+$/);
      assert.equal(typeof p.path, 'string');
      assert.ok(p.message.length > 0 && p.hint.length > 0, `${p.code} has a message and a hint`);
    }
    return undefined;
  }
}

test('property: arbitrary values give a blueprint or a ValidationError, nothing else', () => {
  fc.assert(
    fc.property(fc.oneof(fc.anything({ withNullPrototype: true, withObjectString: true }), fc.jsonValue()), (raw) => {
      onlyValidationErrors(() => validateBlueprint(raw));
    }),
    { numRuns: 500, seed: 1 },
  );
});

/** Mostly the valid choices, sometimes a broken one. */
function mostly<T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });
}
const node = mostly(fc.constantFrom('node-a', 'node-b'), fc.constantFrom('Bad', '-x', ''));
const label = mostly(fc.constantFrom('a', 'b', 'web', 'db'), fc.constantFrom('Bad', '-x', ''));
const size = mostly(
  fc.oneof(fc.integer({ min: 2 ** 22, max: 2 ** 34 }), fc.constantFrom('256Mi', '1G', '512M', '1Gi', '1.5Gi')),
  fc.oneof(fc.integer({ min: -1, max: 2 ** 21 }), fc.constantFrom('3Mi', 'huge', '1.5')),
);
const network = fc.record(
  {
    name: label,
    ipRange: mostly(fc.constantFrom('10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/22'), fc.constantFrom('10.1.128.0/17', '10.4.0.1/16', '10.0.0.0/7', 'nope')),
    subnetPrefix: mostly(fc.integer({ min: 23, max: 29 }), fc.integer({ min: 15, max: 30 })),
    nodes: fc.uniqueArray(node, { minLength: 1, maxLength: 2 }),
    access: fc.array(fc.record({ name: label }), { maxLength: 1 }),
    egress: mostly(fc.boolean(), fc.constant('yes' as unknown as boolean)),
  },
  { requiredKeys: ['name', 'ipRange', 'nodes'] },
);
const workload = fc.record(
  {
    name: label,
    node: fc.constant('node-a'),
    image: mostly(fc.constantFrom('nginx', 'nginx:1.27'), fc.constantFrom('a b', '')),
    command: fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
    network: fc.record({ name: fc.constant('a'), ip: mostly(fc.constantFrom('10.1.0.5', '10.2.0.5'), fc.constantFrom('10.9.9.9', '1.2.3')) }, { requiredKeys: ['name'] }),
    cpu: mostly(fc.double({ min: 0.001, max: 256, noNaN: true }), fc.double({ min: -1, max: 300, noNaN: true })),
    memory: size,
    volumes: fc.constant([]),
  },
  { requiredKeys: ['name', 'node', 'image', 'network'] },
);
const blueprintish = fc.record(
  {
    tenant: label,
    name: label,
    version: mostly(fc.integer({ min: 1, max: 2 ** 40 }), fc.constantFrom(0, -1, 1.5, 2 ** 53)),
    networks: fc.array(network, { maxLength: 2 }),
    workloads: fc.array(workload, { maxLength: 1 }),
    volumes: fc.array(fc.record({ name: label, node, size }), { maxLength: 2 }),
  },
  { requiredKeys: ['tenant', 'name', 'version', 'networks'] },
);

test('property: near-valid blueprints are accepted or rejected cleanly; accepted ones are a fixed point', () => {
  let accepted = 0;
  fc.assert(
    fc.property(blueprintish, (raw) => {
      const bp = onlyValidationErrors(() => validateBlueprint(raw));
      if (bp === undefined) return;
      accepted++;
      const again = validateBlueprint(bp);
      assert.deepEqual(again, bp);
      assert.equal(canonicalize(again), canonicalize(bp));
      assert.deepEqual(parseBlueprint(JSON.stringify(bp)), bp);
    }),
    { numRuns: 1000, seed: 2 },
  );
  assert.ok(accepted >= 100, `only ${accepted} of 1000 generated blueprints were accepted; the generator is too hostile`);
});

const yamlBits = fc.constantFrom('- ', '? ', ': ', '[', ']', '{', '}', ',', '"', "'", '#', '\n', '  ', '&a ', '*a', '!!str ', '|\n', 'x', '1', '__proto__', '---\n', '\\', '\t');

test('property: arbitrary text gives data or a ValidationError, never a crash', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.array(yamlBits, { maxLength: 300 }).map((a) => a.join(''))), (text) => {
      onlyValidationErrors(() => parseText(text));
      onlyValidationErrors(() => parseBlueprint(text));
    }),
    { numRuns: 1000, seed: 3 },
  );
});
