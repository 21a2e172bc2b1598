// Module hooks of test/helpers/load-trace.mjs: every URL an import resolves to, appended to the trace file as it
// is resolved (synchronously: nothing is lost when the process exits).
import { appendFileSync } from 'node:fs';

let file;

export function initialize(data) {
  file = data.file;
}

export async function resolve(specifier, context, nextResolve) {
  const r = await nextResolve(specifier, context);
  appendFileSync(file, `${r.url}\n`);
  return r;
}
