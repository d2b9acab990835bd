// Runs phxd-bench (PHXD_BENCH_BIN) against the real phxd: each scenario
// small and short, then checks the one JSON object it prints on stdout.
// Figures are checked for presence and sign, never against timings. The
// cluster options (--url repeated, --publish-url) run against two phxd
// nodes on a real redis-server, as tests/bench-cluster.sh uses them. The
// backend scenario runs against phxd with --backend-url pointing at the
// bench's own backend (--backend-listen), as tests/bench-backend.sh does.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { startServer, SECRET, withTimeout } from './lib/server.mjs';
import { waitFor } from './lib/longpoll.mjs';
import { startRedis } from './lib/redis.mjs';

const BENCH = process.env.PHXD_BENCH_BIN ||
  new URL('../build/phxd-bench', import.meta.url).pathname;

let server = null;
let cluster = null; // { redis, nodes }
afterEach(async () => {
  if (server) await server.stop();
  server = null;
  if (cluster) {
    await Promise.all(cluster.nodes.map((n) => n.stop()));
    await cluster.redis.kill();
  }
  cluster = null;
});

// Runs the bench to completion; resolves { code, json, stderr }.
function runBench(args, ms = 60000) {
  return withTimeout(new Promise((resolve, reject) => {
    const proc = spawn(BENCH, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('error', reject);
    proc.on('exit', (code) => {
      let json = null;
      try {
        json = JSON.parse(out);
      } catch (e) {
        reject(new Error(`stdout is not one JSON object (${e.message}): ${out}\nstderr: ${err}`));
        return;
      }
      resolve({ code, json, stderr: err });
    });
  }), ms, 'phxd-bench');
}

async function bench(scenario, extra = []) {
  server = await startServer();
  const args = [
    '--url', `ws://127.0.0.1:${server.port}/socket`,
    '--secret-key-base', SECRET,
    '--server-pid', String(server.proc.pid),
    '--scenario', scenario,
    '--duration', '1',
    '--settle-ms', '200',
    '--drain-ms', '3000',
    ...extra,
  ];
  return runBench(args);
}

function assertClean(r, sockets) {
  assert.equal(r.json.errors, 0, `errors: ${JSON.stringify(r.json.error_kinds)}\n${r.stderr}`);
  assert.equal(r.json.sockets_requested, sockets);
  assert.equal(r.json.sockets, sockets);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.json.bench_cpu_s > 0);
  assert.equal(typeof r.json.server_cpu_s, 'number');
  assert.ok(r.json.server_cpu_s >= 0);
  assert.ok(r.json.server_rss_base_bytes > 0);
  assert.ok(r.json.server_rss_end_bytes > 0);
  assert.ok(r.json.duration_s > 0);
  for (const k of ['sockets', 'connect_per_s', 'server_rss_per_socket_bytes', 'fanout_p50_ms',
    'fanout_p99_ms', 'fanout_max_ms', 'deliveries_per_s', 'echo_per_s', 'echo_p99_ms',
    'server_cpu_s', 'bench_cpu_s', 'errors']) {
    assert.ok(k in r.json, `field ${k} missing`);
  }
}

test('hold joins every socket to user:<id> and the room and measures memory per socket', async () => {
  const r = await bench('hold', ['--sockets', '200']);
  assertClean(r, 200);
  assert.equal(r.json.scenario, 'hold');
  assert.equal(r.json.sockets_joined, 200);
  assert.ok(r.json.connect_per_s > 0);
  assert.ok(r.json.connect_p50_ms > 0 && r.json.connect_p50_ms <= r.json.connect_max_ms);
  assert.ok(r.json.server_rss_per_socket_bytes > 0, 'a fresh server grows with 200 sockets');
  assert.equal(r.json.fanout_p99_ms, null);
  assert.equal(r.json.echo_per_s, null);
  assert.match(r.stderr, /ramp +joined 200\/200|ramp done: 200\/200/);
});

test('fanout delivers every broadcast to every subscriber and reports latency to the last one', async () => {
  const r = await bench('fanout', ['--sockets', '20', '--rate', '10']);
  assertClean(r, 20);
  const j = r.json;
  assert.ok(j.broadcasts >= 5, `broadcasts ${j.broadcasts}`);
  assert.equal(j.broadcasts_complete, j.broadcasts);
  assert.equal(j.subscribers, 20);
  assert.equal(j.deliveries, j.broadcasts * 20);
  assert.equal(j.deliveries_expected, j.deliveries);
  assert.ok(j.fanout_p50_ms > 0);
  assert.ok(j.fanout_p50_ms <= j.fanout_p99_ms && j.fanout_p99_ms <= j.fanout_max_ms);
  assert.ok(j.deliveries_per_s > 0);
  assert.ok(j.delivery_p99_ms > 0);
});

