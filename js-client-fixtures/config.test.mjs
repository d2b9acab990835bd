// Configuration: a config file (--config / PHXD_CONFIG) read at startup,
// precedence default < file < environment < flag as `phxd check-config`
// shows it, secrets masked, and one clear line with exit status 2 for every
// kind of bad configuration (check-config and a real start alike).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  PHXD_BIN, signToken, phxSocket, connect, join, push, closeSocket, upgradeStatus, withTimeout,
  runPhxd,
} from './lib/server.mjs';
import { freePort } from './lib/redis.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-config-test-'));
const procs = [];
const sockets = [];

after(async () => {
  await Promise.all(sockets.map((s) => closeSocket(s)));
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

let nfiles = 0;
function conf(text) {
  const file = path.join(dir, `phxd-${++nfiles}.conf`);
  fs.writeFileSync(file, text);
  return file;
}

// Runs phxd with `args` in an environment holding only PATH and `env`
// (nothing leaks in from the test runner's environment).
function run(args, { env = {}, ms = 10000 } = {}) {
  return runPhxd(args, { env, ms, procs });
}

const checkConfig = (args, opts) => run(['check-config', ...args], opts);

// The check-config line for `name`, with runs of blanks collapsed.
function line(stdout, name) {
  const l = stdout.split('\n').find((s) => s.startsWith(`${name} = `));
  return l === undefined ? undefined : l.replace(/ +/g, ' ');
}

// Starts phxd with only `args` (no --port or --secret-key-base from the
// harness) and waits for its banner.
async function startRaw(args, { env = {} } = {}) {
  const p = spawn(PHXD_BIN, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const port = await withTimeout(new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^\s]*:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    p.on('exit', (code) => reject(new Error(`phxd exited ${code}: ${err}`)));
  }), 10000, 'phxd start');
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    socketUrl: `ws://127.0.0.1:${port}/socket`,
    stop: async () => {
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGTERM');
      await withTimeout(exited, 10000, 'phxd stop');
    },
  };
}

const FILE_SECRET = 'file-secret-key-base-0123456789abcdefghijklmnopqrstuvwxyz-012345';

test('a config file sets the port, the secret and the channel rules', async () => {
  const port = await freePort();
  const file = conf(`# phxd.conf
port = ${port}   # the port phxd listens on
host = 127.0.0.1
secret-key-base = "${FILE_SECRET}"
drain-interval-ms = 0
channel = "lobby:*" join=any events=reply
channel = 'vip:*' join=none
`);
  const server = await startRaw(['--config', file]);
  try {
    assert.equal(server.port, port);
    // Tokens signed with the file's secret connect; others get 403.
    assert.equal(await upgradeStatus(port, `token=${encodeURIComponent(signToken(5, { secret: FILE_SECRET }))}&vsn=2.0.0`), 101);
    assert.equal(await upgradeStatus(port, `token=${encodeURIComponent(signToken(5))}&vsn=2.0.0`), 403);
    const socket = phxSocket(server, { token: signToken(5, { secret: FILE_SECRET }) });
    sockets.push(socket);
    await connect(socket);
    const lobby = socket.channel('lobby:1');
    await join(lobby);
    assert.deepEqual(await push(lobby, 'anything', { a: 1 }), { status: 'ok', response: { a: 1 } });
    const vip = socket.channel('vip:1');
    await assert.rejects(join(vip), (e) => { assert.deepEqual(e.reply, { reason: 'unauthorized' }); return true; });
    vip.rejoinTimer.reset();
    // The rules replace the built-in policy: room:* is no longer routed.
    const room = socket.channel('room:lobby');
    await assert.rejects(join(room), (e) => { assert.deepEqual(e.reply, { reason: 'unmatched topic' }); return true; });
    room.rejoinTimer.reset();
  } finally {
    await server.stop();
  }
});

