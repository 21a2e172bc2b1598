// zmesh(1) is rendered from the command tree (scripts/gen-man.ts): every command with its usage, arguments and
// options, every example, the fixed sections; `npm run build` writes it. The page as groff and man read it (no
// warnings, every command in the text): test/integration/cli-man-render.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { EXAMPLES, commandPath } from '../../src/cli/examples.ts';
import { manDate, renderMan, roffText } from '../../scripts/gen-man.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const SECTIONS = ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'EXAMPLES', 'EXIT STATUS', 'ENVIRONMENT', 'FILES', 'SEE ALSO'];

function allCommands(program: Command): Command[] {
  const out: Command[] = [program];
  for (let i = 0; i < out.length; i++) out.push(...out[i].commands);
  return out;
}

test('roffText: backslash, hyphen-minus, characters outside ASCII, control characters at a line start', () => {
  assert.equal(roffText('a\\b --out <file>'), 'a\\eb \\-\\-out <file>');
  assert.equal(roffText('A → B …'), 'A \\[u2192] B \\[u2026]');
  assert.equal(roffText(".TH\n'x\nok. 'y"), "\\&.TH\n\\&'x\nok. 'y");
});

test('manDate: SOURCE_DATE_EPOCH when set, else the given day (UTC)', () => {
  assert.equal(manDate({ SOURCE_DATE_EPOCH: '1700000000' }), '2023-11-14');
  assert.equal(manDate({}, new Date('2024-02-29T23:59:59Z')), '2024-02-29');
});

test('the page has the sections of man(7) in order, every command, argument, option and example', async () => {
  const program = await buildProgram();
  const page = renderMan(program, { date: '2024-01-02', version: '9.8.7' });
  const lines = page.split('\n');
  assert.equal(lines[1], '.TH ZMESH 1 "2024-01-02" "zmesh 9.8.7" "User Commands"');
  assert.deepEqual(lines.filter((l) => l.startsWith('.SH ')).map((l) => l.slice(4)), SECTIONS);
  assert.equal(lines[lines.indexOf('.SH NAME') + 1], 'zmesh \\- WireGuard overlay networks for multi\\-tenant edge nodes');
  assert.ok(!/[\u0080-\u{10FFFF}]/u.test(page), 'the page is ASCII');
  assert.deepEqual(lines.filter((l) => /^[.'](?!\\")/.test(l) && !/^\.(TH|SH|SS|TP|PP|B|BR|RS|RE|br|nf|fi|nh)( |$)/.test(l)), [], 'only man(7) requests');

  const section = (name: string) => page.slice(page.indexOf(`.SH ${name}\n`), page.indexOf('\n.SH ', page.indexOf(`.SH ${name}\n`) + 1));
  const commands = section('COMMANDS');
  const examples = section('EXAMPLES');
  const tree = allCommands(program);
  const help = program.createHelp();
  assert.ok(tree.length > 50);
  for (const cmd of tree.slice(1)) {
    const path = commandPath(cmd);
    const entry = commands.indexOf(`.TP\n\\fB${roffText(`zmesh ${path}`)}\\fR ${roffText(cmd.usage()).replace(/(\S+)/g, (w) => (/^[[<]/.test(w) ? `\\fI${w}\\fR` : w))}\n`);
    assert.ok(entry >= 0, `COMMANDS: zmesh ${path}`);
    const next = commands.indexOf('\n.TP\n\\fBzmesh ', entry + 1);
    const body = commands.slice(entry, next < 0 ? undefined : next);
    assert.ok(body.includes(roffText(cmd.description())), `COMMANDS: zmesh ${path}: description`);
    for (const o of cmd.options) assert.ok(body.includes(`\\fB${roffText(o.long ?? o.short!)}\\fR`), `COMMANDS: zmesh ${path} ${o.flags}`);
    // Arguments as --help shows them: all of a command's, when one of them has a description.
    for (const a of help.visibleArguments(cmd)) assert.ok(body.includes(`.TP\n\\fI${roffText(a.name())}`), `COMMANDS: zmesh ${path} <${a.name()}>`);
  }
  for (const cmd of tree) {
    const path = commandPath(cmd);
    const block = examples.indexOf(`.SS ${roffText(path ? `zmesh ${path}` : 'zmesh')}\n.nf\n`);
    assert.ok(block >= 0, `EXAMPLES: zmesh ${path}`);
    for (const e of EXAMPLES[path]) assert.ok(examples.includes(`\n${roffText(typeof e === 'string' ? e : e[0])}\n`, block), `EXAMPLES: ${e}`);
  }
  for (const o of program.options) assert.ok(section('OPTIONS').includes(`\\fB${roffText(o.long!)}\\fR`), `OPTIONS: ${o.long}`);
});

test('npm run build writes dist/man/zmesh.1 with the script; the script writes what renderMan renders', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.build, /^tsc -p tsconfig\.build\.json && .* && node --import tsx scripts\/gen-man\.ts dist\/man\/zmesh\.1$/);
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-man-'));
  try {
    const out = join(dir, 'man', 'zmesh.1');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gen-man.ts', out], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: '0' }, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(readFileSync(out, 'utf8'), renderMan(await buildProgram(), { date: '1970-01-01', version }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