test('echo keeps a ping outstanding per socket and reports round trips', async () => {
  const r = await bench('echo', ['--sockets', '10', '--window', '2']);
  assertClean(r, 10);
  const j = r.json;
  assert.ok(j.echo_round_trips > 0);
  assert.ok(j.echo_per_s > 0);
  assert.ok(j.echo_p50_ms > 0 && j.echo_p50_ms <= j.echo_p99_ms && j.echo_p99_ms <= j.echo_max_ms);
  assert.equal(j.fanout_p99_ms, null);
});

test('churn connects, joins, pings, leaves and closes in a loop and compares memory', async () => {
  const r = await bench('churn', ['--sockets', '5']);
  assertClean(r, 5);
  const j = r.json;
  assert.ok(j.churn_cycles > 0);
  assert.ok(j.churn_per_s > 0);
  assert.ok(j.connect_per_s > 0);
  assert.equal(typeof j.server_rss_return_pct, 'number');
  assert.equal(j.server_rss_per_socket_bytes, null);
});

test('presence joins every socket to one presence topic and measures when every view is complete', async () => {
  server = await startServer(['--channel', 'room:* join=any events=broadcast presence=user']);
  const r = await runBench(['--url', `ws://127.0.0.1:${server.port}/socket`, '--secret-key-base', SECRET,
    '--server-pid', String(server.proc.pid), '--scenario', 'presence', '--sockets', '50',
    '--concurrency', '50', '--settle-ms', '100', '--duration', '5']);
  const j = r.json;
  assert.equal(j.errors, 0, `errors: ${JSON.stringify(j.error_kinds)}\n${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(j.sockets, 50);
  assert.equal(j.scenario, 'presence');
  // The measured phase only waits for the views: over at once when they filled during the ramp.
  assert.ok(j.duration_s >= 0 && j.duration_s < 5);
  assert.equal(j.presence_views_complete, 50);
  assert.equal(typeof j.presence_converge_ms, 'number');
  assert.ok(j.presence_converge_ms >= 0 && j.presence_converge_p50_ms <= j.presence_converge_ms);
  // Every socket got one presence_state and at least one diff (the last joiner's own join
  // reaches the others as a diff; the last joiner sees everyone in its state or a diff).
  assert.ok(j.presence_msgs_mean >= 1 && j.presence_msgs_max >= 2, JSON.stringify(j));
  assert.ok(j.presence_bytes_mean > 0 && j.presence_bytes_max >= j.presence_bytes_mean);
  assert.equal(j.presence_diffs_one_per_join, 49);
  assert.ok(j.presence_diffs_max < 49, 'joins are coalesced');
  assert.equal(j.presence_diff_ratio.toFixed(3), (j.presence_diffs_mean / 49).toFixed(3));
  assert.equal(typeof j.server_cpu_presence_s, 'number');
  assert.equal(j.fanout_p99_ms, null);
  assert.match(r.stderr, /every view held all 50 users/);

  // Without presence on the topic the views never fill: counted, never a clean run.
  await server.stop();
  server = await startServer();
  const none = await runBench(['--url', `ws://127.0.0.1:${server.port}/socket`, '--secret-key-base', SECRET,
    '--scenario', 'presence', '--sockets', '3', '--settle-ms', '50', '--duration', '0.3', '--quiet']);
  assert.equal(none.code, 1);
  assert.equal(none.json.presence_views_complete, 0);
  assert.equal(none.json.error_kinds.missing, 3);
});

test('V1 JSON and rotating source addresses work the same way', async () => {
  const r = await bench('echo', ['--sockets', '6', '--vsn', '1.0.0', '--source-ips', '127.0.0.2-127.0.0.3']);
  assertClean(r, 6);
  assert.equal(r.json.vsn, '1.0.0');
  assert.ok(r.json.echo_round_trips > 0);
  const f = await runBench(['--url', `ws://127.0.0.1:${server.port}/socket`, '--secret-key-base', SECRET,
    '--scenario', 'fanout', '--sockets', '4', '--rate', '10', '--duration', '1', '--vsn', '1.0.0',
    '--settle-ms', '100', '--quiet']);
  assert.equal(f.json.errors, 0, f.stderr);
  assert.equal(f.json.deliveries, f.json.broadcasts * 4);
});

