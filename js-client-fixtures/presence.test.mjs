// Presence (--channel '... presence=user'): phoenix.js's own Presence class
// (onSync, onJoin, onLeave, list) against phxd over WebSocket, LongPoll and
// V1; several metas per key; leaves on leave and close; the list rebuilt
// after a server restart; a join storm coalesced into few presence_diff
// messages; GET /api/presence and `phxd presence`; reserved events refused
// from clients (both transports) and from the API; the bounds (the
// --presence-max-* options, a rule's presence-max=N, the /metrics presence
// gauges); and the presence_state / presence_diff frames byte for byte in
// V2 and V1.
//
// The frames follow the shapes of Phoenix 1.7 (Phoenix.Presence over
// phoenix_pubsub 2.1's Phoenix.Tracker, as documented in Phoenix.Presence
// and consumed by phoenix.js 1.7/1.8 presence.js): presence_state is
// pushed with the join's join_ref and a null ref, its payload
// {"<key>":{"metas":[{...meta, "phx_ref":"..."}]}}; presence_diff is a
// broadcast (join_ref and ref null) of {"joins":{...},"leaves":{...}} in
// the same shape; meta keys as Jason writes a small atom-keyed map (sorted:
// online_at, phx_ref); V1 frames as Phoenix.Socket.V1.JSONSerializer
// writes %Message{} (keys event, payload, ref, topic). Real Phoenix
// cannot run here, so these are written from those shapes, not captured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Socket, Presence } from 'phoenix';
import WebSocket from 'ws';
import {
  startServer, signToken, phxSocket, connect, join, push, closeSocket, recordMessages,
  runPhxd, withTimeout,
} from './lib/server.mjs';
import { lpSocket, api, waitFor } from './lib/longpoll.mjs';
import { rawWs } from './lib/raw.mjs';

const KEY = 'presence-test-api-key-0123456789';
const RULES = ['room:* join=any events=broadcast presence=user', 'plain:* join=any events=broadcast'];
let server;
const sockets = [];
const raws = [];

before(async () => {
  server = await startServer([...RULES.flatMap((r) => ['--channel', r]), '--api-key', KEY]);
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s).catch(() => {})));
  await Promise.all(raws.map((r) => r.close()));
  if (server) await server.stop();
});

const tokens = new Map();
function tok(uid) {
  if (!tokens.has(uid)) tokens.set(uid, signToken(uid));
  return tokens.get(uid);
}

async function client(uid, { transport = 'ws', srv = server, opts = {} } = {}) {
  const make = transport === 'lp' ? lpSocket : phxSocket;
  const s = make(srv, { token: tok(uid) }, opts);
  sockets.push(s);
  await connect(s, 20000);
  return s;
}

// A channel with a Presence; `events` logs onJoin/onLeave/onSync.
function tracked(socket, topic) {
  const channel = socket.channel(topic);
  const presence = new Presence(channel);
  const events = [];
  presence.onJoin((key, current, joined) => events.push(['join', key, joined.metas.length]));
  presence.onLeave((key, current, left) => events.push(['leave', key, current.metas.length]));
  presence.onSync(() => events.push(['sync']));
  return { channel, presence, events };
}

const keys = (p) => p.list((key) => key).sort();
const metaCount = (p, key) => p.list((k, { metas }) => (k === key ? metas.length : 0)).reduce((a, b) => a + b, 0);

// phoenix.js 1.7/1.8 with the V1 serializer (vsn=1.0.0): plain JSON objects.
const V1 = {
  vsn: '1.0.0',
  encode: (msg, cb) => cb(JSON.stringify(msg)),
  decode: (raw, cb) => cb(JSON.parse(raw)),
};

