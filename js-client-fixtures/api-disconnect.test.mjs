// Disconnect by socket id (docs/protocol.md §3.9) through phxd's HTTP API on both
// transports, the API itself (auth, validation, limits, byte-exact JSON
// forwarding), and phoenix.js coming back by itself after a disconnect or a
// server restart. Socket ids stay the server's: under a '*' join=any rule no
// client can join users_socket:ID or disconnect anybody by pushing
// "disconnect", and /api/disconnect refuses ids that are rooms.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket,
  nextClose, nextOpen, nextMessage, recordMessages,
} from './lib/server.mjs';
import { rawWs, rawJoinV2, httpRequest } from './lib/raw.mjs';
import { lpSocket, LpSession, lpGet, api, waitFor } from './lib/longpoll.mjs';

const KEY = 'api-test-key-0123456789';
const MAX_BODY = 2048;
let server;
let nokey;
let wide; // every topic joinable, client events broadcast
const sockets = [];
const raws = [];
const extraServers = [];

before(async () => {
  [server, nokey, wide] = await Promise.all([
    startServer(['--api-key', KEY, '--max-body-bytes', String(MAX_BODY)]),
    startServer(),
    startServer(['--api-key', KEY, '--channel', 'quiet:* join=any events=broadcast_from',
      '--channel', '* join=any events=broadcast']),
  ]);
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(raws.map((r) => r.close()));
  await Promise.all([server, nokey, wide, ...extraServers].filter(Boolean).map((s) => s.stop()));
});

const tok = (uid) => encodeURIComponent(signToken(uid));
const okReply = (joinRef, ref, topic, response = {}) => [joinRef, ref, topic, 'phx_reply', { response, status: 'ok' }];
const disconnect = (srv, id) => api(srv, '/api/disconnect', { id }, { key: KEY });
const fast = { reconnectAfterMs: () => 20, rejoinAfterMs: () => 20 };

async function raw(uid, vsn = '2.0.0', srv = server) {
  const r = await rawWs(srv, `token=${tok(uid)}&vsn=${vsn}`);
  raws.push(r);
  return r;
}

async function phx(uid, opts = {}, srv = server) {
  const s = phxSocket(srv, { token: signToken(uid) }, opts);
  sockets.push(s);
  await connect(s);
  return s;
}

async function phxLp(uid, opts = {}, srv = server) {
  const s = lpSocket(srv, { token: signToken(uid) }, opts);
  sockets.push(s);
  await connect(s);
  return s;
}

const unmatched = (joinRef, ref, topic) => [joinRef, ref, topic, 'phx_reply', { response: { reason: 'unmatched topic' }, status: 'error' }];

// Asserts that phoenix.js's join of `ch` is refused with `reason`, and stops its rejoins.
async function refusedJoin(ch, reason = 'unmatched topic') {
  await assert.rejects(join(ch), (e) => {
    assert.deepEqual(e.reply, { reason });
    return true;
  });
  ch.rejoinTimer.reset();
}

// A heartbeat answered proves that nothing else was queued for `r` before it.
async function nothingPending(r, ref) {
  r.sendJson([null, ref, 'phoenix', 'heartbeat', {}]);
  assert.deepEqual(await r.nextJson(), [null, ref, 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]);
}

// Resolves when `ch` has been joined again with a join_ref other than `oldRef`.
function rejoined(socket, ch, oldRef, ms = 5000) {
  return nextMessage(socket, (m) => m.topic === ch.topic && m.event === 'phx_reply' && m.ref !== oldRef
    && m.ref === ch.joinRef() && m.payload.status === 'ok', ms, `rejoin of ${ch.topic}`);
}

