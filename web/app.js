// The upload form: choose an .npz, read its tensors and a template spec,
// edit the spec, convert, follow the job, read the report, download.
//
// The page is a sequence of sections that appear as the flow advances;
// the recent-jobs list at the bottom reopens any job (also as #job=<id>,
// so a job's address can be kept).  All state lives in `state`; every
// asynchronous step carries a generation number so that an answer for a
// file or job the user has since left is dropped instead of shown.

import { ApiError, getJson, getToken, postForm, request, setToken, setUnauthorizedHandler } from './api.js';
import { checkJson } from './jsoncheck.js';
import { breakable, filterRows, fmtBytes, fmtShape, h, renderReport } from './report.js';

const $ = (id) => document.getElementById(id);

const POLL_MIN_MS = 500; // never ask for a job more often than this
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

const state = {
  limits: null,
  file: null,
  fileGen: 0,
  templateText: '',
  specError: null,
  job: null,
  jobGen: 0,
  reportText: '',
  retry: null, // what to run again once a token is given
  jobsNext: null,
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- messages -------------------------------------------------------------

function showProblem(el, err) {
  el.replaceChildren();
  if (!err) {
    el.hidden = true;
    return;
  }
  const title = err instanceof ApiError ? err.title : 'Something went wrong';
  const detail = err instanceof ApiError ? err.detail : String(err.message || err);
  el.append(h('strong', { class: 'title' }, title));
  if (detail) el.append(h('p', { class: 'detail' }, detail));
  el.hidden = false;
}

function localProblem(title, detail) {
  return new ApiError(0, title, detail);
}

// --- the bearer token -----------------------------------------------------

function askToken(message) {
  const sec = $('auth');
  sec.hidden = false;
  showProblem($('auth-msg'), message ? localProblem(message.title, message.detail) : null);
  $('token').value = '';
  $('token').focus();
}

setUnauthorizedHandler((err) => {
  const had = getToken();
  setToken('');
  askToken(had ?
    { title: 'Token refused', detail: 'The server did not accept this token. Enter a valid one to go on.' } :
    { title: 'A token is needed', detail: 'The server wants a bearer token for that. Enter one to go on.' });
});

$('auth-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  setToken(t);
  $('token').value = '';
  $('auth').hidden = true;
  showProblem($('auth-msg'), null);
  const again = state.retry;
  state.retry = null;
  loadJobs(false);
  if (again) again();
});

// --- 1. the archive -------------------------------------------------------

function resetAfterFile() {
  for (const id of ['tensors-sec', 'spec-sec']) $(id).hidden = true;
  showProblem($('file-error'), null);
  $('file-status').textContent = '';
}

function limitHint() {
  if (!state.limits) return;
  $('limit-hint').textContent = `This server accepts archives up to ${fmtBytes(state.limits.upload_limit)}.`;
}

// The daemon refuses an oversized upload without reading it; refusing it
// here spares the user the wait and gives a clear message.
function tooLarge(file) {
  if (!state.limits || file.size <= state.limits.upload_limit) return null;
  return localProblem('File too large',
    `${file.name} is ${fmtBytes(file.size)}; this server accepts uploads up to ` +
    `${fmtBytes(state.limits.upload_limit)}. Nothing was uploaded.`);
}

function uploadMeter(bar, text) {
  return (loaded, total) => {
    if (total > 0) {
      bar.max = total;
      bar.value = loaded;
      if (text) text.textContent = `${Math.floor((100 * loaded) / total)}% of ${fmtBytes(total)}`;
    }
  };
}

function renderTensors(info) {
  const rows = (info.tensors || []).map((t) => h('tr', {},
    h('td', { class: 'mono key' }, breakable(t.key)),
    h('td', { class: 'mono' }, t.dtype),
    h('td', { class: 'mono' }, fmtShape(t.shape)),
    h('td', { class: 'num' }, fmtBytes(t.bytes))));
  $('tensors').tBodies[0].replaceChildren(...rows);
  $('tensor-summary').textContent =
    `${info.count} tensors, ${fmtBytes(info.total_bytes)} uncompressed.`;
  $('tensors-sec').hidden = false;
}

