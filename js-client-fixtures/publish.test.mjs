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
  withTimeout, runPhxd,
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
  return runPhxd(['publish', ...args], { env, ms: 15000 });
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
    [['--api-key', KEY, '--insecure', 'room:x', 'e'], {}, '--insecure and --cacert are for https:// URLs'],
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

// ---- https:// ----

test('publish speaks https:// with --cacert or --insecure, verifies by default, and names the protocol mix-ups', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const { spawnSync } = await import('node:child_process');
  const { default: WebSocket } = await import('ws');
  const { Socket } = await import('phoenix');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-publish-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const g = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', key, '-out', cert,
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  assert.equal(g.status, 0, g.stderr);
  const ca = fs.readFileSync(cert);
  const tlsServer = await startServer(['--api-key', KEY, '--tls-cert', cert, '--tls-key', key]);
  class TlsWebSocket extends WebSocket {
    constructor(url, protocols) { super(url, protocols, { ca }); }
  }
  const socket = new Socket(tlsServer.socketUrl, { transport: TlsWebSocket, params: { token: signToken(30) } });
  try {
    assert.match(tlsServer.url, /^https:/);
    await connect(socket);
    const ch = socket.channel('room:tlspub');
    await join(ch);
    // --cacert: verified against the server's own certificate, by IP and by name (SNI).
    let got = nextEvent(ch, 'hello');
    let r = await publish(['--url', tlsServer.url, '--api-key', KEY, '--cacert', cert, 'room:tlspub', 'hello', '{"n":1}']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"recipients":1}\n');
    assert.deepEqual(await got, { n: 1 });
    got = nextEvent(ch, 'hello');
    r = await publish(['--url', `https://localhost:${tlsServer.port}`, '--api-key', KEY, '--cacert', cert, 'room:tlspub', 'hello', '{"n":2}']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await got, { n: 2 });
    // --insecure skips the check.
    r = await publish(['--url', tlsServer.url, '--api-key', KEY, '--insecure', 'room:tlspub', 'hello', '{"n":3}']);
    assert.equal(r.code, 0, r.stderr);
    // By default the system store is used: a self-signed certificate fails, saying why.
    r = await publish(['--url', tlsServer.url, '--api-key', KEY, 'room:tlspub', 'hello']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^phxd publish: the certificate of 127\.0\.0\.1:\d+ cannot be verified: self-signed certificate .*--cacert FILE.*--insecure/);
    // http:// to the TLS port: one clear line.
    r = await publish(['--url', `http://127.0.0.1:${tlsServer.port}`, '--api-key', KEY, 'room:tlspub', 'hello']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `phxd publish: the server at 127.0.0.1:${tlsServer.port} speaks TLS: use https://127.0.0.1:${tlsServer.port}\n`);
    // https:// to a plain port: the handshake fails readably.
    r = await publish(['--url', `https://127.0.0.1:${server.port}`, '--api-key', KEY, '--insecure', 'room:tlspub', 'hello']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^phxd publish: the server at 127\\.0\\.0\\.1:${server.port} does not speak TLS \\(.*\\): use http://127\\.0\\.0\\.1:${server.port}\\n$`));
    // The TLS server kept serving through all of it.
    got = nextEvent(ch, 'hello');
    r = await publish(['--url', tlsServer.url, '--api-key', KEY, '--cacert', cert, 'room:tlspub', 'hello', '{"n":4}']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await got, { n: 4 });
  } finally {
    closeSocket(socket);
    await tlsServer.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
