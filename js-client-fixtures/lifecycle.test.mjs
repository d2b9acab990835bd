// Connection and process lifecycle: the idle timeout, shutdown on SIGTERM
// (a drain: every WebSocket closed with 1012, as Phoenix's drainer) and
// SIGINT (one step: 1001), exit status 0, and phoenix.js
// reconnecting and rejoining after phxd comes back on the same port.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket,
  nextClose, nextOpen, nextMessage, withTimeout,
} from './lib/server.mjs';
import { rawWs, rawUpgrade, upgradeRequest, encodeFrame } from './lib/raw.mjs';

const servers = [];
const sockets = [];
const raws = [];

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all(raws.map((r) => r.close()));
  await Promise.all(servers.map((s) => s.stop()));
});

async function server(args = [], opts = {}) {
  const s = await startServer(args, opts);
  servers.push(s);
  return s;
}

async function raw(srv, uid = 42, vsn = '2.0.0') {
  const r = await rawWs(srv, `token=${encodeURIComponent(signToken(uid))}&vsn=${vsn}`);
  raws.push(r);
  return r;
}

async function phx(srv, uid, opts = {}) {
  const s = phxSocket(srv, { token: signToken(uid) }, opts);
  sockets.push(s);
  await connect(s);
  return s;
}

test('a silent client is closed with a close frame after --idle-timeout-ms', async () => {
  const srv = await server(['--idle-timeout-ms', '500']);
  const t0 = Date.now();
  const r = await raw(srv);
  const info = await r.waitClosed(5000);
  const elapsed = Date.now() - t0;
  assert.notEqual(info.code, 1006, 'closed without a close frame');
  assert.notEqual(info.code, 1005, 'close frame without a status code');
  assert.ok(elapsed >= 400, `closed after ${elapsed} ms, before the idle timeout`);
});

test('a client sending heartbeats every 200 ms stays open past 1.5 s with --idle-timeout-ms 500', async () => {
  const srv = await server(['--idle-timeout-ms', '500']);
  const r = await raw(srv);
  const t0 = Date.now();
  let n = 0;
  const timer = setInterval(() => { r.sendJson([null, `hb${++n}`, 'phoenix', 'heartbeat', {}]); }, 200);
  try {
    for (let i = 1; i <= 8; i++) {
      assert.deepEqual(await r.nextJson(2000), [null, `hb${i}`, 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]);
    }
  } finally {
    clearInterval(timer);
  }
  assert.ok(Date.now() - t0 >= 1500);
  assert.equal(r.closeInfo, null);
  assert.equal(r.isOpen, true);
});

test('WebSocket pings also keep a client open past the idle timeout', async () => {
  const srv = await server(['--idle-timeout-ms', '500']);
  const conn = await rawUpgrade(srv.port, upgradeRequest(srv.port, `token=${encodeURIComponent(signToken(42))}&vsn=2.0.0`));
  const t0 = Date.now();
  let n = 0;
  const timer = setInterval(() => { conn.write(encodeFrame(0x9, `p${++n}`)); }, 200);
  try {
    for (let i = 1; i <= 8; i++) {
      const f = await conn.nextFrame(2000);
      assert.equal(f.opcode, 0xa, `frame ${i}: opcode ${f.opcode} ${f.payload.toString('hex')}`);
      assert.equal(f.payload.toString(), `p${i}`);
    }
  } finally {
    clearInterval(timer);
    conn.destroy();
  }
  assert.ok(Date.now() - t0 >= 1500);
});

