// Imports run one way: the pure layers never import side-effecting modules or the impure folders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
const PURE = ['src/blueprint', 'src/plan', 'src/crypto', 'topology'];
const FORBIDDEN_MODULES = ['execa', 'dockerode', 'node:fs', 'fs', 'node:fs/promises', 'fs/promises', 'node:child_process', 'child_process', 'better-sqlite3', 'fastify', 'pino'];
const FORBIDDEN_DIRS = ['netns', 'runtime', 'labs', 'src/agent', 'src/cli', 'src/admin', 'src/control'];

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const p = join(dir, name);
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Every module specifier a file imports (static, dynamic, re-export, require). */
export function importsOf(text: string): string[] {
  const re = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]|require\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
  const out: string[] = [];
  for (const m of text.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
  return out;
}

test('the import scanner sees every import form', () => {
  const sample = `import a from 'execa';\nimport { b } from "node:fs";\nexport * from '../netns/x.ts';\nconst c = await import('dockerode');\nimport 'node:child_process';\n`;
  assert.deepEqual(importsOf(sample), ['execa', 'node:fs', '../netns/x.ts', 'dockerode', 'node:child_process']);
});

for (const dir of PURE) {
  test(`${dir} is pure: no side-effecting imports`, () => {
    const list = files(dir);
    assert.ok(list.length > 0, `${dir} has sources`);
    const bad: string[] = [];
    for (const f of list) {
      for (const spec of importsOf(readFileSync(join(ROOT, f), 'utf8'))) {
        if (FORBIDDEN_MODULES.includes(spec)) bad.push(`${f} imports ${spec}`);
        if (spec.startsWith('.')) {
          const target = relative(ROOT, join(ROOT, f, '..', spec));
          if (FORBIDDEN_DIRS.some((d) => target === d || target.startsWith(d + '/'))) bad.push(`${f} imports ${target}`);
        }
      }
    }
    assert.deepEqual(bad, []);
  });
}

test('netns and runtime never import the agent or the CLI', () => {
  const bad: string[] = [];
  for (const dir of ['netns', 'runtime']) {
    let list: string[];
    try {
      list = files(dir);
    } catch {
      continue; // folder not there yet
    }
    for (const f of list) {
      for (const spec of importsOf(readFileSync(join(ROOT, f), 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const target = relative(ROOT, join(ROOT, f, '..', spec));
        if (['src/agent', 'src/cli', 'src/admin', 'labs'].some((d) => target.startsWith(d + '/'))) bad.push(`${f} imports ${target}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});
