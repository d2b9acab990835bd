// LongPoll under hostile or careless clients, on raw TCP: a poll and a
// session-ending POST pipelined on one connection while another connection
// polls (a use-after-free before), pipelined polls, sessions bounded by the
// bytes they buffer and by sessions per user, unread poll answers that must
// not copy the shared messages and whose connections are closed as slow
// consumers, and POST bodies judged before they are read
// (no session, and a cap on body bytes held by all connections together).
// Responses are parsed from the byte stream (status line, headers,
// content-length body), so they can be counted and ordered.
// (The bad-input catalogue, docs/bad-input.md, lists these cases.)
//
// Requests look like phoenix.js's: the session token in the `token` query
// param, the user token in x-phoenix-authtoken, so that a poll on a session
// that is gone opens a new one (410) instead of failing authentication.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, signToken } from './lib/server.mjs';
import { httpRequest } from './lib/raw.mjs';
import { api, waitFor } from './lib/longpoll.mjs';
import { RawHttp, sleep, rssKiB, peakKiB, resetPeak } from './lib/rawhttp.mjs';

const KEY = 'lp-hardening-api-key';
const MB = 1000000;

const servers = [];
after(async () => { for (const s of servers) await s.stop('SIGKILL').catch(() => {}); });

async function start(args = []) {
  const s = await startServer(args);
  servers.push(s);
  return s;
}

function assertAlive(srv) {
  assert.ok(srv.proc.exitCode === null && srv.proc.signalCode === null,
    `phxd died (exit ${srv.proc.exitCode}, signal ${srv.proc.signalCode}): ${srv.stderr().slice(-2000)}`);
}

// ---- a raw HTTP/1.1 connection whose responses are parsed one by one ----

// ---- LongPoll requests ----

