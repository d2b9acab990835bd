// The phoenix.js 1.8 `authToken` option (docs/protocol.md §1.5): over WebSocket
// it rides in Sec-WebSocket-Protocol ("phoenix, base64url.bearer.phx.<std
// base64>") and the 101 must select "phoenix"; over LongPoll it is the
// X-Phoenix-AuthToken header of the GETs. Tokens never reach the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  startServer, signToken, phxSocket, connect, join, push, closeSocket, upgradeStatus,
} from './lib/server.mjs';
import { httpRequest, upgradeRequest } from './lib/raw.mjs';
import { lpSocket, lpGet, LpSession, waitFor } from './lib/longpoll.mjs';

let server;
const sockets = [];
const minted = new Set(); // every token this file hands to phxd
const sessionTokens = new Set(); // LongPoll session tokens phxd minted

before(async () => { server = await startServer(['--log-level', 'debug']); });

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  if (server) await server.stop();
});

const now = () => Math.floor(Date.now() / 1000);

function mint(data, opts) {
  const t = signToken(data, opts);
  minted.add(t);
  return t;
}

function tamper(token) {
  const parts = token.split('.');
  parts[2] = (parts[2][0] === 'A' ? 'B' : 'A') + parts[2].slice(1);
  const t = parts.join('.');
  minted.add(t);
  return t;
}

const bearer = (token) => `base64url.bearer.phx.${Buffer.from(token).toString('base64').replace(/=/g, '')}`;

// A `ws` WebSocket that remembers what it offered and the 101's headers.
class RecordingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    RecordingWebSocket.instances.push(this);
    this.offered = protocols;
    this.requestUrl = url;
    this.on('upgrade', (res) => { this.upgradeHeaders = res.headers; });
  }
}
RecordingWebSocket.instances = [];

// Records the method, URL and headers of every fetch phoenix.js makes.
async function withRecordedFetch(fn) {
  const original = globalThis.fetch;
  const calls = [];
  globalThis.fetch = (url, opts = {}) => {
    calls.push({ url: String(url), method: opts.method, headers: { ...(opts.headers || {}) } });
    return original(url, opts);
  };
  try {
    return await fn(calls);
  } finally {
    globalThis.fetch = original;
  }
}

test('phoenix.js authToken over WebSocket: the 101 selects Sec-WebSocket-Protocol phoenix; the token identifies the user', async () => {
  const token = mint(42);
  const s = phxSocket(server, {}, { authToken: token, transport: RecordingWebSocket });
  sockets.push(s);
  await connect(s);
  const ws = RecordingWebSocket.instances.at(-1);
  assert.deepEqual(ws.offered, ['phoenix', bearer(token)]);
  assert.equal(ws.upgradeHeaders['sec-websocket-protocol'], 'phoenix');
  assert.equal(ws.protocol, 'phoenix');
  assert.ok(!ws.requestUrl.includes(token), 'the token is not in the URL');
  assert.deepEqual(await join(s.channel('user:42')), {});
  const other = s.channel('user:43');
  await assert.rejects(join(other), (e) => { assert.deepEqual(e.reply, { reason: 'unauthorized' }); return true; });
  other.rejoinTimer.reset();
});

test('phoenix.js authToken over LongPoll: GETs carry X-Phoenix-AuthToken, the session belongs to the user', async () => {
  const token = mint(42);
  await withRecordedFetch(async (calls) => {
    const s = lpSocket(server, {}, { authToken: token });
    sockets.push(s);
    await connect(s);
    sessionTokens.add(s.conn.token);
    const ch = s.channel('user:42');
    assert.deepEqual(await join(ch), {});
    assert.deepEqual(await push(ch, 'ping', { a: 1 }), { status: 'ok', response: { a: 1 } });
    const other = s.channel('user:43');
    await assert.rejects(join(other), (e) => { assert.deepEqual(e.reply, { reason: 'unauthorized' }); return true; });
    other.rejoinTimer.reset();
    const gets = calls.filter((c) => c.method === 'GET');
    const posts = calls.filter((c) => c.method === 'POST');
    assert.ok(gets.length >= 2 && posts.length >= 1);
    for (const g of gets) assert.equal(g.headers['X-Phoenix-AuthToken'], token);
    for (const p of posts) assert.equal(p.headers['X-Phoenix-AuthToken'], undefined);
    assert.ok(calls.every((c) => !c.url.includes(token)), 'the user token is not in any URL');
    assert.match(gets[0].url, /\/socket\/longpoll\?vsn=2\.0\.0&$/);
  });
});

