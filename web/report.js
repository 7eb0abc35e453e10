// Rendering a conversion report (docs/spec.md, "The report") and the
// small DOM helpers the page shares.  Everything is built with
// createElement and textContent: nothing from the server is parsed as HTML.

// h('td', {class: 'x', title: 'y'}, 'text', childNode, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('data-')) el.dataset[k.slice(5)] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

// A tensor key with a line-break opportunity after every dot, so long
// keys wrap between their parts on narrow screens.
export function breakable(key) {
  const parts = String(key).split('.');
  return parts.flatMap((p, i) => (i < parts.length - 1 ? [`${p}.`, document.createElement('wbr')] : [p]));
}

// The daemon's own notation, as in its messages: (3, 3, 3, 16).
export function fmtShape(shape) {
  if (!Array.isArray(shape)) return '—';
  return `(${shape.join(', ')})`;
}

function sameShape(a, b) {
  return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => v === b[i]);
}

// Status → how the row is shown.  "attention" rows are the ones the
// summary counts and the "only rows that need attention" box keeps.
const STATUS = {
  ok: { cls: 'st-ok', attention: false },
  'not written': { cls: 'st-skip', attention: false },
  mismatch: { cls: 'st-bad', attention: true },
  error: { cls: 'st-bad', attention: true },
  missing: { cls: 'st-bad', attention: true },
  'no weights': { cls: 'st-bad', attention: true },
  unused: { cls: 'st-warn', attention: true },
};

function statusOf(s) {
  return STATUS[s] || { cls: 'st-bad', attention: true };
}

// One row per layer weight, then one per missing or unused tensor.
export function reportRows(report) {
  const rows = [];
  const missing = Array.isArray(report.missing) ? report.missing : [];
  for (const layer of report.layers || []) {
    const weights = Array.isArray(layer.weights) ? layer.weights : [];
    const base = { layer: layer.name || '—', type: layer.type || '', inferred: !!layer.inferred };
    for (const w of weights) {
      const sources = Array.isArray(w.sources) ? w.sources : [];
      rows.push({
        ...base,
        weight: w.name || '—',
        keys: sources.map((s) => s.key),
        shapes: sources.map((s) => fmtShape(s.shape)),
        transform: w.transform || '—',
        shape: w.shape,
        expected: w.expected,
        status: w.status || 'error',
      });
    }
    for (const m of missing.filter((x) => x.layer === layer.name)) {
      if (weights.some((w) => w.name === m.weight && w.status !== 'ok')) continue;
      rows.push({ ...base, weight: m.weight || '—', keys: [m.key || '—'], shapes: ['—'],
        transform: '—', shape: null, expected: null, status: 'missing' });
    }
    if (weights.length === 0 && !missing.some((x) => x.layer === layer.name)) {
      rows.push({ ...base, weight: '—', keys: [layer.from || '—'], shapes: ['—'], transform: '—',
        shape: null, expected: null, status: 'no weights' });
    }
  }
  for (const u of Array.isArray(report.unused) ? report.unused : []) {
    rows.push({ layer: '—', type: '', inferred: false, weight: '—', keys: [u.key], shapes: [fmtShape(u.shape)],
      transform: '—', shape: null, expected: null, status: 'unused' });
  }
  return rows;
}

function rowElement(r) {
  const st = statusOf(r.status);
  let target = fmtShape(r.shape);
  if (Array.isArray(r.expected) && !sameShape(r.shape, r.expected)) {
    target = Array.isArray(r.shape) ? `${target} — Keras needs ${fmtShape(r.expected)}` :
      `not built — Keras needs ${fmtShape(r.expected)}`;
  }
  return h('tr', { class: st.cls, 'data-attention': st.attention ? '1' : '0' },
    h('td', { 'data-label': 'Layer' }, h('span', { class: 'mono' }, r.layer),
      r.type ? h('span', { class: 'sub' }, r.type + (r.inferred ? ' (inferred)' : '')) : null),
    h('td', { class: 'mono', 'data-label': 'Weight' }, r.weight),
    h('td', { class: 'mono key', 'data-label': 'Source key' },
      r.keys.map((k, i) => [i > 0 ? h('br') : null, breakable(k)])),
    h('td', { class: 'mono', 'data-label': 'Source shape' }, r.shapes.map((s, i) => [i > 0 ? h('br') : null, s])),
    h('td', { class: 'mono', 'data-label': 'Transform' }, r.transform.split('; ').map((s, i) => [i > 0 ? ['; ', h('wbr')] : null, s])),
    h('td', { class: 'mono', 'data-label': 'Target shape' }, target),
    h('td', { 'data-label': 'Status' }, h('span', { class: `status ${st.cls}` }, r.status)));
}

