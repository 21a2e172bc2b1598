// JSON text in pieces, so a large plan is written without ever holding its whole text: joined, the pieces equal
// JSON.stringify(value, null, indent) (indent 0: compact) exactly. Containers down to `depth` levels are opened
// piecewise; anything deeper is one JSON.stringify. Pure (a generator); the CLI does the writing.

/** Pretty (indent 2) for documents a person reads; compact above this many items (resources, devices, peers). */
export const PRETTY_MAX_ITEMS = 1000;

export function* jsonChunks(value: unknown, indent = 0, depth = 4, pad = ''): Generator<string> {
  if (depth <= 0 || value === null || typeof value !== 'object' || typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    const text = JSON.stringify(value, null, indent) ?? 'null';
    yield indent && pad ? text.replace(/\n/g, `\n${pad}`) : text;
    return;
  }
  const nl = indent ? '\n' : '';
  const inner = pad + ' '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return yield '[]';
    yield '[';
    for (let i = 0; i < value.length; i++) {
      yield `${i ? ',' : ''}${nl}${inner}`;
      const v = value[i] as unknown;
      yield* jsonChunks(v === undefined || typeof v === 'function' ? null : v, indent, depth - 1, inner);
    }
    return yield `${nl}${pad}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function');
  if (keys.length === 0) return yield '{}';
  yield '{';
  for (let i = 0; i < keys.length; i++) {
    yield `${i ? ',' : ''}${nl}${inner}${JSON.stringify(keys[i])}${indent ? ': ' : ':'}`;
    yield* jsonChunks(obj[keys[i]], indent, depth - 1, inner);
  }
  yield `${nl}${pad}}`;
}

/** The pieces batched into strings of about `size` characters (fewer, larger writes). */
export function* batched(chunks: Iterable<string>, size = 1 << 20): Generator<string> {
  let buf = '';
  for (const c of chunks) {
    buf += c;
    if (buf.length >= size) {
      yield buf;
      buf = '';
    }
  }
  if (buf) yield buf;
}
