// Autobahn 9.x Limits/Performance (echo route only; run it with limits that
// admit 16 MiB messages and 65536 fragments): 9.1/9.2 text/binary messages
// of 64 KiB-16 MiB, 9.3/9.4 4 MiB in fragments of 64 B-4 MiB, 9.5/9.6 1 MiB
// in write chops of 64-2048 bytes, 9.7/9.8 1000 round trips at 0-4096 bytes
// (INFORMATIONAL, with timings). The echo must match what was sent, byte
// for byte (Autobahn checks the length only).
import { performance } from 'node:perf_hooks';
import { OP, sha1 } from '../frame.mjs';
import { CODE, repeatTo } from '../context.mjs';

const KiB = 1024;
const MiB = 1024 * 1024;
const TEXT_PATTERN = Buffer.from('BAsd7&jh23');
const BINARY_PATTERN = Buffer.from('00fe23faf0', 'hex');
const fmt = (n) => (n >= MiB ? `${n / MiB}M` : n >= KiB ? `${n / KiB}k` : `${n}`);

const payloads = new Map();
function payload(binary, size, pattern) {
  const key = `${binary}:${size}:${pattern.toString('hex')}`;
  if (!payloads.has(key)) {
    const data = repeatTo(pattern, size);
    payloads.set(key, { data, sha1: sha1(data) });
  }
  return payloads.get(key);
}

// One big message; the echo decides the verdict.
function bigEcho({ id, description, binary, size, pattern, waitSecs, send }) {
  return {
    id,
    echoOnly: true,
    binaryData: binary,
    description,
    expectation: `Receive echo'ed ${binary ? 'binary' : 'text'} message (with payload as sent).`,
    timeoutMs: (waitSecs + 10) * 1000,
    run(ctx) {
      const p = payload(binary, size, pattern);
      ctx.expectedClose = { closedByMe: true, codes: [CODE.NORMAL], requireClean: true };
      ctx.override = { behavior: 'FAILED', result: `Did not receive message within ${waitSecs} seconds.` };
      ctx.t0 = performance.now();
      send(ctx, binary ? OP.BINARY : OP.TEXT, p.data);
      ctx.closeAfter(waitSecs);
    },
    onMessage(ctx, ev) {
      const p = payload(binary, size, pattern);
      const kind = binary ? 'binary' : 'text';
      ctx.extra.roundTripMs = Math.round(performance.now() - ctx.t0);
      if (ev.type !== 'message' || ev.binary !== binary) {
        ctx.override = { behavior: 'FAILED', result: `Expected ${kind} message with payload, but got ${ev.binary ? 'binary' : ev.type}.` };
      } else if (ev.data.length !== size) {
        ctx.override = { behavior: 'FAILED', result: `Expected ${kind} message with payload of length ${size}, but got ${ev.data.length}.` };
      } else if (sha1(ev.data) !== p.sha1) {
        ctx.override = { behavior: 'FAILED', result: `Received ${kind} message of length ${size} whose bytes differ from those sent.` };
      } else {
        ctx.override = { behavior: 'OK', result: `Received ${kind} message of length ${size} in ${ctx.extra.roundTripMs} ms.` };
      }
      ctx.sendClose(CODE.NORMAL);
    },
  };
}

const SIZES = [[64 * KiB, 10], [256 * KiB, 10], [1 * MiB, 20], [4 * MiB, 60], [8 * MiB, 100], [16 * MiB, 100]];
const FRAGS = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB];
const CHOPS = [64, 128, 256, 512, 1024, 2048];

