// Safe defaults (issue 15): the public demo secret is used on a loopback
// --host only (127.0.0.0/8, ::1; --api-listen does not matter: the API takes
// no user token), a secret_key_base shorter than 64 bytes is refused as
// Phoenix (Plug) refuses it, from a flag, either environment variable or the
// config file alike, and the demo page at / (with /phoenix.js) is on with the
// demo secret, off with a real one, unless --demo-page says otherwise. Each
// refusal is one line on stderr, nothing on stdout, exit status 2, for a
// start and for check-config. `phxd token` keeps accepting any secret, as
// Phoenix.Token does.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PHXD_BIN, withTimeout, upgradeStatus, signToken, runPhxd } from './lib/server.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-defaults-test-'));
const procs = [];

after(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

const S63 = 's'.repeat(63);
const S64 = 'phoenix-secret-key-base-64-bytes-'.padEnd(64, 'x');
assert.equal(S64.length, 64);

let nfiles = 0;
function conf(text) {
  const file = path.join(dir, `phxd-${++nfiles}.conf`);
  fs.writeFileSync(file, text);
  return file;
}

// Runs phxd to its exit with `args` in an environment holding only PATH
// and `env`.
function run(args, { env = {}, ms = 10000 } = {}) {
  return runPhxd(args, { env, ms, procs });
}

// Starts phxd (--port 0 added) and waits for its whole banner (the line
// after which it prints nothing more). Resolves { url, host, port, stdout, stop }.
async function start(args, { env = {} } = {}) {
  const p = spawn(PHXD_BIN, ['--port', '0', ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const [host, port] = await withTimeout(new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/(\[[^\]]+\]|[^:\s]+):(\d+)\n/);
      // The banner is complete once the socket line (and any demo lines) are out:
      // the demo lines come right after the socket line, in one write.
      if (m && /^socket: .*\n/m.test(out)) resolve([m[1], Number(m[2])]);
    });
    p.on('exit', (code) => reject(new Error(`phxd exited ${code}: ${err}`)));
  }), 10000, 'phxd start');
  return {
    host,
    port,
    url: `http://${host}:${port}`,
    stdout: () => out,
    stop: async () => {
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGTERM');
      await withTimeout(exited, 10000, 'phxd stop');
    },
  };
}

// Asserts that both check-config and a start refuse `args` with one line
// on stderr that includes `want`, nothing on stdout, exit status 2.
async function assertRefused(args, env, want) {
  for (const [what, r] of [['check-config', await run(['check-config', ...args], { env })],
    ['start', await run(['--port', '0', ...args], { env })]]) {
    assert.equal(r.code, 2, `${what}: ${r.stderr}`);
    assert.equal(r.stdout, '', what);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
    assert.ok(lines[0].startsWith('phxd: '), lines[0]);
    assert.ok(lines[0].includes(want), `${what}: "${lines[0]}" should include "${want}"`);
  }
}

const status = async (url) => (await fetch(url)).status;

// ---- the demo secret off loopback ----

test('the demo secret on a non-loopback --host (flag, PHXD_HOST, config file) exits 2 with one line', async () => {
  const why = 'is not loopback and no secret-key-base (or SECRET_KEY_BASE) is given';
  await assertRefused(['--host', '0.0.0.0'], {}, `host 0.0.0.0 ${why}`);
  await assertRefused(['--host', '::'], {}, `host :: ${why}`);
  await assertRefused([], { PHXD_HOST: '10.1.2.3' }, `host 10.1.2.3 ${why}`);
  await assertRefused(['--config', conf('host = 192.168.1.1\n')], {}, `host 192.168.1.1 ${why}`);
  // An empty secret is no secret.
  await assertRefused(['--host', '0.0.0.0'], { SECRET_KEY_BASE: '' }, `host 0.0.0.0 ${why}`);
});

test('the demo secret on 127.0.0.1, another 127.0.0.0/8 address and ::1 starts', async () => {
  for (const host of ['127.0.0.1', '127.0.0.2', '::1']) {
    const srv = await start(['--host', host]);
    try {
      assert.equal(srv.host, host.includes(':') ? `[${host}]` : host);
      assert.match(srv.stdout(), /^demo token \(user_id 1, valid 24 h\): \S+$/m);
    } finally {
      await srv.stop();
    }
  }
});

