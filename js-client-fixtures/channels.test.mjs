// Channels under phxd's default policy (README.md, "Using it") and the
// control events of docs/protocol.md §3: join, leave, duplicate join, stale
// join_refs, unmatched topics, heartbeats, ref echo, the channel limit,
// broadcasts (§4).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket,
  recordMessages, withTimeout,
} from './lib/server.mjs';
import { rawWs } from './lib/raw.mjs';

let server;
const sockets = [];
const raws = [];

before(async () => { server = await startServer(); });

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(raws.map((r) => r.close()));
  if (server) await server.stop();
});

async function client(userId) {
  const socket = phxSocket(server, { token: signToken(userId) });
  sockets.push(socket);
  await connect(socket);
  return socket;
}

async function raw(userId = 42, vsn = '2.0.0') {
  const r = await rawWs(server, `token=${encodeURIComponent(signToken(userId))}&vsn=${vsn}`);
  raws.push(r);
  return r;
}

// Sends a heartbeat and asserts that the very next frame is its reply: every
// frame the server produced for earlier messages has been seen by then.
async function assertNothingBeforeHeartbeat(r, ref = 'hb') {
  r.sendJson([null, ref, 'phoenix', 'heartbeat', {}]);
  assert.deepEqual(await r.nextJson(), [null, ref, 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]);
}

const ok = (joinRef, ref, topic, response = {}) => [joinRef, ref, topic, 'phx_reply', { response, status: 'ok' }];
const err = (joinRef, ref, topic, response) => [joinRef, ref, topic, 'phx_reply', { response, status: 'error' }];

test('user:<own id> joins', async () => {
  const socket = await client(42);
  assert.deepEqual(await join(socket.channel('user:42')), {});
});

test("another user's topic is refused with unauthorized", async () => {
  const socket = await client(42);
  const ch = socket.channel('user:43');
  await assert.rejects(join(ch), (e) => {
    assert.deepEqual(e.reply, { reason: 'unauthorized' });
    return true;
  });
  ch.rejoinTimer.reset();
});

test('user:<id> refusal on the wire keeps the join_ref and ref', async () => {
  const r = await raw(42);
  r.sendJson(['5', '5', 'user:43', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), err('5', '5', 'user:43', { reason: 'unauthorized' }));
  r.sendJson(['6', '6', 'user:42', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), ok('6', '6', 'user:42'));
});

test('room:* joins for any socket', async () => {
  for (const uid of [1, 'someone', 99]) {
    const socket = await client(uid);
    assert.deepEqual(await join(socket.channel('room:lobby')), {});
  }
  const socket = await client(5);
  assert.deepEqual(await join(socket.channel('room:')), {}, 'room: itself matches room:*');
});

test('a client event is broadcast to every subscriber including the sender, and the push gets ok {}', async () => {
  const a = await client(1);
  const b = await client(2);
  const chA = a.channel('room:chat');
  const chB = b.channel('room:chat');
  await join(chA);
  await join(chB);
  const logA = recordMessages(a);
  const gotA = nextEvent(chA, 'new_msg');
  const gotB = nextEvent(chB, 'new_msg');
  const reply = await push(chA, 'new_msg', { body: 'hi', n: 1 });
  assert.deepEqual(reply, { status: 'ok', response: {} });
  assert.deepEqual(await gotA, { body: 'hi', n: 1 });
  assert.deepEqual(await gotB, { body: 'hi', n: 1 });
  // Broadcasts travel with join_ref and ref null, and precede the reply.
  const idxBcast = logA.findIndex((m) => m.event === 'new_msg');
  const idxReply = logA.findIndex((m) => m.event === 'phx_reply');
  assert.ok(idxBcast >= 0 && idxReply > idxBcast, 'broadcast arrives before the reply');
  assert.equal(logA[idxBcast].join_ref, null);
  assert.equal(logA[idxBcast].ref, null);
});

test('"ping" replies ok with its own payload', async () => {
  const socket = await client(3);
  const ch = socket.channel('room:ping');
  await join(ch);
  const payload = { a: 1, nested: { list: [1, 'two', null, true], s: 'é' } };
  assert.deepEqual(await push(ch, 'ping', payload), { status: 'ok', response: payload });
});

test('big integers in payloads are relayed byte for byte', async () => {
  const a = await raw(1);
  const b = await raw(2);
  a.sendJson(['1', '1', 'room:big', 'phx_join', {}]);
  assert.deepEqual(await a.nextJson(), ok('1', '1', 'room:big'));
  b.sendJson(['1', '1', 'room:big', 'phx_join', {}]);
  assert.deepEqual(await b.nextJson(), ok('1', '1', 'room:big'));

  a.send('["1","2","room:big","ping",{"n":12345678901234567890,"m":-98765432109876543210}]');
  assert.equal(await a.nextText(),
    '["1","2","room:big","phx_reply",{"response":{"n":12345678901234567890,"m":-98765432109876543210},"status":"ok"}]');

  a.send('["1","3","room:big","big",{"n":12345678901234567890}]');
  const expected = '[null,null,"room:big","big",{"n":12345678901234567890}]';
  assert.equal(await a.nextText(), expected);
  assert.equal(await a.nextText(), '["1","3","room:big","phx_reply",{"response":{},"status":"ok"}]');
  assert.equal(await b.nextText(), expected);
});

