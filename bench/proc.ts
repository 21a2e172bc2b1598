// Memory and process facts from /proc for the benchmarks (bench/agent.ts, bench/lab.ts).
import { readFileSync, readdirSync } from 'node:fs';

/** A /proc/<pid>/status figure in KiB (VmRSS: resident now, VmHWM: its peak); 0 when the process is gone. */
export function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size in KiB (shared pages split among the processes that map them); 0 when gone. */
export function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Children of the given processes whose command name (comm) is `comm`, e.g. the agents' wireguard-go. */
export function childrenNamed(parents: Iterable<number>, comm: string): number[] {
  const set = new Set(parents);
  const out: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x)).map(Number)) {
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (set.has(ppid) && readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) out.push(d);
    } catch {
      /* gone */
    }
  }
  return out;
}
