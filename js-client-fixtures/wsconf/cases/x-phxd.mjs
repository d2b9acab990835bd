// phxd's own cases beyond Autobahn (docs/bad-input.md §2 cites them), judged with the
// same rules where they fit:
//   x.1 fragment and message-size caps (--max-fragments, --max-message-bytes)
//   x.2 lying and non-minimal length encodings, unmasked frames
//   x.3 ping floods and unsolicited pongs
//   x.4 close codes outside phxd's list, the close-handshake timeout
//   x.5 the opening handshake: a frame in the same write, split requests
// The caps are the server's configuration, given to run.mjs
// (--max-fragments, --max-message-bytes, --close-timeout-ms,
// --queue-high-bytes); RSS checks need --server-pid.
import { OP, encodeFrame } from '../frame.mjs';
import { Conn, upgradeRequest } from '../conn.mjs';
import { CODE, readRssKiB, readProcKiB, sleep } from '../context.mjs';

const B = (s) => Buffer.from(s, 'latin1');
const PROTO_FAIL = { closedByMe: false, codes: [CODE.PROTOCOL_ERROR], requireClean: false };
const TOO_BIG = { closedByMe: false, codes: [CODE.TOO_BIG], requireClean: false };

function frames(list) {
  return Buffer.concat(list.map((f) => encodeFrame(f)));
}

// Resolves true on 'drain', false if none comes within `ms`.
function drainWithin(sock, ms) {
  return new Promise((resolve) => {
    const done = (v) => {
      clearTimeout(timer);
      sock.off('drain', onDrain);
      resolve(v);
    };
    const onDrain = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    sock.on('drain', onDrain);
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms); }),
  ]);
}

// Server memory before the case and after the connection closed: the case
// fails if RSS grew by `rssLimitKiB` or more, or if the peak of virtual
// memory (VmPeak, which also shows a large allocation never touched, so
// absent from RSS, and already freed) grew by `peakLimitKiB` or more.
function memoryBounded(rssLimitKiB, peakLimitKiB) {
  return {
    after(ctx) {
      const pid = ctx.opts.serverPid;
      const rss = readRssKiB(pid);
      const peak = readProcKiB(pid, 'VmPeak');
      if (ctx.mem0 === null || rss === null || peak === null) {
        ctx.notes.push('server memory not measured (no --server-pid)');
        return;
      }
      Object.assign(ctx.extra, {
        rssBeforeKiB: ctx.mem0.rss, rssAfterKiB: rss, rssGrowthKiB: rss - ctx.mem0.rss,
        vmPeakBeforeKiB: ctx.mem0.peak, vmPeakAfterKiB: peak, vmPeakGrowthKiB: peak - ctx.mem0.peak,
      });
      ctx.extraVerdict = (v) => {
        const problems = [];
        if (rss - ctx.mem0.rss >= rssLimitKiB && !process.env.PHXD_SANITIZED) problems.push(`server RSS grew by ${rss - ctx.mem0.rss} KiB (limit ${rssLimitKiB} KiB)`);
        if (peak - ctx.mem0.peak >= peakLimitKiB) problems.push(`server VmPeak grew by ${peak - ctx.mem0.peak} KiB (limit ${peakLimitKiB} KiB)`);
        if (problems.length) {
          v.behavior = 'FAILED';
          v.result = problems.join('; ');
        }
      };
    },
  };
}

function memoryNow(pid) {
  const rss = readRssKiB(pid);
  const peak = readProcKiB(pid, 'VmPeak');
  return rss === null || peak === null ? null : { rss, peak };
}

// ---- x.1 caps ----

