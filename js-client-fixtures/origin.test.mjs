// check_origin (docs/protocol.md §1.6) on both transports:
// a refused Origin gets HTTP 403 on the WebSocket upgrade and HTTP 200
// {"status":403} on every LongPoll request (GET, POST, OPTIONS). No Origin
// is always allowed; `Origin: null` never is (except with false).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  startServer, signToken, phxSocket, connect, join, push, closeSocket, upgradeStatus,
} from './lib/server.mjs';
import { httpRequest } from './lib/raw.mjs';
import { lpGet, lpPost, lpRequest, lpSocket, waitFor } from './lib/longpoll.mjs';

const LIST1 = 'https://app.example.com,//*.example.com';
const LIST2 = 'https://app.example.com,//api.example.net:8888';
const servers = {};
const sockets = [];
let token;
let q;

before(async () => {
  const entries = await Promise.all(Object.entries({
    def: [],
    off: ['--check-origin', 'false'],
    list1: ['--check-origin', LIST1],
    list2: ['--check-origin', LIST2],
    conn: ['--check-origin', 'conn'],
    urlhost: ['--url-host', 'example.com'],
  }).map(async ([name, args]) => [name, await startServer(args)]));
  Object.assign(servers, Object.fromEntries(entries));
  token = signToken(42);
  q = `token=${encodeURIComponent(token)}&vsn=2.0.0`;
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(Object.values(servers).map((s) => s.stop()));
});

// `origins`: null (no header), a string, or an array (several headers).
function originHeaders(origins) {
  if (origins === null) return '';
  return [].concat(origins).map((o) => `Origin: ${o}\r\n`).join('');
}

async function rawLp(srv, method, query, extra, body = '') {
  const res = await httpRequest(srv.port, `${method} /socket/longpoll?${query} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n${extra}` +
    `${method === 'POST' ? `Content-Type: application/x-ndjson\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`);
  res.destroy();
  return res;
}

// What each transport answers for `origins`, as short strings.
async function outcomes(srv, origins) {
  const h = originHeaders(origins);
  const ws = await upgradeStatus(srv.port, q, h);
  const get = await rawLp(srv, 'GET', `${q}&`, h);
  const post = await rawLp(srv, 'POST', `${q}&token=nosession`, h, '[null,"1","phoenix","heartbeat",{}]');
  const opt = await rawLp(srv, 'OPTIONS', q, `${h}Access-Control-Request-Headers: content-type\r\n`);
  const lpBody = (r) => `${r.status} ${r.body.toString()}`;
  return {
    ws,
    get: get.status === 200 && get.body.length ? JSON.parse(get.body).status : lpBody(get),
    post: post.status === 200 && post.body.length ? JSON.parse(post.body).status : lpBody(post),
    options: opt.status === 200 && opt.body.length === 0 && opt.headers['access-control-allow-methods'] === 'get, post, options'
      ? 'preflight' : lpBody(opt),
    optionsRefusedShape: opt.status === 200 && opt.body.toString() === '{"status":403}'
      && opt.headers['content-type'] === 'application/json; charset=utf-8' && opt.headers['access-control-allow-origin'] === '*',
  };
}

const ALLOWED = { ws: 101, get: 410, post: 410, options: 'preflight' };
const REFUSED = { ws: 403, get: 403, post: 403, options: '200 {"status":403}' };

async function assertMatrix(srv, allowed, refused) {
  for (const o of allowed) {
    const r = await outcomes(srv, o);
    assert.deepEqual({ ws: r.ws, get: r.get, post: r.post, options: r.options }, ALLOWED, `Origin ${JSON.stringify(o)} must be allowed`);
  }
  for (const o of refused) {
    const r = await outcomes(srv, o);
    assert.deepEqual({ ws: r.ws, get: r.get, post: r.post, options: r.options }, REFUSED, `Origin ${JSON.stringify(o)} must be refused`);
    assert.equal(r.optionsRefusedShape, true, `${o}: refused OPTIONS is HTTP 200 JSON {"status":403}`);
  }
}

test('a refused Origin: WebSocket 403 with an empty body; LongPoll HTTP 200 JSON {"status":403} with CORS headers', async () => {
  const srv = servers.def;
  const res = await httpRequest(srv.port, `GET /socket/websocket?${q} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n` +
    'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://evil.com\r\n\r\n');
  res.destroy();
  assert.equal(res.status, 403);
  assert.equal(res.body.length, 0);
  for (const method of ['GET', 'POST', 'OPTIONS']) {
    const r = await lpRequest(srv, method, `${q}&`, {
      headers: { origin: 'http://evil.com' },
      ...(method === 'POST' ? { body: '[null,"1","phoenix","heartbeat",{}]', contentType: 'application/x-ndjson' } : {}),
    });
    assert.equal(r.status, 200, method);
    assert.equal(r.text, '{"status":403}', method);
    assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8', method);
    assert.equal(r.headers.get('access-control-allow-origin'), '*', method);
  }
});

test('default policy (true, no --url-host): the Origin host must equal the Host header; scheme and port are not compared', async () => {
  const srv = servers.def;
  const p = srv.port;
  await assertMatrix(srv,
    [null, `http://127.0.0.1:${p}`, 'https://127.0.0.1', `http://127.0.0.1:${p + 1}`, `HTTP://127.0.0.1:${p}`, `ws://127.0.0.1:${p}`],
    ['http://evil.com', 'null', `http://localhost:${p}`, 'http://127.0.0.1.evil.com', `http://127.0.0.2:${p}`, 'file://', 'garbage']);
});

