// The upload form in a real browser (headless Chromium) against the real
// weightbridged on loopback, with a model exported by real PyTorch.
//
// 1. headers: the page and its files carry a strict CSP, nosniff, a
//    Referrer-Policy, frame-ancestors 'none', content types and ETags;
// 2. the whole flow: choose the .npz, read the tensors, edit the template
//    (a syntax error first, then renamed layers and the flatten), convert
//    to keras3 with upload progress, check the report table, download the
//    weights (SHA-256 = the job's result.sha256) and the JSON report, find
//    the job in the list, reopen it at 360 px;
// 3. a spec that does not fit: problem rows highlighted, counts, and the
//    daemon's error shown as a sentence; a non-zip upload likewise;
// 4. a daemon with a 4 KiB --upload-limit: an archive over it is refused
//    in the page before any upload, one under it goes through;
// 5. a daemon with --tokens-file: the page asks for a token, keeps it in
//    sessionStorage only, asks again after a 401.
//
// Screenshots of each state go to $WB_SCREENSHOTS (build/web-screenshots).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { Daemon, ROOT, launch, makeModels, sha256File, shot, sleep, tmpdir, visible, waitText } from './lib.mjs';

const T = { timeout: 180000 };
let models;
let daemon;
let work;
let goodJobId = null;

before(async () => {
  work = tmpdir('work');
  models = makeModels(work);
  daemon = await new Daemon().start();
});

