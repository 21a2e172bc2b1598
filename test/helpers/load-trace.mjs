// `node --import tsx --import ./test/helpers/load-trace.mjs PROGRAM` with ZMESH_LOAD_TRACE=FILE: writes to FILE,
// one a line, every module the program loaded: the URLs its imports resolved to (module hooks) and, at exit, the
// CommonJS files in require's cache (what CommonJS packages required in turn). For the start-up tests of the CLI.
/* global process */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const file = process.env.ZMESH_LOAD_TRACE;
if (!file) throw new Error('load-trace.mjs: set ZMESH_LOAD_TRACE to the file to write');
register('./load-trace-hooks.mjs', import.meta.url, { data: { file } });
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => {
  appendFileSync(file, Object.keys(cache).map((p) => `${pathToFileURL(p).href}\n`).join(''));
});
