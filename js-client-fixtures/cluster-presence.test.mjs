// Presence across the nodes of a cluster (--redis, docs/architecture.md
// "Presence across nodes"): two and three phxd nodes on one real
// redis-server, phoenix.js's own Presence on each. Users on different nodes
// see each other (onSync lists, presence_state after each join), a leave on
// one node reaches the others once (no diff is both relayed and recomputed),
// GET /api/presence answers for the cluster, a node that starts late gets
// the existing presences, a SIGKILLed node's presences leave the others
// within 15 s (allowed 20 s here), a cleanly stopped node's at once (its
// goodbye), and Redis killed and restarted converges again. Messages on the
// replication channels that are malformed or from a forged node are
// bounded: dropped and counted, or applied and then gone with that node's
// goodbye.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Presence } from 'phoenix';
import {
  startServer, signToken, phxSocket, connect, join, closeSocket, recordMessages, runPhxd,
} from './lib/server.mjs';
import { api, waitFor } from './lib/longpoll.mjs';
import { startRedis, respConnect } from './lib/redis.mjs';

const KEY = 'cluster-presence-api-key-0123456789';
const RULES = ['--channel', 'room:* join=any events=broadcast presence=user'];
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
  await Promise.all(sockets.map((s) => closeSocket(s).catch(() => {})));
  await Promise.all(servers.map((s) => s.stop('SIGINT').catch(() => {})));
  await Promise.all(redises.map((r) => r.kill()));
});

// Each test's nodes use their own --redis-prefix: the nodes of earlier tests
// (still running, on the same Redis) are not part of its cluster.
async function node(name, { url = redis.url, prefix, extra = [] } = {}) {
  const s = await startServer(['--redis', url, '--node-name', name, '--redis-prefix', prefix,
    '--api-key', KEY, ...RULES, ...extra]);
  s.name = name;
  servers.push(s);
  return s;
}

