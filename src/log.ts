/**
 * src/log.ts — the agent's and the controller's log: one JSON object per line on stderr (journald keeps it).
 *
 * The lines are pino's, field for field (`{"level":30,"time":…,<base>,<fields>,"msg":…}`, levels 10–60), so that
 * what reads them (journalctl -o cat | jq, the labs' log greps) is unchanged. It replaced pino (issue #18): pino
 * and its worker-thread transport machinery were ~5 MiB of an idle agent, and a synchronous write of a line is
 * all an agent needs (pino.destination(2) wrote synchronously too).
 */
import { writeSync } from 'node:fs';

export const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
export type LevelName = keyof typeof LEVELS;

type LogFn = {
  (obj: object, msg?: string): void;
  (msg: string): void;
};

export interface Logger {
  readonly level: LevelName;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger whose lines carry these fields too. */
  child(bindings: Record<string, unknown>): Logger;
}

export function isLevel(x: unknown): x is LevelName {
  return typeof x === 'string' && Object.hasOwn(LEVELS, x);
}

/** An Error as a value of a line: its type, message and stack (pino's err serializer). */
function errorValue(_key: string, v: unknown): unknown {
  if (v instanceof Error) return { type: v.name, message: v.message, stack: v.stack };
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** stderr, written synchronously; a full non-blocking pipe (EAGAIN) gets a few more tries, then the line is dropped. */
function writeStderr(line: string): void {
  for (let i = 0; i < 20; i++) {
    try {
      writeSync(2, line);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

export interface LoggerOptions {
  level?: string;
  /** Fields of every line (e.g. {node}). */
  base?: Record<string, unknown>;
  /** Where a line goes (default: stderr). */
  write?: (line: string) => void;
  /** The clock of the `time` field (ms since the epoch). */
  now?: () => number;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  if (!isLevel(level)) throw new Error(`unknown log level ${JSON.stringify(level)}: one of ${Object.keys(LEVELS).join(', ')}`);
  return make(level, opts.base ?? {}, opts.write ?? writeStderr, opts.now ?? Date.now);
}

function make(level: LevelName, bindings: Record<string, unknown>, write: (line: string) => void, now: () => number): Logger {
  const threshold = LEVELS[level];
  // The bindings' JSON once (without braces), as pino keeps its chindings.
  const bound = JSON.stringify(bindings, errorValue).slice(1, -1);
  const fn = (n: number): LogFn =>
    ((a: object | string, msg?: string) => {
      if (n < threshold) return;
      let fields = '';
      let text = msg;
      if (typeof a === 'string') text = a;
      else if (a instanceof Error) {
        fields = JSON.stringify({ err: a }, errorValue).slice(1, -1);
        text ??= a.message;
      } else if (a !== null && typeof a === 'object') {
        const { msg: own, ...rest } = a as Record<string, unknown>;
        fields = JSON.stringify(rest, errorValue).slice(1, -1);
        if (text === undefined && typeof own === 'string') text = own;
      }
      let line = `{"level":${n},"time":${now()}`;
      if (bound) line += `,${bound}`;
      if (fields) line += `,${fields}`;
      if (text !== undefined) line += `,"msg":${JSON.stringify(text)}`;
      write(line + '}\n');
    }) as LogFn;
  return {
    level,
    trace: fn(10),
    debug: fn(20),
    info: fn(30),
    warn: fn(40),
    error: fn(50),
    fatal: fn(60),
    child: (more) => make(level, { ...bindings, ...more }, write, now),
  };
}
