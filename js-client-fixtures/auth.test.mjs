// Authentication at connect: the default connect callback verifies
// params.token as a Phoenix.Token (docs/protocol.md §1.4, §7.4). A refusal is an
// HTTP 403 with an empty body; phoenix.js sees an error and never opens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  startServer, signToken, phxSocket, connect, join, closeSocket, SECRET, PHXD_BIN, upgradeStatus,
} from './lib/server.mjs';
import { httpRequest, upgradeRequest } from './lib/raw.mjs';

let server; // defaults: token's own max_age
let shortServer; // --max-age 1
let infServer; // --max-age infinity

before(async () => {
  [server, shortServer, infServer] = await Promise.all([
    startServer(),
    startServer(['--max-age', '1']),
    startServer(['--max-age', 'infinity']),
  ]);
});

after(async () => {
  await Promise.all([server, shortServer, infServer].filter(Boolean).map((s) => s.stop()));
});

const now = () => Math.floor(Date.now() / 1000);

// Flips one character of the signature (the third dot-separated part).
function forge(token) {
  const parts = token.split('.');
  const sig = parts[2];
  const c = sig[0] === 'A' ? 'B' : 'A';
  parts[2] = c + sig.slice(1);
  return parts.join('.');
}

// phoenix.js must see an error and never an open.
async function assertPhoenixRefused(srv, params, opts = {}) {
  const socket = phxSocket(srv, params, opts);
  let opened = false;
  socket.onOpen(() => { opened = true; });
  try {
    await assert.rejects(connect(socket), /socket error/);
    assert.equal(opened, false, 'socket must not open');
    assert.equal(socket.isConnected(), false);
  } finally {
    await closeSocket(socket);
  }
}

// The raw upgrade must get 403 with an empty body.
async function assertHttpRefused(srv, query) {
  const res = await httpRequest(srv.port, upgradeRequest(srv.port, query));
  assert.equal(res.status, 403, `status for ${query}: ${res.head}`);
  assert.equal(res.body.length, 0, 'body must be empty');
  res.destroy();
}

async function assertRefused(srv, token) {
  const params = token === undefined ? {} : { token };
  await assertPhoenixRefused(srv, params);
  const q = token === undefined ? 'vsn=2.0.0' : `token=${encodeURIComponent(token)}&vsn=2.0.0`;
  await assertHttpRefused(srv, q);
}

async function assertAccepted(srv, token) {
  const socket = phxSocket(srv, { token });
  try {
    await connect(socket);
    assert.equal(socket.isConnected(), true);
  } finally {
    await closeSocket(socket);
  }
  const res = await httpRequest(srv.port, upgradeRequest(srv.port, `token=${encodeURIComponent(token)}&vsn=2.0.0`));
  assert.equal(res.status, 101);
  res.destroy();
}

test('a valid token connects (phoenix.js and raw upgrade)', async () => {
  await assertAccepted(server, signToken(42));
});

test('a connection without a token is refused with 403', async () => {
  await assertRefused(server, undefined);
  await assertHttpRefused(server, 'token=&vsn=2.0.0');
});

test('a token with a flipped signature character is refused', async () => {
  const good = signToken(42);
  const bad = forge(good);
  assert.notEqual(bad, good);
  await assertRefused(server, bad);
});

test('a token signed two days ago with the default max age is refused', async () => {
  await assertRefused(server, signToken(42, { signedAt: now() - 2 * 86400 }));
});

test('a token signed 10 s ago is refused by a server with --max-age 1', async () => {
  const token = signToken(42, { signedAt: now() - 10 });
  await assertRefused(shortServer, token);
  // The same token is fine under the token's own max age.
  await assertAccepted(server, token);
});

test('a token signed with another salt is refused', async () => {
  await assertRefused(server, signToken(42, { salt: 'other salt' }));
});

test('a token signed with another secret is refused', async () => {
  await assertRefused(server, signToken(42, { secret: `${SECRET}-other` }));
});

test('garbage tokens are refused', async () => {
  for (const token of ['garbage', 'SFMyNTY.abc.def', 'a.b', '...', 'SFMyNTY.g2gDYSpuBgA.x', 'x'.repeat(5000)]) {
    await assertRefused(server, token);
  }
});

test('a token signed one hour in the future is refused', async () => {
  await assertRefused(server, signToken(42, { signedAt: now() + 3600 }));
});

test('--max-age infinity accepts a token signed two days ago', async () => {
  await assertAccepted(infServer, signToken(42, { signedAt: now() - 2 * 86400 }));
});

test('a token whose data is a string connects and owns user:<string>', async () => {
  const socket = phxSocket(server, { token: signToken('hello') });
  try {
    await connect(socket);
    const reply = await join(socket.channel('user:hello'));
    assert.deepEqual(reply, {});
  } finally {
    await closeSocket(socket);
  }
});

test('a token whose data is a map connects', async () => {
  await assertAccepted(server, signToken({ id: 7, name: 'ann', roles: ['a', 'b'] }));
});

