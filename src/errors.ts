// One registry of error codes (see docs/errors.md). Every zmesh error carries a stable code, a kind
// (invalid input, retryable, internal), an optional path into the input, a hint saying what to do, and `cause`.

export type ErrorKind = 'invalid' | 'retryable' | 'internal';

export interface Problem {
  code: string;
  /** Where in the input, e.g. "networks[1].ipRange"; "" for the whole input. */
  path: string;
  message: string;
  /** What to do about it. */
  hint: string;
}

export class ZmeshError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly path: string;
  readonly hint: string;
  readonly problems: Problem[];
  constructor(
    code: string,
    message: string,
    opts: { kind?: ErrorKind; path?: string; hint?: string; problems?: Problem[]; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ZmeshError';
    this.code = code;
    this.kind = opts.kind ?? 'invalid';
    this.path = opts.path ?? '';
    this.hint = opts.hint ?? '';
    this.problems = opts.problems ?? [{ code, path: this.path, message, hint: this.hint }];
  }
  toJSON(): { code: string; kind: ErrorKind; message: string; problems: Problem[] } {
    return { code: this.code, kind: this.kind, message: this.message, problems: this.problems };
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

export function formatProblems(problems: Problem[]): string {
  return problems.map((p) => `  ${p.code}  ${p.path || '(root)'}: ${p.message}${p.hint ? `\n      → ${p.hint}` : ''}`).join('\n');
}
