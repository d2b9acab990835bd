// Hostile input and faults (the bad-input catalogue in tests/README.md):
// each case checks that phxd answers clearly, stays up, keeps memory
// bounded (VmRSS from /proc) and that another client keeps getting its
// messages.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { startServer, signToken, withTimeout, SECRET, PHXD_BIN } from './lib/server.mjs';
import { rawWs } from './lib/raw.mjs';
import { api, waitFor } from './lib/longpoll.mjs';

const servers = [];
after(async () => { for (const s of servers) await s.stop('SIGKILL').catch(() => {}); });

async function start(args = [], opts = {}) {
  const s = await startServer(args, opts);
  servers.push(s);
  return s;
}

const q = (user) => `token=${signToken(user)}&vsn=2.0.0`;
const rssKiB = (pid) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

// A witness: a client in room:w that must keep receiving broadcasts.
async function witness(srv) {
  const w = await rawWs(srv, q(1000));
  w.sendJson(['1', '1', 'room:w', 'phx_join', {}]);
  assert.equal((await w.nextJson())[4].status, 'ok');
  return {
    async check(n) {
      const c = await rawWs(srv, q(1001));
      c.sendJson(['1', '1', 'room:w', 'phx_join', {}]);
      await c.nextJson();
      c.sendJson(['1', '2', 'room:w', 'still', { n }]);
      for (;;) {
        const m = await w.nextJson();
        if (m[3] === 'still' && m[4].n === n) break;
      }
      await c.close();
    },
    close: () => w.close(),
  };
}

test('JSON nesting and width bombs: refused or handled with bounded memory; others unaffected', async () => {
  const srv = await start(['--max-message-bytes', '2097152']);
  const w = await witness(srv);
  const rss0 = rssKiB(srv.proc.pid);
  // Nesting past --max-json-depth (64) inside the payload: closed with 1011.
  const deep = await rawWs(srv, q(2));
  deep.send(`["1","1","room:a","phx_join",${'['.repeat(1000)}${']'.repeat(1000)}]`);
  assert.equal((await deep.waitClosed()).code, 1011);
  // 1 MiB of [0,0,0,...] as a payload (a 40x heap amplifier for a cJSON tree):
  // phxd scans it without building a tree and broadcasts it once.
  const wide = await rawWs(srv, q(3));
  wide.sendJson(['1', '1', 'room:b', 'phx_join', {}]);
  await wide.nextJson();
  const bomb = `{"a":[${'0,'.repeat(512 * 1024)}0]}`;
  for (let i = 0; i < 5; i++) {
    wide.send(`["1","${i + 2}","room:b","ping",${bomb}]`);
    const reply = await wide.nextText(10000);
    assert.ok(reply.length > bomb.length);
  }
  const grown = rssKiB(srv.proc.pid) - rss0;
  // (ASan's quarantine keeps freed memory: no RSS bound on sanitized builds.)
  if (!process.env.PHXD_SANITIZED)
    assert.ok(grown < 16 * 1024, `RSS grew ${grown} KiB for 5 MiB of width bombs`);
  await w.check(1);
  await wide.close();
  w.close();
});

test('NUL in a topic, wrong shapes and types: closed with 1011, nobody else affected', async () => {
  const srv = await start();
  const w = await witness(srv);
  const bad = [
    '["1","1","room:a\\u0000evil","phx_join",{}]',
    '{"topic":"room:a","event":"phx_join","payload":{},"ref":"1"}',
    '["1","1","room:a"]',
    '"just a string"',
    '[1,2,3,4]x',
  ];
  for (const text of bad) {
    const c = await rawWs(srv, q(5));
    c.send(text);
    assert.equal((await c.waitClosed()).code, 1011, text);
  }
  // Non-string topic and event: unmatched topic, socket survives.
  const c = await rawWs(srv, q(6));
  c.send('[null,"9",42,{"x":1},{}]');
  const m = await c.nextJson();
  assert.deepEqual(m, [null, '9', 42, 'phx_reply', { response: { reason: 'unmatched topic' }, status: 'error' }]);
  await c.close();
  await w.check(2);
  w.close();
});

test('oversized and truncated tokens are refused with 403 before any work', async () => {
  const srv = await start();
  const good = signToken(9);
  const cases = [
    good + 'A'.repeat(5000),                     // over --max-token-bytes
    good.slice(0, good.length - 10),             // truncated signature
    good.split('.').slice(0, 2).join('.'),       // two parts
    `${good}.extra`,                             // four parts
    'A'.repeat(100000),                          // huge garbage
  ];
  for (const t of cases) {
    await assert.rejects(rawWs(srv, `token=${encodeURIComponent(t)}&vsn=2.0.0`), (e) => e.status === 403 || e.status === 414 || e.status === 431);
  }
  const ok = await rawWs(srv, `token=${good}&vsn=2.0.0`);
  await ok.close();
});

for (const level of ['info', 'debug']) {
  test(`the secret and tokens never appear in the log, at ${level}`, async () => {
    const srv = await start(['--log-level', level]);
    const tok = signToken(11);
    const c = await rawWs(srv, `token=${tok}&vsn=2.0.0`);
    c.sendJson(['1', '1', 'room:a', 'phx_join', { secret: 'payload-secret-xyz' }]);
    await c.nextJson();
    c.sendJson(['1', '2', 'user:12', 'phx_join', { secret: 'payload-secret-xyz' }]); // refused
    await c.nextJson();
    c.sendJson(['1', '3', 'room:a', 'shout', { secret: 'payload-secret-xyz' }]);
    await c.nextJson();
    await c.close();
    await assert.rejects(rawWs(srv, `token=${tok}x&vsn=2.0.0`));
    await srv.stop();
    const log = srv.stderr() + srv.stdout();
    // The socket's life is logged at info (connect, joins, close, the refusal).
    for (const ev of ['connect', 'join', 'join_refused', 'close', 'connect_refused']) {
      assert.match(log, new RegExp(`info event=${ev} `), `${ev} line`);
    }
    assert.ok(!log.includes(SECRET), 'secret in log');
    assert.ok(!log.includes(tok.split('.')[2]), 'token signature in log');
    assert.ok(!log.includes(tok.split('.')[1]), 'token payload in log');
    assert.ok(!srv.stderr().includes('payload-secret-xyz'), 'payload in log');
  });
}

