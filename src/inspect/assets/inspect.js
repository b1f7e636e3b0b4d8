// minicpmv inspect: the page. Plain browser JavaScript, no library, nothing fetched but this server's own
// data.json (or the data inlined by --static). Everything is drawn here, on canvas and inline SVG, from the
// numbers `minicpmv inspect` computed in Node (src/inspect/collect.ts describes them).
'use strict';

const SVGNS = 'http://www.w3.org/2000/svg';

/** Creates an element: h('div', {class: 'x', onclick: f}, child, 'text', ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return fill(el, children);
}
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  setAttrs(el, attrs);
  return fill(el, children);
}
/** Nodes from children: nested arrays flattened; null, undefined and false left out; the rest as text. */
function nodes(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}
function fill(el, children) {
  el.append(...nodes(children));
  return el;
}
/** Replaces el's children. */
function put(el, ...children) {
  el.replaceChildren(...nodes(children));
  return el;
}
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') el.style.cssText = v; // through the CSSOM: the server's CSP forbids inline style attributes
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** 3 significant digits; small and large values in exponent form. */
function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-2 && a < 1e4 ? String(Number(x.toPrecision(digits))) : x.toExponential(digits - 1);
}
const pct = (p) => (p >= 0.995 ? '100%' : p >= 0.01 ? `${(p * 100).toFixed(1)}%` : `${(p * 100).toPrecision(2)}%`);

function decodeF32(b64) {
  const bin = atob(b64);
  const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return new Float32Array(u8.buffer);
}

// inferno-like colour map: value in [0, 1] -> [r, g, b]
const CMAP = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];
function cmap(v) {
  const x = Math.max(0, Math.min(1, v)) * (CMAP.length - 1);
  const i = Math.min(CMAP.length - 2, Math.floor(x)), f = x - i;
  return CMAP[i].map((c, j) => Math.round(c + (CMAP[i + 1][j] - c) * f));
}

let DATA;
/** A token's text with whitespace made visible. */
function tokText(id) {
  if (id === null || id === undefined) return '';
  const t = DATA.vocab[id];
  if (t === undefined) return `#${id}`;
  return t.replace(/ /g, '\u2423').replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5') || '\u2205';
}
const tokSpan = (id, title) => h('span', { class: 'tok', title: title ?? `id ${id}` }, tokText(id));

function loadData() {
  const el = document.getElementById('inspect-data');
  if (el) return Promise.resolve(JSON.parse(el.textContent));
  return fetch('data.json', { cache: 'no-store' }).then((r) => {
    if (!r.ok) throw new Error(`data.json: HTTP ${r.status}`);
    return r.json();
  });
}

// ------------------------------------------------------------------------------------------------ header
function header(d) {
  const m = d.meta;
  const user = d.msgs.map((x) => `${x.role}: ${x.content}`).join('\n');
  const dec = d.decode.mode === 'beam' ? `beam search, ${d.decode.numBeams} beams, repetition penalty ${d.decode.repetitionPenalty}`
    : d.decode.mode === 'greedy' ? `greedy${d.decode.repetitionPenalty !== 1 ? `, repetition penalty ${d.decode.repetitionPenalty}` : ''}`
      : `sampling: temperature ${d.decode.temperature}, top-k ${d.decode.topK}, top-p ${d.decode.topP}, seed ${d.decode.seed}`;
  const t = d.timings;
  const facts = [
    ['model', m.model, 'mono'], ['image', m.image, 'mono'], ['conversation', user, 'mono'],
    ['decoding', `${dec}; at most ${d.decode.maxNewTokens} new tokens`],
    ['answer', d.answer === '' ? '(empty)' : d.answer],
    ['generated', `${d.tokens.length} tokens`],
    ['run', `prompt pass ${fmt(t.promptPassMs / 1000)} s (${d.prompt.ids.length} tokens, every hook) · decoding ${fmt(t.decodeMs / 1000)} s · logit lens ${fmt(t.lensMs / 1000)} s${m.backend ? ` · backend ${m.backend}` : ''}`],
  ].filter((f) => f[1] !== undefined);
  const nav = [['attention', 'Where the resampler looks'], ['lens', 'Logit lens'], ['journey', 'Activations along depth'],
    ['decoding', 'Decoding']];
  if (d.divergence) nav.push(['divergence', 'Divergence']);
  return [
    h('header', { class: 'top' },
      h('h1', null, 'MiniCPM-V inspect'),
      m.note ? h('div', { class: 'note' }, m.note) : null,
      h('dl', { class: 'facts' }, facts.map(([k, v, c]) => [h('dt', null, k), h('dd', { class: c }, v)]))),
    h('nav', { class: 'sections' }, nav.map(([id, label]) => h('a', { href: `#${id}` }, label))),
  ];
}

