// Golden `--help` outputs (issue #19): the root's and `plan`'s help as a whole process prints them (80 columns,
// a pipe). A change to a command's options, description or examples shows up here as a diff to review;
// UPDATE_GOLDEN=1 rewrites the files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;

for (const [name, args] of [
  ['help-root.txt', ['--help']],
  ['help-plan.txt', ['plan', '--help']],
  ['help-plan-part.txt', ['plan', 'part', '--help']],
] as const) {
  test(`zmesh ${args.join(' ')} is exactly test/unit/golden/${name}`, () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 30000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', ZMESH_CONFIG: '/dev/null', NO_COLOR: '1' },
    });
    assert.equal(r.status, 0, r.stderr);
    const golden = join(ROOT, 'test/unit/golden', name);
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, r.stdout);
    assert.equal(r.stdout, readFileSync(golden, 'utf8'));
  });
}