test('subscribers killed mid-broadcast: phxd survives, descriptors return, others see every message', async () => {
  const srv = await start(['--api-key', 'k']);
  const fd0 = fdCount(srv.proc.pid);
  const w = await rawWs(srv, q(1));
  w.sendJson(['1', '1', 'room:k', 'phx_join', {}]);
  await w.nextJson();
  // 20 subscribers in a child process that gets SIGKILLed during the flood.
  const child = spawn(process.execPath, ['-e', `
    const WebSocket = require('ws');
    let open = 0;
    for (let i = 0; i < 20; i++) {
      const ws = new WebSocket('ws://127.0.0.1:${srv.port}/socket/websocket?${q(2)}');
      ws.on('open', () => { ws.send(JSON.stringify(['1','1','room:k','phx_join',{}])); });
      ws.on('message', (m) => { if (String(m).includes('phx_reply') && ++open === 20) process.stdout.write('ready\\n'); });
    }
  `], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  await withTimeout(new Promise((r) => child.stdout.on('data', (d) => { if (String(d).includes('ready')) r(); })), 10000, 'children joined');
  const n = 300;
  const sending = (async () => {
    for (let i = 0; i < n; i++) {
      await api(srv, '/api/broadcast', { topic: 'room:k', event: 'm', payload: { i, pad: 'y'.repeat(2000) } }, { key: 'k' });
      if (i === 50) child.kill('SIGKILL');
    }
  })();
  for (let i = 0; i < n; i++) {
    let m;
    do { m = await w.nextJson(10000); } while (m[3] !== 'm');
    assert.equal(m[4].i, i);
  }
  await sending;
  await waitFor(() => fdCount(srv.proc.pid) <= fd0 + 1, 5000, 'descriptors back to baseline');
  await w.close();
  assert.equal(srv.proc.exitCode, null);
});

test('file-descriptor exhaustion (prlimit --nofile=64): phxd stays up, idles, and recovers', async (t) => {
  if (spawnSync('prlimit', ['--version']).status !== 0) return t.skip('prlimit not available');
  // phxd raises its soft limit to the hard one: set both.
  const proc = spawn('prlimit', ['--nofile=64:64', PHXD_BIN, '--host', '127.0.0.1', '--port', '0', '--secret-key-base', SECRET],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const port = await withTimeout(new Promise((resolve) => {
    proc.stdout.on('data', (d) => { out += d; const m = out.match(/listening on http:\/\/[^\s]*:(\d+)/); if (m) resolve(Number(m[1])); });
  }), 10000, 'phxd under prlimit started');
  try {
    const socks = [];
    for (let i = 0; i < 120; i++) {
      socks.push(await new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.on('connect', () => resolve(s));
        s.on('close', () => resolve(s));
      }));
    }
    // Saturated: the server must not spin (CPU time stays low over 1 s).
    const stat = () => fs.readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const cpu0 = Number(stat()[11]) + Number(stat()[12]);
    await new Promise((r) => setTimeout(r, 1000));
    const cpu1 = Number(stat()[11]) + Number(stat()[12]);
    assert.ok(cpu1 - cpu0 < 50, `phxd used ${cpu1 - cpu0} ticks while saturated`);
    for (const s of socks) s.destroy();
    // Recovered: a real client connects and gets a heartbeat reply.
    await waitFor(async () => {
      try {
        const c = await rawWs({ port }, q(3));
        c.send('[null,"1","phoenix","heartbeat",{}]');
        await c.nextJson();
        await c.close();
        return true;
      } catch { return false; }
    }, 10000, 'recovered');
    assert.equal(proc.exitCode, null);
  } finally {
    proc.kill('SIGTERM');
    await withTimeout(new Promise((r) => proc.on('exit', r)), 5000, 'exit');
  }
  assert.doesNotMatch(err, /assert|abort/i);
});

test('SIGTERM under load: every client gets 1012, phxd exits 0 within the deadline', async () => {
  const srv = await start(['--api-key', 'k', '--drain-batch', '10', '--drain-interval-ms', '100']);
  const clients = [];
  for (let i = 0; i < 40; i++) {
    const c = await rawWs(srv, q(100 + i));
    c.sendJson(['1', '1', 'room:load', 'phx_join', {}]);
    clients.push(c);
  }
  for (const c of clients) await c.nextJson();
  let stop = false;
  const flood = (async () => {
    let i = 0;
    while (!stop) {
      try { await api(srv, '/api/broadcast', { topic: 'room:load', event: 'e', payload: { i: i++ } }, { key: 'k' }); } catch { break; }
    }
  })();
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const infos = await Promise.all(clients.map((c) => c.waitClosed(10000)));
  stop = true;
  await flood;
  for (const info of infos) assert.equal(info.code, 1012);
  assert.equal((await withTimeout(srv.exited, 10000, 'exit')).code, 0);
  assert.ok(Date.now() - t0 < 10000);
});
