// Byte sizes: integers, or strings like "256Mi", "1G", "1.5Gi". K/M/G/T are powers of 1000,
// Ki/Mi/Gi/Ti powers of 1024 (as Kubernetes quantities). The result must be a whole, safe number of bytes.

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

const UNITS: Record<string, number> = {
  '': 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: KiB,
  Mi: MiB,
  Gi: GiB,
  Ti: 1024 * GiB,
};

const SIZE_RE = /^(0|[1-9][0-9]{0,15})(?:\.([0-9]{1,9}))?(Ki|Mi|Gi|Ti|K|M|G|T)?$/;

export type SizeResult = { ok: true; bytes: number } | { ok: false; kind: 'type' | 'format' | 'range'; message: string };

/** Parses a size in bytes. Does not apply minimums; the caller does. */
export function parseSize(value: unknown): SizeResult {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return { ok: false, kind: 'type', message: `${value} is not a finite number` };
    if (!Number.isInteger(value) || value < 0) {
      return { ok: false, kind: 'format', message: `${value} is not a whole, non-negative number of bytes` };
    }
    if (!Number.isSafeInteger(value)) return { ok: false, kind: 'range', message: `${value} bytes is too large` };
    return { ok: true, bytes: value };
  }
  if (typeof value !== 'string') return { ok: false, kind: 'type', message: 'expected a number of bytes or a string like "256Mi"' };
  const m = SIZE_RE.exec(value);
  if (!m) return { ok: false, kind: 'format', message: `${JSON.stringify(value.slice(0, 40))} is not a size like "256Mi" or "1G"` };
  const unit = UNITS[m[3] ?? ''];
  const frac = m[2] ?? '';
  // Exact integer arithmetic: whole * unit + frac * unit / 10^digits.
  const scale = 10n ** BigInt(frac.length);
  const total = BigInt(m[1]) * BigInt(unit) * scale + BigInt(frac || '0') * BigInt(unit);
  if (total % scale !== 0n) {
    return { ok: false, kind: 'format', message: `${JSON.stringify(value)} is not a whole number of bytes` };
  }
  const bytes = total / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, kind: 'range', message: `${JSON.stringify(value)} is too large` };
  return { ok: true, bytes: Number(bytes) };
}

/** Formats bytes with the largest binary unit that divides them exactly ("256Mi"), else plain bytes. */
export function formatSize(bytes: number): string {
  for (const u of ['Ti', 'Gi', 'Mi', 'Ki']) {
    if (bytes > 0 && bytes % UNITS[u] === 0) return `${bytes / UNITS[u]}${u}`;
  }
  return String(bytes);
}
