// The yaml package, loaded on first use and by require(): a CommonJS package imported through the ESM loader by a
// module loaded after start can come out empty (nodejs/node#51142; src/control/etcd.ts, test/unit/cjs-lazy.test.ts).
// Nothing else here: the CLI's output formatting takes it without the parsers behind src/yaml.ts.
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

export function yamlLib(): typeof Yaml {
  return createRequire(import.meta.url)('yaml') as typeof Yaml;
}