async function metrics(srv) {
  const res = await fetch(`${srv.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

// The value of `name` with labels matching `labels` (a substring), or NaN.
function metric(text, name, labels = '') {
  for (const line of text.split('\n')) {
    const m = line.match(/^(\w+)(\{[^}]*\})? (\d+)$/);
    if (m && m[1] === name && (m[2] || '').includes(labels)) return Number(m[3]);
  }
  return NaN;
}

async function waitConnected(srv, ms = 15000) {
  await waitFor(async () => metric(await metrics(srv), 'phxd_redis_connected') === 1, ms, `${srv.name} connected to Redis`);
}

// Waits until `srv` knows `n` other nodes alive.
async function waitNodes(srv, n, ms = 15000) {
  await waitFor(async () => metric(await metrics(srv), 'phxd_cluster_nodes') === n, ms, `${srv.name} knows ${n} nodes`);
}

// A client of `srv` as user `uid`, with phoenix.js's Presence on `topic`.
async function tracked(srv, uid, topic) {
  const socket = phxSocket(srv, { token: signToken(uid) });
  sockets.push(socket);
  await connect(socket, 20000);
  const log = recordMessages(socket);
  const channel = socket.channel(topic);
  const presence = new Presence(channel);
  const events = [];
  presence.onJoin((key) => events.push(['join', key]));
  presence.onLeave((key, current) => events.push(['leave', key, current.metas.length]));
  presence.onSync(() => events.push(['sync']));
  return { socket, channel, presence, events, log };
}

const keys = (p) => p.list((key) => key).sort().join(',');
const refs = (p) => p.list((key, { metas }) => metas.map((m) => m.phx_ref)).flat();

async function apiKeys(srv, topic) {
  const r = await api(srv, `/api/presence?topic=${encodeURIComponent(topic)}`, undefined, { key: KEY, method: 'GET' });
  assert.equal(r.status, 200, r.text);
  return Object.keys(r.json.presences).sort().join(',');
}

// presence_diff frames on `topic` whose joins / leaves name `key`.
const diffsNaming = (log, topic, part, key) =>
  log.filter((m) => m.topic === topic && m.event === 'presence_diff' && m.payload[part][key]).length;

test('two nodes: users see each other, a leave crosses once, the API answers for the cluster', async () => {
  const [a, b] = await Promise.all([node('pa', { prefix: 'p2' }), node('pb', { prefix: 'p2' })]);
  await Promise.all([waitConnected(a), waitConnected(b)]);
  await Promise.all([waitNodes(a, 1), waitNodes(b, 1)]);
  const topic = 'room:two';
  const ann = await tracked(a, 'ann', topic);
  const bob = await tracked(b, 'bob', topic);
  await join(ann.channel);
  await join(bob.channel);
  await waitFor(() => keys(ann.presence) === 'ann,bob' && keys(bob.presence) === 'ann,bob', 15000, 'both see both');
  assert.ok(ann.events.some((e) => e[0] === 'join' && e[1] === 'bob'));
  // Every phx_ref is unique across the nodes.
  const all = [...refs(ann.presence), ...refs(bob.presence)];
  assert.equal(new Set(all).size, 2, all.join(','));
  // A second tab of bob on A: two metas of one key across nodes.
  const bob2 = await tracked(a, 'bob', topic);
  await join(bob2.channel);
  const bobMetas = (t) => t.presence.list((k, { metas }) => (k === 'bob' ? metas.length : 0)).reduce((x, y) => x + y, 0);
  await waitFor(() => bobMetas(ann) === 2 && bobMetas(bob) === 2, 15000, 'bob twice everywhere');
  // The API of either node lists the cluster; `phxd presence` too.
  assert.equal(await apiKeys(a, topic), 'ann,bob');
  assert.equal(await apiKeys(b, topic), 'ann,bob');
  const cli = await runPhxd(['presence', '--url', b.url, topic], { env: { PHXD_API_KEY: KEY } });
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(Object.keys(JSON.parse(cli.stdout).presences).sort().join(','), 'ann,bob');
  assert.equal(JSON.parse(cli.stdout).presences.bob.metas.length, 2);

  // bob's B tab leaves: ann (on A) hears it once, bob keeps one meta.
  bob.channel.leave();
  await waitFor(() => bobMetas(ann) === 1, 15000, 'the leave reached A');
  await closeSocket(bob2.socket);
  await waitFor(() => keys(ann.presence) === 'ann', 15000, 'bob gone');
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would have come by now
  assert.equal(diffsNaming(ann.log, topic, 'joins', 'bob'), 2, 'bob joined twice (two tabs), each diff once');
  assert.equal(diffsNaming(ann.log, topic, 'leaves', 'bob'), 2, 'bob left twice, each diff once');
  assert.equal(await apiKeys(b, topic), 'ann');
  const mb = await metrics(b);
  assert.equal(metric(mb, 'phxd_cluster_nodes', 'node="pb"'), 1);
  assert.equal(metric(mb, 'phxd_presences_remote', 'peer="pa"'), 1, 'ann');
  assert.ok(metric(mb, 'phxd_presence_messages_in_total') >= 1);
  assert.ok(metric(mb, 'phxd_presence_messages_out_total') >= 1);
  assert.equal(metric(mb, 'phxd_presence_messages_dropped_total'), 0);
  assert.equal(metric(mb, 'phxd_presences'), 0, 'no local presences left on B');
  // Broadcasts are unaffected: the node messages are counted apart.
  assert.equal(metric(mb, 'phxd_redis_published_total'), 0);
});

test('three nodes: a node that starts late gets the existing presences', async () => {
  const [a, b] = await Promise.all([node('la', { prefix: 'p3' }), node('lb', { prefix: 'p3' })]);
  await Promise.all([waitNodes(a, 1), waitNodes(b, 1)]);
  const topic = 'room:late';
  const ua = await tracked(a, 'u-a', topic);
  const ub = await tracked(b, 'u-b', topic);
  await join(ua.channel);
  await join(ub.channel);
  await waitFor(() => keys(ua.presence) === 'u-a,u-b', 15000, 'a and b');
  const c = await node('lc', { prefix: 'p3' });
  await waitNodes(c, 2);
  // The API of the new node already lists everyone.
  await waitFor(async () => (await apiKeys(c, topic)) === 'u-a,u-b', 15000, 'late node state');
  const uc = await tracked(c, 'u-c', topic);
  await join(uc.channel);
  await waitFor(() => keys(uc.presence) === 'u-a,u-b,u-c', 15000, 'c sees all');
  await waitFor(() => keys(ua.presence) === 'u-a,u-b,u-c' && keys(ub.presence) === 'u-a,u-b,u-c', 15000, 'all see c');
  // The late node's first presence_state already held the others.
  const firstState = uc.log.find((m) => m.event === 'presence_state' && m.topic === topic);
  assert.deepEqual(Object.keys(firstState.payload).sort(), ['u-a', 'u-b', 'u-c']);
});

test('a SIGKILLed node: its presences leave the others within 15 s', async () => {
  const [a, b, k] = await Promise.all([node('ka', { prefix: 'pk' }), node('kb', { prefix: 'pk' }), node('kk', { prefix: 'pk' })]);
  await Promise.all([waitNodes(a, 2), waitNodes(b, 2), waitNodes(k, 2)]);
  const topic = 'room:kill';
  const ua = await tracked(a, 'stay-a', topic);
  const ub = await tracked(b, 'stay-b', topic);
  const victims = [await tracked(k, 'doomed', topic), await tracked(k, 'doomed2', topic)];
  for (const t of [ua, ub, ...victims]) await join(t.channel);
  const full = 'doomed,doomed2,stay-a,stay-b';
  await waitFor(() => keys(ua.presence) === full && keys(ub.presence) === full, 15000, 'all four');
  const t0 = Date.now();
  k.proc.kill('SIGKILL');
  await waitFor(() => keys(ua.presence) === 'stay-a,stay-b' && keys(ub.presence) === 'stay-a,stay-b', 20000,
    'the killed node\'s presences left');
  const took = Date.now() - t0;
  console.log(`SIGKILL: the killed node's presences left the others after ${took} ms`);
  assert.ok(ua.events.some((e) => e[0] === 'leave' && e[1] === 'doomed' && e[2] === 0));
  assert.equal(await apiKeys(b, topic), 'stay-a,stay-b');
  const ma = await metrics(a);
  assert.equal(metric(ma, 'phxd_cluster_nodes'), 1);
  assert.equal(metric(ma, 'phxd_presence_nodes_down_total'), 1);
  assert.match(a.stderr(), /event=presence_node_down node=ka peer=kk reason=timeout presences=2/);
});

