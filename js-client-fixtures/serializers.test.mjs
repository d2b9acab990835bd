// Serializers (docs/protocol.md §1.3, §2.2-§2.4, §4): V1 JSON objects over both
// transports, V2 binary layouts byte for byte (kind 1 reply, kind 2
// broadcast), one broadcast in every encoding at once, and vsn negotiation
// on both transports.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket,
  recordMessages, upgradeStatus,
} from './lib/server.mjs';
import { rawWs, rawJoinV2 } from './lib/raw.mjs';
import {
  lpGet, LpSession, api, binaryPush, binaryBroadcast, binaryReply,
} from './lib/longpoll.mjs';

const KEY = 'serializers-key';
let server;
const raws = [];
const sockets = [];

before(async () => { server = await startServer(['--api-key', KEY]); });

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(raws.map((r) => r.close()));
  if (server) await server.stop();
});

const tok = (uid = 42) => encodeURIComponent(signToken(uid));

async function raw(uid = 42, vsnPart = 'vsn=2.0.0') {
  const r = await rawWs(server, `token=${tok(uid)}${vsnPart ? `&${vsnPart}` : ''}`);
  raws.push(r);
  return r;
}

async function client(uid) {
  const s = phxSocket(server, { token: signToken(uid) });
  sockets.push(s);
  await connect(s);
  return s;
}

const v1 = (event, payload, ref, topic) => ({ event, payload, ref, topic });
const v1ok = (ref, topic, response = {}) => v1('phx_reply', { response, status: 'ok' }, ref, topic);

async function v1Next(r) {
  const m = await r.nextJson();
  assert.equal(Object.hasOwn(m, 'join_ref'), false, `V1 output has no join_ref key: ${JSON.stringify(m)}`);
  assert.deepEqual(Object.keys(m).sort(), ['event', 'payload', 'ref', 'topic']);
  return m;
}

async function assertNothingBeforeHeartbeatV2(r, ref = 'hb') {
  r.sendJson([null, ref, 'phoenix', 'heartbeat', {}]);
  assert.deepEqual(await r.nextJson(), [null, ref, 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]);
}

test('V1 over WebSocket: objects without join_ref; phx_close has ref null for a join without join_ref', async () => {
  const r = await raw(7, 'vsn=1.0.0');
  r.send('{"topic":"room:v1ws","event":"phx_join","payload":{},"ref":"1"}');
  assert.deepEqual(await v1Next(r), v1ok('1', 'room:v1ws'));
  r.send('{"topic":"room:v1ws","event":"ping","payload":{"a":[1,"b"]},"ref":"2"}');
  assert.deepEqual(await v1Next(r), v1ok('2', 'room:v1ws', { a: [1, 'b'] }));
  r.send('{"topic":"room:v1ws","event":"shout","payload":{"x":1},"ref":"3"}');
  assert.deepEqual(await v1Next(r), v1('shout', { x: 1 }, null, 'room:v1ws'));
  assert.deepEqual(await v1Next(r), v1ok('3', 'room:v1ws'));
  r.send('{"topic":"nope:1","event":"phx_join","payload":{},"ref":"4"}');
  assert.deepEqual(await v1Next(r), v1('phx_reply', { response: { reason: 'unmatched topic' }, status: 'error' }, '4', 'nope:1'));
  // Duplicate join: the new join's reply, then phx_close of the old one,
  // whose stored join_ref is null.
  r.send('{"topic":"room:v1ws","event":"phx_join","payload":{},"ref":"5"}');
  assert.deepEqual(await v1Next(r), v1ok('5', 'room:v1ws'));
  assert.deepEqual(await v1Next(r), v1('phx_close', {}, null, 'room:v1ws'));
  // A V1 join that does carry join_ref: its phx_close carries it as ref.
  r.send('{"topic":"room:v1jr","event":"phx_join","payload":{},"ref":"6","join_ref":"6"}');
  assert.deepEqual(await v1Next(r), v1ok('6', 'room:v1jr'));
  r.send('{"topic":"room:v1jr","event":"phx_leave","payload":{},"ref":"7","join_ref":"6"}');
  assert.deepEqual(await v1Next(r), v1ok('7', 'room:v1jr'));
  assert.deepEqual(await v1Next(r), v1('phx_close', {}, '6', 'room:v1jr'));
  r.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}');
  assert.deepEqual(await v1Next(r), v1ok(null, 'phoenix'));
});

