// Backend callbacks over HTTP (docs/backend.md), end to end: phoenix.js
// against the real phxd, and the application's backend a real HTTP server
// written here with node:http on 127.0.0.1 (it records every call with its
// raw body and headers and answers per test).
//
// Covered: membership-checked joins (ok/error responses exact, the join
// call's body); a handler that sanitizes, saves and broadcasts; replies,
// noreply and stop (with its "kicked" leave); assigns carried from the
// connect and join answers into later calls; pushes to the sender only
// (after the join reply, before an event reply); one call at a time per
// channel, in order, under 1,000 pushes with random answer delays, while
// another socket is not blocked; the x-phxd-signature on every call type
// (and none without a secret); --connect backend (socket_id and
// /api/disconnect, user_id and join=user, refusal, backend down, after a
// Phoenix.Token check, over LongPoll); failures (refused, slow, garbage,
// 500, wrong shapes, an answer cut short or reset, too large) and their
// metrics; the HTTP client's queue bound; a socket that closes during a
// join, event or connect call ("dropped"); the circuit breaker; leave
// batches; presence driven by answers; the per-channel waiting bound.
// A call whose keep-alive connection the backend closes without
// answering is never sent twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Presence } from 'phoenix';
import {
  startServer, signToken, phxSocket, connect, closeSocket, recordMessages, nextClose, withTimeout,
} from './lib/server.mjs';
import { lpSocket, api, waitFor } from './lib/longpoll.mjs';
import { freePort } from './lib/redis.mjs';

const SAN = Boolean(process.env.PHXD_SANITIZED);
// Deadlines: generous, longer still under the sanitizers.
const D = SAN ? 30000 : 15000;
const BSECRET = 'backend-callbacks-test-secret-0123456789';
const KEY = 'backend-callbacks-test-api-key-0123456789';
// The failure server's --backend-timeout-ms.
const TIMEOUT_MS = SAN ? 1500 : 500;
const HANDLED = Symbol('handled');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the backend: a real HTTP server ----

// The answer of a call no test claims: connect accepted (socket_id,
// user_id and assigns from the params sid, uid and asg (JSON); refused
// with refuse=1), joins ok, events replied ok, leaves 2xx.
function defaults(call) {
  if (!call) return {};
  if (call.type === 'connect') {
    const p = call.params || {};
    if (p.refuse) return { status: 'error' };
    const a = { status: 'ok' };
    if (p.sid) a.socket_id = p.sid;
    if (p.uid) a.user_id = p.uid;
    if (p.asg) a.assigns = JSON.parse(p.asg);
    return a;
  }
  if (call.type === 'join') return { status: 'ok', response: {} };
  if (call.type === 'event') return { reply: { status: 'ok', response: {} } };
  return {};
}