test('disconnect by id closes every WebSocket of that user with 1001, no phx_close/phx_error first; other users unaffected', async () => {
  const a1 = await raw(42);
  await rawJoinV2(a1, 'room:d', '1');
  await rawJoinV2(a1, 'user:42', '2');
  const a2 = await raw(42, '1.0.0');
  a2.sendJson({ topic: 'room:d', event: 'phx_join', payload: {}, ref: '1' });
  await a2.nextJson();
  const a3 = await phx(42);
  await join(a3.channel('room:d'));
  const a3Log = recordMessages(a3);
  const a3Closed = nextClose(a3);
  const b = await raw(43);
  await rawJoinV2(b, 'room:d', '1');
  const before = [a1.received.length, a2.received.length];

  const res = await disconnect(server, 'users_socket:42');
  assert.equal(res.status, 202);
  assert.deepEqual(res.json, { sockets: 3 });
  assert.equal((await a1.waitClosed()).code, 1001);
  assert.equal((await a2.waitClosed()).code, 1001);
  assert.equal((await a3Closed).code, 1001);
  assert.deepEqual(a1.received.slice(before[0]), [], 'no frame before the close');
  assert.deepEqual(a2.received.slice(before[1]), []);
  assert.deepEqual(a3Log.filter((m) => m.event === 'phx_close' || m.event === 'phx_error'), []);

  // User 43 is still connected and alone in the room.
  b.sendJson(['1', '2', 'room:d', 'shout', { still: true }]);
  assert.deepEqual(await b.nextJson(), [null, null, 'room:d', 'shout', { still: true }]);
  assert.deepEqual(await b.nextJson(), okReply('1', '2', 'room:d'));
  const r2 = await api(server, '/api/broadcast', { topic: 'room:d', event: 'x', payload: {} }, { key: KEY });
  assert.deepEqual(r2.json, { recipients: 1 });
  // An id nobody has: 202, nothing closed.
  const none = await disconnect(server, 'users_socket:999');
  assert.equal(none.status, 202);
  assert.deepEqual(none.json, { sockets: 0 });
});

test('phoenix.js over WebSocket reconnects by itself after a disconnect by id and rejoins', async () => {
  const s = await phx(50, fast);
  const ch = s.channel('room:back');
  await join(ch);
  const oldRef = ch.joinRef();
  const closed = nextClose(s);
  const opened = nextOpen(s);
  const again = rejoined(s, ch, oldRef);
  assert.equal((await disconnect(server, 'users_socket:50')).status, 202);
  assert.equal((await closed).code, 1001);
  await opened;
  await again;
  assert.equal(ch.state, 'joined');
  assert.deepEqual(await push(ch, 'ping', { back: true }), { status: 'ok', response: { back: true } });
});

test('broadcasting "disconnect" on the socket id topic closes the socket; other events on that topic are ignored', async () => {
  const r = await raw(60);
  const n = r.received.length;
  const other = await api(server, '/api/broadcast', { topic: 'users_socket:60', event: 'hello', payload: { a: 1 } }, { key: KEY });
  assert.equal(other.status, 202);
  r.sendJson([null, 'hb', 'phoenix', 'heartbeat', {}]);
  assert.deepEqual(await r.nextJson(), [null, 'hb', 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]);
  assert.equal(r.received.length, n + 1, 'the id-topic event was not forwarded');
  const res = await api(server, '/api/broadcast', { topic: 'users_socket:60', event: 'disconnect', payload: {} }, { key: KEY });
  assert.equal(res.status, 202);
  assert.equal((await r.waitClosed()).code, 1001);
});

test('disconnect by id ends the LongPoll sessions of that user: the parked GET ends, POST gets 410, GET opens anew', async () => {
  const auth = { 'x-phoenix-authtoken': signToken(70) };
  const s = new LpSession(server, 'vsn=2.0.0', { headers: auth });
  await s.open();
  assert.equal((await s.post('["1","1","room:lpd","phx_join",{}]')).text, '{"status":200}');
  await s.untilRef('1');
  const other = new LpSession(server, `token=${tok(71)}&vsn=2.0.0`);
  await other.open();

  // The GET normally parks before the disconnect arrives; if it arrived
  // later it finds no session and opens a new one (410): both are Phoenix.
  const parked = s.poll();
  const res = await disconnect(server, 'users_socket:70');
  assert.equal(res.status, 202);
  assert.deepEqual(res.json, { sockets: 1 });
  const p = await parked;
  assert.ok(p.status === 204 || p.status === 410, `parked GET ended with ${p.status}`);
  assert.equal((await s.post('[null,"2","phoenix","heartbeat",{}]')).text, '{"status":410}');
  const g = await lpGet(server, s.request().query, { headers: s.request().headers });
  assert.equal(g.json.status, 410);
  assert.notEqual(g.json.token, s.token);
  // The other user's session is alive.
  assert.equal((await other.post('[null,"x","phoenix","heartbeat",{}]')).text, '{"status":200}');
  await other.untilRef('x');
});