// The template with one layer per line: easier to edit than one key per line.
function inline(v) {
  if (Array.isArray(v)) return `[${v.map(inline).join(', ')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${inline(x)}`).join(', ')}}`;
  }
  return JSON.stringify(v);
}

function formatSpec(spec) {
  const lines = Object.entries(spec).map(([k, v]) => {
    if (k === 'layers' && Array.isArray(v)) {
      return `  "layers": [\n${v.map((l) => `    ${inline(l)}`).join(',\n')}\n  ]`;
    }
    return `  ${JSON.stringify(k)}: ${inline(v)}`;
  });
  return `{\n${lines.join(',\n')}\n}\n`;
}

async function readArchive(file) {
  const gen = ++state.fileGen;
  const bar = $('file-progress');
  resetAfterFile();
  state.file = null;
  if (!file) return;
  const big = tooLarge(file);
  if (big) {
    showProblem($('file-error'), big);
    return;
  }
  state.file = file;
  $('file-status').textContent = `Reading ${file.name} (${fmtBytes(file.size)})…`;
  bar.hidden = false;
  bar.removeAttribute('value');
  try {
    const form = new FormData();
    form.append('weights', file, file.name);
    const info = await postForm('v1/inspect', form, uploadMeter(bar));
    if (gen !== state.fileGen) return;
    renderTensors(info);
    const form2 = new FormData();
    form2.append('weights', file, file.name);
    const template = await postForm('v1/template', form2, uploadMeter(bar));
    if (gen !== state.fileGen) return;
    state.templateText = formatSpec(template);
    $('spec').value = state.templateText;
    const fmt = template.target && template.target.format;
    if (fmt === 'keras3' || fmt === 'keras-h5') {
      document.querySelector(`input[name="format"][value="${fmt}"]`).checked = true;
    }
    checkSpec();
    $('spec-sec').hidden = false;
    $('file-status').textContent =
      `${file.name}: ${info.count} tensors. The template below has ${(template.layers || []).length} layers.`;
  } catch (err) {
    if (gen !== state.fileGen) return;
    $('file-status').textContent = '';
    showProblem($('file-error'), err);
    if (err.status === 401) state.retry = () => readArchive(file);
  } finally {
    if (gen === state.fileGen) bar.hidden = true;
  }
}

const fileInput = $('weights');
fileInput.addEventListener('change', () => readArchive(fileInput.files[0] || null));

const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  e.dataTransfer.dropEffect = 'copy';
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const files = e.dataTransfer && e.dataTransfer.files;
  if (!files || files.length === 0) return;
  // Keep the file input truthful: it is the control the form reads.
  try {
    fileInput.files = files;
  } catch {
    // Old browsers cannot assign FileLists; the dropped file is used anyway.
  }
  readArchive(files[0]);
});

// --- 3. the spec ----------------------------------------------------------

function checkSpec() {
  const text = $('spec').value;
  const out = $('spec-check');
  let err = checkJson(text);
  if (!err) {
    const v = JSON.parse(text);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      err = { message: 'the spec must be a JSON object ({...})', line: 1, column: 1, offset: 0 };
    } else {
      const n = Array.isArray(v.layers) ? v.layers.length : 0;
      out.className = 'check good';
      out.textContent = `Valid JSON: ${n} layer ${n === 1 ? 'entry' : 'entries'}.`;
    }
  }
  state.specError = err;
  $('spec').setAttribute('aria-invalid', err ? 'true' : 'false');
  $('spec-goto').hidden = !err;
  if (err) {
    out.className = 'check bad';
    out.textContent = `Line ${err.line}, column ${err.column}: ${err.message}.`;
  }
  return err;
}

function gotoSpecError(err) {
  const ta = $('spec');
  ta.focus();
  ta.setSelectionRange(err.offset, Math.min(err.offset + 1, ta.value.length));
}

// A line/column from the daemon (spec-json-invalid) as an offset.
function offsetOf(text, line, column) {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return Math.min(off + Math.max(column - 1, 0), text.length);
}

let specTimer = 0;
$('spec').addEventListener('input', () => {
  clearTimeout(specTimer);
  specTimer = setTimeout(checkSpec, 150);
});
$('spec-goto').addEventListener('click', () => {
  const err = checkSpec();
  if (err) gotoSpecError(err);
});
$('spec-reset').addEventListener('click', () => {
  $('spec').value = state.templateText;
  checkSpec();
});

// --- 4. conversion --------------------------------------------------------

$('convert-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const jobErr = $('job-error');
  if (!state.file) {
    showProblem($('file-error'), localProblem('No archive', 'Choose an .npz file first.'));
    $('weights').focus();
    return;
  }
  const err = checkSpec();
  if (err) {
    gotoSpecError(err);
    return;
  }
  const big = tooLarge(state.file);
  if (big) {
    showProblem($('file-error'), big);
    return;
  }
  const text = $('spec').value;
  const format = document.querySelector('input[name="format"]:checked').value;
  const form = new FormData();
  form.append('weights', state.file, state.file.name);
  form.append('spec', new Blob([text], { type: 'application/json' }), 'spec.json');
  form.append('format', format);

  const gen = ++state.jobGen;
  const btn = $('convert-btn');
  $('job-sec').hidden = false;
  $('report-sec').hidden = true;
  $('job-box').hidden = true;
  showProblem(jobErr, null);
  $('upload-box').hidden = false;
  $('upload-progress').value = 0;
  $('upload-text').textContent = 'starting…';
  btn.disabled = true;
  $('job-sec').scrollIntoView({ block: 'nearest' });
  try {
    const job = await postForm('v1/jobs', form, uploadMeter($('upload-progress'), $('upload-text')));
    const bar = $('upload-progress');
    bar.value = bar.max;
    $('upload-text').textContent = `done, ${fmtBytes(state.file.size)} sent`;
    history.replaceState(null, '', `#job=${job.id}`);
    await followJob(job, gen);
  } catch (ex) {
    if (gen !== state.jobGen) return;
    $('upload-text').textContent = 'failed';
    showProblem(jobErr, ex);
    if (ex.problem && ex.problem.line > 0) {
      const off = offsetOf(text, ex.problem.line, ex.problem.column);
      gotoSpecError({ offset: off });
    }
  } finally {
    btn.disabled = false;
  }
});

