// phoenix.js `longPollFallbackMs` (docs/protocol.md §8): when the WebSocket cannot
// open, the client switches to LongPoll on the same endpoint and remembers it
// in sessionStorage. A tiny TCP proxy in front of phxd forwards plain HTTP
// and refuses (or silently holds) WebSocket upgrades, like a proxy that does
// not speak WebSocket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { Socket } from 'phoenix';
import {
  startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket, nextOpen,
} from './lib/server.mjs';
import { LongPoll, waitFor } from './lib/longpoll.mjs';

let server;
const proxies = [];
const sockets = [];

before(async () => { server = await startServer(); });

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  for (const p of proxies) p.close();
  if (server) await server.stop();
});

// mode 'refuse': answer upgrades 502 and close; 'hang': accept and never answer.
function startProxy(target, mode) {
  const conns = new Set();
  const stats = { upgrades: 0, forwarded: 0 };
  const srv = net.createServer((client) => {
    conns.add(client);
    client.on('close', () => conns.delete(client));
    client.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      const text = head.subarray(0, end).toString('latin1');
      if (/^upgrade:\s*websocket/im.test(text)) {
        stats.upgrades++;
        if (mode === 'refuse') client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return; // 'hang': hold the connection open, say nothing
      }
      stats.forwarded++;
      const upstream = net.connect(target.port, '127.0.0.1');
      conns.add(upstream);
      upstream.on('close', () => { conns.delete(upstream); client.destroy(); });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    };
    client.on('data', onData);
  });
  return new Promise((resolve) => {
    srv.listen(0, '127.0.0.1', () => {
      const proxy = {
        port: srv.address().port,
        stats,
        socketUrl: `ws://127.0.0.1:${srv.address().port}/socket`,
        close() { for (const c of conns) c.destroy(); srv.close(); },
      };
      proxies.push(proxy);
      resolve(proxy);
    });
  });
}

// A minimal Storage, as phoenix.js expects of sessionStorage.
class MemoryStorage {
  constructor() { this.items = {}; }
  getItem(k) { return Object.hasOwn(this.items, k) ? this.items[k] : null; }
  setItem(k, v) { this.items[k] = String(v); }
  removeItem(k) { delete this.items[k]; }
}

function fallbackSocket(url, uid, opts = {}) {
  const s = new Socket(url, {
    transport: WebSocket,
    params: { token: signToken(uid) },
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    ...opts,
  });
  sockets.push(s);
  return s;
}

const sharedStore = new MemoryStorage();

test('a refused WebSocket upgrade makes phoenix.js fall back to LongPoll at once; it joins and chats with a WebSocket client', async () => {
  const proxy = await startProxy(server, 'refuse');
  const s = fallbackSocket(proxy.socketUrl, 1, { longPollFallbackMs: 10000, sessionStorage: sharedStore });
  const t0 = Date.now();
  const opened = nextOpen(s, 5000);
  s.connect();
  await opened;
  assert.ok(Date.now() - t0 < 5000, 'fell back on the error, not on the 10 s timer');
  assert.equal(s.transport, LongPoll);
  assert.equal(s.conn.constructor, LongPoll);
  assert.ok(proxy.stats.upgrades >= 1, 'the WebSocket was tried first');
  assert.ok(proxy.stats.forwarded >= 1, 'LongPoll went through the proxy');
  assert.equal(sharedStore.getItem('phx:fallback:LongPoll'), 'true');

  const ch = s.channel('room:fallback');
  assert.deepEqual(await join(ch), {});
  const direct = phxSocket(server, { token: signToken(2) });
  sockets.push(direct);
  await connect(direct);
  const chWs = direct.channel('room:fallback');
  await join(chWs);
  const atWs = nextEvent(chWs, 'msg');
  assert.equal((await push(ch, 'msg', { from: 'fallback' })).status, 'ok');
  assert.deepEqual(await atWs, { from: 'fallback' });
  const atLp = nextEvent(ch, 'msg');
  assert.equal((await push(chWs, 'msg', { from: 'ws' })).status, 'ok');
  assert.deepEqual(await atLp, { from: 'ws' });
});

test('a WebSocket that never opens: after longPollFallbackMs phoenix.js switches to LongPoll', async () => {
  const proxy = await startProxy(server, 'hang');
  const store = new MemoryStorage();
  const s = fallbackSocket(proxy.socketUrl, 3, { longPollFallbackMs: 300, sessionStorage: store });
  const t0 = Date.now();
  const opened = nextOpen(s, 5000);
  s.connect();
  await opened;
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 250, `switched after ${elapsed} ms, before longPollFallbackMs`);
  assert.equal(s.transport, LongPoll);
  assert.equal(proxy.stats.upgrades, 1);
  assert.equal(store.getItem('phx:fallback:LongPoll'), 'true');
  const ch = s.channel('room:hang');
  assert.deepEqual(await join(ch), {});
  assert.deepEqual(await push(ch, 'ping', { ok: 1 }), { status: 'ok', response: { ok: 1 } });
});

test('a remembered fallback (global sessionStorage) goes straight to LongPoll without trying the WebSocket', async () => {
  const proxy = await startProxy(server, 'refuse');
  globalThis.sessionStorage = sharedStore; // the global phoenix.js looks for
  try {
    const s = fallbackSocket(proxy.socketUrl, 4, { longPollFallbackMs: 10000 });
    const opened = nextOpen(s, 5000);
    s.connect();
    await opened;
    assert.equal(s.transport, LongPoll);
    assert.equal(proxy.stats.upgrades, 0, 'no WebSocket attempt');
    assert.deepEqual(await join(s.channel('user:4')), {});
  } finally {
    delete globalThis.sessionStorage;
  }
});

test('when the WebSocket works, phoenix.js passes its health check and stays on WebSocket', async () => {
  const store = new MemoryStorage();
  const s = fallbackSocket(server.socketUrl, 5, { longPollFallbackMs: 300, sessionStorage: store });
  const opened = nextOpen(s, 5000);
  s.connect();
  await opened;
  await waitFor(() => s.primaryPassedHealthCheck, 5000, 'health check ping');
  assert.equal(s.transport, WebSocket);
  assert.deepEqual(await join(s.channel('room:primary')), {});
  assert.equal(s.transport, WebSocket);
  assert.equal(store.getItem('phx:fallback:LongPoll'), null);
});
