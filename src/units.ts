// Durations as the agent config, the lab spec and the CLI write them: "30s", "2m", "500ms", "1h", or a number of
// seconds. Pure; byte sizes are src/blueprint/units.ts.

/** "30s", "2m", "500ms" or a number of seconds → milliseconds. */
export function parseDuration(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return Math.round(v * 1000);
  if (typeof v !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
  if (!m) return null;
  const mult = { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = Math.round(Number(m[1]) * mult);
  return ms > 0 ? ms : null;
}