const lpTarget = (token) => `/socket/longpoll?${token === undefined ? '' : `token=${encodeURIComponent(token)}&`}vsn=2.0.0`;
const lpGetReq = (token, user) => `GET ${lpTarget(token)} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
  `x-phoenix-authtoken: ${user}\r\n\r\n`;
// The head of a POST announcing `length` body bytes.
const lpPostHead = (token, user, length, contentType = 'application/x-ndjson') =>
  `POST ${lpTarget(token)} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-phoenix-authtoken: ${user}\r\n` +
  `Content-Type: ${contentType}\r\nContent-Length: ${length}\r\n\r\n`;
const lpPostReq = (token, user, body, contentType) => lpPostHead(token, user, Buffer.byteLength(body), contentType) + body;

// One request on its own connection (Connection: close); resolves the response.
async function once(srv, request, ms = 10000) {
  const res = await httpRequest(srv.port, request.replace(/\r\n\r\n/, '\r\nConnection: close\r\n\r\n'), ms);
  res.destroy();
  let json = null;
  try { json = JSON.parse(res.body.toString('utf8')); } catch { json = null; }
  return { ...res, json };
}

const healthz = (srv) => once(srv, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');

async function metric(srv, name) {
  const res = await once(srv, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const m = res.body.toString('latin1').match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm'));
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

// Opens a session for `user` (a user token): HTTP 200 {"status":410,"token":...}.
async function openSession(srv, user) {
  const res = await once(srv, lpGetReq(user, user));
  assert.equal(res.status, 200, `session open: ${res.head}`);
  assert.equal(res.json && res.json.status, 410, `session open: ${res.body}`);
  return res.json.token;
}

// One poll on its own connection; resolves the JSON body.
async function poll(srv, session, user) {
  const res = await once(srv, lpGetReq(session, user), 15000);
  assert.equal(res.status, 200, `poll: ${res.head}`);
  assert.ok(res.json, `poll answered JSON: ${res.body.subarray(0, 200)}`);
  return res.json;
}

async function joinLobby(srv, session, user) {
  const res = await once(srv, lpPostReq(session, user, '["1","1","room:lobby","phx_join",{}]', 'application/json'));
  assert.equal(res.body.toString(), '{"status":200}', `join: ${res.head}`);
}

const bigBroadcast = (i, size = MB) => ({ topic: 'room:lobby', event: 'big', payload: { i, data: 'x'.repeat(size) } });

// ---- the tests ----

// Defect: use-after-free. A's GET parked on S, A's POST (pipelined behind
// it) waited; B's poll replaced A's GET, and answering A ran A's POST on
// the spot: its malformed line ended (freed) S while B's poll was still
// being parked on it. phxd crashed every time.
test('a poll and a session-ending NDJSON POST pipelined on one connection while another polls: no crash, two answers in order', async () => {
  const srv = await start(['--longpoll-window-ms', '1000']);
  const user = signToken(42);
  for (let round = 1; round <= 3; round++) {
    const s = await openSession(srv, user);
    const a = await RawHttp.open(srv.port);
    const b = await RawHttp.open(srv.port);
    let failure = null;
    let a1, a2, b1;
    try {
      await a.write(lpGetReq(s, user) + lpPostReq(s, user, '[null,"1","phoenix","heartbeat",{}]\n[x'));
      await sleep(200);
      await b.write(lpGetReq(s, user));
      a1 = await a.next(5000);
      a2 = await a.next(5000);
      b1 = await b.next(5000);
      await sleep(300);
    } catch (e) {
      failure = e;
    }
    await sleep(100);
    assertAlive(srv);
    if (failure) throw new Error(`round ${round}: ${failure.message}`);
    // A: exactly two answers, the GET's (a poll answer), then the POST's.
    assert.equal(a1.status, 200, `round ${round}: A's first answer ${a1.head}`);
    assert.ok(a1.json && Array.isArray(a1.json.messages), `round ${round}: A's first answer is the poll's: ${a1.text}`);
    assert.ok([200, 204].includes(a1.json.status), `round ${round}: poll status ${a1.json.status}`);
    assert.equal(a2.status, 200, `round ${round}: A's second answer ${a2.head}`);
    assert.ok(a2.json && !('messages' in a2.json), `round ${round}: A's second answer is the POST's: ${a2.text}`);
    assert.equal(a2.json.status, 408, `round ${round}: the malformed line ended the session: ${a2.text}`);
    assert.equal(a.pending, 0, `round ${round}: no third answer on A`);
    // B: answered.
    assert.equal(b1.status, 200, `round ${round}: B ${b1.head}`);
    assert.ok(b1.json && [200, 204, 410].includes(b1.json.status), `round ${round}: B's answer ${b1.text}`);
    a.destroy();
    b.destroy();
    // S is gone: the next poll opens a new session.
    const later = await poll(srv, s, user);
    assert.equal(later.status, 410, `round ${round}: a later poll on S: ${JSON.stringify(later)}`);
    assert.notEqual(later.token, s);
  }
  assert.equal((await healthz(srv)).status, 200);
  assertAlive(srv);
});

// Defect: pipelined requests behind a parked poll. Both polls of one
// connection must be answered in order, and the connection must keep
// serving.
test('two pipelined polls of one session on one connection are both answered, in order; the connection stays open', async () => {
  const srv = await start(['--longpoll-window-ms', '500']);
  const user = signToken(43);
  const s = await openSession(srv, user);
  const c = await RawHttp.open(srv.port);
  await c.write(lpGetReq(s, user) + lpGetReq(s, user));
  for (let i = 1; i <= 2; i++) {
    const r = await c.next(5000);
    assert.equal(r.status, 200, `poll ${i}: ${r.head}`);
    assert.ok(r.json && [200, 204].includes(r.json.status), `poll ${i}: ${r.text}`);
    assert.equal(r.json.token, s, `poll ${i} is on S`);
    assert.notEqual(r.headers.connection, 'close', `poll ${i} keeps the connection`);
  }
  // A third request on the same connection.
  await c.write(lpGetReq(s, user));
  const third = await c.next(5000);
  assert.equal(third.status, 200, third.head);
  assert.equal(third.json && third.json.token, s, third.text);
  await sleep(50);
  assert.equal(c.pending, 0, 'no stray bytes');
  c.destroy();
  assertAlive(srv);
});