test('after leave the client gets nothing more from that room while others still do', async () => {
  const a = await client(1);
  const b = await client(2);
  const chA = a.channel('room:leave');
  const barrier = a.channel('room:barrier');
  const chB = b.channel('room:leave');
  await join(chA);
  await join(barrier);
  await join(chB);
  const logA = recordMessages(a);

  const before1 = nextEvent(chA, 'msg');
  assert.equal((await push(chB, 'msg', { n: 1 })).status, 'ok');
  assert.deepEqual(await before1, { n: 1 });

  await withTimeout(new Promise((resolve, reject) => {
    chA.leave().receive('ok', resolve).receive('timeout', () => reject(new Error('leave timeout')));
  }), 5000, 'leave');
  const leaveIdx = logA.length;

  const gotB = nextEvent(chB, 'msg');
  assert.equal((await push(chB, 'msg', { n: 2 })).status, 'ok');
  assert.deepEqual(await gotB, { n: 2 });
  // A's next message on another channel is answered after anything the
  // server queued for A while handling B's push.
  assert.equal((await push(barrier, 'ping', {})).status, 'ok');
  const after2 = logA.slice(leaveIdx).filter((m) => m.topic === 'room:leave' && m.event === 'msg');
  assert.deepEqual(after2, []);
});

test('leave on the wire: ok reply then phx_close with the join_ref as both refs', async () => {
  const r = await raw();
  r.sendJson(['3', '3', 'room:lv', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), ok('3', '3', 'room:lv'));
  r.sendJson(['3', '18', 'room:lv', 'phx_leave', {}]);
  assert.deepEqual(await r.nextJson(), ok('3', '18', 'room:lv'));
  assert.deepEqual(await r.nextJson(), ['3', '3', 'room:lv', 'phx_close', {}]);
  // The topic is gone: further events get unmatched topic.
  r.sendJson(['3', '19', 'room:lv', 'x', {}]);
  assert.deepEqual(await r.nextJson(), err(null, '19', 'room:lv', { reason: 'unmatched topic' }));
});

test('heartbeat replies ok on topic phoenix with join_ref null (byte level)', async () => {
  const r = await raw();
  r.send('[null,"7","phoenix","heartbeat",{}]');
  assert.equal(await r.nextText(), '[null,"7","phoenix","phx_reply",{"response":{},"status":"ok"}]');
  // Even when the heartbeat carries a join_ref, the reply's is null.
  r.send('["1","8","phoenix","heartbeat",{}]');
  assert.equal(await r.nextText(), '[null,"8","phoenix","phx_reply",{"response":{},"status":"ok"}]');
});

test('joining an unknown topic gets unmatched topic with join_ref null (byte level)', async () => {
  const r = await raw();
  r.send('["6","6","nope:1","phx_join",{}]');
  assert.equal(await r.nextText(),
    '[null,"6","nope:1","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]');
  // Nothing was registered: the socket can still use the connection normally.
  await assertNothingBeforeHeartbeat(r);
});

test('leave of a topic never joined replies ok {} echoing join_ref, without phx_close', async () => {
  const r = await raw();
  r.send('["9","10","room:never","phx_leave",{}]');
  assert.equal(await r.nextText(), '["9","10","room:never","phx_reply",{"response":{},"status":"ok"}]');
  await assertNothingBeforeHeartbeat(r);
});

test('duplicate join: the reply to the new join comes first, then phx_close of the old join_ref', async () => {
  const r = await raw();
  r.send('["1","1","room:dup","phx_join",{}]');
  assert.equal(await r.nextText(), '["1","1","room:dup","phx_reply",{"response":{},"status":"ok"}]');
  r.send('["2","2","room:dup","phx_join",{}]');
  assert.equal(await r.nextText(), '["2","2","room:dup","phx_reply",{"response":{},"status":"ok"}]');
  assert.equal(await r.nextText(), '["1","1","room:dup","phx_close",{}]');
  await assertNothingBeforeHeartbeat(r);
  // The new instance is the live one.
  r.sendJson(['2', '3', 'room:dup', 'ping', { x: 1 }]);
  assert.deepEqual(await r.nextJson(), ok('2', '3', 'room:dup', { x: 1 }));
});

test('messages with a stale join_ref are dropped silently', async () => {
  const r = await raw();
  r.sendJson(['1', '1', 'room:stale', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), ok('1', '1', 'room:stale'));
  r.sendJson(['2', '2', 'room:stale', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), ok('2', '2', 'room:stale'));
  assert.deepEqual(await r.nextJson(), ['1', '1', 'room:stale', 'phx_close', {}]);
  r.sendJson(['1', '3', 'room:stale', 'ping', { a: 1 }]);
  r.sendJson(['1', '4', 'room:stale', 'shout', { a: 2 }]);
  r.sendJson(['1', '5', 'room:stale', 'phx_leave', {}]);
  await assertNothingBeforeHeartbeat(r);
  // Still joined with join_ref "2"; a null join_ref is never stale.
  r.sendJson([null, '6', 'room:stale', 'ping', { b: 1 }]);
  assert.deepEqual(await r.nextJson(), ok('2', '6', 'room:stale', { b: 1 }));
});

