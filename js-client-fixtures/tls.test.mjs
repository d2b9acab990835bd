// TLS: phxd serves wss:// and https:// through OpenSSL on the same code
// path as plain TCP, with a certificate this test generates.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import crypto from 'node:crypto';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import { Socket } from 'phoenix';
import { startServer, signToken, connect, join, push, nextEvent, closeSocket, withTimeout } from './lib/server.mjs';

let dir, ca, srv;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-tls-'));
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  ca = fs.readFileSync(path.join(dir, 'cert.pem'));
  srv = await startServer(['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')]);
});

after(async () => {
  await srv?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

class TlsWebSocket extends WebSocket {
  constructor(url, protocols) { super(url, protocols, { ca }); }
}

function get(pathname, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: srv.port, path: pathname, ca, headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the banner announces https and wss', () => {
  assert.match(srv.stdout(), /listening on https:\/\/127\.0\.0\.1:\d+/);
  assert.match(srv.stdout(), /socket: wss:\/\//);
});

test('phoenix.js connects over wss, joins, pushes and gets broadcasts', async () => {
  const a = new Socket(srv.socketUrl, { transport: TlsWebSocket, params: { token: signToken(1) } });
  const b = new Socket(srv.socketUrl, { transport: TlsWebSocket, params: { token: signToken(2) } });
  try {
    await connect(a);
    await connect(b);
    const ca1 = a.channel('room:tls');
    const cb1 = b.channel('room:tls');
    await join(ca1);
    await join(cb1);
    const got = nextEvent(cb1, 'new_msg');
    assert.deepEqual(await push(ca1, 'new_msg', { body: 'over tls' }), { status: 'ok', response: {} });
    assert.deepEqual(await got, { body: 'over tls' });
    const big = 'x'.repeat(200000);
    const r = await push(ca1, 'ping', { big });
    assert.equal(r.status, 'ok');
    assert.equal(r.response.big.length, big.length);
  } finally {
    closeSocket(a);
    closeSocket(b);
  }
});

test('https serves /healthz, /metrics and the LongPoll transport', async () => {
  const h = await get('/healthz');
  assert.equal(h.status, 200);
  const m = await get('/metrics');
  assert.equal(m.status, 200);
  assert.match(m.body, /phxd_connections\{transport="websocket"\}/);
  const lp = await get(`/socket/longpoll?token=${signToken(3)}&vsn=2.0.0&`);
  assert.equal(lp.status, 200);
  const body = JSON.parse(lp.body);
  assert.equal(body.status, 410);
  assert.equal(typeof body.token, 'string');
});

test('a bad token over wss is refused with 403', async () => {
  const ws = new TlsWebSocket(`${srv.socketUrl}/websocket?token=garbage&vsn=2.0.0`);
  const status = await withTimeout(new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
    ws.on('error', () => {});
  }), 5000, 'refusal');
  assert.equal(status, 403);
});

test('TLS 1.1 and older are refused; TLS 1.2 and 1.3 are accepted', async () => {
  const attempt = (opts) => new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca, servername: 'localhost', ...opts }, () => {
      const v = s.getProtocol();
      s.destroy();
      resolve(v);
    });
    s.on('error', () => resolve(null));
  });
  assert.equal(await attempt({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), 'TLSv1.2');
  assert.equal(await attempt({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }), 'TLSv1.3');
  assert.equal(await attempt({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), null);
});

test('plain HTTP on the TLS port does not get through, and the server keeps serving', async () => {
  const net = await import('node:net');
  await withTimeout(new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    let data = '';
    s.on('data', (d) => { data += d.toString('latin1'); });
    s.on('close', () => { assert.doesNotMatch(data, /HTTP\/1\.1 200/); resolve(); });
    s.on('error', () => resolve());
  }), 5000, 'plain connection closed');
  assert.equal((await get('/healthz')).status, 200);
});

