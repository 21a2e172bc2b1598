// What one process costs to start from a process the size of an agent: node's child_process.spawn, execa, and a
// long-lived spawner it hands the command to (a perl loop: perl-base is on every Debian node; it forks from a few
// MiB instead of the agent's ~65 MiB), 40 sequential `/bin/true` each, twice, after loading the agent's modules and
// ~300k objects of heap (fork copies the parent's page tables). Prints per process: wall ms, this process's CPU ms,
// and all CPU (this process, the spawner and the commands). docs/netns.md#runner, docs/benchmarks.md (agent cost).
//   node --import tsx bench/spawn.ts
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

await import('../src/agent/main.ts');
const heap: { i: number; s: string }[] = [];
for (let i = 0; i < 300_000; i++) heap.push({ i, s: `x${i}` });
const N = 40;
const TICK_MS = 10; // USER_HZ 100

/** utime + stime (+ cutime + cstime) of a process, ms. */
function procCpu(pid: number | 'self'): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const v = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(v[11]) + Number(v[12]) + Number(v[13]) + Number(v[14])) * TICK_MS;
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const viaChildProcess = () =>
  new Promise<void>((resolve, reject) => {
    const c = spawn('/bin/true', [], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.on('error', reject);
    c.on('close', () => resolve());
  });
const viaExeca = async () => void (await execa('/bin/true', []));

// The spawner: a request is "<argv bytes> <input bytes>\n" then argv (NUL-separated) and input; the answer is
// "<exit code> <stdout bytes> <stderr bytes>\n" then both outputs.
const dir = mkdtempSync(join(tmpdir(), 'zmesh-spawn-'));
const script = join(dir, 'spawner.pl');
writeFileSync(
  script,
  `use strict; use warnings; use POSIX ();
binmode STDIN; binmode STDOUT; $| = 1;
sub rd { my ($n) = @_; my $b = ''; while (length($b) < $n) { my $r = read(STDIN, $b, $n - length($b), length($b)); exit 0 unless $r; } $b }
while (defined(my $h = <STDIN>)) {
  my ($al, $il) = split ' ', $h;
  my @argv = split /\\0/, rd($al);
  my $input = $il ? rd($il) : '';
  pipe(my $ir, my $iw); pipe(my $or, my $ow); pipe(my $er, my $ew);
  my $pid = fork();
  if (!$pid) { close $iw; close $or; close $er; POSIX::dup2(fileno($ir), 0); POSIX::dup2(fileno($ow), 1); POSIX::dup2(fileno($ew), 2); { exec { $argv[0] } @argv; } POSIX::_exit(127); }
  close $ir; close $ow; close $ew;
  syswrite($iw, $input) if length $input; close $iw;
  local $/; my $out = <$or> // ''; my $err = <$er> // '';
  waitpid($pid, 0);
  syswrite(STDOUT, ($? >> 8) . ' ' . length($out) . ' ' . length($err) . "\\n" . $out . $err);
}
`,
);
const helper = spawn('perl', [script], { stdio: ['pipe', 'pipe', 'inherit'] });
let buf = Buffer.alloc(0);
let waiter: ((code: number) => void) | null = null;
const answer = () => {
  const nl = buf.indexOf(10);
  if (!waiter || nl < 0) return;
  const [code, ol, el] = buf.subarray(0, nl).toString().split(' ').map(Number);
  if (buf.length < nl + 1 + ol + el) return;
  buf = buf.subarray(nl + 1 + ol + el);
  const w = waiter;
  waiter = null;
  w(code);
};
helper.stdout!.on('data', (d: Buffer) => {
  buf = Buffer.concat([buf, d]);
  answer();
});
const viaSpawner = () =>
  new Promise<void>((resolve) => {
    waiter = () => resolve();
    const a = Buffer.from(['/bin/true'].join('\0'));
    helper.stdin!.write(`${a.length} 0\n`);
    helper.stdin!.write(a);
  });

type Row = { wallMs: number; selfCpuMs: number; allCpuMs: number };
const out: Record<string, Row[]> = { child_process: [], execa: [], spawner: [] };
for (let round = 0; round < 2; round++) {
  for (const [name, f] of [['child_process', viaChildProcess], ['execa', viaExeca], ['spawner', viaSpawner]] as const) {
    const t = performance.now();
    const c0 = selfCpu();
    const all0 = procCpu('self') + procCpu(helper.pid!);
    for (let i = 0; i < N; i++) await f();
    out[name].push({
      wallMs: (performance.now() - t) / N,
      selfCpuMs: (selfCpu() - c0) / N,
      allCpuMs: (procCpu('self') + procCpu(helper.pid!) - all0) / N,
    });
  }
}
helper.stdin!.end();
rmSync(dir, { recursive: true, force: true });
const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const f2 = (x: number) => x.toFixed(2);
for (const [name, xs] of Object.entries(out)) {
  console.log(`${name.padEnd(14)} wall ${xs.map((x) => f2(x.wallMs)).join(' / ')} ms, this process ${xs.map((x) => f2(x.selfCpuMs)).join(' / ')} ms CPU, all ${xs.map((x) => f2(x.allCpuMs)).join(' / ')} ms CPU per process`);
}
console.log(`RSS ${rss.toFixed(0)} MiB, ${heap.length} objects held; load average ${(await import('node:os')).loadavg()[0].toFixed(2)}`);
const json = (k: string) => out[k].map((x) => ({ wallMs: +f2(x.wallMs), selfCpuMs: +f2(x.selfCpuMs), allCpuMs: +f2(x.allCpuMs) }));
console.log(JSON.stringify({ childProcess: json('child_process'), execa: json('execa'), spawner: json('spawner'), rssMiB: Math.round(rss) }));