function renderJob(job) {
  const p = job.progress || {};
  const badge = $('job-state');
  badge.textContent = job.state;
  badge.className = `badge state-${job.state}`;
  $('job-title').textContent =
    `Job ${job.id}${job.input && job.input.filename ? ` · ${job.input.filename}` : ''}`;
  const bar = $('job-progress');
  if (p.tensors_total > 0) {
    bar.max = p.tensors_total;
    bar.value = p.tensors_done;
  } else if (FINAL.has(job.state)) {
    bar.max = 1;
    bar.value = job.state === 'succeeded' ? 1 : 0;
  } else {
    bar.removeAttribute('value');
  }
  let text;
  switch (job.state) {
  case 'queued':
    text = 'Waiting for a worker.';
    break;
  case 'running':
    text = p.tensors_total > 0 ?
      `${p.tensors_done} of ${p.tensors_total} tensors (${fmtBytes(p.bytes_done)} of ${fmtBytes(p.bytes_total)}).` :
      'Reading the archive.';
    break;
  case 'succeeded':
    text = `Done: ${job.result.format} file, ${fmtBytes(job.result.bytes)}.`;
    break;
  case 'failed':
    text = 'The conversion failed.';
    break;
  default:
    text = 'The job was cancelled.';
  }
  $('job-text').textContent = text;
  $('job-box').hidden = false;
}