test('V1 over LongPoll (vsn=1.0.0 and no vsn): JSON strings of V1 objects, phx_close with ref null', async () => {
  for (const vsnPart of ['&vsn=1.0.0', '']) {
    const s = new LpSession(server, `token=${tok(7)}${vsnPart}`);
    await s.open();
    const post = (obj) => s.post(JSON.stringify(obj), { contentType: 'application/json' });
    assert.equal((await post({ topic: 'room:v1lp', event: 'phx_join', payload: {}, ref: '1' })).text, '{"status":200}');
    assert.equal((await post({ topic: 'room:v1lp', event: 'shout', payload: { y: 2 }, ref: '2' })).text, '{"status":200}');
    assert.equal((await post({ topic: 'room:v1lp', event: 'phx_leave', payload: {}, ref: '3' })).text, '{"status":200}');
    const got = await s.collect((g) => g.length >= 5);
    for (const m of got) {
      assert.equal(Array.isArray(m), false, 'V1 messages are objects');
      assert.equal(Object.hasOwn(m, 'join_ref'), false);
    }
    assert.deepEqual(got, [
      v1ok('1', 'room:v1lp'),
      v1('shout', { y: 2 }, null, 'room:v1lp'),
      v1ok('2', 'room:v1lp'),
      v1ok('3', 'room:v1lp'),
      v1('phx_close', {}, null, 'room:v1lp'),
    ], `vsn part ${JSON.stringify(vsnPart)}`);
  }
});

test('V2 binary reply (kind 1) byte for byte: a binary ping is answered with its payload', async () => {
  const r = await raw();
  assert.deepEqual(await rawJoinV2(r, 'room:1', '3'), ['3', '3', 'room:1', 'phx_reply', { response: {}, status: 'ok' }]);
  r.sendBinary(binaryPush('3', '8', 'room:1', 'ping', [1, 2, 3]));
  const f = await r.next();
  assert.equal(f.isBinary, true);
  // docs/protocol.md §2.4's example: 01 01 01 06 02 33 38 72 6f 6f 6d 3a 31 6f 6b 01 02 03
  assert.equal(f.data.toString('hex'), '010101060233387' + '26f6f6d3a316f6b010203');
  assert.equal(f.data.toString('hex'), binaryReply('3', '8', 'room:1', 'ok', [1, 2, 3]).toString('hex'));
  // An empty ref is echoed with length 0; an empty payload stays empty.
  r.sendBinary(binaryPush('3', '', 'room:1', 'ping', []));
  assert.equal((await r.next()).data.toString('hex'), binaryReply('3', '', 'room:1', 'ok', []).toString('hex'));
  // A large payload (64-bit WebSocket length on the way back).
  const big = Buffer.alloc(70000, 0xa5);
  r.sendBinary(binaryPush('3', '9', 'room:1', 'ping', big));
  const fb = await r.next();
  assert.equal(fb.isBinary, true);
  assert.equal(fb.data.length, 5 + 1 + 1 + 6 + 2 + 70000);
  assert.ok(fb.data.equals(binaryReply('3', '9', 'room:1', 'ok', big)));
  // A non-ping binary event gets a JSON reply in a text frame (and the
  // broadcast as kind 2 first), with the empty ref echoed as "".
  r.sendBinary(binaryPush('3', '', 'room:1', 'up', [0xff]));
  assert.equal((await r.next()).data.toString('hex'), binaryBroadcast('room:1', 'up', [0xff]).toString('hex'));
  assert.equal(await r.nextText(), '["3","","room:1","phx_reply",{"response":{},"status":"ok"}]');
  await r.close(); // room:1 is used again below
});

