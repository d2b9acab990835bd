// The LongPoll transport on the wire (docs/protocol.md §5 and §2.5),
// driven with fetch and raw TCP: session open (410 + token), parked polls,
// POST bodies (NDJSON batches, base64 binary lines, other content types),
// session tokens (header, query, collisions, forgeries, expiry), CORS,
// limits, and the transport switched off.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, signToken, withTimeout, SECRET } from './lib/server.mjs';
import { httpRequest, rawWs, rawJoinV2 } from './lib/raw.mjs';
import {
  lpGet, lpPost, lpRequest, LpSession, api, waitFor, binaryPush,
} from './lib/longpoll.mjs';

const WINDOW = 300; // --longpoll-window-ms of `fast`
const MAX_MESSAGES = 50; // --longpoll-max-messages of `small`
const MAX_BODY = 4096; // --max-body-bytes of `small`
const KEY = 'lp-raw-api-key';

let srv; // default window (10 s): a parked GET only returns early when a message arrives
let fast; // --longpoll-window-ms 300
let small; // small buffer and body limits, API on
let off; // --longpoll false
let cap; // --longpoll-max-sessions 2
const raws = [];

before(async () => {
  [srv, fast, small, off, cap] = await Promise.all([
    startServer(),
    startServer(['--longpoll-window-ms', String(WINDOW)]),
    startServer(['--longpoll-max-messages', String(MAX_MESSAGES), '--max-body-bytes', String(MAX_BODY), '--api-key', KEY]),
    startServer(['--longpoll', 'false']),
    startServer(['--longpoll-max-sessions', '2', '--longpoll-window-ms', String(WINDOW)]),
  ]);
});

after(async () => {
  await Promise.all(raws.map((r) => r.close()));
  await Promise.all([srv, fast, small, off, cap].filter(Boolean).map((s) => s.stop()));
});

const userQuery = (uid = 42) => `token=${encodeURIComponent(signToken(uid))}&vsn=2.0.0`;
const okReply = (joinRef, ref, topic, response = {}) => [joinRef, ref, topic, 'phx_reply', { response, status: 'ok' }];
const hb = (ref) => JSON.stringify([null, ref, 'phoenix', 'heartbeat', {}]);
const refOf = (m) => m[1];

async function session(server, uid = 42, opts = {}) {
  const s = new LpSession(server, userQuery(uid), opts);
  await s.open();
  return s;
}

async function joinLp(s, topic, ref = '1') {
  const res = await s.post([JSON.stringify([ref, ref, topic, 'phx_join', {}])]);
  assert.equal(res.text, '{"status":200}');
  const got = await s.untilRef(ref);
  assert.deepEqual(got.find((m) => refOf(m) === ref), okReply(ref, ref, topic));
}

// Flips the first character of the signature part of a token.
function tamper(token) {
  const parts = token.split('.');
  parts[2] = (parts[2][0] === 'A' ? 'B' : 'A') + parts[2].slice(1);
  return parts.join('.');
}

