// One registry of error codes (src/codes.ts): every code the sources emit is in it, nothing in it is dead,
// docs/errors.md is what scripts/gen-errors-doc.ts writes from it, and the admin API takes its statuses from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { AREAS, CODES, KIND_STATUS, codeInfo, httpStatus, isRegistered } from '../../src/codes.ts';
import { BLUEPRINT_CODES } from '../../src/blueprint/codes.ts';
import { ValidationError, ZmeshError } from '../../src/errors.ts';
import { ERRORS_DOC, areaTable, renderErrorsDoc } from '../../scripts/gen-errors-doc.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const TREES = ['src', 'netns', 'runtime', 'topology', 'labs'];
/** The registry itself names every code as a string; it emits none. */
const REGISTRY_FILES = new Set(['src/codes.ts']);
const CODE = /^E_[A-Z0-9_]+$/;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const p = join(dir, name);
    if (name === 'node_modules') continue;
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

interface Use {
  code: string;
  at: string;
  /** A comparison (`e.code === 'E_X'`, `case 'E_X':`) reads a code; everything else emits one. */
  compared: boolean;
}

/** Every string literal that is a whole error code, in the source trees, with where and how it is used. */
export function codeLiterals(files: { path: string; text: string }[]): Use[] {
  const uses: Use[] = [];
  for (const f of files) {
    const sf = ts.createSourceFile(f.path, f.text, ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      if ((ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) && CODE.test(n.text)) {
        const p = n.parent;
        const compared =
          (ts.isBinaryExpression(p) &&
            [ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken, ts.SyntaxKind.EqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsToken].includes(
              p.operatorToken.kind,
            )) ||
          ts.isCaseClause(p);
        uses.push({ code: n.text, at: `${f.path}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`, compared });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return uses;
}

const FILES = TREES.flatMap(sources)
  .filter((p) => !REGISTRY_FILES.has(p))
  .map((p) => ({ path: p, text: readFileSync(join(ROOT, p), 'utf8') }));
const USES = codeLiterals(FILES);

test('the scanner sees emitted and compared codes, not codes inside longer strings or comments', () => {
  const text = [
    "throw new ZmeshError('E_ONE', 'see E_NOT_A_LITERAL');",
    'const p = { code: "E_TWO", message: `E_THREE` };',
    "if (e.code === 'E_FOUR' || 'E_SIX' !== e.code) x = e.code ?? 'E_FIVE';",
    "switch (c) { case 'E_SEVEN': break; }",
    '// E_EIGHT in a comment, and `${x}E_NINE` in a template',
  ].join('\n');
  const got = codeLiterals([{ path: 'x.ts', text }]).map((u) => `${u.code}${u.compared ? '?' : ''}`);
  assert.deepEqual(got, ['E_ONE', 'E_TWO', 'E_THREE', 'E_FOUR?', 'E_SIX?', 'E_FIVE', 'E_SEVEN?']);
});

test('every code the sources emit or compare is in the registry (src/codes.ts)', () => {
  assert.ok(USES.length > 300, `the scan found ${USES.length} code literals`);
  const missing = new Map<string, string[]>();
  for (const u of USES) if (!isRegistered(u.code)) missing.set(u.code, [...(missing.get(u.code) ?? []), u.at]);
  assert.deepEqual(
    [...missing].map(([code, at]) => `${code} (${at.join(', ')})`),
    [],
    'add these codes to src/codes.ts (kind, status, area, meaning, hint), then run node --import tsx scripts/gen-errors-doc.ts',
  );
});

test('every registered code is emitted somewhere, or reserved with a reason', () => {
  const emitted = new Set(USES.filter((u) => !u.compared).map((u) => u.code));
  const dead = Object.entries(CODES)
    .filter(([code, c]) => !emitted.has(code) && !c.reserved)
    .map(([code]) => code);
  assert.deepEqual(dead, [], 'no source emits these codes: remove them from src/codes.ts, or mark them reserved: "why"');
  const reservedButEmitted = Object.entries(CODES)
    .filter(([code, c]) => c.reserved !== undefined && emitted.has(code))
    .map(([code]) => code);
  assert.deepEqual(reservedButEmitted, [], 'these codes are emitted: drop their reserved mark');
  for (const [code, c] of Object.entries(CODES)) if (c.reserved !== undefined) assert.ok(c.reserved.trim().length >= 10, `${code}: say why it is reserved`);
});

test('each entry is complete: a known area, a kind, a status that fits the kind, one line of meaning and of hint', () => {
  const bad: string[] = [];
  for (const [code, c] of Object.entries(CODES)) {
    if (!CODE.test(code)) bad.push(`${code}: not E_[A-Z0-9_]+`);
    if (!(AREAS as readonly string[]).includes(c.area)) bad.push(`${code}: area ${c.area}`);
    if (!(c.kind in KIND_STATUS)) bad.push(`${code}: kind ${c.kind}`);
    // Invalid input answers 4xx; retryable 503 (or 429); internal 500.
    const fits = c.kind === 'invalid' ? c.status >= 400 && c.status < 500 : c.kind === 'retryable' ? [429, 503].includes(c.status) : c.status === 500;
    if (!fits) bad.push(`${code}: status ${c.status} for kind ${c.kind}`);
    for (const [k, v] of [['meaning', c.meaning], ['hint', c.hint]] as const) {
      if (!v.trim()) bad.push(`${code}: empty ${k}`);
      if (/[\n\r]/.test(v)) bad.push(`${code}: ${k} is not one line`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the blueprint codes join the registry with their meanings and hints', () => {
  for (const [code, b] of Object.entries(BLUEPRINT_CODES)) {
    const c = codeInfo(code);
    assert.ok(c, `${code} is registered`);
    assert.equal(c.kind, 'invalid', code);
    assert.ok(c.meaning.startsWith(b.meaning), `${code}: the meaning starts with the blueprint registry's`);
    assert.equal(c.hint, b.hint, `${code}: the hint is the blueprint registry's`);
  }
});

test('docs/errors.md is what scripts/gen-errors-doc.ts writes from the registry', () => {
  const doc = readFileSync(ERRORS_DOC, 'utf8');
  const want = renderErrorsDoc(doc);
  if (doc !== want) {
    const a = doc.split('\n');
    const b = want.split('\n');
    const i = a.findIndex((l, k) => l !== b[k]);
    assert.fail(`docs/errors.md differs from the registry at line ${i + 1}:\n  doc:       ${a[i]}\n  generated: ${b[i]}\nrun node --import tsx scripts/gen-errors-doc.ts`);
  }
  // Every code has exactly one row.
  for (const code of Object.keys(CODES)) assert.equal(doc.split(`| \`${code}\` |`).length - 1, 1, `${code} has one row in ${relative(ROOT, ERRORS_DOC)}`);
});

test('the generator refuses a doc that would leave an area out, or has stray markers', () => {
  const doc = readFileSync(ERRORS_DOC, 'utf8');
  assert.throws(() => renderErrorsDoc(doc.replace('<!-- /codes:lab -->', '')), /no <!-- \/codes:lab -->/);
  assert.throws(() => renderErrorsDoc(doc.replace(/<!-- codes:lab [^>]*-->\n/, '')), /no table markers for area lab/);
  assert.throws(() => renderErrorsDoc(doc + '\n<!-- codes:nope -->\n<!-- /codes:nope -->\n'), /unknown area "nope"/);
  assert.throws(() => renderErrorsDoc(doc + '\n<!-- codes:lab -->\n<!-- /codes:lab -->\n'), /two tables for area "lab"/);
  assert.match(areaTable('admin'), /^\| Code \| Kind \| HTTP \| Meaning \| What to do \|\n\|---\|/);
  assert.match(areaTable('netns'), /`ls \/proc\/\$\(pidof -s node\)\/fd \\\| wc -l`/, 'a | inside a cell is escaped');
});

test('the admin API statuses come from the registry (the ones tests and docs/admin-api.md pin)', () => {
  const pinned: [string, number][] = [
    ['E_NOT_FOUND', 404],
    ['E_AMBIGUOUS', 409],
    ['E_REPLAY', 409],
    ['E_READ_ONLY', 403],
    ['E_TOO_LARGE', 413],
    ['E_BUSY', 503],
    ['E_REQUEST', 400],
    ['E_CANDIDATES', 400],
    ['E_FLOW', 400],
    ['E_INVALID', 400],
    ['E_NETNS_COMMAND', 503],
    ['E_INTERNAL', 500],
  ];
  assert.deepEqual(
    pinned.map(([code]) => [code, httpStatus(code, 'internal')]),
    pinned,
  );
  // A code the registry lacks (an older or newer peer's) falls back to its kind's status.
  assert.deepEqual([httpStatus('E_SOMETHING_NEW', 'invalid'), httpStatus('E_SOMETHING_NEW', 'retryable'), httpStatus('E_SOMETHING_NEW', 'internal')], [400, 503, 500]);
  const app = readFileSync(join(ROOT, 'src/admin/app.ts'), 'utf8');
  assert.doesNotMatch(app, /code === 'E_[A-Z_]+'\) return [0-9]{3}/, 'no status is decided by code in app.ts');
});

test('under the test runner an error with an unregistered code is a defect', () => {
  assert.ok(process.env.NODE_TEST_CONTEXT !== undefined, 'run with node --test');
  assert.throws(() => new ZmeshError('E_NOT_IN_THE_REGISTRY', 'x'), /E_NOT_IN_THE_REGISTRY is not in the registry: add it to src\/codes\.ts/);
  assert.throws(() => new ValidationError([{ code: 'E_NOT_IN_THE_REGISTRY', path: '', message: 'x', hint: '' }]), /E_NOT_IN_THE_REGISTRY/);
  assert.throws(
    () => new ValidationError([{ code: 'E_TYPE', path: 'a', message: 'x', hint: '' }, { code: 'E_NOPE', path: 'b', message: 'y', hint: '' }]),
    /E_NOPE/,
  );
  // Registered codes construct as before; JSON keeps its shape.
  const e = new ValidationError([{ code: 'E_TYPE', path: 'a', message: 'x', hint: 'h' }, { code: 'E_REQUIRED', path: 'b', message: 'missing', hint: 'h2' }]);
  assert.deepEqual(Object.keys(e.toJSON()), ['code', 'kind', 'message', 'problems']);
  assert.equal(e.code, 'E_INVALID');
});
