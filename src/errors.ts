// zmesh's error classes. Every zmesh error carries a stable code from the one registry (src/codes.ts, listed in
// docs/errors.md), a kind (invalid input, retryable, internal), an optional path into the input, a hint saying what
// to do, and `cause`.
import { isRegistered } from './codes.ts';

export type ErrorKind = 'invalid' | 'retryable' | 'internal';

/**
 * Under the test runner (or ZMESH_STRICT_CODES=1), an error whose code (or a problem's) the registry lacks is a
 * defect: constructing it throws. In production an unknown code passes through unchanged.
 */
const STRICT_CODES = typeof process !== 'undefined' && (process.env.NODE_TEST_CONTEXT !== undefined || process.env.ZMESH_STRICT_CODES === '1');

function assertRegistered(code: string, problems: readonly Problem[] | undefined): void {
  for (const c of [code, ...(problems ?? []).map((p) => p.code)]) {
    if (!isRegistered(c)) throw new Error(`error code ${String(c)} is not in the registry: add it to src/codes.ts (then node --import tsx scripts/gen-errors-doc.ts)`);
  }
}

export interface Problem {
  code: string;
  /** Where in the input, e.g. "networks[1].ipRange"; "" for the whole input. */
  path: string;
  message: string;
  /** What to do about it. */
  hint: string;
  /** Where in the text (1-based), for syntax errors. */
  line?: number;
  column?: number;
}

export class ZmeshError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly path: string;
  readonly hint: string;
  readonly problems: Problem[];
  /** The file the error is about, set by the CLI when it knows it (printed once, as `FILE:LINE:COL:`). */
  file?: string;
  constructor(
    code: string,
    message: string,
    opts: { kind?: ErrorKind; path?: string; hint?: string; problems?: Problem[]; cause?: unknown; received?: boolean } = {},
  ) {
    // `received`: the code came from another process (an agent of another version may know codes this build does not).
    if (STRICT_CODES && !opts.received) assertRegistered(code, opts.problems);
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ZmeshError';
    this.code = code;
    this.kind = opts.kind ?? 'invalid';
    this.path = opts.path ?? '';
    this.hint = opts.hint ?? '';
    this.problems = opts.problems ?? [{ code, path: this.path, message, hint: this.hint }];
  }
  toJSON(): { code: string; kind: ErrorKind; message: string; file?: string; problems: Problem[] } {
    return { code: this.code, kind: this.kind, message: this.message, ...(this.file ? { file: this.file } : {}), problems: this.problems };
  }
}

/** Thrown when input has one or more problems; all of them are listed. */
export class ValidationError extends ZmeshError {
  constructor(problems: Problem[], what = 'input') {
    const first = problems[0];
    super(
      problems.length === 1 ? first.code : 'E_INVALID',
      `${what} has ${problems.length} problem${problems.length === 1 ? '' : 's'}: ` +
        problems.map((p) => `${p.path || '(root)'}: ${p.message} [${p.code}]`).join('; '),
      { kind: 'invalid', path: first?.path, hint: first?.hint, problems },
    );
    this.name = 'ValidationError';
  }
}

/** A problem's message without the "(line L, column C)" it carries when line and column are given apart. */
export function messageWithoutPosition(p: Problem): string {
  return p.line === undefined ? p.message : p.message.replace(` (line ${p.line}, column ${p.column})`, '');
}

/** Where a problem is: its path, else its line:column, else "(root)". */
function where(p: Problem): string {
  return p.path || (p.line !== undefined ? `${p.line}:${p.column}` : '(root)');
}

export function formatProblems(problems: Problem[]): string {
  return problems.map((p) => `  ${p.code}  ${where(p)}: ${messageWithoutPosition(p)}${p.hint ? `\n      → ${p.hint}` : ''}`).join('\n');
}

/** Edit distance (optimal string alignment: insertions, deletions, substitutions, adjacent swaps), case-insensitive. */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The known name closest to `word` (case-insensitive edit distance of at most a third of its length, at least 1;
 * or `word` in another case, or one a prefix of the other by 3+ characters), or null when none is close. Ties go
 * to the first in `known`.
 */
export function nearest(word: string, known: readonly string[]): string | null {
  if (word.length > 64) return null;
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(word, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  if (best === null) return null;
  if (bestD <= Math.max(1, Math.floor(Math.max(word.length, best.length) / 3))) return best;
  const w = word.toLowerCase();
  const prefix = known.find((k) => Math.min(k.length, w.length) >= 3 && (k.toLowerCase().startsWith(w) || w.startsWith(k.toLowerCase())));
  return prefix ?? null;
}

/**
 * The problem for a field the format does not know, with the nearest known field suggested:
 * `unknown field "iprange", did you mean ipRange?`. `docs` names where the fields are described.
 */
export function unknownField(path: string, key: string, known: readonly string[], docs?: string): Problem {
  const near = nearest(key, known);
  const shown = JSON.stringify(key.slice(0, 64));
  return {
    code: 'E_UNKNOWN_FIELD',
    path,
    message: near ? `unknown field ${shown}, did you mean ${near}?` : `unknown field ${shown}`,
    hint: near
      ? `rename it to ${near}`
      : `remove it or fix its spelling; allowed here: ${known.join(', ')}${docs ? ` (see ${docs})` : ''}`,
  };
}