for (const [name, transport, opts] of [['WebSocket', 'ws', {}], ['LongPoll', 'lp', {}], ['V1 (vsn=1.0.0)', 'ws', V1]]) {
  test(`${name}: two users see each other through onJoin, onSync, list and onLeave`, async () => {
    const topic = `room:two-${transport}-${opts.vsn || '2'}`;
    const a = tracked(await client('ann', { transport, opts }), topic);
    const b = tracked(await client('bob', { transport, opts }), topic);
    await join(a.channel);
    await waitFor(() => keys(a.presence).join() === 'ann', 5000, 'ann sees herself');
    await join(b.channel);
    await waitFor(() => keys(a.presence).join() === 'ann,bob' && keys(b.presence).join() === 'ann,bob', 5000, 'both see both');
    assert.ok(a.events.some((e) => e[0] === 'join' && e[1] === 'bob'));
    assert.ok(a.events.some((e) => e[0] === 'sync'));
    const meta = a.presence.list((k, { metas }) => metas[0]).find((m) => m);
    assert.match(meta.online_at, /^\d+$/);
    assert.match(meta.phx_ref, /^[A-Za-z0-9_-]+$/);
    b.channel.leave();
    await waitFor(() => keys(a.presence).join() === 'ann', 5000, 'bob left');
    assert.ok(a.events.some((e) => e[0] === 'leave' && e[1] === 'bob' && e[2] === 0));
  });
}

test('one user with three sockets has three metas and leaves meta by meta; a close is a leave', async () => {
  const topic = 'room:tabs';
  const w = tracked(await client('watcher'), topic);
  await join(w.channel);
  const tabs = [];
  for (let i = 0; i < 3; i++) {
    const s = await client('cat');
    const ch = s.channel(topic);
    await join(ch);
    tabs.push({ s, ch });
  }
  await waitFor(() => metaCount(w.presence, 'cat') === 3, 5000, 'three metas');
  const refs = w.presence.list((k, { metas }) => (k === 'cat' ? metas.map((m) => m.phx_ref) : [])).flat();
  assert.equal(new Set(refs).size, 3, 'each meta has its own phx_ref');
  tabs[0].ch.leave();
  await waitFor(() => metaCount(w.presence, 'cat') === 2, 5000, 'two metas');
  assert.deepEqual(keys(w.presence), ['cat', 'watcher']);
  await closeSocket(tabs[1].s);
  await waitFor(() => metaCount(w.presence, 'cat') === 1, 5000, 'one meta after a close');
  tabs[2].s.conn.close(); // the connection dropped, as a crashed tab
  await waitFor(() => !keys(w.presence).includes('cat'), 5000, 'cat gone');
  assert.ok(w.events.some((e) => e[0] === 'leave' && e[1] === 'cat' && e[2] === 0));
});

test('a topic without presence=user gets no presence messages', async () => {
  const s = await client('nopres');
  const log = recordMessages(s);
  const ch = s.channel('plain:x');
  await join(ch);
  assert.equal((await push(ch, 'hello', {})).status, 'ok');
  assert.equal(log.filter((m) => m.event.startsWith('presence_')).length, 0);
});

test('rejoin after a server restart rebuilds the list', async () => {
  const args = ['--channel', RULES[0]];
  const first = await startServer(args);
  const fast = { reconnectAfterMs: () => 100, rejoinAfterMs: () => 100 };
  const a = tracked(await client('rita', { srv: first, opts: fast }), 'room:restart');
  const b = tracked(await client('sam', { srv: first, opts: fast }), 'room:restart');
  await join(a.channel);
  await join(b.channel);
  await waitFor(() => keys(a.presence).join() === 'rita,sam', 5000, 'before');
  const port = first.port;
  await first.stop();
  const second = await startServer(args, { port });
  try {
    // Each rejoin gets a fresh presence_state; the old refs are gone.
    await waitFor(() => keys(a.presence).join() === 'rita,sam' && keys(b.presence).join() === 'rita,sam' &&
      a.events.filter((e) => e[0] === 'sync').length >= 3, 10000, 'after the restart');
    const r = await api(second, '/api/presence?topic=room:restart', undefined, { key: undefined, method: 'GET' });
    assert.equal(r.status, 404, 'no API key on this server');
  } finally {
    await closeSocket(a.channel.socket);
    await closeSocket(b.channel.socket);
    await second.stop();
  }
});

