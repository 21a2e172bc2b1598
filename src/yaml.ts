// Reading a YAML (or JSON) document for configs, inventories and lab specs: unique keys, few aliases, and a
// syntax error turned into a ValidationError (E_YAML_SYNTAX). Blueprints have their own stricter reader.
import { yamlLib } from './yaml-lib.ts';
import { MAX_NESTING, scanJson } from './blueprint/parse.ts';
import { ValidationError } from './errors.ts';

export { yamlLib };

export function parseYamlDocument(text: string, what: string, maxAliasCount = 50): unknown {
  // JSON is read by JSON.parse (a 10,000-node inventory: ~50 ms instead of seconds); anything else, and JSON with a
  // duplicate key or too deep, goes to the YAML parser, which explains what is wrong.
  const first = /\S/.exec(text)?.[0];
  if (first === '{' || first === '[') {
    try {
      const value: unknown = JSON.parse(text);
      const scan = scanJson(text, MAX_NESTING);
      if (!scan.duplicate && !scan.tooDeep) return value;
    } catch {
      // not strict JSON
    }
  }
  try {
    // yaml is loaded here, for a text that is not JSON: not at the start of every command that may read one.
    return yamlLib().parse(text, { uniqueKeys: true, maxAliasCount });
  } catch (e) {
    // yaml's message is "<what> at line L, column C:" followed by an excerpt; keep the first part, position apart.
    const pos = (e as { linePos?: { line: number; col: number }[] }).linePos?.[0];
    const first = (e as Error).message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new ValidationError([{
      code: 'E_YAML_SYNTAX',
      path: '',
      message: pos ? `${first} (line ${pos.line}, column ${pos.col})` : first,
      hint: 'fix the YAML/JSON syntax',
      ...(pos ? { line: pos.line, column: pos.col } : {}),
    }], what);
  }
}
