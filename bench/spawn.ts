// What one process costs to start from a process the size of an agent: node's child_process.spawn against
// execa, 40 sequential `/bin/true` each, twice, after loading the agent's modules and ~300k objects of heap (an
// agent holds ~100 MiB RSS; fork copies its page tables). Prints ms per process and the RSS. docs/netns.md#runner.
//   node --import tsx bench/spawn.ts
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';

await import('../src/agent/main.ts');
const heap: { i: number; s: string }[] = [];
for (let i = 0; i < 300_000; i++) heap.push({ i, s: `x${i}` });
const N = 40;
const viaChildProcess = () =>
  new Promise<void>((resolve, reject) => {
    const c = spawn('/bin/true', [], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.on('error', reject);
    c.on('close', () => resolve());
  });
const viaExeca = async () => void (await execa('/bin/true', []));
const out: Record<string, number[]> = { child_process: [], execa: [] };
for (let round = 0; round < 2; round++) {
  for (const [name, f] of [['child_process', viaChildProcess], ['execa', viaExeca]] as const) {
    const t = performance.now();
    for (let i = 0; i < N; i++) await f();
    out[name].push((performance.now() - t) / N);
  }
}
const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
for (const [name, xs] of Object.entries(out)) console.log(`${name.padEnd(14)} ${xs.map((x) => x.toFixed(2)).join(' / ')} ms per process`);
console.log(`RSS ${rss.toFixed(0)} MiB, ${heap.length} objects held; load average ${(await import('node:os')).loadavg()[0].toFixed(2)}`);
console.log(JSON.stringify({ childProcessMs: out.child_process.map((x) => +x.toFixed(2)), execaMs: out.execa.map((x) => +x.toFixed(2)), rssMiB: Math.round(rss) }));