test('a cleanly stopped node: its presences leave at once (goodbye)', async () => {
  const [a, b] = await Promise.all([node('ga', { prefix: 'pg' }), node('gb', { prefix: 'pg' })]);
  await Promise.all([waitNodes(a, 1), waitNodes(b, 1)]);
  const topic = 'room:bye';
  const ua = await tracked(a, 'keeper', topic);
  await join(ua.channel);
  for (const uid of ['leaver1', 'leaver2', 'leaver3']) await join((await tracked(b, uid, topic)).channel);
  await waitFor(() => keys(ua.presence) === 'keeper,leaver1,leaver2,leaver3', 15000, 'all four');
  const t0 = Date.now();
  const stopped = b.stop('SIGTERM');
  await waitFor(() => keys(ua.presence) === 'keeper', 15000, 'leavers gone');
  const took = Date.now() - t0;
  console.log(`SIGTERM: a stopped node's presences left the others ${took} ms after the signal`);
  // Under the 12 s silence window: the goodbye (or the leaves), not a timeout.
  assert.ok(took < 10000, `${took} ms`);
  assert.deepEqual(await stopped, { code: 0, signal: null });
  const ma = await metrics(a);
  assert.equal(metric(ma, 'phxd_presence_nodes_down_total'), 0);
  assert.equal(metric(ma, 'phxd_cluster_nodes'), 0);
  assert.match(a.stderr(), /event=presence_node_down node=ga peer=gb reason=goodbye/);
});