test('a binary push with an empty join_ref is a stale message and dropped silently', async () => {
  const r = await raw();
  await rawJoinV2(r, 'room:1', '3');
  r.sendBinary(binaryPush('', '8', 'room:1', 'ping', [1]));
  r.sendBinary(binaryPush('4', '9', 'room:1', 'ping', [2]));
  await assertNothingBeforeHeartbeatV2(r);
  await r.close();
});

test('phoenix.js decodes a binary reply as {status, response: ArrayBuffer}', async () => {
  const s = await client(1);
  const ch = s.channel('room:binreply');
  await join(ch);
  const bytes = new Uint8Array([0, 1, 254, 255]);
  const reply = await push(ch, 'ping', bytes.buffer);
  assert.equal(reply.status, 'ok');
  assert.ok(reply.response instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(reply.response)], [...bytes]);
});

test('V2 binary broadcast (kind 2) byte for byte from the API; phoenix.js gets an ArrayBuffer with null refs', async () => {
  const r = await raw();
  await rawJoinV2(r, 'room:1', '1');
  const s = await client(2);
  const ch = s.channel('room:1');
  await join(ch);
  const log = recordMessages(s);
  const got = nextEvent(ch, 'bin_bcast');
  const res = await api(server, '/api/broadcast', { topic: 'room:1', event: 'bin_bcast', payload_base64: 'qw==' }, { key: KEY });
  assert.equal(res.status, 202);
  assert.deepEqual(res.json, { recipients: 2 });
  const f = await r.next();
  assert.equal(f.isBinary, true);
  // docs/protocol.md §2.4's example: 02 06 09 72 6f 6f 6d 3a 31 62 69 6e 5f 62 63 61 73 74 ab
  assert.equal(f.data.toString('hex'), '020609726f6f6d3a3162696e5f6263617374ab');
  const payload = await got;
  assert.ok(payload instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(payload)], [0xab]);
  const m = log.find((x) => x.event === 'bin_bcast');
  assert.equal(m.join_ref, null);
  assert.equal(m.ref, null);
  // An empty binary payload.
  await api(server, '/api/broadcast', { topic: 'room:1', event: 'e', payload_base64: '' }, { key: KEY });
  assert.equal((await r.next()).data.toString('hex'), binaryBroadcast('room:1', 'e', []).toString('hex'));
});