test('a join storm of 200 sockets is coalesced and every client converges', async () => {
  const topic = 'room:storm';
  const obs = await client('observer');
  const log = recordMessages(obs);
  const o = tracked(obs, topic);
  await join(o.channel);
  const N = 200;
  const ids = Array.from({ length: N }, (_, i) => `storm${i}`);
  const clients = await Promise.all(ids.map((id) => client(id)));
  const ts = clients.map((s) => tracked(s, topic));
  await Promise.all(ts.map((t) => join(t.channel, 15000)));
  await waitFor(() => o.presence.list().length === N + 1, 30000, 'observer converged');
  await waitFor(() => ts.every((t) => t.presence.list().length === N + 1), 30000, 'everyone converged');
  const diffs = log.filter((m) => m.event === 'presence_diff').length;
  console.log(`join storm: ${diffs} presence_diff messages for ${N} joins`);
  // One diff per join would be 200; the window makes a handful.
  assert.ok(diffs >= 1 && diffs <= 100, `observer received ${diffs} presence_diff messages for ${N} joins`);
  const leaveLog = log.length;
  await Promise.all(clients.map((s) => closeSocket(s)));
  await waitFor(() => o.presence.list().length === 1, 30000, 'everyone left');
  const leaveDiffs = log.slice(leaveLog).filter((m) => m.event === 'presence_diff').length;
  assert.ok(leaveDiffs <= 100, `${leaveDiffs} presence_diff messages for ${N} leaves`);
  const m = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(m, /phxd_presence_diffs_total \d+/);
  assert.match(m, /phxd_presences \d+/);
});

test('GET /api/presence and `phxd presence` list a topic in the presence_state shape', async () => {
  const a = await client('api1');
  const ch = a.channel('room:api');
  await join(ch);
  const r = await api(server, '/api/presence?topic=room:api', undefined, { key: KEY, method: 'GET' });
  assert.equal(r.status, 200);
  assert.equal(r.json.topic, 'room:api');
  assert.deepEqual(Object.keys(r.json.presences), ['api1']);
  assert.equal(r.json.presences.api1.metas.length, 1);
  assert.deepEqual(Object.keys(r.json.presences.api1.metas[0]), ['online_at', 'phx_ref']);
  const empty = await api(server, '/api/presence?topic=room:nobody', undefined, { key: KEY, method: 'GET' });
  assert.deepEqual(empty.json, { topic: 'room:nobody', presences: {} });
  assert.equal((await api(server, '/api/presence?topic=room:api', undefined, { key: 'wrong', method: 'GET' })).status, 401);
  assert.equal((await api(server, '/api/presence', undefined, { key: KEY, method: 'GET' })).status, 400);
  assert.equal((await api(server, '/api/presence?topic=room:api', {}, { key: KEY })).status, 405);
  const cli = await runPhxd(['presence', '--url', server.url, 'room:api'], { env: { PHXD_API_KEY: KEY } });
  assert.equal(cli.code, 0, cli.stderr);
  assert.deepEqual(JSON.parse(cli.stdout), r.json);
  const bad = await runPhxd(['presence', '--url', server.url, '--api-key', 'wrong', 'room:api']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^phxd presence: HTTP 401/);
  assert.equal((await runPhxd(['presence', '--api-key', KEY])).code, 2);
});

const RESERVED = ['phx_error', 'phx_close', 'phx_reply', 'phx_join_x', 'phx_token_expiring', 'presence_diff', 'presence_state'];

for (const [name, transport] of [['WebSocket', 'ws'], ['LongPoll', 'lp']]) {
  test(`${name}: reserved events are refused and reach nobody`, async () => {
    const topic = `room:reserved-${transport}`;
    const a = await client('forger', { transport });
    const b = await client('victim');
    const log = recordMessages(b);
    const ca = a.channel(topic);
    const cb = b.channel(topic);
    await join(ca);
    await join(cb);
    for (const ev of RESERVED) {
      assert.deepEqual(await push(ca, ev, { joins: { evil: { metas: [{ phx_ref: 'x' }] } }, leaves: {} }),
        { status: 'error', response: { reason: 'reserved event' } }, ev);
    }
    // Under broadcast_from too, and an ordinary event still goes through.
    assert.deepEqual(await push(ca, 'shout', { n: 1 }), { status: 'ok', response: {} });
    await waitFor(() => log.some((m) => m.event === 'shout'), 5000, 'shout arrives');
    assert.deepEqual(log.filter((m) => RESERVED.includes(m.event) && m.event !== 'presence_diff' && m.event !== 'presence_state' && m.topic === topic && m.event !== 'phx_reply'), []);
    assert.equal(log.filter((m) => m.event === 'presence_diff' && m.payload.joins.evil).length, 0);
    assert.equal(cb.state, 'joined');
  });
}

