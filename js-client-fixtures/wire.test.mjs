// Wire edge cases on raw WebSockets: undecodable input closes with 1011
// (docs/protocol.md §2.5), size and UTF-8 limits (1009, 1007: §6.1), V1 JSON
// (§2.2), vsn negotiation (§1.3) and V2 binary frames (§2.4).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket,
} from './lib/server.mjs';
import { rawWs, httpRequest, upgradeRequest } from './lib/raw.mjs';

const MAX_MESSAGE = 4096;
let server;
let observer; // joined to room:wire for the whole file
let sender; // pushes broadcasts to room:wire
const raws = [];
const sockets = [];
let counter = 0;

const query = (uid = 42, vsn = '2.0.0') => `token=${encodeURIComponent(signToken(uid))}&vsn=${vsn}`;

async function raw(uid = 42, vsn = '2.0.0') {
  const r = await rawWs(server, query(uid, vsn));
  raws.push(r);
  return r;
}

async function joinV2(r, topic, ref = '1') {
  r.sendJson([ref, ref, topic, 'phx_join', {}]);
  assert.deepEqual(await r.nextJson(), [ref, ref, topic, 'phx_reply', { response: {}, status: 'ok' }]);
}

before(async () => {
  server = await startServer(['--max-message-bytes', String(MAX_MESSAGE)]);
  observer = await raw(1);
  sender = await raw(2);
  await joinV2(observer, 'room:wire');
  await joinV2(sender, 'room:wire');
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(raws.map((r) => r.close()));
  if (server) await server.stop();
});

// Other connections are unaffected: a broadcast still reaches the observer.
async function assertOthersUnaffected() {
  const n = ++counter;
  sender.sendJson(['1', `s${n}`, 'room:wire', 'tick', { n }]);
  const bcast = [null, null, 'room:wire', 'tick', { n }];
  assert.deepEqual(await sender.nextJson(), bcast);
  assert.deepEqual(await sender.nextJson(), ['1', `s${n}`, 'room:wire', 'phx_reply', { response: {}, status: 'ok' }]);
  assert.deepEqual(await observer.nextJson(), bcast);
}

// The next thing `r` sees is a close with `code` (no phx_error or other frame first).
async function assertClosedWith(r, code) {
  await assert.rejects(r.next(), (e) => {
    assert.ok(e.closeInfo, `expected a close, got ${e.message}`);
    return true;
  });
  const info = await r.waitClosed();
  assert.equal(info.code, code, `close code (reason ${JSON.stringify(info.reason)})`);
}

async function assertBadTextCloses1011(text) {
  const r = await raw(7);
  await joinV2(r, 'room:wire');
  r.send(text);
  await assertClosedWith(r, 1011);
  await assertOthersUnaffected();
}

test('malformed JSON closes the connection with 1011 and nothing else is affected', async () => {
  await assertBadTextCloses1011('["1","2","room:wire","x",{');
  await assertBadTextCloses1011('not json at all');
});

test('a V2 text frame that is not a 5-element array closes with 1011', async () => {
  await assertBadTextCloses1011('["1","2","room:wire","x"]');
  await assertBadTextCloses1011('[]');
  await assertBadTextCloses1011('"hello"');
  await assertBadTextCloses1011('42');
  await assertBadTextCloses1011('null');
});

test('a V2 text frame with more than five elements is accepted', async () => {
  const r = await raw(7);
  r.send('[null,"9","phoenix","heartbeat",{},"extra"]');
  assert.deepEqual(await r.nextJson(), [null, '9', 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]);
});

test('a JSON object on a V2 socket closes with 1011', async () => {
  await assertBadTextCloses1011('{"topic":"room:wire","event":"phx_join","payload":{},"ref":"1"}');
});

test('a message over --max-message-bytes closes with 1009', async () => {
  const r = await raw(7);
  await joinV2(r, 'room:wire');
  const pad = 'x'.repeat(MAX_MESSAGE + 10);
  r.send(JSON.stringify(['1', '2', 'room:wire', 'ping', { pad }]));
  await assertClosedWith(r, 1009);
  await assertOthersUnaffected();
});

