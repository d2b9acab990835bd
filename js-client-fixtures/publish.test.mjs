// `phxd publish`: server-side publishing from the shell through the HTTP
// API. A phoenix.js subscriber receives what it publishes, --disconnect
// closes a user's sockets with 1001, a wrong key exits 1, usage errors
// exit 2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import {
  PHXD_BIN, startServer, signToken, phxSocket, connect, join, nextEvent, closeSocket, nextClose,
  withTimeout,
} from './lib/server.mjs';

const KEY = 'publish-test-api-key-0123456789';
let server;
let nokey;
const sockets = [];

before(async () => {
  [server, nokey] = await Promise.all([startServer(['--api-key', KEY]), startServer()]);
});

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  await Promise.all([server, nokey].filter(Boolean).map((s) => s.stop()));
});

// Runs `phxd publish ...` with only PATH and `env` in its environment.
function publish(args, { env = {} } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const p = spawn(PHXD_BIN, ['publish', ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  }), 15000, 'phxd publish');
}

async function client(uid) {
  const socket = phxSocket(server, { token: signToken(uid) });
  sockets.push(socket);
  await connect(socket);
  return socket;
}

test('publish delivers an event to a phoenix.js subscriber', async () => {
  const socket = await client(1);
  const ch = socket.channel('room:pub');
  await join(ch);
  const got = nextEvent(ch, 'new_msg');
  const r = await publish(['--url', server.url, '--api-key', KEY, 'room:pub', 'new_msg', '{"body": "hi", "n": 12345678901234567890}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"recipients":1}\n');
  assert.equal(r.stderr, '');
  assert.deepEqual(await got, { body: 'hi', n: 12345678901234567890 });
});

test('the payload defaults to {}; the key and URL may come from the environment', async () => {
  const socket = await client(2);
  const ch = socket.channel('room:env');
  await join(ch);
  const got = nextEvent(ch, 'ping_all');
  const r = await publish(['room:env', 'ping_all'], { env: { PHXD_API_KEY: KEY, PHXD_URL: `${server.url}/` } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"recipients":1}\n');
  assert.deepEqual(await got, {});
  // --url=... and --api-key=... forms, and a topic nobody joined.
  const none = await publish([`--url=${server.url}`, `--api-key=${KEY}`, 'room:empty', 'x', '{}']);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout, '{"recipients":0}\n');
});

test('publish --disconnect closes the sockets of that id with 1001', async () => {
  const a = await client(7);
  const b = await client(8);
  const closedA = nextClose(a);
  const r = await publish(['--url', server.url, '--api-key', KEY, '--disconnect', 'users_socket:7']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"sockets":1}\n');
  assert.equal((await closedA).code, 1001);
  assert.equal(b.isConnected(), true);
});

test('a wrong key exits 1 with the answer on stderr', async () => {
  const r = await publish(['--url', server.url, '--api-key', 'wrong-key', 'room:x', 'e']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'phxd publish: HTTP 401: {"error":"a valid bearer key is required"}\n');
});

test('a server without the API, or no server at all, exits 1', async () => {
  let r = await publish(['--url', nokey.url, '--api-key', KEY, 'room:x', 'e']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^phxd publish: HTTP 404 \(is the API on\?/);
  // A port nothing listens on.
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  r = await publish(['--url', `http://127.0.0.1:${port}`, '--api-key', KEY, 'room:x', 'e']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^phxd publish: cannot connect to 127\.0\.0\.1:\d+: Connection refused\n$/);
});

test('usage errors exit 2 with one line', async () => {
  const cases = [
    [['room:x', 'e'], {}, 'an API key is needed (--api-key or PHXD_API_KEY)'],
    [['--api-key', KEY, 'room:x'], {}, 'TOPIC and EVENT are required'],
    [['--api-key', KEY, 'room:x', 'e', '[1]'], {}, 'the payload must be a JSON object'],
    [['--api-key', KEY, 'room:x', 'e', '{"a":'], {}, 'the payload must be a JSON object'],
    [['--api-key', KEY, 'room:x', 'e', '{}', 'extra'], {}, 'unexpected argument "extra"'],
    [['--api-key', KEY, '--url', 'https://127.0.0.1:4000', 'room:x', 'e'], {}, 'https:// is not supported'],
    [['--api-key', KEY, '--url', 'ftp://x', 'room:x', 'e'], {}, 'the URL must start with http://'],
    [['--api-key', KEY, '--url', 'http://127.0.0.1:99999', 'room:x', 'e'], {}, 'bad port in the URL'],
    [['--api-key', KEY, '--bogus', 'room:x', 'e'], {}, 'unknown option --bogus'],
    [['--api-key', KEY, '--disconnect', 'users_socket:1', 'room:x'], {}, '--disconnect takes no TOPIC or EVENT'],
    [['--api-key', KEY, '--timeout-ms', '0', 'room:x', 'e'], {}, '--timeout-ms must be from 1 to 3600000'],
  ];
  for (const [args, env, want] of cases) {
    const r = await publish(['--url', server.url, ...args], { env });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].startsWith('phxd publish: ') && lines[0].includes(want), `${lines[0]} should include ${want}`);
  }
  const help = await publish(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: phxd publish/);
});