// Follow a job until it ends, then show its report.
async function followJob(job, gen) {
  state.job = job;
  $('job-sec').hidden = false;
  renderJob(job);
  while (!FINAL.has(job.state)) {
    const t0 = Date.now();
    // ?wait=1 answers as soon as the job ends, or after a second with
    // fresh progress; the pause keeps a daemon with max-wait 0 unflooded.
    job = await getJson(`v1/jobs/${encodeURIComponent(job.id)}?wait=1`);
    if (gen !== state.jobGen) return;
    state.job = job;
    renderJob(job);
    if (!FINAL.has(job.state)) await sleep(Math.max(0, POLL_MIN_MS - (Date.now() - t0)));
  }
  if (job.state !== 'succeeded' && job.error) showProblem($('job-error'), new ApiError(job.error.status || 0,
    job.error.title || 'The conversion failed', job.error.detail || '', job.error));
  await loadReport(job, gen);
  loadJobs(false);
}

// --- 5. the report --------------------------------------------------------

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function stemOf(job) {
  return (job.input && job.input.filename) || 'weights';
}

function applyFilter() {
  const [shown, total] = filterRows($('report-table').tBodies[0], $('filter').value, $('only-bad').checked);
  $('filter-count').textContent = shown === total ? `${total} rows.` : `Showing ${shown} of ${total} rows.`;
}

async function loadReport(job, gen) {
  const sec = $('report-sec');
  let text;
  try {
    const x = await request('GET', `v1/jobs/${encodeURIComponent(job.id)}/report`);
    text = x.responseText;
  } catch (err) {
    if (gen !== state.jobGen) return;
    sec.hidden = true;
    // A job that failed before planning has no report; its error says why.
    if (!(err.status === 404 && job.error)) showProblem($('job-error'), err);
    return;
  }
  if (gen !== state.jobGen) return;
  state.reportText = text;
  const report = JSON.parse(text);
  renderReport(report, {
    status: $('report-status'), counts: $('report-counts'), attention: $('report-attention'),
    tbody: $('report-table').tBodies[0],
  });
  const ok = job.state === 'succeeded' && job.result;
  const link = $('dl-result');
  const authBtn = $('dl-result-auth');
  link.hidden = true;
  authBtn.hidden = true;
  if (ok) {
    const label = `Download weights (${job.result.format}, ${fmtBytes(job.result.bytes)})`;
    if (state.limits && state.limits.auth) {
      // A link cannot carry the Authorization header: fetch, then save.
      authBtn.textContent = label;
      authBtn.hidden = false;
    } else {
      link.href = `v1/jobs/${encodeURIComponent(job.id)}/result`;
      link.textContent = label;
      link.hidden = false;
    }
    $('dl-info').textContent = `SHA-256 ${job.result.sha256}`;
  } else {
    $('dl-info').textContent = '';
  }
  applyFilter();
  sec.hidden = false;
}

$('dl-report').addEventListener('click', () => {
  if (!state.job || !state.reportText) return;
  saveBlob(new Blob([state.reportText], { type: 'application/json' }), `${stemOf(state.job)}.report.json`);
});

$('dl-result-auth').addEventListener('click', async () => {
  const job = state.job;
  if (!job) return;
  try {
    const x = await request('GET', `v1/jobs/${encodeURIComponent(job.id)}/result`, { responseType: 'blob' });
    const cd = x.getResponseHeader('Content-Disposition') || '';
    const m = /filename="([^"]+)"/.exec(cd);
    saveBlob(x.response, m ? m[1] : `${stemOf(job)}.h5`);
  } catch (err) {
    showProblem($('job-error'), err);
    if (err.status === 401) state.retry = () => $('dl-result-auth').click();
  }
});

$('filter').addEventListener('input', applyFilter);
$('only-bad').addEventListener('change', applyFilter);

