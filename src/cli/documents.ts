// What a file given to a command is, and one sentence when it is not what the command wants: a signed envelope
// given to `validate`, a blueprint given to `verify` or `apply --plan`, an inventory given as a blueprint, a key
// file given as a document. Errors found inside a file name it once (`FILE:LINE:COL: CODE: …`, see util.inFile).
import { ValidationError, ZmeshError, type Problem } from '../errors.ts';
import { structuralProblems } from './schemas.ts';
import { parseText } from '../blueprint/index.ts';
import { validateInventory, type Inventory } from '../plan/inventory.ts';
import { parseYamlDocument } from '../yaml.ts';
import { inFile, readText, runningCommand } from './util.ts';

export type DocumentKind = 'blueprint' | 'signed' | 'plan' | 'part' | 'inventory' | 'agent-config' | 'lab-spec' | 'key';

const DESCRIBED: Record<DocumentKind, string> = {
  blueprint: 'a plain (unsigned) blueprint',
  signed: 'a signed blueprint (`zmesh sign` output)',
  plan: 'a plan (`zmesh plan` output)',
  part: "a node's plan part (`zmesh plan part` output)",
  inventory: 'a node inventory (`plan --nodes`)',
  'agent-config': 'an agent config (`zmesh agent --config`)',
  'lab-spec': 'a lab spec (`zmesh lab up`)',
  key: 'a key file (`zmesh keygen` output)',
};

const WANTED: Record<DocumentKind, string> = {
  blueprint: 'a blueprint (YAML or JSON)',
  signed: 'a signed blueprint (`zmesh sign` output)',
  plan: 'a plan (`zmesh plan` output)',
  part: "a node's plan part",
  inventory: 'a node inventory (YAML or JSON)',
  'agent-config': 'an agent config',
  'lab-spec': 'a lab spec',
  key: 'a key file',
};

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What parsed data is, when it clearly is one of zmesh's documents; null when it cannot tell. */
export function documentKind(data: unknown): DocumentKind | null {
  if (!isObj(data)) return null;
  const format = data.format;
  if (typeof format === 'string') {
    if (format.startsWith('zmesh-signed-blueprint/')) return 'signed';
    if (format.startsWith('zmesh-node-plan/')) return 'part';
    if (format.startsWith('zmesh-plan/')) return 'plan';
    return null;
  }
  if ('tenant' in data && ('networks' in data || 'version' in data)) return 'blueprint';
  if ('nodeId' in data && ('identityKeyFile' in data || 'stateDir' in data)) return 'agent-config';
  if (Array.isArray(data.nodes) && ('tenants' in data || 'nats' in data || 'devices' in data)) return 'lab-spec';
  if (Array.isArray(data.nodes) && !('tenant' in data)) return 'inventory';
  return null;
}

/** What each kind given in place of another should lead to. */
function hintFor(path: string, got: DocumentKind, want: DocumentKind[]): string {
  if (got === 'signed' && want.includes('blueprint')) return `it is already signed: check it with \`zmesh verify ${path}\``;
  if (got === 'blueprint' && want.includes('signed')) return `sign it first: \`zmesh sign ${path} --key TENANT.key --out SIGNED.json\``;
  if (got === 'part' && want.includes('plan')) return 'pass the whole plan `zmesh plan` wrote';
  return `pass ${want.map((w) => WANTED[w]).join(' or ')}`;
}

/** "`zmesh apply --plan` wants a plan (…)". */
function wants(want: DocumentKind[], option?: string): string {
  return `\`${runningCommand()}${option ? ` ${option}` : ''}\` wants ${want.map((w) => WANTED[w]).join(' or ')}`;
}

/** Refuses data that is clearly another kind of zmesh document than one of `want` (E_DOCUMENT_KIND). */
export function expectKind(path: string, data: unknown, want: DocumentKind[], option?: string): void {
  const got = documentKind(data);
  if (got === null || want.includes(got)) return;
  const name = path === '-' ? 'stdin' : path;
  const err = new ZmeshError('E_DOCUMENT_KIND', `${name} is ${DESCRIBED[got]}; ${wants(want, option)}`, {
    hint: hintFor(path, got, want),
  });
  err.file = ''; // named in the message
  throw err;
}

/** A key file given where a document is wanted. */
function refuseKeyText(path: string, text: string, want: DocumentKind[], option?: string): void {
  if (/^\s*-----BEGIN ZMESH /.test(text)) {
    const err = new ZmeshError('E_DOCUMENT_KIND', `${path} is ${DESCRIBED.key}; ${wants(want, option)}`, {
      hint: 'key files go to --key, --sign or --signing-key',
    });
    err.file = '';
    throw err;
  }
}

/** Reads and parses (YAML/JSON, limits of src/blueprint/parse) a file that must be one of `want`. */
export function readDocument(path: string, want: DocumentKind[]): { text: string; data: unknown } {
  const text = readText(path, want.map((w) => WANTED[w]).join(' or '));
  refuseKeyText(path, text, want);
  const data = inFile(path, () => parseText(text, { what: path }));
  expectKind(path, data, want);
  return { text, data };
}

/** Reads a JSON document (plans, parts, envelopes) that must be one of `want`. */
export function readJsonDocument(path: string, want: DocumentKind[], option?: string): unknown {
  const text = readText(path, want.map((w) => WANTED[w]).join(' or '));
  refuseKeyText(path, text, want, option);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const err = new ZmeshError('E_DOCUMENT_KIND', `${path} is not JSON (${(e as Error).message}); ${wants(want, option)}`, {
      hint: `pass ${want.map((w) => WANTED[w]).join(' or ')}`,
      cause: e,
    });
    err.file = '';
    // A YAML blueprint given where a JSON document is wanted says what it is.
    try {
      expectKind(path, parseText(text, { what: path }), want, option);
    } catch (k) {
      if (k instanceof ZmeshError && k.code === 'E_DOCUMENT_KIND') throw k;
    }
    throw err;
  }
  expectKind(path, data, want, option);
  return data;
}

/** Reads a node inventory file (`plan --nodes`): another kind of document is one sentence, problems name the file. */
export function readInventoryFile(path: string): Inventory {
  const text = readText(path, WANTED.inventory);
  refuseKeyText(path, text, ['inventory'], '--nodes');
  return inFile(path, () => {
    const data = parseYamlDocument(text, path, 100);
    expectKind(path, data, ['inventory'], '--nodes');
    // Structure by the JSON Schema (ajv), values by zmesh's checks; every problem at once, each once.
    const structural = structuralProblems('inventory', data);
    let semantic: Problem[] = [];
    let inventory: Inventory | null = null;
    try {
      inventory = validateInventory(data);
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      semantic = e.problems;
    }
    const seen = new Set(structural.map((p) => `${p.code} ${p.path}`));
    const problems = [...structural, ...semantic.filter((p) => !seen.has(`${p.code} ${p.path}`))];
    if (problems.length || !inventory) throw new ValidationError(problems, path);
    return inventory;
  });
}
