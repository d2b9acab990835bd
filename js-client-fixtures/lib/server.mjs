// Starts the real phxd binary (PHXD_BIN) on a free loopback port, waits for
// its banner, and stops it by PID. Also mints tokens with `phxd token sign`
// and wraps phoenix.js's Socket for Node (ws as the WebSocket).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import WebSocket from 'ws';
import { Socket } from 'phoenix';

export const PHXD_BIN = process.env.PHXD_BIN || new URL('../../build/phxd', import.meta.url).pathname;
export const SECRET = 'test-secret-key-base-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH';

// Starts phxd; `args` are extra flags. Resolves { port, url, wsUrl, proc, stderr(), stop() }.
// `port` picks a fixed port (e.g. to restart on the port of an earlier phxd).
export async function startServer(args = [], { env = {}, secret = SECRET, timeoutMs = 10000, port: fixedPort = 0 } = {}) {
  const fullArgs = ['--host', '127.0.0.1', '--port', String(fixedPort), ...args];
  if (secret !== null) fullArgs.push('--secret-key-base', secret);
  const childEnv = { ...process.env, ...env };
  delete childEnv.SECRET_KEY_BASE;
  delete childEnv.PHXD_SECRET_KEY_BASE;
  Object.assign(childEnv, env);
  const proc = spawn(PHXD_BIN, fullArgs, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  // If the test process dies without calling stop(), do not leave phxd behind.
  const reap = () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); };
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  let tls = false;
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`phxd did not start: ${err}`)), timeoutMs);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (https?):\/\/[^\s]*:(\d+)/);
      if (m) { clearTimeout(timer); tls = m[1] === 'https'; resolve(Number(m[2])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`phxd exited ${code}: ${err}`)); });
  });
  const server = {
    port,
    proc,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    socketUrl: `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/socket`,
    stdout: () => out,
    stderr: () => err,
    // Resolves { code, signal } when the process exits on its own.
    exited: new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve({ code: proc.exitCode, signal: proc.signalCode });
      else proc.once('exit', (code, signal) => resolve({ code, signal }));
    }),
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return { code: proc.exitCode, signal: proc.signalCode };
      const exited = once(proc, 'exit');
      proc.kill(signal);
      const [code, sig] = await withTimeout(exited, 10000, 'phxd did not exit');
      return { code, signal: sig };
    },
  };
  return server;
}

// Mints a token with the real CLI. `data` is JSON-encodable.
export function signToken(data, { secret = SECRET, salt = 'user socket', maxAge, signedAt, extra = [] } = {}) {
  const args = ['token', 'sign', '--secret-key-base', secret, '--salt', salt, ...extra];
  if (maxAge !== undefined) args.push('--max-age', String(maxAge));
  if (signedAt !== undefined) args.push('--signed-at', String(signedAt));
  args.push(JSON.stringify(data));
  const r = spawnSync(PHXD_BIN, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`token sign failed: ${r.stderr}`);
  return r.stdout.trim();
}