// phoenix.js 1.8 authToken: "Sec-WebSocket-Protocol: phoenix,
// base64url.bearer.phx.<standard base64 without '='>" (docs/protocol.md §1.5).
test('a valid token passed as the phoenix.js authToken connects', async () => {
  const socket = phxSocket(server, {}, { authToken: signToken(42) });
  try {
    await connect(socket);
    assert.deepEqual(await join(socket.channel('user:42')), {});
  } finally {
    await closeSocket(socket);
  }
});

test('the auth-token upgrade is answered 101 with Sec-WebSocket-Protocol: phoenix', async () => {
  const b64 = Buffer.from(signToken(42)).toString('base64').replace(/=/g, '');
  const res = await httpRequest(server.port, upgradeRequest(server.port, 'vsn=2.0.0', {
    extraHeaders: `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.${b64}\r\n`,
  }));
  res.destroy();
  assert.equal(res.status, 101, res.head);
  assert.equal(res.headers['sec-websocket-protocol'], 'phoenix');
});

test('offering the phoenix subprotocol with a query token selects phoenix in the 101', async () => {
  const res = await httpRequest(server.port, upgradeRequest(server.port, `token=${encodeURIComponent(signToken(42))}&vsn=2.0.0`, {
    extraHeaders: 'Sec-WebSocket-Protocol: phoenix\r\n',
  }));
  res.destroy();
  assert.equal(res.status, 101, res.head);
  assert.equal(res.headers['sec-websocket-protocol'], 'phoenix');
});

test('an invalid phoenix.js authToken is refused', async () => {
  await assertPhoenixRefused(server, {}, { authToken: forge(signToken(42)) });
  await assertPhoenixRefused(server, {}, { authToken: 'garbage' });
});

test('the server survives every refusal and still accepts a valid client', async () => {
  assert.equal(server.proc.exitCode, null);
  assert.equal(server.proc.signalCode, null);
  const socket = phxSocket(server, { token: signToken(42) });
  try {
    await connect(socket);
    assert.deepEqual(await join(socket.channel('room:after')), {});
  } finally {
    await closeSocket(socket);
  }
});

// Phoenix.Token.sign of raw term_to_binary bytes `data` ({data, now, 86400}),
// as Plug.Crypto's MessageVerifier writes it (HS256, key from PBKDF2).
function signEtf(dataEtf) {
  const ms = BigInt(Date.now());
  const mag = [];
  for (let v = ms; v > 0n; v >>= 8n) mag.push(Number(v & 0xffn));
  const payload = Buffer.concat([
    Buffer.from([131, 0x68, 3]), dataEtf,
    Buffer.from([0x6e, mag.length, 0, ...mag]), // SMALL_BIG_EXT signed_at ms
    Buffer.from([0x62, 0, 1, 0x51, 0x80]), // INTEGER_EXT 86400
  ]);
  const key = crypto.pbkdf2Sync(SECRET, 'user socket', 1000, 32, 'sha256');
  const plain = `SFMyNTY.${payload.toString('base64url')}`;
  return `${plain}.${crypto.createHmac('sha256', key).update(plain).digest('base64url')}`;
}

const nodeAtom = Buffer.concat([Buffer.from([0x77, 13]), Buffer.from('nonode@nohost')]);
// Terms with no JSON form, with the text `phxd token verify` prints.
const noJson = [
  ['[1 | 2]', Buffer.from([0x6c, 0, 0, 0, 1, 0x61, 1, 0x61, 2])],
  ['#PID<nonode@nohost.77.0>', Buffer.concat([Buffer.from([0x58]), nodeAtom, Buffer.from([0, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0, 0])])],
  ['%{"pid" => #Port<nonode@nohost.9>}', Buffer.concat([Buffer.from([0x74, 0, 0, 0, 1, 0x6d, 0, 0, 0, 3]), Buffer.from('pid'),
    Buffer.from([0x59]), nodeAtom, Buffer.from([0, 0, 0, 9, 0, 0, 0, 0])])],
];

test('phxd token verify prints data with no JSON form (improper list, pid, port) as text and exits 0; the default connect refuses it, counted as token_data', async () => {
  for (const [text, etf] of noJson) {
    const token = signEtf(etf);
    const r = spawnSync(PHXD_BIN, ['token', 'verify', '--secret-key-base', SECRET, token], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${text}: ${r.stderr}`);
    assert.equal(r.stdout, `${text}\n`);
    // The server cannot use it as a user id: a 403, counted, and it goes on.
    const before = await refusedInvalid(server);
    assert.equal(await upgradeStatus(server.port, `token=${encodeURIComponent(token)}&vsn=2.0.0`), 403, text);
    assert.equal(await refusedInvalid(server), before + 1, text);
  }
  // A sound token still connects afterwards.
  const s = phxSocket(server, { token: signToken(5) });
  await connect(s);
  closeSocket(s);
});

async function refusedInvalid(srv) {
  const text = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  return Number(/^phxd_connects_refused_total\{reason="token_data"\} (\d+)$/m.exec(text)[1]);
}
