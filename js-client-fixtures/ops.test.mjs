// Operations: /metrics moving with traffic, /healthz during a drain, drain
// close codes in batches, and every limit's answer (max connections,
// handshake deadline, slow consumers), plus the log format.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket, withTimeout } from './lib/server.mjs';
import { rawWs } from './lib/raw.mjs';
import { api, waitFor } from './lib/longpoll.mjs';

const servers = [];
after(async () => { for (const s of servers) await s.stop('SIGKILL').catch(() => {}); });

async function start(args, opts) {
  const s = await startServer(args, opts);
  servers.push(s);
  return s;
}

async function metrics(srv) {
  const r = await fetch(`${srv.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain/);
  const text = await r.text();
  const values = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    values[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return values;
}

const q = (user) => `token=${signToken(user)}&vsn=2.0.0`;

test('/metrics moves when traffic flows: connections, channels, messages, bytes, refusals, fan-out', async () => {
  const srv = await start(['--api-key', 'k']);
  const m0 = await metrics(srv);
  assert.equal(m0['phxd_connections{transport="websocket"}'], 0);
  const a = phxSocket(srv, { token: signToken(1) });
  const b = phxSocket(srv, { token: signToken(2) });
  await connect(a);
  await connect(b);
  const ca = a.channel('room:m');
  const cb = b.channel('room:m');
  await join(ca);
  await join(cb);
  const got = nextEvent(cb, 'hi');
  await push(ca, 'hi', { x: 1 });
  await got;
  await assert.rejects(rawWs(srv, 'token=forged&vsn=2.0.0'), (e) => e.status === 403);
  await assert.rejects(rawWs(srv, 'vsn=2.0.0'), (e) => e.status === 403);
  await assert.rejects(rawWs(srv, `${q(3)}`.replace('2.0.0', '9.0.0')), (e) => e.status === 403);
  await assert.rejects(join(a.channel('user:999')));
  await api(srv, '/api/broadcast', { topic: 'room:m', event: 'srv', payload: {} }, { key: 'k' });
  const m1 = await metrics(srv);
  assert.equal(m1['phxd_connections{transport="websocket"}'], 2);
  assert.equal(m1.phxd_channels_joined, 2);
  assert.ok(m1.phxd_messages_in_total >= m0.phxd_messages_in_total + 3);
  assert.ok(m1.phxd_messages_out_total > m0.phxd_messages_out_total);
  assert.ok(m1.phxd_bytes_in_total > m0.phxd_bytes_in_total);
  assert.ok(m1.phxd_bytes_out_total > m0.phxd_bytes_out_total);
  assert.equal(m1['phxd_connects_refused_total{reason="token_invalid"}'], 1);
  assert.equal(m1['phxd_connects_refused_total{reason="token_missing"}'], 1);
  assert.equal(m1['phxd_connects_refused_total{reason="vsn"}'], 1);
  assert.ok(m1.phxd_joins_refused_total >= 1);
  assert.ok(m1.phxd_broadcasts_total >= 2);
  assert.ok(m1.phxd_broadcast_fanout_seconds_count >= 2);
  assert.equal(m1['phxd_broadcast_fanout_seconds_bucket{le="+Inf"}'], m1.phxd_broadcast_fanout_seconds_count);
  closeSocket(a);
  closeSocket(b);
  await waitFor(async () => (await metrics(srv))['phxd_connections{transport="websocket"}'] === 0, 5000, 'sockets gone');
  assert.equal((await metrics(srv)).phxd_channels_joined, 0);
});

test('SIGTERM drains in batches: /healthz turns 503, new sockets get 503, every socket sees 1012, exit 0', async () => {
  const srv = await start(['--drain-batch', '2', '--drain-interval-ms', '300', '--drain-timeout-ms', '10000']);
  assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await rawWs(srv, q(10 + i)));
  const closedAt = clients.map((c) => c.waitClosed(10000).then((info) => ({ ...info, at: Date.now() })));
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  // While the drain runs the listener still answers: health is 503 and no
  // new socket is accepted.
  await waitFor(async () => (await fetch(`${srv.url}/healthz`).catch(() => ({ status: 0 }))).status === 503, 3000, '/healthz 503');
  await assert.rejects(rawWs(srv, q(99)), (e) => e.status === 503);
  const infos = await Promise.all(closedAt);
  for (const info of infos) assert.equal(info.code, 1012);
  // Batches of 2, 300 ms apart: the last closes at least 2 intervals later.
  const spread = Math.max(...infos.map((i) => i.at)) - Math.min(...infos.map((i) => i.at));
  assert.ok(spread >= 400, `closes spread over ${spread} ms`);
  const { code } = await withTimeout(srv.exited, 10000, 'exit');
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 10000);
  assert.match(srv.stderr(), /event=drain_start/);
});

test('SIGINT closes everything in one step with 1001 and exits 0', async () => {
  const srv = await start(['--drain-batch', '1', '--drain-interval-ms', '5000']);
  const clients = [];
  for (let i = 0; i < 3; i++) clients.push(await rawWs(srv, q(20 + i)));
  const t0 = Date.now();
  srv.proc.kill('SIGINT');
  const infos = await Promise.all(clients.map((c) => c.waitClosed(5000)));
  for (const info of infos) assert.equal(info.code, 1001);
  assert.equal((await withTimeout(srv.exited, 5000, 'exit')).code, 0);
  assert.ok(Date.now() - t0 < 4000, 'SIGINT does not wait for drain intervals');
});

test('--max-connections: the next connection gets 503 before any upgrade, and the server recovers', async () => {
  const srv = await start(['--max-connections', '2']);
  const a = await rawWs(srv, q(1));
  const b = await rawWs(srv, q(2));
  await assert.rejects(rawWs(srv, q(3)), (e) => e.status === 503);
  await a.close();
  await waitFor(async () => {
    try { const c = await rawWs(srv, q(4)); await c.close(); return true; } catch { return false; }
  }, 5000, 'a slot frees up');
  await b.close();
  const m = await metrics(srv).catch(() => null);
  if (m) assert.ok(m['phxd_connects_refused_total{reason="capacity"}'] >= 1);
});

test('handshake deadline: a client trickling its request head is answered 408 and closed (slowloris)', async () => {
  const srv = await start(['--handshake-timeout-ms', '300']);
  const t0 = Date.now();
  const result = await withTimeout(new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    let data = '';
    const req = 'GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n';
    let i = 0;
    const timer = setInterval(() => { if (i < req.length) s.write(req[i++]); }, 20);
    s.on('data', (d) => { data += d; });
    s.on('close', () => { clearInterval(timer); resolve({ data, ms: Date.now() - t0 }); });
    s.on('error', () => {});
  }), 5000, 'slowloris closed');
  assert.match(result.data, /^HTTP\/1\.1 408/);
  assert.ok(result.ms >= 250 && result.ms < 3000, `closed after ${result.ms} ms`);
  // An idle connection that sent nothing is dropped without an answer.
  const idle = await withTimeout(new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('close', () => resolve(data));
    s.on('error', () => resolve(data));
  }), 5000, 'idle closed');
  assert.equal(idle, '');
  // Meanwhile a normal client connects fine.
  const c = await rawWs(srv, q(5));
  await c.close();
});

test('a slow consumer is closed with 1008 once its queue passes --queue-limit-bytes; the others get everything', async () => {
  const srv = await start(['--queue-high-bytes', '65536', '--queue-limit-bytes', '262144', '--api-key', 'k']);
  // The slow client: a raw TCP WebSocket that stops reading.
  const slow = await new Promise((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => {
      s.write(`GET /socket/websocket?${q(7)} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    });
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.includes('\r\n\r\n')) { s.off('data', onData); resolve({ s, head: buf }); }
    };
    s.on('data', onData);
    s.on('error', reject);
  });
  const mask = Buffer.from([1, 2, 3, 4]);
  const text = Buffer.from('["1","1","room:slow","phx_join",{}]');
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | text.length]), mask, Buffer.from(text.map((b, i) => b ^ mask[i % 4]))]);
  slow.s.write(frame);
  const fast = await rawWs(srv, q(8));
  fast.sendJson(['1', '1', 'room:slow', 'phx_join', {}]);
  await fast.nextJson();
  await new Promise((r) => setTimeout(r, 50)); // let the slow join land
  slow.s.pause();
  // Enough to fill the kernel's buffers on both ends (several MiB on
  // loopback) and then the server's own queue.
  const big = 'x'.repeat(65536);
  const n = 400;
  for (let i = 0; i < n; i++) {
    await api(srv, '/api/broadcast', { topic: 'room:slow', event: 'flood', payload: { i, big } }, { key: 'k' });
  }
  // The fast client saw every broadcast, in order.
  for (let i = 0; i < n; i++) {
    const m = await fast.nextJson();
    assert.equal(m[3], 'flood');
    assert.equal(m[4].i, i);
  }
  const mm = await metrics(srv);
  assert.ok(mm.phxd_slow_consumer_disconnects_total >= 1);
  // The slow client, once it reads again, finds a 1008 Close at the end.
  slow.s.resume();
  const data = await withTimeout(new Promise((resolve) => {
    let all = Buffer.alloc(0);
    slow.s.on('data', (d) => { all = Buffer.concat([all, d]); });
    slow.s.on('close', () => resolve(all));
  }), 10000, 'slow client closed');
  const close = data.lastIndexOf(Buffer.from([0x88]));
  assert.ok(close >= 0, 'a close frame arrived');
  assert.equal(data.readUInt16BE(close + 2), 1008);
  await fast.close();
});

