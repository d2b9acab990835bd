// phoenix.js 1.8.16 over the LongPoll transport (`transport: LongPoll`,
// Node's fetch) against phxd: connect, join, push/reply, ping, broadcasts
// shared with WebSocket clients, leave, user topic auth, refused connects,
// and binary payloads (client -> server only, docs/protocol.md §5.7).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket,
  recordMessages, withTimeout,
} from './lib/server.mjs';
import { rawWs, rawJoinV2 } from './lib/raw.mjs';
import { lpSocket, LongPoll, api, waitFor } from './lib/longpoll.mjs';

const KEY = 'longpoll-js-key';
let server;
const sockets = [];
const raws = [];

before(async () => { server = await startServer(['--api-key', KEY]); });

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(raws.map((r) => r.close()));
  if (server) await server.stop();
});

async function lpClient(uid, opts = {}) {
  const s = lpSocket(server, { token: signToken(uid) }, opts);
  sockets.push(s);
  await connect(s);
  return s;
}

async function wsClient(uid) {
  const s = phxSocket(server, { token: signToken(uid) });
  sockets.push(s);
  await connect(s);
  return s;
}

function leave(ch) {
  return withTimeout(new Promise((resolve, reject) => {
    ch.leave().receive('ok', resolve).receive('timeout', () => reject(new Error('leave timeout')));
  }), 5000, 'leave');
}

test('phoenix.js connects over LongPoll, joins, and gets replies to its pushes', async () => {
  const s = await lpClient(42);
  assert.equal(s.transport, LongPoll);
  assert.equal(s.isConnected(), true);
  assert.equal(s.conn.constructor, LongPoll);
  const ch = s.channel('room:lp1');
  assert.deepEqual(await join(ch), {});
  const payload = { a: 1, nested: { list: [1, 'two', null, true], s: 'é' } };
  assert.deepEqual(await push(ch, 'ping', payload), { status: 'ok', response: payload });
  // Any other event is broadcast to the room (sender included), then replied ok {}.
  const got = nextEvent(ch, 'shout');
  assert.deepEqual(await push(ch, 'shout', { n: 1 }), { status: 'ok', response: {} });
  assert.deepEqual(await got, { n: 1 });
});

test('pushes issued in one task travel in one POST and all get their replies in order', async () => {
  const s = await lpClient(42);
  const ch = s.channel('room:lpbatch');
  await join(ch);
  const replies = await Promise.all(Array.from({ length: 120 }, (_, i) => push(ch, 'ping', { i })));
  assert.deepEqual(replies.map((r) => r.response.i), Array.from({ length: 120 }, (_, i) => i));
  assert.ok(replies.every((r) => r.status === 'ok'));
});

test('socket.ping over LongPoll gets its reply', async () => {
  const s = await lpClient(42);
  const rtt = await withTimeout(new Promise((resolve) => { assert.equal(s.ping(resolve), true); }), 5000, 'ping');
  assert.equal(typeof rtt, 'number');
  assert.ok(rtt >= 0);
});

test('broadcasts flow both ways between a LongPoll client and a WebSocket client in one room', async () => {
  const lp = await lpClient(1);
  const ws = await wsClient(2);
  const chLp = lp.channel('room:mixed');
  const chWs = ws.channel('room:mixed');
  await join(chLp);
  await join(chWs);
  const logLp = recordMessages(lp);

  const atWs = nextEvent(chWs, 'from_lp');
  const atLpSelf = nextEvent(chLp, 'from_lp');
  assert.equal((await push(chLp, 'from_lp', { body: 'hi ws' })).status, 'ok');
  assert.deepEqual(await atWs, { body: 'hi ws' });
  assert.deepEqual(await atLpSelf, { body: 'hi ws' });

  const atLp = nextEvent(chLp, 'from_ws');
  assert.equal((await push(chWs, 'from_ws', { body: 'hi lp', big: 12345678 })).status, 'ok');
  assert.deepEqual(await atLp, { body: 'hi lp', big: 12345678 });
  const m = logLp.find((x) => x.event === 'from_ws');
  assert.equal(m.join_ref, null, 'broadcasts carry join_ref null');
  assert.equal(m.ref, null);

  // Server-side broadcasts (the HTTP API) reach both transports.
  const a = nextEvent(chLp, 'api_ev');
  const b = nextEvent(chWs, 'api_ev');
  const r = await api(server, '/api/broadcast', { topic: 'room:mixed', event: 'api_ev', payload: { x: 1 } }, { key: KEY });
  assert.equal(r.status, 202);
  assert.deepEqual(r.json, { recipients: 2 });
  assert.deepEqual(await a, { x: 1 });
  assert.deepEqual(await b, { x: 1 });
});

test('leave over LongPoll: ok, then nothing more from that room while others still get it', async () => {
  const lp = await lpClient(1);
  const ws = await wsClient(2);
  const chLp = lp.channel('room:lpleave');
  const barrier = lp.channel('room:lpbarrier');
  const chWs = ws.channel('room:lpleave');
  await join(chLp);
  await join(barrier);
  await join(chWs);
  const log = recordMessages(lp);
  await leave(chLp);
  assert.equal(chLp.state, 'closed');
  // The server sent phx_close for the left channel.
  await waitFor(() => log.some((m) => m.topic === 'room:lpleave' && m.event === 'phx_close'), 5000, 'phx_close');
  const mark = log.length;
  const gotWs = nextEvent(chWs, 'after');
  assert.equal((await push(chWs, 'after', { n: 2 })).status, 'ok');
  assert.deepEqual(await gotWs, { n: 2 });
  // A's next reply on another channel comes after anything queued for it.
  assert.equal((await push(barrier, 'ping', {})).status, 'ok');
  assert.deepEqual(log.slice(mark).filter((m) => m.topic === 'room:lpleave'), []);
});