function fragmentFlood(id, chunk, label) {
  return {
    id,
    description: `Send a text message in ${label} fragments: as many frames as --max-fragments allows, then a Ping; once the Pong is in (the server still reads), one more fragment.`,
    expectation: 'The Pong, then the connection is failed with 1009 at the first fragment past the cap.',
    timeoutMs: 20000,
    run(ctx) {
      const cap = ctx.limits.maxFragments;
      const list = [{ opcode: OP.TEXT, fin: false, payload: chunk }];
      for (let i = 1; i < cap; i++) list.push({ opcode: OP.CONT, fin: false, payload: chunk });
      const ping = B(`after ${cap} fragments`);
      ctx.expected.OK = [{ type: 'pong', data: ping }];
      ctx.expectedClose = { ...TOO_BIG };
      // The fragment past the cap leaves once the Pong is in: a Pong
      // queued in the same read as the failure would be dropped with it.
      const record = ctx.conn.handlers.pong;
      ctx.conn.handlers.pong = (data) => {
        record(data);
        if (data.equals(ping)) ctx.sendFrame({ opcode: OP.CONT, fin: false, payload: chunk });
      };
      ctx.conn.send(frames(list));
      ctx.sendFrame({ opcode: OP.PING, payload: ping });
      ctx.killAfter(5);
    },
  };
}

const capCases = [
  {
    id: 'x.1.1',
    description: 'Send a text message in exactly --max-fragments frames (the first carries the content, the others are empty but the last may carry the tail).',
    expectation: "The message is echo'ed (phoenix mode: the heartbeat is answered). Clean close with normal code.",
    timeoutMs: 20000,
    run(ctx) {
      const cap = ctx.limits.maxFragments;
      const pieces = ['fragment cap', ...Array(cap - 1).fill('')];
      const m = ctx.textParts(pieces);
      ctx.expected.OK = [m.expect];
      ctx.conn.send(frames(m.parts.map((p, i) => ({ opcode: i === 0 ? OP.TEXT : OP.CONT, fin: i === cap - 1, payload: p }))));
      ctx.killAfter(5);
    },
  },
  fragmentFlood('x.1.2', B('a'), 'one-byte'),
  fragmentFlood('x.1.3', Buffer.alloc(0), 'zero-byte'),
  {
    id: 'x.1.4',
    description: 'Send a text message of exactly --max-message-bytes bytes in one frame.',
    expectation: "The message is echo'ed (phoenix mode: the heartbeat is answered). Clean close with normal code.",
    run(ctx) {
      const m = ctx.textSized(ctx.limits.maxMessageBytes);
      ctx.expected.OK = [m.expect];
      ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes });
      ctx.killAfter(10);
    },
  },
  {
    id: 'x.1.5',
    description: 'Send a text message of --max-message-bytes + 1 bytes in one frame.',
    expectation: 'The connection is failed with 1009.',
    run(ctx) {
      const m = ctx.textSized(ctx.limits.maxMessageBytes + 1);
      ctx.expected.OK = [];
      ctx.expectedClose = { ...TOO_BIG };
      ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes });
      ctx.killAfter(10);
    },
  },
  {
    id: 'x.1.6',
    description: 'Send a fragmented text message whose first fragment has --max-message-bytes bytes, then a Ping; once the Pong is in, a 1-byte final fragment.',
    expectation: 'The Pong (the message is still within the limit), then the connection is failed with 1009 at the final fragment.',
    run(ctx) {
      const m = ctx.textSized(ctx.limits.maxMessageBytes);
      const ping = B('still within the limit');
      ctx.expected.OK = [{ type: 'pong', data: ping }];
      ctx.expectedClose = { ...TOO_BIG };
      const record = ctx.conn.handlers.pong;
      ctx.conn.handlers.pong = (data) => {
        record(data);
        if (data.equals(ping)) ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: B(' ') });
      };
      ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.bytes });
      ctx.sendFrame({ opcode: OP.PING, payload: ping });
      ctx.killAfter(10);
    },
  },
];

// ---- x.2 lengths and masking ----

function lyingLength(id, len, label) {
  return {
    id,
    description: `Send a binary frame header declaring ${label} bytes, followed by 1 payload byte.`,
    expectation: 'The connection is failed with 1009 without reserving the declared size: server RSS grows by less than 1 MiB, and its peak virtual size by less than 64 MiB.',
    run(ctx) {
      ctx.mem0 = memoryNow(ctx.opts.serverPid);
      ctx.expected.OK = [];
      ctx.expectedClose = { ...TOO_BIG };
      ctx.sendFrame({ opcode: OP.BINARY, len, payload: B('x') });
      ctx.killAfter(2);
    },
    ...memoryBounded(1024, 65536),
  };
}