test('phoenix.js over LongPoll reconnects and rejoins after a disconnect by id (params token and authToken)', async () => {
  for (const [uid, mk] of [
    [80, () => lpSocket(server, { token: signToken(80) }, fast)],
    [81, () => lpSocket(server, {}, { ...fast, authToken: signToken(81) })],
  ]) {
    const s = mk();
    sockets.push(s);
    await connect(s);
    const ch = s.channel(`user:${uid}`);
    await join(ch);
    const oldToken = s.conn.token;
    const oldRef = ch.joinRef();
    const closes = [];
    s.onClose((e) => closes.push(e.code));
    const opened = nextOpen(s);
    const again = rejoined(s, ch, oldRef);
    assert.equal((await disconnect(server, `users_socket:${uid}`)).status, 202);
    await opened;
    await again;
    // params token: the next GET is refused (403 -> close 1008, docs/protocol.md §5.9);
    // authToken: it gets a new session (410 -> close 3410).
    assert.deepEqual(closes, [uid === 80 ? 1008 : 3410]);
    assert.notEqual(s.conn.token, oldToken);
    assert.deepEqual(await push(ch, 'ping', { uid }), { status: 'ok', response: { uid } });
  }
});

test('under "*" join=any, users_socket:42 cannot be joined ("unmatched topic") while user 42 is offline or connected, not even by 42', async () => {
  const b = await phx(43, {}, wide);
  await refusedJoin(b.channel('users_socket:42')); // 42 offline: the prefix alone refuses
  const a = await phx(42, {}, wide);
  await refusedJoin(b.channel('users_socket:42'));
  await refusedJoin(a.channel('users_socket:42'));
  await refusedJoin(b.channel('users_socket:43'));
  await refusedJoin(b.channel('users_socket:'));
  // The same rule still lets every other topic in.
  assert.deepEqual(await join(b.channel('room:wide')), {});
  assert.deepEqual(await join(b.channel('users:42')), {});
  // The exact answer on the wire: an error reply with a null join_ref.
  const r = await raw(43, '2.0.0', wide);
  r.sendJson(['7', '7', 'users_socket:42', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), unmatched(null, '7', 'users_socket:42'));
  assert.ok(a.isConnected() && b.isConnected());
});

test('a client pushing "disconnect" closes nobody: on users_socket:42 it is unmatched, on a joined topic an ordinary broadcast; user 42 keeps receiving', async () => {
  const a = await phx(42, {}, wide);
  const aRoom = a.channel('room:dx');
  const aQuiet = a.channel('quiet:dx');
  await join(aRoom);
  await join(aQuiet);
  const closes = [];
  a.onClose((e) => closes.push(e.code));
  const aOther = await raw(42, '2.0.0', wide); // a second socket of user 42
  const b = await raw(43, '2.0.0', wide);

  // The attack: join 42's id topic and push "disconnect" on it. 42's
  // other socket must still answer a heartbeat afterwards.
  b.sendJson(['1', '1', 'users_socket:42', 'phx_join', {}]);
  b.sendJson(['1', '2', 'users_socket:42', 'disconnect', {}]);
  const answers = [await b.nextJson(), await b.nextJson()];
  await nothingPending(aOther, 'hb0');
  assert.deepEqual(answers, [unmatched(null, '1', 'users_socket:42'), unmatched(null, '2', 'users_socket:42')]);

  // On a topic it joined, "disconnect" is an event like any other:
  // events=broadcast reaches everyone, the sender included...
  assert.deepEqual(await rawJoinV2(b, 'room:dx', '3'), okReply('3', '3', 'room:dx'));
  const heard = nextEvent(aRoom, 'disconnect');
  b.sendJson(['3', '4', 'room:dx', 'disconnect', { x: 1 }]);
  assert.deepEqual(await b.nextJson(), [null, null, 'room:dx', 'disconnect', { x: 1 }]);
  assert.deepEqual(await b.nextJson(), okReply('3', '4', 'room:dx'));
  assert.deepEqual(await heard, { x: 1 });
  // ...and events=broadcast_from the others.
  assert.deepEqual(await rawJoinV2(b, 'quiet:dx', '5'), okReply('5', '5', 'quiet:dx'));
  const heardQuiet = nextEvent(aQuiet, 'disconnect');
  b.sendJson(['5', '6', 'quiet:dx', 'disconnect', { y: 2 }]);
  assert.deepEqual(await b.nextJson(), okReply('5', '6', 'quiet:dx'));
  assert.deepEqual(await heardQuiet, { y: 2 });

  // Both of 42's sockets are alive and still receive.
  const after = nextEvent(aRoom, 'after');
  const res = await api(wide, '/api/broadcast', { topic: 'room:dx', event: 'after', payload: { n: 3 } }, { key: KEY });
  assert.deepEqual(res.json, { recipients: 2 });
  assert.deepEqual(await after, { n: 3 });
  await nothingPending(aOther, 'hb');
  assert.ok(a.isConnected());
  assert.deepEqual(closes, []);
  assert.equal(aOther.closeInfo, null);
});