// Resolves { url, port, calls, handler, close() }. `handler(call, rec)`
// answers a call: an object (sent as a 200 JSON answer), a promise of one,
// or HANDLED when it wrote the response itself (rec.req, rec.res).
// Every call is recorded as { call (parsed, or null), raw (Buffer),
// headers, method, url, at }.
async function startBackend() {
  const be = { calls: [], handler: null, conns: new Set() };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      let call = null;
      try { call = JSON.parse(raw.toString('utf8')); } catch { call = null; }
      const rec = { call, raw, headers: req.headers, method: req.method, url: req.url, at: Date.now(), req, res };
      be.calls.push(rec);
      let ans;
      try {
        ans = await (be.handler ? be.handler(call, rec) : defaults(call));
      } catch (e) {
        ans = { test_handler_error: String(e) };
      }
      if (ans === HANDLED || res.destroyed || res.writableEnded) return;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(ans));
    });
  });
  // phxd keeps its connections alive: Node must not close them idle
  // under a call about to be made.
  server.keepAliveTimeout = 120000;
  server.headersTimeout = 130000;
  server.on('connection', (s) => { be.conns.add(s); s.on('close', () => be.conns.delete(s)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  be.port = server.address().port;
  be.url = `http://127.0.0.1:${be.port}/phxd`;
  be.close = () => new Promise((resolve) => {
    for (const s of be.conns) s.destroy();
    server.close(() => resolve());
  });
  return be;
}

// Every leave call, the ones inside a batch flattened ({...leave, batched}).
function leavesOf(be) {
  const out = [];
  for (const r of be.calls) {
    if (!r.call) continue;
    if (r.call.type === 'leave') out.push({ ...r.call, batched: false });
    if (r.call.type === 'batch') for (const c of r.call.calls) out.push({ ...c, batched: true });
  }
  return out;
}

const callsOf = (be, pred) => be.calls.filter((r) => r.call && pred(r.call)).map((r) => r.call);
const hmac = (raw, key = BSECRET) => `sha256=${crypto.createHmac('sha256', key).update(raw).digest('hex')}`;

// ---- phxd's /metrics ----

async function metrics(srv) {
  const res = await fetch(`${srv.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
const bcalls = (m, type, outcome) => m.get(`phxd_backend_calls_total{type="${type}",outcome="${outcome}"}`) || 0;
const refusedTotal = (m, reason) => m.get(`phxd_connects_refused_total{reason="${reason}"}`) || 0;

// ---- phoenix.js helpers ----

const sockets = [];
const backends = [];
const servers = [];

async function client(srv, params = {}, opts = {}, { lp = false } = {}) {
  const s = (lp ? lpSocket : phxSocket)(srv, params, opts);
  sockets.push(s);
  await connect(s, D);
  return s;
}

// Resolves { status, response } of a join.
function joinP(ch, ms = D) {
  return withTimeout(new Promise((resolve) => {
    ch.join(ms)
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => resolve({ status: 'error', response }))
      .receive('timeout', () => resolve({ status: 'timeout' }));
  }), ms + 2000, `join ${ch.topic}`);
}

async function joined(socket, topic, params = {}) {
  const ch = socket.channel(topic, params);
  const r = await joinP(ch);
  assert.equal(r.status, 'ok', `join ${topic}: ${JSON.stringify(r)}`);
  return ch;
}

// A refused join's channel: stops its rejoins and forgets it.
function drop(ch) {
  ch.rejoinTimer.reset();
  ch.socket.remove(ch);
}

// Resolves { status, response } of a push; `ms` is phoenix.js's timeout.
function pushP(ch, event, payload = {}, ms = D) {
  return withTimeout(new Promise((resolve) => {
    ch.push(event, payload, ms)
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => resolve({ status: 'error', response }))
      .receive('timeout', () => resolve({ status: 'timeout' }));
  }), ms + 2000, `push ${event}`);
}

const unavailable = { status: 'error', response: { reason: 'unavailable' } };

async function closeAll(list) {
  await Promise.all(list.map((s) => closeSocket(s).catch(() => {})));
}

// ---- the servers shared by the tests ----

let be;   // the main backend (signed calls)
let main; // phxd: --connect backend, signed, room:* join=backend events=backend
let fbe;  // the failure tests' backend (unsigned calls)
let fail; // phxd: --backend-timeout-ms TIMEOUT_MS, no breaker, dead:* rules to a closed port
let deadPort;

before(async () => {
  be = await startBackend();
  fbe = await startBackend();
  backends.push(be, fbe);
  deadPort = await freePort();
  const dead = `http://127.0.0.1:${deadPort}/phxd`;
  main = await startServer([
    '--backend-url', be.url, '--backend-secret', BSECRET, '--connect', 'backend', '--api-key', KEY,
    '--channel', 'room:* join=backend events=backend',
    '--channel', 'user:* join=user events=broadcast',
  ], { secret: null });
  fail = await startServer([
    '--backend-url', fbe.url, '--connect', 'backend',
    '--backend-timeout-ms', String(TIMEOUT_MS), '--backend-breaker-open-ms', '0', '--backend-max-answer-bytes', '16384',
    '--channel', `dead:* join=backend events=backend backend=${dead}`,
    '--channel', `deadev:* join=any events=backend backend=${dead}`,
    '--channel', 'f:* join=backend events=backend',
  ], { secret: null });
  servers.push(main, fail);
});

after(async () => {
  await closeAll(sockets);
  await Promise.all(servers.map((s) => s.stop().catch(() => {})));
  await Promise.all(backends.map((b) => b.close()));
});

// ---- 1. membership-checked joins ----

test('joins checked by the backend: ok with its response exactly, error {"reason":"unauthorized"} exactly; the join call carries type, topic, payload, join_ref and socket', async () => {
  const members = { 'room:t1-open': null, 'room:t1-secret': new Set(['alice']) };
  be.handler = (call) => {
    if (call && call.type === 'join' && call.topic in members) {
      const allowed = members[call.topic];
      if (allowed && !allowed.has(call.socket.user_id)) return { status: 'error', response: { reason: 'unauthorized' } };
      return { status: 'ok', response: { joined: call.topic, since: call.payload.since, list: [1, 'two', null], nested: { ok: true } } };
    }
    return defaults(call);
  };
  const s = await client(main, { sid: 'users_socket:t1-bob', uid: 'bob', asg: JSON.stringify({ name: 'Bob' }) });
  const params = { since: 10, filter: { kinds: ['a', 'b'], deep: { x: 1.5 } }, note: 'héllo "q"' };
  const ch = s.channel('room:t1-open', params);
  const ok = await joinP(ch);
  assert.deepEqual(ok, { status: 'ok', response: { joined: 'room:t1-open', since: 10, list: [1, 'two', null], nested: { ok: true } } });

  const secret = s.channel('room:t1-secret', { since: 1 });
  const err = await joinP(secret);
  assert.deepEqual(err, { status: 'error', response: { reason: 'unauthorized' } });
  drop(secret);

  const [jc] = callsOf(be, (c) => c.type === 'join' && c.topic === 'room:t1-open');
  assert.equal(jc.type, 'join');
  assert.equal(jc.topic, 'room:t1-open');
  assert.deepEqual(jc.payload, params);
  assert.equal(jc.join_ref, ch.joinRef());
  assert.equal(jc.socket.id, 'users_socket:t1-bob');
  assert.equal(jc.socket.user_id, 'bob');
  assert.equal(jc.socket.assigns.name, 'Bob');
  assert.deepEqual(Object.keys(jc).sort(), ['join_ref', 'payload', 'socket', 'topic', 'type']);
  assert.deepEqual(Object.keys(jc.socket).sort(), ['assigns', 'id', 'user_id']);

  // alice is a member.
  const a = await client(main, { sid: 'users_socket:t1-alice', uid: 'alice' });
  const r = await joinP(a.channel('room:t1-secret', { since: 2 }));
  assert.deepEqual(r, { status: 'ok', response: { joined: 'room:t1-secret', since: 2, list: [1, 'two', null], nested: { ok: true } } });
  await closeAll([s, a]);
});

// ---- 2. validate, save, broadcast a sanitized message ----

test('a handler that validates, saves and broadcasts a sanitized message: every member gets the broadcast, the sender the reply with data', async () => {
  const topic = 'room:t2';
  const saved = [];
  be.handler = (call) => {
    if (call && call.type === 'event' && call.topic === topic && call.event === 'shout') {
      const body = call.payload.body;
      if (typeof body !== 'string' || body.length === 0) return { reply: { status: 'error', response: { reason: 'empty' } } };
      const clean = body.replace(/[<>]/g, '').slice(0, 20);
      saved.push({ from: call.socket.user_id, body: clean });
      return {
        reply: { status: 'ok', response: { saved: true, id: saved.length } },
        broadcast: [{ topic, event: 'shout', payload: { from: call.socket.user_id, body: clean } }],
      };
    }
    return defaults(call);
  };
  const users = ['u2a', 'u2b', 'u2c'];
  const socks = await Promise.all(users.map((u) => client(main, { uid: u })));
  const chans = await Promise.all(socks.map((s) => joined(s, topic)));
  const got = chans.map(() => []);
  chans.forEach((ch, i) => ch.on('shout', (p) => got[i].push(p)));

  const reply = await pushP(chans[0], 'shout', { body: '<script>alert(1)</script> hello everyone!' });
  const expect = { from: 'u2a', body: 'scriptalert(1)/scrip' };
  assert.deepEqual(reply, { status: 'ok', response: { saved: true, id: 1 } });
  await waitFor(() => got.every((g) => g.length >= 1), D, 'every member got the broadcast');
  for (const g of got) assert.deepEqual(g, [expect]);
  assert.deepEqual(saved, [expect]);

  // Invalid input: the error reply, nothing saved or broadcast.
  const bad = await pushP(chans[1], 'shout', { body: '' });
  assert.deepEqual(bad, { status: 'error', response: { reason: 'empty' } });
  const ok2 = await pushP(chans[2], 'shout', { body: 'second' });
  assert.deepEqual(ok2, { status: 'ok', response: { saved: true, id: 2 } });
  await waitFor(() => got.every((g) => g.length >= 2), D, 'the second broadcast');
  for (const g of got) assert.deepEqual(g, [expect, { from: 'u2c', body: 'second' }]);
  await closeAll(socks);
});

// ---- 3. reply, noreply, stop ----

test('replies with data; {"reply":null} lets the push time out client-side; "stop" sends the reply, then closes the channel, and a leave call "kicked" follows', async () => {
  const topic = 'room:t3';
  be.handler = (call) => {
    if (call && call.type === 'event' && call.topic === topic) {
      if (call.event === 'echo') return { reply: { status: 'ok', response: { echo: call.payload, n: 42, s: 'ü€' } } };
      if (call.event === 'quiet') return { reply: null };
      if (call.event === 'bye') return { reply: { status: 'ok', response: { bye: true } }, stop: { reason: 'bye' } };
      if (call.event === 'bin') {
        return { reply: { status: 'ok', response: { got: call.payload_base64, has_payload: 'payload' in call } },
                 push: [{ event: 'binback', payload_base64: Buffer.from([9, 8, 7, 0, 255]).toString('base64') }] };
      }
    }
    if (call && call.type === 'event' && call.topic === `${topic}-quietstop` && call.event === 'bye') return { reply: null, stop: { reason: 'x' } };
    return defaults(call);
  };
  const s = await client(main, { uid: 'u3' });
  const log = recordMessages(s);
  const ch = await joined(s, topic);
  const echo = await pushP(ch, 'echo', { a: [1, 2, { b: null }], t: 'x' });
  assert.deepEqual(echo, { status: 'ok', response: { echo: { a: [1, 2, { b: null }], t: 'x' }, n: 42, s: 'ü€' } });

  const quiet = ch.push('quiet', { q: 1 }, 300);
  const quietRef = quiet.ref;
  const q = await withTimeout(new Promise((resolve) => {
    quiet.receive('ok', () => resolve('ok')).receive('error', () => resolve('error')).receive('timeout', () => resolve('timeout'));
  }), D, 'noreply push');
  assert.equal(q, 'timeout');
  await waitFor(() => callsOf(be, (c) => c.type === 'event' && c.topic === topic && c.event === 'quiet').length === 1, D, 'the quiet call');
  // The channel goes on after a noreply, and no reply ever came for it.
  assert.equal((await pushP(ch, 'echo', { again: true })).status, 'ok');
  assert.equal(log.filter((m) => m.ref === quietRef).length, 0, 'no reply to the noreply push');

  const order = [];
  ch.onClose(() => order.push('close'));
  const bye = ch.push('bye', {}, D);
  bye.receive('ok', (r) => order.push(['reply', r]));
  await waitFor(() => order.includes('close'), D, 'the channel closed');
  assert.deepEqual(order, [['reply', { bye: true }], 'close']);
  await waitFor(() => leavesOf(be).some((l) => l.topic === topic), D, 'the leave call');
  const leaves = leavesOf(be).filter((l) => l.topic === topic);
  assert.equal(leaves.length, 1);
  assert.equal(leaves[0].reason, 'kicked');
  assert.equal(leaves[0].socket.user_id, 'u3');

  // stop with {"reply":null}: no reply, the channel closes.
  const qs = await joined(s, `${topic}-quietstop`);
  const qsClosed = new Promise((resolve) => qs.onClose(resolve));
  const qp = qs.push('bye', {}, D);
  await withTimeout(qsClosed, D, 'the quiet stop closes the channel');
  assert.equal(log.filter((m) => m.ref === qp.ref).length, 0, 'no reply');
  qp.cancelTimeout();
  await waitFor(() => leavesOf(be).some((l) => l.topic === `${topic}-quietstop`), D, 'the leave call');
  assert.equal(leavesOf(be).find((l) => l.topic === `${topic}-quietstop`).reason, 'kicked');

  // A binary payload goes as payload_base64; a push may be binary too.
  const ch2 = await joined(s, topic);
  const bin = new Uint8Array([1, 2, 3, 0, 250]).buffer;
  const binback = new Promise((resolve) => ch2.on('binback', resolve));
  const br = await pushP(ch2, 'bin', bin);
  assert.deepEqual(br, { status: 'ok', response: { got: Buffer.from([1, 2, 3, 0, 250]).toString('base64'), has_payload: false } });
  const back = await withTimeout(binback, D, 'the binary push');
  assert.ok(back instanceof ArrayBuffer, 'a binary push');
  assert.deepEqual([...new Uint8Array(back)], [9, 8, 7, 0, 255]);
  await closeAll([s]);
});

// ---- 4. assigns ----

test('assigns: the connect answer\'s and the join answer\'s assigns appear in later calls, merged (later keys replace earlier)', async () => {
  const t = 'room:t4';
  be.handler = (call) => {
    if (call && call.type === 'join' && call.topic === t) return { status: 'ok', response: {}, assigns: { b: 2, name: 'y' } };
    if (call && call.type === 'event' && call.topic === t && call.event === 'set') {
      return { reply: { status: 'ok', response: {} }, assigns: { c: [1, { d: true }], a: 'z' } };
    }
    return defaults(call);
  };
  const s = await client(main, { sid: 'users_socket:t4', asg: JSON.stringify({ a: 1, name: 'x', o: { k: 'v' } }) });
  const [cc] = callsOf(be, (c) => c.type === 'connect' && c.params.sid === 'users_socket:t4');
  assert.deepEqual(cc.socket, { id: null, user_id: null, assigns: {} });
  const ch = await joined(s, t);
  const [jc] = callsOf(be, (c) => c.type === 'join' && c.topic === t);
  assert.deepEqual(jc.socket, { id: 'users_socket:t4', user_id: null, assigns: { a: 1, name: 'x', o: { k: 'v' } } });

  await pushP(ch, 'look', {});
  await pushP(ch, 'set', {});
  await pushP(ch, 'look', {});
  const looks = callsOf(be, (c) => c.type === 'event' && c.topic === t && c.event === 'look');
  assert.equal(looks.length, 2);
  assert.deepEqual(looks[0].socket.assigns, { a: 1, name: 'y', o: { k: 'v' }, b: 2 });
  assert.deepEqual(looks[1].socket.assigns, { a: 'z', name: 'y', o: { k: 'v' }, b: 2, c: [1, { d: true }] });

  // Assigns are the socket's: another channel of it sees them too.
  await joined(s, 'room:t4-other');
  const [oc] = callsOf(be, (c) => c.type === 'join' && c.topic === 'room:t4-other');
  assert.deepEqual(oc.socket.assigns, { a: 'z', name: 'y', o: { k: 'v' }, b: 2, c: [1, { d: true }] });
  await closeAll([s]);
  await waitFor(() => leavesOf(be).filter((l) => l.topic.startsWith('room:t4')).length === 2, D, 'the leaves');
  for (const l of leavesOf(be).filter((x) => x.topic.startsWith('room:t4'))) {
    assert.deepEqual(l.socket, { id: 'users_socket:t4', user_id: null, assigns: { a: 'z', name: 'y', o: { k: 'v' }, b: 2, c: [1, { d: true }] } });
  }
});

test('assigns in answers written with blanks (as many JSON encoders write them) are kept minified: later calls stay valid JSON', async () => {
  const t = 'room:t4b';
  const raw = (rec, text) => { rec.res.writeHead(200, { 'content-type': 'application/json' }).end(text); return HANDLED; };
  be.handler = (call, rec) => {
    if (call && call.type === 'connect' && call.params.sid === 'users_socket:t4b') return raw(rec, '{"status": "ok", "socket_id": "users_socket:t4b", "assigns": { "a" : 1 ,\n "b": [ 1, 2 ] }}');
    if (call && call.type === 'join' && call.topic === t) return raw(rec, '{ "status" : "ok", "response": { }, "assigns": { } }');
    if (call && call.type === 'event' && call.topic === t && call.event === 'set') return raw(rec, '{"reply": {"status": "ok", "response": {}}, "assigns": { "c" : { "d" : true } }}');
    return defaults(call);
  };
  const s = await client(main, { sid: 'users_socket:t4b' });
  const ch = await joined(s, t);
  await pushP(ch, 'look', {});
  await pushP(ch, 'set', {});
  await pushP(ch, 'look', {});
  const looks = be.calls.filter((r) => /"topic":"room:t4b"/.test(r.raw.toString()) && /"event":"look"/.test(r.raw.toString()));
  assert.equal(looks.length, 2);
  for (const r of looks) assert.ok(r.call !== null, `a valid JSON call: ${r.raw}`);
  assert.deepEqual(looks[0].call.socket.assigns, { a: 1, b: [1, 2] });
  assert.deepEqual(looks[1].call.socket.assigns, { a: 1, b: [1, 2], c: { d: true } });
  assert.ok(!/ /.test(JSON.stringify(looks[1].call.socket.assigns)) && !/"assigns":\{[^}]* /.test(looks[1].raw.toString()), 'kept minified');
  await closeAll([s]);
});

// ---- 5. pushes to the sender only ----

test('pushes go to the sender only: a join answer\'s push after the join reply, an event answer\'s push before the reply', async () => {
  const t = 'room:t5';
  be.handler = (call) => {
    if (call && call.type === 'join' && call.topic === t) {
      return { status: 'ok', response: { hi: call.socket.user_id }, push: [{ event: 'welcome', payload: { to: call.socket.user_id } }, { event: 'motd', payload: { n: 1 } }] };
    }
    if (call && call.type === 'event' && call.topic === t && call.event === 'ask') {
      return { reply: { status: 'ok', response: { answered: true } }, push: [{ event: 'note', payload: { only: call.socket.user_id } }] };
    }
    if (call && call.type === 'event' && call.topic === t && call.event === 'others') {
      return { reply: { status: 'ok', response: {} }, broadcast_from: [{ topic: t, event: 'fromsender', payload: { by: call.socket.user_id } }] };
    }
    if (call && call.type === 'event' && call.topic === t && call.event === 'mark') {
      return { reply: { status: 'ok', response: {} }, broadcast: [{ topic: t, event: 'marker', payload: {} }] };
    }
    return defaults(call);
  };
  const b = await client(main, { uid: 'u5b' });
  const bLog = recordMessages(b);
  const bch = await joined(b, t);
  const a = await client(main, { uid: 'u5a' });
  const aLog = recordMessages(a);
  const ach = a.channel(t);
  const jr = await joinP(ach);
  assert.deepEqual(jr, { status: 'ok', response: { hi: 'u5a' } });
  await waitFor(() => aLog.some((m) => m.event === 'motd'), D, 'the pushes after the join');
  const aTopic = aLog.filter((m) => m.topic === t);
  assert.deepEqual(aTopic.map((m) => m.event), ['phx_reply', 'welcome', 'motd']);
  assert.deepEqual(aTopic[1].payload, { to: 'u5a' });
  assert.equal(aTopic[1].join_ref, ach.joinRef());

  const asked = ach.push('ask', {}, D);
  const askRef = asked.ref;
  const ask = await withTimeout(new Promise((resolve) => asked.receive('ok', resolve)), D, 'ask');
  assert.deepEqual(ask, { answered: true });
  const after = aLog.filter((m) => m.topic === t).slice(3);
  assert.deepEqual(after.map((m) => [m.event, m.ref]), [['note', null], ['phx_reply', askRef]]);
  assert.deepEqual(after[0].payload, { only: 'u5a' });

  // broadcast_from: everyone on the topic but the sender's channel.
  assert.equal((await pushP(ach, 'others', {})).status, 'ok');
  // b hears a marker broadcast made after all that, and none of a's pushes.
  assert.equal((await pushP(ach, 'mark', {})).status, 'ok');
  await waitFor(() => bLog.some((m) => m.event === 'marker') && aLog.some((m) => m.event === 'marker'), D, 'the marker');
  assert.deepEqual(bLog.filter((m) => m.topic === t).map((m) => m.event), ['phx_reply', 'welcome', 'motd', 'fromsender', 'marker']);
  assert.deepEqual(bLog.find((m) => m.event === 'fromsender').payload, { by: 'u5a' });
  assert.equal(aLog.filter((m) => m.event === 'fromsender').length, 0, 'broadcast_from skips the sender');
  assert.deepEqual(bLog.find((m) => m.event === 'welcome').payload, { to: 'u5b' }, 'b saw only its own welcome');
  assert.ok(bch);
  await closeAll([a, b]);
});

// ---- 6. ordering ----

test('order: 1,000 pushes in a burst are called one at a time, in order, with random answer delays; the replies arrive in order; another socket is not blocked', async () => {
  const t = 'room:t6-a';
  const other = 'room:t6-b';
  const N = 1000;
  let inflight = 0;
  let maxInflight = 0;
  const seen = [];
  let answered = 0;
  be.handler = async (call) => {
    if (call && call.type === 'event' && call.topic === t) {
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      seen.push(call.payload.i);
      await sleep(Math.floor(Math.random() * 21));
      inflight--;
      answered++;
      return { reply: { status: 'ok', response: { i: call.payload.i } } };
    }
    return defaults(call);
  };
  const s1 = await client(main, { uid: 'u6a' });
  const s2 = await client(main, { uid: 'u6b' });
  const ch = await joined(s1, t);
  const replies = [];
  const errors = [];
  for (let i = 0; i < N; i++) {
    ch.push('n', { i }, 120000)
      .receive('ok', (r) => replies.push(r.i))
      .receive('error', (r) => errors.push([i, r]))
      .receive('timeout', () => errors.push([i, 'timeout']));
  }
  await waitFor(() => seen.length >= 20, D, 'the first calls');
  // The other socket joins and pushes meanwhile: its calls go through.
  const ch2 = await joined(s2, other);
  const r2 = await pushP(ch2, 'hello', {});
  assert.equal(r2.status, 'ok');
  const doneAtOther = replies.length;
  assert.ok(doneAtOther < N, `the other socket's reply came while the first channel was still busy (${doneAtOther} of ${N} replied)`);
  // So does another channel of the same socket.
  const ch3 = await joined(s1, 'room:t6-c');
  const r3 = await pushP(ch3, 'hello', {});
  assert.equal(r3.status, 'ok');
  const doneAtSame = replies.length;
  assert.ok(doneAtSame < N, `another channel of the same socket was answered while the first was still busy (${doneAtSame} of ${N} replied)`);
  assert.ok(answered < N);

  await waitFor(() => replies.length + errors.length === N, SAN ? 180000 : 90000, 'all replies');
  assert.deepEqual(errors, []);
  assert.equal(maxInflight, 1, 'never two calls of the channel in flight');
  assert.deepEqual(seen, Array.from({ length: N }, (_, i) => i), 'the backend saw them in order');
  assert.deepEqual(replies, Array.from({ length: N }, (_, i) => i), 'the replies arrived in order');
  await closeAll([s1, s2]);
});

// ---- 7. signature ----

test('signature: with --backend-secret every call (connect, join, event, leave) has x-phxd-signature sha256=<HMAC of the body>; without a secret there is none; content-type is application/json', async () => {
  be.handler = null;
  fbe.handler = null;
  const sid = 'users_socket:t7';
  const s = await client(main, { sid });
  const ch = await joined(s, 'room:t7', { p: 1 });
  assert.equal((await pushP(ch, 'e', { x: 'y' })).status, 'ok');
  await withTimeout(new Promise((resolve) => ch.leave(D).receive('ok', resolve)), D, 'leave');
  await waitFor(() => leavesOf(be).some((l) => l.topic === 'room:t7'), D, 'the leave call');
  const mine = be.calls.filter((r) => r.call && (
    (r.call.type === 'connect' && r.call.params.sid === sid)
    || (r.call.type === 'batch' && r.call.calls.some((c) => c.topic === 'room:t7'))
    || r.call.topic === 'room:t7'));
  assert.deepEqual(mine.map((r) => r.call.type).filter((x) => x !== 'batch').sort(), ['connect', 'event', 'join', 'leave']);
  for (const r of mine) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url, '/phxd');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(r.headers['x-phxd-signature'], /^sha256=[0-9a-f]{64}$/);
    assert.equal(r.headers['x-phxd-signature'], hmac(r.raw), `signature of the ${r.call.type} call`);
    assert.notEqual(r.headers['x-phxd-signature'], hmac(r.raw, `${BSECRET}x`));
  }
  // Every call the main backend ever got is signed.
  for (const r of be.calls) assert.equal(r.headers['x-phxd-signature'], hmac(r.raw), `signature of ${r.raw}`);

  const f = await client(fail, { sid: 'users_socket:t7f' });
  const fch = await joined(f, 'f:t7');
  assert.equal((await pushP(fch, 'e', {})).status, 'ok');
  await closeAll([s, f]);
  await waitFor(() => leavesOf(fbe).some((l) => l.topic === 'f:t7'), D, 'the unsigned leave');
  const types = new Set(fbe.calls.map((r) => r.call && r.call.type));
  for (const ty of ['connect', 'join', 'event']) assert.ok(types.has(ty), `an unsigned ${ty} call`);
  for (const r of fbe.calls) {
    assert.equal(r.headers['x-phxd-signature'], undefined);
    assert.equal(r.headers['content-type'], 'application/json');
  }
});