function nonMinimal(id, description, frame) {
  return {
    id,
    description,
    expectation: 'The connection is failed (1002, or a Close without code), since RFC 6455 5.2 requires the minimal length encoding.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...PROTO_FAIL };
      ctx.sendFrame(frame);
      ctx.killAfter(1);
    },
  };
}

const lengthCases = [
  lyingLength('x.2.1', 2 ** 31 - 2, '2^31-2'),
  lyingLength('x.2.2', (1n << 63n) - 1n, '2^63-1'),
  nonMinimal('x.2.3', 'Send a 5-byte text message with a 16-bit length.', { opcode: OP.TEXT, payload: B('Hello'), lenBits: 16 }),
  nonMinimal('x.2.4', 'Send a 5-byte text message with a 64-bit length.', { opcode: OP.TEXT, payload: B('Hello'), lenBits: 64 }),
  nonMinimal('x.2.5', 'Send a 200-byte text message with a 64-bit length.', { opcode: OP.TEXT, payload: Buffer.alloc(200, 0x2a), lenBits: 64 }),
  nonMinimal('x.2.6', 'Send a text frame whose 64-bit length has the most significant bit set (2^63 + 5), then 5 bytes.',
    { opcode: OP.TEXT, payload: B('Hello'), len: (1n << 63n) + 5n, lenBits: 64 }),
  nonMinimal('x.2.7', 'Send a Ping with a 5-byte payload and a 16-bit length.', { opcode: OP.PING, payload: B('Hello'), lenBits: 16 }),
  {
    id: 'x.2.8',
    description: 'Send an unmasked text frame.',
    expectation: 'The connection is failed with 1002 (RFC 6455 5.1: a server must close on an unmasked frame).',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...PROTO_FAIL };
      ctx.sendFrame({ opcode: OP.TEXT, payload: B('Hello'), mask: false });
      ctx.killAfter(1);
    },
  },
];

// ---- x.3 pings and pongs ----

const PING_FLOOD_LIMIT = 256 * 1024 * 1024;