test('user:<id> over LongPoll: own topic joins, another user\'s is refused unauthorized', async () => {
  const s = await lpClient(42);
  assert.deepEqual(await join(s.channel('user:42')), {});
  const ch = s.channel('user:43');
  await assert.rejects(join(ch), (e) => {
    assert.deepEqual(e.reply, { reason: 'unauthorized' });
    return true;
  });
  ch.rejoinTimer.reset();
  const ch2 = s.channel('nope:1');
  await assert.rejects(join(ch2), (e) => {
    assert.deepEqual(e.reply, { reason: 'unmatched topic' });
    return true;
  });
  ch2.rejoinTimer.reset();
});

test('a refused LongPoll connect (403) makes phoenix.js error, close with 1008 and keep reconnecting', async () => {
  const s = lpSocket(server, { token: 'garbage' }, { reconnectAfterMs: () => 20 });
  sockets.push(s);
  const errors = [];
  const closes = [];
  let opened = false;
  s.onError((e) => errors.push(e));
  s.onClose((e) => closes.push(e.code));
  s.onOpen(() => { opened = true; });
  s.connect();
  await waitFor(() => errors.length >= 3, 5000, 'three refused attempts');
  await closeSocket(s);
  assert.equal(opened, false);
  assert.ok(errors.slice(0, 3).every((e) => e === 403), `errors ${errors}`);
  assert.ok(closes.slice(0, 3).every((c) => c === 1008), `closes ${closes}`);
});

test('a binary push from a LongPoll client (base64 NDJSON line) reaches a V2 WebSocket subscriber as a binary frame', async () => {
  const raw = await rawWs(server, `token=${encodeURIComponent(signToken(9))}&vsn=2.0.0`);
  raws.push(raw);
  assert.deepEqual(await rawJoinV2(raw, 'room:lpbin', '1'), ['1', '1', 'room:lpbin', 'phx_reply', { response: {}, status: 'ok' }]);
  const ws = await wsClient(8);
  const chWs = ws.channel('room:lpbin');
  await join(chWs);
  const lp = await lpClient(7);
  const chLp = lp.channel('room:lpbin');
  await join(chLp);
  const logLp = recordMessages(lp);

  const gotJs = nextEvent(chWs, 'upload');
  const bytes = new Uint8Array([0xde, 0xad, 0x00, 0xff, 0x0a, 0x5b]);
  assert.deepEqual(await push(chLp, 'upload', bytes.buffer), { status: 'ok', response: {} });
  const frame = await raw.next();
  assert.equal(frame.isBinary, true, 'kind 2 binary broadcast');
  assert.equal(frame.data.toString('hex'),
    Buffer.concat([Buffer.from([2, 10, 6]), Buffer.from('room:lpbinupload'), Buffer.from(bytes)]).toString('hex'));
  const payload = await gotJs;
  assert.ok(payload instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(payload)], [...bytes]);
  // The LongPoll sender itself gets no copy of the binary broadcast.
  assert.equal((await push(chLp, 'ping', { barrier: 1 })).status, 'ok');
  assert.deepEqual(logLp.filter((m) => m.event === 'upload'), []);
});

test('binary broadcasts are not delivered to LongPoll sessions, which keep working', async () => {
  const lp = await lpClient(1);
  const ws = await wsClient(2);
  const chLp = lp.channel('room:nobin');
  const chWs = ws.channel('room:nobin');
  await join(chLp);
  await join(chWs);
  const logLp = recordMessages(lp);
  const errors = [];
  lp.onError((e) => errors.push(e));

  const gotWs = nextEvent(chWs, 'blob');
  assert.equal((await push(chWs, 'blob', new Uint8Array([1, 2, 3]).buffer)).status, 'ok');
  assert.ok((await gotWs) instanceof ArrayBuffer);
  // A binary broadcast from the API reaches only the WebSocket client.
  const gotWs2 = nextEvent(chWs, 'blob2');
  const r = await api(server, '/api/broadcast', { topic: 'room:nobin', event: 'blob2', payload_base64: Buffer.from([9, 9]).toString('base64') }, { key: KEY });
  assert.equal(r.status, 202);
  assert.deepEqual(r.json, { recipients: 1 });
  assert.ok((await gotWs2) instanceof ArrayBuffer);
  // A JSON broadcast afterwards reaches both; the LongPoll client saw no binary before it.
  const text = nextEvent(chLp, 'txt');
  assert.equal((await push(chWs, 'txt', { t: 1 })).status, 'ok');
  assert.deepEqual(await text, { t: 1 });
  assert.deepEqual(logLp.filter((m) => m.event === 'blob' || m.event === 'blob2'), []);
  assert.deepEqual(errors, []);
  assert.equal(lp.isConnected(), true);
  assert.deepEqual(await push(chLp, 'ping', { still: 'here' }), { status: 'ok', response: { still: 'here' } });
});