// ---- 8. --connect backend ----

test('--connect backend: socket_id from the answer; /api/disconnect with it closes the socket and a leave "kicked" arrives', async () => {
  be.handler = null;
  const sid = 'users_socket:t8a';
  const s = await client(main, { sid });
  const [cc] = callsOf(be, (c) => c.type === 'connect' && c.params.sid === sid);
  assert.deepEqual(cc.params, { sid, vsn: '2.0.0' });
  assert.equal(cc.connect_info.transport, 'websocket');
  assert.match(cc.connect_info.peer, /^127\.0\.0\.1:\d+$/);
  assert.equal(typeof cc.connect_info.x_headers, 'object');
  await joined(s, 'room:t8a');
  const closed = nextClose(s, D);
  const res = await api(main, '/api/disconnect', { id: sid }, { key: KEY });
  assert.equal(res.status, 202);
  assert.deepEqual(res.json, { sockets: 1 });
  await closed;
  await waitFor(() => leavesOf(be).some((l) => l.topic === 'room:t8a'), D, 'the leave call');
  const [l] = leavesOf(be).filter((x) => x.topic === 'room:t8a');
  assert.equal(l.reason, 'kicked');
  assert.equal(l.socket.id, sid);
  await closeAll([s]);
});

test('--connect backend: the answer\'s user_id is the one join=user checks', async () => {
  be.handler = null;
  const s = await client(main, { uid: 'u8b' });
  const ok = await joinP(s.channel('user:u8b'));
  assert.equal(ok.status, 'ok');
  const other = s.channel('user:someone-else');
  const no = await joinP(other);
  assert.equal(no.status, 'error');
  drop(other);
  // and backend calls carry it
  const ch = await joined(s, 'room:t8b');
  await pushP(ch, 'e', {});
  const [ev] = callsOf(be, (c) => c.type === 'event' && c.topic === 'room:t8b');
  assert.equal(ev.socket.user_id, 'u8b');
  await closeAll([s]);
});