after(async () => {
  if (daemon) await daemon.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

// The console errors that are not the browser reporting an HTTP status
// the test provoked on purpose.
function unexpected(errors, allowStatus = []) {
  return errors.filter((e) => !allowStatus.some((s) => e.includes(`status of ${s}`)));
}

async function chooseArchive(page, file) {
  await page.setInputFiles('#weights', file);
  await page.waitForSelector('#spec-sec:not([hidden])');
}

async function rowTexts(page) {
  return page.$$eval('#report-table tbody tr', (trs) => trs.filter((tr) => !tr.hidden).map((tr) => ({
    cls: tr.className,
    cells: [...tr.cells].map((td) => td.innerText.replace(/\s+/g, ' ').trim()),
    bg: getComputedStyle(tr.cells[0]).backgroundColor,
  })));
}

test('the page and its files: content types, ETags, CSP and the other security headers', T, async () => {
  const r = await fetch(`${daemon.url}/`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /(^|; )default-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const html = await r.text();
  // No inline script or style: every script has a src, no style element
  // or attribute, no event handler attribute.
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i);
  assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i);
  // Nothing from elsewhere.
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//i);

  const etag = r.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{64}"$/);
  const again = await fetch(`${daemon.url}/`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get('etag'), etag);

  const types = { 'app.js': 'text/javascript; charset=utf-8', 'app.css': 'text/css; charset=utf-8',
    'icon.svg': 'image/svg+xml', 'jsoncheck.js': 'text/javascript; charset=utf-8' };
  for (const [name, ctype] of Object.entries(types)) {
    const f = await fetch(`${daemon.url}/web/${name}`);
    assert.equal(f.status, 200, name);
    assert.equal(f.headers.get('content-type'), ctype, name);
    assert.equal(f.headers.get('content-security-policy'), csp, name);
    assert.equal(f.headers.get('x-content-type-options'), 'nosniff', name);
    // The ETag is the SHA-256 of the bytes served, which are web/'s file.
    const body = Buffer.from(await f.arrayBuffer());
    const want = fs.readFileSync(path.join(ROOT, 'web', name));
    assert.ok(body.equals(want), `${name} differs from web/${name}: rebuild the daemon`);
    const hex = crypto.createHash('sha256').update(body).digest('hex');
    assert.equal(f.headers.get('etag'), `"${hex}"`, name);
  }
  const missing = await fetch(`${daemon.url}/web/nope.js`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('content-type'), 'application/problem+json');
  // The page has one address; a second would break its relative links.
  assert.equal((await fetch(`${daemon.url}/web/index.html`)).status, 404);
  // HEAD works and sends no body.
  const head = await fetch(`${daemon.url}/web/app.css`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal((await head.text()).length, 0);
});

test('convert a PyTorch CNN: inspect, edit the template, keras3, progress, report, downloads, job list', T, async () => {
  const b = await launch();
  const { page } = b;
  try {
    const requests = [];
    page.on('request', (rq) => requests.push(`${rq.method()} ${new URL(rq.url()).pathname}`));
    await page.goto(`${daemon.url}/`);
    await page.waitForSelector('body[data-ready="1"]');
    await waitText(page, '#limit-hint', 'up to 2.0 GiB');
    assert.equal(await visible(page, '#auth'), false, 'no token prompt without --tokens-file');

    // Every control has a label (accessible name).
    const unlabelled = await page.$$eval('input, textarea, select, button', (els) => els
      .filter((el) => !el.closest('[hidden]'))
      .filter((el) => !((el.labels && el.labels.length > 0) || el.getAttribute('aria-label') ||
        el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim())))
      .map((el) => el.outerHTML));
    assert.deepEqual(unlabelled, []);
    // The file input is reachable with the keyboard and shows its focus.
    let reached = false;
    for (let i = 0; i < 12 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement && document.activeElement.id === 'weights');
    }
    assert.ok(reached, 'Tab never reached the file input');
    const outline = await page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
    });
    assert.notEqual(outline.style, 'none');
    assert.ok(outline.width >= 2, `focus outline ${outline.width}px`);
    await shot(page, '01-start');

    // 1-2. The archive's tensors and the template.
    await chooseArchive(page, models.net);
    const tensors = await page.$$eval('#tensors tbody tr', (trs) => trs.map((tr) =>
      [...tr.cells].map((td) => td.textContent)));
    assert.equal(tensors.length, 9);
    assert.deepEqual(tensors.find((t) => t[0] === 'classifier.weight').slice(0, 3),
      ['classifier.weight', 'float32', '(10, 1024)']);
    assert.deepEqual(tensors.find((t) => t[0] === 'features.0.weight').slice(0, 3),
      ['features.0.weight', 'float32', '(16, 3, 3, 3)']);
    assert.deepEqual(tensors.find((t) => t[0] === 'features.1.num_batches_tracked').slice(1, 3),
      ['int64', '()']);
    assert.ok(requests.includes('POST /v1/inspect') && requests.includes('POST /v1/template'));
    const template = JSON.parse(await page.inputValue('#spec'));
    assert.deepEqual(template.layers.map((l) => [l.name, l.type, l.from]), [
      ['features_0', 'Conv2D', 'features.0'],
      ['features_1', 'BatchNormalization', 'features.1'],
      ['classifier', 'Dense', 'classifier']]);
    await waitText(page, '#spec-check', 'Valid JSON: 3 layer entries');
    await shot(page, '02-archive-read');

    // 3. A syntax error is shown with its line and column and blocks the upload.
    const broken = '{\n  "weightbridge_spec": 1,\n  "layers": [\n    {"name": "fc", "type": "Dense", "from": "classifier"},\n  ]\n}\n';
    await page.fill('#spec', broken);
    await waitText(page, '#spec-check', 'Line 5, column 3: a comma before "]"');
    assert.equal(await page.getAttribute('#spec', 'aria-invalid'), 'true');
    const before = requests.length;
    await page.click('#convert-btn');
    await sleep(300);
    assert.equal(requests.slice(before).filter((r) => r.startsWith('POST /v1/jobs')).length, 0);
    const caret = await page.evaluate(() => [document.activeElement.id, document.activeElement.selectionStart]);
    assert.deepEqual(caret, ['spec', broken.indexOf(',\n  ]') + 4]);
    await page.fill('#spec', '{"weightbridge_spec": 1, "layers": [], "layers": []}');
    await waitText(page, '#spec-check', 'Line 1, column 40: the member "layers" appears twice');
    await shot(page, '03-spec-syntax-error');

    // The edits a user makes: the Keras layer names (typed over the
    // template's), and the flatten of the 16x8x8 map in place of the note.
    await page.click('#spec-reset');
    await waitText(page, '#spec-check', 'Valid JSON: 3 layer entries');
    for (const [from, to] of [['features_0', 'conv'], ['features_1', 'bn'], ['classifier', 'fc']]) {
      await page.$eval('#spec', (ta, name) => {
        const at = ta.value.indexOf(`"name": "${name}"`) + 9;
        ta.focus();
        ta.setSelectionRange(at, at + name.length);
      }, from);
      await page.keyboard.type(to);
    }
    const typed = await page.inputValue('#spec');
    await page.fill('#spec', typed.replace(/"note": "(?:[^"\\]|\\.)*"/, '"flatten": {"chw": [16, 8, 8]}'));
    await waitText(page, '#spec-check', 'Valid JSON: 3 layer entries');
    const edited = JSON.parse(await page.inputValue('#spec'));
    assert.deepEqual(edited.layers, [
      { name: 'conv', type: 'Conv2D', from: 'features.0' },
      { name: 'bn', type: 'BatchNormalization', from: 'features.1' },
      { name: 'fc', type: 'Dense', from: 'classifier', flatten: { chw: [16, 8, 8] } }]);
    assert.equal(await page.getAttribute('#spec', 'aria-invalid'), 'false');
    await page.check('input[name="format"][value="keras3"]');

    // 4. Upload, throttled so that the progress bar is seen moving.
    const cdp = await b.ctx.newCDPSession(page);
    await cdp.send('Network.emulateNetworkConditions',
      { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 16 * 1024 });
    const seen = [];
    const sampler = setInterval(async () => {
      try {
        seen.push(await page.$eval('#upload-progress', (p) => [p.value, p.max]));
      } catch {
        // the page is busy; the next sample will do
      }
    }, 100);
    await page.click('#convert-btn');
    await waitText(page, '#upload-text', /%/);
    await shot(page, '04-uploading');
    await page.waitForSelector('#report-sec:not([hidden])', { timeout: 60000 });
    clearInterval(sampler);
    await cdp.send('Network.emulateNetworkConditions',
      { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const partial = seen.filter(([v, m]) => m > 1 && v > 0 && v < m);
    assert.ok(partial.length > 0, `the upload bar never showed partial progress: ${JSON.stringify(seen)}`);
    const [v, m] = await page.$eval('#upload-progress', (p) => [p.value, p.max]);
    assert.ok(m > 40000 && v === m, `upload bar ends at ${v}/${m}`);

    const jobId = (await page.evaluate(() => location.hash)).replace('#job=', '');
    assert.match(jobId, /^[0-9a-f]{32}$/);
    goodJobId = jobId;
    const job = await daemon.json(`/v1/jobs/${jobId}`);
    assert.equal(job.state, 'succeeded');
    assert.equal(job.result.format, 'keras3');
    assert.equal(await page.textContent('#job-state'), 'succeeded');
    assert.deepEqual(await page.$eval('#job-progress', (p) => [p.value, p.max]), [8, 8]);

    // 5. The report: one row per weight, nothing highlighted, the BatchNorm eps warning.
    await waitText(page, '#report-status', 'Converted.');
    const rows = await rowTexts(page);
    assert.equal(rows.length, 8);
    const byWeight = Object.fromEntries(rows.map((r) => [`${r.cells[0].split(' ')[0]}/${r.cells[1]}`, r.cells]));
    assert.deepEqual(byWeight['conv/kernel'].slice(2),
      ['features.0.weight', '(16, 3, 3, 3)', 'transpose(2,3,1,0)', '(3, 3, 3, 16)', 'ok']);
    assert.deepEqual(byWeight['fc/kernel'].slice(2),
      ['classifier.weight', '(10, 1024)', 'reshape(10,16,8,8); transpose(2,3,1,0); reshape(1024,10)', '(1024, 10)', 'ok']);
    assert.deepEqual(byWeight['bn/moving_variance'].slice(2),
      ['features.1.running_var', '(16)', 'identity', '(16)', 'ok']);
    assert.ok(rows.every((r) => r.cls === 'st-ok'));
    const counts = await page.$$eval('#report-counts li', (lis) => Object.fromEntries(
      lis.map((li) => [li.dataset.count, Number(li.querySelector('.n').textContent)])));
    assert.deepEqual(counts, { problems: 0, mismatches: 0, missing: 0, unused: 0, warnings: 1, ignored: 1 });
    await waitText(page, '#report-attention', 'PyTorch normalisation layers default to eps=1e-5');
    await shot(page, '05-report');

    // The filter box.
    await page.fill('#filter', 'bn');
    await waitText(page, '#filter-count', 'Showing 4 of 8 rows.');
    assert.deepEqual((await rowTexts(page)).map((r) => r.cells[1]), ['gamma', 'beta', 'moving_mean', 'moving_variance']);
    await page.fill('#filter', 'transpose');
    await waitText(page, '#filter-count', 'Showing 2 of 8 rows.');
    await shot(page, '06-report-filtered');
    await page.fill('#filter', '');
    await waitText(page, '#filter-count', '8 rows.');

    // The weights: the downloaded bytes are the job's result.
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#dl-result')]);
    assert.equal(dl.suggestedFilename(), 'net.weights.h5');
    const saved = path.join(work, 'dl.weights.h5');
    await dl.saveAs(saved);
    assert.equal(sha256File(saved), job.result.sha256);
    assert.equal(fs.statSync(saved).size, job.result.bytes);
    assert.equal(fs.readFileSync(saved).subarray(0, 8).toString('latin1'), '\x89HDF\r\n\x1a\n');
    await waitText(page, '#dl-info', job.result.sha256);
    // The report: the same JSON the API serves.
    const [dr] = await Promise.all([page.waitForEvent('download'), page.click('#dl-report')]);
    assert.equal(dr.suggestedFilename(), 'net.report.json');
    const savedReport = path.join(work, 'report.json');
    await dr.saveAs(savedReport);
    assert.deepEqual(JSON.parse(fs.readFileSync(savedReport, 'utf8')), await daemon.json(`/v1/jobs/${jobId}/report`));

    // The job list has it, with a working download link.
    await page.click('#jobs-refresh');
    await page.waitForSelector(`#jobs-table tr[data-job="${jobId}"]`);
    const listed = await page.$eval(`#jobs-table tr[data-job="${jobId}"]`, (tr) => [...tr.cells].map((c) => c.innerText.trim()));
    assert.equal(listed[1], 'net');
    assert.equal(listed[2], 'succeeded');
    assert.equal(listed[3], 'keras3');
    const href = await page.$eval(`#jobs-table tr[data-job="${jobId}"] a[download]`, (a) => a.href);
    assert.equal(href, `${daemon.url}/v1/jobs/${jobId}/result`);
    await page.$eval('#jobs', (el) => el.scrollIntoView());
    await shot(page, '07-jobs');
    assert.deepEqual(unexpected(b.errors), []);
  } finally {
    await b.close();
  }

  // Coming back later, on a phone: the job's address opens its report,
  // and nothing is wider than the screen.
  const m = await launch({ viewport: { width: 360, height: 740 } });
  try {
    await m.page.goto(`${daemon.url}/#job=${goodJobId}`);
    await m.page.waitForSelector('#report-sec:not([hidden])');
    await waitText(m.page, '#report-status', 'Converted.');
    assert.equal((await rowTexts(m.page)).length, 8);
    assert.equal(await visible(m.page, '#dl-result'), true);
    const width = await m.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `the page is ${width}px wide at a 360px viewport`);
    await shot(m.page, '08-phone-360px-report');
    await m.page.goto(`${daemon.url}/`);
    await chooseArchive(m.page, models.net);
    assert.ok(await m.page.evaluate(() => document.documentElement.scrollWidth) <= 360);
    await shot(m.page, '09-phone-360px-form');
    assert.deepEqual(unexpected(m.errors), []);
  } finally {
    await m.close();
  }
});

