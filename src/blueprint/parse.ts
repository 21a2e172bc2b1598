// Text → plain data, defensively: YAML 1.2 (core schema; JSON is a subset) with duplicate keys rejected,
// one document only, no explicit tags, no merge keys, few aliases, and size limits checked before parsing.
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

/** The yaml package, loaded the first time a text is not JSON (JSON blueprints and inventories never load it). */
let yamlLib: typeof Yaml | undefined;
const yaml = (): typeof Yaml => (yamlLib ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
import { ValidationError, type Problem } from '../errors.ts';
import { problem } from './codes.ts';
import type { Blueprint } from './types.ts';
import { validateBlueprint } from './validate.ts';

/** Largest accepted text, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 1024 * 1024;
/** Aliases (*name) beyond this many expansions are refused (billion-laughs guard). */
export const MAX_ALIAS_COUNT = 50;
/** Deepest nesting accepted (see nestingExceeds); a blueprint needs about 8. */
export const MAX_NESTING = 64;

export interface ParseOptions {
  /** What the text is, for the error message (e.g. a file name). Default "blueprint". */
  what?: string;
}

function utf8Length(text: string): number {
  // UTF-8 is never shorter than UTF-16 code units, so long strings are rejected without encoding them.
  if (text.length > MAX_TEXT_BYTES) return text.length;
  return Buffer.byteLength(text, 'utf8');
}

/**
 * An upper bound on how deeply the text nests, found with yaml's Lexer (iterative, exact about quotes,
 * comments and block scalars) before the recursive composer sees the text: deep nesting can exhaust the
 * stack, and near the stack limit V8 may even abort the process instead of throwing.
 * Block depth: a stack of the columns where block nodes start (each line's indentation and each compact
 * indicator "- ", "? ", ": " at its column), as YAML nests by column; flow depth: open [ and {.
 * Returns as soon as block + flow depth passes the limit.
 */
export function nestingExceeds(text: string, limit: number): boolean {
  const columns: number[] = [];
  const open = (col: number): void => {
    while (columns.length > 0 && columns[columns.length - 1] >= col) columns.pop();
    columns.push(col);
  };
  let flow = 0;
  let lineStart = true;
  let col = 0;
  let leading = false;
  let skipValue = false;
  let blockScalar = false;
  const { CST, Lexer } = yaml();
  for (const tok of new Lexer().lex(text)) {
    if (skipValue) {
      skipValue = false;
      if (blockScalar) {
        // A block scalar's body runs to the end of its last line: what follows starts a line.
        blockScalar = false;
        lineStart = true;
        col = 0;
      }
      continue;
    }
    const type = CST.tokenType(tok);
    if (type === 'newline') {
      lineStart = true;
      col = 0;
      leading = false;
      continue;
    }
    if (type === 'doc-start' || type === 'doc-mode') {
      columns.length = 0;
      continue;
    }
    if (type === 'scalar' && blockScalar) {
      skipValue = true;
      continue;
    }
    if (lineStart) {
      if (flow === 0 && type === 'space') {
        col = tok.length;
        continue;
      }
      if (type === 'comment' || type === 'directive-line' || type === 'byte-order-mark') continue;
      lineStart = false;
      leading = flow === 0;
    }
    if (leading) {
      if (type === 'seq-item-ind' || type === 'explicit-key-ind' || type === 'map-value-ind') {
        open(col);
        col += tok.length;
      } else if (type === 'space') {
        col += tok.length;
      } else {
        open(col);
        leading = false;
      }
    }
    if (type === 'scalar') skipValue = true;
    else if (type === 'block-scalar-header') blockScalar = true;
    else if (type === 'flow-map-start' || type === 'flow-seq-start') flow++;
    else if ((type === 'flow-map-end' || type === 'flow-seq-end') && flow > 0) flow--;
    if (columns.length + flow > limit) return true;
  }
  return false;
}

/**
 * For text that JSON.parse accepted: the first duplicate key (JSON.parse silently keeps the last one) and
 * whether nesting passes the limit. Iterative; strings are skipped whole, so brackets in them do not count.
 */
export function scanJson(text: string, limit: number): { duplicate?: { key: string; offset: number }; tooDeep?: true } {
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      let escaped = false;
      while (text[j] !== '"') {
        if (text[j] === '\\') {
          escaped = true;
          j++;
        }
        j++;
      }
      if (expectKey) {
        const key: string = escaped ? JSON.parse(text.slice(i, j + 1)) : text.slice(i + 1, j);
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return { duplicate: { key, offset: i } };
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      stack.push(c === '{' ? new Set() : null);
      if (stack.length > limit) return { tooDeep: true };
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      stack.pop();
      expectKey = false;
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return {};
}

function lineCol(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

/** JSON text is read by JSON.parse (fast), with duplicate keys and depth still checked; null when not JSON. */
function parseJson(text: string, what: string): { value: unknown } | null {
  const first = /\S/.exec(text)?.[0];
  if (first !== '{' && first !== '[') return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null; // not strict JSON: let the YAML parser read it (and explain what is wrong)
  }
  const scan = scanJson(text, MAX_NESTING);
  if (scan.tooDeep) throw new ValidationError([problem('E_TOO_DEEP', '', `the text nests deeper than ${MAX_NESTING} levels`)], what);
  if (scan.duplicate) {
    const { key, offset } = scan.duplicate;
    const { line, column } = lineCol(text, offset);
    throw new ValidationError([{ ...syntax(`duplicate key ${JSON.stringify(key.slice(0, 64))} (line ${line}, column ${column})`), line, column }], what);
  }
  return { value };
}

function syntax(message: string): Problem {
  return problem('E_YAML_SYNTAX', '', message);
}

/**
 * Parses YAML or JSON text into plain data (objects, arrays, strings, numbers, booleans, null).
 * Throws ValidationError (E_TOO_LARGE, E_TOO_DEEP, E_YAML_SYNTAX) for anything it will not read.
 */
export function parseText(text: string, opts: ParseOptions = {}): unknown {
  const what = opts.what ?? 'blueprint';
  if (typeof text !== 'string') throw new ValidationError([problem('E_TYPE', '', 'expected text')], what);
  const size = utf8Length(text);
  if (size > MAX_TEXT_BYTES) {
    throw new ValidationError([problem('E_TOO_LARGE', '', `the text is ${size} bytes; the limit is ${MAX_TEXT_BYTES}`)], what);
  }
  const json = parseJson(text, what);
  if (json) return json.value;
  if (nestingExceeds(text, MAX_NESTING)) {
    throw new ValidationError([problem('E_TOO_DEEP', '', `the text nests deeper than ${MAX_NESTING} levels`)], what);
  }
  const { parseAllDocuments, visit } = yaml();
  try {
    const docs = parseAllDocuments(text, {
      version: '1.2',
      schema: 'core',
      merge: false,
      uniqueKeys: true,
      strict: true,
      prettyErrors: true,
      logLevel: 'silent',
    });
    if (docs.length === 0) throw new ValidationError([syntax('the text holds no document')], what);
    if (docs.length > 1) throw new ValidationError([syntax(`the text holds ${docs.length} documents; expected one`)], what);
    const doc = docs[0];
    const problems: Problem[] = [];
    if (doc.errors.some((e) => e.code === 'RESOURCE_EXHAUSTION')) {
      throw new ValidationError([problem('E_TOO_DEEP', '', 'the text nests too deeply')], what);
    }
    for (const e of [...doc.errors, ...doc.warnings].slice(0, 20)) {
      const pos = e.linePos?.[0];
      const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
      // Keep the first line of the message; yaml's pretty form appends a source excerpt.
      const first = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      problems.push({ ...syntax(`${first}${where}`), ...(pos ? { line: pos.line, column: pos.col } : {}) });
    }
    if (problems.length === 0) {
      visit(doc, (_key, node) => {
        const tag = (node as { tag?: unknown } | null)?.tag;
        if (typeof tag === 'string') {
          const range = (node as { range?: [number, number, number] }).range;
          problems.push(syntax(`explicit tags (${tag}) are not allowed${range ? ` (at offset ${range[0]})` : ''}`));
          return visit.BREAK;
        }
        return undefined;
      });
    }
    if (problems.length > 0) throw new ValidationError(problems, what);
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    if (err instanceof RangeError) {
      throw new ValidationError([problem('E_TOO_DEEP', '', 'the input nests too deeply')], what);
    }
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ValidationError([syntax(message)], what);
  }
}

/** Parses and validates a blueprint written in YAML or JSON. Throws ValidationError listing every problem. */
export function parseBlueprint(text: string, opts: ParseOptions = {}): Blueprint {
  return validateBlueprint(parseText(text, opts), { what: opts.what });
}