test('a node stopped with SIGINT (no drain batches): its presences leave at once too', async () => {
  const [a, b] = await Promise.all([node('ia', { prefix: 'pi' }), node('ib', { prefix: 'pi' })]);
  await Promise.all([waitNodes(a, 1), waitNodes(b, 1)]);
  const topic = 'room:int';
  const ua = await tracked(a, 'watch', topic);
  await join(ua.channel);
  await join((await tracked(b, 'gone', topic)).channel);
  await waitFor(() => keys(ua.presence) === 'gone,watch', 15000, 'both');
  const t0 = Date.now();
  const stopped = b.stop('SIGINT');
  await waitFor(() => keys(ua.presence) === 'watch', 15000, 'gone left');
  const took = Date.now() - t0;
  console.log(`SIGINT: a stopped node's presences left the others ${took} ms after the signal`);
  assert.ok(took < 10000, `${took} ms`);
  assert.deepEqual(await stopped, { code: 0, signal: null });
  assert.equal(metric(await metrics(a), 'phxd_presence_nodes_down_total'), 0);
  assert.equal(metric(await metrics(a), 'phxd_presence_goodbyes_total'), 1);
  assert.match(a.stderr(), /event=presence_node_down node=ia peer=ib reason=goodbye/);
});

test('Redis killed and restarted: the presence views converge again', async () => {
  const r2 = await startRedis();
  redises.push(r2);
  const [a, b] = await Promise.all([node('ra', { url: r2.url, prefix: 'pr' }), node('rb', { url: r2.url, prefix: 'pr' })]);
  await Promise.all([waitNodes(a, 1), waitNodes(b, 1)]);
  const topic = 'room:outage';
  const ua = await tracked(a, 'ra-1', topic);
  const ub = await tracked(b, 'rb-1', topic);
  const ub2 = await tracked(b, 'rb-2', topic);
  for (const t of [ua, ub, ub2]) await join(t.channel);
  await waitFor(() => keys(ua.presence) === 'ra-1,rb-1,rb-2' && keys(ub.presence) === 'ra-1,rb-1,rb-2', 15000, 'before');

  await r2.kill();
  await waitFor(async () => metric(await metrics(a), 'phxd_redis_connected') === 0, 10000, 'a saw Redis go');
  // During the outage: a user leaves on B, another joins on A. Neither
  // change can cross (the deltas are lost: Redis pub/sub is at most once).
  ub2.channel.leave();
  const ua2 = await tracked(a, 'ra-2', topic);
  await join(ua2.channel);
  await waitFor(() => keys(ub.presence) === 'ra-1,rb-1', 5000, 'local leave on B');

  const t0 = Date.now();
  const r3 = await startRedis({ port: r2.port });
  redises.push(r3);
  await Promise.all([waitConnected(a), waitConnected(b)]);
  // The heartbeat shows the sequence gaps; the state requests repair them.
  const want = 'ra-1,ra-2,rb-1';
  await waitFor(() => [ua, ub, ua2].every((t) => keys(t.presence) === want), 20000, 'converged');
  console.log(`Redis restart: every list converged ${Date.now() - t0} ms after redis-server was started again`);
  assert.equal(await apiKeys(a, topic), want);
  assert.equal(await apiKeys(b, topic), want);
  const ma = await metrics(a);
  assert.ok(metric(ma, 'phxd_presence_state_requests_total') >= 2, ma);
  // And changes after the restart cross as before.
  ua2.channel.leave();
  await waitFor(() => keys(ub.presence) === 'ra-1,rb-1', 15000, 'a leave after the restart');
});