test('a socket that is refused is an error, never a counted socket', async () => {
  server = await startServer();
  const r = await runBench(['--url', `ws://127.0.0.1:${server.port}/socket`,
    '--secret-key-base', 'not-the-server-secret-key-base-0123456789abcdefghijklmnopqrstuvwxyz', '--sockets', '3', '--duration', '1', '--quiet']);
  assert.equal(r.code, 1);
  assert.equal(r.json.sockets, 0);
  assert.equal(r.json.sockets_joined, 0);
  assert.equal(r.json.errors, 3);
  assert.equal(r.json.error_kinds.handshake, 3);
  assert.match(r.stderr, /403/);
});

// A free loopback port for the bench's built-in backend (phxd needs its URL first).
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// bench() with the server already started (its channel rule and backend URL).
function backendBench(extra) {
  return runBench(['--url', `ws://127.0.0.1:${server.port}/socket`, '--secret-key-base', SECRET,
    '--server-pid', String(server.proc.pid), '--scenario', 'backend', '--duration', '1',
    '--settle-ms', '200', '--drain-ms', '3000', ...extra]);
}

test('backend pushes events that phxd hands to the built-in backend and reports its figures', async () => {
  const port = await freePort();
  server = await startServer(['--backend-url', `http://127.0.0.1:${port}/phxd`,
    '--channel', '"room:*" join=any events=backend']);
  const r = await backendBench(['--sockets', '4', '--inflight', '2',
    '--backend-listen', `127.0.0.1:${port}`]);
  assertClean(r, 4);
  const j = r.json;
  assert.equal(j.scenario, 'backend');
  assert.equal(j.backend_listen, `127.0.0.1:${port}`);
  assert.equal(j.backend_inflight, 2);
  assert.ok(j.backend_callbacks > 0);
  assert.ok(j.backend_callbacks_per_s > 0);
  // Every push was answered by the built-in backend (nothing outstanding after the drain).
  assert.equal(j.backend_calls, j.backend_callbacks, r.stderr);
  assert.equal(j.backend_timed, j.backend_callbacks);
  for (const k of ['rtt', 'own', 'added']) {
    for (const p of ['p50', 'p90', 'p99', 'max']) {
      assert.equal(typeof j[`backend_${k}_${p}_ms`], 'number', `backend_${k}_${p}_ms`);
    }
    assert.ok(j[`backend_${k}_p50_ms`] <= j[`backend_${k}_p99_ms`]);
    assert.ok(j[`backend_${k}_p99_ms`] <= j[`backend_${k}_max_ms`]);
  }
  assert.ok(j.backend_added_p50_ms <= j.backend_rtt_p50_ms, 'added is the round trip minus the backend');
  for (const k of ['backend_calls_per_s', 'backend_cpu_s', 'server_cpu_us_per_callback']) {
    assert.equal(typeof j[k], 'number', k);
  }
  assert.equal(j.echo_per_s, null);
  assert.match(r.stderr, /callbacks +\d+ replies/);

  // The baseline: phxd answers the same pushes itself (events=reply), no backend anywhere.
  await server.stop();
  server = await startServer(['--channel', '"room:*" join=any events=reply']);
  const base = await backendBench(['--sockets', '2', '--rate', '200']);
  assertClean(base, 2);
  assert.ok(base.json.backend_callbacks > 0);
  assert.equal(typeof base.json.backend_rtt_p99_ms, 'number');
  assert.equal(base.json.backend_calls, null);
  assert.equal(base.json.backend_timed, 0);
  assert.equal(base.json.backend_added_p99_ms, null);

  const bad = spawnSync(BENCH, ['--secret-key-base', SECRET, '--scenario', 'echo',
    '--backend-listen', `127.0.0.1:${port}`, '--quiet'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--backend-listen is for --scenario backend/);
});

// Two phxd nodes on one real redis-server, as tests/bench-cluster.sh runs them.
async function startCluster() {
  const redis = await startRedis();
  cluster = { redis, nodes: [] };
  for (const name of ['A', 'B']) {
    cluster.nodes.push(await startServer(['--redis', redis.url, '--node-name', name]));
  }
  for (const n of cluster.nodes) {
    await waitFor(async () => {
      const res = await fetch(`${n.url}/metrics`, { signal: AbortSignal.timeout(5000) });
      return /^phxd_redis_connected\{[^}]*\} 1$/m.test(await res.text());
    }, 10000, 'node connected to Redis');
  }
  return cluster.nodes.map((n) => `ws://127.0.0.1:${n.port}/socket`);
}