test('/api/disconnect with an id that is not a socket id (room:lobby) answers 400 and the room hears nothing', async () => {
  const a = await phx(45);
  const ch = a.channel('room:lobby');
  await join(ch);
  const log = recordMessages(a);
  const r = await raw(46);
  assert.deepEqual(await rawJoinV2(r, 'room:lobby', '1'), okReply('1', '1', 'room:lobby'));
  for (const id of ['room:lobby', 'user:45', 'users_socket', 'nobody']) {
    const res = await disconnect(server, id);
    assert.equal(res.status, 400, `${id}: ${res.text}`);
    assert.match(res.json.error, /not a socket id/, id);
  }
  // The socket-id form with nobody connected is still 202 with no sockets.
  assert.deepEqual((await disconnect(server, 'users_socket:4545')).json, { sockets: 0 });
  const after = nextEvent(ch, 'after');
  await api(server, '/api/broadcast', { topic: 'room:lobby', event: 'after', payload: {} }, { key: KEY });
  await after;
  assert.deepEqual(await r.nextJson(), [null, null, 'room:lobby', 'after', {}], 'nothing before the broadcast');
  assert.deepEqual(log.filter((m) => m.event === 'disconnect'), []);
  assert.ok(a.isConnected());
});

test('under "*" join=any, server-side disconnects still work: /api/disconnect and POST /api/broadcast "disconnect" close user 47 on WebSocket (1001) and LongPoll; a would-be eavesdropper hears nothing', async () => {
  const spy = await raw(48, '2.0.0', wide);
  spy.sendJson(['1', '1', 'users_socket:47', 'phx_join', {}]);
  assert.deepEqual(await spy.nextJson(), unmatched(null, '1', 'users_socket:47'));

  for (const how of ['api-disconnect', 'api-broadcast']) {
    const ws = await raw(47, '2.0.0', wide);
    const js = await phx(47, {}, wide);
    const jsClosed = nextClose(js);
    const lp = new LpSession(wide, `token=${tok(47)}&vsn=2.0.0`);
    await lp.open();
    const res = how === 'api-disconnect'
      ? await disconnect(wide, 'users_socket:47')
      : await api(wide, '/api/broadcast', { topic: 'users_socket:47', event: 'disconnect', payload: {} }, { key: KEY });
    assert.equal(res.status, 202, how);
    assert.deepEqual(res.json, how === 'api-disconnect' ? { sockets: 3 } : { recipients: 3 }, how);
    assert.equal((await ws.waitClosed()).code, 1001, how);
    assert.equal((await jsClosed).code, 1001, how);
    assert.equal((await lp.post('[null,"2","phoenix","heartbeat",{}]')).text, '{"status":410}', how);
    js.disconnect();
  }
  await nothingPending(spy, 'hb');
});