// ------------------------------------------------------------------------------------------------ 1. attention
function attentionView(d) {
  const { heads: H, queries: Q, grid: G, keys: N } = d.attention;
  const A = decodeF32(d.attention.f32Base64); // [H, Q, N]: A[(h*Q + q)*N + k]
  const S = d.image.size;
  const side = Math.round(Math.sqrt(Q));
  const meanHeads = new Float32Array(Q * N);
  for (let hh = 0; hh < H; hh++) for (let i = 0; i < Q * N; i++) meanHeads[i] += A[hh * Q * N + i] / H;
  const state = { head: 'mean', query: 0, opacity: 0.7, smooth: false };
  const mapOf = (head, query) => {
    const src = head === 'mean' ? meanHeads : A.subarray(head * Q * N, (head + 1) * Q * N);
    if (query !== 'all') return src.subarray(query * N, (query + 1) * N);
    const m = new Float32Array(N);
    for (let q = 0; q < Q; q++) for (let k = 0; k < N; k++) m[k] += src[q * N + k] / Q;
    return m;
  };

  const imgCanvas = h('canvas', { id: 'attn-image', width: S, height: S });
  const heat = h('canvas', { id: 'attn-heat', width: S, height: S, title: 'attention of the selected query over the patch grid' });
  const img = new Image();
  img.onload = () => imgCanvas.getContext('2d').drawImage(img, 0, 0, S, S);
  img.src = `data:image/png;base64,${d.image.pngBase64}`;

  const off = document.createElement('canvas');
  off.width = G; off.height = G;
  /** Draws map m [G*G] into ctx at w x h, colour scaled to [0, max], alpha = opacity * sqrt(v) (or opaque). */
  function paint(canvas, m, opaque, smooth) {
    let max = 0;
    for (const v of m) if (v > max) max = v;
    const im = off.getContext('2d').createImageData(G, G);
    for (let k = 0; k < G * G; k++) {
      const v = max > 0 ? m[k] / max : 0;
      const [r, g, b] = cmap(v);
      im.data.set([r, g, b, opaque ? 255 : Math.round(255 * state.opacity * Math.sqrt(v))], k * 4);
    }
    off.getContext('2d').putImageData(im, 0, 0);
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingEnabled = smooth;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    return max;
  }

  const thumbs = [];
  const grid = h('div', { class: 'query-grid', style: `grid-template-columns: repeat(${side}, 44px)` });
  for (let q = 0; q < Q; q++) {
    const c = h('canvas', { width: G, height: G });
    const b = h('button', { type: 'button', dataset: { query: q }, title: `query ${q} (row ${Math.floor(q / side)}, column ${q % side} of the query position table)`,
      onclick: () => { state.query = q; draw(); } }, c, h('span', null, q));
    thumbs.push({ b, c });
    grid.append(b);
  }
  const allBtn = h('button', { type: 'button', id: 'attn-all-queries', onclick: () => { state.query = 'all'; draw(); } }, 'mean of all queries');
  const headSel = h('select', { id: 'attn-head', onchange: (e) => { state.head = e.target.value === 'mean' ? 'mean' : Number(e.target.value); draw(); } },
    h('option', { value: 'mean' }, `mean over ${H} head${H > 1 ? 's' : ''}`),
    Array.from({ length: H }, (_, i) => h('option', { value: i }, `head ${i}`)));
  const opacity = h('input', { type: 'range', min: 0, max: 1, step: 0.05, value: state.opacity, oninput: (e) => { state.opacity = Number(e.target.value); draw(); } });
  const smooth = h('input', { type: 'checkbox', onchange: (e) => { state.smooth = e.target.checked; draw(); } });
  const title = h('div', { class: 'readout', id: 'attn-title' });
  const readout = h('div', { class: 'readout mono', id: 'attn-readout' }, 'hover over the image for one patch\u2019s weight');
  const bar = h('canvas', { class: 'colorbar', width: 240, height: 10 });
  { const ctx = bar.getContext('2d'); for (let x = 0; x < 240; x++) { ctx.fillStyle = `rgb(${cmap(x / 239)})`; ctx.fillRect(x, 0, 1, 10); } }
  const barLabel = h('div', { class: 'mono' });
  let current = mapOf('mean', 0);

  function draw() {
    current = mapOf(state.head, state.query);
    const max = paint(heat, current, false, state.smooth);
    let best = 0, ent = 0;
    for (let k = 0; k < N; k++) {
      if (current[k] > current[best]) best = k;
      if (current[k] > 0) ent -= current[k] * Math.log(current[k]);
    }
    const who = state.query === 'all' ? 'all queries (mean)' : `query ${state.query}`;
    const head = state.head === 'mean' ? (H > 1 ? 'mean over heads' : 'the one head') : `head ${state.head}`;
    put(title, h('b', null, `${who}, ${head}`), `: strongest at patch (row ${Math.floor(best / G)}, column ${best % G}) with ${pct(current[best])}; `,
      `entropy ${fmt(ent)} nats (uniform over ${N} patches: ${fmt(Math.log(N))}), about ${Math.round(Math.exp(ent))} patches' worth`);
    barLabel.textContent = `0 \u2192 ${fmt(max)} (uniform 1/${N} = ${fmt(1 / N)})`;
    heat.dataset.query = String(state.query);
    heat.dataset.head = String(state.head);
    thumbs.forEach(({ b, c }, q) => {
      paint(c, mapOf(state.head, q), true, false);
      b.classList.toggle('selected', q === state.query);
    });
  }
  heat.addEventListener('mousemove', (e) => {
    const r = heat.getBoundingClientRect();
    const col = Math.min(G - 1, Math.floor(((e.clientX - r.left) / r.width) * G)), row = Math.min(G - 1, Math.floor(((e.clientY - r.top) / r.height) * G));
    const k = row * G + col;
    readout.textContent = `patch (row ${row}, column ${col}) = key ${k}: ${fmt(current[k], 4)} (${fmt(current[k] * N)}\u00d7 uniform)`;
  });
  draw();
  return h('section', { class: 'view', id: 'attention' },
    h('h2', null, '1. Where the resampler looks'),
    h('p', { class: 'explain' }, `Each of the ${Q} resampler queries attends over the ${G}\u00d7${G} patch grid of the ${S}\u00d7${S} image the model sees ` +
      `(hook resampler.attn.weights: softmax probabilities, [1, ${H}, ${Q}, ${N}]). Click a query; the queries are laid out ` +
      `${side}\u00d7${side} as their position table is. Colours run from 0 to the map's largest weight.`),
    h('div', { class: 'attn-wrap' },
      h('div', { class: 'attn-stack' }, imgCanvas, heat),
      h('div', { class: 'attn-side' },
        h('div', { class: 'controls' }, h('label', null, 'head ', headSel), allBtn),
        h('div', { class: 'controls' }, h('label', null, 'opacity ', opacity), h('label', null, smooth, 'smooth')),
        grid, title, h('div', null, bar, barLabel), readout)));
}

