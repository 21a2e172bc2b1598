// The JSON Schemas in schemas/ (blueprint, inventory, lab spec, agent config), checked with ajv. A schema says the
// structure (which fields exist, which are required, their JSON types); ajv's findings become zmesh problems with
// zmesh's codes (E_UNKNOWN_FIELD with "did you mean", E_REQUIRED "missing", E_TYPE), and zmesh's own validators
// keep the semantic checks (names, ranges, keys, references) with their codes and hints. Editors use the same
// files (docs/schemas.md).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
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

function validator(name: SchemaName): ValidateFunction {
  let v = compiled.get(name);
  if (!v) {
    v = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true }).compile(loadSchema(name));
    compiled.set(name, v);
  }
  return v;
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
