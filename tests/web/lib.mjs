// Helpers for the browser test: the real weightbridged on loopback, a
// headless Chromium with a fresh profile, the exported PyTorch models, and
// screenshots.  Daemons listen on 127.0.0.1 with an ephemeral port (read
// from --port-file) and are stopped by the PID this process started.

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DAEMON = process.env.WB_DAEMON || path.join(ROOT, 'build', 'weightbridged');
export const SHOTS = process.env.WB_SCREENSHOTS || path.join(ROOT, 'build', 'web-screenshots');
const CHROMIUM = process.env.WB_CHROMIUM || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tmpdir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `wb-web-${prefix}-`));
}

export function sha256File(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

// The models, exported by the test venv's PyTorch (scripts/venv.sh).
export function makeModels(dir) {
  let python = process.env.WB_PYTHON;
  if (!python) {
    const venv = execFileSync('sh', ['scripts/venv.sh'], { cwd: ROOT, encoding: 'utf8' }).trim();
    python = path.join(venv, 'bin', 'python');
  }
  execFileSync(python, [path.join(ROOT, 'tests', 'web', 'make_model.py'), dir],
    { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120000 });
  return { net: path.join(dir, 'net.npz'), tiny: path.join(dir, 'tiny.npz') };
}

export class Daemon {
  constructor(args = []) {
    this.dir = tmpdir('daemon');
    this.args = args;
    this.proc = null;
    this.port = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const portFile = path.join(this.dir, 'port');
    const log = fs.openSync(path.join(this.dir, 'log'), 'a');
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    delete env.JOURNAL_STREAM;
    this.proc = spawn(DAEMON, ['--listen', '127.0.0.1:0', '--spool', path.join(this.dir, 'spool'),
      '--port-file', portFile, ...this.args], { stdio: ['ignore', log, log], env });
    fs.closeSync(log);
    let exited = null;
    this.proc.on('exit', (code, sig) => { exited = `${code ?? sig}`; });
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (exited !== null) throw new Error(`weightbridged exited (${exited}):\n${this.logText()}`);
      const text = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8').trim() : '';
      if (text) {
        this.port = Number(text);
        break;
      }
      await sleep(20);
    }
    if (!this.port) throw new Error('weightbridged wrote no port file');
    while (Date.now() < deadline) {
      try {
        if ((await fetch(`${this.url}/readyz`)).status === 200) return this;
      } catch {
        // not accepting yet
      }
      await sleep(20);
    }
    throw new Error('weightbridged never became ready');
  }

  logText() {
    try {
      return fs.readFileSync(path.join(this.dir, 'log'), 'utf8');
    } catch {
      return '';
    }
  }

  async json(p, headers = {}) {
    const r = await fetch(this.url + p, { headers });
    if (!r.ok) throw new Error(`GET ${p}: ${r.status} ${await r.text()}`);
    return r.json();
  }

  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const done = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 15000);
    await done;
    clearTimeout(t);
  }
}

// A fresh headless Chromium: its own profile directory, nothing from the
// network but our daemon.
export async function launch(opts = {}) {
  const profile = tmpdir('profile');
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: opts.viewport || { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(20000);
  // Every console error and uncaught exception, for the tests to assert on.
  const errors = [];
  const watch = (pg) => {
    pg.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    pg.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  };
  watch(page);
  ctx.on('page', watch);
  return {
    ctx,
    page,
    errors,
    async close() {
      await ctx.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

// Wait until the element's text contains want (a string or RegExp).
export async function waitText(page, selector, want, timeout = 20000) {
  const src = want instanceof RegExp ? { re: want.source, flags: want.flags } : { s: want };
  try {
    await page.waitForFunction(([sel, w]) => {
      const el = document.querySelector(sel);
      if (!el) return false;
      const t = el.textContent;
      return w.re !== undefined ? new RegExp(w.re, w.flags).test(t) : t.includes(w.s);
    }, [selector, src], { timeout });
  } catch (e) {
    const now = await page.$eval(selector, (el) => el.textContent).catch(() => '(no element)');
    throw new Error(`${selector} never showed ${want}; it shows: ${now}`);
  }
}

export async function visible(page, selector) {
  return page.$eval(selector, (el) => !el.closest('[hidden]') && el.getClientRects().length > 0);
}
