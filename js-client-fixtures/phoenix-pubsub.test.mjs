// Phoenix.PubSub interop (--phoenix-pubsub): phxd on the Redis that an Elixir
// app's Phoenix.PubSub Redis adapter uses. The Elixir side is played by real
// Erlang (tests/erlang/phoenix_pubsub.escript: term_to_binary of the
// adapter's exact terms, binary_to_term of what phxd publishes); the bytes go
// through a real redis-server with binary-safe PUBLISH/SUBSCRIBE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  startServer, signToken, phxSocket, connect, join, nextEvent, closeSocket, nextClose,
} from './lib/server.mjs';
import { api, waitFor } from './lib/longpoll.mjs';
import { startRedis, respConnect } from './lib/redis.mjs';

const ESCRIPT = new URL('../tests/erlang/phoenix_pubsub.escript', import.meta.url).pathname;
const CHANNEL = 'phx:Elixir.MyApp.PubSub.Adapter';
const KEY = 'pps-api-key-0123456789';
const hasErlang = spawnSync('escript', ['-h'], { encoding: 'utf8' }).error === undefined;

let redis;
let server;
const sockets = [];

function erl(...args) {
  const r = spawnSync('escript', [ESCRIPT, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`escript ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}
const elixirTerm = (...args) => Buffer.from(erl('encode', ...args), 'hex');

async function metric(name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

before(async () => {
  if (!hasErlang) return;
  redis = await startRedis();
  server = await startServer(['--redis', redis.url, '--phoenix-pubsub', 'MyApp.PubSub',
    '--node-name', 'phxd-a', '--api-key', KEY, '--channel', 'room:* join=any events=broadcast']);
  await waitFor(async () => (await metric('phxd_redis_connected')) === 1, 5000, 'redis up');
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  if (server) await server.stop();
  if (redis) await redis.stop();
});

test('Endpoint.broadcast from an Elixir node (plain and compressed terms) reaches phoenix.js on phxd with Jason\'s JSON', { skip: !hasErlang && 'no Erlang' }, async () => {
  const s = phxSocket(server, { token: signToken(1) });
  sockets.push(s);
  await connect(s);
  const ch = s.channel('room:elixir', {});
  await join(ch);
  const pub = await respConnect(redis.port);
  for (const compressed of [[], ['compressed']]) {
    const got = nextEvent(ch, 'new_msg');
    const n = await pub.send('PUBLISH', CHANNEL, elixirTerm('except', 'elixir@host', 'room:elixir', 'new_msg', 'msg', ...compressed));
    assert.equal(n >= 1, true, 'phxd is subscribed to the adapter channel');
    const p = await got;
    assert.equal(p.body, 'hi from elixir');
    assert.ok(p.n > 1.2e19, 'a bignum arrives as a JSON number');
    assert.deepEqual(p.nested, { ok: true, none: null, ids: [1, 2.5] });
  }
  pub.close();
  s.disconnect();
});

test(':except this node and :only another node are not delivered; Presence and other messages are ignored', { skip: !hasErlang && 'no Erlang' }, async () => {
  const s = phxSocket(server, { token: signToken(2) });
  sockets.push(s);
  await connect(s);
  const ch = s.channel('room:modes', {});
  await join(ch);
  const seen = [];
  ch.on('new_msg', (p) => seen.push(p));
  const before = await metric('phxd_phoenix_pubsub_ignored_total');
  const pub = await respConnect(redis.port);
  await pub.send('PUBLISH', CHANNEL, elixirTerm('except', 'phxd-a', 'room:modes', 'new_msg', 'msg'));
  await pub.send('PUBLISH', CHANNEL, elixirTerm('only', 'elixir@other', 'room:modes', 'new_msg', 'msg'));
  await pub.send('PUBLISH', CHANNEL, elixirTerm('except', 'elixir@host', 'room:modes', 'x', 'presence'));
  await pub.send('PUBLISH', CHANNEL, elixirTerm('except', 'elixir@host', 'room:modes', 'x', 'not_broadcast'));
  await pub.send('PUBLISH', CHANNEL, Buffer.from('not a term at all'));
  // :only this node is delivered.
  const got = nextEvent(ch, 'new_msg');
  await pub.send('PUBLISH', CHANNEL, elixirTerm('only', 'phxd-a', 'room:modes', 'new_msg', 'msg'));
  await got;
  assert.equal(seen.length, 1, 'only the :only phxd-a message arrived');
  assert.ok(await metric('phxd_phoenix_pubsub_ignored_total') >= before + 4);
  assert.ok(await metric('phxd_phoenix_pubsub_malformed_total') >= 1);
  assert.equal(s.isConnected(), true, 'phxd shrugged them off');
  pub.close();
  s.disconnect();
});

test('a {:binary, data} payload arrives as a binary frame; a "disconnect" to a socket id closes that socket with 1001', { skip: !hasErlang && 'no Erlang' }, async () => {
  const s = phxSocket(server, { token: signToken(42) });
  sockets.push(s);
  await connect(s);
  const ch = s.channel('room:bin', {});
  await join(ch);
  const pub = await respConnect(redis.port);
  const got = nextEvent(ch, 'blob');
  await pub.send('PUBLISH', CHANNEL, elixirTerm('except', 'elixir@host', 'room:bin', 'blob', 'binary'));
  const p = await got;
  assert.ok(p instanceof ArrayBuffer, 'a binary frame');
  assert.deepEqual([...new Uint8Array(p)], [1, 2, 3, 255]);
  const closed = nextClose(s);
  await pub.send('PUBLISH', CHANNEL, elixirTerm('except', 'elixir@host', 'users_socket:42', 'disconnect', 'disconnect'));
  assert.equal((await closed).code, 1001);
  pub.close();
  s.disconnect();
});

test('a broadcast made in phxd is published in the adapter\'s format with phxd\'s node name, and real Erlang reads it as %Phoenix.Socket.Broadcast{}', { skip: !hasErlang && 'no Erlang' }, async () => {
  const sub = await respConnect(redis.port);
  await sub.send('SUBSCRIBE', CHANNEL);
  const r = await api(server, '/api/broadcast',
    '{"topic":"room:out","event":"from_phxd","payload":{"a":1,"big":12345678901234567890}}', { key: KEY });
  assert.equal(r.status, 202);
  await waitFor(() => sub.messages.length > 0, 5000, 'the adapter message');
  const line = erl('decode', sub.messages[0].data.toString('hex'));
  assert.match(line, /^ok mode=except node=phxd-a topic=room:out event=from_phxd payload=#\{/);
  assert.match(line, /<<97>> => 1/);
  assert.match(line, /12345678901234567890/);
  assert.ok(await metric('phxd_phoenix_pubsub_published_total') >= 1);
  sub.close();
});

test('two phxd nodes on --phoenix-pubsub: a client broadcast crosses once, in the adapter\'s format', { skip: !hasErlang && 'no Erlang' }, async () => {
  const b = await startServer(['--redis', redis.url, '--phoenix-pubsub', 'MyApp.PubSub',
    '--node-name', 'phxd-b', '--channel', 'room:* join=any events=broadcast',
    ]);
  try {
    await waitFor(async () => {
      const t = await (await fetch(`${b.url}/metrics`)).text();
      return /^phxd_redis_connected\{[^}]*\} 1$/m.test(t);
    }, 5000, 'node b up');
    const sa = phxSocket(server, { token: signToken(7) });
    const sb = phxSocket(b, { token: signToken(8) });
    sockets.push(sa, sb);
    await connect(sa);
    await connect(sb);
    const ca = sa.channel('room:twice', {});
    const cb = sb.channel('room:twice', {});
    await join(ca);
    await join(cb);
    const gotB = [];
    cb.on('hello', (p) => gotB.push(p));
    const gotA = [];
    ca.on('hello', (p) => gotA.push(p));
    ca.push('hello', { n: 1 });
    await waitFor(() => gotB.length >= 1 && gotA.length >= 1, 5000, 'delivery on both nodes');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(gotB.length, 1, 'node b got it once');
    assert.equal(gotA.length, 1, 'the sender\'s node delivered it once, locally');
    sa.disconnect();
    sb.disconnect();
  } finally {
    await b.stop();
  }
});
