// Helpers for the LongPoll transport (docs/protocol.md §5), the HTTP API and
// phoenix.js over LongPoll in Node (phoenix.js uses Node's fetch there).
//
// lpRequest / lpGet / lpPost: one LongPoll request with fetch; resolves
//   { status, headers, text, json, ms } (json is null when the body is not JSON).
// LpSession: a raw session (first GET -> 410 + token, then POST lines, GET
//   polls) that decodes the `messages` strings.
// lpSocket: a phoenix.js Socket with `transport: LongPoll`.
// api: a request to phxd's HTTP API.
// waitFor: polls a condition every 20 ms until a deadline.
import { LongPoll, Socket } from 'phoenix';

export { LongPoll };

export const lpUrl = (server, query) => `${server.url}/socket/longpoll${query === undefined ? '' : `?${query}`}`;

export async function lpRequest(server, method, query, { body, headers = {}, contentType, ms = 5000 } = {}) {
  const h = { ...headers };
  if (contentType) h['content-type'] = contentType;
  const t0 = Date.now();
  const res = await fetch(lpUrl(server, query), { method, headers: h, body, signal: AbortSignal.timeout(ms) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: res.status, headers: res.headers, text, json, ms: Date.now() - t0 };
}

export const lpGet = (server, query, opts = {}) => lpRequest(server, 'GET', query, opts);

// POSTs `body` (a string, or an array of lines joined with "\n") as
// application/x-ndjson unless `contentType` says otherwise.
export function lpPost(server, query, body, opts = {}) {
  const text = Array.isArray(body) ? body.join('\n') : body;
  return lpRequest(server, 'POST', query, { contentType: 'application/x-ndjson', ...opts, body: text });
}

// A raw LongPoll session. `query` is the query without the session token
// (e.g. "token=<user token>&vsn=2.0.0"); `headers` go on every request.
export class LpSession {
  constructor(server, query, { headers = {}, tokenIn = 'query' } = {}) {
    this.server = server;
    this.baseQuery = query;
    this.headers = headers;
    this.tokenIn = tokenIn; // 'query' (phoenix.js 1.8) or 'header' (x-phoenix-longpoll-token)
    this.token = null;
  }

  // The query and headers of a request carrying the session token.
  request() {
    if (this.tokenIn === 'header') {
      return { query: this.baseQuery, headers: { ...this.headers, 'x-phoenix-longpoll-token': this.token } };
    }
    const q = this.baseQuery ? `${this.baseQuery}&token=${encodeURIComponent(this.token)}` : `token=${encodeURIComponent(this.token)}`;
    return { query: q, headers: this.headers };
  }

  // First GET, as phoenix.js sends it (a trailing '&'); resolves with the response.
  async open() {
    const res = await lpGet(this.server, `${this.baseQuery}&`, { headers: this.headers });
    if (!res.json || res.json.status !== 410) throw new Error(`LongPoll open: HTTP ${res.status} ${res.text}`);
    this.token = res.json.token;
    return res;
  }

  // One GET poll; resolves { status (body status), messages (decoded), res }.
  async poll(ms = 15000) {
    const { query, headers } = this.request();
    const res = await lpGet(this.server, query, { headers, ms });
    if (!res.json) throw new Error(`LongPoll poll: HTTP ${res.status} ${res.text}`);
    return { status: res.json.status, messages: (res.json.messages || []).map((m) => JSON.parse(m)), raw: res.json.messages, res };
  }

  // POSTs lines (or one body with another content type); resolves the response.
  post(body, opts = {}) {
    const { query, headers } = this.request();
    return lpPost(this.server, query, body, { ...opts, headers: { ...headers, ...(opts.headers || {}) } });
  }

  // Polls until `pred(messages so far)` is true; resolves the messages.
  async collect(pred, ms = 5000) {
    const got = [];
    const deadline = Date.now() + ms;
    while (!pred(got)) {
      if (Date.now() > deadline) throw new Error(`LongPoll collect timed out with ${JSON.stringify(got)}`);
      const p = await this.poll();
      if (p.status !== 200 && p.status !== 204) throw new Error(`LongPoll poll status ${p.status}`);
      got.push(...p.messages);
    }
    return got;
  }

  // Polls until a message with `ref` arrives; resolves everything seen.
  untilRef(ref, ms = 5000) {
    return this.collect((got) => got.some((m) => (Array.isArray(m) ? m[1] : m.ref) === ref), ms);
  }
}

// A phoenix.js Socket over LongPoll; reconnects slowed down like phxSocket.
export function lpSocket(server, params = {}, opts = {}) {
  return new Socket(server.socketUrl, {
    transport: LongPoll,
    params,
    reconnectAfterMs: () => 60000,
    rejoinAfterMs: () => 60000,
    longpollerTimeout: 20000,
    ...opts,
  });
}

// A request to phxd's HTTP API; resolves { status, headers, text, json }.
export async function api(server, path, body, { key, method = 'POST', headers = {} } = {}) {
  const h = { 'content-type': 'application/json', ...headers };
  if (key !== undefined) h.authorization = `Bearer ${key}`;
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: h,
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: res.status, headers: res.headers, text, json };
}

// Resolves once `cond()` (sync or async) is truthy; checks every 20 ms and
// throws after `ms`.
export async function waitFor(cond, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not met after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Kind 0 client push: 00 J R T E join_ref ref topic event payload (docs/protocol.md §2.4).
export function binaryPush(joinRef, ref, topic, event, payload) {
  const f = [joinRef, ref, topic, event].map((s) => Buffer.from(s));
  return Buffer.concat([Buffer.from([0, ...f.map((b) => b.length)]), ...f, Buffer.from(payload)]);
}

// Kind 2 server broadcast: 02 T E topic event payload.
export function binaryBroadcast(topic, event, payload) {
  const t = Buffer.from(topic);
  const e = Buffer.from(event);
  return Buffer.concat([Buffer.from([2, t.length, e.length]), t, e, Buffer.from(payload)]);
}

// Kind 1 server reply: 01 J R T S join_ref ref topic status payload.
export function binaryReply(joinRef, ref, topic, status, payload) {
  const f = [joinRef, ref, topic, status].map((s) => Buffer.from(s));
  return Buffer.concat([Buffer.from([1, ...f.map((b) => b.length)]), ...f, Buffer.from(payload)]);
}