test('SIGTERM closes every client with 1012 (Phoenix 1.8.8+ drainer) and phxd exits 0', async () => {
  const srv = await server();
  const p1 = await phx(srv, 1);
  const p2 = await phx(srv, 2);
  await join(p1.channel('room:bye'));
  await join(p2.channel('room:bye'));
  await join(p2.channel('user:2'));
  const idle = await raw(srv, 3); // no channel joined
  const joined = await raw(srv, 4);
  joined.sendJson(['1', '1', 'room:bye', 'phx_join', {}]);
  await joined.nextJson();
  const v1 = await raw(srv, 5, '1.0.0');

  const closes = [nextClose(p1), nextClose(p2)];
  const result = await srv.stop('SIGTERM');
  const codes = (await Promise.all(closes)).map((ev) => ev.code);
  for (const r of [idle, joined, v1]) codes.push((await r.waitClosed()).code);
  assert.deepEqual(codes, [1012, 1012, 1012, 1012, 1012]);
  assert.deepEqual(result, { code: 0, signal: null });
});

test('SIGINT closes every client with 1001 and phxd exits 0', async () => {
  const srv = await server();
  const p = await phx(srv, 1);
  await join(p.channel('room:int'));
  const r = await raw(srv, 2);
  const closed = nextClose(p);
  const result = await srv.stop('SIGINT');
  assert.equal((await closed).code, 1001);
  assert.equal((await r.waitClosed()).code, 1001);
  assert.deepEqual(result, { code: 0, signal: null });
});

test('SIGTERM with no client connected exits 0', async () => {
  const srv = await server();
  assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
});

test('phoenix.js reconnects and rejoins by itself after phxd restarts on the same port', async () => {
  const first = await server();
  const socket = await phx(first, 7, { reconnectAfterMs: () => 50, rejoinAfterMs: () => 50 });
  const ch = socket.channel('room:again');
  await join(ch);

  const closed = nextClose(socket);
  const reopened = nextOpen(socket, 15000);
  const rejoined = nextMessage(socket,
    (m) => m.topic === 'room:again' && m.event === 'phx_reply' && m.ref === ch.joinRef() && m.payload.status === 'ok',
    15000, 'rejoin reply');
  assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null });
  assert.equal((await closed).code, 1012, 'the drain closes with 1012, and phoenix.js comes back');

  const second = await server([], { port: first.port });
  assert.equal(second.port, first.port);
  await reopened;
  await rejoined;
  assert.equal(ch.state, 'joined');

  // The rejoined channel receives broadcasts from the new server.
  const other = await phx(second, 8);
  const chOther = other.channel('room:again');
  await join(chOther);
  const got = nextEvent(ch, 'hello');
  assert.equal((await push(chOther, 'hello', { from: 8 })).status, 'ok');
  assert.deepEqual(await withTimeout(got, 5000, 'broadcast after rejoin'), { from: 8 });
  // And its own pushes work.
  assert.deepEqual(await push(ch, 'ping', { x: 1 }), { status: 'ok', response: { x: 1 } });
});

// docs/protocol.md §6.3: Phoenix (Bandit) answers a client Close with 1000 and no
// reason when the client's code is 1000-1003, 1007-1011 or >= 3000 or absent,
// then closes TCP.
test('a client-initiated close is answered with close 1000 and the server closes TCP', async () => {
  const srv = await server();
  const q = `token=${encodeURIComponent(signToken(42))}&vsn=2.0.0`;
  const cases = {
    'code 1000': Buffer.from([0x03, 0xe8]),
    'no status code': Buffer.alloc(0),
    'code 1001 with a reason': Buffer.concat([Buffer.from([0x03, 0xe9]), Buffer.from('bye')]),
    'code 3000': Buffer.from([0x0b, 0xb8]),
  };
  const answers = {};
  for (const [name, payload] of Object.entries(cases)) {
    const conn = await rawUpgrade(srv.port, upgradeRequest(srv.port, q));
    try {
      conn.write(encodeFrame(0x8, payload));
      const f = await conn.nextFrame();
      assert.equal(f.opcode, 0x8, `${name}: answered with opcode ${f.opcode}`);
      answers[name] = f.payload.toString('hex');
      await withTimeout(conn.closed, 5000, `${name}: server did not close TCP`);
    } finally {
      conn.destroy();
    }
  }
  assert.deepEqual(answers, Object.fromEntries(Object.keys(cases).map((k) => [k, '03e8'])));
});
