// Tiny hand-written SVG charts for bench/results (no dependency): a line chart with one or more series and a
// horizontal bar chart. Pure: data in, SVG text out.

export interface Series {
  name: string;
  points: [number, number][];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const fmt = (v: number) => (Math.abs(v) >= 1000 ? `${Math.round(v / 100) / 10}k` : Number.isInteger(v) ? String(v) : String(Math.round(v * 10) / 10));

/** "Nice" tick values from 0 to at least max (about `count` of them). */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  if (out[out.length - 1] < max) out.push(Math.round((out[out.length - 1] + step) * 1e6) / 1e6);
  return out;
}

export function lineChart(o: { title: string; xLabel: string; yLabel: string; series: Series[]; width?: number; height?: number }): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const m = { l: 64, r: 150, t: 36, b: 48 };
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xt = ticks(Math.max(1, ...pts.map((p) => p[0])));
  const yt = ticks(Math.max(1e-9, ...pts.map((p) => p[1])));
  const xMax = xt[xt.length - 1];
  const yMax = yt[yt.length - 1];
  const X = (x: number) => Math.round((m.l + (x / xMax) * (W - m.l - m.r)) * 10) / 10;
  const Y = (y: number) => Math.round((H - m.b - (y / yMax) * (H - m.t - m.b)) * 10) / 10;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - m.r / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
  ];
  for (const v of yt) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  for (const v of xt) {
    out.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${H - m.b}" y2="${H - m.b + 4}" stroke="#333"/>`);
    out.push(`<text x="${X(v)}" y="${H - m.b + 18}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#333"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  o.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const ps = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    if (ps.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${ps.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of ps) out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${c}"><title>${esc(`${s.name}: ${fmt(x)} → ${fmt(y)}`)}</title></circle>`);
    out.push(`<rect x="${W - m.r + 12}" y="${m.t + i * 18}" width="12" height="3" fill="${c}"/>`);
    out.push(`<text x="${W - m.r + 30}" y="${m.t + i * 18 + 5}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Horizontal bars (one group per label, one bar per value name). */
export function barChart(o: { title: string; unit: string; labels: string[]; values: { name: string; data: number[] }[]; width?: number }): string {
  const W = o.width ?? 640;
  const bar = 14;
  const group = bar * o.values.length + 10;
  const m = { l: 210, r: 70, t: 36 + o.values.length * 16, b: 30 };
  const H = m.t + m.b + group * o.labels.length;
  const max = Math.max(1e-9, ...o.values.flatMap((v) => v.data.filter(Number.isFinite)));
  const xt = ticks(max);
  const xMax = xt[xt.length - 1];
  const X = (x: number) => Math.round((m.l + (x / xMax) * (W - m.l - m.r)) * 10) / 10;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
  ];
  o.values.forEach((v, i) => {
    out.push(`<rect x="${m.l}" y="${30 + i * 16}" width="12" height="10" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${m.l + 18}" y="${39 + i * 16}">${esc(v.name)}</text>`);
  });
  for (const v of xt) {
    out.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${m.t - 4}" y2="${H - m.b}" stroke="#ddd"/>`);
    out.push(`<text x="${X(v)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  o.labels.forEach((label, g) => {
    const y0 = m.t + g * group;
    out.push(`<text x="${m.l - 8}" y="${y0 + (group - 10) / 2 + 4}" text-anchor="end">${esc(label)}</text>`);
    o.values.forEach((v, i) => {
      const val = v.data[g];
      if (!Number.isFinite(val)) return;
      const y = y0 + i * bar;
      out.push(`<rect x="${m.l}" y="${y}" width="${(X(val) - m.l).toFixed(1)}" height="${bar - 2}" fill="${COLORS[i % COLORS.length]}"/>`);
      out.push(`<text x="${(X(val) + 4).toFixed(1)}" y="${y + bar - 4}">${fmt(val)} ${esc(o.unit)}</text>`);
    });
  });
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t - 4}" y2="${H - m.b}" stroke="#333"/>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
