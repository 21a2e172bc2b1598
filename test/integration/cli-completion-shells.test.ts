// The completion scripts of `zmesh completion bash|zsh|fish` as the real shells read them (bash, zsh and fish from
// scripts/deps.sh): each parses, loads, and completes the same command lines to exactly the same words. bash and
// fish run their own completion machinery; zsh runs the script's _zmesh with words/CURRENT/PREFIX set (no zpty: the
// completion widget's _describe and _files are replaced by functions that print what they were given, _describe
// keeping the words that start with PREFIX, as its matching does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/program.ts';
import { bashCompletion, fishCompletion, zshCompletion } from '../../src/cli/meta-commands.ts';

type Shell = 'bash' | 'zsh' | 'fish';

/** Command lines (the last word is the one being completed) and the words every shell offers, sorted. */
const CASES: { line: string[]; want: string[] }[] = [
  { line: ['zmesh', 'pl'], want: ['plan'] },
  { line: ['zmesh', 'plan', ''], want: ['expand', 'part'] },
  { line: ['zmesh', 'plan', 'part', '--'], want: ['--compact', '--help', '--out'] },
  { line: ['zmesh', '--socket', '/x', 'lab', 'f'], want: ['fault'] },
  { line: ['zmesh', 'keygen', ''], want: ['controller', 'node', 'operator', 'tenant'] },
  { line: ['zmesh', 'completion', ''], want: ['bash', 'fish', 'zsh'] },
  { line: ['zmesh', 'controller', 'node', 'a'], want: ['approve'] },
  { line: ['zmesh', 'net', 'ls', '-'], want: ['--help', '--json', '--output'] },
];

const ZSH_DRIVER = `
autoload -U compinit && compinit -u -d "$ZDOTDIR/.zcompdump"
source "$1" || exit 3
[[ $_comps[zmesh] == _zmesh ]] || { print -u2 "compdef did not register _zmesh: $_comps[zmesh]"; exit 4 }
_describe() { local -a names; names=("\${(@)\${(@P)4}%%:*}"); names=(\${(M)names:#\${PREFIX}*}); (( $#names )) || return 1; print -rl -- $names }
_files() { print -r -- '<files>' }
shift
words=("$@"); CURRENT=$#; PREFIX=$words[CURRENT]
_zmesh
`;

let dir = '';
const scripts: Record<Shell, string> = { bash: '', zsh: '', fish: '' };

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'zmesh-completion-'));
  const program = await buildProgram();
  for (const [shell, text] of [['bash', bashCompletion(program)], ['zsh', zshCompletion(program)], ['fish', fishCompletion(program)]] as const) {
    scripts[shell] = join(dir, `zmesh.${shell}`);
    writeFileSync(scripts[shell], text);
  }
  writeFileSync(join(dir, 'driver.zsh'), ZSH_DRIVER);
  mkdirSync(join(dir, 'home'));
  mkdirSync(join(dir, 'cwd')); // empty: no file names among the candidates
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[]): { out: string; err: string; status: number | null } {
  const home = join(dir, 'home');
  const env = { PATH: process.env.PATH, HOME: home, ZDOTDIR: home, XDG_CONFIG_HOME: join(home, 'config'), XDG_DATA_HOME: join(home, 'data'), XDG_CACHE_HOME: join(home, 'cache'), LC_ALL: 'C', TERM: 'dumb' };
  const r = spawnSync(cmd, args, { cwd: join(dir, 'cwd'), env, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.error, undefined, `${cmd}: ${r.error?.message} (scripts/deps.sh installs bash, zsh and fish)`);
  return { out: r.stdout, err: r.stderr, status: r.status };
}

/** What SHELL offers for LINE (the words only, sorted). */
function complete(shell: Shell, line: string[]): string[] {
  let r;
  if (shell === 'bash') {
    const words = line.map((w) => `'${w}'`).join(' ');
    r = run('bash', ['--norc', '--noprofile', '-c', `source '${scripts.bash}'; COMP_WORDS=(${words}); COMP_CWORD=${line.length - 1}; _zmesh; printf '%s\\n' "\${COMPREPLY[@]}"`]);
  } else if (shell === 'zsh') {
    r = run('zsh', ['-f', join(dir, 'driver.zsh'), scripts.zsh, ...line]);
  } else {
    const typed = line.join(' ').replace(/'/g, "\\'");
    r = run('fish', ['--no-config', '-c', `source '${scripts.fish}'; complete -C '${typed}'`]);
  }
  assert.equal(r.status, 0, `${shell}: ${line.join(' ')}: ${r.err}`);
  assert.equal(r.err, '', `${shell}: ${line.join(' ')}`);
  return r.out.split('\n').filter(Boolean).map((l) => l.split('\t')[0]).sort();
}

for (const shell of ['bash', 'zsh', 'fish'] as const) {
  test(`${shell}: the script parses`, () => {
    const r = shell === 'bash' ? run('bash', ['-n', scripts.bash]) : shell === 'zsh' ? run('zsh', ['-n', scripts.zsh]) : run('fish', ['--no-config', '--no-execute', scripts.fish]);
    assert.equal(r.status, 0, r.err);
    assert.equal(r.err, '');
  });

  test(`${shell}: loaded, it completes commands, subcommands, options and choices`, () => {
    for (const c of CASES) assert.deepEqual(complete(shell, c.line), c.want, `${shell}: ${c.line.join(' ')}|`);
  });
}

test('fish: descriptions beside the words; file names only where a command takes a file', () => {
  writeFileSync(join(dir, 'cwd', 'shop.signed.json'), '{}');
  try {
    const r = run('fish', ['--no-config', '-c', `source '${scripts.fish}'; complete -C 'zmesh pl'; complete -C 'zmesh plan part s'; complete -C 'zmesh completion '; complete -C 'zmesh lab s'`]);
    assert.equal(r.err, '');
    assert.deepEqual(r.out.split('\n'), [
      'plan\tplan a blueprint over a node inventory: one network resource per node (a compact plan, zmesh-plan/2)',
      'shop.signed.json',
      'bash',
      'fish',
      'zsh',
      "socket\tprint the path of a node agent's admin socket (zmesh --socket \"$(zmesh lab socket LAB NODE)\" …)",
      'status\tnodes, devices, NAT routers, agents, shaping, faults and each node\'s networks',
      '',
    ]);
  } finally {
    rmSync(join(dir, 'cwd', 'shop.signed.json'));
  }
});

test('zsh: a word that is no subcommand falls back to file names; the descriptions reach _describe', () => {
  assert.deepEqual(complete('zsh', ['zmesh', 'plan', 'shop']), ['<files>']);
  const r = run('zsh', ['-f', '-c', `source '${scripts.zsh}' 2>/dev/null; _zmesh_subs 'plan'`]);
  assert.deepEqual(r.out.split('\n'), [
    "part:cut one node's part out of a saved plan, at the plan's own generation (what that node receives)",
    'expand:print the full form of a saved plan (zmesh-plan/1\\: every resource with its peers), as plans were written before the compact form',
    '',
  ]);
});
