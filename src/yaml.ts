// Reading a YAML (or JSON) document for configs, inventories and lab specs: unique keys, few aliases, and a
// syntax error turned into a ValidationError (E_YAML_SYNTAX). Blueprints have their own stricter reader.
import { parse as parseYaml } from 'yaml';
import { ValidationError } from './errors.ts';

export function parseYamlDocument(text: string, what: string, maxAliasCount = 50): unknown {
  try {
    return parseYaml(text, { uniqueKeys: true, maxAliasCount });
  } catch (e) {
    throw new ValidationError([{ code: 'E_YAML_SYNTAX', path: '', message: (e as Error).message.split('\n')[0], hint: 'fix the YAML/JSON syntax' }], what);
  }
}