test('--connect backend: {"status":"error"} refuses the socket (phoenix.js cannot connect), counted reason="callback"', async () => {
  be.handler = null;
  const m0 = await metrics(main);
  const s = phxSocket(main, { refuse: '1', sid: 'users_socket:t8c' });
  sockets.push(s);
  await assert.rejects(connect(s, D), /socket error|close/);
  assert.equal(s.isConnected(), false);
  await closeAll([s]);
  assert.equal(callsOf(be, (c) => c.type === 'connect' && c.params.sid === 'users_socket:t8c').length >= 1, true);
  const m1 = await metrics(main);
  assert.ok(refusedTotal(m1, 'callback') >= refusedTotal(m0, 'callback') + 1, 'refused counted as callback');
  assert.equal(refusedTotal(m1, 'backend_unavailable'), refusedTotal(m0, 'backend_unavailable'));
  assert.ok(bcalls(m1, 'connect', 'refused') >= bcalls(m0, 'connect', 'refused') + 1);
  // A refusal is not a failure: the next connect is accepted.
  const ok = await client(main, { sid: 'users_socket:t8c-ok' });
  await closeAll([ok]);
});

test('--connect backend: the backend down at connect refuses the socket, counted reason="backend_unavailable"', async () => {
  const port = await freePort();
  const down = await startServer(['--backend-url', `http://127.0.0.1:${port}/phxd`, '--connect', 'backend',
    '--backend-breaker-open-ms', '0'], { secret: null });
  servers.push(down);
  const s = phxSocket(down, { sid: 'x' });
  sockets.push(s);
  await assert.rejects(connect(s, D));
  await closeAll([s]);
  const m = await metrics(down);
  assert.ok(refusedTotal(m, 'backend_unavailable') >= 1, 'counted backend_unavailable');
  assert.equal(refusedTotal(m, 'callback'), 0);
  assert.ok(bcalls(m, 'connect', 'transport') >= 1);
  assert.equal((await fetch(`${down.url}/healthz`)).status, 200);
  await down.stop();
});

