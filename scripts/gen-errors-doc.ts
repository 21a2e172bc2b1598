// Writes the per-code tables of docs/errors.md from the registry (src/codes.ts): one table per area, between
// `<!-- codes:AREA … -->` and `<!-- /codes:AREA -->`; the hand-written prose around them stays as it is.
//   node --import tsx scripts/gen-errors-doc.ts           rewrite docs/errors.md
//   node --import tsx scripts/gen-errors-doc.ts --check   exit 1 when docs/errors.md is not what this writes
// test/unit/error-codes.test.ts runs the check too, so the doc cannot drift from the registry.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AREAS, CODES, type Area, type CodeInfo } from '../src/codes.ts';

export const ERRORS_DOC = fileURLToPath(new URL('../docs/errors.md', import.meta.url));

const BEGIN = /<!-- codes:([a-z]+)(?: [^>]*)? -->\n/g;
const beginMarker = (area: Area) => `<!-- codes:${area} (generated from src/codes.ts by scripts/gen-errors-doc.ts; edit there) -->\n`;
const endMarker = (area: string) => `<!-- /codes:${area} -->`;

/** A registry text as a table cell: a closing full stop, `|` escaped (the case is kept: texts may start with a field name). */
function cell(text: string): string {
  let s = text.trim();
  if (!/[.!?]$/.test(s)) s += '.';
  return s.replace(/\|/g, '\\|');
}

/** The table of one area's codes, in registry order. */
export function areaTable(area: Area, codes: Readonly<Record<string, CodeInfo>> = CODES): string {
  const rows = Object.entries(codes)
    .filter(([, c]) => c.area === area)
    .map(([code, c]) => `| \`${code}\` | ${c.kind} | ${c.status} | ${cell(c.meaning)}${c.reserved ? ` (Reserved: ${c.reserved.replace(/\|/g, '\\|')}.)` : ''} | ${cell(c.hint)} |`);
  return ['| Code | Kind | HTTP | Meaning | What to do |', '|---|---|---|---|---|', ...rows].join('\n') + '\n';
}

/**
 * `doc` with every area's table rewritten from the registry. Throws when an area has no marker pair, a marker
 * names an unknown area or appears twice, or a begin marker has no end: the doc would not list every code.
 */
export function renderErrorsDoc(doc: string, codes: Readonly<Record<string, CodeInfo>> = CODES): string {
  const seen = new Set<string>();
  let out = '';
  let at = 0;
  for (const m of doc.matchAll(BEGIN)) {
    const area = m[1];
    if (!(AREAS as readonly string[]).includes(area)) throw new Error(`docs/errors.md: marker for unknown area "${area}" (areas: ${AREAS.join(', ')})`);
    if (seen.has(area)) throw new Error(`docs/errors.md: two tables for area "${area}"`);
    seen.add(area);
    const start = m.index;
    if (start < at) throw new Error(`docs/errors.md: marker for "${area}" inside another table`);
    const end = doc.indexOf(endMarker(area), start);
    if (end < 0) throw new Error(`docs/errors.md: no ${endMarker(area)} after the table's begin marker`);
    out += doc.slice(at, start) + beginMarker(area as Area) + areaTable(area as Area, codes);
    at = end;
  }
  const missing = AREAS.filter((a) => !seen.has(a) && Object.values(codes).some((c) => c.area === a));
  if (missing.length) throw new Error(`docs/errors.md: no table markers for area${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: add "${beginMarker(missing[0]).trim()}" and "${endMarker(missing[0])}"`);
  return out + doc.slice(at);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const current = readFileSync(ERRORS_DOC, 'utf8');
  const next = renderErrorsDoc(current);
  if (process.argv.includes('--check')) {
    if (next !== current) {
      process.stderr.write('docs/errors.md is not generated from src/codes.ts: run node --import tsx scripts/gen-errors-doc.ts\n');
      process.exitCode = 1;
    }
  } else if (next !== current) {
    writeFileSync(ERRORS_DOC, next);
    process.stdout.write('docs/errors.md: tables rewritten from src/codes.ts\n');
  } else process.stdout.write('docs/errors.md: up to date\n');
}