test('raw LongPoll: X-Phoenix-AuthToken is read when a session is created; an invalid one gets {"status":403}', async () => {
  const token = mint(7);
  const s = new LpSession(server, 'vsn=2.0.0', { headers: { 'x-phoenix-authtoken': token } });
  await s.open();
  sessionTokens.add(s.token);
  // Later requests need no auth token: the session is bound to user 7.
  const plain = new LpSession(server, 'vsn=2.0.0');
  plain.token = s.token;
  assert.equal((await plain.post(['["1","1","user:7","phx_join",{}]'])).text, '{"status":200}');
  assert.deepEqual(await plain.untilRef('1'), [['1', '1', 'user:7', 'phx_reply', { response: {}, status: 'ok' }]]);
  for (const bad of [tamper(token), 'garbage', mint(7, { salt: 'other salt' }), mint(7, { signedAt: now() - 3 * 86400 })]) {
    minted.add(bad);
    const res = await lpGet(server, 'vsn=2.0.0&', { headers: { 'x-phoenix-authtoken': bad } });
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"status":403}', bad);
  }
  // Without any token: refused.
  assert.equal((await lpGet(server, 'vsn=2.0.0&')).text, '{"status":403}');
});

test('an invalid authToken is refused on both transports', async () => {
  const bad = [tamper(mint(42)), 'garbage', mint(42, { signedAt: now() - 3 * 86400 }), mint(42, { salt: 'other salt' })];
  for (const token of bad) {
    minted.add(token);
    const ws = phxSocket(server, {}, { authToken: token });
    let opened = false;
    ws.onOpen(() => { opened = true; });
    try {
      await assert.rejects(connect(ws), /socket error/);
      assert.equal(opened, false);
    } finally {
      await closeSocket(ws);
    }
    const lp = lpSocket(server, {}, { authToken: token });
    const errors = [];
    lp.onError((e) => errors.push(e));
    lp.onOpen(() => { opened = true; });
    lp.connect();
    try {
      await waitFor(() => errors.length > 0, 5000, 'LongPoll refusal');
      assert.equal(errors[0], 403);
      assert.equal(opened, false);
    } finally {
      await closeSocket(lp);
    }
  }
  // The raw upgrade is a plain 403.
  const res = await httpRequest(server.port, upgradeRequest(server.port, 'vsn=2.0.0', {
    extraHeaders: `Sec-WebSocket-Protocol: phoenix, ${bearer(tamper(mint(42)))}\r\n`,
  }));
  res.destroy();
  assert.equal(res.status, 403);
  assert.equal(res.body.length, 0);
  assert.equal(res.headers['sec-websocket-protocol'], undefined);
});

test('a client offering subprotocols without phoenix gets 403; phoenix among others is selected', async () => {
  const q = `token=${encodeURIComponent(mint(42))}&vsn=2.0.0`;
  const refused = ['chat', 'mqtt, v2.stomp', `chat, ${bearer(mint(42))}`, bearer(mint(42)), 'Phoenix'];
  for (const offered of refused) {
    assert.equal(await upgradeStatus(server.port, q, `Sec-WebSocket-Protocol: ${offered}\r\n`), 403, offered);
  }
  // A `ws` client offering only "chat" sees the 403.
  const status = await new Promise((resolve) => {
    const ws = new WebSocket(`${server.socketUrl}/websocket?${q}`, ['chat']);
    ws.on('unexpected-response', (req, res) => { res.resume(); ws.terminate(); resolve(res.statusCode); });
    ws.on('open', () => { ws.terminate(); resolve(101); });
    ws.on('error', () => {});
  });
  assert.equal(status, 403);
  for (const offered of ['chat, phoenix', 'phoenix,chat', ` phoenix , ${bearer(mint(42))}`]) {
    const res = await httpRequest(server.port, upgradeRequest(server.port, q, { extraHeaders: `Sec-WebSocket-Protocol: ${offered}\r\n` }));
    res.destroy();
    assert.equal(res.status, 101, offered);
    assert.equal(res.headers['sec-websocket-protocol'], 'phoenix', offered);
  }
});