function clusterBench(args) {
  return runBench(['--secret-key-base', SECRET, '--scenario', 'fanout', '--duration', '1',
    '--settle-ms', '300', '--drain-ms', '3000', '--quiet', ...args]);
}

test('--url repeated spreads the sockets round-robin and reports each server; one URL is unchanged', async () => {
  const [urlA, urlB] = await startCluster();
  const r = await clusterBench(['--url', urlA, '--url', urlB, '--sockets', '9', '--rate', '10',
    '--server-pid', String(cluster.nodes[0].proc.pid)]);
  assert.equal(r.code, 0, r.stderr);
  const j = r.json;
  assert.equal(j.errors, 0, r.stderr);
  assert.equal(j.url, urlA);
  assert.deepEqual(j.urls, [urlA, urlB]);
  assert.equal(j.publish_url, urlA, 'the publisher joins the first --url');
  assert.equal(j.subscribers, 9);
  assert.ok(j.broadcasts >= 5, `broadcasts ${j.broadcasts}`);
  assert.equal(j.broadcasts_complete, j.broadcasts);
  assert.equal(j.deliveries, j.broadcasts * 9, 'every broadcast reached both nodes\' subscribers');
  assert.equal(j.per_url.length, 2);
  const [a, b] = j.per_url;
  assert.deepEqual([a.url, a.publisher, a.sockets, a.subscribers], [urlA, true, 5, 5]);
  assert.deepEqual([b.url, b.publisher, b.sockets, b.subscribers], [urlB, false, 4, 4]);
  for (const u of j.per_url) {
    assert.equal(u.broadcasts_complete, j.broadcasts);
    assert.equal(u.deliveries, j.broadcasts * u.subscribers);
    assert.ok(u.fanout_p50_ms > 0 && u.fanout_p50_ms <= u.fanout_p99_ms && u.fanout_p99_ms <= u.fanout_max_ms);
    assert.ok(u.fanout_max_ms <= j.fanout_max_ms, 'the overall figure is to the last subscriber anywhere');
  }
  assert.match(r.stderr, /on ws:\/\/127\.0\.0\.1:\d+\/socket \(the publisher's\): 5 subscribers/);

  // One URL: no per-server figures, the list holds it alone.
  const one = await clusterBench(['--url', urlB, '--sockets', '3', '--rate', '10']);
  assert.equal(one.json.errors, 0, one.stderr);
  assert.deepEqual(one.json.urls, [urlB]);
  assert.equal(one.json.publish_url, urlB);
  assert.equal(one.json.per_url, null);
  assert.equal(one.json.deliveries, one.json.broadcasts * 3);
});

test('--publish-url publishes on one node while every subscriber is on another', async () => {
  const [urlA, urlB] = await startCluster();
  const r = await clusterBench(['--url', urlB, '--publish-url', urlA, '--sockets', '4', '--rate', '10']);
  assert.equal(r.code, 0, r.stderr);
  const j = r.json;
  assert.equal(j.errors, 0, r.stderr);
  assert.deepEqual(j.urls, [urlB]);
  assert.equal(j.publish_url, urlA);
  assert.equal(j.deliveries, j.broadcasts * 4, 'every delivery crossed Redis');
  assert.deepEqual(j.per_url.map((u) => [u.url, u.publisher, u.subscribers]), [[urlB, false, 4], [urlA, true, 0]]);
  assert.equal(j.per_url[1].fanout_p50_ms, null);
  assert.equal(j.per_url[0].fanout_p50_ms, j.fanout_p50_ms);
  assert.ok(Number(cluster.redis.cli('INFO', 'commandstats').match(/cmdstat_publish:calls=(\d+)/)[1]) >= j.broadcasts);

  const bad = spawnSync(BENCH, ['--secret-key-base', SECRET, '--url', urlB, '--publish-url', urlA,
    '--scenario', 'echo', '--quiet'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--publish-url is for --scenario fanout/);
});
