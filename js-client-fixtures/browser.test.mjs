// The demo page phxd serves at / (src/phxd/demo/index.html) and /phoenix.js.
// Over plain HTTP: the page, the demo token written into it, phoenix.js from
// the npm package, --phoenix-js / PHXD_PHOENIX_JS and a missing file (a real
// secret turns the page off unless --demo-page: defaults.test.mjs). In a
// real browser (Debian's Chromium, headless, driven by playwright-core; no
// browser is downloaded): two tabs chat over WebSocket, and a tab whose
// WebSocket is blocked falls back to LongPoll and still chats. On a failure
// every page is screenshot into test-output/ and the paths are printed.
// The browser tests skip only when /usr/bin/chromium is absent.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { startServer, signToken } from './lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const PHOENIX_MIN_JS = path.join(here, 'node_modules/phoenix/priv/static/phoenix.min.js');
const OUTPUT_DIR = path.join(here, 'test-output');
const PLACEHOLDER = '__PHXD_DEMO_TOKEN__';

// A loopback port nobody listens on (bound, then closed).
async function closedPort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

async function get(server, urlPath) {
  const res = await fetch(server.url + urlPath);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

// The text `read()` returns once it matches `re` (or after 5 s, as it is).
async function eventually(read, re) {
  for (let i = 0; i < 100 && !re.test(read()); i++) await sleep(50);
  return read();
}

// The string the page's EMBEDDED_TOKEN constant holds.
function embeddedToken(html) {
  const m = html.match(/var EMBEDDED_TOKEN = "([^"]*)";/);
  assert.ok(m, 'the page declares EMBEDDED_TOKEN');
  return m[1];
}

// ---- over plain HTTP ----

test('with the demo secret, / embeds the demo token and /phoenix.js is the npm package', async () => {
  const server = await startServer([], { secret: null });
  try {
    const banner = await eventually(server.stdout, /^demo token .*\n/m);
    assert.match(banner, new RegExp(`^demo page: http://127\\.0\\.0\\.1:${server.port}/$`, 'm'));
    const printed = banner.match(/^demo token \(user_id 1, valid 24 h\): (\S+)$/m);
    assert.ok(printed, banner);

    const page = await get(server, '/');
    assert.equal(page.status, 200);
    assert.equal(page.type, 'text/html; charset=utf-8');
    assert.ok(!page.body.includes(PLACEHOLDER), 'the placeholder is replaced');
    assert.equal(embeddedToken(page.body), printed[1], 'the page holds the token the banner prints');
    assert.ok(page.body.includes('<script src="/phoenix.js"></script>'));

    const js = await get(server, '/phoenix.js');
    assert.equal(js.status, 200);
    assert.equal(js.type, 'text/javascript; charset=utf-8');
    assert.equal(js.body, fs.readFileSync(PHOENIX_MIN_JS, 'utf8'));
  } finally {
    await server.stop();
  }
});

test('with a real secret and --demo-page true, / has no token (the page takes ?token=); the page uses --socket-path', async () => {
  const server = await startServer(['--demo-page', 'true', '--socket-path', '/live']);
  try {
    const banner = await eventually(server.stdout, /^demo page: .*\n/m);
    assert.match(banner, new RegExp(`^demo page: http://127\\.0\\.0\\.1:${server.port}/\\?token=TOKEN$`, 'm'));
    assert.doesNotMatch(banner, /demo token/);
    const page = await get(server, '/');
    assert.equal(page.status, 200);
    assert.equal(embeddedToken(page.body), '');
    assert.match(page.body, /var SOCKET_PATH = "\/live";/);
  } finally {
    await server.stop();
  }
});

