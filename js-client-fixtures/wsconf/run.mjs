#!/usr/bin/env node
// The conformance client's command line: runs the selected cases one after
// another against a server, writes an Autobahn-like JSON report
// ({case: {behavior, behaviorClose, durationMs, events, description, ...}})
// and prints a summary ending with "N passed, N failed". Exits non-zero if
// any case is not OK, NON-STRICT or INFORMATIONAL.
//
//   node run.mjs --port 4000 --path /echo [--mode echo|phoenix]
//        [--cases REGEX] [--exclude REGEX] [--report out.json]
//        [--server-pid PID] [--max-message-bytes N] [--max-fragments N]
//        [--close-timeout-ms N] [--queue-high-bytes N]
//        [--pause-scale F] [--timeout-scale F] [--verbose]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { allCases, groupOf } from './cases/index.mjs';
import { runCase } from './context.mjs';
import { PASSING } from './judge.mjs';

export const DEFAULTS = {
  host: '127.0.0.1',
  path: '/echo',
  mode: 'echo',
  cases: '.',
  exclude: null,
  report: null,
  serverPid: null,
  maxMessageBytes: 1048576,
  maxFragments: 1024,
  closeTimeoutMs: 5000,
  queueHighBytes: 1048576,
  pauseScale: 0.25,
  timeoutScale: 1,
  verbose: false,
};

// The cases a run selects, and those the mode cannot run (binary payloads
// and the 9.x echo benchmarks have no Phoenix heartbeat form).
export function selectCases(opts) {
  const re = new RegExp(opts.cases);
  const ex = opts.exclude ? new RegExp(opts.exclude) : null;
  const chosen = allCases.filter((c) => re.test(c.id) && !(ex && ex.test(c.id)));
  const skipped = opts.mode === 'phoenix' ? chosen.filter((c) => c.binaryData || c.echoOnly) : [];
  return { run: chosen.filter((c) => !skipped.includes(c)), skipped };
}

export function outcomeOf(r) {
  if (!PASSING.has(r.behavior) || !PASSING.has(r.behaviorClose)) return 'FAILED';
  if (r.behavior === 'INFORMATIONAL' || r.behaviorClose === 'INFORMATIONAL') return 'INFORMATIONAL';
  if (r.behavior === 'NON-STRICT' || r.behaviorClose === 'NON-STRICT') return 'NON-STRICT';
  return 'OK';
}

// Runs the selection; resolves with { report, results: [{id, ...entry}], skipped, durationMs }.
export async function runSuite(options, { onCase } = {}) {
  const opts = { ...DEFAULTS, ...options };
  opts.limits = { maxMessageBytes: opts.maxMessageBytes, maxFragments: opts.maxFragments };
  const { run, skipped } = selectCases(opts);
  const report = {};
  const results = [];
  const t0 = performance.now();
  for (const def of run) {
    const entry = await runCase(def, opts);
    report[def.id] = entry;
    const r = { id: def.id, ...entry, outcome: outcomeOf(entry) };
    results.push(r);
    if (onCase) onCase(r);
  }
  return { opts, report, results, skipped: skipped.map((c) => c.id), durationMs: Math.round(performance.now() - t0) };
}