test('the first GET (phoenix.js trailing &) opens a session: HTTP 200, body status 410 and a token', async () => {
  const res = await lpGet(srv, `${userQuery()}&`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.deepEqual(Object.keys(res.json).sort(), ['messages', 'status', 'token']);
  assert.deepEqual(res.json.messages, []);
  assert.equal(res.json.status, 410);
  assert.match(res.json.token, /^[A-Za-z0-9_.-]{20,}$/, 'URL-safe, unguessable token');
  const again = await lpGet(srv, `${userQuery()}&`);
  assert.notEqual(again.json.token, res.json.token, 'every session has its own token');
});

test('a GET with the session token parks and answers 204 with the same token after --longpoll-window-ms', async () => {
  const s = await session(fast);
  const p = await s.poll();
  assert.equal(p.res.status, 200);
  assert.equal(p.res.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(p.res.headers.get('access-control-allow-origin'), '*');
  assert.equal(p.res.headers.get('cache-control'), 'no-store');
  assert.deepEqual(p.res.json, { messages: [], status: 204, token: s.token });
  assert.ok(p.res.ms >= WINDOW - 30, `answered after ${p.res.ms} ms, before the ${WINDOW} ms window`);
});

test('POST join answers {"status":200}; the parked GET returns the reply as a JSON string at once', async () => {
  const s = await session(srv);
  const parked = s.poll();
  const res = await s.post(['["3","3","room:lp","phx_join",{}]']);
  assert.equal(res.status, 200);
  assert.equal(res.text, '{"status":200}');
  assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  const p = await parked;
  assert.equal(p.status, 200);
  assert.ok(p.res.ms < 5000, `a parked poll must return when a message arrives (took ${p.res.ms} ms)`);
  assert.deepEqual(p.raw, ['["3","3","room:lp","phx_reply",{"response":{},"status":"ok"}]']);
  assert.equal(p.res.json.token, s.token);
  // Replies are not in the POST response; they queue until the next GET.
  const res2 = await s.post(['["3","4","room:lp","ping",{"a":1}]', hb('5')]);
  assert.equal(res2.text, '{"status":200}');
  const p2 = await s.poll();
  assert.equal(p2.status, 200);
  assert.deepEqual(p2.messages, [okReply('3', '4', 'room:lp', { a: 1 }), [null, '5', 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]]);
});

test('a POST without a live session answers {"status":410}', async () => {
  const cases = {
    'no token': 'vsn=2.0.0',
    'empty token': 'vsn=2.0.0&token=',
    'garbage token': 'vsn=2.0.0&token=garbage',
  };
  for (const [name, q] of Object.entries(cases)) {
    const res = await lpPost(srv, q, [hb('1')]);
    assert.equal(res.status, 200, name);
    assert.equal(res.text, '{"status":410}', name);
  }
  const res = await lpPost(srv, 'vsn=2.0.0', [hb('1')], { headers: { 'x-phoenix-longpoll-token': 'garbage' } });
  assert.equal(res.text, '{"status":410}');
});

test('a tampered, forged or user token is no session: GET opens a fresh session, POST gets 410', async () => {
  const user = signToken(42);
  const auth = { 'x-phoenix-authtoken': user };
  const live = new LpSession(srv, 'vsn=2.0.0', { headers: auth });
  await live.open();
  const bad = {
    tampered: tamper(live.token),
    'signed with another secret': signToken('0123456789abcdef', { secret: `${SECRET}-other` }),
    'a valid user token': user,
    truncated: live.token.slice(0, -3),
  };
  for (const [name, tok] of Object.entries(bad)) {
    const q = `vsn=2.0.0&token=${encodeURIComponent(tok)}`;
    const g = await lpGet(srv, q, { headers: auth });
    assert.equal(g.json.status, 410, `${name}: GET ${g.text}`);
    assert.deepEqual(g.json.messages, []);
    assert.notEqual(g.json.token, tok, name);
    assert.notEqual(g.json.token, live.token, name);
    const p = await lpPost(srv, q, [hb('1')]);
    assert.equal(p.text, '{"status":410}', `${name}: POST`);
  }
  // The genuine session is untouched.
  assert.equal((await live.post([hb('ok')])).text, '{"status":200}');
  await live.untilRef('ok');
});

test('a session not polled for 1.5 windows ends: POST gets 410, GET opens a new session', async () => {
  const auth = { 'x-phoenix-authtoken': signToken(42) };
  const s = new LpSession(fast, 'vsn=2.0.0', { headers: auth });
  const t0 = Date.now();
  await s.open();
  let n = 0;
  // POSTs are not polls: they do not keep the session alive.
  await waitFor(async () => (await s.post([hb(`w${++n}`)])).json.status === 410, 5000, 'session expiry');
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= WINDOW, `session ended after ${elapsed} ms, before one window`);
  const g = await lpGet(fast, s.request().query, { headers: auth });
  assert.equal(g.json.status, 410);
  assert.notEqual(g.json.token, s.token);
});

test('a session that keeps polling outlives 1.5 windows', async () => {
  const s = await session(fast);
  const t0 = Date.now();
  while (Date.now() - t0 < 2.5 * WINDOW) {
    const p = await s.poll();
    assert.equal(p.status, 204);
  }
  const res = await s.post(['["1","1","room:alive","phx_join",{}]']);
  assert.equal(res.text, '{"status":200}');
  const p = await s.poll();
  assert.deepEqual(p.messages, [okReply('1', '1', 'room:alive')]);
});

test('the x-phoenix-longpoll-token header beats the token query param', async () => {
  const a = await session(srv, 1);
  const b = await session(srv, 2);
  // Header A, query B: the message goes to A.
  const res = await lpPost(srv, `${userQuery(2)}&token=${encodeURIComponent(b.token)}`,
    ['["7","7","room:hdr","phx_join",{}]'], { headers: { 'x-phoenix-longpoll-token': a.token } });
  assert.equal(res.text, '{"status":200}');
  const gotA = await a.untilRef('7');
  assert.deepEqual(gotA, [okReply('7', '7', 'room:hdr')]);
  assert.equal((await b.post([hb('b')])).text, '{"status":200}');
  assert.deepEqual(await b.untilRef('b'), [[null, 'b', 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]]);
  // A header that names no session wins over a valid query token.
  const res2 = await lpPost(srv, `vsn=2.0.0&token=${encodeURIComponent(a.token)}`, [hb('x')],
    { headers: { 'x-phoenix-longpoll-token': 'garbage' } });
  assert.equal(res2.text, '{"status":410}');
  // The header works on GET too.
  const hs = new LpSession(srv, userQuery(3), { tokenIn: 'header' });
  await hs.open();
  assert.equal((await hs.post([hb('h')])).text, '{"status":200}');
  assert.deepEqual(await hs.untilRef('h'), [[null, 'h', 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]]);
});

test('PROTOCOL 5.9: token=<user token>&vsn=2.0.0&token=<session token> uses the session; the user token authenticated', async () => {
  const user = encodeURIComponent(signToken(42));
  const open = await lpGet(srv, `token=${user}&vsn=2.0.0&`);
  assert.equal(open.json.status, 410);
  const q = `token=${user}&vsn=2.0.0&token=${encodeURIComponent(open.json.token)}`;
  const res = await lpPost(srv, q, ['["1","1","user:42","phx_join",{}]', '["2","2","user:43","phx_join",{}]']);
  assert.equal(res.text, '{"status":200}');
  const g = await lpGet(srv, q);
  assert.equal(g.json.token, open.json.token);
  assert.deepEqual(g.json.messages.map((m) => JSON.parse(m)), [
    okReply('1', '1', 'user:42'),
    ['2', '2', 'user:43', 'phx_reply', { response: { reason: 'unauthorized' }, status: 'error' }],
  ]);
});

test('PROTOCOL 5.9: after the session died, token=<user>&…&token=<dead session> is refused with 403', async () => {
  const user = encodeURIComponent(signToken(42));
  const open = await lpGet(fast, `token=${user}&vsn=2.0.0&`);
  const q = `token=${user}&vsn=2.0.0&token=${encodeURIComponent(open.json.token)}`;
  await waitFor(async () => (await lpPost(fast, q, [hb('1')])).json.status === 410, 5000, 'session expiry');
  // connect now sees params.token = the dead session token (last wins).
  const g = await lpGet(fast, q);
  assert.equal(g.status, 200);
  assert.equal(g.text, '{"status":403}');
  // What phoenix.js does next: a fresh transport, only the user token.
  const again = await lpGet(fast, `token=${user}&vsn=2.0.0&`);
  assert.equal(again.json.status, 410);
});

// Phoenix 1.9's client sends the session token in x-phoenix-longpoll-token
// and only the application's params in the query: no collision (§5.9).
test('PROTOCOL 5.2/5.9: with the session token in x-phoenix-longpoll-token, a dead session gives a fresh session (410), not 403; the preflight allows the header', async () => {
  const user = encodeURIComponent(signToken(42));
  const q = `token=${user}&vsn=2.0.0`;
  const open = await lpGet(fast, q);
  assert.equal(open.json.status, 410);
  const hdr = { headers: { 'x-phoenix-longpoll-token': open.json.token } };
  assert.equal((await lpPost(fast, q, ['["1","1","user:42","phx_join",{}]'], hdr)).text, '{"status":200}');
  assert.deepEqual((await lpGet(fast, q, hdr)).json.messages.map((m) => JSON.parse(m)), [okReply('1', '1', 'user:42')]);
  await waitFor(async () => (await lpPost(fast, q, [hb('1')], hdr)).json.status === 410, 5000, 'session expiry');
  // The connect step sees the user token: a new session at once.
  const g = await lpGet(fast, q, hdr);
  assert.equal(g.json.status, 410);
  assert.notEqual(g.json.token, open.json.token);
  // A browser asks before sending the header cross-origin; it is allowed.
  const pre = await lpRequest(fast, 'OPTIONS', 'vsn=2.0.0', {
    headers: { 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-phoenix-longpoll-token' },
  });
  assert.equal(pre.status, 200);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-headers'), /(^|, )x-phoenix-longpoll-token(,|$)/i);
});

test('an NDJSON batch of 101 lines processes only the first 100', async () => {
  const s = await session(srv);
  await joinLp(s, 'room:batch');
  const lines = Array.from({ length: 101 }, (_, i) => JSON.stringify(['1', `p${i + 1}`, 'room:batch', 'ping', { i: i + 1 }]));
  assert.equal((await s.post(lines)).text, '{"status":200}');
  assert.equal((await s.post([hb('end')])).text, '{"status":200}');
  const got = await s.untilRef('end');
  const pings = got.filter((m) => m[3] === 'phx_reply' && String(m[1]).startsWith('p'));
  assert.equal(pings.length, 100);
  assert.deepEqual(pings.map(refOf), Array.from({ length: 100 }, (_, i) => `p${i + 1}`), 'FIFO order');
  assert.deepEqual(pings[99], okReply('1', 'p100', 'room:batch', { i: 100 }));
  assert.equal(got.length, 101, 'the 100 replies and the heartbeat reply, nothing else');
});

test('channel lifecycle over LongPoll: duplicate join, stale join_ref, unmatched topic, leave, too many channels', async () => {
  const s = await session(srv);
  assert.equal((await s.post([
    '["1","1","room:life","phx_join",{}]',
    '["2","2","room:life","phx_join",{}]',
    '["1","3","room:life","ping",{"stale":true}]',
    '["2","4","room:life","ping",{"live":true}]',
    '["9","5","room:none","x",{}]',
    '["2","6","room:life","phx_leave",{}]',
    '["7","7","room:never","phx_leave",{}]',
    hb('8'),
  ])).text, '{"status":200}');
  assert.deepEqual(await s.untilRef('8'), [
    okReply('1', '1', 'room:life'),
    okReply('2', '2', 'room:life'), // the new join's reply first,
    ['1', '1', 'room:life', 'phx_close', {}], // then the old join's close
    okReply('2', '4', 'room:life', { live: true }), // the stale ping got nothing
    [null, '5', 'room:none', 'phx_reply', { response: { reason: 'unmatched topic' }, status: 'error' }],
    okReply('2', '6', 'room:life'),
    ['2', '2', 'room:life', 'phx_close', {}],
    okReply('7', '7', 'room:never'),
    [null, '8', 'phoenix', 'phx_reply', { response: {}, status: 'ok' }],
  ]);
  const joins = Array.from({ length: 100 }, (_, i) => JSON.stringify([`j${i}`, `j${i}`, `room:c${i}`, 'phx_join', {}]));
  assert.equal((await s.post(joins)).text, '{"status":200}');
  assert.equal((await s.post(['["j100","j100","room:c100","phx_join",{}]', hb('end')])).text, '{"status":200}');
  const got = await s.untilRef('end');
  assert.equal(got.filter((m) => m[3] === 'phx_reply' && m[4].status === 'ok' && String(m[1]).startsWith('j')).length, 100);
  assert.deepEqual(got.find((m) => m[1] === 'j100'),
    ['j100', 'j100', 'room:c100', 'phx_reply', { response: { reason: 'too many channels joined' }, status: 'error' }]);
});

test('a base64 NDJSON line is a binary push (CRLF line ends too)', async () => {
  const s = await session(srv);
  await joinLp(s, 'room:b64');
  const ws = await rawWs(srv, userQuery(9));
  raws.push(ws);
  assert.deepEqual(await rawJoinV2(ws, 'room:b64', '5'), okReply('5', '5', 'room:b64'));
  const bin = binaryPush('1', '2', 'room:b64', 'upload', [0xde, 0xad, 0x00, 0xff]).toString('base64');
  const res = await s.post(`${bin}\r\n${JSON.stringify(['1', '3', 'room:b64', 'ping', { after: true }])}`);
  assert.equal(res.text, '{"status":200}');
  const frame = await ws.next();
  assert.equal(frame.isBinary, true);
  assert.equal(frame.data.toString('hex'), Buffer.concat([Buffer.from([2, 8, 6]), Buffer.from('room:b64upload'), Buffer.from([0xde, 0xad, 0x00, 0xff])]).toString('hex'));
  const got = await s.untilRef('3');
  // The LongPoll sender gets the reply to its binary push, but not the
  // binary broadcast (LongPoll cannot carry server -> client binary).
  assert.deepEqual(got, [okReply('1', '2', 'room:b64'), okReply('1', '3', 'room:b64', { after: true })]);
});

test('an invalid base64 line answers HTTP 500; earlier lines were handled, later ones not, the session survives', async () => {
  const s = await session(srv);
  await joinLp(s, 'room:bad64');
  // Not base64 at all; a length that is not a multiple of 4; missing
  // padding; the URL-safe alphabet.
  const invalid = ['!!!notbase64', 'AAECA', 'AAE', Buffer.from([0xfb, 0xef, 0xbe]).toString('base64url')];
  let n = 0;
  for (const bad of invalid) {
    n++;
    const res = await s.post([JSON.stringify(['1', `a${n}`, 'room:bad64', 'ping', { n }]), bad, JSON.stringify(['1', `b${n}`, 'room:bad64', 'ping', {}])]);
    assert.equal(res.status, 500, `${bad}: HTTP ${res.status} ${res.text}`);
    assert.equal((await s.post([hb(`h${n}`)])).text, '{"status":200}', 'the session survives');
    const got = await s.untilRef(`h${n}`);
    assert.deepEqual(got.map(refOf), [`a${n}`, `h${n}`], `${bad}: only the line before the bad one ran`);
  }
});

test('an empty NDJSON line (a trailing newline) ends the session: 408, then 410', async () => {
  const s = await session(srv);
  await joinLp(s, 'room:nl');
  const res = await s.post(`${hb('1')}\n`);
  assert.equal(res.status, 200);
  assert.equal(res.text, '{"status":408}');
  assert.equal((await s.post([hb('2')])).text, '{"status":410}');
});

test('a content type other than application/x-ndjson makes the whole body one message', async () => {
  for (const ct of ['application/json', 'text/plain']) {
    const s = await session(srv);
    const res = await s.post('["1","1","room:ct","phx_join",{}]', { contentType: ct });
    assert.equal(res.text, '{"status":200}', ct);
    assert.deepEqual(await s.untilRef('1'), [okReply('1', '1', 'room:ct')], ct);
  }
  // Two NDJSON lines under a content type with parameters are one
  // undecodable message: the session crashes (408) and is gone.
  const s = await session(srv);
  const res = await s.post(`${hb('1')}\n${hb('2')}`, { contentType: 'application/x-ndjson; charset=utf-8' });
  assert.equal(res.text, '{"status":408}');
  assert.equal((await s.post([hb('3')])).text, '{"status":410}');
});

test('a body over --max-body-bytes gets 413; one under the limit is accepted', async () => {
  const s = await session(small);
  const { query } = s.request();
  const over = 'x'.repeat(MAX_BODY + 1);
  const res = await httpRequest(small.port, `POST /socket/longpoll?${query} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    `Content-Type: application/x-ndjson\r\nContent-Length: ${over.length}\r\n\r\n${over}`);
  res.destroy();
  assert.equal(res.status, 413, res.head);
  const skeleton = JSON.stringify([null, 'u', 'phoenix', 'heartbeat', { pad: '' }]);
  const under = JSON.stringify([null, 'u', 'phoenix', 'heartbeat', { pad: 'y'.repeat(MAX_BODY - skeleton.length) }]);
  assert.equal(under.length, MAX_BODY);
  assert.equal((await s.post(under)).text, '{"status":200}');
  assert.deepEqual(await s.untilRef('u'), [[null, 'u', 'phoenix', 'phx_reply', { response: {}, status: 'ok' }]]);
});

test('OPTIONS preflight: 200, empty body, the CORS headers of PROTOCOL 5.5', async () => {
  const res = await lpRequest(srv, 'OPTIONS', 'vsn=2.0.0', {
    headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-phoenix-authtoken, content-type' },
  });
  assert.equal(res.status, 200);
  assert.equal(res.text, '');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('access-control-allow-headers'), 'x-phoenix-authtoken, content-type');
  assert.equal(res.headers.get('access-control-allow-methods'), 'get, post, options');
  assert.equal(res.headers.get('access-control-max-age'), '3600');
  // Without Access-Control-Request-Headers the list is empty.
  const bare = await lpRequest(srv, 'OPTIONS', undefined);
  assert.equal(bare.status, 200);
  assert.equal(bare.headers.get('access-control-allow-headers'), '');
});

test('OPTIONS preflight joins several Access-Control-Request-Headers fields with ", "', async () => {
  const res = await httpRequest(srv.port, 'OPTIONS /socket/longpoll HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
    'Access-Control-Request-Headers: x-phoenix-authtoken\r\nAccess-Control-Request-Headers: content-type\r\n\r\n');
  res.destroy();
  assert.equal(res.status, 200);
  assert.equal(res.headers['access-control-allow-headers'], 'x-phoenix-authtoken, content-type');
});

test('PUT, DELETE and PATCH on the LongPoll path get 400 with an empty body', async () => {
  for (const method of ['PUT', 'DELETE', 'PATCH']) {
    const res = await lpRequest(srv, method, 'vsn=2.0.0', method === 'DELETE' ? {} : { body: '{}' });
    assert.equal(res.status, 400, method);
    assert.equal(res.text, '', method);
    assert.equal(res.headers.get('access-control-allow-origin'), '*', method);
  }
});

test('two concurrent GETs on one session: no crash, no message lost or duplicated', async () => {
  const s = await session(srv);
  await joinLp(s, 'room:two');
  const seen = [];
  let stop = false;
  const poller = async () => {
    let polls = 0;
    while (!stop) {
      const p = await s.poll();
      assert.ok(p.status === 200 || p.status === 204, `poll status ${p.status}`);
      seen.push(...p.messages);
      polls++;
    }
    return polls;
  };
  const loops = [poller(), poller()];
  const N = 30;
  for (let batch = 0; batch < 3; batch++) {
    const lines = Array.from({ length: N / 3 }, (_, i) => JSON.stringify(['1', `c${batch * 10 + i}`, 'room:two', 'ping', { i: batch * 10 + i }]));
    assert.equal((await s.post(lines)).text, '{"status":200}');
  }
  assert.equal((await s.post([hb('mid')])).text, '{"status":200}');
  await waitFor(() => seen.some((m) => refOf(m) === 'mid'), 5000, 'both pollers drained');
  stop = true;
  // Wake whichever poll is still parked.
  assert.equal((await s.post([hb('wake')])).text, '{"status":200}');
  await withTimeout(Promise.all(loops), 5000, 'pollers did not stop');
  assert.equal((await s.post([hb('drain')])).text, '{"status":200}');
  const rest = await s.untilRef('drain');
  const all = [...seen, ...rest].map(refOf);
  const expected = [...Array.from({ length: N }, (_, i) => `c${i}`), 'mid', 'wake', 'drain'];
  assert.deepEqual([...all].sort(), [...expected].sort(), 'each message exactly once');
});

test('a session never polled ends when a broadcast flood exceeds --longpoll-max-messages; others keep working', async () => {
  const idle = await session(small, 1);
  await joinLp(idle, 'room:flood');
  const active = await session(small, 2);
  await joinLp(active, 'room:flood');
  const other = await session(small, 3);
  await joinLp(other, 'room:calm');
  const ws = await rawWs(small, userQuery(4));
  raws.push(ws);
  assert.deepEqual(await rawJoinV2(ws, 'room:flood', '1'), okReply('1', '1', 'room:flood'));

  const flood = async (from, to) => {
    for (let i = from; i < to; i++) {
      const r = await api(small, '/api/broadcast', { topic: 'room:flood', event: 'f', payload: { i } }, { key: KEY });
      assert.equal(r.status, 202);
    }
  };
  // Exactly the limit: every session is still alive.
  await flood(0, MAX_MESSAGES);
  const first = await active.poll();
  assert.equal(first.messages.length, MAX_MESSAGES);
  // One more than the limit for the idle session.
  await flood(MAX_MESSAGES, MAX_MESSAGES + 10);
  const activeGot = [...first.messages, ...(await active.collect((g) => g.length >= 10))];
  assert.deepEqual(activeGot.map((m) => m[4].i), Array.from({ length: MAX_MESSAGES + 10 }, (_, i) => i));
  for (let i = 0; i < MAX_MESSAGES + 10; i++) assert.deepEqual(await ws.nextJson(), [null, null, 'room:flood', 'f', { i }]);

  // The idle session is gone: POST 410, GET opens a new one.
  assert.equal((await idle.post([hb('x')])).text, '{"status":410}');
  const g = await lpGet(small, userQuery(1), { headers: { 'x-phoenix-longpoll-token': idle.token } });
  assert.equal(g.json.status, 410);
  assert.notEqual(g.json.token, idle.token);
  // The others still work.
  assert.equal((await other.post(['["1","2","room:calm","ping",{"ok":1}]'])).text, '{"status":200}');
  assert.deepEqual(await other.untilRef('2'), [okReply('1', '2', 'room:calm', { ok: 1 })]);
  ws.sendJson(['1', '2', 'room:flood', 'ping', {}]);
  assert.deepEqual(await ws.nextJson(), okReply('1', '2', 'room:flood'));
});

test('beyond --longpoll-max-sessions a new session is refused without wedging phoenix.js, and accepted again later', async () => {
  const a = await session(cap, 1);
  const b = await session(cap, 2);
  const third = await lpGet(cap, `${userQuery(3)}&`);
  // phoenix.js handles no JSON body (status 0) and 403/500 by reconnecting;
  // any other body status would stop its polling for good.
  assert.ok(third.json === null || [403, 500].includes(third.json.status), `third session: HTTP ${third.status} ${third.text}`);
  assert.notEqual(third.json && third.json.status, 410);
  // Once the two unpolled sessions expire, sessions open again.
  const res = await waitFor(async () => {
    const r = await lpGet(cap, `${userQuery(3)}&`);
    return r.json && r.json.status === 410 ? r : null;
  }, 5000, 'a session slot');
  assert.notEqual(res.json.token, a.token);
  assert.notEqual(res.json.token, b.token);
});

test('--longpoll false: the LongPoll path is 404 while WebSocket works', async () => {
  for (const method of ['GET', 'POST', 'OPTIONS']) {
    const res = await lpRequest(off, method, `${userQuery()}&`, method === 'POST' ? { body: hb('1'), contentType: 'application/x-ndjson' } : {});
    assert.equal(res.status, 404, method);
  }
  const ws = await rawWs(off, userQuery());
  raws.push(ws);
  assert.deepEqual(await rawJoinV2(ws, 'room:x', '1'), okReply('1', '1', 'room:x'));
});