// Defect: a session that never polls was bounded only by a message count
// (--longpoll-max-messages, 1000): 1000 messages of 1 MB each were held.
// Its buffered bytes are bounded by --queue-limit-bytes, as a WebSocket's.
test('a never-polled session is ended once its buffered bytes pass --queue-limit-bytes (10 x 1 MB broadcasts)', async () => {
  const srv = await start(['--queue-limit-bytes', '4194304', '--api-key', KEY]);
  const pid = srv.proc.pid;
  const user = signToken(44);
  const s = await openSession(srv, user);
  await joinLobby(srv, s, user);
  const slow0 = await metric(srv, 'phxd_slow_consumer_disconnects_total');
  const rss0 = rssKiB(pid);
  const peakOk = resetPeak(pid);
  for (let i = 0; i < 10; i++) {
    const r = await api(srv, '/api/broadcast', bigBroadcast(i), { key: KEY });
    assert.equal(r.status, 202, `broadcast ${i}: ${r.text}`);
  }
  const peak = peakOk ? peakKiB(pid) : rssKiB(pid);
  const later = await poll(srv, s, user);
  assert.equal(later.status, 410, `the session ended: got status ${later.status} with ${(later.messages || []).length} messages`);
  assert.notEqual(later.token, s);
  assert.ok(await metric(srv, 'phxd_slow_consumer_disconnects_total') > slow0, 'counted as a slow consumer');
  const grown = peak - rss0;
  // (ASan's quarantine keeps freed memory: no RSS bound on sanitized builds.)
  if (!process.env.PHXD_SANITIZED) assert.ok(grown < 32 * 1024, `peak RSS grew ${grown} KiB`);
  assertAlive(srv);
});

// Defect: each poll answer was a private copy of every queued message
// (escaped into one JSON body, then copied again into the output queue):
// six sessions holding the same 30 MB of broadcasts and polled by clients
// that do not read cost +179 MB.
test('six sessions polled by clients that never read their 30 MB answers: RSS grows well under six copies', async () => {
  // The limit is above the 30 MB each session holds; the long head deadline
  // keeps the keep-alive timer from cutting the answer read at the end.
  const srv = await start(['--queue-limit-bytes', String(64 * 1024 * 1024), '--api-key', KEY, '--handshake-timeout-ms', '60000']);
  const pid = srv.proc.pid;
  const users = Array.from({ length: 6 }, (_, i) => signToken(100 + i));
  const sessions = [];
  for (const u of users) {
    const s = await openSession(srv, u);
    await joinLobby(srv, s, u);
    // Take the join reply, so only the broadcasts are queued.
    const p = await poll(srv, s, u);
    assert.equal(p.status, 200, JSON.stringify(p));
    sessions.push(s);
  }
  const rss0 = rssKiB(pid);
  const peakOk = resetPeak(pid);
  for (let i = 0; i < 30; i++) {
    const r = await api(srv, '/api/broadcast', bigBroadcast(i), { key: KEY });
    assert.equal(r.status, 202, `broadcast ${i}: ${r.text}`);
    assert.deepEqual(r.json, { recipients: 6 }, `broadcast ${i}`);
  }
  // Every session polls; nobody reads the answers.
  const conns = [];
  for (let i = 0; i < 6; i++) {
    const c = await RawHttp.open(srv.port, { paused: true });
    await c.write(lpGetReq(sessions[i], users[i]));
    conns.push(c);
  }
  await sleep(500);
  assert.equal((await healthz(srv)).status, 200, 'others are served');
  await sleep(500);
  const peak = peakOk ? peakKiB(pid) : rssKiB(pid);
  assertAlive(srv);
  const grown = peak - rss0;
  if (!process.env.PHXD_SANITIZED) assert.ok(grown < 100 * 1024, `peak RSS grew ${grown} KiB for 6 unread answers of 30 MB`);
  // The answers were made: one of them, read now, holds all 30 broadcasts.
  conns[0].resume();
  const r = await conns[0].next(15000);
  assert.equal(r.status, 200, r.head);
  assert.equal(r.json && r.json.status, 200);
  const msgs = r.json.messages.map((m) => JSON.parse(m));
  assert.deepEqual(msgs.map((m) => m[4].i), Array.from({ length: 30 }, (_, i) => i));
  assert.deepEqual(msgs[29].slice(0, 4), [null, null, 'room:lobby', 'big']);
  assert.equal(msgs[29][4].data.length, MB);
  for (const c of conns) c.destroy();
});

