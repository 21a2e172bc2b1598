// A CommonJS package must not be imported through the ESM loader by a module that is itself loaded lazily (after
// start): Node's fs.realpathSync stops resolving symlinks while the process's last stat was of a socket or FIFO
// (nodejs/node#51142), the ESM loader and the CommonJS loader then resolve the package to two paths under a
// symlinked tree, and the import sees the exports of a module object that never ran. The agent died so at start
// ("Etcd3 is not a constructor", src/control/etcd.ts): it lstat()s its admin socket, then imports its etcd link.
// A static graph is resolved before any code runs, so only what a dynamic import() reaches is at risk; there,
// CommonJS packages go through createRequire. This test walks those graphs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT, sourceFiles } from '../helpers/source-files.ts';

const DIRS = ['src', 'runtime', 'netns', 'topology', 'labs'];

const files = sourceFiles;

/** Value imports of a file (not `import type`): static specifiers and dynamic import() specifiers. */
export function valueImports(text: string): { statics: string[]; dynamics: string[] } {
  const statics: string[] = [];
  const dynamics: string[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/gm)) {
    if (m[2]) continue; // import type … / export type …
    const clause = m[3].trim();
    // import { type A, type B } from: type-only as well.
    const braces = /^\{([^}]*)\}$/.exec(clause);
    if (braces && braces[1].split(',').every((x) => !x.trim() || x.trim().startsWith('type '))) continue;
    statics.push(m[4]);
  }
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) statics.push(m[1]);
  for (const m of text.matchAll(/(?<!typeof\s*)import\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) dynamics.push(m[1]);
  return { statics, dynamics };
}

/** A bare specifier's package is CommonJS: its package.json has no "type": "module" and its main file is not .mjs. */
function isCommonJs(spec: string): boolean {
  if (spec.startsWith('node:') || spec.startsWith('.') || spec.startsWith('/')) return false;
  const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
  const pj = join(ROOT, 'node_modules', name, 'package.json');
  if (!existsSync(pj)) return false; // a Node builtin without the prefix (fs, path…)
  const p = JSON.parse(readFileSync(pj, 'utf8')) as { type?: string; main?: string; exports?: unknown };
  const exp = JSON.stringify(p.exports ?? '');
  return p.type !== 'module' && !/\.mjs/.test(p.main ?? '') && !/"import"\s*:/.test(exp);
}

test('the scanner: value imports, type-only imports and dynamic imports', () => {
  const text = `import { a } from 'x';\nimport type { B } from 'y';\nimport { type C, type D } from 'z';\nimport E, { type F } from 'w';\nexport { g } from './g.ts';\nimport 'side';\nconst h = await import('h');\ntype T = typeof import('t');\n`;
  assert.deepEqual(valueImports(text), { statics: ['x', 'w', './g.ts', 'side'], dynamics: ['h'] });
  assert.equal(isCommonJs('etcd3'), true);
  assert.equal(isCommonJs('execa'), false, 'execa is ESM');
  assert.equal(isCommonJs('node:fs'), false);
});

test('nothing a dynamic import() reaches imports a CommonJS package through the ESM loader (nodejs/node#51142)', () => {
  const all = DIRS.flatMap(files);
  const graph = new Map<string, { statics: string[]; dynamics: string[] }>();
  for (const f of all) graph.set(f, valueImports(readFileSync(join(ROOT, f), 'utf8')));
  const local = (from: string, spec: string) => relative(ROOT, resolve(ROOT, dirname(from), spec));
  // Every module a dynamic import() loads, and everything it reaches through static imports.
  const lazy = new Set<string>();
  const stack: string[] = [];
  for (const [f, g] of graph) for (const d of g.dynamics) if (d.startsWith('.')) stack.push(local(f, d));
  const bad: string[] = [];
  for (const [f, g] of graph) for (const d of g.dynamics) if (isCommonJs(d)) bad.push(`${f}: import('${d}')`);
  while (stack.length) {
    const f = stack.pop()!;
    if (lazy.has(f) || !graph.has(f)) continue;
    lazy.add(f);
    for (const s of graph.get(f)!.statics) {
      if (s.startsWith('.')) stack.push(local(f, s));
      else if (isCommonJs(s)) bad.push(`${f}: import … from '${s}' (loaded lazily)`);
    }
  }
  assert.ok(lazy.has('src/agent/etcd-link.ts') && lazy.has('src/control/etcd.ts'), 'the walk reaches the etcd link');
  assert.deepEqual(bad, []);
});
