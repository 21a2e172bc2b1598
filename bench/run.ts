// The benchmark suite runner: `npm run bench` runs every part; `npm run bench -- plan` one part.
// Each part is a script whose last stdout line is one JSON object; results go to bench/results/latest.{json,md}.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const PARTS: Record<string, string> = { plan: 'plan.ts', apply: 'apply.ts' };
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const w of wanted) {
  if (!PARTS[w]) {
    console.error(`unknown part ${w}; parts: ${Object.keys(PARTS).join(', ')}`);
    process.exit(2);
  }
}
const parts = wanted.length ? wanted : Object.keys(PARTS).filter((p) => existsSync(here + PARTS[p]));
const results: Record<string, unknown> = {};
let failed = false;
for (const p of parts) {
  console.log(`== bench ${p}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', here + PARTS[p]], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  process.stdout.write(r.stdout);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    results[p] = JSON.parse(last);
  } catch {
    results[p] = { error: `part ${p} exited ${r.status} without a JSON line` };
    failed = true;
  }
  if (r.status !== 0) failed = true;
}
mkdirSync(here + 'results', { recursive: true });
writeFileSync(here + 'results/latest.json', JSON.stringify({ date: new Date().toISOString(), results }, null, 2) + '\n');
const md = [`# zmesh benchmarks (${new Date().toISOString()})`, ''];
for (const [p, r] of Object.entries(results)) md.push(`## ${p}`, '', '```json', JSON.stringify(r, null, 2), '```', '');
writeFileSync(here + 'results/latest.md', md.join('\n'));
console.log(JSON.stringify({ parts, results }));
process.exit(failed ? 1 : 0);