// One replication message (docs/architecture.md): version 1, type, node,
// incarnation, seq, then the type's fields.
function pmsg(type, nodeName, incarnation, seq, body = Buffer.alloc(0)) {
  const n = Buffer.from(nodeName);
  const h = Buffer.alloc(3 + n.length + 16);
  h[0] = 1; h[1] = type; h[2] = n.length;
  n.copy(h, 3);
  h.writeBigUInt64BE(BigInt(incarnation), 3 + n.length);
  h.writeBigUInt64BE(BigInt(seq), 11 + n.length);
  return Buffer.concat([h, body]);
}
function joinOp(topic, key, ref, meta) {
  const t = Buffer.from(topic); const k = Buffer.from(key); const r = Buffer.from(ref); const m = Buffer.from(meta);
  const b = Buffer.alloc(1 + 2 + t.length + 2 + k.length + 1 + r.length + 1 + 4 + m.length);
  let o = 0;
  b[o++] = 1;
  b.writeUInt16BE(t.length, o); o += 2; t.copy(b, o); o += t.length;
  b.writeUInt16BE(k.length, o); o += 2; k.copy(b, o); o += k.length;
  b[o++] = r.length; r.copy(b, o); o += r.length;
  b[o++] = 0;
  b.writeUInt32BE(m.length, o); o += 4; m.copy(b, o);
  return b;
}

test('replication messages: junk and oversized ones are dropped and counted; a forged node leaves with its goodbye', async () => {
  const a = await node('ha', { prefix: 'ph', extra: ['--presence-max-meta-bytes', '64'] });
  await waitConnected(a);
  await waitNodes(a, 0);
  const topic = 'room:hostile';
  const ua = await tracked(a, 'real', topic);
  await join(ua.channel);
  await waitFor(() => keys(ua.presence) === 'real', 5000, 'real');
  const pub = await respConnect(redis.port);
  const junk = [Buffer.from(''), Buffer.from('x'), Buffer.from([1, 9, 1, 65]),
    pmsg(1, 'ghost', 7, 1), // a delta without ops
    pmsg(1, 'bad name!', 7, 1, joinOp(topic, 'k', 'ref1', '{}')),
    pmsg(1, 'ghost', 7, 1, joinOp(topic, 'k', 'ref1', '{"phx_ref":"x"}')), // a forged phx_ref
    pmsg(1, 'ghost', 7, 1, joinOp(topic, 'k', 'ref1', `{"big":"${'y'.repeat(100)}"}`)), // over the meta bound
    Buffer.alloc(2 * 1024 * 1024, 1)]; // over the message bound
  const before = metric(await metrics(a), 'phxd_presence_messages_dropped_total');
  for (const j of junk) await pub.send('PUBLISH', 'ph:p', j);
  await pub.send('PUBLISH', 'ph:n:ha', Buffer.from('junk to the node channel'));
  await waitFor(async () => metric(await metrics(a), 'phxd_presence_messages_dropped_total') === before + junk.length + 1,
    10000, 'junk counted');
  // A well-formed join from a node nobody runs shows up (Redis is trusted)...
  await pub.send('PUBLISH', 'ph:p', pmsg(1, 'ghost', 7, 1, joinOp(topic, 'phantom', 'ghostref1', '{"x":1}')));
  await waitFor(() => keys(ua.presence) === 'phantom,real', 10000, 'phantom joined');
  const meta = ua.presence.list((k, { metas }) => (k === 'phantom' ? metas[0] : null)).find((m) => m);
  assert.deepEqual(meta, { x: 1, phx_ref: 'ghostref1' });
  // ...and leaves at once with its goodbye.
  await pub.send('PUBLISH', 'ph:p', pmsg(5, 'ghost', 7, 1));
  await waitFor(() => keys(ua.presence) === 'real', 10000, 'phantom gone');
  pub.close();
  assert.equal(ua.channel.state, 'joined');
});
