// zmesh(1) as groff and man read it (groff-base and man-db from scripts/deps.sh): no warning at all (-ww), and the
// text a reader sees names every command of the tree, every option and every example.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { EXAMPLES, commandPath } from '../../src/cli/examples.ts';
import { renderMan } from '../../scripts/gen-man.ts';

function run(cmd: string, args: string[], env: Record<string, string> = {}): { out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8', ...env } });
  assert.equal(r.error, undefined, `${cmd}: ${r.error?.message} (scripts/deps.sh installs man-db and groff-base)`);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return { out: r.stdout, err: r.stderr };
}

test('groff -ww and man --warnings read zmesh.1 without a warning; the text has every command, option and example', async () => {
  const program = await buildProgram();
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-man-'));
  try {
    const page = join(dir, 'zmesh.1');
    writeFileSync(page, renderMan(program, { date: '2024-01-02', version: '9.8.7' }));
    assert.equal(run('groff', ['-man', '-Tutf8', '-ww', '-z', page]).err, '');
    // Wide enough that no example line is broken; man runs preconv, tbl and the man macros as for any page.
    const { out: text, err } = run('man', ['--warnings', '-l', page], { MANWIDTH: '250', MAN_KEEP_FORMATTING: '', MANPAGER: 'cat', PAGER: 'cat' });
    assert.equal(err, '');
    const lines = text.split('\n').map((l) => l.trim());
    assert.match(lines[0], /^ZMESH\(1\)\s+User Commands\s+ZMESH\(1\)$/);
    assert.match(lines.filter(Boolean).at(-1)!, /^zmesh 9\.8\.7\s+2024-01-02\s+ZMESH\(1\)$/);
    for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'EXAMPLES', 'EXIT STATUS', 'ENVIRONMENT', 'FILES', 'SEE ALSO']) {
      assert.ok(lines.includes(s), `section ${s}`);
    }
    assert.ok(lines.includes('zmesh - WireGuard overlay networks for multi-tenant edge nodes'));
    const all: Command[] = [program];
    for (let i = 0; i < all.length; i++) all.push(...all[i].commands);
    for (const cmd of all.slice(1)) {
      const path = commandPath(cmd);
      assert.ok(lines.includes(`zmesh ${path} ${cmd.usage()}`), `COMMANDS: zmesh ${path} ${cmd.usage()}`);
      assert.ok(lines.includes(`zmesh ${path}`), `EXAMPLES: zmesh ${path}`);
      for (const o of cmd.options) assert.ok(text.includes(o.flags), `zmesh ${path}: ${o.flags}`);
    }
    for (const e of Object.values(EXAMPLES).flat()) assert.ok(lines.includes(typeof e === 'string' ? e : e[0]), `example: ${e}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