function attentionBlock(title, cls, items) {
  if (items.length === 0) return null;
  return h('div', { class: `attention ${cls}` },
    h('h3', {}, `${title} (${items.length})`),
    h('ul', {}, items.map((it) => h('li', {}, it))));
}

// Fill the report section.  els: status, counts, attention, tbody.
export function renderReport(report, els) {
  const rows = reportRows(report);
  const problems = Array.isArray(report.problems) ? report.problems : [];
  const warnings = Array.isArray(report.warnings) ? report.warnings : [];
  const missing = Array.isArray(report.missing) ? report.missing : [];
  const unused = Array.isArray(report.unused) ? report.unused : [];
  const ignored = Array.isArray(report.ignored) ? report.ignored : [];
  const mismatches = rows.filter((r) => r.status === 'mismatch').length;
  const t = report.totals || {};

  els.status.replaceChildren();
  if (report.status === 'ok') {
    els.status.append(h('strong', { class: 'ok-text' }, 'Converted. '),
      `${t.layers ?? '?'} layers, ${t.weights ?? '?'} weights, ${fmtBytes(t.bytes_written)} of tensors written` +
      ` to a ${report.format} file.`);
  } else {
    els.status.append(h('strong', { class: 'bad-text' }, 'Not converted. '),
      problems.length === 1 ? 'One problem stopped the conversion; no file was written.' :
        `${problems.length} problems stopped the conversion; no file was written.`);
  }

  const counts = [
    ['Problems', problems.length, 'bad'],
    ['Mismatches', mismatches, 'bad'],
    ['Missing', missing.length, 'bad'],
    ['Unused', unused.length, 'warn'],
    ['Warnings', warnings.length, 'warn'],
    ['Ignored', ignored.length, 'none'],
  ];
  els.counts.replaceChildren(...counts.map(([label, n, cls]) =>
    h('li', { class: n > 0 && cls !== 'none' ? `count ${cls}` : 'count', 'data-count': label.toLowerCase() },
      h('span', { class: 'n' }, String(n)), ` ${label}`)));

  const where = (p) => [p.layer, p.weight].filter(Boolean).join(' / ');
  els.attention.replaceChildren(...[
    attentionBlock('Problems', 'bad', problems.map((p) => [
      p.code ? h('code', {}, p.code) : null, ' ', p.message || '',
      where(p) ? h('span', { class: 'sub' }, where(p)) : null])),
    attentionBlock('Missing tensors', 'bad', missing.map((m) => [
      h('code', {}, m.key || '—'), ` for ${[m.layer, m.weight].filter(Boolean).join(' / ')}`])),
    attentionBlock('Unused tensors', 'warn', unused.map((u) => [
      h('code', {}, u.key), ` ${fmtShape(u.shape)} ${u.dtype || ''}`])),
    attentionBlock('Warnings', 'warn', warnings.map((w) => [w.message || '',
      w.layer ? h('span', { class: 'sub' }, w.layer) : null])),
    ignored.length === 0 ? null : h('details', { class: 'attention none' },
      h('summary', {}, `Ignored tensors (${ignored.length})`),
      h('ul', {}, ignored.map((k) => h('li', {}, h('code', {}, k))))),
  ].filter(Boolean));

  els.tbody.replaceChildren(...rows.map(rowElement));
  return rows.length;
}

// Hide rows that do not contain q (case-insensitive) or, with onlyBad,
// need no attention.  Returns [shown, total].
export function filterRows(tbody, q, onlyBad) {
  const needle = q.trim().toLowerCase();
  let shown = 0;
  const rows = [...tbody.rows];
  for (const tr of rows) {
    const ok = (!needle || tr.textContent.toLowerCase().includes(needle)) &&
      (!onlyBad || tr.dataset.attention === '1');
    tr.hidden = !ok;
    if (ok) shown++;
  }
  return [shown, rows.length];
}