// ------------------------------------------------------------------------------------------------ 2. logit lens
function lensView(d) {
  const { rows, columns, cells } = d.lens;
  const rowLabel = (k, i) => (k === 'inputs_embeds' ? 'embeddings' : `layer ${k.split('.').pop()}${i === rows.length - 1 ? ' = output' : ''}`);
  const state = { colour: 'top1', sel: null };
  const detail = h('div', { class: 'detail', id: 'lens-detail' }, 'Click a cell for its top 5.');
  const firstGen = columns.findIndex((c) => c.kind === 'generated');
  const table = h('table', { class: 'lens', id: 'lens-table' });
  const colCls = (j) => [columns[j].kind, j === firstGen ? 'first-generated' : ''].join(' ');
  table.append(h('thead', null, h('tr', null, h('th', { class: 'rowhead' }, 'input token \u2192'),
    columns.map((c, j) => h('th', { class: colCls(j), dataset: { col: j, pos: c.pos, kind: c.kind }, title: `position ${c.pos} (${c.kind})` },
      h('div', { class: 'mono' }, c.pos), tokSpan(c.token))))));
  const body = h('tbody');
  const tds = [];
  rows.forEach((k, i) => {
    const tr = h('tr', { class: i === rows.length - 1 ? 'final' : '', dataset: { row: i, key: k, final: i === rows.length - 1 ? 'true' : 'false' } },
      h('th', { class: 'rowhead', title: k }, rowLabel(k, i)));
    cells[i].forEach((cell, j) => {
      const hit = columns[j].nextToken !== null && cell.ids[0] === columns[j].nextToken;
      const td = h('td', { class: `${colCls(j)}${hit ? ' hit' : ''}`, dataset: { layer: i, col: j, top1: cell.ids[0] },
        title: cell.ids.map((id, r) => `${r + 1}. ${tokText(id)}  ${pct(cell.probs[r])}`).join('\n'),
        onclick: () => select(i, j) },
      h('span', { class: 't' }, tokText(cell.ids[0])), h('span', { class: 'p' }, pct(cell.probs[0])));
      tds.push({ td, cell });
      tr.append(td);
    });
    body.append(tr);
  });
  body.append(h('tr', { class: 'actual' }, h('th', { class: 'rowhead' }, 'actual next token'),
    columns.map((c, j) => h('td', { class: colCls(j) }, c.nextToken === null ? '\u2014' : tokSpan(c.nextToken)))));
  table.append(body);
  function paint() {
    for (const { td, cell } of tds) {
      const v = state.colour === 'top1' ? cell.probs[0] : cell.next ?? 0;
      const l = 100 - Math.round(55 * Math.sqrt(v));
      td.style.background = `hsl(212 90% ${l}%)`;
      td.style.color = l < 62 ? '#fff' : '';
      td.querySelectorAll('.p').forEach((p) => { p.style.color = l < 62 ? '#fff' : ''; });
    }
  }
  function select(i, j) {
    for (const { td } of tds) td.classList.toggle('selected', td.dataset.layer === String(i) && td.dataset.col === String(j));
    const cell = cells[i][j], col = columns[j];
    put(detail, 
      h('div', null, h('b', null, rowLabel(rows[i], i)), ` (${rows[i]}) at position ${col.pos}, input `, tokSpan(col.token),
        col.nextToken !== null ? [', actual next ', tokSpan(col.nextToken), ` with ${pct(cell.next)}`] : ''),
      h('div', { class: 'bars' }, cell.ids.map((id, r) => [tokSpan(id), h('div', { class: `bar${id === col.nextToken ? ' chosen' : ''}`, style: `width: ${Math.max(1, cell.probs[r] * 300)}px` }), pct(cell.probs[r])])));
  }
  const sel = h('select', { id: 'lens-colour', onchange: (e) => { state.colour = e.target.value; paint(); } },
    h('option', { value: 'top1' }, 'colour: probability of the top-1 token'),
    h('option', { value: 'next' }, 'colour: probability of the actual next token'));
  paint();
  const L = d.prompt.ids.length;
  return h('section', { class: 'view', id: 'lens' },
    h('h2', null, '2. Logit lens'),
    h('p', { class: 'explain' }, `Each cell reads one decoder layer's hidden state (rows; "embeddings" is the input to layer 0) at one position ` +
      `(columns: the last ${columns.filter((c) => c.kind === 'prompt').length} of the ${L} prompt positions, then every generated token) through the model's ` +
      `own head: final RMSNorm, \u00f7 ${d.config.hidden}/dim_model_base, lm_head. It shows the most likely next token and its probability; the last row is the ` +
      'model\u2019s own output. A green frame marks a top-1 equal to the token that actually came next.'),
    h('div', { class: 'controls' }, sel),
    h('div', { class: 'scroll-x' }, table), detail);
}