// Defect 4, the other half: the slow-consumer policy applies to HTTP
// connections too. A connection whose poll answer is still unread at the
// head deadline (--handshake-timeout-ms after the answer) is closed and
// counted in phxd_slow_consumer_disconnects_total, as a WebSocket that
// stops reading is. (A single answer cannot pass --queue-limit-bytes: the
// session's buffer is bounded by it, above; the limit is checked before a
// further answer is queued, and a connection whose output is above
// --queue-high-bytes runs no more pipelined requests.) The old phxd closed
// such a connection at the deadline too, but with an unbounded output and
// without counting it. No RSS here: this holds on sanitized builds.
test('clients that poll and never read their answers are closed as slow consumers at the head deadline (counted in /metrics)', async () => {
  const N = 3;
  const COUNT = 16; // 16 MB per answer: far more than the loopback buffers of a client that never reads
  const srv = await start(['--queue-limit-bytes', String(32 * 1024 * 1024), '--api-key', KEY,
    '--handshake-timeout-ms', '2000']);
  const users = Array.from({ length: N }, (_, i) => signToken(120 + i));
  const sessions = [];
  for (const u of users) {
    const s = await openSession(srv, u);
    await joinLobby(srv, s, u);
    const p = await poll(srv, s, u); // the join reply
    assert.equal(p.status, 200, JSON.stringify(p));
    sessions.push(s);
  }
  const slow = 'phxd_slow_consumer_disconnects_total';
  const slow0 = await metric(srv, slow);
  for (let i = 0; i < COUNT; i++) {
    const r = await api(srv, '/api/broadcast', bigBroadcast(i), { key: KEY });
    assert.equal(r.status, 202, `broadcast ${i}: ${r.text}`);
    assert.deepEqual(r.json, { recipients: N }, `broadcast ${i}`);
  }
  // Every session polls on a connection that never reads.
  const conns = [];
  for (let i = 0; i < N; i++) {
    const c = await RawHttp.open(srv.port, { paused: true });
    await c.write(lpGetReq(sessions[i], users[i]));
    conns.push(c);
  }
  try {
    let last = slow0;
    await waitFor(async () => (last = await metric(srv, slow)) >= slow0 + N, 15000,
      `the ${N} unread poll connections closed as slow consumers`).catch((e) => {
      throw new Error(`${e.message} (${slow} went from ${slow0} to ${last})`);
    });
    // The server closed them: reading now gets part of an answer, then the end.
    for (const [i, c] of conns.entries()) {
      c.resume();
      await assert.rejects(c.next(15000), /connection closed after 0 responses/, `connection ${i + 1}`);
      assert.ok(c.ended, `connection ${i + 1} closed`);
    }
  } finally {
    for (const c of conns) c.destroy();
  }
  assert.equal((await healthz(srv)).status, 200, 'others are served');
  assertAlive(srv);
});

// Defect: a POST body was read in full before the route looked at the
// session: 7 MB was buffered for a request that was always going to get 410.
test('a LongPoll POST announcing a 7 MB body with no valid session is answered at once, without the body, then closed', async () => {
  const srv = await start();
  const user = signToken(45);
  for (const [name, token] of [['no session token', undefined], ['a garbage session token', 'garbage'], ['the user token', user]]) {
    const c = await RawHttp.open(srv.port);
    await c.write(lpPostHead(token, user, 7 * MB));
    const r = await c.next(5000);
    const ok = (r.status === 200 && r.json && r.json.status === 410) || (r.status >= 400 && r.status < 500);
    assert.ok(ok, `${name}: HTTP ${r.status} ${r.text}`);
    await c.waitClosed(5000);
    c.destroy();
  }
  assertAlive(srv);
});

