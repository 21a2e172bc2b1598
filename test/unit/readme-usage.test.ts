// Every command in README.md's "Usage" section, run as written, offline, in a temporary directory holding a copy of
// examples/: each `zmesh` invocation in its fenced sh/bash/console blocks (in order: keygen makes the key that
// sign uses, …) must exit 0. Invocations that need root, a node, a running agent or an etcd cluster are skipped, by
// subcommand name, with the reason printed; a subcommand in no list fails the test until it is classified here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/program.ts';
import { runCaptured } from '../helpers/cli-capture.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

/** Subcommands run for real (offline, as an unprivileged user could). */
const RUN = new Set(['keygen', 'validate', 'sign', 'verify', 'plan', 'version', 'completion', 'config']);

/** Subcommands not run, and why. */
const SKIP: Record<string, string> = {
  agent: 'runs the node agent: root, network namespaces and a node',
  apply: 'needs a running agent (admin socket)',
  status: 'needs a running agent (admin socket)',
  net: 'needs a running agent (admin socket)',
  peers: 'needs a running agent (admin socket)',
  diagnose: 'needs a running agent (admin socket)',
  policy: 'needs a running agent (admin socket)',
  events: 'needs a running agent (admin socket)',
  ps: 'needs a running agent and Docker',
  logs: 'needs a running agent and Docker',
  vol: 'needs a running agent and btrfs volumes',
  rm: 'needs a running agent (admin socket)',
  controller: 'needs an etcd cluster',
};

/** Placeholders a runnable invocation may hold, and what stands in for them (from earlier output). */
const PLACEHOLDERS = ['<PUBKEY>'] as const;

/** The text of the section under `## Usage` (its ### subsections included) up to the next `## ` heading. */
function usageSection(readme: string): string {
  const start = readme.search(/^## Usage$/m);
  assert.ok(start >= 0, 'README.md has no "## Usage" heading');
  const rest = readme.slice(start + '## Usage'.length);
  const end = rest.search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end);
}

/** Command lines of the fenced sh/bash/shell/console blocks: continuations joined, comments dropped. */
function commandLines(section: string): string[] {
  const lines: string[] = [];
  for (const m of section.matchAll(/^```(sh|bash|shell|console)\n([\s\S]*?)^```$/gm)) {
    const console = m[1] === 'console';
    const joined = m[2].replace(/\s*\\\n\s*/g, ' ');
    for (let line of joined.split('\n')) {
      if (console) {
        if (!line.startsWith('$ ')) continue; // output
        line = line.slice(2);
      }
      line = line.replace(/(^|\s)#.*$/, '').trim();
      if (line) lines.push(line);
    }
  }
  return lines;
}

/**
 * The `zmesh …` invocations of a line, as word lists after `zmesh`: split at `;`, `&&`, `|` and `<( … )`; a
 * segment without `npx zmesh`/`zmesh` (`net show NET` after a `|` in a line listing alternatives) belongs to the
 * invocation before it and is kept as its own one with the same program.
 */
function invocations(line: string): string[][] {
  const out: string[][] = [];
  const inner = line.replace(/<\(([^)]*)\)/g, ' ; $1 ; ');
  for (const seg of inner.split(/;|&&|\|/)) {
    const words = seg.trim().split(/\s+/).filter(Boolean);
    const at = words.findIndex((w, i) => w === 'zmesh' && (i === 0 || words[i - 1] === 'npx'));
    if (at >= 0) out.push(words.slice(at + 1));
    else if (out.length && words.length && !['source', 'bash', 'sh'].includes(words[0])) out.push(words); // `… | net show NET`
  }
  return out;
}

/** The subcommand of an invocation: its first word that is not a global option (or an option's value). */
function subcommand(words: string[]): string {
  for (let i = 0; i < words.length; i++) {
    if (words[i] === '--socket') i++;
    else if (!words[i].startsWith('-')) return words[i];
  }
  return '';
}

/** Subcommands in neither RUN nor SKIP. */
function unclassified(all: string[][]): string[] {
  return [...new Set(all.map(subcommand).filter((s) => !RUN.has(s) && !(s in SKIP)))];
}