test('API auth: 404 without --api-key, 401 without or with a wrong bearer key, 405 for GET, 404 for other paths', async () => {
  for (const path of ['/api/broadcast', '/api/disconnect']) {
    const r = await api(nokey, path, { topic: 'room:a', event: 'e', payload: {} }, { key: KEY });
    assert.equal(r.status, 404, `${path} without --api-key`);
  }
  const body = { topic: 'room:a', event: 'e', payload: {} };
  for (const headers of [{}, { authorization: `Bearer ${KEY}x` }, { authorization: `Bearer ${KEY.slice(0, -1)}` },
    { authorization: `Basic ${KEY}` }, { authorization: KEY }, { authorization: 'Bearer ' }]) {
    for (const path of ['/api/broadcast', '/api/disconnect']) {
      const r = await api(server, path, body, { headers });
      assert.equal(r.status, 401, `${path} ${JSON.stringify(headers)}`);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    }
  }
  const get = await api(server, '/api/broadcast', undefined, { key: KEY, method: 'GET' });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  const get2 = await api(server, '/api/disconnect', undefined, { key: KEY, method: 'GET' });
  assert.equal(get2.status, 405);
  assert.equal((await api(server, '/api/nope', body, { key: KEY })).status, 404);
});

test('API validation: 400 for bad JSON or fields, 413 over --max-body-bytes', async () => {
  const bad = {
    '/api/broadcast': ['{', '[]', '"x"', '{}', '{"topic":"","event":"e","payload":{}}', '{"topic":1,"event":"e","payload":{}}',
      '{"topic":"room:a","payload":{}}', '{"topic":"room:a","event":"","payload":{}}', '{"topic":"room:a","event":"e","payload":[1]}',
      '{"topic":"room:a","event":"e","payload":"s"}', '{"topic":"room:a","event":"e","payload_base64":"!!"}',
      '{"topic":"room:a","event":"e","payload_base64":5}', ''],
    '/api/disconnect': ['{', '{}', '{"id":""}', '{"id":42}', '[]'],
  };
  for (const [path, bodies] of Object.entries(bad)) {
    for (const b of bodies) {
      const r = await api(server, path, b, { key: KEY });
      assert.equal(r.status, 400, `${path} ${b}: ${r.text}`);
    }
  }
  const big = JSON.stringify({ topic: 'room:a', event: 'e', payload: { pad: 'x'.repeat(MAX_BODY) } });
  const res = await httpRequest(server.port, `POST /api/broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n${big}`);
  res.destroy();
  assert.equal(res.status, 413, res.head);
  // Just under the limit is fine.
  const skeleton = JSON.stringify({ topic: 'room:a', event: 'e', payload: { pad: '' } });
  const fits = JSON.stringify({ topic: 'room:a', event: 'e', payload: { pad: 'y'.repeat(MAX_BODY - skeleton.length) } });
  assert.equal(fits.length, MAX_BODY);
  assert.equal((await api(server, '/api/broadcast', fits, { key: KEY })).status, 202);
});

test('API: an unknown field is refused with 400 naming it, on both routes, and nothing is sent', async () => {
  const r1 = await raw(70, '2.0.0', wide);
  await rawJoinV2(r1, 'room:unk', '1');
  const cases = [
    ['/api/broadcast', { topic: 'room:unk', event: 'e', payload: {}, except: 'users_socket:1' }, 'unknown field "except"'],
    ['/api/broadcast', { topic: 'room:unk', event: 'e', Payload: {} }, 'unknown field "Payload"'],
    ['/api/disconnect', { id: 'users_socket:70', reason: 'bye' }, 'unknown field "reason"'],
    ['/api/broadcast', '{"topic":"room:unk","event":"e","we\\"ird\\u00e9":1}', 'unknown field "we"irdé"'],
  ];
  for (const [path, body, error] of cases) {
    const r = await api(wide, path, body, { key: KEY });
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
    assert.deepEqual(r.json, { error }, r.text);
  }
  // A long key is named, cut short.
  const long = await api(wide, '/api/broadcast', { topic: 'room:unk', event: 'e', ['k'.repeat(500)]: 1 }, { key: KEY });
  assert.equal(long.status, 400);
  assert.equal(long.json.error, `unknown field "${'k'.repeat(64)}"`);
  // Every field accepted today still is.
  const ok = await api(wide, '/api/broadcast', { topic: 'room:unk', event: 'ok', payload: { a: 1 } }, { key: KEY });
  assert.deepEqual([ok.status, ok.json], [202, { recipients: 1 }]);
  assert.deepEqual(await r1.nextJson(), [null, null, 'room:unk', 'ok', { a: 1 }]);
  const bin = await api(wide, '/api/broadcast', { topic: 'room:unk', event: 'bin', payload_base64: 'AQID' }, { key: KEY });
  assert.deepEqual([bin.status, bin.json], [202, { recipients: 1 }]);
  assert.equal((await r1.next()).isBinary, true);
  await nothingPending(r1, 'hb-unk');
});