test('a message just under --max-message-bytes is accepted', async () => {
  const r = await raw(7);
  await joinV2(r, 'room:wire2');
  const skeleton = JSON.stringify(['1', '2', 'room:wire2', 'ping', { pad: '' }]);
  const pad = 'y'.repeat(MAX_MESSAGE - skeleton.length);
  const msg = JSON.stringify(['1', '2', 'room:wire2', 'ping', { pad }]);
  assert.equal(Buffer.byteLength(msg), MAX_MESSAGE);
  r.send(msg);
  assert.deepEqual(await r.nextJson(), ['1', '2', 'room:wire2', 'phx_reply', { response: { pad }, status: 'ok' }]);
});

test('an invalid UTF-8 text frame closes with 1007', async () => {
  const r = await raw(7);
  await joinV2(r, 'room:wire');
  const bytes = Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]')]);
  r.sendTextBytes(bytes);
  await assertClosedWith(r, 1007);
  await assertOthersUnaffected();
});

test('V1 (vsn=1.0.0): join, reply, broadcast and heartbeat are objects without join_ref', async () => {
  const r = await raw(7, '1.0.0');
  r.send('{"topic":"room:v1","event":"phx_join","payload":{},"ref":"1"}');
  const reply = await r.nextJson();
  assert.deepEqual(reply, { event: 'phx_reply', payload: { response: {}, status: 'ok' }, ref: '1', topic: 'room:v1' });
  assert.equal(Object.hasOwn(reply, 'join_ref'), false);

  r.send('{"topic":"room:v1","event":"shout","payload":{"a":1},"ref":"2"}');
  assert.deepEqual(await r.nextJson(), { event: 'shout', payload: { a: 1 }, ref: null, topic: 'room:v1' });
  assert.deepEqual(await r.nextJson(), { event: 'phx_reply', payload: { response: {}, status: 'ok' }, ref: '2', topic: 'room:v1' });

  r.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"3"}');
  assert.deepEqual(await r.nextJson(), { event: 'phx_reply', payload: { response: {}, status: 'ok' }, ref: '3', topic: 'phoenix' });

  // A V1 join without join_ref stores null: phx_close carries ref null.
  r.send('{"topic":"room:v1","event":"phx_leave","payload":{},"ref":"4"}');
  assert.deepEqual(await r.nextJson(), { event: 'phx_reply', payload: { response: {}, status: 'ok' }, ref: '4', topic: 'room:v1' });
  assert.deepEqual(await r.nextJson(), { event: 'phx_close', payload: {}, ref: null, topic: 'room:v1' });
});

test('no vsn means V1', async () => {
  const r = await rawWs(server, `token=${encodeURIComponent(signToken(7))}`);
  raws.push(r);
  r.send('{"topic":"room:v1b","event":"phx_join","payload":{},"ref":"1"}');
  assert.deepEqual(await r.nextJson(), { event: 'phx_reply', payload: { response: {}, status: 'ok' }, ref: '1', topic: 'room:v1b' });
});

test('a V2 array on a V1 socket closes with 1011', async () => {
  const r = await raw(7, '1.0.0');
  r.send('[null,"1","phoenix","heartbeat",{}]');
  await assertClosedWith(r, 1011);
  await assertOthersUnaffected();
});

test('an unsupported vsn is refused with 403', async () => {
  const token = encodeURIComponent(signToken(7));
  for (const vsn of ['3.0.0', '', '2.1.0', '1.1.0', '2', '2.0', 'v2.0.0', '2.0.0-rc.1']) {
    const res = await httpRequest(server.port, upgradeRequest(server.port, `token=${token}&vsn=${encodeURIComponent(vsn)}`));
    assert.equal(res.status, 403, `vsn=${JSON.stringify(vsn)}: ${res.head}`);
    assert.equal(res.body.length, 0);
    res.destroy();
  }
  for (const vsn of ['2.0.0', '2.0.5', '1.0.9']) {
    const res = await httpRequest(server.port, upgradeRequest(server.port, `token=${token}&vsn=${vsn}`));
    assert.equal(res.status, 101, `vsn=${vsn}`);
    res.destroy();
  }
});

// Kind 0 client push: 00 J R T E join_ref ref topic event payload.
function binaryPush(joinRef, ref, topic, event, payload) {
  const f = [joinRef, ref, topic, event].map((s) => Buffer.from(s));
  return Buffer.concat([Buffer.from([0, ...f.map((b) => b.length)]), ...f, Buffer.from(payload)]);
}