// Defect: nothing bounded the body bytes held by all connections together
// (--max-body-bytes bounds one request): many slow uploads to live sessions
// could hold many times 8 MB. With --max-body-bytes-total, the upload that
// would take the total past it gets 503; the others complete.
test('--max-body-bytes-total: the slow upload that would pass the total gets 503 and is closed; the others complete', async () => {
  const srv = await start(['--max-body-bytes-total', '4000000']);
  // ~1.5 MB of NDJSON: 100 heartbeat lines (no trailing newline).
  const body = Buffer.from(Array.from({ length: 100 }, (_, i) =>
    JSON.stringify([null, `h${i}`, 'phoenix', 'heartbeat', { pad: 'y'.repeat(15000) }])).join('\n'));
  assert.ok(body.length > 1.5 * MB && body.length < 1.6 * MB);
  const FIRST = 1400000; // what each upload sends before pausing
  const chunk = 100000;
  const uploads = [];
  for (let i = 0; i < 3; i++) {
    const user = signToken(200 + i);
    const s = await openSession(srv, user);
    uploads.push({ user, s, conn: await RawHttp.open(srv.port) });
  }
  // Sends body[from, to) in 100 kB writes, stopping early if answered.
  const send = async (u, from, to) => {
    for (let off = from; off < to; off += chunk) {
      if (u.conn.pending > 0 || u.conn.ended) return;
      if (!(await u.conn.write(body.subarray(off, Math.min(off + chunk, to))))) return;
      await sleep(5);
    }
  };
  const bytesIn0 = await metric(srv, 'phxd_received_bytes_total');
  // A and B: 1.4 MB each, held by the server (2.8 MB).
  for (const u of uploads.slice(0, 2)) await u.conn.write(lpPostHead(u.s, u.user, body.length));
  await send(uploads[0], 0, FIRST);
  await send(uploads[1], 0, FIRST);
  await waitFor(async () => (await metric(srv, 'phxd_received_bytes_total')) >= bytesIn0 + 2 * FIRST, 5000, 'the server read both uploads');
  // C: its head (and as much of its body as it gets to send) passes 4 MB.
  const c = uploads[2];
  await c.conn.write(lpPostHead(c.s, c.user, body.length));
  await send(c, 0, FIRST);
  const refused = await c.conn.next(5000);
  assert.equal(refused.status, 503, refused.head);
  await c.conn.waitClosed(5000);
  c.conn.destroy();
  // A and B finish and are accepted.
  for (const [i, u] of uploads.slice(0, 2).entries()) {
    await send(u, FIRST, body.length);
    const r = await u.conn.next(5000);
    assert.equal(r.status, 200, `upload ${i + 1}: ${r.head}`);
    assert.equal(r.text, '{"status":200}', `upload ${i + 1}`);
    u.conn.destroy();
    const p = await poll(srv, u.s, u.user);
    assert.equal(p.status, 200);
    assert.equal(p.messages.length, 100, `upload ${i + 1}: the 100 heartbeats were handled`);
  }
  assertAlive(srv);
});

// Defect: one user could open sessions until --longpoll-max-sessions (10000)
// was reached for everybody.
test('--longpoll-max-sessions-per-user 3: the same user\'s 4th session gets 503, another user still opens one', async () => {
  const srv = await start(['--longpoll-max-sessions-per-user', '3', '--longpoll-window-ms', '2000']);
  const user = signToken(46);
  const tokens = new Set();
  for (let i = 0; i < 3; i++) tokens.add(await openSession(srv, user));
  assert.equal(tokens.size, 3);
  const fourth = await once(srv, lpGetReq(user, user));
  assert.equal(fourth.status, 503, `4th session: ${fourth.head} ${fourth.body}`);
  assert.ok(await openSession(srv, signToken(47)), 'another user');
  // The first sessions are untouched.
  const p = await poll(srv, [...tokens][0], user);
  assert.ok([200, 204].includes(p.status), JSON.stringify(p));
  assertAlive(srv);
});
