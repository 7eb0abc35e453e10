// Talking to weightbridged: requests, problem+json errors, the bearer token.
//
// Every call goes through request(), an XMLHttpRequest because only XHR
// reports upload progress.  URLs are relative ("v1/jobs") so the page also
// works behind a proxy that serves the daemon under a path prefix.  Errors
// become ApiError with a title and a detail for people: the problem's own
// when the daemon sent problem+json, a sentence of ours otherwise.

const TOKEN_KEY = 'weightbridge.token';

export class ApiError extends Error {
  constructor(status, title, detail, problem = null) {
    super(`${title}: ${detail}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
  }
}

// Called with the ApiError when the daemon answers 401.
let onUnauthorized = null;

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage can be disabled; the token then lasts until the next 401.
  }
}

async function bodyText(x) {
  if (x.responseType === 'blob' && x.response instanceof Blob) return x.response.text();
  if (x.responseType === '' || x.responseType === 'text') return x.responseText;
  return '';
}

const STATUS_TEXT = {
  400: 'Bad request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not found',
  409: 'Conflict', 413: 'Upload too large', 415: 'Unsupported media type', 422: 'Unprocessable',
  429: 'Too many requests', 500: 'Server error', 502: 'Bad gateway', 503: 'Service unavailable',
  504: 'Gateway timeout',
};

async function toError(x) {
  const text = await bodyText(x);
  const ctype = x.getResponseHeader('Content-Type') || '';
  if (/json/.test(ctype)) {
    try {
      const p = JSON.parse(text);
      if (p && typeof p.title === 'string') {
        return new ApiError(x.status, p.title, typeof p.detail === 'string' ? p.detail : '', p);
      }
    } catch {
      // Not JSON after all: fall through to the generic message.
    }
  }
  const title = STATUS_TEXT[x.status] || `HTTP ${x.status}`;
  return new ApiError(x.status, title,
    `The server answered ${x.status}${x.statusText ? ` ${x.statusText}` : ''} without an explanation.`);
}

// opts: body, headers, responseType ('text' or 'blob'), onUpload(loaded, total).
// Resolves with the finished XMLHttpRequest for 2xx and 304.
export function request(method, url, opts = {}) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    x.responseType = opts.responseType || 'text';
    const token = getToken();
    if (token) x.setRequestHeader('Authorization', `Bearer ${token}`);
    for (const [k, v] of Object.entries(opts.headers || {})) x.setRequestHeader(k, v);
    if (opts.onUpload) {
      x.upload.addEventListener('progress', (e) => opts.onUpload(e.loaded, e.lengthComputable ? e.total : 0));
    }
    x.addEventListener('load', async () => {
      if ((x.status >= 200 && x.status < 300) || x.status === 304) {
        resolve(x);
        return;
      }
      const err = await toError(x);
      if (err.status === 401 && onUnauthorized) onUnauthorized(err);
      reject(err);
    });
    x.addEventListener('error', () => reject(new ApiError(0, 'No answer from the server',
      'The connection failed before an answer came back. The daemon may be down, or it closed the ' +
      'connection (it does so when it refuses an upload before reading it).')));
    x.addEventListener('abort', () => reject(new ApiError(0, 'Cancelled', 'The request was cancelled.')));
    x.send(opts.body ?? null);
  });
}

export async function getJson(url) {
  const x = await request('GET', url);
  return JSON.parse(x.responseText);
}

export async function postForm(url, form, onUpload) {
  const x = await request('POST', url, { body: form, onUpload });
  return JSON.parse(x.responseText);
}