test('--connect backend after a Phoenix.Token check: an invalid token is refused with no connect call; a valid one\'s call carries its user_id', async () => {
  const tbe = await startBackend();
  backends.push(tbe);
  const srv = await startServer(['--backend-url', tbe.url, '--connect', 'backend',
    '--channel', 'room:* join=backend events=backend']);
  servers.push(srv);
  const bad = phxSocket(srv, { token: 'not-a-token' });
  sockets.push(bad);
  await assert.rejects(connect(bad, D));
  await closeAll([bad]);
  assert.equal(tbe.calls.length, 0, 'no call for an invalid token');
  const good = await client(srv, { token: signToken(77), extra: 'x' });
  assert.equal(tbe.calls.length, 1);
  const cc = tbe.calls[0].call;
  assert.equal(cc.type, 'connect');
  assert.equal(cc.socket.user_id, '77');
  assert.equal(cc.params.extra, 'x');
  const ch = await joined(good, 'room:t8e');
  await pushP(ch, 'e', {});
  const [ev] = callsOf(tbe, (c) => c.type === 'event');
  assert.equal(ev.socket.user_id, '77');
  await closeAll([good]);
  await srv.stop();
});

test('--connect backend over LongPoll: connect, join and an event through the backend', async () => {
  const t = 'room:t8f';
  be.handler = (call) => {
    if (call && call.type === 'join' && call.topic === t) return { status: 'ok', response: { lp: true } };
    if (call && call.type === 'event' && call.topic === t) return { reply: { status: 'ok', response: { got: call.payload } } };
    return defaults(call);
  };
  const s = await client(main, { sid: 'users_socket:t8f', uid: 'lp' }, { longpollerTimeout: 20000 }, { lp: true });
  const [cc] = callsOf(be, (c) => c.type === 'connect' && c.params.sid === 'users_socket:t8f');
  assert.equal(cc.connect_info.transport, 'longpoll');
  const ch = s.channel(t);
  assert.deepEqual(await joinP(ch), { status: 'ok', response: { lp: true } });
  assert.deepEqual(await pushP(ch, 'e', { v: 1 }), { status: 'ok', response: { got: { v: 1 } } });
  const [jc] = callsOf(be, (c) => c.type === 'join' && c.topic === t);
  assert.equal(jc.socket.id, 'users_socket:t8f');
  assert.equal(jc.socket.user_id, 'lp');
  // (phoenix.js closes a LongPoll session without telling the server: its
  // leave call comes when the session times out, not waited for here.)
  await closeAll([s]);
});

// ---- 9. failures ----