test('--url-host example.com: the Origin host must be example.com, the Host header no longer counts', async () => {
  const srv = servers.urlhost;
  await assertMatrix(srv,
    [null, 'https://example.com', 'http://example.com:8080', 'ws://example.com'],
    [`http://127.0.0.1:${srv.port}`, 'https://sub.example.com', 'https://example.com.evil.com', 'https://evilexample.com',
      'https://example.com@evil.com', 'null', 'https://EXAMPLE.COM']);
});

test(`--check-origin ${LIST1}: exact entry, wildcard subdomains and apex, lookalikes refused`, async () => {
  await assertMatrix(servers.list1,
    [null, 'https://app.example.com', 'https://app.example.com:443', 'HTTPS://app.example.com', 'https://example.com',
      'http://x.y.example.com:1234', 'wss://deep.sub.example.com',
      // //*.example.com allows any scheme and port, so this one passes through the wildcard.
      'https://app.example.com:8443'],
    ['https://example.com.evil.com', 'https://evilexample.com', 'https://example.com@evil.com', 'https://evil.com',
      'null', `http://127.0.0.1:${servers.list1.port}`, 'https://example.org', 'https://APP.EXAMPLE.COM', 'https://.example.com.evil']);
});

test(`--check-origin ${LIST2}: a scheme without a port pins the default port; scheme mismatch refused`, async () => {
  await assertMatrix(servers.list2,
    [null, 'https://app.example.com', 'https://app.example.com:443', 'http://api.example.net:8888', 'https://api.example.net:8888'],
    ['https://app.example.com:8443', 'http://app.example.com', 'http://app.example.com:443', 'wss://app.example.com',
      'http://api.example.net', 'https://api.example.net:8889', 'https://x.app.example.com', 'https://example.com', 'null']);
});

test('--check-origin conn: the Origin must equal the request\'s own scheme, host and port', async () => {
  const p = servers.conn.port;
  await assertMatrix(servers.conn,
    [null, `http://127.0.0.1:${p}`],
    [`https://127.0.0.1:${p}`, `ws://127.0.0.1:${p}`, `http://127.0.0.1:${p + 1}`, 'http://127.0.0.1', `http://localhost:${p}`, 'null']);
});

test('--check-origin false: every Origin is allowed, even null', async () => {
  await assertMatrix(servers.off, [null, 'http://evil.com', 'null', 'garbage', 'https://example.com@evil.com'], []);
});