test('a binary V2 push to a room is broadcast as a kind 2 frame byte for byte and gets a reply', async () => {
  const a = await raw(1);
  const b = await raw(2);
  await joinV2(a, 'room:bin', '3');
  await joinV2(b, 'room:bin', '5');
  const payload = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x5b, 0x22]);
  a.sendBinary(binaryPush('3', '8', 'room:bin', 'upload', payload));
  const expected = Buffer.concat([Buffer.from([2, 8, 6]), Buffer.from('room:bin'), Buffer.from('upload'), payload]);
  const atB = await b.next();
  assert.equal(atB.isBinary, true, 'broadcast must be a binary frame');
  assert.equal(atB.data.toString('hex'), expected.toString('hex'));
  // The sender gets the broadcast too, then the reply to its push.
  const atA = await a.next();
  assert.equal(atA.isBinary, true);
  assert.equal(atA.data.toString('hex'), expected.toString('hex'));
  assert.deepEqual(await a.nextJson(), ['3', '8', 'room:bin', 'phx_reply', { response: {}, status: 'ok' }]);
});

test('a binary broadcast skips V1 subscribers and still reaches V2 ones', async () => {
  const v1 = await raw(3, '1.0.0');
  const a = await raw(1);
  const b = await raw(2);
  v1.send('{"topic":"room:mixed","event":"phx_join","payload":{},"ref":"1"}');
  assert.deepEqual(await v1.nextJson(), { event: 'phx_reply', payload: { response: {}, status: 'ok' }, ref: '1', topic: 'room:mixed' });
  await joinV2(a, 'room:mixed');
  await joinV2(b, 'room:mixed');
  a.sendBinary(binaryPush('1', '2', 'room:mixed', 'up', [1, 2, 3]));
  const expected = Buffer.concat([Buffer.from([2, 10, 2]), Buffer.from('room:mixedup'), Buffer.from([1, 2, 3])]);
  assert.equal((await b.next()).data.toString('hex'), expected.toString('hex'));
  assert.equal((await a.next()).data.toString('hex'), expected.toString('hex'));
  assert.deepEqual(await a.nextJson(), ['1', '2', 'room:mixed', 'phx_reply', { response: {}, status: 'ok' }]);
  // The V1 socket got nothing before its heartbeat reply, and is still open.
  v1.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}');
  assert.deepEqual(await v1.nextJson(), { event: 'phx_reply', payload: { response: {}, status: 'ok' }, ref: '2', topic: 'phoenix' });
  // JSON broadcasts still reach it.
  a.sendJson(['1', '3', 'room:mixed', 'txt', { t: 1 }]);
  assert.deepEqual(await v1.nextJson(), { event: 'txt', payload: { t: 1 }, ref: null, topic: 'room:mixed' });
});

test('phoenix.js binary push: other clients receive an ArrayBuffer, the push gets ok', async () => {
  const a = phxSocket(server, { token: signToken(1) });
  const b = phxSocket(server, { token: signToken(2) });
  sockets.push(a, b);
  await connect(a);
  await connect(b);
  const chA = a.channel('room:binjs');
  const chB = b.channel('room:binjs');
  await join(chA);
  await join(chB);
  const got = nextEvent(chB, 'blob');
  const bytes = new Uint8Array([9, 8, 7, 0, 255]);
  assert.equal((await push(chA, 'blob', bytes.buffer)).status, 'ok');
  const payload = await got;
  assert.ok(payload instanceof ArrayBuffer, 'binary payload arrives as an ArrayBuffer');
  assert.deepEqual([...new Uint8Array(payload)], [...bytes]);
});

test('binary frames that are not a valid kind 0 push close with 1011', async () => {
  const bad = [
    Buffer.from([1, 1, 1, 8, 2, 0x33, 0x38]), // kind 1 from a client
    Buffer.from([2, 8, 6]), // kind 2 from a client
    Buffer.from([0, 1, 1]), // truncated header
    Buffer.from([0, 1, 1, 8, 200, 0x33, 0x38, 0x72]), // lengths past the end
  ];
  for (const frame of bad) {
    const r = await raw(7);
    await joinV2(r, 'room:wire');
    r.sendBinary(frame);
    await assertClosedWith(r, 1011);
  }
  await assertOthersUnaffected();
});