// ------------------------------------------------------------------------------------------------ 3. journey
const SUB = /\.(norm1|attn|norm2|mlp|input_layernorm|self_attn|post_attention_layernorm)$/;
function journeyView(d) {
  const state = { which: 'outputs' };
  const holder = h('div', { class: 'scroll-x' });
  const statusOf = new Map((d.divergence?.results ?? []).map((r) => [r.key, r]));
  function draw() {
    // "outputs": what each block, layer or stage hands on (no norms, attention or MLP branches, no attention weights)
    const st = d.stats.filter((x) => state.which === 'all' || !(SUB.test(x.key) || x.key.startsWith('resampler.')));
    const n = st.length, W = Math.max(900, 26 + n * 14), L = 62, R = 20, ph = 120, gap = 26, T = 22;
    const panels = [['mean', (x) => x.mean, false, 's-mean', 'd-mean'], ['std', (x) => x.std, true, 's-std', 'd-std'],
      ['max |x|', (x) => x.absMax, true, 's-absmax', 'd-absmax']];
    const H = T + panels.length * (ph + gap) + 150;
    const xAt = (i) => L + (i + 0.5) * ((W - L - R) / n);
    const svg = s('svg', { class: 'chart', id: 'journey-chart', width: W, height: H, viewBox: `0 0 ${W} ${H}` });
    // stage bands
    const stageOf = (k) => (k.startsWith('vpm') || k === 'pixel_values' ? 'vpm' : k.startsWith('resampler') ? 'resampler' : 'llm');
    let start = 0;
    for (let i = 1; i <= n; i++) {
      if (i === n || stageOf(st[i].key) !== stageOf(st[start].key)) {
        const x0 = xAt(start) - (W - L - R) / n / 2, x1 = xAt(i - 1) + (W - L - R) / n / 2;
        const sg = stageOf(st[start].key);
        svg.append(s('rect', { class: `band-${sg}`, x: x0, y: T - 14, width: x1 - x0, height: panels.length * (ph + gap) + 6 }),
          s('text', { x: x0 + 4, y: T - 3 }, sg === 'vpm' ? 'vision tower (vpm)' : sg === 'llm' ? 'decoder (llm)' : 'resampler'));
        start = i;
      }
    }
    panels.forEach(([name, get, log, sc, dc], pi) => {
      const y0 = T + pi * (ph + gap) + 8;
      const vals = st.map((x) => { const v = get(x); return v === null || v === undefined || !Number.isFinite(v) ? null : log ? (v > 0 ? Math.log10(v) : null) : v; });
      const fin = vals.filter((v) => v !== null);
      let lo = fin.length ? Math.min(...fin) : 0, hi = fin.length ? Math.max(...fin) : 1;
      if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
      const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
      const y = (v) => y0 + ph - ((v - lo) / (hi - lo)) * ph;
      for (let t = 0; t <= 4; t++) {
        const v = lo + ((hi - lo) * t) / 4;
        svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
          s('text', { x: L - 4, y: y(v) + 3, 'text-anchor': 'end' }, log ? fmt(10 ** v, 2) : fmt(v, 2)));
      }
      svg.append(s('text', { x: 4, y: y0 + ph / 2, transform: `rotate(-90 10 ${y0 + ph / 2})`, 'text-anchor': 'middle' }, `${name}${log ? ' (log)' : ''}`));
      svg.append(s('line', { class: 'axis', x1: L, x2: L, y1: y0, y2: y0 + ph }));
      let dpath = '', pen = false;
      vals.forEach((v, i) => { if (v === null) { pen = false; return; } dpath += `${pen ? 'L' : 'M'}${xAt(i).toFixed(1)},${y(v).toFixed(1)}`; pen = true; });
      svg.append(s('path', { class: sc, d: dpath }));
      vals.forEach((v, i) => {
        if (v === null) return;
        const x = st[i];
        svg.append(s('circle', { class: dc, cx: xAt(i), cy: y(v), r: 2.6 },
          s('title', null, `${x.key} [${x.shape}]\nmean ${fmt(x.mean, 4)}  std ${fmt(x.std, 4)}  max|x| ${fmt(x.absMax, 4)}  NaN ${x.nan}  Inf ${x.inf}`)));
      });
    });
    const yb = T + panels.length * (ph + gap);
    st.forEach((x, i) => {
      if (x.nan + x.inf > 0) svg.append(s('path', { class: 'nan', d: `M${xAt(i) - 5},${yb - 10}h10l-5,9z` }, s('title', null, `${x.key}: ${x.nan} NaN, ${x.inf} Inf`)));
      const r = statusOf.get(x.key);
      if (d.divergence) {
        const cls = !r ? 'st-none' : r.key === d.divergence.firstFailure ? 'st-first' : r.pass ? 'st-pass' : 'st-fail';
        svg.append(s('rect', { class: cls, x: xAt(i) - 4, y: yb, width: 8, height: 7 }, s('title', null, `${x.key}: ${r ? r.status : 'not in the dump'}`)));
      }
      if (n <= 80 || i % Math.ceil(n / 80) === 0) {
        const ty = yb + 16;
        svg.append(s('text', { x: xAt(i), y: ty, 'text-anchor': 'end', transform: `rotate(-60 ${xAt(i)} ${ty})` }, x.key));
      }
    });
    put(holder, svg);
  }
  const sel = h('select', { id: 'journey-which', onchange: (e) => { state.which = e.target.value; draw(); } },
    h('option', { value: 'outputs' }, 'block and layer outputs'), h('option', { value: 'all' }, 'every hook (norms, attention, MLP too)'));
  draw();
  const nanTotal = d.stats.reduce((a, x) => a + x.nan + x.inf, 0);
  return h('section', { class: 'view', id: 'journey' },
    h('h2', null, '3. Activations along depth'),
    h('p', { class: 'explain' }, 'Mean, standard deviation and largest magnitude of every hook\u2019s activation in the prompt pass, in model order ' +
      `(hover a point for the numbers). ${nanTotal ? `${nanTotal} NaN/Inf values: red triangles mark where.` : 'No NaN or Inf anywhere.'}` +
      (d.divergence ? ' The strip under the charts is the divergence status of each hook (red: fails the tolerance).' : '')),
    h('div', { class: 'controls' }, sel), holder);
}

