// src/blueprint stays pure (an allow-list of imports), says what it is, and documents every error code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { BLUEPRINT_CODES } from '../../src/blueprint/index.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const DIR = 'src/blueprint';
/** Everything src/blueprint may import; anything else (execa, dockerode, node:fs, netns/, runtime/, ...) fails.
 *  node:module: createRequire, so that yaml loads only when a text is not JSON (CLI start, docs/benchmarks.md). */
const ALLOWED = [/^node:module$/, /^\.\/[a-z0-9-]+\.ts$/, /^\.\.\/crypto\/[a-z0-9-]+\.ts$/, /^\.\.\/errors\.ts$/, /^\.\.\/\.\.\/topology\/cidr6?\.ts$/, /^yaml$/, /^@noble\/(curves|hashes)\/[a-z0-9/.-]+$/];

function importsOf(text: string): string[] {
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]|require\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
  return [...text.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]);
}

test('src/blueprint imports only its allow-list', () => {
  const bad: string[] = [];
  const files = readdirSync(ROOT + DIR).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 5);
  for (const f of files) {
    for (const spec of importsOf(readFileSync(`${ROOT}${DIR}/${f}`, 'utf8'))) {
      if (!ALLOWED.some((re) => re.test(spec))) bad.push(`${f} imports ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('src/blueprint/index.ts opens with what the folder does and does not do', () => {
  const head = readFileSync(`${ROOT}${DIR}/index.ts`, 'utf8').slice(0, 1200);
  assert.match(head, /Does:/);
  assert.match(head, /Does not:/);
});

test('docs/errors.md documents every blueprint error code', () => {
  const doc = readFileSync(`${ROOT}docs/errors.md`, 'utf8');
  const missing = Object.keys(BLUEPRINT_CODES).filter((c) => !doc.includes(`\`${c}\``));
  assert.deepEqual(missing, []);
});
