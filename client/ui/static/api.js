// The InventoryService over the Connect protocol with JSON, as the server's
// bridge (vanguard) serves it: the same API gRPC clients and grpcurl use.
const SERVICE = '/kubeatlas.v1.InventoryService/';
const TOKEN_KEY = 'kubeatlas-token';

// AuthError: the server wants a client certificate or a bearer token.
export class AuthError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

// APIError: any other failed call, with its Connect code.
export class APIError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

// setToken keeps a bearer token for this tab only (sessionStorage).
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(contentType, extra) {
  const h = { 'Content-Type': contentType, 'Connect-Protocol-Version': '1', ...extra };
  const t = token();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

function toError(code, message) {
  if (code === 'unauthenticated' || code === 'permission_denied') return new AuthError(code, message);
  return new APIError(code || 'unknown', message || 'the call failed');
}

async function errorOf(resp) {
  let code = '', message = resp.status + ' ' + resp.statusText;
  try {
    const e = await resp.json();
    code = e.code || ''; message = e.message || message;
  } catch (_) { /* not a Connect error body */ }
  if (!code && resp.status === 401) code = 'unauthenticated';
  return toError(code, message);
}

// call makes one unary call; the browser negotiates gzip for the response.
export async function call(method, req, signal) {
  const resp = await fetch(SERVICE + method, {
    method: 'POST', headers: headers('application/json'), body: JSON.stringify(req || {}), signal,
  });
  if (!resp.ok) throw await errorOf(resp);
  return resp.json();
}

// listAll pages through a List method and returns every row of field.
export async function listAll(method, req, field, signal, limit = 100000) {
  const out = [];
  let pageToken = '';
  do {
    const resp = await call(method, { ...req, pageSize: 1000, pageToken }, signal);
    out.push(...(resp[field] || []));
    pageToken = resp.nextPageToken || '';
  } while (pageToken && out.length < limit);
  return out;
}

function concat(a, b) {
  if (a.length === 0) return b;
  const c = new Uint8Array(a.length + b.length);
  c.set(a); c.set(b, a.length);
  return c;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// stream makes one server-streaming call and hands each message to onMessage.
// Messages are enveloped (a flag byte and a 4-byte length) and gzipped one by
// one when the server agrees; the last envelope carries the status.
export async function stream(method, req, onMessage, signal) {
  const body = new TextEncoder().encode(JSON.stringify(req || {}));
  const env = new Uint8Array(5 + body.length);
  new DataView(env.buffer).setUint32(1, body.length);
  env.set(body, 5);
  const resp = await fetch(SERVICE + method, {
    method: 'POST', body: env, signal,
    headers: headers('application/connect+json', { 'Connect-Accept-Encoding': 'gzip' }),
  });
  if (!resp.ok) throw await errorOf(resp);
  const reader = resp.body.getReader();
  const text = new TextDecoder();
  let buf = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new APIError('unavailable', 'the stream ended without a status');
    buf = concat(buf, value);
    while (buf.length >= 5) {
      const len = new DataView(buf.buffer, buf.byteOffset + 1, 4).getUint32(0);
      if (buf.length < 5 + len) break;
      const flags = buf[0];
      let msg = buf.slice(5, 5 + len);
      buf = buf.slice(5 + len);
      if (flags & 1) msg = await gunzip(msg);
      const obj = JSON.parse(text.decode(msg));
      if (flags & 2) {
        if (obj.error) throw toError(obj.error.code, obj.error.message);
        return;
      }
      onMessage(obj);
    }
  }
}

// Watcher follows InventoryService.Watch: the current state as ADDED events,
// SYNCED, then every change. It reconnects with backoff, resuming after the
// last index it saw; when the server cannot resume it sends RESYNC and the
// state again. onEvent(type, event) sees every event, batches unrolled;
// onStatus(state) sees 'live', 'connecting' and 'offline'.
export class Watcher {
  constructor(req, onEvent, onStatus) {
    this.req = req; this.onEvent = onEvent; this.onStatus = onStatus || (() => {});
    this.ctl = new AbortController(); this.index = '0';
  }

  start() { this.loop(); return this; }

  stop() { this.ctl.abort(); }

  async loop() {
    let delay = 500;
    while (!this.ctl.signal.aborted) {
      this.onStatus('connecting');
      try {
        await stream('Watch', { ...this.req, resumeIndex: this.index }, (m) => {
          const events = m.batch && m.batch.length ? m.batch : [m];
          for (const e of events) {
            if (e.index && e.index !== '0') this.index = e.index;
            if (e.type === 'WATCH_EVENT_TYPE_SYNCED' || e.type === 'WATCH_EVENT_TYPE_RESUMED') {
              delay = 500;
              this.onStatus('live');
            }
            this.onEvent(e.type, e);
          }
        }, this.ctl.signal);
      } catch (err) {
        if (this.ctl.signal.aborted) return;
        if (err instanceof AuthError) { this.onStatus('offline'); this.onEvent('ERROR', err); return; }
      }
      if (this.ctl.signal.aborted) return;
      this.onStatus('offline');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30000);
    }
  }
}
