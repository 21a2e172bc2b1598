// RFC 8785 (JCS) canonical JSON, checked against the RFC's own examples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalize, CanonicalizeError } from '../../src/blueprint/index.ts';

test('RFC 8785 section 3.2.2: the sample object canonicalizes to the section 3.2.3 output', () => {
  // The input text exactly as the RFC shows it, parsed as JSON.
  const input = `{
    "numbers": [333333333.33333329, 1E30, 4.50,
                2e-3, 0.000000000000000000000000001],
    "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
    "literals": [null, true, false]
  }`;
  const want = '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
  assert.equal(canonicalize(JSON.parse(input)), want);
  // Section 3.2.4: the UTF-8 bytes end with the string member (hex as printed in the RFC).
  const tail = '22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d';
  assert.ok(Buffer.from(canonicalize(JSON.parse(input)), 'utf8').toString('hex').endsWith(tail.replaceAll(' ', '')));
});

test('RFC 8785 section 3.2.3: property names sort by UTF-16 code units', () => {
  const input = `{
    "\\u20ac": "Euro Sign",
    "\\r": "Carriage Return",
    "\\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\\ud83d\\ude00": "Emoji: Grinning Face",
    "\\u0080": "Control",
    "\\u00f6": "Latin Small Letter O With Diaeresis"
  }`;
  const want = '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
    '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}';
  assert.equal(canonicalize(JSON.parse(input)), want);
});

const appendixB: Array<[string, string | null]> = [
  ['0000000000000000', '0'],
  ['8000000000000000', '0'],
  ['0000000000000001', '5e-324'],
  ['8000000000000001', '-5e-324'],
  ['7fefffffffffffff', '1.7976931348623157e+308'],
  ['ffefffffffffffff', '-1.7976931348623157e+308'],
  ['4340000000000000', '9007199254740992'],
  ['c340000000000000', '-9007199254740992'],
  ['4430000000000000', '295147905179352830000'],
  ['7fffffffffffffff', null],
  ['7ff0000000000000', null],
  ['44b52d02c7e14af5', '9.999999999999997e+22'],
  ['44b52d02c7e14af6', '1e+23'],
  ['44b52d02c7e14af7', '1.0000000000000001e+23'],
  ['444b1ae4d6e2ef4e', '999999999999999700000'],
  ['444b1ae4d6e2ef4f', '999999999999999900000'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['41b3de4355555553', '333333333.3333332'],
  ['41b3de4355555554', '333333333.33333325'],
  ['41b3de4355555555', '333333333.3333333'],
  ['41b3de4355555556', '333333333.3333334'],
  ['41b3de4355555557', '333333333.33333343'],
  ['becbf647612f3696', '-0.0000033333333333333333'],
  ['43143ff3c1cb0959', '1424953923781206.2'],
];

test('RFC 8785 appendix B: IEEE 754 numbers serialize as ECMAScript does; NaN and Infinity are refused', () => {
  for (const [hex, want] of appendixB) {
    const value = Buffer.from(hex, 'hex').readDoubleBE(0);
    if (want === null) assert.throws(() => canonicalize([value]), CanonicalizeError, hex);
    else assert.equal(canonicalize(value), want, hex);
  }
});

const shapes: Array<[string, unknown, string]> = [
  ['nested objects sort at every level', { b: { d: 1, c: [{ z: 1, y: 2 }] }, a: [] }, '{"a":[],"b":{"c":[{"y":2,"z":1}],"d":1}}'],
  ['arrays keep their order', [3, 1, 2], '[3,1,2]'],
  ['undefined members are omitted', { a: undefined, b: 1 }, '{"b":1}'],
  ['control characters use lowercase \\u escapes', '\u0001\u001f\b\t\n\f\r', '"\\u0001\\u001f\\b\\t\\n\\f\\r"'],
  ['non-ASCII is not escaped', 'é€😀', '"é€😀"'],
  ['toJSON is honoured', { k: { toJSON: () => 'x' } }, '{"k":"x"}'],
  ['null-prototype objects are plain', Object.assign(Object.create(null), { b: 2, a: 1 }), '{"a":1,"b":2}'],
  ['empty containers', { o: {}, a: [] }, '{"a":[],"o":{}}'],
];

test('shapes: sorting, omission and escaping', () => {
  for (const [name, value, want] of shapes) assert.equal(canonicalize(value), want, name);
});

test('values with no canonical form are refused', () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const refused: Array<[string, unknown]> = [
    ['NaN', { n: NaN }],
    ['-Infinity', [-Infinity]],
    ['bigint', 1n],
    ['function', { f: () => 1 }],
    ['symbol', [Symbol('s')]],
    ['undefined at the top', undefined],
    ['undefined in an array', [undefined]],
    ['a cycle', cyclic],
    ['a lone surrogate', '\ud800'],
    ['a lone surrogate in a key', { '\udc00': 1 }],
    ['a Map', new Map([[1, 2]])],
  ];
  for (const [name, value] of refused) assert.throws(() => canonicalize(value), CanonicalizeError, name);
});

test('the same data in any key order gives the same text', () => {
  assert.equal(canonicalize({ a: 1, b: [1, { c: 2, d: 3 }] }), canonicalize({ b: [1, { d: 3, c: 2 }], a: 1 }));
});