test('a missing or mismatched key stops start-up with exit status 2', () => {
  const r = spawnSync(process.env.PHXD_BIN || '../build/phxd', ['--port', '0', '--tls-cert', path.join(dir, 'cert.pem')], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /TLS/);
  const r2 = spawnSync(process.env.PHXD_BIN || '../build/phxd', ['--port', '0', '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'nope.pem')], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /key/);
});

// ---- SIGHUP: the certificate and key are reloaded without dropping sockets ----

function makeCert(dirName, cn) {
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', path.join(dirName, 'key.pem'), '-out', path.join(dirName, 'cert.pem'),
    '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { cert: fs.readFileSync(path.join(dirName, 'cert.pem')), key: fs.readFileSync(path.join(dirName, 'key.pem')) };
}

// The SHA-256 fingerprint of the certificate a new connection is shown.
function servedFingerprint(port) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  }), 5000, 'TLS connect');
}

async function waitForLog(server, re, what) {
  const deadline = Date.now() + 5000;
  while (!re.test(server.stderr())) {
    if (Date.now() > deadline) throw new Error(`no ${what} in the log: ${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('SIGHUP reloads the certificate: open wss sockets keep working, new ones see the new certificate', async () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-tls-reload-'));
  const gen1 = path.join(d, 'gen1');
  const gen2 = path.join(d, 'gen2');
  fs.mkdirSync(gen1);
  fs.mkdirSync(gen2);
  const first = makeCert(gen1, 'first');
  const second = makeCert(gen2, 'second');
  const certPath = path.join(d, 'cert.pem');
  const keyPath = path.join(d, 'key.pem');
  fs.writeFileSync(certPath, first.cert);
  fs.writeFileSync(keyPath, first.key);
  const s = await startServer(['--tls-cert', certPath, '--tls-key', keyPath, '--log-level', 'info']);
  const fp1 = new crypto.X509Certificate(first.cert).fingerprint256;
  const fp2 = new crypto.X509Certificate(second.cert).fingerprint256;
  class FirstWebSocket extends WebSocket {
    constructor(url, protocols) { super(url, protocols, { ca: first.cert }); }
  }
  const a = new Socket(s.socketUrl, { transport: FirstWebSocket, params: { token: signToken(11) } });
  try {
    assert.equal(await servedFingerprint(s.port), fp1);
    await connect(a);
    const ch = a.channel('room:reload');
    await join(ch);
    fs.writeFileSync(certPath, second.cert);
    fs.writeFileSync(keyPath, second.key);
    s.proc.kill('SIGHUP');
    await waitForLog(s, /event=tls_reloaded/, 'tls_reloaded');
    assert.equal(await servedFingerprint(s.port), fp2);
    // The socket opened with the first certificate is still there and works.
    assert.equal(a.isConnected(), true);
    assert.deepEqual(await push(ch, 'ping', { after: 'reload' }), { status: 'ok', response: { after: 'reload' } });
    const got = nextEvent(ch, 'new_msg');
    await push(ch, 'new_msg', { body: 'still here' });
    assert.deepEqual(await got, { body: 'still here' });

    // A broken certificate file: the reload fails with one warning and the
    // second certificate stays in use.
    fs.writeFileSync(certPath, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
    s.proc.kill('SIGHUP');
    await waitForLog(s, / warn [^\n]*event=tls_reload_failed/, 'tls_reload_failed');
    assert.equal(s.stderr().match(/tls_reload_failed/g).length, 1);
    assert.equal(await servedFingerprint(s.port), fp2);
    // A key that does not match the certificate is refused as well.
    fs.writeFileSync(certPath, first.cert);
    fs.writeFileSync(keyPath, second.key);
    s.proc.kill('SIGHUP');
    await waitForLog(s, /tls_reload_failed[^\n]*\n[^]*tls_reload_failed/, 'second tls_reload_failed');
    assert.equal(await servedFingerprint(s.port), fp2);
    assert.deepEqual(await push(ch, 'ping', {}), { status: 'ok', response: {} });
    assert.equal(s.proc.exitCode, null);
  } finally {
    closeSocket(a);
    const r = await s.stop();
    assert.equal(r.code, 0);
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test('SIGHUP without TLS logs that there is nothing to reload and keeps running', async () => {
  const s = await startServer(['--log-level', 'info']);
  try {
    s.proc.kill('SIGHUP');
    await waitForLog(s, /nothing to reload/, 'nothing to reload');
    const r = await fetch(`${s.url}/healthz`);
    assert.equal(r.status, 200);
    assert.equal(s.proc.exitCode, null);
    assert.equal(s.proc.signalCode, null);
  } finally {
    const r = await s.stop();
    assert.equal(r.code, 0);
  }
});