test('the API and `phxd publish` refuse reserved events with 400', async () => {
  for (const event of ['phx_close', 'presence_diff', 'presence_state', 'phx_error']) {
    const r = await api(server, '/api/broadcast', { topic: 'room:x', event, payload: {} }, { key: KEY });
    assert.equal(r.status, 400, event);
    assert.deepEqual(r.json, { error: 'reserved event' });
  }
  const batch = await api(server, '/api/broadcast', { messages: [{ topic: 'room:x', event: 'ok' }, { topic: 'room:x', event: 'phx_error' }] }, { key: KEY });
  assert.equal(batch.status, 400);
  assert.deepEqual(batch.json, { error: 'messages[1]: reserved event' });
  const cli = await runPhxd(['publish', '--url', server.url, 'room:x', 'presence_diff', '{}'], { env: { PHXD_API_KEY: KEY } });
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /HTTP 400: \{"error":"reserved event"\}/);
  const ok = await api(server, '/api/broadcast', { topic: 'room:x', event: 'news' }, { key: KEY });
  assert.equal(ok.status, 202);
});

test('bounds: metas per key and keys per topic; the join succeeds untracked and says why', async () => {
  const srv = await startServer(['--channel', RULES[0], '--presence-max-metas', '2', '--presence-max-keys', '2']);
  try {
    const ok = [];
    for (let i = 0; i < 2; i++) ok.push(await join((await client('dup', { srv })).channel('room:b')));
    assert.deepEqual(ok, [{}, {}]);
    const third = await client('dup', { srv });
    const w = tracked(third, 'room:b');
    assert.deepEqual(await join(w.channel), { presence: 'not tracked', reason: 'too many metas for this key' });
    await waitFor(() => metaCount(w.presence, 'dup') === 2, 5000, 'the refused socket still gets presence_state');
    assert.deepEqual(await join((await client('other', { srv })).channel('room:b')), {});
    assert.deepEqual(await join((await client('third', { srv })).channel('room:b')),
      { presence: 'not tracked', reason: 'too many presences on this topic' });
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    assert.match(m, /phxd_presence_refusals_total 2/);
    assert.match(srv.stderr(), /event=presence_refused topic=room:b key=dup reason=too many metas/);
  } finally {
    await srv.stop();
  }
});

const metric = (text, name) => Number((text.match(new RegExp(`^${name} (\\d+)$`, 'm')) || [])[1]);

test('presence-max=2 on the rule: the third user joins untracked, the reply and /metrics say so', async () => {
  const srv = await startServer(['--channel', 'cap:* join=any events=broadcast presence=user presence-max=2']);
  try {
    const before = await (await fetch(`${srv.url}/metrics`)).text();
    assert.equal(metric(before, 'phxd_presences'), 0);
    assert.equal(metric(before, 'phxd_presence_topics'), 0);
    assert.equal(metric(before, 'phxd_presence_refusals_total'), 0);
    const a = tracked(await client('ua', { srv }), 'cap:room');
    const b = tracked(await client('ub', { srv }), 'cap:room');
    assert.deepEqual(await join(a.channel), {});
    assert.deepEqual(await join(b.channel), {});
    const c = tracked(await client('uc', { srv }), 'cap:room');
    assert.deepEqual(await join(c.channel), { presence: 'not tracked', reason: 'too many presences on this topic' });
    assert.equal(c.channel.state, 'joined');
    // The refused socket still gets presence_state, and the others' lists hold 2.
    await waitFor(() => keys(c.presence).join() === 'ua,ub', 5000, 'the refused socket sees the two');
    await waitFor(() => keys(a.presence).join() === 'ua,ub' && keys(b.presence).join() === 'ua,ub', 5000, 'two in the list');
    // A known key still takes another meta (the cap counts users, not sockets).
    const a2 = await client('ua', { srv });
    assert.deepEqual(await join(a2.channel('cap:room')), {});
    await waitFor(() => metaCount(b.presence, 'ua') === 2, 5000, 'a second tab of ua');
    // Each topic of the rule has its own cap.
    assert.deepEqual(await join((await client('uc', { srv })).channel('cap:other')), {});
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(keys(a.presence), ['ua', 'ub'], 'uc never appears');
    const m = await (await fetch(`${srv.url}/metrics`)).text();
    assert.equal(metric(m, 'phxd_presence_refusals_total'), 1);
    assert.equal(metric(m, 'phxd_presences'), 4, 'ua twice, ub, uc on cap:other');
    assert.equal(metric(m, 'phxd_presence_topics'), 2);
    assert.match(srv.stderr(), /event=presence_refused topic=cap:room key=uc reason=too many presences on this topic/);
    // A leave frees a place.
    b.channel.leave();
    await waitFor(() => keys(a.presence).join() === 'ua', 5000, 'ub left');
    assert.deepEqual(await join((await client('ud', { srv })).channel('cap:room')), {});
    await waitFor(() => keys(a.presence).join() === 'ua,ud', 5000, 'ud tracked in the freed place');
  } finally {
    await srv.stop();
  }
});