test('API batch broadcast: {"messages":[...]} reaches the subscribers of several topics, in order', async () => {
  const a = await raw(71, '2.0.0', wide);
  await rawJoinV2(a, 'room:b1', '1');
  await rawJoinV2(a, 'room:b2', '2');
  const b = await raw(72, '2.0.0', wide);
  await rawJoinV2(b, 'room:b2', '1');
  const messages = [
    { topic: 'room:b1', event: 'one', payload: { n: 1 } },
    { topic: 'room:b2', event: 'two', payload: { n: 'BIG' } },
    { topic: 'room:nobody', event: 'three' },
    { topic: 'room:b1', event: 'four', payload: { n: 4 } },
  ];
  // Payloads go out byte for byte, big integers included.
  const body = JSON.stringify({ messages }).replace('"BIG"', '12345678901234567890');
  const r = await api(wide, '/api/broadcast', body, { key: KEY });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { recipients: 4, messages: 4 });
  assert.equal(await a.nextText(), '[null,null,"room:b1","one",{"n":1}]');
  assert.equal(await a.nextText(), '[null,null,"room:b2","two",{"n":12345678901234567890}]');
  assert.equal(await a.nextText(), '[null,null,"room:b1","four",{"n":4}]');
  assert.equal(await b.nextText(), '[null,null,"room:b2","two",{"n":12345678901234567890}]');
  // A batch of exactly the maximum is accepted.
  const max = Array.from({ length: 1000 }, (_, i) => ({ topic: 'room:bmax', event: 'e', payload: { i } }));
  const rmax = await api(wide, '/api/broadcast', { messages: max }, { key: KEY });
  assert.deepEqual([rmax.status, rmax.json], [202, { recipients: 0, messages: 1000 }]);
  await nothingPending(a, 'hb-b1');
  await nothingPending(b, 'hb-b2');
});

test('API batch broadcast: over 1000 messages, an empty batch or one bad message is 400 and sends nothing', async () => {
  const a = await raw(73, '2.0.0', wide);
  await rawJoinV2(a, 'room:bx', '1');
  const good = { topic: 'room:bx', event: 'e', payload: {} };
  const bad = [
    [{ messages: Array.from({ length: 1001 }, () => good) }, 'messages must hold 1 to 1000 messages, got 1001'],
    [{ messages: [] }, 'messages must hold 1 to 1000 messages, got 0'],
    [{ messages: {} }, null],
    [{ messages: [good, good, { topic: 'room:bx', event: 'e', except: 'x' }] }, 'messages[2]: unknown field "except"'],
    [{ messages: [good, { topic: 'room:bx', payload: {} }] }, 'messages[1]: event must be a non-empty string'],
    [{ messages: [good, { topic: 'room:bx', event: 'e', payload: [1] }] }, 'messages[1]: payload must be an object'],
    [{ messages: [good, { topic: 'room:bx', event: 'e', payload_base64: '!!' }] }, 'messages[1]: payload_base64 must be standard base64'],
    // A NUL in the string (once decoded) is refused, and nothing of it is kept (the sanitized build's leak check).
    [{ messages: [good, { topic: 'room:bx', event: 'e', payload_base64: 'AA\u0000==' }] }, 'messages[1]: payload_base64 must be a string of standard base64'],
    [{ messages: [good, 'x'] }, 'messages[1]: must be an object'],
    [{ messages: [good], topic: 'room:bx' }, 'unknown field "topic"'],
    [{ messages: [good, { topic: 'room:bx', event: 'e'.repeat(300), payload_base64: 'AQ==' }] }, 'messages[1]: payload cannot be encoded'],
  ];
  for (const [body, error] of bad) {
    const r = await api(wide, '/api/broadcast', body, { key: KEY });
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
    if (error) assert.deepEqual(r.json, { error });
  }
  // Nothing of any refused batch reached the subscriber.
  await nothingPending(a, 'hb-bx');
});