async function openJob(id) {
  const gen = ++state.jobGen;
  $('upload-box').hidden = true;
  $('report-sec').hidden = true;
  showProblem($('job-error'), null);
  $('job-sec').hidden = false;
  try {
    const job = await getJson(`v1/jobs/${encodeURIComponent(id)}`);
    if (gen !== state.jobGen) return;
    history.replaceState(null, '', `#job=${job.id}`);
    $('job-sec').scrollIntoView({ block: 'start' });
    await followJob(job, gen);
  } catch (err) {
    if (gen !== state.jobGen) return;
    $('job-box').hidden = true;
    showProblem($('job-error'), err);
    if (err.status === 401) state.retry = () => openJob(id);
  }
}

// --- recent jobs ----------------------------------------------------------

function jobRow(job) {
  const created = job.created_at ? new Date(job.created_at) : null;
  const fmt = (job.result && job.result.format) || job.format || '—';
  const actions = [h('button', { type: 'button', class: 'secondary small', 'data-open': job.id,
    'aria-label': `Show job ${job.id.slice(0, 8)}` }, 'Show')];
  if (job.state === 'succeeded' && !(state.limits && state.limits.auth)) {
    actions.push(' ', h('a', { href: `v1/jobs/${encodeURIComponent(job.id)}/result`, download: '',
      class: 'small', 'aria-label': `Download the weights of job ${job.id.slice(0, 8)}` }, 'Weights'));
  }
  return h('tr', { 'data-job': job.id },
    h('td', { 'data-label': 'Created' },
      created ? h('time', { datetime: job.created_at }, created.toLocaleString()) : '—'),
    h('td', { class: 'mono', 'data-label': 'File' }, (job.input && job.input.filename) || '—'),
    h('td', { 'data-label': 'State' }, h('span', { class: `badge state-${job.state}` }, job.state)),
    h('td', { class: 'mono', 'data-label': 'Format' }, fmt),
    h('td', { class: 'actions', 'data-label': 'Actions' }, actions));
}

async function loadJobs(more) {
  const tbody = $('jobs-table').tBodies[0];
  const status = $('jobs-status');
  if (state.limits && state.limits.auth && !getToken()) {
    status.textContent = 'Give a token to see the jobs.';
    return;
  }
  showProblem($('jobs-error'), null);
  status.textContent = 'Loading…';
  try {
    const url = more && state.jobsNext ? state.jobsNext.replace(/^\//, '') : 'v1/jobs?limit=20';
    const page = await getJson(url);
    const rows = (page.jobs || []).map(jobRow);
    if (more) tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    state.jobsNext = page.links && page.links.next ? page.links.next : null;
    $('jobs-more').hidden = !state.jobsNext;
    const n = tbody.rows.length;
    $('jobs-wrap').hidden = n === 0;
    status.textContent = n === 0 ? 'No jobs yet.' : `${n} ${n === 1 ? 'job' : 'jobs'}, newest first.`;
  } catch (err) {
    status.textContent = '';
    // The token prompt says what a 401 means; the list just waits for it.
    if (err.status === 401) status.textContent = 'Give a token to see the jobs.';
    else showProblem($('jobs-error'), err);
  }
}

$('jobs-refresh').addEventListener('click', () => loadJobs(false));
$('jobs-more').addEventListener('click', () => loadJobs(true));
$('jobs-table').addEventListener('click', (e) => {
  const btn = e.target.closest('button[data-open]');
  if (btn) openJob(btn.dataset.open);
});

// --- start ----------------------------------------------------------------

function jobFromHash() {
  const m = /^#job=([0-9a-f]{8,64})$/.exec(location.hash);
  return m ? m[1] : null;
}

window.addEventListener('hashchange', () => {
  const id = jobFromHash();
  if (id && (!state.job || state.job.id !== id)) openJob(id);
});

async function start() {
  try {
    state.limits = await getJson('v1/limits');
  } catch (err) {
    showProblem($('notice'), err);
  }
  limitHint();
  if (state.limits && state.limits.auth && !getToken()) askToken(null);
  const id = jobFromHash();
  if (id) openJob(id);
  loadJobs(false);
  document.body.dataset.ready = '1';
}

start();