test('an event on a topic that is not joined gets unmatched topic with join_ref null', async () => {
  const r = await raw();
  r.send('["3","11","room:9","new_msg",{}]');
  assert.equal(await r.nextText(),
    '[null,"11","room:9","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]');
});

test('refs are echoed with their JSON type', async () => {
  const r = await raw();
  r.send('[null,7,"phoenix","heartbeat",{}]');
  assert.equal(await r.nextText(), '[null,7,"phoenix","phx_reply",{"response":{},"status":"ok"}]');
  r.send('[1,1,"room:num","phx_join",{}]');
  assert.equal(await r.nextText(), '[1,1,"room:num","phx_reply",{"response":{},"status":"ok"}]');
  r.send('[1,2,"room:num","ping",{}]');
  assert.deepEqual(await r.nextJson(), ok(1, 2, 'room:num'));
  r.send('[1,3,"room:num","phx_leave",{}]');
  assert.deepEqual(await r.nextJson(), ok(1, 3, 'room:num'));
  assert.deepEqual(await r.nextJson(), [1, 1, 'room:num', 'phx_close', {}]);
});

test('the 101st join is refused with too many channels joined and the socket survives', async () => {
  const r = await raw();
  for (let i = 1; i <= 100; i++) r.sendJson([String(i), String(i), `room:c${i}`, 'phx_join', {}]);
  for (let i = 1; i <= 100; i++) assert.deepEqual(await r.nextJson(), ok(String(i), String(i), `room:c${i}`));
  r.sendJson(['101', '101', 'room:c101', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), err('101', '101', 'room:c101', { reason: 'too many channels joined' }));
  assert.equal(r.isOpen, true);
  await assertNothingBeforeHeartbeat(r);
  r.sendJson(['50', '102', 'room:c50', 'ping', { ok: true }]);
  assert.deepEqual(await r.nextJson(), ok('50', '102', 'room:c50', { ok: true }));
  // Leaving one channel makes room for another.
  r.sendJson(['1', '103', 'room:c1', 'phx_leave', {}]);
  assert.deepEqual(await r.nextJson(), ok('1', '103', 'room:c1'));
  assert.deepEqual(await r.nextJson(), ['1', '1', 'room:c1', 'phx_close', {}]);
  r.sendJson(['104', '104', 'room:c101', 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), ok('104', '104', 'room:c101'));
});

test('broadcasts from one publisher arrive at every subscriber in publish order', async () => {
  const a = await raw(1);
  const b = await raw(2);
  a.sendJson(['1', '1', 'room:order', 'phx_join', {}]);
  assert.deepEqual(await a.nextJson(), ok('1', '1', 'room:order'));
  b.sendJson(['1', '1', 'room:order', 'phx_join', {}]);
  assert.deepEqual(await b.nextJson(), ok('1', '1', 'room:order'));
  const N = 200;
  for (let i = 0; i < N; i++) a.sendJson(['1', `p${i}`, 'room:order', 'seq', { i }]);
  for (let i = 0; i < N; i++) {
    assert.deepEqual(await b.nextJson(), [null, null, 'room:order', 'seq', { i }]);
    // The sender sees its broadcast, then the reply, for each push in turn.
    assert.deepEqual(await a.nextJson(), [null, null, 'room:order', 'seq', { i }]);
    assert.deepEqual(await a.nextJson(), ok('1', `p${i}`, 'room:order'));
  }
});

test('a join with a null join_ref: reply and phx_close carry null, channel replies carry the ref', async () => {
  const r = await raw();
  r.send('[null,"5","room:nj","phx_join",{}]');
  assert.deepEqual(await r.nextJson(), ok(null, '5', 'room:nj'));
  r.send('[null,"6","room:nj","ping",{"a":1}]');
  assert.deepEqual(await r.nextJson(), ok('5', '6', 'room:nj', { a: 1 }));
  r.send('[null,"7","room:nj","phx_leave",{}]');
  assert.deepEqual(await r.nextJson(), ok('5', '7', 'room:nj'));
  assert.deepEqual(await r.nextJson(), [null, null, 'room:nj', 'phx_close', {}]);
});

test('a leave with a null join_ref leaves a channel joined with a join_ref', async () => {
  const r = await raw();
  r.send('["4","4","room:nl","phx_join",{}]');
  assert.deepEqual(await r.nextJson(), ok('4', '4', 'room:nl'));
  r.send('[null,"9","room:nl","phx_leave",{}]');
  assert.deepEqual(await r.nextJson(), ok('4', '9', 'room:nl'));
  assert.deepEqual(await r.nextJson(), ['4', '4', 'room:nl', 'phx_close', {}]);
});
