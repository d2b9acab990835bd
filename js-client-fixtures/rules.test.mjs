// Channel rules (--channel) replacing the built-in policy, driven by
// phoenix.js: join=any|user|none, --user-id-field for tokens whose data is
// a map, events=broadcast|broadcast_from|reply|refuse with per-event
// overrides, max-payload-bytes, max-subscribers, and "unmatched topic" for
// topics no rule covers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket,
  recordMessages, upgradeStatus,
} from './lib/server.mjs';

const RULES = [
  'private:* join=user events=broadcast',
  'inbox:* join=user user-segment=2 events=reply',
  'echo:* join=any events=reply',
  'quiet:* join=any events=broadcast_from',
  'ro:* join=any events=refuse event:ping=reply',
  'small:* join=any max-payload-bytes=64',
  'closed:* join=none',
  'duo:* join=any max-subscribers=2',
  'exact:topic join=any events=reply',
];

let server;
const sockets = [];

before(async () => {
  server = await startServer([...RULES.flatMap((r) => ['--channel', r]), '--user-id-field', 'user_id']);
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  if (server) await server.stop();
});

async function client(data) {
  const socket = phxSocket(server, { token: signToken(data) });
  sockets.push(socket);
  await connect(socket);
  return socket;
}

async function refused(channel, reason) {
  await assert.rejects(join(channel), (e) => {
    assert.deepEqual(e.reply, { reason });
    return true;
  });
  channel.rejoinTimer.reset();
}

test('join=user with --user-id-field: {"user_id": 42} joins private:42, not private:43', async () => {
  const socket = await client({ user_id: 42, name: 'ann' });
  assert.deepEqual(await join(socket.channel('private:42')), {});
  await refused(socket.channel('private:43'), 'unauthorized');
  await refused(socket.channel('private:'), 'unauthorized');
});

test('a string user id in the map, and data that is not a map, are used as they are', async () => {
  const a = await client({ user_id: 'abc' });
  await join(a.channel('private:abc'));
  await refused(a.channel('private:42'), 'unauthorized');
  const b = await client(7);
  await join(b.channel('private:7'));
});

test('a token whose map has no such field is refused at connect', async () => {
  const q = `token=${encodeURIComponent(signToken({ id: 42 }))}&vsn=2.0.0`;
  assert.equal(await upgradeStatus(server.port, q), 403);
  const ok = `token=${encodeURIComponent(signToken({ user_id: 42 }))}&vsn=2.0.0`;
  assert.equal(await upgradeStatus(server.port, ok), 101);
});

test('user-segment picks a part of the topic', async () => {
  const socket = await client({ user_id: 42 });
  await join(socket.channel('inbox:42:unread'));
  await refused(socket.channel('inbox:43:unread'), 'unauthorized');
});

test('events=broadcast reaches every subscriber, the sender included', async () => {
  const a = await client({ user_id: 9 });
  const b = await client(9);
  const ca = a.channel('private:9');
  const cb = b.channel('private:9');
  await join(ca);
  await join(cb);
  const atA = nextEvent(ca, 'note');
  const atB = nextEvent(cb, 'note');
  assert.deepEqual(await push(ca, 'note', { n: 1 }), { status: 'ok', response: {} });
  assert.deepEqual(await atA, { n: 1 });
  assert.deepEqual(await atB, { n: 1 });
});

test('events=broadcast_from reaches the others but not the sender', async () => {
  const a = await client(1);
  const b = await client(2);
  const ca = a.channel('quiet:1');
  const cb = b.channel('quiet:1');
  await join(ca);
  await join(cb);
  const seenByA = recordMessages(a);
  const atB = nextEvent(cb, 'shout');
  assert.deepEqual(await push(ca, 'shout', { loud: true }), { status: 'ok', response: {} });
  assert.deepEqual(await atB, { loud: true });
  // A broadcast to the sender would have come before the reply.
  assert.deepEqual(seenByA.filter((m) => m.event === 'shout'), []);
  // B's event reaches A.
  const atA = nextEvent(ca, 'back');
  await push(cb, 'back', {});
  assert.deepEqual(await atA, {});
});

test('events=reply answers with the payload', async () => {
  const socket = await client(1);
  const ch = socket.channel('echo:x');
  await join(ch);
  assert.deepEqual(await push(ch, 'anything', { a: [1, 2], b: 'c' }), { status: 'ok', response: { a: [1, 2], b: 'c' } });
  const exact = socket.channel('exact:topic');
  await join(exact);
  assert.deepEqual(await push(exact, 'e', { z: 1 }), { status: 'ok', response: { z: 1 } });
});

test('events=refuse answers unauthorized; event:NAME overrides it', async () => {
  const a = await client(1);
  const b = await client(2);
  const ca = a.channel('ro:news');
  const cb = b.channel('ro:news');
  await join(ca);
  await join(cb);
  const seenByB = recordMessages(b);
  assert.deepEqual(await push(ca, 'post', { x: 1 }), { status: 'error', response: { reason: 'unauthorized' } });
  assert.deepEqual(await push(ca, 'ping', { p: 1 }), { status: 'ok', response: { p: 1 } });
  // Nothing reached the other subscriber: a round trip of its own first.
  await push(cb, 'ping', {});
  assert.deepEqual(seenByB.filter((m) => m.event === 'post'), []);
});

test('max-payload-bytes refuses larger payloads', async () => {
  const socket = await client(1);
  const ch = socket.channel('small:1');
  await join(ch);
  const got = nextEvent(ch, 'fits');
  assert.deepEqual(await push(ch, 'fits', { t: 'x'.repeat(20) }), { status: 'ok', response: {} });
  assert.deepEqual(await got, { t: 'x'.repeat(20) });
  assert.deepEqual(await push(ch, 'big', { t: 'x'.repeat(100) }), { status: 'error', response: { reason: 'payload too large' } });
});

test('join=none refuses everybody', async () => {
  const socket = await client(1);
  await refused(socket.channel('closed:1'), 'unauthorized');
});

test('max-subscribers refuses a join beyond the limit until someone leaves', async () => {
  const [a, b, c] = [await client(1), await client(2), await client(3)];
  const ca = a.channel('duo:1');
  await join(ca);
  await join(b.channel('duo:1'));
  await refused(c.channel('duo:1'), 'too many subscribers');
  // Another topic of the same rule has its own count.
  await join(c.channel('duo:2'));
  await new Promise((resolve) => { ca.leave().receive('ok', resolve); });
  await join(c.channel('duo:1'));
});

test('topics without a rule get "unmatched topic": the built-in policy is gone', async () => {
  const socket = await client(42);
  await refused(socket.channel('room:lobby'), 'unmatched topic');
  await refused(socket.channel('user:42'), 'unmatched topic');
  await refused(socket.channel('exact:topic2'), 'unmatched topic');
});