test('API broadcast forwards big integers and the JSON payload byte for byte (minified) to every transport', async () => {
  const topic = 'room:apibig';
  const v2 = await raw(1);
  await rawJoinV2(v2, topic, '1');
  const v1 = await raw(2, '1.0.0');
  v1.sendJson({ topic, event: 'phx_join', payload: {}, ref: '1' });
  await v1.nextJson();
  const lp = new LpSession(server, `token=${tok(3)}&vsn=2.0.0`);
  await lp.open();
  await lp.post(`["1","1","${topic}","phx_join",{}]`);
  await lp.untilRef('1');
  const body = `{ "topic" : "${topic}",\n  "event": "big",\n  "payload": { "n": 12345678901234567890, "m": -98765432109876543210,\n`
    + '    "list": [1, 2, {"deep": true}], "s": "a b", "z": 0 } }';
  const payload = '{"n":12345678901234567890,"m":-98765432109876543210,"list":[1,2,{"deep":true}],"s":"a b","z":0}';
  const res = await api(server, '/api/broadcast', body, { key: KEY });
  assert.equal(res.status, 202);
  assert.deepEqual(res.json, { recipients: 3 });
  assert.equal(await v2.nextText(), `[null,null,"${topic}","big",${payload}]`);
  const t1 = await v1.nextText();
  assert.ok(t1.includes(`"payload":${payload}`), t1);
  const p = await lp.poll();
  assert.deepEqual(p.raw, [`[null,null,"${topic}","big",${payload}]`]);
});

test('after a server restart on the same port, phoenix.js reconnects and rejoins by itself on both transports', async () => {
  const first = await startServer();
  extraServers.push(first);
  const ws = phxSocket(first, { token: signToken(1) }, { reconnectAfterMs: () => 50, rejoinAfterMs: () => 50 });
  const lp = lpSocket(first, { token: signToken(2) }, { reconnectAfterMs: () => 50, rejoinAfterMs: () => 50 });
  sockets.push(ws, lp);
  await connect(ws);
  await connect(lp);
  const chWs = ws.channel('room:restart');
  const chLp = lp.channel('room:restart');
  await join(chWs);
  await join(chLp);
  const wsBack = nextOpen(ws, 15000);
  const lpBack = nextOpen(lp, 15000);
  const wsRejoin = rejoined(ws, chWs, chWs.joinRef(), 15000);
  const lpRejoin = rejoined(lp, chLp, chLp.joinRef(), 15000);
  const wsClosed = nextClose(ws);
  await first.stop('SIGKILL');
  await wsClosed;
  // Both clients keep retrying while nothing listens.
  await waitFor(() => !lp.isConnected(), 5000, 'LongPoll client notices');
  const second = await startServer([], { port: first.port });
  extraServers.push(second);
  await Promise.all([wsBack, lpBack, wsRejoin, lpRejoin]);
  assert.equal(chWs.state, 'joined');
  assert.equal(chLp.state, 'joined');
  const atWs = nextEvent(chWs, 'hello');
  const atLp = nextEvent(chLp, 'hello');
  assert.equal((await push(chLp, 'hello', { from: 'lp' })).status, 'ok');
  assert.deepEqual(await atWs, { from: 'lp' });
  assert.deepEqual(await atLp, { from: 'lp' });
  const back = nextEvent(chLp, 'reply');
  assert.equal((await push(chWs, 'reply', { from: 'ws' })).status, 'ok');
  assert.deepEqual(await back, { from: 'ws' });
});
