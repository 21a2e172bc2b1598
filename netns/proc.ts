// What /proc says of a process: its state and parent, and its argv while it lives. Used to recognise the daemons
// zmesh starts (wireguard-go, dnsmasq) after a restart and in leak listings.
import { readFileSync } from 'node:fs';

/** State letter and parent PID from /proc/<pid>/stat, or null when the process is gone. */
export function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], ppid: Number(f[1]) };
  } catch {
    return null;
  }
}

/** argv of a live process (not a zombie), or null. */
export function procArgv(pid: number): string[] | null {
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return null;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s, i, a) => !(s === '' && i === a.length - 1));
  } catch {
    return null;
  }
}

/**
 * Whether a daemon of ours still holds on: it runs with argv `matches` accepts, or it is exiting — alive, not yet a
 * zombie, its argv already released (the kernel frees a process's memory, and with it /proc/<pid>/cmdline, before
 * it closes its files). A stop that took an empty argv for "gone" returned while the daemon still held its
 * sockets (port 53; CI saw a stopped dnsmasq still alive).
 */
export function holdsOn(pid: number, matches: (argv: string[]) => boolean): boolean {
  const argv = procArgv(pid);
  return argv !== null && (argv.length === 0 || matches(argv));
}