export function withTimeout(promise, ms, what = 'timed out') {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} after ${ms} ms`)), ms); }),
  ]);
}

// A phoenix.js Socket using `ws` in Node. Reconnects are slowed down so a
// refused connection does not spin.
export function phxSocket(server, params = {}, opts = {}) {
  return new Socket(server.socketUrl, {
    transport: WebSocket,
    params,
    reconnectAfterMs: () => 60000,
    rejoinAfterMs: () => 60000,
    heartbeatIntervalMs: 30000,
    ...opts,
  });
}

// Resolves once the socket opens; rejects on error or close first.
export function connect(socket, ms = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    const refs = [];
    const done = (fn, v) => { socket.off(refs); fn(v); };
    refs.push(socket.onOpen(() => done(resolve)));
    refs.push(socket.onError((e) => done(reject, new Error(`socket error: ${e && e.message ? e.message : e}`))));
    socket.connect();
  }), ms, 'connect');
}

// Resolves with the reply of `channel.join()`; rejects with the error reply.
export function join(channel, ms = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    channel.join()
      .receive('ok', resolve)
      .receive('error', (r) => reject(Object.assign(new Error(`join refused: ${JSON.stringify(r)}`), { reply: r })))
      .receive('timeout', () => reject(new Error('join timeout')));
  }), ms, 'join');
}

// Resolves with {status, response} of a push.
export function push(channel, event, payload, ms = 5000) {
  return withTimeout(new Promise((resolve) => {
    channel.push(event, payload)
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => resolve({ status: 'error', response }))
      .receive('timeout', () => resolve({ status: 'timeout' }));
  }), ms, `push ${event}`);
}

// Resolves with the next payload of `event` on `channel`.
export function nextEvent(channel, event, ms = 5000) {
  return withTimeout(new Promise((resolve) => {
    const ref = channel.on(event, (payload) => { channel.off(event, ref); resolve(payload); });
  }), ms, `event ${event}`);
}

// A raw HTTP request over TCP; resolves with { status, headers, body, raw }.
export function rawHttp(port, request, ms = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d) => { data = Buffer.concat([data, d]); });
    sock.on('error', reject);
    sock.on('close', () => {
      const text = data.toString('latin1');
      const m = text.match(/^HTTP\/1\.1 (\d{3})/);
      const headEnd = text.indexOf('\r\n\r\n');
      const head = headEnd >= 0 ? text.slice(0, headEnd) : text;
      const headers = {};
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: m ? Number(m[1]) : 0, headers, body: headEnd >= 0 ? data.subarray(headEnd + 4) : Buffer.alloc(0), raw: data });
    });
  }), ms, 'raw http');
}

// HTTP status of a WebSocket upgrade attempt with `query` (e.g. "token=..&vsn=2.0.0").
export async function upgradeStatus(port, query, extraHeaders = '') {
  const key = Buffer.from('0123456789abcdef').toString('base64');
  const req = `GET /socket/websocket?${query} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
    `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: ${key}\r\n${extraHeaders}\r\n`;
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    sock.on('connect', () => sock.write(req));
    sock.on('data', (d) => {
      data += d.toString('latin1');
      const m = data.match(/^HTTP\/1\.1 (\d{3})/);
      if (m && data.includes('\r\n\r\n')) { sock.destroy(); resolve(Number(m[1])); }
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(0));
  });
}


// Disconnects a phoenix.js socket and cancels its channels' rejoin timers,
// so no timer keeps the test process alive. Resolves once torn down.
export function closeSocket(socket) {
  for (const ch of socket.channels) {
    ch.rejoinTimer.reset();
    if (ch.joinPush) ch.joinPush.cancelTimeout();
    for (const p of ch.pushBuffer) p.cancelTimeout();
  }
  return withTimeout(new Promise((resolve) => socket.disconnect(() => resolve())), 5000, 'disconnect');
}

// Records every message a phoenix.js socket receives, as decoded by the
// client: { join_ref, ref, topic, event, payload }.
export function recordMessages(socket) {
  const log = [];
  socket.onMessage((msg) => log.push(msg));
  return log;
}

// Resolves with the first close event of a phoenix.js socket.
export function nextClose(socket, ms = 5000) {
  return withTimeout(new Promise((resolve) => {
    const ref = socket.onClose((ev) => { socket.off([ref]); resolve(ev); });
  }), ms, 'socket close');
}

// Resolves on the next open of a phoenix.js socket.
export function nextOpen(socket, ms = 5000) {
  return withTimeout(new Promise((resolve) => {
    const ref = socket.onOpen(() => { socket.off([ref]); resolve(); });
  }), ms, 'socket open');
}

// Resolves with the first message (as seen by socket.onMessage) matching `pred`.
export function nextMessage(socket, pred, ms = 5000, what = 'message') {
  return withTimeout(new Promise((resolve) => {
    const ref = socket.onMessage((msg) => { if (pred(msg)) { socket.off([ref]); resolve(msg); } });
  }), ms, what);
}

// Runs phxd to its exit with `args` in an environment holding only PATH and
// `env` (nothing leaks in from the test runner's); every child is pushed on
// `procs` when given, so that an after() hook can kill what is left.
export function runPhxd(args, { env = {}, ms = 10000, procs } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const p = spawn(PHXD_BIN, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    if (procs) procs.push(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  }), ms, `phxd ${args.join(' ')}`);
}