test('one broadcast reaches V1, V2 text and V2 binary-capable subscribers, each in its own encoding', async () => {
  const topic = 'room:enc';
  const wsV1 = await raw(1, 'vsn=1.0.0');
  wsV1.sendJson({ topic, event: 'phx_join', payload: {}, ref: '1' });
  assert.deepEqual(await v1Next(wsV1), v1ok('1', topic));
  const wsV2 = await raw(2);
  await rawJoinV2(wsV2, topic, '1');
  const lpV1 = new LpSession(server, `token=${tok(3)}&vsn=1.0.0`);
  await lpV1.open();
  await lpV1.post(JSON.stringify({ topic, event: 'phx_join', payload: {}, ref: '1' }), { contentType: 'application/json' });
  await lpV1.untilRef('1');
  const lpV2 = new LpSession(server, `token=${tok(4)}&vsn=2.0.0`);
  await lpV2.open();
  await lpV2.post(JSON.stringify(['1', '1', topic, 'phx_join', {}]));
  await lpV2.untilRef('1');
  const js = await client(5);
  const ch = js.channel(topic);
  await join(ch);

  const jsGot = nextEvent(ch, 'news');
  const res = await api(server, '/api/broadcast', { topic, event: 'news', payload: { n: 1, s: 'é' } }, { key: KEY });
  assert.deepEqual(res.json, { recipients: 5 });
  assert.deepEqual(await v1Next(wsV1), v1('news', { n: 1, s: 'é' }, null, topic));
  assert.equal(await wsV2.nextText(), '[null,null,"room:enc","news",{"n":1,"s":"é"}]');
  const p1 = await lpV1.poll();
  assert.equal(p1.raw.length, 1);
  assert.deepEqual(JSON.parse(p1.raw[0]), v1('news', { n: 1, s: 'é' }, null, topic));
  assert.equal(Object.hasOwn(JSON.parse(p1.raw[0]), 'join_ref'), false);
  const p2 = await lpV2.poll();
  assert.deepEqual(p2.raw, ['[null,null,"room:enc","news",{"n":1,"s":"é"}]']);
  assert.deepEqual(await jsGot, { n: 1, s: 'é' });

  // A binary broadcast: only the V2 WebSocket subscribers get it.
  const jsBin = nextEvent(ch, 'bin');
  const resBin = await api(server, '/api/broadcast', { topic, event: 'bin', payload_base64: Buffer.from([1, 2]).toString('base64') }, { key: KEY });
  assert.deepEqual(resBin.json, { recipients: 2 });
  assert.equal((await wsV2.next()).data.toString('hex'), binaryBroadcast(topic, 'bin', [1, 2]).toString('hex'));
  assert.ok((await jsBin) instanceof ArrayBuffer);
  // The next JSON broadcast is the first thing the V1 and LongPoll subscribers see.
  await api(server, '/api/broadcast', { topic, event: 'after', payload: {} }, { key: KEY });
  assert.deepEqual(await v1Next(wsV1), v1('after', {}, null, topic));
  assert.deepEqual((await lpV1.poll()).messages, [v1('after', {}, null, topic)]);
  assert.deepEqual((await lpV2.poll()).messages, [[null, null, topic, 'after', {}]]);
  assert.equal(await wsV2.nextText(), '[null,null,"room:enc","after",{}]');
});

test('an unsupported vsn is refused: 403 on WebSocket, {"status":403} on LongPoll', async () => {
  const t = tok(42);
  const refused = ['vsn=3.0.0', 'vsn=2.1.0', 'vsn=1.1.0', 'vsn=2.0.0-rc.1', 'vsn=', 'vsn', 'vsn[x]=1', 'vsn[]=2.0.0',
    'vsn=2', 'vsn=2.0', 'vsn=v2.0.0', 'vsn=02.0.0', 'vsn=%202.0.0', 'vsn=2.0.0+build', 'vsn=2.0.0&vsn=3.0.0'];
  for (const v of refused) {
    assert.equal(await upgradeStatus(server.port, `token=${t}&${v}`), 403, `WebSocket ${v}`);
    const res = await lpGet(server, `token=${t}&${v}&`);
    assert.equal(res.status, 200, `LongPoll ${v}`);
    assert.equal(res.text, '{"status":403}', `LongPoll ${v}`);
  }
});

test('vsn=2.0.0%2Bbuild, 2.0.5 and a repeated vsn (last wins) are accepted as V2 on both transports', async () => {
  for (const v of ['vsn=2.0.0%2Bbuild', 'vsn=2.0.5', 'vsn=3.0.0&vsn=2.0.0']) {
    const r = await raw(42, v);
    assert.deepEqual(await rawJoinV2(r, 'room:vsn', '1'), ['1', '1', 'room:vsn', 'phx_reply', { response: {}, status: 'ok' }], v);
    const s = new LpSession(server, `token=${tok(42)}&${v}`);
    await s.open();
    assert.equal((await s.post('["1","1","room:vsn","phx_join",{}]')).text, '{"status":200}', v);
    assert.deepEqual(await s.untilRef('1'), [['1', '1', 'room:vsn', 'phx_reply', { response: {}, status: 'ok' }]], v);
  }
  // 1.0.9 is V1.
  const r = await raw(42, 'vsn=1.0.9');
  r.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}');
  assert.deepEqual(await v1Next(r), v1ok('1', 'phoenix'));
});