test('PHXD_CONFIG names the file; --config wins over it', async () => {
  const a = conf('port = 4101\n');
  const b = conf('port = 4102\n');
  let r = await checkConfig([], { env: { PHXD_CONFIG: a } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(line(r.stdout, 'port'), `port = 4101 # ${a}:1`);
  assert.match(r.stdout, new RegExp(`^# config file: ${a} \\(env PHXD_CONFIG\\)$`, 'm'));
  r = await checkConfig(['--config', b], { env: { PHXD_CONFIG: a } });
  assert.equal(line(r.stdout, 'port'), `port = 4102 # ${b}:1`);
});

test('precedence: default < file < environment < flag, as check-config shows it', async () => {
  const file = conf(`port = 4101
host = 10.0.0.1
salt = "file salt"
max-channels = 7
`);
  // Off loopback a real secret is required (defaults.test.mjs).
  const r = await checkConfig(['--config', file, '--salt', 'flag salt'], {
    env: { PHXD_HOST: '10.0.0.2', PHXD_SALT: 'env salt', SECRET_KEY_BASE: FILE_SECRET },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(line(r.stdout, 'port'), `port = 4101 # ${file}:1`);
  assert.equal(line(r.stdout, 'host'), 'host = 10.0.0.2 # env PHXD_HOST');
  assert.equal(line(r.stdout, 'salt'), 'salt = "flag salt" # flag --salt');
  assert.equal(line(r.stdout, 'max-channels'), `max-channels = 7 # ${file}:4`);
  assert.equal(line(r.stdout, 'max-json-depth'), 'max-json-depth = 64 # default');
  assert.equal(line(r.stdout, 'socket-path'), 'socket-path = /socket # default');
});

test('PORT and SECRET_KEY_BASE as Phoenix apps use them; the PHXD_ variables win', async () => {
  let r = await checkConfig([], { env: { PORT: '5001', SECRET_KEY_BASE: `phoenix-secret-value-${'x'.repeat(64)}` } });
  assert.equal(line(r.stdout, 'port'), 'port = 5001 # env PORT');
  assert.equal(line(r.stdout, 'secret-key-base'), 'secret-key-base = ******** # env SECRET_KEY_BASE (masked)');
  r = await checkConfig([], { env: { PORT: '5001', PHXD_PORT: '5002' } });
  assert.equal(line(r.stdout, 'port'), 'port = 5002 # env PHXD_PORT');
});

test('channel rules come from the highest source that gives any', async () => {
  const file = conf('channel = "a:*" join=none\nchannel = b:* events=reply\n');
  let r = await checkConfig(['--config', file]);
  assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('channel')).map((l) => l.replace(/ +/g, ' ')), [
    `channel = "a:*" join=none events=broadcast # ${file}:1`,
    `channel = "b:*" join=any events=reply # ${file}:2`,
  ]);
  r = await checkConfig(['--config', file], { env: { PHXD_CHANNEL: 'c:* join=user; d:x' } });
  assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('channel')).map((l) => l.replace(/ +/g, ' ')), [
    'channel = "c:*" join=user events=broadcast # env PHXD_CHANNEL',
    'channel = "d:x" join=any events=broadcast # env PHXD_CHANNEL',
  ]);
  r = await checkConfig(['--config', file, '--channel', 'e:* events=refuse'], { env: { PHXD_CHANNEL: 'c:*' } });
  assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('channel')).map((l) => l.replace(/ +/g, ' ')), [
    'channel = "e:*" join=any events=refuse # flag --channel',
  ]);
  // Without any rule: the built-in policy.
  r = await checkConfig([]);
  assert.match(r.stdout, /^channel = "user:\*" join=user events=broadcast event:ping=reply +# default \(the built-in policy\)$/m);
  assert.match(r.stdout, /^channel = "room:\*" join=any events=broadcast event:ping=reply +# default \(the built-in policy\)$/m);
});

test('check-config masks every secret, wherever it came from', async () => {
  const file = conf(`secret-key-base = "file-secret-value-abcdef-${'y'.repeat(64)}"\n`);
  let r = await checkConfig(['--config', file, '--api-key', 'flag-api-key-value']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /file-secret-value-abcdef|flag-api-key-value/);
  assert.equal(line(r.stdout, 'secret-key-base'), `secret-key-base = ******** # ${file}:1 (masked)`);
  assert.equal(line(r.stdout, 'api-key'), 'api-key = ******** # flag --api-key (masked)');
  r = await checkConfig([], { env: { PHXD_API_KEY: 'env-api-key-value', PHXD_SECRET_KEY_BASE: `env-secret-value-${'z'.repeat(64)}` } });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /env-api-key-value|env-secret-value/);
  r = await checkConfig([]);
  assert.equal(line(r.stdout, 'secret-key-base'), 'secret-key-base = # default: (the public demo secret)');
});