const pingCases = [
  {
    id: 'x.3.1',
    description: 'Ping flood while not reading: send 125-byte Pings as fast as the socket takes them without reading the Pongs, until the server stops reading (no drain for 1 s); then read again, send a last Ping and close.',
    expectation: 'The server stops reading the flooder (its queued output is bounded), its RSS grows by less than --queue-high-bytes + 2 MiB; after reading resumes the last Ping is answered and the close is clean.',
    timeoutMs: 60000,
    async run(ctx) {
      const { conn, opts } = ctx;
      const sock = conn.socket;
      ctx.expected.OK = [];
      ctx.expectedClose = { closedByMe: true, codes: [CODE.NORMAL], requireClean: true };
      let pongs = 0;
      let lastPong = null;
      conn.handlers.pong = (data) => {
        pongs++;
        if (data.equals(B('last'))) lastPong();
      };
      sock.pause();
      const rss0 = readRssKiB(opts.serverPid);
      const ping = encodeFrame({ opcode: OP.PING, payload: Buffer.alloc(125, 0x70) });
      const perBatch = 512;
      const batch = Buffer.concat(Array(perBatch).fill(ping));
      let written = 0;
      let pings = 0;
      let stalled = false;
      let peak = rss0;
      while (written < PING_FLOOD_LIMIT && !sock.destroyed) {
        const more = sock.write(batch);
        written += batch.length;
        pings += perBatch;
        if (!more) {
          const drained = await drainWithin(sock, 1000);
          const rss = readRssKiB(opts.serverPid);
          if (rss !== null && rss > peak) peak = rss;
          if (!drained) {
            stalled = true;
            break;
          }
        }
      }
      const limitKiB = Math.round(opts.queueHighBytes / 1024) + 2048;
      ctx.extra = { pingsSent: pings, bytesSent: written, stalled };
      if (rss0 !== null) Object.assign(ctx.extra, { rssBeforeKiB: rss0, rssPeakKiB: peak, rssGrowthKiB: peak - rss0, rssLimitKiB: limitKiB });
      else ctx.notes.push('server RSS not measured (no --server-pid)');
      // Read again: the queued Pongs arrive, then the last Ping's Pong.
      const gotLast = new Promise((resolve) => { lastPong = resolve; });
      sock.resume();
      ctx.sendFrame({ opcode: OP.PING, payload: B('last') });
      let answered = true;
      try {
        await withTimeout(gotLast, 20000, 'Pong for the last Ping');
      } catch {
        answered = false;
      }
      ctx.extra.pongsReceived = pongs;
      const problems = [];
      if (!stalled) problems.push(`the server kept reading: ${written} bytes of Pings were taken without a stall`);
      // A sanitized build keeps freed memory in ASan's quarantine: RSS
      // says nothing about phxd's own bounds there (tests/dev.sh sets it).
      if (rss0 !== null && peak - rss0 >= limitKiB && !process.env.PHXD_SANITIZED) problems.push(`server RSS grew by ${peak - rss0} KiB (limit ${limitKiB} KiB)`);
      if (!answered) problems.push('the last Ping was not answered after reading resumed');
      ctx.override = problems.length
        ? { behavior: 'FAILED', result: problems.join('; ') }
        : { behavior: 'OK', result: `server stopped reading after ${pings} Pings (${written} bytes); RSS growth ${rss0 === null ? 'not measured' : `${peak - rss0} KiB`}; ${pongs} Pongs after reading resumed` };
      ctx.sendClose(CODE.NORMAL);
    },
  },
  {
    id: 'x.3.2',
    description: 'Send an unsolicited Pong with payload, then a text message.',
    expectation: "Nothing in reply to the Pong; the message is echo'ed. Clean close with normal code.",
    run(ctx) {
      const m = ctx.text('after an unsolicited pong');
      ctx.expected.OK = [m.expect];
      ctx.sendFrame({ opcode: OP.PONG, payload: B('unsolicited') });
      ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes });
      ctx.killAfter(1);
    },
  },
  {
    id: 'x.3.3',
    description: 'Send 1000 Pings of 125 bytes with distinct payloads in one write, reading normally.',
    expectation: 'A Pong for each Ping, in order. Clean close with normal code.',
    run(ctx) {
      ctx.expected.OK = [];
      const list = [];
      for (let i = 0; i < 1000; i++) {
        const payload = Buffer.alloc(125, 0x2e);
        payload.write(`ping ${i}`);
        ctx.expected.OK.push({ type: 'pong', data: payload });
        list.push({ opcode: OP.PING, payload });
      }
      ctx.conn.send(frames(list));
      ctx.killAfter(5);
    },
  },
];

// ---- x.4 closing ----

const closeCases = [
  ...[1012, 1013, 1014].map((code, i) => ({
    id: `x.4.${i + 1}`,
    description: `Send close with code ${code} (IANA-registered: Service Restart, Try Again Later, Bad Gateway).`,
    expectation: "phxd's documented answer: like Phoenix on Bandit it answers 1000 only for 1000-1003, 1007-1011, 3000-4999 or no code, so 1002 here (wslay also treats the code as invalid).",
    suppressClose: true,
    wrongCodeFailsBehavior: true,
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { closedByMe: true, codes: [CODE.PROTOCOL_ERROR], requireClean: false };
      ctx.sendCloseFrame(code);
      ctx.killAfter(1);
    },
  })),
  {
    id: 'x.4.4',
    description: "Close-handshake timeout: make the server fail the connection (a text frame with RSV1), never answer its Close, keep TCP open and probe it with a byte every 50 ms.",
    expectation: 'The server closes TCP once --close-timeout-ms has passed since its Close (not before half of it, and within 2 s after it).',
    conn: { replyToClose: false, keepOpenOnEnd: true, serverDropTimeoutMs: 600000 },
    timeoutMs: 120000,
    async run(ctx) {
      const { conn, opts } = ctx;
      ctx.expected.OK = [];
      ctx.expectedClose = { ...PROTO_FAIL };
      ctx.sendFrame({ opcode: OP.TEXT, rsv: 1, payload: B('x') });
      await withTimeout(conn.closeFrame, 2000, "the server's Close");
      const t0 = Date.now();
      const deadline = t0 + opts.closeTimeoutMs + 3000;
      while (conn.state !== 'CLOSED' && Date.now() < deadline) {
        if (!conn.socket.destroyed) conn.socket.write(Buffer.from([0]), () => {});
        await Promise.race([conn.tcpClosed, sleep(50)]);
      }
      const waited = Date.now() - t0;
      ctx.extra = { closeTimeoutMs: opts.closeTimeoutMs, serverClosedTcpAfterMs: conn.state === 'CLOSED' ? waited : null };
      if (conn.state !== 'CLOSED') {
        ctx.override = { behavior: 'FAILED', result: `the server did not close TCP within ${waited} ms of its Close` };
        conn.drop();
      } else if (waited < opts.closeTimeoutMs / 2) {
        ctx.override = { behavior: 'FAILED', result: `the server closed TCP ${waited} ms after its Close, before the ${opts.closeTimeoutMs} ms close timeout` };
      } else if (waited > opts.closeTimeoutMs + 2000) {
        ctx.override = { behavior: 'FAILED', result: `the server closed TCP only ${waited} ms after its Close (timeout ${opts.closeTimeoutMs} ms)` };
      } else {
        ctx.override = { behavior: 'OK', result: `the server closed TCP ${waited} ms after its Close (timeout ${opts.closeTimeoutMs} ms)` };
      }
    },
  },
];