test('--phoenix-js and PHXD_PHOENIX_JS choose the file; the flag wins', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-phoenix-js-'));
  const viaEnv = path.join(dir, 'env.js');
  const viaFlag = path.join(dir, 'flag.js');
  fs.writeFileSync(viaEnv, '/* from PHXD_PHOENIX_JS */\n');
  fs.writeFileSync(viaFlag, '/* from --phoenix-js */\n');
  try {
    for (const [args, want] of [[[], viaEnv], [['--phoenix-js', viaFlag], viaFlag]]) {
      const server = await startServer(['--demo-page', ...args], { env: { PHXD_PHOENIX_JS: viaEnv } });
      try {
        const js = await get(server, '/phoenix.js');
        assert.equal(js.status, 200);
        assert.equal(js.body, fs.readFileSync(want, 'utf8'));
      } finally {
        await server.stop();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing phoenix.js is a warning: phxd runs, / is served, /phoenix.js is 404', async () => {
  const missing = path.join(os.tmpdir(), `phxd-no-such-dir-${process.pid}`, 'phoenix.min.js');
  const server = await startServer(['--phoenix-js', missing], { secret: null });
  try {
    // stderr is a pipe of its own: the warning may arrive after the banner.
    assert.match(await eventually(server.stderr, /warn event=phoenix_js_missing path="[^"]*phoenix\.min\.js"/),
      /phoenix_js_missing/);
    const page = await get(server, '/');
    assert.equal(page.status, 200);
    assert.match(page.body, /phoenix\.js is not available/);
    assert.equal((await get(server, '/phoenix.js')).status, 404);
  } finally {
    await server.stop();
  }
});

// ---- in Chromium ----

const skip = fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (apt-get install chromium; tests/dev.sh installs it)`;
if (skip) console.log(`skipping the browser tests: ${skip}`);

describe('the demo page in Chromium', { skip }, () => {
  let server;
  let context;
  let userDataDir;
  const pages = []; // [name, page]
  const logs = [];

  before(async () => {
    // No secret: phxd uses the demo secret and writes the demo token into /.
    server = await startServer([], { secret: null });
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phxd-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'],
      timeout: 60000,
    });
  });

  after(async () => {
    if (context) await context.close().catch(() => {});
    if (server) await server.stop();
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  });

  async function openPage(name, setup, url = `${server.url}/`) {
    const page = pages.length === 0 && context.pages().length > 0 ? context.pages()[0] : await context.newPage();
    pages.push([name, page]);
    page.setDefaultTimeout(15000);
    page.on('console', (m) => logs.push(`[${name}] console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`[${name}] pageerror: ${e.message}`));
    if (setup) await setup(page);
    await page.goto(url);
    return page;
  }

  // Waits until the element's whole text is `text`.
  async function waitText(page, selector, text) {
    const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    await page.locator(selector).filter({ hasText: new RegExp(`^${escaped}$`) }).waitFor();
  }

  async function waitReady(page, transport, userId = '1') {
    await waitText(page, '#state', 'connected');
    await waitText(page, '#transport', transport);
    await waitText(page, '#room-state', 'joined');
    await waitText(page, '#user-topic', `user:${userId}`);
    await waitText(page, '#user-state', 'joined');
  }

  async function say(page, name, body) {
    await page.fill('#name', name);
    await page.fill('#body', body);
    await page.click('#send');
  }

  async function sees(page, who, body) {
    await page.locator('#messages li', { hasText: `${who}:${body}` }).waitFor();
  }

  // Runs `fn`; on a failure screenshots every page, prints the paths, the
  // browser console and the end of phxd's log (`srv`'s).
  async function withScreenshots(t, fn, srv = server) {
    try {
      await fn();
    } catch (err) {
      fs.mkdirSync(OUTPUT_DIR, { recursive: true });
      const slug = t.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
      for (const [name, page] of pages) {
        const file = path.join(OUTPUT_DIR, `browser-${slug}-${name}.png`);
        try {
          await page.screenshot({ path: file, fullPage: true, timeout: 10000 });
          console.error(`screenshot of page ${name} (${page.url()}): ${file}`);
        } catch (e) {
          console.error(`no screenshot of page ${name}: ${e.message}`);
        }
      }
      if (logs.length) console.error(`browser console:\n${logs.map((l) => `  ${l}`).join('\n')}`);
      console.error(`phxd stderr (last 40 lines):\n${srv.stderr().split('\n').slice(-40).map((l) => `  ${l}`).join('\n')}`);
      throw err;
    }
  }

  test('two tabs chat in room:lobby over WebSocket', async (t) => {
    await withScreenshots(t, async () => {
      const a = await openPage('a');
      const b = await openPage('b');
      await waitReady(a, 'WebSocket');
      await waitReady(b, 'WebSocket');

      await say(a, 'alice', 'hello from A');
      await sees(b, 'alice', 'hello from A');
      await sees(a, 'alice', 'hello from A'); // the sender is a subscriber too

      await say(b, 'bob', 'hi A, this is B');
      await sees(a, 'bob', 'hi A, this is B');
      await sees(b, 'bob', 'hi A, this is B');
    });
  });

  test('a tab whose WebSocket is blocked falls back to LongPoll and still chats', async (t) => {
    await withScreenshots(t, async () => {
      const a = pages.find(([name]) => name === 'a')?.[1] ?? await openPage('a');
      await waitReady(a, 'WebSocket');
      // The page's WebSocket to /socket/websocket is blocked the way a
      // proxy or firewall that refuses WebSockets blocks it: an init script
      // points it at a loopback port nobody listens on, so Chromium's real
      // handshake fails (error, then close 1006, never open) and phoenix.js
      // falls back to LongPoll on that error, as it would in the field.
      const deadPort = await closedPort();
      const c = await openPage('c', (page) => page.addInitScript((deadUrl) => {
        const Native = window.WebSocket;
        window.phxdBlockedWebSockets = 0;
        window.WebSocket = class BlockedWebSocket extends Native {
          constructor(url, protocols) {
            if (/\/socket\/websocket/.test(String(url))) {
              window.phxdBlockedWebSockets++;
              url = deadUrl;
            }
            super(url, protocols);
          }
        };
      }, `ws://127.0.0.1:${deadPort}/socket/websocket`));
      await waitReady(c, 'LongPoll');
      const blocked = await c.evaluate(() => window.phxdBlockedWebSockets);
      assert.ok(blocked >= 1, 'the page tried a WebSocket first');

      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const longpoll = metrics.match(/^phxd_connections\{transport="longpoll"\} (\d+)$/m);
      assert.ok(longpoll && Number(longpoll[1]) >= 1, `a LongPoll session is open:\n${metrics}`);

      await say(c, 'carol', 'hello over LongPoll');
      await sees(a, 'carol', 'hello over LongPoll');
      await sees(c, 'carol', 'hello over LongPoll');

      await say(a, 'alice', 'hi C, this is A over WebSocket');
      await sees(c, 'alice', 'hi C, this is A over WebSocket');
    });
  });

  test('with a real secret the page connects with ?token= and joins user:<id>', async (t) => {
    // lib/server.mjs's SECRET, and a socket path of its own the page follows.
    const real = await startServer(['--demo-page', 'true', '--socket-path', '/live']);
    try {
      await withScreenshots(t, async () => {
        // An integer id and a string id: the page reads either from the token.
        for (const [name, data, id] of [['d', 42, '42'], ['e', 'user-7', 'user-7']]) {
          const page = await openPage(name, null, `${real.url}/?token=${encodeURIComponent(signToken(data))}`);
          await waitReady(page, 'WebSocket', id);
        }
        const [d, e] = ['d', 'e'].map((n) => pages.find(([name]) => name === n)[1]);
        await say(d, 'dora', 'hello from user 42');
        await sees(e, 'dora', 'hello from user 42');
        // Without any token the page says how to get one instead of connecting.
        const f = await openPage('f', null, `${real.url}/`);
        await waitText(f, '#state', 'no token');
        await f.locator('#notice', { hasText: '?token=' }).waitFor();
      }, real);
    } finally {
      await real.stop();
    }
  });
});
