// RFC 8785 JSON Canonicalization Scheme (JCS): the bytes a signature covers.
// Object members sorted by the UTF-16 code units of their names, no whitespace, strings escaped as
// JSON.stringify does (ES2019+: \b \t \n \f \r \" \\ and \u00xx for other controls, everything else raw),
// numbers serialized as ECMAScript's Number::toString (JSON.stringify of a finite number; -0 → 0).

const MAX_DEPTH = 1000;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Thrown for values that have no canonical JSON form (non-finite numbers, cycles, bigint, lone surrogates, ...). */
export class CanonicalizeError extends TypeError {
  readonly code = 'E_CANONICAL';
}

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new CanonicalizeError('a string contains a lone UTF-16 surrogate (not Unicode)');
  return JSON.stringify(s);
}

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The RFC 8785 canonical JSON text of a value. Members whose value is undefined are omitted, as in JSON. */
export function canonicalize(value: unknown): string {
  const parts: string[] = [];
  const ancestors = new Set<object>();

  function walk(v: unknown, depth: number): void {
    if (v === null) {
      parts.push('null');
      return;
    }
    switch (typeof v) {
      case 'boolean':
        parts.push(v ? 'true' : 'false');
        return;
      case 'number':
        if (!Number.isFinite(v)) throw new CanonicalizeError(`${v} has no JSON form`);
        parts.push(JSON.stringify(v));
        return;
      case 'string':
        parts.push(str(v));
        return;
      case 'object':
        break;
      default:
        throw new CanonicalizeError(`a ${typeof v} has no JSON form`);
    }
    const obj = v as object;
    if (depth >= MAX_DEPTH) throw new CanonicalizeError(`nesting deeper than ${MAX_DEPTH}`);
    if (ancestors.has(obj)) throw new CanonicalizeError('cyclic value');
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') {
      ancestors.add(obj);
      walk(toJSON.call(obj), depth + 1);
      ancestors.delete(obj);
      return;
    }
    ancestors.add(obj);
    if (Array.isArray(obj)) {
      parts.push('[');
      for (let i = 0; i < obj.length; i++) {
        if (i > 0) parts.push(',');
        const item: unknown = obj[i];
        if (item === undefined) throw new CanonicalizeError(`array item ${i} is undefined`);
        walk(item, depth + 1);
      }
      parts.push(']');
    } else {
      if (!isPlainObject(obj)) throw new CanonicalizeError(`a ${obj.constructor?.name ?? 'non-plain'} object has no JSON form`);
      // Default sort compares UTF-16 code units, as RFC 8785 section 3.2.3 requires.
      const keys = Object.keys(obj).sort();
      parts.push('{');
      let first = true;
      for (const k of keys) {
        const item: unknown = (obj as Record<string, unknown>)[k];
        if (item === undefined) continue;
        if (!first) parts.push(',');
        first = false;
        parts.push(str(k), ':');
        walk(item, depth + 1);
      }
      parts.push('}');
    }
    ancestors.delete(obj);
  }

  if (value === undefined) throw new CanonicalizeError('undefined has no JSON form');
  walk(value, 0);
  return parts.join('');
}