// ------------------------------------------------------------------------------------------------ 4. decoding
function decodingView(d) {
  const sec = h('section', { class: 'view', id: 'decoding' }, h('h2', null, '4. Decoding'));
  if (!d.steps.length) return sec.append(h('p', null, 'No step.')), sec;
  if (d.steps[0].kind === 'token') {
    const k = d.steps[0].candidates.length;
    sec.append(h('p', { class: 'explain' }, `Each step's ${k} most likely tokens by the model's probability (softmax of the logits` +
      `${d.decode.repetitionPenalty !== 1 ? ' after the repetition penalty' : ''}${d.decode.mode === 'sample' ? '; sampling then applies temperature, top-k and top-p' : ''}); the chosen one is pink.`));
    const table = h('table', { class: 'steps', id: 'steps-table' },
      h('tr', null, h('th', null, 'step'), h('th', null, 'chosen'), Array.from({ length: k }, (_, i) => h('th', null, `#${i + 1}`))));
    for (const st of d.steps) {
      table.append(h('tr', { dataset: { step: st.step } }, h('td', null, st.step), h('td', null, tokSpan(st.id)),
        st.candidates.map((c) => h('td', { class: `cand${c.id === st.id ? ' chosen' : ''}` }, tokSpan(c.id, `id ${c.id}, logit ${fmt(c.logit, 4)}`), ' ', pct(c.prob),
          h('div', { class: 'bar', style: `width: ${Math.max(1, c.prob * 110)}px` })))));
    }
    sec.append(h('div', { class: 'scroll-x' }, table));
    return sec;
  }
  return beamView(d, sec);
}

