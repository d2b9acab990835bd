// The cluster over Redis (--redis): several phxd processes on one real
// redis-server (started here on a free loopback port) behave as one
// endpoint. phoenix.js clients on different nodes exchange broadcasts (client
// events, the HTTP API, `phxd publish`), broadcast_from excludes only the
// sender, disconnect by id reaches every node, each message arrives once,
// nodes receive nothing for topics they do not hold, subscriptions are
// batched, and Redis going away (SIGKILL, absent at start) costs only the
// cross-node traffic of the outage. Also --reuse-port, and rediss:// (TLS
// through phxd's in-process bridge) against a TLS-only redis-server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket, nextClose,
  recordMessages, runPhxd,
} from './lib/server.mjs';
import { api, waitFor } from './lib/longpoll.mjs';
import { startRedis, commandCalls, freePort, respConnect } from './lib/redis.mjs';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const KEY = 'cluster-api-key-0123456789';
const RULES = ['--channel', 'room:* join=any events=broadcast',
  '--channel', 'from:* join=any events=broadcast_from'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
process.setMaxListeners(100); // one exit hook per phxd and redis-server started

let redis;
const servers = [];
const sockets = [];
const redises = [];

before(async () => {
  redis = await startRedis();
  redises.push(redis);
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(servers.map((s) => s.stop('SIGINT')));
  await Promise.all(redises.map((r) => r.kill()));
});

async function node(name, { url = redis.url, extra = [] } = {}) {
  const s = await startServer(['--redis', url, '--node-name', name, '--api-key', KEY, ...RULES, ...extra]);
  s.name = name;
  servers.push(s);
  return s;
}

async function client(srv, uid, opts = {}) {
  const s = phxSocket(srv, { token: signToken(uid) }, opts);
  sockets.push(s);
  await connect(s);
  return s;
}

async function metrics(srv) {
  const res = await fetch(`${srv.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  const out = {};
  for (const line of (await res.text()).split('\n')) {
    const m = line.match(/^(phxd_redis_\w+)\{node="([^"]*)"\} (\d+)/);
    if (m) out[m[1]] = Number(m[3]);
  }
  return out;
}

async function healthz(srv) {
  const res = await fetch(`${srv.url}/healthz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

// Waits until `n` nodes subscribe to the Redis channel of `topic`.
async function subscribed(topic, n, r = redis) {
  await waitFor(() => {
    const out = r.cli('PUBSUB', 'NUMSUB', `phxd:t:${topic}`) || '';
    return Number(out.trim().split('\n')[1]) === n;
  }, 5000, `${n} subscriptions of ${topic}`);
}

const countEvents = (log, topic, event) => log.filter((m) => m.topic === topic && m.event === event).length;

async function waitConnected(srv, ms = 10000) {
  await waitFor(async () => (await metrics(srv)).phxd_redis_connected === 1, ms, `${srv.name} connected to Redis`);
}

test('two nodes: client events, the API and phxd publish reach the other node once each', async () => {
  const [a, b] = await Promise.all([node('a2'), node('b2')]);
  await Promise.all([waitConnected(a), waitConnected(b)]);
  const sa = await client(a, 1);
  const sb = await client(b, 2);
  const logA = recordMessages(sa);
  const logB = recordMessages(sb);
  const ca = sa.channel('room:two');
  const cb = sb.channel('room:two');
  await join(ca);
  await join(cb);
  await subscribed('room:two', 2);

  // A client event on A (room:* events=broadcast) reaches B, and A itself.
  const gotB = nextEvent(cb, 'shout');
  await push(ca, 'shout', { from: 'a', n: 12345678901234567890 });
  assert.deepEqual(await gotB, { from: 'a', n: 12345678901234567890 });

  // The HTTP API on B reaches A.
  const gotA = nextEvent(ca, 'api_msg');
  const r = await api(b, '/api/broadcast', { topic: 'room:two', event: 'api_msg', payload: { x: 1 } }, { key: KEY });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(await gotA, { x: 1 });

  // phxd publish against A reaches B.
  const gotB2 = nextEvent(cb, 'cli_msg');
  const p = await runPhxd(['publish', '--url', a.url, '--api-key', KEY, 'room:two', 'cli_msg', '{"y":2}']);
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(await gotB2, { y: 2 });

  await sleep(300); // anything duplicated would have arrived by now
  for (const [log, who] of [[logA, 'A'], [logB, 'B']]) {
    assert.equal(countEvents(log, 'room:two', 'shout'), 1, `${who} shout`);
    assert.equal(countEvents(log, 'room:two', 'api_msg'), 1, `${who} api_msg`);
    assert.equal(countEvents(log, 'room:two', 'cli_msg'), 1, `${who} cli_msg`);
  }
  const [ma, mb] = await Promise.all([metrics(a), metrics(b)]);
  assert.equal(ma.phxd_redis_published_total, 2); // shout, cli_msg
  assert.equal(mb.phxd_redis_published_total, 1); // api_msg
  assert.equal(ma.phxd_redis_received_total, 1);
  assert.equal(mb.phxd_redis_received_total, 2);
  assert.equal(ma.phxd_redis_malformed_total, 0);
});

test('three nodes: broadcast_from excludes only the sender; a node without subscribers receives nothing', async () => {
  const [a, b, c, idle] = await Promise.all([node('a3'), node('b3'), node('c3'), node('idle3')]);
  await Promise.all([a, b, c, idle].map((s) => waitConnected(s)));
  const sender = await client(a, 10);
  const peers = [await client(a, 11), await client(b, 12), await client(c, 13), await client(c, 14)];
  const logs = [sender, ...peers].map(recordMessages);
  const chans = [sender, ...peers].map((s) => s.channel('from:three'));
  for (const ch of chans) await join(ch);
  await subscribed('from:three', 3);
  const got = chans.slice(1).map((ch) => nextEvent(ch, 'hello'));
  await push(chans[0], 'hello', { n: 1 });
  for (const g of got) assert.deepEqual(await g, { n: 1 });
  await sleep(300);
  assert.equal(countEvents(logs[0], 'from:three', 'hello'), 0, 'the sender is excluded');
  for (let i = 1; i < logs.length; i++) assert.equal(countEvents(logs[i], 'from:three', 'hello'), 1, `peer ${i}`);

  // The idle node published nothing and holds no topic: Redis sent it nothing.
  const r = await api(idle, '/api/broadcast', { topic: 'from:three', event: 'from_idle', payload: {} }, { key: KEY });
  assert.equal(r.status, 202);
  await waitFor(() => countEvents(logs[4], 'from:three', 'from_idle') === 1, 5000, 'from_idle on c');
  const m = await metrics(idle);
  assert.equal(m.phxd_redis_received_total, 0);
  assert.equal(m.phxd_redis_published_total, 1);
  const channels = (redis.cli('PUBSUB', 'CHANNELS', 'phxd:t:*') || '').trim().split('\n').filter(Boolean);
  assert.ok(channels.includes('phxd:t:from:three'), channels.join(','));
  assert.equal((redis.cli('PUBSUB', 'NUMSUB', 'phxd:t:from:three') || '').trim().split('\n')[1], '3');
});

test('disconnect by id across nodes: /api/disconnect and a server-side "disconnect" broadcast', async () => {
  const [a, b, c] = await Promise.all([node('a4'), node('b4'), node('c4')]);
  await Promise.all([a, b, c].map((s) => waitConnected(s)));
  const onB = await client(b, 42);
  const onC = await client(c, 42);
  const other = await client(b, 43);
  await subscribed('users_socket:42', 2);
  const closes = [nextClose(onB), nextClose(onC)];
  const r = await api(a, '/api/disconnect', { id: 'users_socket:42' }, { key: KEY });
  assert.equal(r.status, 202, r.text);
  assert.deepEqual(r.json, { sockets: 0 }); // local count: none on A
  for (const ev of await Promise.all(closes)) assert.equal(ev.code, 1001);
  assert.equal(other.isConnected(), true);

  // The same through a broadcast of "disconnect" to the id topic.
  const again = await client(c, 43);
  await subscribed('users_socket:43', 2);
  const closes2 = [nextClose(other), nextClose(again)];
  const r2 = await api(a, '/api/broadcast', { topic: 'users_socket:43', event: 'disconnect', payload: {} }, { key: KEY });
  assert.equal(r2.status, 202, r2.text);
  for (const ev of await Promise.all(closes2)) assert.equal(ev.code, 1001);
  onB.disconnect(); onC.disconnect(); other.disconnect(); again.disconnect();
});

test('a join storm to 200 topics costs few SUBSCRIBE commands; leaving unsubscribes', async () => {
  const a = await node('storm', { extra: ['--max-channels', '300'] });
  await waitConnected(a);
  const s = await client(a, 7);
  const before = commandCalls(redis, 'subscribe');
  const chans = [];
  for (let i = 0; i < 200; i++) chans.push(s.channel(`room:storm-${i}`));
  await Promise.all(chans.map((ch) => join(ch, 10000)));
  await waitFor(() => {
    const ch = (redis.cli('PUBSUB', 'CHANNELS', 'phxd:t:room:storm-*') || '').trim().split('\n').filter(Boolean);
    return ch.length === 200;
  }, 5000, '200 channels subscribed');
  const calls = commandCalls(redis, 'subscribe') - before;
  assert.ok(calls >= 1 && calls <= 20, `SUBSCRIBE calls: ${calls}`);
  const m = await metrics(a);
  assert.ok(m.phxd_redis_subscribe_commands_total <= 21, JSON.stringify(m));
  const unsubBefore = commandCalls(redis, 'unsubscribe');
  await Promise.all(chans.map((ch) => new Promise((resolve) => ch.leave().receive('ok', resolve).receive('timeout', resolve))));
  await waitFor(() => (redis.cli('PUBSUB', 'CHANNELS', 'phxd:t:room:storm-*') || '').trim() === '', 5000, 'unsubscribed');
  const unsubCalls = commandCalls(redis, "unsubscribe") - unsubBefore;
  assert.ok(unsubCalls >= 1 && unsubCalls <= 20, `UNSUBSCRIBE calls: ${unsubCalls}`);
  // A clean stop closes hiredis's handles too: uv_loop_close succeeds (exit 0).
  assert.deepEqual(await a.stop('SIGINT'), { code: 0, signal: null });
});

test('Redis killed and restarted mid-traffic: local delivery goes on, the cluster comes back', async () => {
  const r2 = await startRedis();
  redises.push(r2);
  const [a, b] = await Promise.all([node('a5', { url: r2.url }), node('b5', { url: r2.url })]);
  await Promise.all([waitConnected(a), waitConnected(b)]);
  const a1 = await client(a, 1, { reconnectAfterMs: () => 20 });
  const a2 = await client(a, 2);
  const b1 = await client(b, 3);
  const logA2 = recordMessages(a2);
  const logB1 = recordMessages(b1);
  const [ca1, ca2, cb1] = [a1, a2, b1].map((s) => s.channel('room:outage'));
  for (const ch of [ca1, ca2, cb1]) await join(ch);
  await subscribed('room:outage', 2, r2);
  let n = 0;
  await push(ca1, 'tick', { n: n++ });
  await waitFor(() => countEvents(logB1, 'room:outage', 'tick') === 1, 5000, 'tick before the outage');

  await r2.kill();
  await waitFor(async () => (await healthz(a)).body.includes('redis: disconnected'), 5000, 'degraded healthz');
  const h = await healthz(a);
  assert.equal(h.status, 200);
  assert.equal(h.body, 'ok\nredis: disconnected\n');
  // Local delivery continues during the outage; the other node misses it.
  for (let i = 0; i < 5; i++) await push(ca1, 'tick', { n: n++ });
  await waitFor(() => countEvents(logA2, 'room:outage', 'tick') === 6, 5000, 'local ticks during the outage');
  const during = await metrics(a);
  assert.equal(during.phxd_redis_connected, 0);
  assert.ok(during.phxd_redis_publish_dropped_total >= 5, JSON.stringify(during));

  const r3 = await startRedis({ port: r2.port });
  redises.push(r3);
  await Promise.all([waitConnected(a), waitConnected(b)]);
  await subscribed('room:outage', 2, r3); // restored without a rejoin
  await push(ca1, 'tick', { n: n++ });
  await waitFor(() => countEvents(logB1, 'room:outage', 'tick') === 2, 5000, 'tick after the restart');
  const after = await metrics(a);
  assert.ok(after.phxd_redis_reconnects_total >= 1, JSON.stringify(after));
  assert.equal((await healthz(a)).body, 'ok\nredis: connected\n');
  // Topics joined after the restart are subscribed too.
  const cNew = b1.channel('room:after');
  const aNew = a2.channel('room:after');
  await join(cNew); await join(aNew);
  await subscribed('room:after', 2, r3);
  const got = nextEvent(cNew, 'late');
  await api(a, '/api/broadcast', { topic: 'room:after', event: 'late', payload: {} }, { key: KEY });
  assert.deepEqual(await got, {});
});

test('Redis absent at start: phxd serves locally, says degraded, then joins the cluster', async () => {
  const port = await freePort();
  const a = await node('a6', { url: `redis://127.0.0.1:${port}` });
  const h = await healthz(a);
  assert.equal(h.status, 200);
  assert.equal(h.body, 'ok\nredis: disconnected\n');
  const s1 = await client(a, 1);
  const s2 = await client(a, 2);
  const c1 = s1.channel('room:absent');
  const c2 = s2.channel('room:absent');
  await join(c1); await join(c2);
  const got = nextEvent(c2, 'local');
  await push(c1, 'local', { ok: true });
  assert.deepEqual(await got, { ok: true });
  const r = await startRedis({ port });
  redises.push(r);
  await waitConnected(a, 15000);
  assert.equal((await healthz(a)).body, 'ok\nredis: connected\n');
  await subscribed('room:absent', 1, r);
  const b = await node('b6', { url: r.url });
  await waitConnected(b);
  const sb = await client(b, 3);
  const cb = sb.channel('room:absent');
  await join(cb);
  await subscribed('room:absent', 2, r);
  const gotB = nextEvent(cb, 'cross');
  await push(c1, 'cross', {});
  assert.deepEqual(await gotB, {});
  // Stopping while Redis is unreachable (a reconnect timer pending) is clean too.
  const lone = await node('a6-lone', { url: `redis://127.0.0.1:${await freePort()}` });
  await sleep(300);
  assert.deepEqual(await lone.stop(), { code: 0, signal: null });
});

// Two nodes on `url`s exchange a client event both ways.
async function exchange(a, b, topic) {
  const ca = (await client(a, 1)).channel(topic);
  const cb = (await client(b, 2)).channel(topic);
  await join(ca); await join(cb);
  await waitFor(async () => {
    const m = await metrics(a);
    return m.phxd_redis_connected === 1;
  }, 10000, 'a connected');
  for (let i = 0; ; i++) {
    // The other node's subscription may not be in place yet: retry.
    const got = nextEvent(cb, 'hop', 2000).catch(() => null);
    await push(ca, 'hop', { i });
    if (await got) break;
    if (i > 10) assert.fail(`no broadcast crossed on ${topic}`);
  }
  const back = nextEvent(ca, 'back');
  await push(cb, 'back', {});
  assert.deepEqual(await back, {});
}

test('Redis with a password, an ACL user, a database number, and a unix socket', async () => {
  const sock = `/tmp/phxd-redis-${process.pid}.sock`;
  const r = await startRedis({ args: ['--requirepass', 'pw-0123', '--unixsocket', sock, '--unixsocketperm', '700'], auth: 'pw-0123' });
  redises.push(r);
  assert.ok(r.cli('ACL', 'SETUSER', 'phxd', 'on', '>userpw-0123', '~*', '&*', '+@all') !== null);
  const a = await node('auth-a', { url: `redis://:pw-0123@127.0.0.1:${r.port}/3` });
  const b = await node('auth-b', { url: `redis://phxd:userpw-0123@127.0.0.1:${r.port}/3` });
  await waitConnected(a);
  await waitConnected(b);
  await exchange(a, b, 'room:auth');
  // The unix socket (authenticated on its own port: same server).
  const c = await node('auth-c', { url: `unix://${sock}` });
  await sleep(500);
  // Without the password the server refuses every command: phxd says so and stays local.
  assert.equal((await metrics(c)).phxd_redis_connected, 0);
  assert.equal((await healthz(c)).body, 'ok\nredis: disconnected\n');
  // A wrong password: the same.
  const d = await node('auth-d', { url: `redis://:wrong@127.0.0.1:${r.port}` });
  await sleep(500);
  assert.equal((await metrics(d)).phxd_redis_connected, 0);
  // A unix socket without a password works.
  const sock2 = `/tmp/phxd-redis2-${process.pid}.sock`;
  const r2 = await startRedis({ args: ['--unixsocket', sock2, '--unixsocketperm', '700'] });
  redises.push(r2);
  const e = await node('unix-e', { url: `unix://${sock2}` });
  const f = await node('unix-f', { url: sock2 });
  await waitConnected(e);
  await waitConnected(f);
  await exchange(e, f, 'room:unix');
});

test('--reuse-port: two processes share one port and both accept', async () => {
  const port = await freePort();
  const a = await startServer(['--reuse-port', '--redis', redis.url, '--node-name', 'rp-a'], { port });
  servers.push(a);
  const b = await startServer(['--reuse-port', '--redis', redis.url, '--node-name', 'rp-b'], { port });
  servers.push(b);
  assert.equal(a.port, b.port);
  // A third without the flag cannot bind.
  await assert.rejects(startServer([], { port }), /exited|address already in use/i);
  const socks = [];
  for (let i = 0; i < 40; i++) {
    const s = phxSocket(a, { token: signToken(100 + i) });
    sockets.push(s);
    socks.push(connect(s));
  }
  await Promise.all(socks);
  // Each process counts the sockets it accepted; /metrics itself lands on
  // either process, so ask through the shared port until both answered.
  const seen = new Map();
  for (let i = 0; i < 200 && seen.size < 2; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } });
    const text = await res.text();
    const node = text.match(/phxd_build_info\{version="[^"]*",node="([^"]*)"\}/)[1];
    const ws = Number(text.match(/phxd_connections\{transport="websocket"\} (\d+)/)[1]);
    seen.set(node, ws);
  }
  assert.equal(seen.size, 2, `metrics answered by ${[...seen.keys()]}`);
  assert.ok(seen.get('rp-a') > 0 && seen.get('rp-b') > 0, JSON.stringify([...seen]));
  assert.equal(seen.get('rp-a') + seen.get('rp-b'), 40);
});

test('rediss:// is accepted (TLS through the bridge); bad URLs, an unreadable CA file and TLS options without rediss:// are refused with one line, exit 2', async () => {
  // Nothing listens there: the node starts, serves, and says why it waits.
  const t = await node('rediss-nobody', { url: `rediss://127.0.0.1:${await freePort()}` });
  await waitFor(() => /event=redis_unreachable .*connect to 127\.0\.0\.1:\d+: connection refused/.test(t.stderr()),
    10000, 'the refused connect logged');
  assert.equal((await healthz(t)).body, 'ok\nredis: disconnected\n');
  const noCa = await runPhxd(['--redis', 'rediss://127.0.0.1:6380', '--redis-ca-file', '/nonexistent/ca.pem', '--port', '0']);
  assert.equal(noCa.code, 2);
  assert.match(noCa.stderr, /--redis rediss:\/\/: cannot load the CA file \/nonexistent\/ca\.pem/);
  assert.equal(noCa.stderr.trim().split('\n').filter((l) => /rediss/.test(l)).length, 1, noCa.stderr);
  for (const flag of [['--redis-ca-file', '/etc/hosts'], ['--redis-tls-insecure']]) {
    const plain = await runPhxd(['--redis', 'redis://127.0.0.1:6380', ...flag, '--port', '0']);
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /needs a rediss:\/\/ --redis/);
  }
  const bad = await runPhxd(['--redis', 'http://x', '--port', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--redis/);
  const badName = await runPhxd(['--redis', redis.url, '--node-name', 'a b', '--port', '0']);
  assert.equal(badName.code, 2);
  assert.match(badName.stderr, /--node-name/);
});

test('malformed messages on a topic channel are counted and dropped', async () => {
  const a = await node('mal');
  await waitConnected(a);
  const s = await client(a, 1);
  const log = recordMessages(s);
  const ch = s.channel('room:mal');
  await join(ch);
  await subscribed('room:mal', 1);
  for (const junk of ['', 'x', '\u0001', '\u0001\u0005other', 'garbage that is long enough to pass the first checks']) {
    redis.cli('PUBLISH', 'phxd:t:room:mal', junk);
  }
  await waitFor(async () => (await metrics(a)).phxd_redis_malformed_total === 5, 5000, 'malformed counted');
  assert.equal(countEvents(log, 'room:mal', 'shout'), 0);
  // Still working.
  const got = nextEvent(ch, 'fine');
  await api(a, '/api/broadcast', { topic: 'room:mal', event: 'fine', payload: {} }, { key: KEY });
  assert.deepEqual(await got, {});
});

// One message in phxd's Redis format (docs/architecture.md): version 1,
// node, sender, flags, event, payload kind 1 (JSON) and the payload.
function wireMessage(node, event, json) {
  const n = Buffer.from(node);
  const e = Buffer.from(event);
  const head = Buffer.alloc(1 + 1 + n.length + 8 + 1 + 2);
  let o = 0;
  head[o++] = 1;
  head[o++] = n.length;
  n.copy(head, o); o += n.length;
  o += 8; // sender 0
  head[o++] = 0; // flags
  head.writeUInt16BE(e.length, o);
  return Buffer.concat([head, e, Buffer.from([1]), Buffer.from(json)]);
}

test('a message from another node larger than any input phxd accepts is dropped as malformed, unparsed; one within the bound is delivered', async () => {
  const a = await node('big', { extra: ['--max-body-bytes', '4096', '--max-message-bytes', '4096'] });
  await waitConnected(a);
  const s = await client(a, 1);
  const ch = s.channel('room:big');
  await join(ch);
  await subscribed('room:big', 1);
  const pub = await respConnect(redis.port);
  const small = wireMessage('other-node', 'fits', JSON.stringify({ x: 'y'.repeat(1000) }));
  const got = nextEvent(ch, 'fits');
  await pub.send('PUBLISH', 'phxd:t:room:big', small);
  assert.equal((await got).x.length, 1000);
  const before = (await metrics(a)).phxd_redis_malformed_total;
  const seen = [];
  ch.on('huge', (p) => seen.push(p));
  await pub.send('PUBLISH', 'phxd:t:room:big', wireMessage('other-node', 'huge', JSON.stringify({ x: 'y'.repeat(20000) })));
  await waitFor(async () => (await metrics(a)).phxd_redis_malformed_total === before + 1, 5000, 'oversized counted');
  assert.equal(seen.length, 0);
  pub.close();
});

// ---- rediss://: TLS to Redis through phxd's in-process bridge ----

// A self-signed certificate for 127.0.0.1 and localhost, made once.
let tlsDir;
after(() => { if (tlsDir) fs.rmSync(tlsDir, { recursive: true, force: true }); });
function tlsFiles() {
  if (!tlsDir) {
    tlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-rediss-'));
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
      '-keyout', path.join(tlsDir, 'key.pem'), '-out', path.join(tlsDir, 'cert.pem'),
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  return { cert: path.join(tlsDir, 'cert.pem'), key: path.join(tlsDir, 'key.pem') };
}

// A TLS-only redis-server (no plain port).
async function tlsRedis(opts = {}) {
  const r = await startRedis({ tls: tlsFiles(), ...opts });
  redises.push(r);
  return r;
}

const tlsLines = (srv) => srv.stderr().split('\n').filter((l) => l.includes('event=redis_tls_failed'));

// GET /api/presence's keys of `topic` on `srv`, sorted.
async function presenceKeys(srv, topic) {
  const r = await api(srv, `/api/presence?topic=${encodeURIComponent(topic)}`, undefined, { key: KEY, method: 'GET' });
  assert.equal(r.status, 200, r.text);
  return Object.keys(r.json.presences).sort().join(',');
}

test('rediss:// with --redis-ca-file: two nodes exchange broadcasts both ways and see each other\'s presences', async () => {
  const r = await tlsRedis();
  assert.match(r.url, /^rediss:\/\//);
  const extra = ['--redis-ca-file', tlsFiles().cert, '--channel', 'pres:* join=any presence=user'];
  const [a, b] = await Promise.all([node('tls-a', { url: r.url, extra }), node('tls-b', { url: r.url, extra })]);
  await Promise.all([waitConnected(a), waitConnected(b)]);
  await exchange(a, b, 'room:tls');
  await subscribed('room:tls', 2, r);
  const ann = await client(a, 'tls-ann');
  const bob = await client(b, 'tls-bob');
  await join(ann.channel('pres:tls'));
  await join(bob.channel('pres:tls'));
  await waitFor(async () => (await presenceKeys(a, 'pres:tls')) === 'tls-ann,tls-bob' &&
    (await presenceKeys(b, 'pres:tls')) === 'tls-ann,tls-bob', 15000, 'presences across the TLS link');
  for (const s of [a, b]) {
    assert.equal(tlsLines(s).length, 0, s.stderr());
    assert.equal((await healthz(s)).body, 'ok\nredis: connected\n');
  }
});

test('rediss:// to an untrusted certificate: the node stays disconnected and logs the verification failure once; --redis-tls-insecure connects', async () => {
  const r = await tlsRedis();
  // No --redis-ca-file: OpenSSL's default CAs, which do not know this certificate.
  const c = await node('tls-untrusted', { url: r.url });
  await waitFor(() => tlsLines(c).length === 1, 10000, 'the TLS failure logged');
  assert.match(tlsLines(c)[0], /reason="certificate verification failed: self[- ]signed certificate"/);
  // Several attempts later (backoff from 100 ms): still down, still one line for the streak.
  await sleep(1500);
  assert.equal((await metrics(c)).phxd_redis_connected, 0);
  assert.equal((await healthz(c)).body, 'ok\nredis: disconnected\n');
  assert.equal(tlsLines(c).length, 1, c.stderr());
  assert.match(c.stderr(), /event=redis_unreachable .*error="TLS: certificate verification failed/);
  // Redis saw no command from it: it never got past the handshake.
  assert.equal(commandCalls(r, 'subscribe'), 0);
  const d = await node('tls-insecure', { url: r.url, extra: ['--redis-tls-insecure'] });
  await waitConnected(d);
  await waitFor(() => commandCalls(r, 'subscribe') >= 1, 5000, 'the insecure node subscribed');
  assert.equal((await metrics(c)).phxd_redis_connected, 0);
});

test('rediss:// with a password: --requirepass and rediss://:pw@ (and user:pw@, a database); none or a wrong one stays down', async () => {
  const r = await tlsRedis({ args: ['--requirepass', 'tls-pw-0123'], auth: 'tls-pw-0123' });
  const ca = ['--redis-ca-file', tlsFiles().cert];
  const a = await node('tls-pw-a', { url: `rediss://:tls-pw-0123@127.0.0.1:${r.port}`, extra: ca });
  const b = await node('tls-pw-b', { url: `rediss://default:tls-pw-0123@127.0.0.1:${r.port}/2`, extra: ca });
  await Promise.all([waitConnected(a), waitConnected(b)]);
  await exchange(a, b, 'room:tls-pw');
  const none = await node('tls-pw-none', { url: r.url, extra: ca });
  const wrong = await node('tls-pw-wrong', { url: `rediss://:wrong@127.0.0.1:${r.port}`, extra: ca });
  await waitFor(() => /event=redis_unreachable .*NOAUTH/.test(none.stderr()), 10000, 'NOAUTH logged');
  await sleep(1000);
  for (const s of [none, wrong]) {
    assert.equal((await metrics(s)).phxd_redis_connected, 0, s.name);
    assert.equal((await healthz(s)).body, 'ok\nredis: disconnected\n', s.name);
    // The TLS link itself was fine.
    assert.equal(tlsLines(s).length, 0, s.stderr());
  }
});

test('rediss://: Redis killed and restarted, the TLS nodes reconnect and subscriptions come back', async () => {
  const r = await tlsRedis();
  const extra = ['--redis-ca-file', tlsFiles().cert];
  const [a, b] = await Promise.all([node('tls-r-a', { url: r.url, extra }), node('tls-r-b', { url: r.url, extra })]);
  await Promise.all([waitConnected(a), waitConnected(b)]);
  const ca = (await client(a, 1)).channel('room:tls-outage');
  const cb = (await client(b, 2)).channel('room:tls-outage');
  await join(ca); await join(cb);
  await subscribed('room:tls-outage', 2, r);
  const before = nextEvent(cb, 'tick');
  await push(ca, 'tick', { n: 1 });
  assert.deepEqual(await before, { n: 1 });

  await r.kill();
  await waitFor(async () => (await healthz(a)).body.includes('redis: disconnected'), 10000, 'degraded healthz');
  // Still down a while: every attempt's connect is refused (no TLS failure to log).
  await sleep(500);
  const r2 = await tlsRedis({ port: r.port });
  await Promise.all([waitConnected(a, 15000), waitConnected(b, 15000)]);
  await subscribed('room:tls-outage', 2, r2); // restored without a rejoin
  const after = nextEvent(cb, 'tick');
  await push(ca, 'tick', { n: 2 });
  assert.deepEqual(await after, { n: 2 });
  assert.ok((await metrics(a)).phxd_redis_reconnects_total >= 1);
  for (const s of [a, b]) assert.equal(tlsLines(s).length, 0, s.stderr());
  // A clean stop closes the bridge too (its socket, its directory): exit 0.
  assert.deepEqual(await a.stop('SIGINT'), { code: 0, signal: null });
});
