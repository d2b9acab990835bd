// Starts a real redis-server on a free loopback port (no persistence) for
// the cluster tests, and stops or kills it by PID. Also runs redis-cli.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves { port, url, proc, cli(...args), stop(), kill() } once Redis answers PING.
// `args`: more redis-server arguments ('--requirepass', 'pw', '--unixsocket',
// path); `auth`: the password redis-cli uses. `tls: { cert, key, ca }` (PEM
// paths; ca defaults to cert) starts a TLS-only server: `port` is its TLS
// port, no plain TCP port, no client certificates asked; `url` is rediss://
// and `cli` speaks TLS.
export async function startRedis({ port, args = [], auth, tls } = {}) {
  port = port || await freePort();
  const listen = tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert,
      '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca || tls.cert, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const proc = spawn('redis-server', [...listen, '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const reap = () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); };
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const cli = (...args) => {
    const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port),
      ...(tls ? ['--tls', '--cacert', tls.ca || tls.cert] : []),
      ...(auth ? ['--no-auth-warning', '-a', auth] : []), ...args], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout : null;
  };
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited: ${log}`);
    if ((cli('PING') || '').trim() === 'PONG') break;
    if (i > 200) throw new Error(`redis-server did not start: ${log}`);
    await sleep(25);
  }
  const stopWith = async (signal) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    await exited;
  };
  return {
    port,
    url: `${tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    proc,
    cli,
    log: () => log,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
  };
}

// The calls of one command from INFO commandstats (0 when never called).
export function commandCalls(redis, cmd) {
  const text = redis.cli('INFO', 'commandstats') || '';
  const m = text.match(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`));
  return m ? Number(m[1]) : 0;
}

// A minimal RESP connection for binary-safe PUBLISH and SUBSCRIBE (redis-cli
// cannot carry arbitrary bytes in an argument).
function respCommand(...args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// Parses one RESP value at `off`; returns [value, nextOff] or null when incomplete.
function respParse(buf, off = 0) {
  if (off >= buf.length) return null;
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.subarray(off + 1, eol).toString();
  if (type === '+' || type === '-') return [type === '-' ? new Error(line) : line, eol + 2];
  if (type === ':') return [Number(line), eol + 2];
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return [null, eol + 2];
    if (buf.length < eol + 2 + n + 2) return null;
    return [buf.subarray(eol + 2, eol + 2 + n), eol + 2 + n + 2];
  }
  if (type === '*') {
    const n = Number(line);
    const items = [];
    let p = eol + 2;
    for (let i = 0; i < n; i++) {
      const r = respParse(buf, p);
      if (!r) return null;
      items.push(r[0]);
      p = r[1];
    }
    return [items, p];
  }
  throw new Error(`bad RESP type ${type}`);
}

// Opens a RESP connection: { send(...args) -> Promise(reply), messages (array of
// {channel, data} pushed as they arrive), close() }.
export function respConnect(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const waiting = [];
    const messages = [];
    sock.on('error', reject);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = respParse(buf);
        if (!r) break;
        buf = buf.subarray(r[1]);
        const v = r[0];
        if (Array.isArray(v) && v[0] && v[0].toString() === 'message') {
          messages.push({ channel: v[1].toString(), data: v[2] });
        } else if (waiting.length) {
          waiting.shift()(v);
        }
      }
    });
    sock.on('connect', () => resolve({
      send: (...args) => new Promise((res) => { waiting.push(res); sock.write(respCommand(...args)); }),
      messages,
      close: () => sock.destroy(),
    }));
  });
}
