// Token lifetime on live sockets (--expire-sockets) and refusals a page can
// read (--refuse-mode close), driven by the official phoenix.js client. The
// client code is the README's block under <!-- token-lifetime-client -->, run
// as it is written there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { Socket, LongPoll } from 'phoenix';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, nextClose, nextOpen,
  closeSocket, upgradeStatus, withTimeout,
} from './lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowS = () => Date.now() / 1000;

let server; // --expire-sockets --expiry-warning-s 1
const sockets = [];

before(async () => {
  server = await startServer(['--expire-sockets', '--expiry-warning-s', '1',
    '--refresh-interval-s', '1', '--log-level', 'info']);
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  if (server) await server.stop();
});

async function metric(srv, name) {
  const res = await fetch(`${srv.url}/metrics`);
  const text = await res.text();
  const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// The README's client block, as an async function of (Socket, fetchToken)
// returning { socket, channel } (the block's own variables).
function readmeClient() {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const m = readme.match(/<!-- token-lifetime-client -->\n```js\n([\s\S]*?)```/);
  assert.ok(m, 'the README has the token-lifetime client block');
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
  return new AsyncFunction('Socket', 'fetchToken', `${m[1]}\nreturn { socket, channel };`);
}

// phoenix.js as a browser would run it, against `srv`, with quick retries.
function socketClassFor(srv, extra = {}) {
  return class extends Socket {
    constructor(_path, opts) {
      super(srv.socketUrl, {
        transport: WebSocket, reconnectAfterMs: () => 100, rejoinAfterMs: () => 100,
        heartbeatIntervalMs: 30000, ...extra, ...opts,
      });
      sockets.push(this);
    }
  };
}

test('a 3-second token: phx_token_expiring before, close 4001 at the expiry, then the README client reconnects with a fresh token from params() and its channel rejoins', async () => {
  const minted = [];
  let fresh = 3; // the first token lives 3 s; later ones 60 s
  const fetchToken = async () => {
    const t = signToken(21, { maxAge: fresh });
    fresh = 60;
    minted.push({ t, at: nowS() });
    return t;
  };
  const opens = [];
  const closes = [];
  const expiring = [];
  const joins = [];
  // The README block refreshes in-band on the warning; to see the expiry
  // itself this client only watches (the block runs as written in the next
  // test).
  const Sock = socketClassFor(server);
  const socket = new Sock('/socket', { params: () => ({ token: minted.at(-1).t }) });
  await fetchToken();
  socket.onOpen(() => opens.push(nowS()));
  socket.onClose((e) => {
    closes.push({ code: e.code, at: nowS() });
    if (e.code === 4001) fetchToken();
  });
  socket.connect();
  const channel = socket.channel('room:expiry', {});
  channel.on('phx_token_expiring', (p) => expiring.push({ ...p, at: nowS() }));
  channel.join().receive('ok', () => joins.push(nowS()));
  const t0 = minted[0].at;
  await withTimeout((async () => { while (joins.length < 2) await sleep(50); })(), 8000, 'rejoin');
  assert.equal(expiring.length, 1, 'one warning before the expiry');
  const expiresAt = expiring[0].expires_at;
  assert.ok(Number.isInteger(expiresAt), 'expires_at is unix seconds');
  assert.ok(Math.abs(expiresAt - (t0 + 3)) <= 1.5, `expires_at ${expiresAt} is about signed_at + 3 (${t0 + 3})`);
  assert.ok(expiring[0].at - t0 >= 1.5 && expiring[0].at - t0 <= 2.8,
    `the warning came about 1 s before the expiry (after ${(expiring[0].at - t0).toFixed(2)} s)`);
  assert.equal(closes[0].code, 4001, 'closed with 4001, never 1000');
  assert.ok(closes[0].at - t0 >= 2.7 && closes[0].at - t0 <= 4,
    `closed at the expiry (after ${(closes[0].at - t0).toFixed(2)} s)`);
  assert.equal(opens.length, 2, 'phoenix.js reconnected once');
  assert.equal(minted.length, 2, 'with the token params() gave after the close');
  // The new socket lives on the 60 s token.
  await sleep(1500);
  assert.equal(closes.length, 1);
  assert.equal(await metric(server, 'phxd_sockets_expired_total') >= 1, true);
  socket.disconnect();
});

test('the README client refreshes in-band: access_token moves the expiry, the socket outlives its first token', async () => {
  const issued = [];
  const fetchToken = async () => {
    const t = signToken(22, { maxAge: 3 });
    issued.push(t);
    return t;
  };
  const Sock = socketClassFor(server);
  const { socket, channel } = await readmeClient()(Sock, fetchToken);
  const closes = [];
  socket.onClose((e) => closes.push(e.code));
  const replies = [];
  const origPush = channel.push.bind(channel);
  channel.push = (event, payload, timeout) => {
    const p = origPush(event, payload, timeout);
    if (event === 'access_token') p.receive('ok', (r) => replies.push(r)).receive('error', (r) => replies.push(r));
    return p;
  };
  const t0 = nowS();
  // Each 3 s token is refreshed 1 s before it expires: after 7 s the socket
  // has outlived two tokens without closing.
  await sleep(7000);
  assert.deepEqual(closes, [], 'never closed');
  assert.ok(issued.length >= 3, `refreshed ${issued.length - 1} times`);
  assert.ok(replies.length >= 2 && replies.every((r) => Number.isInteger(r.expires_at)),
    `ok replies carry expires_at: ${JSON.stringify(replies)}`);
  assert.ok(replies.at(-1).expires_at >= Math.floor(t0) + 7, 'the expiry moved past the first token');
  assert.ok(await metric(server, 'phxd_token_refreshes_total') >= 2);
  socket.disconnect();
});

test('a refresh with another user\'s token, an invalid one or an expired one: error invalid token, then close 4001', async () => {
  for (const bad of [signToken(99, { maxAge: 60 }), 'not-a-token',
    signToken(23, { maxAge: 1, signedAt: Math.floor(Date.now() / 1000) - 5 })]) {
    const s = phxSocket(server, { token: signToken(23, { maxAge: 60 }) });
    sockets.push(s);
    await connect(s);
    const ch = s.channel('room:refresh-bad', {});
    await join(ch);
    const closed = nextClose(s);
    const r = await push(ch, 'access_token', { access_token: bad });
    assert.deepEqual(r, { status: 'error', response: { reason: 'invalid token' } });
    assert.equal((await closed).code, 4001);
    s.disconnect();
  }
});

test('refresh floods are limited: one access_token per socket per --refresh-interval-s is looked at', async () => {
  const s = phxSocket(server, { token: signToken(24, { maxAge: 60 }) });
  sockets.push(s);
  await connect(s);
  const ch = s.channel('room:flood', {});
  await join(ch);
  const good = signToken(24, { maxAge: 120 });
  const results = await Promise.all(Array.from({ length: 20 }, () => push(ch, 'access_token', { access_token: good })));
  const ok = results.filter((r) => r.status === 'ok');
  const limited = results.filter((r) => r.status === 'error' && r.response.reason === 'too many refreshes');
  assert.equal(ok.length, 1, 'the first is looked at');
  assert.equal(limited.length, 19, 'the rest are refused without verification');
  await sleep(1100);
  const again = await push(ch, 'access_token', { access_token: good });
  assert.equal(again.status, 'ok', 'after the interval a refresh is looked at again');
  assert.equal(s.isConnected(), true);
  s.disconnect();
});

test('without --expire-sockets nothing expires and access_token is an ordinary event', async () => {
  const plain = await startServer(['--channel', 'room:* join=any events=reply']);
  try {
    const s = phxSocket(plain, { token: signToken(25, { maxAge: 2 }) });
    sockets.push(s);
    await connect(s);
    const ch = s.channel('room:plain', {});
    await join(ch);
    const r = await push(ch, 'access_token', { access_token: 'x' });
    assert.deepEqual(r, { status: 'ok', response: { access_token: 'x' } }, 'the rule replied with the payload');
    await sleep(3000);
    assert.equal(s.isConnected(), true, 'still open past the token expiry, as in Phoenix');
    s.disconnect();
  } finally {
    await plain.stop();
  }
});

test('LongPoll: the session ends at the expiry and phoenix.js reconnects with a fresh token', async () => {
  let token = signToken(26, { maxAge: 3 });
  const s = new Socket(server.socketUrl, {
    transport: LongPoll, params: () => ({ token }), reconnectAfterMs: () => 100,
    rejoinAfterMs: () => 100, heartbeatIntervalMs: 30000,
  });
  sockets.push(s);
  const opens = [];
  s.onOpen(() => opens.push(nowS()));
  s.onError(() => { token = signToken(26, { maxAge: 60 }); });
  s.onClose(() => { token = signToken(26, { maxAge: 60 }); });
  s.connect();
  const ch = s.channel('room:lp-expiry', {});
  const warned = nextEvent(ch, 'phx_token_expiring', 5000);
  ch.join();
  const w = await warned;
  assert.ok(Number.isInteger(w.expires_at));
  // The session ends at the expiry; the client reopens with params().
  await withTimeout((async () => {
    while (!(opens.length >= 2 && ch.state === 'joined')) await sleep(50);
  })(), 10000, 'LongPoll reconnect and rejoin');
  s.disconnect();
});

test('--refuse-mode close: each refusal is a 101 then close 4003 with its reason; the default stays 403', async () => {
  const srv = await startServer(['--refuse-mode', 'close', '--user-id-field', 'user_id']);
  try {
    const cases = [
      ['token=garbage&vsn=2.0.0', 'invalid token'],
      [`token=${signToken({ user_id: 1 }, { maxAge: 1, signedAt: Math.floor(Date.now() / 1000) - 10 })}&vsn=2.0.0`, 'expired token'],
      ['vsn=2.0.0', 'missing token'],
      [`token=${signToken({ other: 1 })}&vsn=2.0.0`, 'unauthorized'],
      [`token=${signToken({ user_id: 1 })}&vsn=9.0.0`, 'unauthorized'],
    ];
    for (const [query, reason] of cases) {
      const ws = new WebSocket(`${srv.socketUrl}/websocket?${query}`, ['phoenix']);
      const ev = await withTimeout(new Promise((resolve, reject) => {
        ws.on('close', (code, r) => resolve({ code, reason: r.toString(), protocol: ws.protocol }));
        ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
        ws.on('error', reject);
      }), 5000, reason);
      assert.deepEqual(ev, { code: 4003, reason, protocol: 'phoenix' }, query);
    }
    // The README client stops retrying on 4003.
    const Sock = socketClassFor(srv);
    let fetches = 0;
    const { socket } = await readmeClient()(Sock, async () => { fetches++; return 'garbage'; });
    const first = await nextClose(socket);
    assert.equal(first.code, 4003);
    await sleep(600);
    assert.equal(socket.isConnected(), false);
    assert.equal(fetches, 1, 'no retry fetched anything');
    // A valid token still connects.
    const good = phxSocket(srv, { token: signToken({ user_id: 5 }) });
    sockets.push(good);
    await connect(good);
    good.disconnect();
  } finally {
    await srv.stop();
  }
  assert.equal(await upgradeStatus(server.port, 'token=garbage&vsn=2.0.0'), 403, 'default: 403 before the upgrade');
});