test('logs are leveled key=value lines on stderr; stdout has only the banner', async () => {
  const srv = await start(['--log-level', 'info']);
  const c = await rawWs(srv, q(1));
  await c.close();
  await srv.stop();
  for (const line of srv.stderr().trim().split('\n')) {
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) (\w+=("[^"]*"|\S+) ?)+$/, line);
  }
  for (const line of srv.stdout().trim().split('\n')) {
    assert.match(line, /^(phxd \S+ listening on|socket:|demo page:|demo token)/, line);
  }
});

test('--api-listen: the API and /metrics move to their own port; the main port serves sockets only', async () => {
  const srv = await start(['--api-key', 'k', '--api-listen', '127.0.0.1:0']);
  const m = srv.stdout().match(/api: http:\/\/127\.0\.0\.1:(\d+) /);
  assert.ok(m, srv.stdout());
  const apiUrl = `http://127.0.0.1:${m[1]}`;
  const body = JSON.stringify({ topic: 'room:a', event: 'e', payload: {} });
  const headers = { authorization: 'Bearer k', 'content-type': 'application/json' };
  assert.equal((await fetch(`${srv.url}/api/broadcast`, { method: 'POST', body, headers })).status, 404);
  assert.equal((await fetch(`${apiUrl}/api/broadcast`, { method: 'POST', body, headers })).status, 202);
  assert.equal((await fetch(`${srv.url}/metrics`)).status, 404);
  assert.equal((await fetch(`${apiUrl}/metrics`)).status, 200);
  assert.equal((await fetch(`${apiUrl}/healthz`)).status, 200);
  assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${apiUrl}/socket/longpoll?vsn=2.0.0`)).status, 404);
  const c = await rawWs(srv, q(1));
  await c.close();
});