test('--api-listen does not matter for the demo secret: the API takes no user token', async () => {
  // check-config builds the server without binding: no non-loopback listener is opened.
  const r = await run(['check-config', '--api-listen', '0.0.0.0:9', '--api-key', 'k']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^secret-key-base = +# default: \(the public demo secret\)$/m);
});

test('a real secret of 64 bytes on a non-loopback --host passes check-config', async () => {
  const r = await run(['check-config', '--host', '0.0.0.0', '--secret-key-base', S64]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});

// ---- the 64-byte rule ----

test('a 63-byte secret exits 2 with one line naming its source: flag, both variables, config file', async () => {
  const why = 'secret-key-base must be at least 64 bytes, as Phoenix requires (mix phx.gen.secret makes one), got 63';
  await assertRefused(['--secret-key-base', S63], {}, `option --secret-key-base: ${why}`);
  await assertRefused([], { SECRET_KEY_BASE: S63 }, `environment SECRET_KEY_BASE: ${why}`);
  await assertRefused([], { PHXD_SECRET_KEY_BASE: S63, SECRET_KEY_BASE: S64 }, `environment PHXD_SECRET_KEY_BASE: ${why}`);
  const file = conf(`# phxd.conf\nsecret-key-base = "${S63}"\n`);
  await assertRefused(['--config', file], {}, `${file}:2: ${why}`);
  // Short is short on loopback too, and the secret is never printed.
  const r = await run(['--host', '127.0.0.1', '--port', '0', '--secret-key-base', 'tiny']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /got 4\n$/);
  assert.doesNotMatch(r.stderr, /tiny/);
});

test('a 64-byte secret starts (from the flag, SECRET_KEY_BASE or the file) and verifies its tokens', async () => {
  for (const [args, env] of [[['--secret-key-base', S64], {}], [[], { SECRET_KEY_BASE: S64 }],
    [['--config', conf(`secret-key-base = '${S64}'\n`)], {}]]) {
    const srv = await start(['--host', '127.0.0.1', ...args], { env });
    try {
      assert.equal(await upgradeStatus(srv.port, `token=${encodeURIComponent(signToken(7, { secret: S64 }))}&vsn=2.0.0`), 101);
      assert.equal(await upgradeStatus(srv.port, `token=${encodeURIComponent(signToken(7))}&vsn=2.0.0`), 403);
      assert.doesNotMatch(srv.stdout(), /demo/);
    } finally {
      await srv.stop();
    }
  }
});

test('phxd token sign/verify accept a secret of any length, as Phoenix.Token does', () => {
  const sign = spawnSync(PHXD_BIN, ['token', 'sign', '--secret-key-base', 'short', '42'], { encoding: 'utf8' });
  assert.equal(sign.status, 0, sign.stderr);
  assert.equal(sign.stderr, '');
  const verify = spawnSync(PHXD_BIN, ['token', 'verify', '--secret-key-base', 'short', sign.stdout.trim()], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(verify.stdout.trim(), '42');
});

// ---- --demo-page ----

test('--demo-page defaults: on with the demo secret, off with a real secret (GET / and /phoenix.js 404, no banner line)', async () => {
  const demo = await start(['--host', '127.0.0.1']);
  try {
    assert.match(demo.stdout(), new RegExp(`^demo page: http://127\\.0\\.0\\.1:${demo.port}/$`, 'm'));
    assert.equal(await status(`${demo.url}/`), 200);
    assert.equal(await status(`${demo.url}/phoenix.js`), 200);
  } finally {
    await demo.stop();
  }
  const real = await start(['--host', '127.0.0.1', '--secret-key-base', S64]);
  try {
    assert.doesNotMatch(real.stdout(), /^demo/m);
    assert.equal(await status(`${real.url}/`), 404);
    assert.equal(await status(`${real.url}/phoenix.js`), 404);
    assert.equal(await status(`${real.url}/healthz`), 200);
  } finally {
    await real.stop();
  }
  const r = await run(['check-config', '--secret-key-base', S64]);
  assert.match(r.stdout, /^demo-page = false +# default$/m);
});

test('--demo-page true with a real secret serves the page (no token in it); false with the demo secret turns it off', async () => {
  for (const [args, env] of [[['--demo-page', 'true'], {}], [['--demo-page'], {}], [[], { PHXD_DEMO_PAGE: 'true' }],
    [['--config', conf('demo-page = true\n')], {}]]) {
    const srv = await start(['--host', '127.0.0.1', '--secret-key-base', S64, ...args], { env });
    try {
      assert.match(srv.stdout(), new RegExp(`^demo page: http://127\\.0\\.0\\.1:${srv.port}/\\?token=TOKEN$`, 'm'), args.join(' '));
      assert.doesNotMatch(srv.stdout(), /^demo token/m);
      const page = await fetch(`${srv.url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /var EMBEDDED_TOKEN = "";/);
      assert.equal(await status(`${srv.url}/phoenix.js`), 200);
    } finally {
      await srv.stop();
    }
  }
  for (const [args, env] of [[['--demo-page', 'false'], {}], [[], { PHXD_DEMO_PAGE: 'false' }]]) {
    const srv = await start(['--host', '127.0.0.1', ...args], { env });
    try {
      // The demo token is still printed (for clients of your own); the page is gone.
      assert.doesNotMatch(srv.stdout(), /^demo page/m);
      assert.match(srv.stdout(), /^demo token \(user_id 1, valid 24 h\): \S+$/m);
      assert.equal(await status(`${srv.url}/`), 404);
      assert.equal(await status(`${srv.url}/phoenix.js`), 404);
    } finally {
      await srv.stop();
    }
  }
});

test('a bad --demo-page value exits 2 with one line', async () => {
  await assertRefused(['--demo-page', 'maybe'], {}, 'option --demo-page: demo-page must be true or false, got "maybe"');
});