test('README Usage parsing: blocks, continuations, comments, invocations', () => {
  const md = '## Usage\n\n```sh\nnpx zmesh a b   # c\nnpx zmesh d \\\n  e\nsource <(npx zmesh completion bash)   # x\nnpx zmesh net ls | net show NET\n```\n\n```console\n$ zmesh v\nzmesh 1\n```\n\n## Labs\n```sh\nnpx zmesh lab up\n```\n';
  const lines = commandLines(usageSection(md));
  assert.deepEqual(lines, ['npx zmesh a b', 'npx zmesh d e', 'source <(npx zmesh completion bash)', 'npx zmesh net ls | net show NET', 'zmesh v']);
  assert.deepEqual(lines.map(invocations), [[['a', 'b']], [['d', 'e']], [['completion', 'bash']], [['net', 'ls'], ['net', 'show', 'NET']], [['v']]]);
  assert.equal(subcommand(['--socket', '/x', 'peers', 'n']), 'peers');
  assert.deepEqual(unclassified([['keygen', 'x'], ['status'], ['frobnicate', 'a'], ['--socket', '/s', 'frobnicate']]), ['frobnicate']);
});

test("README Usage: every offline command runs as written (in a temp dir with examples/); the others are skipped by name", async (t) => {
  const lines = commandLines(usageSection(readFileSync(join(ROOT, 'README.md'), 'utf8')));
  const all = lines.flatMap(invocations);
  assert.deepEqual(unclassified(all), [], `README Usage has commands in neither RUN nor SKIP of ${import.meta.url}: classify them`);

  const dir = mkdtempSync(join(tmpdir(), 'zmesh-readme-'));
  const cwd = process.cwd();
  const savedConfig = process.env.ZMESH_CONFIG;
  cpSync(join(ROOT, 'examples'), join(dir, 'examples'), { recursive: true });
  process.chdir(dir);
  process.env.ZMESH_CONFIG = '/dev/null'; // the operator's own config file plays no part
  const ran: string[] = [];
  const skipped: string[] = [];
  const values: Record<string, string> = {};
  try {
    for (const words of all) {
      const sub = subcommand(words);
      const shown = `zmesh ${words.join(' ')}`;
      if (sub in SKIP) {
        skipped.push(`${shown}  — ${SKIP[sub]}`);
        continue;
      }
      const args = words.map((w) => (PLACEHOLDERS.includes(w as (typeof PLACEHOLDERS)[number]) ? values[w] : w));
      for (const [i, a] of args.entries()) {
        assert.ok(a !== undefined, `${shown}: no value yet for ${words[i]}`);
        assert.ok(!/[<>$"'`…]/.test(a), `${shown}: "${a}" is not a literal argument; add it to PLACEHOLDERS or write it out`);
      }
      const r = await runCaptured(await buildProgram(), args);
      assert.equal(r.code, 0, `${shown} exited ${r.code}\n${r.err}`);
      if (sub === 'keygen' && words[1] === 'tenant') values['<PUBKEY>'] = r.out.trim();
      ran.push(shown);
    }
  } finally {
    process.chdir(cwd);
    if (savedConfig === undefined) delete process.env.ZMESH_CONFIG;
    else process.env.ZMESH_CONFIG = savedConfig;
    rmSync(dir, { recursive: true, force: true });
    for (const line of [`README commands run: ${ran.length}`, ...ran.map((r) => `  ${r}`), `README commands not run: ${skipped.length}`, ...skipped.map((s) => `  ${s}`)]) t.diagnostic(line);
  }
  // The section's promises: the offline walk-through is there and runs.
  for (const sub of ['keygen', 'validate', 'sign', 'verify', 'plan', 'version', 'completion', 'config']) {
    assert.ok(ran.some((r) => subcommand(r.split(' ').slice(1)) === sub), `no "${sub}" ran`);
  }
  assert.ok(ran.includes('zmesh plan part plan.json node-a'), ran.join('\n'));
});