// The summary text: a table per group, every failure with what was sent
// and what the server did, and the last line "N passed, N failed".
export function summarize({ opts, results, skipped, durationMs }) {
  const lines = [];
  lines.push(`wsconf ${opts.mode} mode against ${opts.host}:${opts.port}${opts.path.split('?')[0]}: ${results.length} cases in ${(durationMs / 1000).toFixed(1)} s`);
  const groups = new Map();
  for (const r of results) {
    const g = groupOf(r.id);
    if (!groups.has(g)) groups.set(g, { cases: 0, OK: 0, 'NON-STRICT': 0, INFORMATIONAL: 0, FAILED: 0, ms: 0 });
    const s = groups.get(g);
    s.cases++;
    s[r.outcome]++;
    s.ms += r.durationMs;
  }
  lines.push('group   cases      OK  NON-STRICT  INFORMATIONAL  FAILED    time');
  const tot = { cases: 0, OK: 0, 'NON-STRICT': 0, INFORMATIONAL: 0, FAILED: 0, ms: 0 };
  for (const [g, s] of groups) {
    for (const k of Object.keys(tot)) tot[k] += s[k];
    lines.push(`${g.padEnd(7)} ${String(s.cases).padStart(5)} ${String(s.OK).padStart(7)} ${String(s['NON-STRICT']).padStart(11)} ${String(s.INFORMATIONAL).padStart(14)} ${String(s.FAILED).padStart(7)} ${(s.ms / 1000).toFixed(1).padStart(6)} s`);
  }
  lines.push(`${'all'.padEnd(7)} ${String(tot.cases).padStart(5)} ${String(tot.OK).padStart(7)} ${String(tot['NON-STRICT']).padStart(11)} ${String(tot.INFORMATIONAL).padStart(14)} ${String(tot.FAILED).padStart(7)} ${(tot.ms / 1000).toFixed(1).padStart(6)} s`);
  if (skipped.length) lines.push(`not run in ${opts.mode} mode (binary payloads, echo benchmarks): ${skipped.length} cases`);
  const nonStrict = results.filter((r) => r.outcome === 'NON-STRICT');
  for (const r of nonStrict) lines.push(`NON-STRICT ${r.id}: ${r.behavior} / ${r.behaviorClose}: ${r.behavior === 'NON-STRICT' ? r.result : r.resultClose}`);
  const failed = results.filter((r) => r.outcome === 'FAILED');
  for (const r of failed) {
    lines.push(`FAILED ${r.id}: ${r.description}`);
    lines.push(`  behavior ${r.behavior}: ${r.result}`);
    lines.push(`  behaviorClose ${r.behaviorClose}: ${r.resultClose}`);
    if (r.expected) lines.push(`  expected events ${JSON.stringify(r.expected)}, close ${JSON.stringify(r.expectedClose)}`);
    if (r.events) lines.push(`  received events ${JSON.stringify(r.events)}; server close code ${r.remoteCloseCode}${r.closeReceived ? '' : ' (no Close frame)'}, closedByMe ${r.closedByMe}, clean ${r.wasClean}, droppedByMe ${r.droppedByMe}`);
    if (r.wire) {
      lines.push(`  sent ${JSON.stringify(r.wire.sent.slice(0, 6))}${r.wire.sent.length > 6 ? ' ...' : ''}`);
      lines.push(`  received frames ${JSON.stringify(r.wire.received.slice(0, 6))}`);
    }
    if (r.notes && r.notes.length) lines.push(`  notes: ${r.notes.join('; ')}`);
  }
  const passedCount = results.length - failed.length;
  lines.push(`${passedCount} passed, ${failed.length} failed`);
  return lines.join('\n');
}

async function main() {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      path: { type: 'string' },
      mode: { type: 'string' },
      cases: { type: 'string' },
      exclude: { type: 'string' },
      report: { type: 'string' },
      'server-pid': { type: 'string' },
      'max-message-bytes': { type: 'string' },
      'max-fragments': { type: 'string' },
      'close-timeout-ms': { type: 'string' },
      'queue-high-bytes': { type: 'string' },
      'pause-scale': { type: 'string' },
      'timeout-scale': { type: 'string' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help || !values.port) {
    process.stdout.write('usage: node run.mjs --port N [--host H] [--path /echo] [--mode echo|phoenix] [--cases REGEX]\n' +
      '         [--exclude REGEX] [--report out.json] [--server-pid PID] [--max-message-bytes N]\n' +
      '         [--max-fragments N] [--close-timeout-ms N] [--queue-high-bytes N] [--pause-scale F]\n' +
      '         [--timeout-scale F] [--verbose]\n');
    process.exit(values.help ? 0 : 2);
  }
  const num = (v, d) => (v === undefined ? d : Number(v));
  const opts = {
    host: values.host ?? DEFAULTS.host,
    port: Number(values.port),
    path: values.path ?? DEFAULTS.path,
    mode: values.mode ?? DEFAULTS.mode,
    cases: values.cases ?? DEFAULTS.cases,
    exclude: values.exclude ?? null,
    serverPid: values['server-pid'] ? Number(values['server-pid']) : null,
    maxMessageBytes: num(values['max-message-bytes'], DEFAULTS.maxMessageBytes),
    maxFragments: num(values['max-fragments'], DEFAULTS.maxFragments),
    closeTimeoutMs: num(values['close-timeout-ms'], DEFAULTS.closeTimeoutMs),
    queueHighBytes: num(values['queue-high-bytes'], DEFAULTS.queueHighBytes),
    pauseScale: num(values['pause-scale'], DEFAULTS.pauseScale),
    timeoutScale: num(values['timeout-scale'], DEFAULTS.timeoutScale),
  };
  if (!['echo', 'phoenix'].includes(opts.mode)) throw new Error(`--mode must be echo or phoenix, not ${opts.mode}`);
  const res = await runSuite(opts, {
    onCase: values.verbose ? (r) => process.stdout.write(`${r.id} ${r.behavior} ${r.behaviorClose} ${r.durationMs} ms\n`) : undefined,
  });
  if (values.report) fs.writeFileSync(values.report, `${JSON.stringify(res.report, null, 1)}\n`);
  process.stdout.write(`${summarize(res)}\n`);
  process.exitCode = res.results.some((r) => r.outcome === 'FAILED') ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    process.stderr.write(`${e.stack || e}\n`);
    process.exit(2);
  });
}
