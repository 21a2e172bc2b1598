// The JSON Schemas in schemas/ (blueprint, inventory, lab spec, agent config), checked with ajv. A schema says the
// structure (which fields exist, which are required, their JSON types); ajv's findings become zmesh problems with
// zmesh's codes (E_UNKNOWN_FIELD with "did you mean", E_REQUIRED "missing", E_TYPE), and zmesh's own validators
// keep the semantic checks (names, ranges, keys, references) with their codes and hints. Editors use the same
// files (docs/schemas.md).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { unknownField, type Problem } from '../errors.ts';

export type SchemaName = 'blueprint' | 'inventory' | 'lab-spec' | 'agent-config';
export const SCHEMA_NAMES: SchemaName[] = ['blueprint', 'inventory', 'lab-spec', 'agent-config'];

/** schemas/ in the repository (src/cli/../../schemas) or next to the built files (dist/src/cli/../../../schemas). */
function schemaDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const dir = join(here, up, 'schemas');
    try {
      readFileSync(join(dir, 'blueprint.schema.json'));
      return dir;
    } catch {
      /* next */
    }
  }
  throw new Error('schemas/ not found next to the zmesh sources');
}

export function loadSchema(name: SchemaName): Record<string, unknown> {
  return JSON.parse(readFileSync(join(schemaDir(), `${name}.schema.json`), 'utf8')) as Record<string, unknown>;
}

const compiled = new Map<SchemaName, ValidateFunction>();
const schemas = new Map<SchemaName, Record<string, unknown>>();

function schema(name: SchemaName): Record<string, unknown> {
  let s = schemas.get(name);
  if (!s) schemas.set(name, (s = loadSchema(name)));
  return s;
}

function validator(name: SchemaName): ValidateFunction {
  let v = compiled.get(name);
  if (!v) {
    // ajv (about 0.15 s to load, more to compile) is required here, when a document needs it: `zmesh plan` with a
    // well-formed inventory never does (see structurallyClean).
    const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
    v = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true }).compile(schema(name));
    compiled.set(name, v);
  }
  return v;
}

const KNOWN = new Set(['$schema', '$id', 'title', 'description', 'type', 'properties', 'additionalProperties', 'required', 'items',
  'pattern', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'enum', 'const', 'format', 'default', 'examples']);

const TYPES: Record<string, (v: unknown) => boolean> = {
  object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
  boolean: (v) => typeof v === 'boolean',
  null: (v) => v === null,
};

/** A schema turned into a check once (true: no structural problem, false: one, null: cannot tell). */
type Check = (data: unknown) => boolean | null;
const checks = new WeakMap<object, Check>();
const hasOwn = Object.prototype.hasOwnProperty;

function compileCheck(schema: unknown): Check {
  if (schema === true) return () => true;
  if (typeof schema !== 'object' || schema === null) return () => null;
  const cached = checks.get(schema);
  if (cached) return cached;
  const s = schema as Record<string, unknown>;
  let check: Check;
  const additional = s.additionalProperties;
  if (Object.keys(s).some((k) => !KNOWN.has(k)) || (additional !== undefined && typeof additional !== 'boolean') || Array.isArray(s.items)) {
    check = () => null;
  } else {
    const types = s.type === undefined ? null : (Array.isArray(s.type) ? (s.type as string[]) : [s.type as string]).map((t) => TYPES[t] ?? (() => false));
    const props = new Map(Object.entries((s.properties ?? {}) as Record<string, unknown>).map(([k, v]) => [k, compileCheck(v)]));
    const required = (s.required ?? []) as string[];
    const closed = additional === false;
    const items = s.items === undefined ? null : compileCheck(s.items);
    check = (data) => {
      if (types && !types.some((t) => t(data))) return false;
      let unsure = false;
      if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
        const obj = data as Record<string, unknown>;
        for (const k of required) if (!hasOwn.call(obj, k)) return false;
        for (const k in obj) {
          const c = props.get(k);
          if (c === undefined) {
            if (closed) return false;
            continue;
          }
          const r = c(obj[k]);
          if (r === false) return false;
          if (r === null) unsure = true;
        }
      } else if (items && Array.isArray(data)) {
        for (const item of data) {
          const r = items(item);
          if (r === false) return false;
          if (r === null) unsure = true;
        }
      }
      return unsure ? null : true;
    };
  }
  checks.set(schema, check);
  return check;
}

/**
 * Whether ajv would find no structural problem (unknown field, missing one, wrong JSON type) in `data`: true when
 * certainly none, false when there is one, null when the schema uses a keyword this walk does not know (oneOf,
 * $ref, …). Values (patterns, ranges) are not looked at: structuralProblems ignores them. The schema is turned
 * into closures once; a well-formed 10,000-node inventory takes milliseconds, where loading and compiling ajv
 * takes a quarter of a second. ajv runs only when this is not true, for the exact problems.
 */
export function structurallyClean(schema: unknown, data: unknown): boolean | null {
  return compileCheck(schema)(data);
}

/** "/nodes/0/publicKey" → "nodes[0].publicKey". */
function toPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out ? `.${seg}` : seg;
  }
  return out;
}

const join2 = (path: string, key: string) => (path ? `${path}.${key}` : key);

function toProblem(e: ErrorObject, name: SchemaName): Problem | null {
  const path = toPath(e.instancePath);
  if (e.keyword === 'additionalProperties') {
    const key = (e.params as { additionalProperty: string }).additionalProperty;
    const known = Object.keys(((e.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object);
    return unknownField(join2(path, key), key, known);
  }
  if (e.keyword === 'required') {
    const key = (e.params as { missingProperty: string }).missingProperty;
    return { code: 'E_REQUIRED', path: join2(path, key), message: 'missing', hint: `add it (schemas/${name}.schema.json)` };
  }
  if (e.keyword === 'type') {
    return { code: 'E_TYPE', path, message: `expected ${String((e.params as { type: string | string[] }).type)}`, hint: 'use the type the format documents for this field' };
  }
  return null; // values (patterns, ranges, enums): zmesh's own checks say what is wrong, with their codes
}

/**
 * The structural problems of `data` under a schema: unknown fields, missing ones, wrong JSON types (each once,
 * by path). Values are left to zmesh's validators.
 */
export function structuralProblems(name: SchemaName, data: unknown): Problem[] {
  if (structurallyClean(schema(name), data) === true) return [];
  const v = validator(name);
  if (v(data)) return [];
  const seen = new Set<string>();
  const out: Problem[] = [];
  for (const e of v.errors ?? []) {
    const p = toProblem(e, name);
    if (!p || seen.has(`${p.code} ${p.path}`)) continue;
    seen.add(`${p.code} ${p.path}`);
    out.push(p);
  }
  // A misspelt field before the "missing" it causes, as zmesh's validators order them.
  const rank = (p: Problem) => ['E_UNKNOWN_FIELD', 'E_REQUIRED', 'E_TYPE'].indexOf(p.code);
  return out.sort((a, b) => rank(a) - rank(b));
}

/** Whether `data` passes the schema whole (structure and values), for tests and editors. */
export function schemaErrors(name: SchemaName, data: unknown): ErrorObject[] {
  const v = validator(name);
  return v(data) ? [] : [...(v.errors ?? [])];
}