test('a spec that does not fit: problems at the top, rows highlighted, the error in words', T, async () => {
  const b = await launch();
  const { page } = b;
  try {
    await page.goto(`${daemon.url}/`);
    await page.waitForSelector('body[data-ready="1"]');

    // Not an archive: the daemon's problem+json becomes a title and a sentence.
    const notZip = path.join(work, 'notes.npz');
    fs.writeFileSync(notZip, 'these are notes, not weights\n');
    await page.setInputFiles('#weights', notZip);
    await page.waitForSelector('#file-error:not([hidden])');
    await waitText(page, '#file-error .title', 'Invalid .npz archive');
    const fileErr = await page.textContent('#file-error');
    assert.match(fileErr, /not a zip archive/);
    assert.doesNotMatch(fileErr, /[{}]|"type"|problems\//);
    assert.equal(await visible(page, '#spec-sec'), false);
    await shot(page, '10-not-an-archive');

    await chooseArchive(page, models.net);
    assert.equal(await visible(page, '#file-error'), false);
    // A wrong channel count, a wrong flatten, and a layer the archive lacks.
    await page.fill('#spec', `{
  "weightbridge_spec": 1,
  "layers": [
    {"name": "conv", "type": "Conv2D", "from": "features.0", "expect": {"kernel": [3, 3, 3, 32]}},
    {"name": "bn", "type": "BatchNormalization", "from": "features.1"},
    {"name": "fc", "type": "Dense", "from": "classifier", "flatten": {"chw": [16, 4, 4]}},
    {"name": "head", "type": "Dense", "from": "head"}
  ]
}
`);
    await waitText(page, '#spec-check', 'Valid JSON: 4 layer entries');
    await page.click('#convert-btn');
    await page.waitForSelector('#report-sec:not([hidden])', { timeout: 60000 });

    // The job's error: title and detail, no JSON.
    assert.equal(await page.textContent('#job-state'), 'failed');
    await waitText(page, '#job-error .title', 'Mapping does not fit the weights');
    const detail = await page.textContent('#job-error .detail');
    assert.match(detail, /^3 problems; first: Conv2D 'conv' kernel: "expect" says \(3, 3, 3, 32\)/);
    assert.doesNotMatch(await page.textContent('#job-error'), /[{}]|"type"|problems\//);

    // Counts and the lists at the top.
    await waitText(page, '#report-status', 'Not converted.');
    const counts = await page.$$eval('#report-counts li', (lis) => Object.fromEntries(
      lis.map((li) => [li.dataset.count, [Number(li.querySelector('.n').textContent), li.className]])));
    assert.deepEqual(counts.problems, [3, 'count bad']);
    assert.deepEqual(counts.mismatches, [1, 'count bad']);
    assert.deepEqual(counts.missing, [1, 'count bad']);
    assert.deepEqual(counts.unused, [0, 'count']);
    const problems = await page.$$eval('#report-attention .attention.bad', (ds) => ds.map((d) => [
      d.querySelector('h3').textContent, [...d.querySelectorAll('li')].map((li) => li.textContent)]));
    assert.equal(problems[0][0], 'Problems (3)');
    assert.match(problems[0][1][1], /flatten "chw" gives 256 features but the Linear weight has 1024 inputs/);
    assert.match(problems[0][1][2], /no tensor 'head\.weight' in the archive/);
    assert.equal(problems[1][0], 'Missing tensors (1)');
    assert.match(problems[1][1][0], /^head\.weight for head \/ kernel/);

    // The rows: the three that need attention are highlighted, the others not.
    const rows = await rowTexts(page);
    const bad = rows.filter((r) => r.cls === 'st-bad');
    assert.deepEqual(bad.map((r) => [r.cells[0].split(' ')[0], r.cells[1], r.cells[6]]), [
      ['conv', 'kernel', 'mismatch'], ['fc', 'kernel', 'error'], ['head', 'kernel', 'missing']]);
    assert.equal(bad[0].cells[5], '(3, 3, 3, 16) — Keras needs (3, 3, 3, 32)');
    const okBg = rows.find((r) => r.cls !== 'st-bad').bg;
    assert.ok(bad.every((r) => r.bg !== okBg && r.bg !== 'rgba(0, 0, 0, 0)'), `highlight ${bad[0].bg} vs ${okBg}`);
    await page.check('#only-bad');
    await waitText(page, '#filter-count', 'Showing 3 of 9 rows.');
    await page.uncheck('#only-bad');

    // No weights to download; the report is.
    assert.equal(await visible(page, '#dl-result'), false);
    assert.equal(await visible(page, '#dl-report'), true);
    await page.$eval('#job-sec', (el) => el.scrollIntoView());
    await shot(page, '11-mismatch-report');
    // 422 is the non-archive upload above, reported by the browser itself.
    assert.deepEqual(unexpected(b.errors, [422]), []);
  } finally {
    await b.close();
  }
});

test('an archive over the advertised --upload-limit is refused before upload', T, async () => {
  const small = await new Daemon(['--upload-limit', '4K']).start();
  const b = await launch();
  const { page } = b;
  try {
    assert.equal((await small.json('/v1/limits')).upload_limit, 4096);
    const requests = [];
    page.on('request', (rq) => requests.push(`${rq.method()} ${new URL(rq.url()).pathname}`));
    await page.goto(`${small.url}/`);
    await page.waitForSelector('body[data-ready="1"]');
    await waitText(page, '#limit-hint', 'up to 4.0 KiB');

    // Dropped on the drop zone, as a user would.
    const bytes = fs.readFileSync(models.net).toString('base64');
    await page.evaluate((b64) => {
      const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([data], 'net.npz', { type: 'application/zip' }));
      const zone = document.getElementById('drop');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, bytes);
    await page.waitForSelector('#file-error:not([hidden])');
    await waitText(page, '#file-error .title', 'File too large');
    const size = fs.statSync(models.net).size;
    await waitText(page, '#file-error .detail',
      `net.npz is ${(size / 1024).toFixed(1)} KiB; this server accepts uploads up to 4.0 KiB. Nothing was uploaded.`);
    assert.equal(await page.$eval('#weights', (i) => i.files.length && i.files[0].name), 'net.npz');
    assert.equal(await visible(page, '#spec-sec'), false);
    await sleep(300);
    assert.deepEqual(requests.filter((r) => r.startsWith('POST')), []);
    const metrics = await (await fetch(`${small.url}/metrics`)).text();
    assert.match(metrics, /^weightbridged_upload_bytes_total 0$/m);
    await shot(page, '12-too-large');

    // The limit is a limit, not a refusal of everything.
    await chooseArchive(page, models.tiny);
    assert.equal(await visible(page, '#file-error'), false);
    assert.equal(await page.$$eval('#tensors tbody tr', (t) => t.length), 2);
    assert.deepEqual(unexpected(b.errors), []);
  } finally {
    await b.close();
    await small.stop();
  }
});

test('with --tokens-file the page asks for a token, keeps it in sessionStorage, asks again on 401', T, async () => {
  const dir = tmpdir('tokens');
  const tokens = path.join(dir, 'tokens');
  fs.writeFileSync(tokens, '# the browser test\nweb-test-token-7f3a\n');
  const locked = await new Daemon(['--tokens-file', tokens]).start();
  const b = await launch();
  const { page } = b;
  try {
    await page.goto(`${locked.url}/`);
    await page.waitForSelector('body[data-ready="1"]');
    assert.equal(await visible(page, '#auth'), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'token');
    await waitText(page, '#jobs-status', 'Give a token to see the jobs.');
    await shot(page, '13-token-asked');

    // A wrong token: refused at the first API call, and asked again.
    await page.fill('#token', 'not-the-token');
    await page.press('#token', 'Enter');
    await waitText(page, '#auth-msg .title', 'Token refused');
    assert.equal(await visible(page, '#auth'), true);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('weightbridge.token')), null);
    await shot(page, '14-token-refused');

    // Choosing a file first: the 401 asks, the right token finishes the step.
    await page.setInputFiles('#weights', models.net);
    await waitText(page, '#file-error .title', 'Unauthorized');
    await page.fill('#token', 'web-test-token-7f3a');
    await page.click('#auth-form button[type="submit"]');
    await page.waitForSelector('#spec-sec:not([hidden])');
    assert.equal(await visible(page, '#auth'), false);
    assert.equal(await visible(page, '#file-error'), false);
    const storage = await page.evaluate(() => ({
      session: sessionStorage.getItem('weightbridge.token'), local: localStorage.length, cookie: document.cookie }));
    assert.deepEqual(storage, { session: 'web-test-token-7f3a', local: 0, cookie: '' });

    // Convert and download through the token (a plain link cannot carry it).
    const template = await page.inputValue('#spec');
    await page.fill('#spec', template.replace(/"note": "(?:[^"\\]|\\.)*"/, '"flatten": {"chw": [16, 8, 8]}'));
    await waitText(page, '#spec-check', 'Valid JSON: 3 layer entries');
    assert.deepEqual(JSON.parse(await page.inputValue('#spec')).layers[2].flatten, { chw: [16, 8, 8] });
    await page.click('#convert-btn');
    await page.waitForSelector('#report-sec:not([hidden])', { timeout: 60000 });
    await waitText(page, '#report-status', 'Converted.');
    assert.equal(await visible(page, '#dl-result'), false);
    const jobId = (await page.evaluate(() => location.hash)).replace('#job=', '');
    const job = await locked.json(`/v1/jobs/${jobId}`, { Authorization: 'Bearer web-test-token-7f3a' });
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#dl-result-auth')]);
    assert.equal(dl.suggestedFilename(), 'net.h5');
    const saved = path.join(dir, 'net.h5');
    await dl.saveAs(saved);
    assert.equal(sha256File(saved), job.result.sha256);
    await page.waitForSelector(`#jobs-table tr[data-job="${jobId}"]`);

    // The token stops working (SIGHUP reloads the file): the next call asks again.
    fs.writeFileSync(tokens, 'another-token\n');
    locked.proc.kill('SIGHUP');
    let refused = false;
    for (let i = 0; i < 50 && !refused; i++) {
      await sleep(100);
      const r = await fetch(`${locked.url}/v1/jobs`, { headers: { Authorization: 'Bearer web-test-token-7f3a' } });
      refused = r.status === 401;
    }
    assert.ok(refused, 'SIGHUP did not reload the tokens file');
    await page.click('#jobs-refresh');
    await waitText(page, '#auth-msg .title', 'Token refused');
    assert.equal(await visible(page, '#auth'), true);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('weightbridge.token')), null);
    assert.deepEqual(unexpected(b.errors, [401]), []);
  } finally {
    await b.close();
    await locked.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
