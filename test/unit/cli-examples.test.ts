// Every command's --help ends with examples (src/cli/examples.ts), and every example is a real command line:
// it starts with `zmesh`, names a command path of the tree, uses only options that command (or a parent) has,
// passes its required options and as many operands as it takes, choices among the choices. The offline ones
// (keys, signing, planning) are also run, in order, in a scratch directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { EXAMPLES, commandPath, formatExamples, type Example } from '../../src/cli/examples.ts';
import { runCaptured } from '../helpers/cli-capture.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

function allCommands(program: Command): Command[] {
  const out: Command[] = [];
  const walk = (c: Command): void => {
    out.push(c);
    c.commands.forEach(walk);
  };
  walk(program);
  return out;
}

const commandOf = (e: Example): string => (typeof e === 'string' ? e : e[0]);

/**
 * A small shell lexer: the words of a command line up to its first pipe, redirection, `;`, `&` or comment, with
 * quotes removed, and the command substitutions `$(…)` found in them.
 */
export function shellWords(line: string): { words: string[]; substitutions: string[] } {
  const words: string[] = [];
  const substitutions: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length || '|<>;&#'.includes(line[i])) break;
    let word = '';
    while (i < line.length && line[i] !== ' ' && !'|<>;&'.includes(line[i])) {
      const ch = line[i];
      if (ch === "'") {
        const end = line.indexOf("'", i + 1);
        assert.ok(end > i, `unterminated ' in ${line}`);
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (ch === '"') {
        const end = line.indexOf('"', i + 1);
        assert.ok(end > i, `unterminated " in ${line}`);
        const inner = line.slice(i + 1, end);
        for (const m of inner.matchAll(/\$\(([^)]*)\)/g)) substitutions.push(m[1]);
        word += inner;
        i = end + 1;
      } else if (ch === '$' && line[i + 1] === '(') {
        const end = line.indexOf(')', i);
        assert.ok(end > i, `unterminated $( in ${line}`);
        substitutions.push(line.slice(i + 2, end));
        word += line.slice(i, end + 1);
        i = end + 1;
      } else {
        word += ch;
        i++;
      }
    }
    words.push(word);
  }
  return { words, substitutions };
}

/** Resolves `zmesh …` against the tree as commander would; returns the command path, or throws why it is not real. */
function resolveExample(program: Command, line: string): string {
  const { words, substitutions } = shellWords(line);
  for (const s of substitutions) resolveExample(program, s);
  assert.equal(words[0], 'zmesh', `${line}: the first word is not zmesh`);
  let cmd = program;
  const operands: string[] = [];
  const given = new Set<string>();
  let help = false;
  for (let i = 1; i < words.length; i++) {
    const w = words[i];
    if (w === '--') {
      operands.push(...words.slice(i + 1));
      break;
    }
    if (w.startsWith('-') && w !== '-') {
      const flag = w.split('=')[0];
      if (flag === '--help' || flag === '-h') {
        help = true;
        continue;
      }
      let opt;
      for (let c: Command | null = cmd; c && !opt; c = c.parent) opt = c.options.find((o) => o.long === flag || o.short === flag);
      assert.ok(opt, `${line}: ${flag} is not an option of "${commandPath(cmd)}" or its parents`);
      given.add(opt.attributeName());
      if ((opt.required || opt.optional) && !w.includes('=')) {
        assert.ok(i + 1 < words.length || opt.optional, `${line}: ${flag} needs a value`);
        i++;
      }
      continue;
    }
    const sub = operands.length === 0 ? cmd.commands.find((c) => c.name() === w || c.aliases().includes(w)) : undefined;
    if (sub) cmd = sub;
    else operands.push(w);
  }
  const path = commandPath(cmd);
  if (help) return path;
  const args = cmd.registeredArguments;
  const required = args.filter((a) => a.required).length;
  const variadic = args.at(-1)?.variadic ?? false;
  assert.ok(operands.length >= required, `${line}: "${path}" takes ${required} operand(s), the example gives ${operands.length}`);
  assert.ok(variadic || operands.length <= args.length, `${line}: "${path}" takes at most ${args.length} operand(s), the example gives ${operands.length}`);
  args.forEach((a, k) => {
    if (a.argChoices && operands[k] !== undefined) assert.ok(a.argChoices.includes(operands[k]), `${line}: ${operands[k]} is not one of ${a.argChoices.join(', ')}`);
  });
  for (const o of cmd.options.filter((o) => o.mandatory)) assert.ok(given.has(o.attributeName()), `${line}: "${path}" requires ${o.long}`);
  return path;
}

test('shellWords: quotes, command substitutions, and the end of the command at a pipe, redirection or comment', () => {
  assert.deepEqual(shellWords(`zmesh --socket "$(zmesh lab socket six pub-1)" peers a/b/c  # note`), {
    words: ['zmesh', '--socket', '$(zmesh lab socket six pub-1)', 'peers', 'a/b/c'],
    substitutions: ['zmesh lab socket six pub-1'],
  });
  assert.deepEqual(shellWords(`zmesh sign - --key 'a b.key' < shop.yaml > out.json`).words, ['zmesh', 'sign', '-', '--key', 'a b.key']);
  assert.deepEqual(shellWords('zmesh validate --json shop.yaml | jq .problems').words, ['zmesh', 'validate', '--json', 'shop.yaml']);
});

