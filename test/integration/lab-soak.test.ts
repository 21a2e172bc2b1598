// The soak in its bounded form (issue #21, docs/soak.md), as root: `scripts/soak.ts` on labs/examples/soak.yaml
// (6 nodes, 2 NAT routers, 3 tenants, 3 workloads, 2 devices) for SOAK_MINUTES (default 3) of seeded faults,
// seed SOAK_SEED (default 21), in a throwaway lab root. Bounded: ≤ 5 min wall with lab up and down (`--wall
// 280`: the script ends its faults early enough — when lab up is slow, sooner than SOAK_MINUTES — waits for green
// at most 30 s after the last one may start, and keeps 20 s for lab down; SIGTERM at 300 s is the backstop: it
// ends the schedule and the script takes the lab down). Asserts on the script's last line (one JSON object): no pair wrong longer than 60 s,
// nothing left after `lab down`, no isolated pair reached, and faults were injected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { downLab, labDir, labPrefix } from '../../labs/index.ts';
import { listNetns } from '../../labs/sys.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MINUTES = process.env.SOAK_MINUTES ?? '3';
const SEED = process.env.SOAK_SEED ?? '21';
const BUDGET_MS = 300_000;
/** The script's own budget (lab up and down included); SIGTERM at BUDGET_MS is only the backstop. */
const WALL_S = 280;

test(`soak: ${MINUTES} min of seeded faults (seed ${SEED}), no pair wrong > 60 s, no leaks`, { timeout: BUDGET_MS + 60_000 }, async (t) => {
  const root = mkdtempSync('/tmp/zmesh-soak-test-');
  const name = `soak-${randomBytes(3).toString('hex')}`;
  const env = { ...process.env, ZMESH_LAB_DIR: root };
  const lines: string[] = [];
  const t0 = Date.now();
  let code: number | null | undefined;
  try {
    code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/soak.ts', '--minutes', MINUTES, '--seed', SEED, '--name', name, '--grace', '30', '--wall', String(WALL_S)], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let buf = '';
      const onData = (b: Buffer) => {
        buf += b.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const l of parts) {
          lines.push(l);
          if (!l.startsWith('{')) t.diagnostic(l);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', (b: Buffer) => t.diagnostic(`stderr: ${b.toString().trim()}`));
      // The budget: SIGTERM ends the schedule (the script takes its lab down); SIGKILL 50 s later at the latest.
      const term = setTimeout(() => child.kill('SIGTERM'), BUDGET_MS);
      const kill = setTimeout(() => child.kill('SIGKILL'), BUDGET_MS + 50_000);
      child.on('error', reject);
      child.on('close', (c) => {
        clearTimeout(term);
        clearTimeout(kill);
        if (buf) lines.push(buf);
        resolve(c);
      });
    });
  } finally {
    // Should the script have died without its own `lab down`: take the lab down here (by its state and names).
    process.env.ZMESH_LAB_DIR = root;
    if (existsSync(labDir(name)) || listNetns().some((n) => n.startsWith(labPrefix(name)))) {
      t.diagnostic(`the script left lab ${name}: taking it down`);
      await downLab(name, labDir(name));
    }
    rmSync(root, { recursive: true, force: true });
  }
  const wall = (Date.now() - t0) / 1000;
  const last = lines.filter((l) => l.trim()).at(-1) ?? '';
  t.diagnostic(`exit ${code}, ${wall.toFixed(0)} s wall; ${last}`);
  console.log(last);
  const r = JSON.parse(last) as { seed: number; faults: number; aborted?: boolean; wrongOver60s: number; wrongPairs: unknown[]; leaks: number; leaked: string[]; breaches: number; rssDriftPct: number | null; greenAtEnd: boolean };
  assert.equal(r.seed, Number(SEED));
  assert.ok(r.faults >= 1, 'no fault injected');
  assert.equal(r.wrongOver60s, 0, `pairs wrong longer than 60 s: ${JSON.stringify(r.wrongPairs)}`);
  assert.equal(r.leaks, 0, `left after lab down: ${JSON.stringify(r.leaked)}`);
  assert.equal(r.breaches, 0, 'an isolated pair was reached');
  assert.ok(wall <= BUDGET_MS / 1000 + 60, `took ${wall} s`);
});
