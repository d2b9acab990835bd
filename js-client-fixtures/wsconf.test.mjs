// RFC 6455 conformance of phxd with our re-implementation of Autobahn's
// case groups 1-7, 9 and 10 (wsconf/, Node built-ins only) and phxd's own
// extras (x.*): every case must come out OK, NON-STRICT or INFORMATIONAL.
//   - echo mode on the raw echo route (--echo-path) with production limits:
//     groups 1-7, 10 and the extras (caps, lengths, floods, close timeout,
//     split and pipelined handshakes, server memory from /proc);
//   - echo mode with limits that admit Autobahn's 9.x sizes (16 MiB
//     messages, 65536 fragments);
//   - phoenix mode on the production path /socket/websocket: every text
//     message is a Phoenix heartbeat and the expected event is its
//     phx_reply (binary and 9.x cases are not run there).
// Each run writes its Autobahn-like JSON report to test-output/ and prints
// its summary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { startServer, signToken } from './lib/server.mjs';
import { runSuite, summarize } from './wsconf/run.mjs';

const OUT = new URL('./test-output/', import.meta.url).pathname;
const CLOSE_TIMEOUT_MS = 1000;
const BIG = { maxMessageBytes: 16 * 1024 * 1024, maxFragments: 100000 };

let prod; // production limits
let big; // Autobahn 9.x limits

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  prod = await startServer(['--echo-path', '/echo', '--close-timeout-ms', String(CLOSE_TIMEOUT_MS)]);
  big = await startServer(['--echo-path', '/echo',
    '--max-message-bytes', String(BIG.maxMessageBytes), '--max-fragments', String(BIG.maxFragments),
    '--queue-limit-bytes', String(64 * 1024 * 1024)]);
});

after(async () => {
  if (prod) await prod.stop();
  if (big) await big.stop();
});

async function conformance(name, server, options) {
  const res = await runSuite({ port: server.port, serverPid: server.proc.pid, ...options });
  fs.writeFileSync(`${OUT}wsconf-${name}.json`, `${JSON.stringify(res.report, null, 1)}\n`);
  const summary = summarize(res);
  console.log(summary);
  const failed = res.results.filter((r) => r.outcome === 'FAILED');
  assert.ok(res.results.length > 0, 'no case ran');
  assert.equal(failed.length, 0, `${failed.length} case(s) failed: ${failed.map((r) => r.id).join(', ')}\n${summary}`);
  return res;
}

test('echo route: Autobahn groups 1-7 and 10, phxd extras', { timeout: 300000 }, async () => {
  const res = await conformance('echo', prod, {
    path: '/echo', mode: 'echo', cases: '^([1-7]|10|x)\\.', closeTimeoutMs: CLOSE_TIMEOUT_MS,
  });
  const count = (re) => res.results.filter((r) => re.test(r.id)).length;
  assert.deepEqual(
    [count(/^1\./), count(/^2\./), count(/^3\./), count(/^4\./), count(/^5\./), count(/^6\./), count(/^7\./), count(/^6\.([5-9]|1\d|2[0-3])\./)],
    [16, 11, 7, 10, 20, 145, 37, 132],
  );
});

test('echo route: Autobahn 9.x limits and performance', { timeout: 300000 }, async () => {
  const res = await conformance('echo-9', big, { path: '/echo', mode: 'echo', cases: '^9\\.', ...BIG });
  assert.equal(res.results.length, 54);
});

test('production path: the same cases through Phoenix heartbeats', { timeout: 300000 }, async () => {
  const token = encodeURIComponent(signToken(1));
  const res = await conformance('phoenix', prod, {
    path: `/socket/websocket?token=${token}&vsn=2.0.0`, mode: 'phoenix', cases: '^([1-7]|10|x)\\.', closeTimeoutMs: CLOSE_TIMEOUT_MS,
  });
  for (const group of ['1.1', '5', '6', '7']) {
    assert.ok(res.results.some((r) => r.id.startsWith(`${group}.`)), `group ${group} ran in phoenix mode`);
  }
});

test('command line: report file, summary line and exit status', { timeout: 60000 }, async () => {
  const report = `${OUT}wsconf-cli.json`;
  const child = spawn(process.execPath, [new URL('./wsconf/run.mjs', import.meta.url).pathname,
    '--port', String(prod.port), '--path', '/echo', '--cases', '^(1\\.1|2)\\.', '--report', report], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const [code] = await once(child, 'exit');
  const lines = out.trim().split('\n');
  assert.equal(lines[lines.length - 1], '19 passed, 0 failed', out);
  assert.equal(code, 0, out);
  const json = JSON.parse(fs.readFileSync(report, 'utf8'));
  assert.equal(Object.keys(json).length, 19);
  for (const entry of Object.values(json)) {
    for (const field of ['behavior', 'behaviorClose', 'durationMs', 'events', 'description']) assert.ok(field in entry, field);
  }
});
