// One self-contained HTML page for a compare result: no scripts, no fonts, no network; the error-per-layer
// curve is inline SVG. The first failing key (in model order) is highlighted and has the anchor
// #first-divergence.
import type { KeyResult } from './compare.ts';
import type { CompareResult } from './compare_files.ts';
import { formatNumber, formatShape } from './format.ts';
import { POLICY } from './tolerances.ts';

export interface HtmlOptions {
  title?: string;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

const CSS = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24; margin: 16px; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 16px; margin: 24px 0 8px; }
dl.files { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0 0 12px; }
dl.files dt { font-weight: 600; } dl.files dd { margin: 0; } dl.files dd.path { font-family: ui-monospace, monospace; word-break: break-all; }
.summary { font-weight: 600; padding: 6px 10px; border-radius: 4px; display: inline-block; }
.summary.ok { background: #dafbe1; } .summary.failed { background: #ffebe9; }
.callout { border-left: 4px solid #cf222e; background: #fff5f5; padding: 6px 10px; margin: 12px 0; }
svg { display: block; max-width: 100%; height: auto; background: #fff; }
svg text { font: 11px system-ui, sans-serif; fill: #1b1f24; }
svg .grid { stroke: #e6e8eb; } svg .axis { stroke: #57606a; }
svg .series-rel { fill: none; stroke: #0969da; stroke-width: 1.6; }
svg .series-nmse { fill: none; stroke: #8250df; stroke-width: 1.6; stroke-dasharray: 1 0; }
svg .tolerance { fill: none; stroke: #bf8700; stroke-width: 1.4; stroke-dasharray: 6 4; }
svg .divergence-line { stroke: #cf222e; stroke-width: 1.4; stroke-dasharray: 3 3; }
svg .pt-nmse { fill: #8250df; } svg .pt-pass { fill: #1a7f37; } svg .pt-fail { fill: #cf222e; } svg .pt-exact { fill: #fff; stroke: #1a7f37; }
table.keys { border-collapse: collapse; font-size: 12px; width: 100%; }
table.keys th, table.keys td { border-bottom: 1px solid #d0d7de; padding: 3px 5px; text-align: right; vertical-align: top; }
table.keys th { background: #f6f8fa; position: sticky; top: 0; } table.keys th.left { text-align: left; }
table.keys td { white-space: nowrap; }
table.keys td.key, table.keys td.shape, table.keys td.notes { text-align: left; font-family: ui-monospace, monospace; }
table.keys td.notes { font-family: inherit; white-space: normal; }
table.keys tr.detail td { border-top: none; padding-bottom: 6px; }
table.keys tr:has(+ tr.detail) td { border-bottom: none; }
tr.fail td.status { color: #cf222e; font-weight: 700; } tr.pass td.status { color: #1a7f37; }
tr.first-divergence td { background: #ffebe9; } tr.first-divergence td.key { border-left: 4px solid #cf222e; }
details table { border-collapse: collapse; font-family: ui-monospace, monospace; }
table.keys details th, table.keys details td { border: none; padding: 0 8px; text-align: right; background: none; position: static; }
ul.only { font-family: ui-monospace, monospace; columns: 3; }
`;

interface Point { x: number; rel: number | null; nmse: number | null; tol: number | null; r: KeyResult }

const W = 1100, H = 420, L = 64, R = 64, T = 36, B = 150;

/** log10 of a non-negative value; 0 maps to -Infinity (drawn on the floor of the chart). */
const lg = (v: number | null): number | null => (v === null || Number.isNaN(v) ? null : v === 0 ? -Infinity : Math.log10(v));

function chart(result: CompareResult): string {
  const rs = result.results;
  if (rs.length === 0) return '<p>No key was compared.</p>';
  const step = (W - L - R) / rs.length;
  const pts: Point[] = rs.map((r, i) => ({
    x: L + (i + 0.5) * step, rel: lg(r.maxRel), nmse: lg(r.nmse), tol: r.tol && r.tol.rtol > 0 ? Math.log10(r.tol.rtol) : null, r,
  }));
  const finite = pts.flatMap((p) => [p.rel, p.nmse, p.tol]).filter((v): v is number => v !== null && Number.isFinite(v));
  let lo = Math.floor(Math.min(...finite, 0) - 0.5);
  let hi = Math.ceil(Math.max(...finite, -Infinity) + 0.5);
  if (!Number.isFinite(hi)) hi = 0;
  lo = Math.max(Math.min(lo, hi - 4), -20); // at least 4 decades; nothing below 1e-20 matters
  // Exact zeros (log = -inf) get their own row one decade below the lowest value, labelled 0.
  const hasExact = pts.some((p) => p.rel === -Infinity || p.nmse === -Infinity);
  const floor = hasExact ? lo - 1 : lo;
  const plotH = H - T - B;
  const y = (v: number) => T + ((hi - Math.max(floor, Math.min(hi, v))) / (hi - floor)) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="error per key in model order">`);
  for (let d = floor; d <= hi; d++) {
    const yy = y(d).toFixed(1);
    const exact = hasExact && d === floor;
    out.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/>`);
    out.push(`<text x="${L - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${exact ? '0' : `1e${d}`}</text>`);
    out.push(`<text x="${W - R + 6}" y="${yy}" dominant-baseline="middle">${exact ? '-inf' : d * 10} dB</text>`);
  }
  out.push(`<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${T + plotH}"/><line class="axis" x1="${W - R}" x2="${W - R}" y1="${T}" y2="${T + plotH}"/>`);
  out.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${T + plotH}" y2="${T + plotH}"/>`);
  out.push(`<text x="14" y="${T + plotH / 2}" transform="rotate(-90 14 ${T + plotH / 2})" text-anchor="middle">max rel (log10)</text>`);
  out.push(`<text x="${W - 10}" y="${T + plotH / 2}" transform="rotate(90 ${W - 10} ${T + plotH / 2})" text-anchor="middle">NMSE (dB)</text>`);
  const path = (get: (p: Point) => number | null, cls: string) => {
    let d = '';
    let pen = false;
    for (const p of pts) {
      const v = get(p);
      if (v === null) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${p.x.toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    }
    return d ? `<path class="${cls}" d="${d}"/>` : '';
  };
  // The tolerance as a step line: each key's rtol spans its column.
  let tolD = '';
  for (const p of pts) if (p.tol !== null) tolD += `M${(p.x - step / 2).toFixed(1)},${y(p.tol).toFixed(1)}H${(p.x + step / 2).toFixed(1)}`;
  if (tolD) out.push(`<path class="tolerance" d="${tolD}"/>`);
  out.push(path((p) => p.nmse, 'series-nmse'), path((p) => p.rel, 'series-rel'));
  const first = pts.find((p) => p.r.key === result.firstFailure);
  if (first) {
    out.push(`<a href="#first-divergence"><line class="divergence-line" x1="${first.x.toFixed(1)}" x2="${first.x.toFixed(1)}" y1="${T - 14}" y2="${T + plotH}"/>`);
    const anchor = first.x > W - R - 150 ? 'end' : first.x < L + 150 ? 'start' : 'middle';
    out.push(`<text x="${first.x.toFixed(1)}" y="${T - 18}" text-anchor="${anchor}" fill="#cf222e">first divergence: ${esc(first.r.key)}</text></a>`);
  }
  const labelEvery = Math.max(1, Math.ceil(rs.length / 60));
  pts.forEach((p, i) => {
    const tip = `${p.r.key}: ${p.r.status}, max rel ${formatNumber(p.r.maxRel)}, NMSE ${formatNumber(p.r.nmseDb)} dB`;
    const cls = p.r.pass ? 'pt-pass' : 'pt-fail';
    // Integer keys and shape failures have no curve value: a status mark on the axis shows them.
    const v = p.rel ?? (p.r.pass ? null : hi);
    out.push(`<a href="#key-${esc(p.r.key)}"><g><title>${esc(tip)}</title>`);
    if (p.nmse !== null) out.push(`<rect class="pt-nmse" x="${(p.x - 2.2).toFixed(1)}" y="${(y(p.nmse) - 2.2).toFixed(1)}" width="4.4" height="4.4"/>`);
    if (v !== null) out.push(`<circle class="${v === -Infinity ? 'pt-exact' : cls}" cx="${p.x.toFixed(1)}" cy="${y(v).toFixed(1)}" r="3.2"/>`);
    out.push(`<rect class="${cls}" x="${(p.x - Math.min(4, step / 2 - 0.5)).toFixed(1)}" y="${T + plotH + 3}" width="${Math.min(8, step - 1).toFixed(1)}" height="6"/></g></a>`);
    if (i % labelEvery === 0 || p === first) {
      const ty = T + plotH + 16;
      out.push(`<text x="${p.x.toFixed(1)}" y="${ty}" text-anchor="end" transform="rotate(-55 ${p.x.toFixed(1)} ${ty})">${esc(p.r.key)}</text>`);
    }
  });
  const lx = L + 8;
  out.push(`<g transform="translate(${lx} ${T - 26})">`,
    '<line class="series-rel" x1="0" x2="22" y1="0" y2="0"/><text x="26" y="0" dominant-baseline="middle">max rel</text>',
    '<line class="series-nmse" x1="90" x2="112" y1="0" y2="0"/><rect class="pt-nmse" x="98.8" y="-2.2" width="4.4" height="4.4"/><text x="116" y="0" dominant-baseline="middle">NMSE</text>',
    '<line class="tolerance" x1="170" x2="192" y1="0" y2="0"/><text x="196" y="0" dominant-baseline="middle">rtol</text>',
    '<circle class="pt-exact" cx="246" cy="0" r="3.2"/><text x="254" y="0" dominant-baseline="middle">exact (0)</text>', '</g>');
  out.push('</svg>');
  return out.join('\n');
}

/** Notes, logits statistics and the largest differences of a key that fails or has something to say. */
function detailRow(r: KeyResult, first: boolean, columns: number): string {
  const parts = r.notes.map((n) => `<div>${esc(n)}</div>`);
  if (r.logits) {
    const g = r.logits;
    parts.push(`<div>logits over ${g.rows} rows: top-1 agreement ${formatNumber(g.top1Agreement, 4)}, top-5 overlap ${formatNumber(g.top5Overlap, 4)}, KL(B||A) mean ${formatNumber(g.klMean)} max ${formatNumber(g.klMax)} (row ${g.klMaxRow})</div>`);
  }
  if (!r.pass && r.nanA + r.infA + r.nanB + r.infB > 0) {
    parts.push(`<div>non-finite values: A ${r.nanA} NaN, ${r.infA} Inf; B ${r.nanB} NaN, ${r.infB} Inf</div>`);
  }
  if (!r.pass && r.top.length > 0) {
    const label = r.kind === 'int' ? 'first differences' : `${r.top.length} largest differences`;
    const rows = r.top.map((d) => `<tr><td>[${d.index.join(', ')}]</td><td>${formatNumber(d.actual, 9)}</td><td>${formatNumber(d.expected, 9)}</td><td>${formatNumber(d.absDiff)}</td></tr>`);
    parts.push(`<details${first ? ' open' : ''}><summary>${label}</summary><table><tr><th>index</th><th>A</th><th>B</th><th>|diff|</th></tr>${rows.join('')}</table></details>`);
  }
  if (parts.length === 0) return '';
  return `<tr class="detail ${r.pass ? 'pass' : 'fail'}${first ? ' first-divergence' : ''}"><td></td><td class="notes" colspan="${columns - 1}">${parts.join('')}</td></tr>`;
}

const tolText = (v: number) => (v === 0 ? '0' : v.toExponential());

const HEAD = ['#', 'key', 'shape', 'dtype', 'result', 'max abs', 'mean abs', 'max rel', 'rel to max', 'NMSE dB',
  'cos mean', 'cos min', 'outside tol', 'NaN/Inf', 'rtol / atol'];

function row(r: KeyResult, i: number, first: boolean): string {
  const cls = [r.pass ? 'pass' : 'fail', first ? 'first-divergence' : ''].filter(Boolean).join(' ');
  const id = first ? 'first-divergence' : `key-${r.key}`;
  const anchor = first ? `<a id="key-${esc(r.key)}"></a>` : '';
  const nonFinite = r.nanA + r.infA + r.nanB + r.infB === 0 ? '0' : `A ${r.nanA}/${r.infA}, B ${r.nanB}/${r.infB}`;
  const tol = r.tol ? `<td title="stage: ${esc(r.tol.stage)}">${tolText(r.tol.rtol)} / ${tolText(r.tol.atol)}</td>` : '<td>exact</td>';
  const cells = [
    `<td>${i + 1}</td>`, `<td class="key">${anchor}${esc(r.key)}</td>`, `<td class="shape">${esc(formatShape(r))}</td>`,
    `<td>${esc(r.dtypeA === r.dtypeB ? r.dtypeA : `${r.dtypeA}/${r.dtypeB}`)}</td>`, `<td class="status">${esc(r.status)}</td>`,
    ...[r.maxAbs, r.meanAbs, r.maxRel, r.relToMax, r.nmseDb].map((v) => `<td>${formatNumber(v)}</td>`),
    `<td>${formatNumber(r.cosMean, 6)}</td>`, `<td>${formatNumber(r.cosMin, 6)}</td>`,
    `<td>${r.violations} / ${r.count}</td>`, `<td>${nonFinite}</td>`, tol,
  ];
  return `<tr id="${esc(id)}" class="${cls}">${cells.join('')}</tr>${detailRow(r, first, HEAD.length)}`;
}

export function renderHtml(result: CompareResult, opts: HtmlOptions = {}): string {
  const base = (p: string) => p.split(/[\\/]/).pop() ?? p;
  const title = opts.title ?? `compare ${base(result.fileA)} vs ${base(result.fileB)}`;
  const first = result.results.find((r) => r.key === result.firstFailure);
  const override = Object.keys(result.override).length > 0
    ? ` Overridden for every float key: ${Object.entries(result.override).map(([k, v]) => `${k}=${v}`).join(', ')}.` : '';
  const only = (label: string, keys: string[]) => (keys.length === 0 ? ''
    : `<h2>Only in ${label} (${keys.length})</h2><ul class="only">${keys.map((k) => `<li>${esc(k)}</li>`).join('')}</ul>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(title)}</h1>
<dl class="files"><dt>A (actual)</dt><dd class="path">${esc(result.fileA)}</dd><dt>B (expected)</dt><dd class="path">${esc(result.fileB)}</dd>
<dt>policy</dt><dd>${esc(POLICY)}.${esc(override)} max rel = max |a-e| / (|e| + atol/rtol), so a key passes when max rel &lt;= rtol.</dd></dl>
<p class="summary ${result.ok ? 'ok' : 'failed'}">${result.compared} keys compared: ${result.passed} PASS, ${result.failed} FAIL; only in A: ${result.onlyInA.length}, only in B: ${result.onlyInB.length}${result.strict ? ' (strict)' : ''} &rarr; ${result.ok ? 'OK' : 'FAILED'}</p>
${first ? `<p class="callout">First divergence (model order): <a href="#first-divergence">${esc(first.key)}</a> &mdash; ${esc(first.status)}, ${first.violations} of ${first.count} elements outside, max abs ${formatNumber(first.maxAbs)}${first.top[0] ? ` at [${first.top[0].index.join(', ')}]` : ''}.</p>` : ''}
<h2>Error per key (model order)</h2>
<figure>${chart(result)}</figure>
<h2>All keys</h2>
<table class="keys"><thead><tr>${HEAD.map((h) => `<th${['key', 'shape'].includes(h) ? ' class="left"' : ''}>${h}</th>`).join('')}</tr></thead>
<tbody>
${result.results.map((r, i) => row(r, i, r.key === result.firstFailure)).join('\n')}
</tbody></table>
${only('A', result.onlyInA)}${only('B', result.onlyInB)}
</body></html>
`;
}