function beamView(d, sec) {
  const steps = d.steps, nb = steps[0].parents.length || d.decode.numBeams;
  // seqs[s][b]: the ids of beam b after step s (s = 0: the empty prefix of beam 0).
  const seqs = [[[]]];
  const finished = []; // {step, from, ids, score, norm}
  steps.forEach((st, i) => {
    const prev = seqs[i];
    const cont = st.candidates.filter((c) => c.fate === 'continues');
    seqs.push(cont.map((c) => [...(prev[c.beam] ?? []), c.token]));
    st.candidates.filter((c) => c.fate === 'finished').forEach((c) => finished.push({ step: st.step, from: c.beam, ids: prev[c.beam] ?? [], score: c.score, norm: c.score / st.step, token: c.token }));
  });
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const bestFin = finished.find((f) => same(f.ids, d.tokens));
  const lastStep = steps.length;
  const bestSlot = bestFin ? null : seqs[lastStep].findIndex((q) => same(q, d.tokens));
  // Walk back the chosen hypothesis: the slot it held at each step.
  const bestPath = new Map(); // step -> slot
  let slot = bestFin ? bestFin.from : bestSlot, at = bestFin ? bestFin.step - 1 : lastStep;
  while (at >= 1 && slot !== null && slot >= 0) { bestPath.set(at, slot); slot = steps[at - 1].parents[slot]; at--; }

  const cw = 78, rh = 46, L = 60, T = 30;
  const finRows = new Map();
  finished.forEach((f) => { finRows.set(f.step, (finRows.get(f.step) ?? 0) + 1); f.row = finRows.get(f.step) - 1; });
  const maxFin = Math.max(0, ...finRows.values());
  const W = L + (lastStep + 1) * cw + 40, H = T + (nb + maxFin + 0.6) * rh + 20;
  const svg = s('svg', { class: 'chart', id: 'beam-graph', width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  const X = (step) => L + step * cw, Y = (b) => T + b * rh + rh / 2, YF = (r) => T + (nb + 0.6 + r) * rh + rh / 2;
  for (let b = 0; b < nb; b++) svg.append(s('text', { x: 4, y: Y(b) + 4 }, `beam ${b}`));
  for (let st = 1; st <= lastStep; st++) svg.append(s('text', { x: X(st), y: 14, 'text-anchor': 'middle' }, `step ${st}`));
  if (maxFin) svg.append(s('text', { x: 4, y: YF(0) + 4 }, 'finished'));
  svg.append(s('circle', { class: 'node', cx: X(0), cy: Y(0), r: 6 }, s('title', null, 'the prompt')));
  const extended = steps.map((st) => new Set(st.parents));
  steps.forEach((st, i) => {
    const s1 = i + 1;
    st.parents.forEach((p, b) => {
      const onBest = bestPath.get(s1) === b && (s1 === 1 || bestPath.get(s1 - 1) === p);
      svg.append(s('path', { class: `edge${p !== b ? ' reorder' : ''}${onBest ? ' best' : ''}`, d: `M${X(s1 - 1)},${Y(p)} C${X(s1 - 1) + cw / 2},${Y(p)} ${X(s1) - cw / 2},${Y(b)} ${X(s1)},${Y(b)}` },
        s('title', null, p !== b ? `reordered: beam ${b} now continues old beam ${p}` : `beam ${b} continues`)));
    });
  });
  steps.forEach((st, i) => {
    const s1 = i + 1;
    const cont = st.candidates.filter((c) => c.fate === 'continues');
    cont.forEach((c, b) => {
      const pruned = i + 1 < steps.length && !extended[i + 1].has(b) && !finished.some((f) => f.step === s1 + 1 && f.from === b);
      const onBest = bestPath.get(s1) === b;
      const g = s('g', { dataset: { step: s1, beam: b } },
        s('rect', { class: `node${onBest ? ' best' : ''}${pruned ? ' pruned' : ''}`, x: X(s1) - cw / 2 + 6, y: Y(b) - 13, width: cw - 12, height: 26, rx: 4 }),
        s('text', { x: X(s1), y: Y(b) - 1, 'text-anchor': 'middle' }, tokText(c.token).slice(0, 9)),
        s('text', { x: X(s1), y: Y(b) + 10, 'text-anchor': 'middle', 'font-size': 9 }, fmt(c.score, 3)),
        s('title', null, `step ${s1}, beam ${b}: ${tokText(c.token)} (logprob ${fmt(c.logprob, 4)}), cumulative ${fmt(c.score, 5)}${pruned ? '; dropped at the next step' : ''}`));
      svg.append(g);
    });
  });
  finished.forEach((f) => {
    const best = f === bestFin;
    svg.append(s('path', { class: `edge finish${best ? ' best' : ''}`, d: `M${X(f.step - 1)},${f.step - 1 === 0 ? Y(0) : Y(f.from)} L${X(f.step)},${YF(f.row)}` }),
      s('g', null, s('rect', { class: `node finished${best ? ' best' : ''}`, x: X(f.step) - cw / 2 + 6, y: YF(f.row) - 13, width: cw - 12, height: 26, rx: 4 }),
        s('text', { x: X(f.step), y: YF(f.row) - 1, 'text-anchor': 'middle' }, `\u2713 ${fmt(f.norm, 3)}`),
        s('text', { x: X(f.step), y: YF(f.row) + 10, 'text-anchor': 'middle', 'font-size': 9 }, `${f.ids.length} tok`),
        s('title', null, `finished at step ${f.step} from beam ${f.from} (end token ${tokText(f.token)}): score ${fmt(f.score, 5)} / ${f.step} = ${fmt(f.norm, 5)}${best ? ' \u2014 the answer' : ''}`)));
  });
  sec.append(h('p', { class: 'explain' }, `Beam search with ${nb} beams, as transformers runs it for chat(): at each step the ${2 * nb} best continuations ` +
    'over all beams (cumulative log-probability with the repetition penalty) are ranked; the best non-end ones become the next beams, an end ' +
    'token among the first ones finishes a hypothesis (score \u00f7 length). Orange edges: a beam slot continues another beam (reordering); grey boxes: ' +
    `dropped at the next step; pink: the returned answer${bestFin ? '' : ' (it reached the length limit)'}.`),
  h('div', { class: 'scroll-x' }, svg));
  const list = h('div', null);
  steps.forEach((st) => {
    list.append(h('details', { class: 'step' }, h('summary', null, `step ${st.step}: ${st.candidates.filter((c) => c.fate === 'continues').map((c) => tokText(c.token)).join(' | ')}${st.done ? ' (search ends)' : ''}`),
      h('table', { class: 'steps' }, h('tr', null, ['rank', 'from beam', 'token', 'token logprob', 'cumulative', 'what became of it'].map((x) => h('th', null, x))),
        st.candidates.map((c, r) => h('tr', null, h('td', null, r + 1), h('td', null, c.beam), h('td', null, tokSpan(c.token)), h('td', null, fmt(c.logprob, 4)),
          h('td', null, fmt(c.score, 5)), h('td', null, c.fate === 'continues' ? `beam ${st.candidates.filter((x, i) => i < r && x.fate === 'continues').length}` : c.fate))))));
  });
  sec.append(h('h3', null, 'Candidates of each step'), list);
  return sec;
}

// ------------------------------------------------------------------------------------------------ 5. divergence
function divergenceView(d) {
  const dv = d.divergence;
  const byKey = new Map(dv.results.map((r) => [r.key, r]));
  const failed = dv.results.filter((r) => !r.pass).length;
  const first = dv.firstFailure ? byKey.get(dv.firstFailure) : null;
  const colour = (r) => {
    if (!r) return '#d0d7de';
    if (!r.pass) return '#cf222e';
    const w = r.worstRatio ?? 0; // |a-e| / (atol + rtol|e|) at the worst element: <= 1 passes
    return w > 0.5 ? '#bf8700' : w > 0.05 ? '#7fbf7f' : '#1a7f37';
  };
  const detail = h('div', { class: 'detail', id: 'divergence-detail' });
  function show(key) {
    const r = byKey.get(key);
    rowsByKey.forEach((tr, k) => tr.classList.toggle('selected', k === key));
    if (!r) { put(detail, h('b', null, key), ': not in the dump'); return; }
    put(detail, 
      h('div', null, h('b', null, r.key), ` \u2014 ${r.status}; ${r.violations} of ${r.count} elements outside`,
        r.tol ? ` (stage ${r.tol.stage}: rtol ${r.tol.rtol}, atol ${r.tol.atol})` : ' (integer key: exact)'),
      h('div', null, `max abs ${fmt(r.maxAbs)} \u00b7 max rel ${fmt(r.maxRel)} \u00b7 NMSE ${fmt(r.nmseDb)} dB \u00b7 cosine min ${fmt(r.cosMin, 6)} (row ${r.cosMinRow ?? '-'}) \u00b7 worst/tolerance ${fmt(r.worstRatio)}`),
      r.notes.map((n) => h('div', null, n)),
      r.logits ? h('div', null, `logits: top-1 agreement ${fmt(r.logits.top1Agreement, 4)}, top-5 overlap ${fmt(r.logits.top5Overlap, 4)}, KL mean ${fmt(r.logits.klMean)}`) : null,
      r.top.length ? h('table', { class: 'diffs' }, h('tr', null, h('th', null, 'index'), h('th', null, 'this run'), h('th', null, 'dump'), h('th', null, '|diff|')),
        r.top.map((t) => h('tr', null, h('td', null, `[${t.index.join(', ')}]`), h('td', null, fmt(t.actual, 9)), h('td', null, fmt(t.expected, 9)), h('td', null, fmt(t.absDiff))))) : null);
  }
  const rowsByKey = new Map();
  const keys = d.hooks;
  const table = h('table', { class: 'mods', id: 'divergence-table' },
    h('tr', null, ['module (hook)', 'result', 'worst / tol', 'max abs', 'max rel', 'cos min', 'NMSE dB'].map((x) => h('th', null, x))));
  keys.forEach((key) => {
    const r = byKey.get(key);
    const tr = h('tr', { id: key === dv.firstFailure ? 'first-divergence' : undefined, class: key === dv.firstFailure ? 'first-divergence' : '', dataset: { key, status: r ? r.status : 'absent' } },
      h('td', { class: 'key', onclick: () => show(key) }, h('span', { class: 'chip', style: `background: ${colour(r)}` }), key),
      h('td', null, r ? r.status : 'not in dump'), h('td', null, r ? fmt(r.worstRatio) : ''), h('td', null, r ? fmt(r.maxAbs) : ''),
      h('td', null, r ? fmt(r.maxRel) : ''), h('td', null, r ? fmt(r.cosMin, 6) : ''), h('td', null, r ? fmt(r.nmseDb) : ''));
    rowsByKey.set(key, tr);
    table.append(tr);
  });
  const sec = h('section', { class: 'view', id: 'divergence' },
    h('h2', null, '5. Divergence from the dump'),
    h('p', { class: 'explain' }, `This run (actual) against ${dv.file} (expected), hook by hook as the forward pass produced it. Policy: ${dv.policy}. ` +
      '"worst / tol" is the worst element\u2019s |a\u2212e| \u00f7 (atol + rtol|e|): above 1 fails. Click a module for its largest differences.'),
    h('p', { class: `summary ${failed ? 'failed' : 'ok'}` }, `${dv.results.length} hooks compared: ${dv.results.length - failed} pass, ${failed} fail`),
    first ? h('p', { class: 'callout', id: 'first-failing' }, 'First failing module (model order): ', h('b', null, first.key),
      ` \u2014 ${first.status}, ${first.violations} of ${first.count} elements outside, max abs ${fmt(first.maxAbs)}${first.top[0] ? ` at [${first.top[0].index.join(', ')}]` : ''}.`) : null,
    h('div', { class: 'div-wrap' }, detail, h('div', { class: 'modlist' }, table)),
    dv.notCompared.length ? h('p', { class: 'explain' }, `In the dump but not hook points of this run (not compared): ${dv.notCompared.join(', ')}.`) : null);
  show(dv.firstFailure ?? keys.find((k) => byKey.has(k)) ?? keys[0]);
  return sec;
}

// ------------------------------------------------------------------------------------------------ main
loadData().then((d) => {
  DATA = d;
  const app = document.getElementById('app');
  const views = [attentionView, lensView, journeyView, decodingView];
  if (d.divergence) views.push(divergenceView);
  put(app, ...views.map((v) => v(d)));
  document.body.prepend(...header(d));
  document.title = `inspect: ${d.msgs[d.msgs.length - 1].content.slice(0, 40)}`;
  document.body.dataset.ready = 'true';
}).catch((e) => {
  put(document.getElementById('app'), h('p', { class: 'error' }, `Could not show the inspection: ${e.message}`));
  document.body.dataset.ready = 'error';
});