test('check-config output reads back as a config file', async () => {
  const first = await checkConfig(['--salt', 'a # b', '--max-age', '3600', '--channel', "'we ird:*' join=user event:ping=reply"]);
  assert.equal(first.code, 0, first.stderr);
  const file = conf(first.stdout);
  const second = await checkConfig(['--config', file]);
  assert.equal(second.code, 0, second.stderr);
  // Values without their source comments (after at least two blanks).
  const values = (out) => out.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.slice(0, l.lastIndexOf('  # ')).trimEnd());
  assert.deepEqual(values(second.stdout), values(first.stdout));
});

// Every kind of bad configuration: one line on stderr, nothing on stdout,
// exit status 2, for check-config and for a real start.
const badCases = [
  { name: 'integer out of range (file)', file: 'port = 70000\n', want: ':1: port must be an integer from 0 to 65535, got "70000"' },
  { name: 'not an integer (flag)', args: ['--max-channels', 'many'], want: 'option --max-channels: max-channels must be an integer from 1 to 65535, got "many"' },
  { name: 'bad size (env)', env: { PHXD_MAX_MESSAGE_BYTES: '1t' }, want: 'environment PHXD_MAX_MESSAGE_BYTES: max-message-bytes must be an integer' },
  { name: 'unknown key', file: 'port = 1\nprot = 2\n', want: ':2: unknown key "prot"' },
  { name: 'duplicate key', file: 'port = 1\n# again\nport = 2\n', want: ':3: duplicate key port (first set on line 1)' },
  { name: 'syntax', file: 'port 4000\n', want: ":1: expected '=' after the key" },
  { name: 'unterminated quote', file: 'salt = "user socket\n', want: ':1: unterminated quote' },
  { name: 'bad boolean', file: 'longpoll = maybe\n', want: ':1: longpoll must be true or false, got "maybe"' },
  { name: 'bad digest', args: ['--key-digest', 'md5'], want: 'option --key-digest: key-digest must be sha256, sha384 or sha512, got "md5"' },
  { name: 'bad log level', env: { PHXD_LOG_LEVEL: 'loud' }, want: 'environment PHXD_LOG_LEVEL: log-level must be error, warn, info or debug' },
  { name: 'bad max-age', file: 'max-age = soon\n', want: ":1: max-age must be seconds or 'infinity'" },
  { name: 'bad check-origin', file: 'check-origin = "ftp:/"\n', want: ':1: check-origin: "ftp:/" is not like https://host' },
  { name: 'bad channel rule', args: ['--channel', 'room:* join=maybe'], want: 'option --channel: channel rule (room:* join=maybe): join=maybe: join must be any, user, none or backend' },
  { name: 'bad channel rule (file)', file: 'channel = "room:*x" join=any\n', want: ":1: channel rule (\"room:*x\" join=any): \"room:*x\": '*' may only end a topic pattern" },
  { name: 'bad socket path', args: ['--socket-path', 'socket'], want: "socket-path must start with '/'" },
  { name: 'queue bounds', args: ['--queue-high-bytes', '2m', '--queue-limit-bytes', '1m'], want: 'queue-high-bytes must not exceed queue-limit-bytes' },
  { name: 'unknown flag', args: ['--prot', '1'], want: 'unknown option --prot (see --help)' },
  { name: 'missing file', args: ['--config', '/nonexistent/phxd.conf'], want: 'cannot read config file /nonexistent/phxd.conf: No such file or directory' },
  { name: 'config inside a config file', file: 'config = other.conf\n', want: ':1: config cannot be set inside a config file' },
];

for (const c of badCases) {
  test(`bad configuration exits 2 with one line: ${c.name}`, async () => {
    const args = c.file ? ['--config', conf(c.file), ...(c.args || [])] : (c.args || []);
    for (const [what, r] of [['check-config', await checkConfig(args, { env: c.env })],
      ['start', await run(['--port', '0', ...args], { env: c.env })]]) {
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, '', what);
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
      assert.ok(lines[0].startsWith('phxd: '), lines[0]);
      assert.ok(lines[0].includes(c.want), `${what}: ${lines[0]} should include ${c.want}`);
    }
  });
}

test('check-config --help prints the help and the rule syntax', async () => {
  const r = await checkConfig(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--config/);
  assert.match(r.stdout, /Channel rules/);
  assert.match(r.stdout, /join=user/);
});