test('failures: refused, slow, garbage, 500, wrong shapes, an answer cut short or reset: joins and events answer error {"reason":"unavailable"}, phxd goes on, /metrics counts each outcome', async () => {
  const respond = (rec, mode) => {
    const { res } = rec;
    switch (mode) {
      case 'slow': // a late answer that must not be taken for a later call's
        return sleep(TIMEOUT_MS + 700).then(() => (rec.call.type === 'join'
          ? { status: 'ok', response: { late: true } } : { reply: { status: 'ok', response: { late: true } } }));
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' }).end('this is not {json');
        return HANDLED;
      case 'e500':
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"status":"ok","response":{}}');
        return HANDLED;
      case 'nostatus':
        return { response: { a: 1 } };
      case 'badstatus':
        return { status: 'maybe', response: {} };
      case 'noreplykey':
        return { assigns: { x: 1 } };
      case 'reset':
        rec.req.socket.destroy();
        return HANDLED;
      case 'phxclose':
        return { reply: { status: 'ok', response: {} }, push: [{ event: 'phx_close', payload: {} }] };
      case 'badbroadcast':
        return { reply: { status: 'ok', response: {} }, broadcast: [{ topic: 'f:ok', event: 'x', payload: 'a string' }] };
      case 'cut': {
        const body = '{"status":"ok","response":{"reply":{"status":"ok"}},"padding":"xxxxxxxxxxxxxxxx"}';
        rec.req.socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 20)}`);
        setTimeout(() => rec.req.socket.destroy(), 50);
        return HANDLED;
      }
      default:
        return defaults(rec.call);
    }
  };
  fbe.handler = (call, rec) => {
    if (call && call.type === 'join' && call.topic.startsWith('f:')) return respond(rec, call.topic.split(':')[1].split('-')[0]);
    if (call && call.type === 'event' && call.topic === 'f:ok') return respond(rec, call.event);
    return defaults(call);
  };
  const s = await client(fail, { sid: 'users_socket:t9' });
  const good = await joined(s, 'f:ok');
  const dev = await joined(s, 'deadev:x'); // join=any, events to the closed port
  const cases = [
    // [name, join topic or null, event channel and name or null, outcome]
    ['refused', 'dead:x', [dev, 'e'], 'transport'],
    ['slow', 'f:slow', [good, 'slow'], 'timeout'],
    ['garbage', 'f:garbage', [good, 'garbage'], 'invalid'],
    ['500', 'f:e500', [good, 'e500'], 'http_status'],
    ['join without status', 'f:nostatus', null, 'invalid'],
    ['join with status "maybe"', 'f:badstatus', null, 'invalid'],
    ['event answer without reply', null, [good, 'noreplykey'], 'invalid'],
    ['a push of phx_close', null, [good, 'phxclose'], 'invalid'],
    ['a broadcast with a string payload', null, [good, 'badbroadcast'], 'invalid'],
    ['an answer cut short', 'f:cut', [good, 'cut'], 'transport'],
    ['the connection reset before any answer', 'f:reset', [good, 'reset'], 'transport'],
  ];
  const failures = (m, type) => ['http_status', 'timeout', 'transport', 'invalid'].reduce((a, o) => a + bcalls(m, type, o), 0);
  let n = 0;
  for (const [name, topic, ev, outcome] of cases) {
    const hits0 = fbe.calls.length;
    if (topic) {
      const m0 = await metrics(fail);
      const ch = s.channel(topic);
      assert.deepEqual(await joinP(ch), unavailable, `join, ${name}`);
      drop(ch);
      const m1 = await metrics(fail);
      assert.equal(failures(m1, 'join') - failures(m0, 'join'), 1, `join ${name}: one failure counted`);
      assert.equal(bcalls(m1, 'join', outcome) - bcalls(m0, 'join', outcome), 1, `join ${name}: counted ${outcome}`);
    }
    if (ev) {
      const m0 = await metrics(fail);
      assert.deepEqual(await pushP(ev[0], ev[1], { n }), unavailable, `event, ${name}`);
      const m1 = await metrics(fail);
      assert.equal(failures(m1, 'event') - failures(m0, 'event'), 1, `event ${name}: one failure counted`);
      assert.equal(bcalls(m1, 'event', outcome) - bcalls(m0, 'event', outcome), 1, `event ${name}: counted ${outcome}`);
    }
    // Each failed call reached the backend once (no retry).
    const made = fbe.calls.length - hits0;
    const want = (topic ? 1 : 0) + (ev ? 1 : 0);
    if (topic !== 'dead:x') assert.equal(made, want, `${name}: calls made once`);
    // phxd goes on: the next call is served.
    n++;
    assert.deepEqual(await pushP(good, 'ping', { n }), { status: 'ok', response: {} }, `after ${name}`);
    const ok = await joinP(s.channel(`f:ok-${n}`));
    assert.equal(ok.status, 'ok', `a join after ${name}`);
  }
  // The wrong shapes were not carried out: nobody got a phx_close or the broadcast.
  assert.equal(good.state, 'joined');
  assert.equal((await fetch(`${fail.url}/healthz`)).status, 200);
  await closeAll([s]);
});

test('an answer over --backend-max-answer-bytes is a failed call: error unavailable, counted outcome="invalid"', async () => {
  const big = { status: 'ok', response: { pad: 'x'.repeat(20000) }, reply: { status: 'ok', response: { pad: 'x'.repeat(20000) } } };
  fbe.handler = (call) => ((call && call.type === 'join' && call.topic === 'f:huge') || (call && call.type === 'event' && call.event === 'huge') ? big : defaults(call));
  const s = await client(fail, { sid: 'users_socket:t9-huge' });
  const good = await joined(s, 'f:ok-huge');
  const m0 = await metrics(fail);
  const ch = s.channel('f:huge');
  assert.deepEqual(await joinP(ch), unavailable);
  drop(ch);
  assert.deepEqual(await pushP(good, 'huge', {}), unavailable);
  assert.deepEqual(await pushP(good, 'ping', {}), { status: 'ok', response: {} });
  const m1 = await metrics(fail);
  for (const type of ['join', 'event']) {
    assert.equal(bcalls(m1, type, 'invalid') - bcalls(m0, type, 'invalid'), 1, `${type}: counted invalid`);
    assert.equal(bcalls(m1, type, 'unavailable') - bcalls(m0, type, 'unavailable'), 0, `${type}: not counted unavailable`);
  }
  await closeAll([s]);
});

test('--backend-max-inflight 1 --backend-max-queue 1: a call beyond the queue fails at once (error unavailable, outcome="unavailable"); the others are answered', async () => {
  const qbe = await startBackend();
  backends.push(qbe);
  const srv = await startServer(['--backend-url', qbe.url, '--backend-max-inflight', '1', '--backend-max-queue', '1',
    '--channel', 'q:* join=any events=backend']);
  servers.push(srv);
  let release;
  const held = new Promise((r) => { release = r; });
  qbe.handler = async (call) => {
    if (call && call.type === 'event' && call.event === 'hold') await held;
    return { reply: { status: 'ok', response: { topic: call.topic } } };
  };
  const s = await client(srv, { token: signToken(15) });
  const [c1, c2, c3] = [await joined(s, 'q:1'), await joined(s, 'q:2'), await joined(s, 'q:3')];
  const p1 = pushP(c1, 'hold', {});
  await waitFor(() => qbe.calls.length === 1, D, 'the first call in flight');
  const p2 = pushP(c2, 'e', {});
  await waitFor(async () => (await metrics(srv)).get('phxd_backend_queued') === 1, D, 'the second call queued');
  assert.deepEqual(await pushP(c3, 'e', {}), unavailable, 'beyond the queue: at once');
  const m = await metrics(srv);
  assert.equal(bcalls(m, 'event', 'unavailable'), 1);
  assert.equal(m.get('phxd_backend_breakers_open'), 0);
  release();
  assert.deepEqual(await p1, { status: 'ok', response: { topic: 'q:1' } });
  assert.deepEqual(await p2, { status: 'ok', response: { topic: 'q:2' } });
  assert.deepEqual(await pushP(c3, 'e', {}), { status: 'ok', response: { topic: 'q:3' } });
  await closeAll([s]);
  await srv.stop();
});

test('a call whose connection the backend closes without answering is not sent again (a POST is not idempotent: RFC 9112 section 9.3.1)', async () => {
  const seen = [];
  fbe.handler = (call, rec) => {
    if (call && call.type === 'event' && call.event === 'reset1') {
      seen.push(call.payload.n);
      rec.req.socket.destroy();
      return HANDLED;
    }
    return defaults(call);
  };
  const s = await client(fail, { sid: 'users_socket:t9-reset' });
  try {
    const ch = await joined(s, 'f:reset-once');
    // A call answered first: its keep-alive connection is the one reused.
    assert.equal((await pushP(ch, 'ping', {})).status, 'ok');
    assert.deepEqual(await pushP(ch, 'reset1', { n: 1 }), unavailable);
    assert.deepEqual(seen, [1], 'the backend got the call once');
  } finally {
    await closeAll([s]);
  }
});

// ---- 10. a socket closing during a call ----

test('a socket closing during a call: the held answer is dropped (outcome="dropped"), phxd does not crash, the leave call "closed" arrives', async () => {
  const t = 'room:t10';
  let release;
  const held = new Promise((r) => { release = r; });
  let calledHeld = false;
  be.handler = async (call) => {
    if (call && call.type === 'event' && call.topic === t && call.event === 'hold') {
      calledHeld = true;
      await held;
      return { reply: { status: 'ok', response: { late: true } }, push: [{ event: 'late', payload: {} }], assigns: { late: 1 } };
    }
    return defaults(call);
  };
  const m0 = await metrics(main);
  const s = await client(main, { sid: 'users_socket:t10' });
  const ch = await joined(s, t);
  const hp = ch.push('hold', {}, D);
  await waitFor(() => calledHeld, D, 'the held call');
  await closeAll([s]);
  hp.cancelTimeout();
  await waitFor(() => leavesOf(be).some((l) => l.topic === t), D, 'the leave call');
  assert.equal(leavesOf(be).find((l) => l.topic === t).reason, 'closed');
  release();
  await waitFor(async () => bcalls(await metrics(main), 'event', 'dropped') === bcalls(m0, 'event', 'dropped') + 1, D, 'counted dropped');

  // The same with a join call held: the answer (ok) is dropped, and the
  // backend, which may have recorded the member, still hears the leave.
  let releaseJoin;
  const heldJoin = new Promise((r) => { releaseJoin = r; });
  let joinCalled = false;
  be.handler = async (call) => {
    if (call && call.type === 'join' && call.topic === `${t}-join`) {
      joinCalled = true;
      await heldJoin;
    }
    return defaults(call);
  };
  const sj = await client(main, { sid: 'users_socket:t10j' });
  sj.channel(`${t}-join`).join(D);
  await waitFor(() => joinCalled, D, 'the held join call');
  await closeAll([sj]);
  await waitFor(() => leavesOf(be).some((l) => l.topic === `${t}-join`), D, 'the leave call of the pending join');
  assert.equal(leavesOf(be).find((l) => l.topic === `${t}-join`).reason, 'closed');
  releaseJoin();
  await waitFor(async () => bcalls(await metrics(main), 'join', 'dropped') === bcalls(m0, 'join', 'dropped') + 1, D, 'join counted dropped');
  assert.equal(main.proc.exitCode, null);
  // still serving
  const s2 = await client(main, { sid: 'users_socket:t10b' });
  const ch2 = await joined(s2, 'room:t10b');
  assert.equal((await pushP(ch2, 'e', {})).status, 'ok');
  await closeAll([s2]);
});

test('a client gone during its connect call (WebSocket and LongPoll): the held answer is dropped (connect outcome="dropped"), phxd goes on', async () => {
  const held = [];
  be.handler = async (call) => {
    if (call && call.type === 'connect' && call.params.hold) {
      await new Promise((r) => held.push(r));
      return defaults(call);
    }
    return defaults(call);
  };
  const m0 = await metrics(main);
  for (const lp of [false, true]) {
    const s = (lp ? lpSocket : phxSocket)(main, { hold: '1', sid: `users_socket:t10c-${lp}` });
    sockets.push(s);
    s.connect();
    await waitFor(() => held.length === 1, D, 'the held connect call');
    await closeAll([s]);
    await sleep(100);
    held.shift()();
    await waitFor(async () => bcalls(await metrics(main), 'connect', 'dropped') >= bcalls(m0, 'connect', 'dropped') + (lp ? 2 : 1), D, 'counted dropped');
  }
  assert.equal(main.proc.exitCode, null);
  const s2 = await client(main, { sid: 'users_socket:t10c-after' });
  const ch2 = await joined(s2, 'room:t10c');
  assert.equal((await pushP(ch2, 'e', {})).status, 'ok');
  await closeAll([s2]);
});

// ---- 11. the circuit breaker ----

test('the circuit breaker: failing calls open it (calls fail at once, the backend is not called, breakers_open 1, /healthz 200); after the open time one probe closes it', async () => {
  const bbe = await startBackend();
  backends.push(bbe);
  const srv = await startServer(['--backend-url', bbe.url, '--backend-breaker-calls', '4',
    '--backend-breaker-open-ms', '1000', '--channel', 'b:* join=any events=backend',
    '--channel', 'bj:* join=backend events=backend']);
  servers.push(srv);
  let failing = false;
  bbe.handler = (call, rec) => {
    if (call && call.type === 'join' && call.topic.startsWith('bj:no')) return { status: 'error', response: { reason: 'no' } };
    if (failing) {
      rec.res.writeHead(500).end('{}');
      return HANDLED;
    }
    return defaults(call);
  };
  const hits = () => bbe.calls.filter((r) => r.call && r.call.type === 'event').length;
  const s = await client(srv, { token: signToken(11) });
  const ch = await joined(s, 'b:1');
  // The app's own refusals are not failures.
  for (let i = 0; i < 6; i++) {
    const no = s.channel(`bj:no-${i}`);
    assert.deepEqual(await joinP(no), { status: 'error', response: { reason: 'no' } });
    drop(no);
  }
  assert.equal((await metrics(srv)).get('phxd_backend_breakers_open'), 0);
  assert.equal((await pushP(ch, 'e', {})).status, 'ok');
  bbe.calls.length = 0;
  failing = true;
  // The last 4 calls: refused join, ok, failed: 1 of 4 failed, closed.
  assert.deepEqual(await pushP(ch, 'e', { i: 0 }), unavailable);
  assert.equal(hits(), 1);
  assert.equal((await metrics(srv)).get('phxd_backend_breakers_open'), 0);
  // ok, failed, failed... 2 of the last 4 (50 %): open.
  assert.deepEqual(await pushP(ch, 'e', { i: 1 }), unavailable);
  assert.equal(hits(), 2);
  let m = await metrics(srv);
  assert.equal(m.get('phxd_backend_breakers_open'), 1);
  assert.equal(m.get('phxd_backend_breaker_trips_total'), 1);
  assert.equal(bcalls(m, 'event', 'http_status'), 2);
  for (let i = 0; i < 3; i++) assert.deepEqual(await pushP(ch, 'e', { i }), unavailable);
  assert.equal(hits(), 2, 'the open breaker fails calls without calling the backend');
  m = await metrics(srv);
  assert.equal(bcalls(m, 'event', 'unavailable'), 3);
  assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);

  // After the open time a probe goes out; failing, it opens the breaker again.
  await waitFor(async () => {
    assert.deepEqual(await pushP(ch, 'e', { probe: 'failing' }), unavailable);
    if (hits() === 3) return true;
    assert.equal(hits(), 2);
    await sleep(100);
    return false;
  }, D, 'the failing probe');
  m = await metrics(srv);
  assert.equal(m.get('phxd_backend_breakers_open'), 1);
  assert.equal(m.get('phxd_backend_breaker_trips_total'), 2);
  assert.deepEqual(await pushP(ch, 'e', {}), unavailable);
  assert.equal(hits(), 3, 'open again: no call');

  failing = false;
  // Calls fail at once until the open time is over, then one probe goes through.
  let r;
  await waitFor(async () => {
    r = await pushP(ch, 'e', { probe: true });
    if (r.status === 'ok') return true;
    assert.deepEqual(r, unavailable);
    assert.equal(hits(), 3);
    await sleep(100);
    return false;
  }, D, 'the probe');
  assert.equal(hits(), 4, 'one probe call');
  m = await metrics(srv);
  assert.equal(m.get('phxd_backend_breakers_open'), 0);
  for (let i = 0; i < 3; i++) assert.equal((await pushP(ch, 'e', { i })).status, 'ok');
  assert.equal(hits(), 7, 'calls flow again');
  await closeAll([s]);
  await srv.stop();
});

// ---- 12. leaves ----

test('leaves: a socket with several backend-joined channels closes: leave calls (one by one or one batch) with reason "closed"; ch.leave() gives "leave"', async () => {
  be.handler = null;
  const m0 = await metrics(main);
  const s = await client(main, { sid: 'users_socket:t12' });
  const topics = ['room:t12-a', 'room:t12-b', 'room:t12-c'];
  for (const t of topics) await joined(s, t);
  const left = await joined(s, 'room:t12-left');
  await withTimeout(new Promise((resolve) => left.leave(D).receive('ok', resolve)), D, 'leave');
  await waitFor(() => leavesOf(be).some((l) => l.topic === 'room:t12-left'), D, 'the leave call');
  const l0 = leavesOf(be).filter((l) => l.topic === 'room:t12-left');
  assert.equal(l0.length, 1);
  assert.equal(l0[0].reason, 'leave');
  assert.equal(l0[0].socket.id, 'users_socket:t12');

  await closeAll([s]);
  await waitFor(() => topics.every((t) => leavesOf(be).some((l) => l.topic === t)), D, 'the leave calls');
  const ls = leavesOf(be).filter((l) => topics.includes(l.topic));
  assert.equal(ls.length, 3);
  for (const l of ls) {
    assert.equal(l.reason, 'closed');
    assert.equal(l.type, 'leave');
    assert.equal(l.socket.id, 'users_socket:t12');
  }
  const batches = be.calls.filter((r) => r.call && r.call.type === 'batch' && r.call.calls.some((c) => topics.includes(c.topic)));
  if (batches.length) {
    assert.equal(batches.length, 1, 'one batch');
    assert.deepEqual(batches[0].call.calls.map((c) => c.topic).sort(), topics);
    const m1 = await metrics(main);
    assert.equal(m1.get('phxd_backend_leave_batches_total'), m0.get('phxd_backend_leave_batches_total') + 1);
  }
});

// ---- 13. presence ----

test('presence through the backend: a join answer tracks the key with its meta on both clients, an event answer updates it, null removes it', async () => {
  const t = 'room:t13';
  be.handler = (call) => {
    if (call && call.type === 'join' && call.topic === t) {
      return { status: 'ok', response: {}, presence: { key: call.payload.name, meta: { status: 'online', name: call.payload.name } } };
    }
    if (call && call.type === 'event' && call.topic === t && call.event === 'away') {
      return { reply: { status: 'ok', response: {} }, presence: { meta: { status: 'away' } } };
    }
    if (call && call.type === 'event' && call.topic === t && call.event === 'gone') {
      return { reply: { status: 'ok', response: {} }, presence: null };
    }
    return defaults(call);
  };
  const mk = async (name) => {
    const s = await client(main, { uid: name });
    const ch = s.channel(t, { name });
    const p = new Presence(ch);
    const syncs = [];
    p.onSync(() => syncs.push(p.list((key, { metas }) => ({ key, metas: metas.map(({ phx_ref, phx_ref_prev, ...m }) => m) }))));
    assert.equal((await joinP(ch)).status, 'ok');
    return { s, ch, p, syncs };
  };
  const view = (p) => Object.fromEntries(p.list((key, { metas }) => [key, metas.map(({ phx_ref, phx_ref_prev, ...m }) => m)]));
  const alice = await mk('alice');
  const bob = await mk('bob');
  const both = { alice: [{ status: 'online', name: 'alice' }], bob: [{ status: 'online', name: 'bob' }] };
  await waitFor(() => JSON.stringify(view(alice.p)) === JSON.stringify(both) && JSON.stringify(view(bob.p)) === JSON.stringify(both), D, 'both lists');

  assert.equal((await pushP(alice.ch, 'away', {})).status, 'ok');
  const away = { alice: [{ status: 'away' }], bob: [{ status: 'online', name: 'bob' }] };
  await waitFor(() => bob.syncs.some((l) => JSON.stringify(Object.fromEntries(l.map((e) => [e.key, e.metas]))) === JSON.stringify(away)), D, 'onSync sees the update');
  await waitFor(() => JSON.stringify(view(alice.p)) === JSON.stringify(away), D, 'alice\'s own list updated');
  assert.equal(alice.p.list((k, { metas }) => (k === 'alice' ? metas.length : 0)).reduce((a, b) => a + b, 0), 1);

  assert.equal((await pushP(alice.ch, 'gone', {})).status, 'ok');
  const gone = { bob: [{ status: 'online', name: 'bob' }] };
  await waitFor(() => JSON.stringify(view(bob.p)) === JSON.stringify(gone) && JSON.stringify(view(alice.p)) === JSON.stringify(gone), D, 'alice removed');
  await closeAll([alice.s, bob.s]);
});

// ---- 14. the per-channel waiting bound ----

test('--max-waiting-msgs 5: with the first answer held, 5 messages wait (then handled in order) and those beyond are answered error unavailable at once', async () => {
  const wbe = await startBackend();
  backends.push(wbe);
  const srv = await startServer(['--backend-url', wbe.url, '--max-waiting-msgs', '5',
    '--channel', 'w:* join=backend events=backend']);
  servers.push(srv);
  let release;
  const held = new Promise((r) => { release = r; });
  const seen = [];
  wbe.handler = async (call) => {
    if (call && call.type === 'event') {
      seen.push(call.payload.i);
      if (call.payload.i === 0) await held;
      return { reply: { status: 'ok', response: { i: call.payload.i } } };
    }
    return defaults(call);
  };
  const s = await client(srv, { token: signToken(14) });
  const ch = await joined(s, 'w:1');
  const N = 10;
  const results = [];
  for (let i = 0; i < N; i++) {
    ch.push('n', { i }, D)
      .receive('ok', (r) => results.push([i, 'ok', r]))
      .receive('error', (r) => results.push([i, 'error', r]))
      .receive('timeout', () => results.push([i, 'timeout']));
  }
  await waitFor(() => results.length >= 4, D, 'the refusals');
  await sleep(200);
  assert.deepEqual(results, [6, 7, 8, 9].map((i) => [i, 'error', { reason: 'unavailable' }]), 'beyond 5 waiting: error at once');
  assert.deepEqual(seen, [0], 'only the first call made');
  release();
  await waitFor(() => results.length === N, D, 'the waiting ones');
  assert.deepEqual(results.slice(4), [0, 1, 2, 3, 4, 5].map((i) => [i, 'ok', { i }]));
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
  // The channel goes on.
  assert.deepEqual(await pushP(ch, 'n', { i: 100 }), { status: 'ok', response: { i: 100 } });
  await closeAll([s]);
  await srv.stop();
});

// ---- 15. an https:// backend ----

test('an https backend (backend=URL on the rule): verified with --backend-ca-file; an untrusted certificate is a transport failure', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-backend-tls-'));
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const calls = [];
  const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const call = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      calls.push(call);
      const ans = call.type === 'join' ? { status: 'ok', response: { tls: true } }
        : call.type === 'event' ? { reply: { status: 'ok', response: { echo: call.payload } } } : {};
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(ans));
    });
  });
  server.keepAliveTimeout = 120000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${server.address().port}/cb`;
  const trusted = await startServer(['--backend-ca-file', path.join(dir, 'cert.pem'),
    '--channel', `"tls:*" join=backend events=backend backend=${url}`]);
  servers.push(trusted);
  // Without the CA file the system's trust store does not know the certificate.
  const untrusted = await startServer(['--backend-breaker-open-ms', '0',
    '--channel', `"tls:*" join=backend events=backend backend=${url}`]);
  servers.push(untrusted);
  try {
    const s = await client(trusted, { token: signToken(15) });
    const ch = s.channel('tls:1');
    assert.deepEqual(await joinP(ch), { status: 'ok', response: { tls: true } });
    assert.deepEqual(await pushP(ch, 'e', { n: 1 }), { status: 'ok', response: { echo: { n: 1 } } });
    assert.deepEqual(await pushP(ch, 'e', { n: 2 }), { status: 'ok', response: { echo: { n: 2 } } });
    assert.equal(calls.length, 3);
    const before = calls.length;
    const m0 = await metrics(untrusted);
    const s2 = await client(untrusted, { token: signToken(15) });
    const ch2 = s2.channel('tls:2');
    assert.deepEqual(await joinP(ch2), unavailable);
    drop(ch2);
    const m1 = await metrics(untrusted);
    assert.equal(bcalls(m1, 'join', 'transport') - bcalls(m0, 'join', 'transport'), 1);
    assert.equal(calls.length, before, 'no call reached the backend over an unverified connection');
    await closeAll([s, s2]);
  } finally {
    await new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- 16. the example backend (examples/backend/backend.mjs) works as the README says ----

test('examples/backend/backend.mjs: connect, a member-only room, the welcome push, presence, a sanitized shout, unknown events, stop', async () => {
  const { spawn } = await import('node:child_process');
  const port = await freePort();
  const proc = spawn(process.execPath, [new URL('../examples/backend/backend.mjs', import.meta.url).pathname, String(port)],
    { env: { ...process.env, PHXD_BACKEND_SECRET: 's3cret' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const reap = () => proc.kill('SIGKILL');
  process.once('exit', reap);
  try {
    await waitFor(() => new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'GET', path: '/' }, (res) => { res.resume(); resolve(true); });
      req.on('error', () => resolve(false));
      req.end();
    }), D, 'the example backend listening');
    const srv = await startServer(['--connect', 'backend', '--backend-url', `http://127.0.0.1:${port}/phxd`,
      '--backend-secret', 's3cret', '--channel', '"room:*" join=backend events=backend'], { secret: null });
    servers.push(srv);
    const alice = await client(srv, { user: 'alice' });
    const bob = await client(srv, { user: 'bob' });
    const lobby = alice.channel('room:lobby');
    const welcome = new Promise((resolve) => lobby.on('welcome', resolve));
    const presence = new Presence(lobby);
    assert.deepEqual(await joinP(lobby), { status: 'ok', response: { joined: 'room:lobby' } });
    assert.deepEqual(await welcome, { text: 'hello alice' });
    await waitFor(() => presence.list().length === 1, D, 'alice in the presence list');
    assert.equal(presence.list((id, { metas }) => `${id}:${metas[0].status}`)[0], 'alice:online');
    // bob is not a member of room:secret; alice is
    const secretB = bob.channel('room:secret');
    assert.deepEqual(await joinP(secretB), { status: 'error', response: { reason: 'unauthorized' } });
    drop(secretB);
    assert.equal((await joinP(alice.channel('room:secret'))).status, 'ok');
    // a shout is sanitized and broadcast to the room
    const lobbyB = bob.channel('room:lobby');
    assert.equal((await joinP(lobbyB)).status, 'ok');
    const shout = new Promise((resolve) => lobbyB.on('shout', resolve));
    assert.deepEqual(await pushP(lobby, 'shout', { body: '<b>hi</b>' }), { status: 'ok', response: { saved: true } });
    assert.deepEqual(await shout, { from: 'alice', body: 'bhi/b' });
    assert.deepEqual(await pushP(lobby, 'nope', {}), { status: 'error', response: { reason: 'unknown event' } });
    assert.equal((await pushP(lobby, 'typing', {}, 300)).status, 'timeout');
    await waitFor(() => presence.list((id, { metas }) => metas[0].status)[0] === 'typing', D, 'alice typing');
    const closed = new Promise((resolve) => lobby.onClose(resolve));
    assert.deepEqual(await pushP(lobby, 'bye', {}), { status: 'ok', response: {} });
    await closed;
    // a socket without a user is refused by connect
    const r = await fetch(`${srv.url}/socket/longpoll?vsn=2.0.0`, { signal: AbortSignal.timeout(5000) });
    assert.deepEqual(await r.json(), { status: 403 });
    await closeAll([alice, bob]);
    await srv.stop();
  } finally {
    proc.kill('SIGTERM');
    process.off('exit', reap);
  }
});