async function refusals() {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  const out = {};
  for (const m of text.matchAll(/^phxd_connects_refused_total\{reason="([a-z_]+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

// A Phoenix.Token is made of A-Z a-z 0-9 - _ and '.', so its base64 never
// holds + / - or _ and both alphabets write it alike (the phoenix.js test
// above). Other auth tokens can: "ab~cd?" is YWJ+Y2Q/ in btoa's alphabet
// and YWJ-Y2Q_ in base64url. Either reaches the connect step, which
// refuses it as an invalid token (counted token_invalid, not as an
// undecodable entry).
test('authToken entries in either base64 alphabet reach the connect step: + / (btoa) and - _ (base64url), padded or not', async () => {
  const text = 'ab~cd?';
  assert.equal(Buffer.from(text).toString('base64'), 'YWJ+Y2Q/');
  assert.equal(Buffer.from(text).toString('base64url'), 'YWJ-Y2Q_');
  for (const entry of ['YWJ+Y2Q/', 'YWJ-Y2Q_', 'YWJ+Y2Q', 'YWJ-Y2Q', 'YWJ-Yw==', 'YWJ-Yw']) {
    const before = await refusals();
    const st = await upgradeStatus(server.port, 'vsn=2.0.0', `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.${entry}\r\n`);
    assert.equal(st, 403, entry);
    const after = await refusals();
    assert.equal(after.token_invalid - before.token_invalid, 1, `${entry}: counted as an invalid token`);
    assert.equal(after.origin, before.origin, entry);
  }
  // A real token written in base64url with '=' padding (what a client
  // following the prefix's name may send) is accepted: 101.
  const token = mint(42);
  const padded = Buffer.from(token).toString('base64url').padEnd(Math.ceil(token.length / 3) * 4, '=');
  assert.equal(await upgradeStatus(server.port, 'vsn=2.0.0', `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.${padded}\r\n`), 101);
});

test('a bearer entry in neither base64 alphabet is refused (Phoenix fails the request)', async () => {
  const token = mint(42);
  const cases = [
    `phoenix, base64url.bearer.phx.${Buffer.from(token).toString('base64url')}~`,
    'phoenix, base64url.bearer.phx.!!!!',
    // The two alphabets mixed in one entry.
    'phoenix, base64url.bearer.phx.YWJ+Y2Q_',
    'phoenix, base64url.bearer.phx.YWJ-Y2Q/',
  ];
  for (const header of cases) {
    const st = await upgradeStatus(server.port, 'vsn=2.0.0', `Sec-WebSocket-Protocol: ${header}\r\n`);
    assert.ok(st === 403 || st === 500, `${header}: ${st}`);
  }
});

test('no token (user, authToken or LongPoll session) appears in the server log at --log-level debug (info lines included)', async () => {
  // Some traffic with query tokens, so every path has logged something.
  const q = mint(5);
  const s = phxSocket(server, { token: q });
  await connect(s);
  await join(s.channel('room:log'));
  await closeSocket(s);
  const lp = lpSocket(server, { token: q });
  await connect(lp);
  sessionTokens.add(lp.conn.token);
  await join(lp.channel('room:log'));
  await closeSocket(lp);
  const log = server.stderr() + server.stdout();
  assert.match(log, /debug .*event=ws_upgrade/, 'debug logging is on');
  // The info lines of a socket's life are there too, for both transports.
  assert.match(log, /info event=connect socket_id=\S+ user_id=\S+ transport=longpoll /);
  assert.match(log, /info event=connect socket_id=\S+ user_id=\S+ transport=websocket /);
  assert.match(log, /info event=connect_refused reason=\w+ /);
  assert.match(log, /info event=join socket_id=\S+ topic=room:log/);
  assert.match(log, /info event=close socket_id=\S+ transport=websocket /);
  assert.ok(minted.size >= 10 && sessionTokens.size >= 3);
  for (const t of [...minted, ...sessionTokens]) {
    const forms = [t, encodeURIComponent(t), Buffer.from(t).toString('base64').replace(/=/g, '')];
    // The signature part alone is the secret-bearing bit.
    const sig = t.split('.')[2];
    if (sig && sig.length >= 20) forms.push(sig);
    for (const f of forms) assert.ok(!log.includes(f), `the log contains ${f}`);
  }
});