// ---- the frames byte for byte ----

const REF = '[A-Za-z0-9_-]{16}';
const esc = (s) => s.replace(/[[\]{}()*+?.\\^$|]/g, '\\$&');

test('V2 frames: presence_state with the join_ref, presence_diff as a broadcast', async () => {
  const r = await rawWs(server, `token=${encodeURIComponent(tok('bytes1'))}&vsn=2.0.0`);
  raws.push(r);
  r.send('["7","7","room:bytes","phx_join",{}]');
  assert.equal(await r.nextText(), '["7","7","room:bytes","phx_reply",{"response":{},"status":"ok"}]');
  const state = await r.nextText();
  assert.match(state, new RegExp(`^${esc('["7",null,"room:bytes","presence_state",{"bytes1":{"metas":[{"online_at":"')}\\d+","phx_ref":"${REF}"${esc('}]}}]')}$`));
  const ref = JSON.parse(state)[4].bytes1.metas[0].phx_ref;
  const at = JSON.parse(state)[4].bytes1.metas[0].online_at;
  const diff = await r.nextText();
  assert.equal(diff, `[null,null,"room:bytes","presence_diff",{"joins":{"bytes1":{"metas":[{"online_at":"${at}","phx_ref":"${ref}"}]}},"leaves":{}}]`);
  // A second user's leave, as the first one sees it.
  const r2 = await rawWs(server, `token=${encodeURIComponent(tok('bytes2'))}&vsn=2.0.0`);
  raws.push(r2);
  r2.send('["1","1","room:bytes","phx_join",{}]');
  await r2.nextText();
  const state2 = JSON.parse(await r2.nextText());
  assert.deepEqual(Object.keys(state2[4]).sort(), ['bytes1', 'bytes2']);
  const m2 = state2[4].bytes2.metas[0];
  assert.equal(await r.nextText(), `[null,null,"room:bytes","presence_diff",{"joins":{"bytes2":{"metas":[{"online_at":"${m2.online_at}","phx_ref":"${m2.phx_ref}"}]}},"leaves":{}}]`);
  r2.send('["1","2","room:bytes","phx_leave",{}]');
  assert.equal(await r.nextText(), `[null,null,"room:bytes","presence_diff",{"joins":{},"leaves":{"bytes2":{"metas":[{"online_at":"${m2.online_at}","phx_ref":"${m2.phx_ref}"}]}}}]`);
});

test('V1 frames: the same messages as V1 objects', async () => {
  const r = await rawWs(server, `token=${encodeURIComponent(tok('v1user'))}&vsn=1.0.0`);
  raws.push(r);
  r.send('{"topic":"room:v1bytes","event":"phx_join","payload":{},"ref":"3","join_ref":"3"}');
  assert.equal(await r.nextText(), '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"3","topic":"room:v1bytes"}');
  const state = await r.nextText();
  assert.match(state, new RegExp(`^${esc('{"event":"presence_state","payload":{"v1user":{"metas":[{"online_at":"')}\\d+","phx_ref":"${REF}"${esc('}]}},"ref":null,"topic":"room:v1bytes"}')}$`));
  const meta = JSON.parse(state).payload.v1user.metas[0];
  assert.equal(await r.nextText(), `{"event":"presence_diff","payload":{"joins":{"v1user":{"metas":[{"online_at":"${meta.online_at}","phx_ref":"${meta.phx_ref}"}]}},"leaves":{}},"ref":null,"topic":"room:v1bytes"}`);
});
