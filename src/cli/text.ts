// Pure text helpers of the CLI: aligned tables, ages, byte sizes, colour codes, and the `-o` option of list
// commands. Only commander beside it: the command declarations import this at start (format.ts re-exports it
// with printList, which needs yaml and the CLI config).
import { Option, type Command } from 'commander';

export function humanBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

export function humanAge(sec: number | null): string {
  if (sec === null || sec < 0) return 'never';
  if (sec < 60) return `${sec}s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h ago`;
  return `${Math.floor(sec / 86400)}d ago`;
}

export function colour(enabled: boolean) {
  const wrap = (code: number) => (s: string) => (enabled ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { green: wrap(32), red: wrap(31), yellow: wrap(33), dim: wrap(2), bold: wrap(1) };
}

/** Aligned columns; widths ignore ANSI colour codes. */
export function table(rows: string[][]): string {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(c))));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i] - visible(c)))).join('  ').trimEnd()).join('\n');
}

/** Adds `-o, --output <format>` (json, yaml or wide) to a list command. */
export function withOutputOption(cmd: Command): Command {
  return cmd.addOption(new Option('-o, --output <format>', 'json, yaml, or wide (a table with every field)').choices(['json', 'yaml', 'wide']));
}
