// Human formatting for operator commands: aligned tables, ages, byte sizes, colour only on a terminal (and not
// with NO_COLOR or --no-color); `-o json|yaml|wide` for list commands.
import { Option, type Command } from 'commander';
import { stringify as stringifyYaml } from 'yaml';
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

/** `-o json|yaml|wide` on list commands (beside `--json`, which stays): how to print a list. */
export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';

/** Adds `-o, --output <format>` (json, yaml or wide) to a list command. */
export function withOutputOption(cmd: Command): Command {
  return cmd.addOption(new Option('-o, --output <format>', 'json, yaml, or wide (a table with every field)').choices(['json', 'yaml', 'wide']));
}

export function outputFormat(flags: { json?: boolean; output?: string }): OutputFormat {
  if (flags.json) return 'json';
  return (flags.output as OutputFormat | undefined) ?? 'table';
}

/** "listenPort" → "LISTEN PORT". */
function header(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toUpperCase();
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === 'object' && x !== null ? JSON.stringify(x) : String(x))).join(',') : '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A table with one column per field of the rows (in the order they first appear): what `-o wide` prints. */
export function wideTable(rows: Record<string, unknown>[]): string {
  const keys: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  return table([keys.map(header), ...rows.map((r) => keys.map((k) => cell(r[k])))]);
}

/**
 * Prints a list as the flags ask: JSON (`--json` or `-o json`: `data` as the API returns it), YAML, a wide table
 * of `rows` (every field), or the command's own table (`human`). `empty` when there are no rows.
 */
export function printList(flags: { json?: boolean; output?: string }, data: unknown, rows: Record<string, unknown>[], human: () => string, empty: string): void {
  const f = outputFormat(flags);
  const text =
    f === 'json'
      ? JSON.stringify(data, null, 2)
      : f === 'yaml'
        ? stringifyYaml(data).trimEnd()
        : rows.length === 0
          ? empty
          : f === 'wide'
            ? wideTable(rows)
            : human();
  process.stdout.write(text + '\n');
}
