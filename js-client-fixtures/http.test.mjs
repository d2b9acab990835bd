// HTTP edge cases of the listener and the WebSocket upgrade (docs/protocol.md
// §1.1, §1.5; RFC 6455 4.2), on raw TCP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, signToken, rawHttp } from './lib/server.mjs';
import { httpRequest, upgradeRequest, rawUpgrade, encodeFrame, SAMPLE_KEY } from './lib/raw.mjs';

const MAX_HEADER_BYTES = 4096;
const MAX_HEADERS = 20;
let server;
let q;

before(async () => {
  server = await startServer(['--max-header-bytes', String(MAX_HEADER_BYTES), '--max-headers', String(MAX_HEADERS)]);
  q = `token=${encodeURIComponent(signToken(42))}&vsn=2.0.0`;
});

after(async () => { if (server) await server.stop(); });

async function request(text) {
  const res = await httpRequest(server.port, text);
  res.destroy();
  return res;
}

test('--port 0 prints the real port in the banner', () => {
  const m = server.stdout().match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
  assert.ok(m, `banner: ${server.stdout()}`);
  assert.notEqual(Number(m[1]), 0);
  assert.equal(Number(m[1]), server.port);
});

test('an unknown path gets 404 with an empty body', async () => {
  // (GET / is the demo page: browser.test.mjs.)
  for (const path of ['/index.html', '/nope', '/socket', '/socket/websocketx', '/other/websocket']) {
    const res = await request(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    assert.equal(res.status, 404, `${path}: ${res.head}`);
    assert.equal(res.body.length, 0);
  }
});

test('the websocket path with a trailing slash is the websocket path', async () => {
  const res = await request(upgradeRequest(server.port, q, { path: '/socket/websocket/' }));
  assert.equal(res.status, 101, res.head);
});

test('a plain GET on /socket/websocket without upgrade headers gets 400', async () => {
  const res = await request(`GET /socket/websocket?${q} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  assert.equal(res.status, 400, res.head);
});

test('POST on /socket/websocket gets 400', async () => {
  const res = await request(`POST /socket/websocket?${q} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n`);
  assert.equal(res.status, 400, res.head);
  assert.equal(res.body.length, 0);
  // The method check comes before the token check.
  const res2 = await request('POST /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n');
  assert.equal(res2.status, 400, res2.head);
});

test('a malformed request line gets 400 and the connection is closed', async () => {
  for (const line of ['GARBAGE', 'GET', 'GET /x HTTP/9.9x', '\x01\x02\x03 / HTTP/1.1']) {
    const res = await rawHttp(server.port, `${line}\r\nHost: 127.0.0.1\r\n\r\n`);
    assert.equal(res.status, 400, `${JSON.stringify(line)}: ${res.raw.toString('latin1')}`);
  }
});

test('header bytes over --max-header-bytes get 431', async () => {
  const small = await request(`GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(1000)}\r\n\r\n`);
  assert.equal(small.status, 404);
  const big = await request(`GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(MAX_HEADER_BYTES + 100)}\r\n\r\n`);
  assert.equal(big.status, 431, big.head);
  // Many small headers adding up past the limit count too.
  const lines = Array.from({ length: 10 }, (_, i) => `X-${i}: ${'b'.repeat(500)}\r\n`).join('');
  const sum = await request(`GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines}\r\n`);
  assert.equal(sum.status, 431, sum.head);
});

test('more than --max-headers header fields get 431', async () => {
  const fields = (n) => Array.from({ length: n }, (_, i) => `X-${i}: 1\r\n`).join('');
  const under = await request(`GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${fields(MAX_HEADERS - 1)}\r\n`);
  assert.equal(under.status, 404, under.head);
  const over = await request(`GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${fields(MAX_HEADERS + 5)}\r\n`);
  assert.equal(over.status, 431, over.head);
});

test('a missing or invalid Sec-WebSocket-Key gets 400 even with a valid token', async () => {
  const base = upgradeRequest(server.port, q);
  const variants = {
    missing: base.replace(/Sec-WebSocket-Key:[^\r]*\r\n/, ''),
    empty: upgradeRequest(server.port, q, { key: '' }),
    'not base64 of 16 bytes': upgradeRequest(server.port, q, { key: 'abc' }),
  };
  for (const [name, req] of Object.entries(variants)) {
    const res = await request(req);
    assert.equal(res.status, 400, `${name}: ${res.head}`);
  }
});

test('a Sec-WebSocket-Version other than 13 gets 400 even with a valid token', async () => {
  const base = upgradeRequest(server.port, q);
  for (const req of [base.replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 8'),
    base.replace(/Sec-WebSocket-Version:[^\r]*\r\n/, '')]) {
    const res = await request(req);
    assert.equal(res.status, 400, res.head);
  }
});

test('the RFC 6455 sample key gets the sample accept, no subprotocol and no extension', async () => {
  const res = await request(upgradeRequest(server.port, q, {
    key: SAMPLE_KEY,
    extraHeaders: 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n',
  }));
  assert.equal(res.status, 101, res.head);
  assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  assert.match(res.headers.upgrade, /^websocket$/i);
  assert.match(res.headers.connection, /upgrade/i);
  assert.equal(res.headers['sec-websocket-protocol'], undefined);
  assert.equal(res.headers['sec-websocket-extensions'], undefined);
});

test('a frame pipelined in the same TCP write as the upgrade request is processed', async () => {
  const frame = encodeFrame(0x1, '[null,"7","phoenix","heartbeat",{}]');
  const conn = await rawUpgrade(server.port, upgradeRequest(server.port, q), frame);
  try {
    assert.equal(conn.status, 101);
    const f = await conn.nextFrame();
    assert.equal(f.opcode, 0x1);
    assert.equal(f.masked, false, 'server frames are unmasked');
    assert.equal(f.payload.toString(), '[null,"7","phoenix","phx_reply",{"response":{},"status":"ok"}]');
  } finally {
    conn.destroy();
  }
});

test('a ping is answered with a pong carrying the same payload', async () => {
  const conn = await rawUpgrade(server.port, upgradeRequest(server.port, q));
  try {
    conn.write(encodeFrame(0x9, 'abc'));
    const f = await conn.nextFrame();
    assert.equal(f.opcode, 0xa);
    assert.equal(f.payload.toString(), 'abc');
  } finally {
    conn.destroy();
  }
});

test('a fragmented text message with a ping between its fragments is processed', async () => {
  const conn = await rawUpgrade(server.port, upgradeRequest(server.port, q));
  try {
    conn.write(Buffer.concat([
      encodeFrame(0x1, '[null,"1","pho', { fin: false }),
      encodeFrame(0x9, 'x'),
      encodeFrame(0x0, 'enix","heartbeat",{}]'),
    ]));
    // The pong and the reply may come in either order.
    const frames = [await conn.nextFrame(), await conn.nextFrame()];
    const pong = frames.find((f) => f.opcode === 0xa);
    const reply = frames.find((f) => f.opcode === 0x1);
    assert.ok(pong && reply, `got opcodes ${frames.map((f) => f.opcode)}`);
    assert.equal(pong.payload.toString(), 'x');
    assert.equal(reply.payload.toString(), '[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]');
  } finally {
    conn.destroy();
  }
});