// ---- x.5 opening handshake ----

const handshakeCases = [
  {
    id: 'x.5.1',
    description: 'Send a text frame in the same TCP write as the upgrade request.',
    expectation: "101, then the message is echo'ed (phoenix mode: the heartbeat is answered). Clean close with normal code.",
    beforeOpen(ctx) {
      const m = ctx.text('pipelined with the handshake');
      ctx.expected.OK = [m.expect];
      return { pipelined: encodeFrame({ opcode: OP.TEXT, payload: m.bytes }) };
    },
    run(ctx) {
      ctx.killAfter(2);
    },
  },
  {
    id: 'x.5.2',
    description: 'Send the upgrade request in two writes, split at every byte offset (one connection per offset); on each connection a Ping, then a close.',
    expectation: 'Every split request gets a valid 101, the Ping a Pong and the close a clean 1000.',
    async custom(opts) {
      const probe = upgradeRequest({ host: opts.host, port: opts.port, path: opts.path, key: 'AAAAAAAAAAAAAAAAAAAAAA==' });
      const failures = [];
      for (let at = 1; at < probe.length; at++) {
        const conn = new Conn({ host: opts.host, port: opts.port, path: opts.path });
        try {
          await conn.open({ splitAt: at, timeoutMs: 3000 });
          const pong = new Promise((resolve) => { conn.handlers.pong = resolve; });
          conn.send(encodeFrame({ opcode: OP.PING, payload: B(`split at ${at}`) }));
          const data = await withTimeout(pong, 2000, 'Pong');
          if (!data.equals(B(`split at ${at}`))) throw new Error(`Pong payload ${data.toString('hex')}`);
          conn.sendCloseFrame(CODE.NORMAL);
          await withTimeout(conn.tcpClosed, 3000, 'TCP close');
          if (!conn.wasClean || conn.droppedByMe || conn.remoteCloseCode !== CODE.NORMAL) {
            throw new Error(`close: clean ${conn.wasClean}, code ${conn.remoteCloseCode}, droppedByMe ${conn.droppedByMe}`);
          }
        } catch (e) {
          conn.drop();
          failures.push({ at, error: e.message });
        }
      }
      const ok = failures.length === 0;
      return {
        behavior: ok ? 'OK' : 'FAILED',
        behaviorClose: ok ? 'OK' : 'FAILED',
        result: ok ? `all ${probe.length - 1} split offsets upgraded, answered the Ping and closed cleanly`
          : `${failures.length} of ${probe.length - 1} split offsets failed: ${JSON.stringify(failures.slice(0, 10))}`,
        resultClose: ok ? 'Connection was properly closed' : 'see result',
        events: [],
        measured: { requestBytes: probe.length, offsets: probe.length - 1, failures },
      };
    },
  },
];

export const cases = [...capCases, ...lengthCases, ...pingCases, ...closeCases, ...handshakeCases];
