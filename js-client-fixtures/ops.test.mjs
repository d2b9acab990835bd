// Operations: /metrics moving with traffic (and valid Prometheus text),
// /healthz during a drain, drain close codes in batches, and every limit's
// answer (max connections, handshake deadline, slow consumers), plus the log
// format and the info lines of a socket's life.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { PHXD_BIN, startServer, signToken, phxSocket, connect, join, push, nextEvent, closeSocket, withTimeout } from './lib/server.mjs';
import { rawWs, rawJoinV2 } from './lib/raw.mjs';
import { api, waitFor, lpGet, LpSession } from './lib/longpoll.mjs';

const servers = [];
after(async () => { for (const s of servers) await s.stop('SIGKILL').catch(() => {}); });

async function start(args, opts) {
  const s = await startServer(args, opts);
  servers.push(s);
  return s;
}

// Checks Prometheus text format conventions: every sample belongs to a
// family with HELP and TYPE lines before it, names are valid, counters end
// in _total, no series repeats, values are numbers.
function checkExposition(text) {
  const types = new Map();
  const helps = new Set();
  const seen = new Set();
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m;
    if ((m = line.match(/^# HELP (\S+) \S.*$/))) {
      assert.match(m[1], name, line);
      assert.ok(!helps.has(m[1]), `HELP twice: ${line}`);
      helps.add(m[1]);
      continue;
    }
    if ((m = line.match(/^# TYPE (\S+) (counter|gauge|histogram)$/))) {
      assert.ok(helps.has(m[1]), `TYPE without HELP: ${line}`);
      assert.ok(!types.has(m[1]), `TYPE twice: ${line}`);
      if (m[2] === 'counter') assert.match(m[1], /_total$/, `a counter not ending in _total: ${m[1]}`);
      types.set(m[1], m[2]);
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-z_]+="[^"\\\n]*",?)*\})? (\S+)$/);
    assert.ok(m, `bad sample line: ${line}`);
    assert.ok(!Number.isNaN(Number(m[4])), `value: ${line}`);
    const series = line.slice(0, line.lastIndexOf(' '));
    assert.ok(!seen.has(series), `series twice: ${series}`);
    seen.add(series);
    const family = types.has(m[1]) ? m[1] : m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family), `sample without TYPE: ${line}`);
    if (family !== m[1]) assert.equal(types.get(family), 'histogram', line);
  }
}