test('duplicate Origin headers are refused on both transports, even when each one is allowed', async () => {
  for (const [name, dup] of [
    ['def', ['http://evil.com', `http://127.0.0.1:${servers.def.port}`]],
    ['def', [`http://127.0.0.1:${servers.def.port}`, `http://127.0.0.1:${servers.def.port}`]],
    ['list1', ['https://app.example.com', 'https://app.example.com']],
    ['conn', [`http://127.0.0.1:${servers.conn.port}`, 'http://evil.com']],
  ]) {
    const r = await outcomes(servers[name], dup);
    assert.deepEqual({ ws: r.ws, get: r.get, post: r.post, options: r.options }, REFUSED, `${name} ${dup}`);
  }
});

test('--check-origin false ignores the Origin header entirely, duplicates included (Phoenix never reads it)', async () => {
  const r = await outcomes(servers.off, ['http://evil.com', 'http://other.com']);
  assert.deepEqual({ ws: r.ws, get: r.get, post: r.post, options: r.options }, ALLOWED);
});

// phoenix.js over `ws` with a browser-like Origin header.
function wsWithOrigin(origin) {
  return class extends WebSocket {
    constructor(url, protocols) { super(url, protocols, { origin }); }
  };
}

test('phoenix.js over WebSocket: an allowed Origin connects, a foreign one errors and never opens', async () => {
  const srv = servers.list1;
  const good = phxSocket(srv, { token }, { transport: wsWithOrigin('https://app.example.com') });
  sockets.push(good);
  await connect(good);
  assert.deepEqual(await join(good.channel('room:origin')), {});
  const bad = phxSocket(srv, { token }, { transport: wsWithOrigin('https://evil.com') });
  let opened = false;
  bad.onOpen(() => { opened = true; });
  try {
    await assert.rejects(connect(bad), /socket error/);
    assert.equal(opened, false);
  } finally {
    await closeSocket(bad);
  }
});

test('phoenix.js over LongPoll: an allowed Origin connects and chats, a foreign one gets 403 (close 1008)', async () => {
  const srv = servers.list1;
  const original = globalThis.fetch;
  let origin = 'https://app.example.com';
  // What a browser adds to its cross-origin LongPoll requests.
  globalThis.fetch = (url, opts = {}) => original(url, { ...opts, headers: { ...(opts.headers || {}), Origin: origin } });
  try {
    const good = lpSocket(srv, { token });
    sockets.push(good);
    await connect(good);
    const ch = good.channel('room:origin-lp');
    assert.deepEqual(await join(ch), {});
    assert.deepEqual(await push(ch, 'ping', { o: 1 }), { status: 'ok', response: { o: 1 } });
    await closeSocket(good);

    origin = 'https://evil.com';
    const bad = lpSocket(srv, { token });
    const errors = [];
    const closes = [];
    bad.onError((e) => errors.push(e));
    bad.onClose((e) => closes.push(e.code));
    bad.connect();
    try {
      await waitFor(() => closes.length > 0, 5000, 'refused LongPoll');
      assert.deepEqual(errors, [403]);
      assert.deepEqual(closes, [1008]);
      assert.equal(bad.isConnected(), false);
    } finally {
      await closeSocket(bad);
    }
  } finally {
    globalThis.fetch = original;
  }
});

test('an unparsable --check-origin value stops phxd at startup', async () => {
  for (const spec of ['null', 'example.com', '', 'https://']) {
    await assert.rejects(startServer(['--check-origin', spec], { timeoutMs: 5000 }), /exited|did not start/, JSON.stringify(spec));
  }
});

test('LongPoll checks the Origin before the session: a foreign Origin cannot use a live session token', async () => {
  const srv = servers.def;
  const open = await lpGet(srv, `${q}&`);
  assert.equal(open.json.status, 410);
  const sq = `${q}&token=${encodeURIComponent(open.json.token)}`;
  const post = await lpPost(srv, sq, '["1","1","room:o","phx_join",{}]', { headers: { origin: 'http://evil.com' } });
  assert.equal(post.text, '{"status":403}');
  const get = await lpGet(srv, sq, { headers: { origin: 'http://evil.com' } });
  assert.equal(get.text, '{"status":403}');
  // The same session from its own origin works.
  const ok = await lpPost(srv, sq, '["1","1","room:o","phx_join",{}]', { headers: { origin: `http://127.0.0.1:${srv.port}` } });
  assert.equal(ok.text, '{"status":200}');
});