test('the example checker refuses made-up paths, options, operand counts and choices', async () => {
  const program = await buildProgram();
  assert.equal(resolveExample(program, 'zmesh controller --etcd http://127.0.0.1:2379 tenant add acme acme.pub'), 'controller tenant add');
  assert.equal(resolveExample(program, 'zmesh lab exec six hid-1 -- wg show'), 'lab exec');
  assert.equal(resolveExample(program, 'zmesh plan part --help'), 'plan part');
  for (const [line, why] of [
    ['zmesh plan prat plan.json node-a', /takes at most 1 operand/],
    ['zmesh plan part plan.json', /takes 2 operand\(s\), the example gives 1/],
    ['zmesh net ls --wide', /--wide is not an option of "net ls"/],
    ['zmesh sign shop.yaml --out x.json', /"sign" requires --key/],
    ['zmesh completion ksh', /ksh is not one of bash, zsh, fish/],
    ['npx zmesh version', /the first word is not zmesh/],
    ['zmesh --socket "$(zmesh lab sock six pub-1)" status', /"lab" takes at most 0 operand/],
  ] as const) {
    assert.throws(() => resolveExample(program, line), why, line);
  }
});

test('every command, group or leaf, has examples, and each one is a real command line for it', async () => {
  const program = await buildProgram();
  const paths = allCommands(program).map(commandPath);
  assert.ok(paths.length > 50, `only ${paths.length} commands in the tree`);
  const missing = paths.filter((p) => !EXAMPLES[p]?.length);
  assert.deepEqual(missing, [], 'commands without examples in src/cli/examples.ts');
  assert.deepEqual(Object.keys(EXAMPLES).filter((k) => !paths.includes(k)), [], 'examples for commands that do not exist');
  for (const [key, list] of Object.entries(EXAMPLES)) {
    const resolved = list.map((e) => resolveExample(program, commandOf(e)));
    assert.ok(
      resolved.some((r) => r === key || r.startsWith(`${key} `) || key === ''),
      `"${key}": no example runs it (or a subcommand of it): ${resolved.join(', ')}`,
    );
  }
});

test('--help of every command ends with its examples, once', async () => {
  const program = await buildProgram();
  for (const path of allCommands(program).map(commandPath)) {
    const r = await runCaptured(await buildProgram(), [...(path ? path.split(' ') : []), '--help']);
    assert.equal(r.code, 0, `${path} --help: ${r.err}`);
    assert.equal(r.out.split('\nExamples:\n').length, 2, `zmesh ${path} --help: one Examples block`);
    assert.ok(r.out.endsWith(`\nExamples:\n${formatExamples(EXAMPLES[path])}\n`), `zmesh ${path} --help ends with its examples`);
  }
});

test('formatExamples: notes aligned; a note of a long command on the next line', () => {
  const long = `zmesh plan shop.signed.json --nodes examples/nodes.yaml --out plan.json`;
  assert.equal(
    formatExamples(['zmesh ps', ['zmesh net ls', 'list'], ['zmesh version --json', 'JSON'], [long, 'too long']]),
    ['  zmesh ps', '  zmesh net ls          # list', '  zmesh version --json  # JSON', `  ${long}`, `  ${' '.repeat(20)}  # too long`].join('\n'),
  );
});

test('the offline examples run as printed: keys, signing, validation, planning, parts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-examples-'));
  const cwd = process.cwd();
  cpSync(join(ROOT, 'examples'), join(dir, 'examples'), { recursive: true });
  const sequence = [
    'zmesh keygen tenant acme.key --public-out acme.pub',
    'zmesh keygen node node.key --public-out node.pub',
    'zmesh keygen operator op.key --public-out op.pub',
    'zmesh keygen controller ctl.key --public-out ctl.pub',
    'zmesh validate examples/tenant-blueprint.yaml',
    'zmesh sign examples/tenant-blueprint.yaml --key acme.key --out shop.signed.json',
    'zmesh verify shop.signed.json --tenant-key acme.pub',
    'zmesh plan shop.signed.json --nodes examples/nodes.yaml --out plan.json --summary',
    'zmesh plan shop.signed.json --nodes examples/nodes.yaml --previous plan.json --allow-same-version --diff --out plan2.json',
    'zmesh plan shop.signed.json --nodes examples/nodes.yaml --out plan.json --access-out access',
    'zmesh plan examples/tenant-blueprint.yaml --nodes examples/nodes.yaml --part node-a',
    'zmesh plan part plan.json node-a',
    'zmesh plan part plan.json node-d --out node-d.part.json',
    'zmesh plan expand plan.json --out plan.full.json',
  ];
  const printed = new Set(Object.values(EXAMPLES).flat().map(commandOf));
  try {
    process.chdir(dir);
    for (const line of sequence) {
      assert.ok(printed.has(line), `not an example any more: ${line}`);
      const r = await runCaptured(await buildProgram(), shellWords(line).words.slice(1));
      assert.equal(r.code, 0, `${line}\n${r.err}`);
    }
    for (const f of ['acme.key', 'acme.pub', 'shop.signed.json', 'plan.json', 'plan2.json', 'access/backend-laptop.conf', 'node-d.part.json', 'plan.full.json']) {
      assert.ok(existsSync(f), `${f} was not written`);
    }
    assert.equal(JSON.parse(readFileSync('plan.full.json', 'utf8')).format, 'zmesh-plan/1');
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
});