async function metrics(srv) {
  const r = await fetch(`${srv.url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/plain/);
  const text = await r.text();
  checkExposition(text);
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
  await assert.rejects(join(a.channel('users_socket:2')));
  assert.equal((await api(srv, '/api/broadcast', { topic: 'room:m', event: 'srv', payload: {} }, { key: 'k' })).status, 202);
  assert.equal((await api(srv, '/api/broadcast', { topic: 'room:m', event: 'srv' }, { key: 'wrong' })).status, 401);
  assert.equal((await api(srv, '/api/disconnect', { id: 'room:m' }, { key: 'k' })).status, 400);
  assert.equal((await api(srv, '/api/disconnect', { id: 'users_socket:9' }, { key: 'k' })).status, 202);
  assert.equal((await api(srv, '/api/nope', {}, { key: 'k' })).status, 404);
  const m1 = await metrics(srv);
  assert.equal(m1['phxd_connections{transport="websocket"}'], 2);
  assert.equal(m1.phxd_channels_joined, 2);
  assert.ok(m1.phxd_messages_in_total >= m0.phxd_messages_in_total + 3);
  assert.ok(m1.phxd_messages_out_total > m0.phxd_messages_out_total);
  assert.ok(m1.phxd_received_bytes_total > m0.phxd_received_bytes_total);
  assert.ok(m1.phxd_sent_bytes_total > m0.phxd_sent_bytes_total);
  assert.equal(m1.phxd_bytes_in_total, undefined); // the pre-1.0 names are gone
  assert.equal(m1.phxd_bytes_out_total, undefined);
  assert.equal(m1['phxd_connects_refused_total{reason="token_invalid"}'], 1);
  assert.equal(m1['phxd_connects_refused_total{reason="token_missing"}'], 1);
  assert.equal(m1['phxd_connects_refused_total{reason="vsn"}'], 1);
  assert.equal(m1.phxd_joins_total, m0.phxd_joins_total + 2);
  assert.equal(m1['phxd_joins_refused_total{reason="unauthorized"}'], 1);
  assert.equal(m1['phxd_joins_refused_total{reason="socket_id_topic"}'], 1);
  for (const reason of ['unmatched_topic', 'too_many_channels', 'handler_error', 'join_crashed']) {
    assert.equal(m1[`phxd_joins_refused_total{reason="${reason}"}`], 0, reason);
  }
  assert.equal(m1['phxd_api_requests_total{route="/api/broadcast",status="202"}'], 1);
  assert.equal(m1['phxd_api_requests_total{route="/api/broadcast",status="401"}'], 1);
  assert.equal(m1['phxd_api_requests_total{route="/api/disconnect",status="400"}'], 1);
  assert.equal(m1['phxd_api_requests_total{route="/api/disconnect",status="202"}'], 1);
  assert.equal(m1['phxd_api_requests_total{route="other",status="404"}'], 1);
  assert.equal(m0['phxd_api_requests_total{route="/api/broadcast",status="202"}'], undefined);
  assert.ok(m1.phxd_broadcasts_total >= 2);
  assert.ok(m1.phxd_broadcast_fanout_seconds_count >= 2);
  assert.equal(m1['phxd_broadcast_fanout_seconds_bucket{le="+Inf"}'], m1.phxd_broadcast_fanout_seconds_count);
  closeSocket(a);
  closeSocket(b);
  await waitFor(async () => (await metrics(srv))['phxd_connections{transport="websocket"}'] === 0, 5000, 'sockets gone');
  assert.equal((await metrics(srv)).phxd_channels_joined, 0);
});

test('/metrics has the process_* metrics and phxd_build_info, with plausible values', async () => {
  const srv = await start([]);
  const m = await metrics(srv);
  const kib = Number(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
  assert.ok(m.process_resident_memory_bytes > 1e6 && m.process_resident_memory_bytes < 1e9, `${m.process_resident_memory_bytes}`);
  assert.ok(Math.abs(m.process_resident_memory_bytes - kib * 1024) < 64 * 1024 * 1024, 'RSS as /proc/<pid>/status says');
  assert.ok(m.process_virtual_memory_bytes >= m.process_resident_memory_bytes);
  assert.ok(m.process_cpu_seconds_total >= 0 && m.process_cpu_seconds_total < 60);
  const now = Date.now() / 1000;
  assert.ok(m.process_start_time_seconds > now - 120 && m.process_start_time_seconds <= now + 2, `${m.process_start_time_seconds} vs ${now}`);
  const fds = fs.readdirSync(`/proc/${srv.proc.pid}/fd`).length;
  assert.ok(m.process_open_fds >= 3 && Math.abs(m.process_open_fds - fds) <= 4, `${m.process_open_fds} vs ${fds}`);
  assert.ok(m.process_max_fds >= m.process_open_fds);
  // Open sockets show up as descriptors.
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await rawWs(srv, q(40 + i)));
  assert.ok((await metrics(srv)).process_open_fds >= m.process_open_fds + 5);
  for (const c of clients) await c.close();
  const version = spawnSync(PHXD_BIN, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const info = Object.keys(m).filter((k) => k.startsWith('phxd_build_info'));
  assert.equal(info.length, 1);
  assert.match(info[0], /^phxd_build_info\{version="\d+\.\d+\.\d+[^"]*"\}$/);
  assert.ok(version.includes(info[0].match(/"(.*)"/)[1]), `${info[0]} vs ${version}`);
  assert.equal(m[info[0]], 1);
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

test('at info, one line per connect, refused connect, join, refused join and close, the same for both transports; no token or payload', async () => {
  const srv = await start(['--log-level', 'info', '--longpoll-window-ms', '300']);
  const t1 = signToken(1);
  const t2 = signToken(2);
  const forged = 'SFMyNTY.forged-token-never-logged.abc';
  const secret = 'payload-secret-never-logged';
  // WebSocket: connect, join, a refused join, close.
  const ws = await rawWs(srv, `token=${encodeURIComponent(t1)}&vsn=2.0.0`);
  assert.equal((await rawJoinV2(ws, 'room:logs', '1', { secret }))[4].status, 'ok');
  assert.equal((await rawJoinV2(ws, 'user:999', '2', { secret }))[4].status, 'error');
  ws.sendJson([null, '3', 'room:logs', 'shout', { secret }]); // a message: no line at info
  await ws.nextJson();
  // Refused connects, one per transport.
  await assert.rejects(rawWs(srv, `token=${forged}&vsn=2.0.0`), (e) => e.status === 403);
  assert.equal((await lpGet(srv, 'vsn=2.0.0&')).json.status, 403);
  // LongPoll: connect, join; the session ends when it stops polling.
  const lp = new LpSession(srv, `token=${encodeURIComponent(t2)}&vsn=2.0.0`);
  await lp.open();
  assert.equal((await lp.post([JSON.stringify(['1', '1', 'room:lp', 'phx_join', { secret }])])).status, 200);
  const got = await lp.untilRef('1');
  assert.equal(got.find((m) => m[1] === '1')[4].status, 'ok');
  await ws.close();
  const log = () => srv.stderr();
  await waitFor(() => (log().match(/ event=close /g) || []).length >= 2, 5000, 'both close lines');
  await new Promise((r) => setTimeout(r, 100));
  const lines = log().trim().split('\n');
  const only = (re) => {
    const found = lines.filter((l) => re.test(l));
    assert.equal(found.length, 1, `exactly one line for ${re}:\n${log()}`);
    assert.match(found[0], / info /, found[0]);
    return found[0];
  };
  assert.equal(lines.filter((l) => / event=connect /.test(l)).length, 2, log());
  only(/ event=connect socket_id=users_socket:1 user_id=1 transport=websocket peer=127\.0\.0\.1$/);
  only(/ event=connect socket_id=users_socket:2 user_id=2 transport=longpoll peer=127\.0\.0\.1$/);
  assert.equal(lines.filter((l) => / event=connect_refused /.test(l)).length, 2, log());
  only(/ event=connect_refused reason=token_invalid transport=websocket peer=127\.0\.0\.1$/);
  only(/ event=connect_refused reason=token_missing transport=longpoll peer=127\.0\.0\.1$/);
  assert.equal(lines.filter((l) => / event=join /.test(l)).length, 2, log());
  only(/ event=join socket_id=users_socket:1 topic=room:logs$/);
  only(/ event=join socket_id=users_socket:2 topic=room:lp$/);
  only(/ event=join_refused socket_id=users_socket:1 topic=user:999 reason=unauthorized$/);
  only(/ event=close socket_id=users_socket:1 transport=websocket code=1000$/);
  only(/ event=close socket_id=users_socket:2 transport=longpoll code=1000$/); // ended: no poll in 1.5 windows
  // Nothing per message, and never a token or a payload.
  assert.doesNotMatch(log(), /shout|room:logs.*room:logs/);
  for (const s of [t1, t2, forged, 'forged-token-never-logged', lp.token, secret]) {
    assert.ok(!log().includes(s), `${s.slice(0, 20)}... in the log`);
  }
  for (const line of lines) {
    assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) (\w+=("[^"]*"|\S+) ?)+$/, line);
  }
});

test('a topic with spaces, quotes or newlines stays one quoted value of its line', async () => {
  const srv = await start(['--log-level', 'info']);
  const ws = await rawWs(srv, q(1));
  assert.equal((await rawJoinV2(ws, 'room:a b"c\nevent=fake', '1'))[4].status, 'ok');
  await ws.close();
  await waitFor(() => / event=close /.test(srv.stderr()), 5000, 'close line');
  const line = srv.stderr().split('\n').find((l) => / event=join /.test(l));
  assert.match(line, / event=join socket_id=users_socket:1 topic="room:a b\\x22c\\x0aevent=fake"$/);
  assert.equal(srv.stderr().split('\n').filter((l) => /event=fake/.test(l)).length, 1);
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