function roundTrips(id, binary, len, count, waitSecs) {
  return {
    id,
    echoOnly: true,
    binaryData: binary,
    description: `Send ${count} ${binary ? 'binary' : 'text'} messages of payload size ${len} to measure implementation/network RTT (round trip time) / latency.`,
    expectation: `Receive echo'ed ${binary ? 'binary' : 'text'} messages (with payload as sent). Timeout case after ${waitSecs} secs.`,
    timeoutMs: (waitSecs + 10) * 1000,
    run(ctx) {
      const data = repeatTo(binary ? Buffer.from([0xfe]) : Buffer.from('*'), len);
      ctx.expectedClose = { closedByMe: true, codes: [CODE.NORMAL], requireClean: true };
      ctx.override = { behavior: 'FAILED', result: `Case did not finish within ${waitSecs} seconds.` };
      ctx.rt = { data, count: 0, t0: performance.now() };
      ctx.closeAfter(waitSecs);
      ctx.sendFrame({ opcode: binary ? OP.BINARY : OP.TEXT, payload: data });
      ctx.rt.count = 1;
    },
    onMessage(ctx, ev) {
      const { rt } = ctx;
      if (ev.type !== 'message' || ev.binary !== binary || !ev.data.equals(rt.data)) {
        ctx.override = { behavior: 'FAILED', result: `Echo'ed message type or content differs from what I sent (got binary = ${ev.binary}, payload length = ${ev.data ? ev.data.length : '-'}).` };
        ctx.sendClose(CODE.NORMAL);
      } else if (rt.count < count) {
        ctx.sendFrame({ opcode: binary ? OP.BINARY : OP.TEXT, payload: rt.data });
        rt.count += 1;
      } else {
        const ms = performance.now() - rt.t0;
        ctx.extra = { messages: count, totalMs: Math.round(ms), meanRoundTripUs: Math.round((ms * 1000) / count) };
        ctx.override = { behavior: 'INFORMATIONAL', result: `Ok, received all echo'ed messages in time: ${count} round trips in ${Math.round(ms)} ms (mean ${ctx.extra.meanRoundTripUs} us).` };
        ctx.sendClose(CODE.NORMAL);
      }
    },
  };
}

export const cases = [];
for (const [sub, binary] of [[1, false], [2, true]]) {
  SIZES.forEach(([size, waitSecs], i) => cases.push(bigEcho({
    id: `9.${sub}.${i + 1}`,
    description: `Send ${binary ? 'binary' : 'text'} message message with payload of length ${fmt(size)}.`,
    binary,
    size,
    pattern: binary ? BINARY_PATTERN : TEXT_PATTERN,
    waitSecs,
    send: (ctx, opcode, data) => ctx.sendFrame({ opcode, payload: data }),
  })));
}
for (const [sub, binary] of [[3, false], [4, true]]) {
  FRAGS.forEach((frag, i) => cases.push(bigEcho({
    id: `9.${sub}.${i + 1}`,
    description: `Send fragmented ${binary ? 'binary' : 'text'} message message with message payload of length 4M. Sent out in fragments of ${fmt(frag)}.`,
    binary,
    size: 4 * MiB,
    pattern: binary ? Buffer.from([0xfe]) : Buffer.from('*'),
    waitSecs: 100,
    send: (ctx, opcode, data) => ctx.sendMessage(data, { binary, fragSize: frag }),
  })));
}
for (const [sub, binary] of [[5, false], [6, true]]) {
  CHOPS.forEach((chop, i) => cases.push(bigEcho({
    id: `9.${sub}.${i + 1}`,
    description: `Send ${binary ? 'binary' : 'text'} message message with payload of length 1M. Sent out data in chops of ${chop} octets.`,
    binary,
    size: 1 * MiB,
    pattern: binary ? BINARY_PATTERN : TEXT_PATTERN,
    waitSecs: 1000,
    send: (ctx, opcode, data) => ctx.sendFrame({ opcode, payload: data, chop }),
  })));
}
for (const [sub, binary] of [[7, false], [8, true]]) {
  [[0, 60], [16, 60], [64, 60], [256, 120], [1024, 240], [4096, 480]].forEach(([len, waitSecs], i) => {
    cases.push(roundTrips(`9.${sub}.${i + 1}`, binary, len, 1000, waitSecs));
  });
}
