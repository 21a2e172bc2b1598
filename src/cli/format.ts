// Human formatting for operator commands: aligned tables, ages, byte sizes, colour only on a terminal (and not
// with NO_COLOR or --no-color); `-o json|yaml|wide` for list commands.
// The pure helpers live in text.ts (the command declarations load it at start, without yaml); re-exported here.
import { yamlLib } from '../yaml-lib.ts';
import { defaultOutput } from './config.ts';
import { table } from './text.ts';

export { colour, humanAge, humanBytes, table, withOutputOption } from './text.ts';

/** `-o json|yaml|wide` on list commands (beside `--json`, which stays): how to print a list. */
export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';

export function outputFormat(flags: { json?: boolean; output?: string }): OutputFormat {
  if (flags.json) return 'json';
  return (flags.output as OutputFormat | undefined) ?? defaultOutput(); // $ZMESH_OUTPUT, the CLI config, table
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
        ? yamlLib().stringify(data).trimEnd()
        : rows.length === 0
          ? empty
          : f === 'wide'
            ? wideTable(rows)
            : human();
  process.stdout.write(text + '\n');
}
