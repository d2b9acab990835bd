// Runs one case: opens a connection, gives the case definition a context
// with Autobahn's primitives (sendFrame, sendMessage, sendClose, killAfter,
// closeAfter, continueLater, expected events and close), records what the
// server does, and judges it (judge.mjs).
//
// Two modes. "echo": the server echoes every message (phxd --echo-path).
// "phoenix": the production path /socket/websocket; every text message the
// cases send is a Phoenix heartbeat [null,"<ref>","phoenix","heartbeat",...]
// (padded with JSON whitespace to an exact size, or carrying the case's
// bytes inside a JSON string), and the expected event is the phx_reply for
// that ref instead of an echo.
import fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { Conn } from './conn.mjs';
import { OP, encodeFrame } from './frame.mjs';
import { judge, describeEvent, eventsEqual } from './judge.mjs';

export const CODE = {
  NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL_ERROR: 1002, UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007, POLICY: 1008, TOO_BIG: 1009, MANDATORY_EXTENSION: 1010, INTERNAL_ERROR: 1011,
};

// A /proc/<pid>/status field in KiB (VmRSS, VmPeak, VmHWM...), or null
// when it cannot be read.
export function readProcKiB(pid, field) {
  if (!pid) return null;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export const readRssKiB = (pid) => readProcKiB(pid, 'VmRSS');

export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

const toBuf = (b) => (Buffer.isBuffer(b) ? b : Buffer.from(b, typeof b === 'string' ? 'utf8' : undefined));

// Bytes of a JSON string body: control characters, '"' and '\' escaped
// when the content is valid UTF-8; invalid content stays raw (the server
// must refuse it with 1007 before any JSON parsing).
function jsonStringBytes(buf, escape) {
  if (!escape) return buf;
  const out = [];
  for (const b of buf) {
    if (b < 0x20 || b === 0x22 || b === 0x5c) out.push(...Buffer.from(`\\u00${b.toString(16).padStart(2, '0')}`, 'latin1'));
    else out.push(b);
  }
  return Buffer.from(out);
}

export class CaseContext {
  constructor(def, opts) {
    this.def = def;
    this.opts = opts;
    this.mode = opts.mode;
    this.expected = {};
    this.expectedClose = { closedByMe: true, codes: [CODE.NORMAL], requireClean: true };
    this.received = [];
    this.suppressClose = !!def.suppressClose;
    this.override = null;
    this.notes = [];
    this.extra = {};
    this.refCounter = 0;
    this.limits = opts.limits;
  }

  attach(conn) {
    this.conn = conn;
    conn.handlers = {
      message: (op, data) => this.onMessage(op, data),
      ping: (data) => this.record({ type: 'ping', data }),
      pong: (data) => this.record({ type: 'pong', data }),
    };
  }

  // ---- what the server sends ----

  normalize(op, data) {
    if (this.mode === 'phoenix' && op === OP.TEXT) {
      try {
        const m = JSON.parse(data.toString('utf8'));
        if (Array.isArray(m) && m.length === 5 && m[0] === null && m[2] === 'phoenix' && m[3] === 'phx_reply' &&
            m[4] && m[4].status === 'ok') {
          return { type: 'reply', ref: m[1] };
        }
      } catch { /* not JSON: recorded as a message */ }
    }
    return { type: 'message', binary: op === OP.BINARY, data };
  }

  onMessage(op, data) {
    const ev = this.normalize(op, data);
    if (this.def.onMessage) this.def.onMessage(this, ev);
    else this.record(ev);
  }

  record(ev) {
    this.received.push(ev);
    this.finishWhenDone();
  }

  // Autobahn: once the events match every expected list, a case that
  // expects to close first does so.
  finishWhenDone() {
    for (const list of Object.values(this.expected)) {
      if (!eventsEqual(this.received, list)) return;
    }
    if (this.expectedClose.closedByMe && !this.suppressClose) this.sendClose(this.expectedClose.codes[0]);
  }

  // ---- Autobahn's primitives ----

  sendFrame({ sync = false, chop = 0, ...frame }) {
    this.conn.send(encodeFrame({ mask: true, ...frame }), { sync, chop });
  }

  // A whole message, fragmented into frames of `fragSize` payload bytes
  // when given (Autobahn's payload_frag_size / fragmentSize).
  sendMessage(payload, { binary = false, fragSize = 0, sync = false, chop = 0 } = {}) {
    const data = toBuf(payload);
    const opcode = binary ? OP.BINARY : OP.TEXT;
    if (!fragSize || fragSize >= data.length) {
      this.sendFrame({ opcode, payload: data, sync, chop });
      return;
    }
    const frames = [];
    for (let i = 0; i < data.length; i += fragSize) {
      frames.push(encodeFrame({ opcode: i === 0 ? opcode : OP.CONT, fin: i + fragSize >= data.length, payload: data.subarray(i, i + fragSize) }));
    }
    this.conn.send(Buffer.concat(frames), { sync, chop });
  }

  sendClose(code = CODE.NORMAL, reason = null, sendOpts = {}) {
    this.conn.sendCloseFrame(code, reason, sendOpts);
  }

  sendCloseFrame(code = null, reason = null, sendOpts = {}) {
    this.conn.sendCloseFrame(code, reason, sendOpts);
  }

  isOpen() {
    return this.conn.state === 'OPEN';
  }

  mark(tag) {
    this.received.push({ type: 'timeout', tag });
  }

  // Autobahn's killAfter: drop TCP if the connection is still up then.
  killAfter(seconds) {
    this.conn.after(seconds * 1000 * this.opts.timeoutScale, () => this.conn.drop());
  }

  // Autobahn's closeAfter: start the closing handshake then.
  closeAfter(seconds) {
    this.conn.after(seconds * 1000 * this.opts.timeoutScale, () => this.sendClose(CODE.NORMAL));
  }

  // Autobahn's continueLater: the case's own pauses (5.19, 5.20, 6.4.x),
  // scaled by --pause-scale.
  continueLater(seconds, fn) {
    this.conn.after(seconds * 1000 * this.opts.pauseScale, fn);
  }

  // ---- payloads: the same case in echo and phoenix mode ----

  nextRef() {
    this.refCounter += 1;
    return `${this.def.id}.${this.refCounter}`;
  }

  // A text message with these bytes. Echo: the bytes; phoenix: a heartbeat
  // whose payload carries them in a JSON string.
  text(content) {
    return this.textParts([content]);
  }

  // A text message in several pieces (fragments or chops): echo: the pieces
  // themselves; phoenix: the heartbeat's head joined to the first and its
  // tail to the last.
  textParts(pieces) {
    const parts = pieces.map(toBuf);
    const whole = Buffer.concat(parts);
    if (this.mode !== 'phoenix') {
      return { parts, bytes: whole, expect: { type: 'message', binary: false, data: whole } };
    }
    const ref = this.nextRef();
    const escape = isUtf8(whole);
    const out = parts.map((p) => jsonStringBytes(p, escape));
    out[0] = Buffer.concat([Buffer.from(`[null,"${ref}","phoenix","heartbeat",{"d":"`), out[0]]);
    out[out.length - 1] = Buffer.concat([out[out.length - 1], Buffer.from('"}]')]);
    return { parts: out, bytes: Buffer.concat(out), expect: { type: 'reply', ref } };
  }

  // A text message of exactly `size` bytes. Echo: `filler` repeated;
  // phoenix: a heartbeat padded with JSON whitespace (never smaller than
  // the bare heartbeat).
  textSized(size, filler = '*') {
    if (this.mode !== 'phoenix') {
      const bytes = repeatTo(toBuf(filler), size);
      return { parts: [bytes], bytes, expect: { type: 'message', binary: false, data: bytes } };
    }
    const ref = this.nextRef();
    const base = Buffer.from(`[null,"${ref}","phoenix","heartbeat",{}]`);
    let bytes = base;
    if (size > base.length) {
      bytes = Buffer.alloc(size, 0x20);
      bytes[0] = 0x5b; // '['
      base.copy(bytes, size - base.length + 1, 1);
    } else if (size < base.length) {
      this.notes.push(`phoenix mode: a ${size}-byte message cannot be a heartbeat; sent the bare ${base.length}-byte heartbeat`);
    }
    return { parts: [bytes], bytes, expect: { type: 'reply', ref } };
  }

  // A binary message and its expected echo (echo mode only).
  binarySized(size, filler = '\xfe') {
    const bytes = repeatTo(Buffer.from(filler, 'latin1'), size);
    return { bytes, expect: { type: 'message', binary: true, data: bytes } };
  }
}

export function repeatTo(pattern, size) {
  const out = Buffer.allocUnsafe(size);
  if (size === 0) return out;
  let filled = Math.min(pattern.length, size);
  pattern.copy(out, 0, 0, filled);
  while (filled < size) {
    const n = Math.min(filled, size - filled);
    out.copy(out, filled, 0, n);
    filled += n;
  }
  return out;
}

// Runs one case definition; resolves with its report entry.
export async function runCase(def, opts) {
  const t0 = performance.now();
  const base = { description: def.description, expectation: def.expectation };
  if (def.custom) {
    let r;
    try {
      r = await def.custom(opts);
    } catch (e) {
      r = { behavior: 'FAILED', behaviorClose: 'FAILED', result: `client error: ${e.stack || e}`, resultClose: '' };
    }
    return { ...base, ...r, durationMs: Math.round(performance.now() - t0) };
  }
  const ctx = new CaseContext(def, opts);
  const conn = new Conn({ host: opts.host, port: opts.port, path: opts.path, ...(def.conn || {}) });
  ctx.attach(conn);
  let openOpts = {};
  if (def.beforeOpen) openOpts = def.beforeOpen(ctx) || {};
  try {
    await conn.open(openOpts);
  } catch (e) {
    return {
      ...base,
      behavior: 'FAILED',
      behaviorClose: 'FAILED',
      result: `opening handshake failed: ${e.message}`,
      resultClose: '',
      durationMs: Math.round(performance.now() - t0),
      events: [],
      wire: conn.wire,
    };
  }
  let clientError = null;
  const hardMs = (def.timeoutMs || 30000) * opts.timeoutScale;
  const hard = setTimeout(() => {
    ctx.notes.push(`hard timeout after ${hardMs} ms: client dropped TCP`);
    conn.drop();
  }, hardMs);
  try {
    await def.run(ctx);
  } catch (e) {
    clientError = e;
    conn.drop();
  }
  await conn.tcpClosed;
  clearTimeout(hard);
  if (def.after) {
    try {
      await def.after(ctx);
    } catch (e) {
      clientError = clientError || e;
    }
  }
  const verdict = judge({
    received: ctx.received,
    expected: ctx.expected,
    expectedClose: ctx.expectedClose,
    conn,
    override: ctx.override,
    wrongCodeFailsBehavior: def.wrongCodeFailsBehavior,
    informational: def.informational,
  });
  if (clientError) {
    verdict.behavior = 'FAILED';
    verdict.result = `client error: ${clientError.stack || clientError}`;
  }
  if (ctx.extraVerdict) ctx.extraVerdict(verdict);
  return {
    ...base,
    ...verdict,
    durationMs: Math.round(performance.now() - t0),
    events: ctx.received.map(describeEvent),
    expected: Object.fromEntries(Object.entries(ctx.expected).map(([k, v]) => [k, v.map(describeEvent)])),
    expectedClose: ctx.expectedClose,
    closedByMe: conn.closedByMe,
    wasClean: conn.wasClean,
    droppedByMe: conn.droppedByMe,
    closeReceived: conn.closeReceived,
    remoteCloseCode: conn.remoteCloseCode,
    remoteCloseReason: conn.remoteCloseReason,
    localCloseCode: conn.localCloseCode,
    violations: conn.violations,
    socketError: conn.socketError || null,
    notes: ctx.notes,
    ...(Object.keys(ctx.extra).length ? { measured: ctx.extra } : {}),
    wire: conn.wire,
  };
}
