// One raw WebSocket client connection over TCP for the conformance client:
// the opening handshake built from parts (headers can be altered, the
// request split or followed by frames in the same write), then an ordered
// send queue with Autobahn's send modes (one write, per-frame writes,
// fixed-size chops, octet-wise chops) and the client side of the closing
// handshake as Autobahn's fuzzing client plays it, with the facts its
// verdict needs: who closed, whether cleanly, the peer's code, who dropped
// TCP.
import net from 'node:net';
import crypto from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { OP, encodeFrame, closePayload, FrameReader, MessageAssembler, describeBytes } from './frame.mjs';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const WIRE_LOG_MAX = 40;

export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

// The upgrade request. `headers` adds or (with a null value) removes fields.
export function upgradeRequest({ host, port, path, key, headers = {} }) {
  const fields = {
    Host: `${host}:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
  };
  for (const [k, v] of Object.entries(headers)) {
    if (v === null) delete fields[k];
    else fields[k] = v;
  }
  let head = `GET ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(fields)) head += `${k}: ${v}\r\n`;
  return Buffer.from(`${head}\r\n`, 'latin1');
}

// Parses a response head; returns { status, headers } or null if incomplete.
export function parseResponseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : 0, statusLine: lines[0], headers, headLen: end + 4 };
}

export class Conn {
  constructor({ host = '127.0.0.1', port, path = '/', headers = {}, serverDropTimeoutMs = 1000,
    closeHandshakeTimeoutMs = 1000, keepOpenOnEnd = false, replyToClose = true } = {}) {
    Object.assign(this, { host, port, path, headers, serverDropTimeoutMs, closeHandshakeTimeoutMs, keepOpenOnEnd, replyToClose });
    this.key = crypto.randomBytes(16).toString('base64');
    this.state = 'CONNECTING';
    this.closedByMe = false;
    this.wasClean = false;
    this.droppedByMe = false;
    this.serverDropped = false;
    this.closeSent = false;
    this.closeReceived = false;
    this.remoteCloseCode = null;
    this.remoteCloseReason = null;
    this.localCloseCode = null;
    this.violations = [];
    this.queue = [];
    this.pumping = false;
    this.idleWaiters = [];
    this.timers = new Set();
    this.handlers = { message() {}, ping() {}, pong() {} };
    this.wire = { sent: [], sentWrites: 0, sentBytes: 0, received: [], receivedFrames: 0 };
    this.tcpClosed = new Promise((resolve) => { this.resolveClosed = resolve; });
    this.closeFrame = new Promise((resolve) => { this.resolveCloseFrame = resolve; });
    this.assembler = new MessageAssembler({
      message: (op, data) => this.handlers.message(op, data),
      ping: (data) => {
        this.handlers.ping(data);
        if (this.state === 'OPEN') this.send(encodeFrame({ opcode: OP.PONG, payload: data }));
      },
      pong: (data) => this.handlers.pong(data),
      close: (code, reason) => this.onClose(code, reason),
      violation: (why) => this.violation(why),
    });
    this.reader = new FrameReader((f) => this.onFrame(f));
  }

  // Connects and completes the opening handshake. `pipelined` bytes go in
  // the same write as the request; `splitAt` writes the request in two
  // parts (the second after the first has left). Resolves with the
  // response head; rejects if the answer is not a valid 101.
  open({ pipelined = null, splitAt = null, timeoutMs = 5000 } = {}) {
    const req = upgradeRequest(this);
    return new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.drop();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`no handshake answer within ${timeoutMs} ms`)), timeoutMs);
      const sock = net.connect({ host: this.host, port: this.port, allowHalfOpen: true, noDelay: true });
      this.socket = sock;
      sock.on('error', (e) => {
        if (!settled) fail(e);
        this.socketError = this.socketError || e.code || e.message;
      });
      sock.on('close', () => this.onTcpClose());
      sock.on('end', () => this.onTcpEnd());
      sock.on('connect', async () => {
        sock.setNoDelay(true);
        const first = pipelined ? Buffer.concat([req, pipelined]) : req;
        if (splitAt !== null && splitAt > 0 && splitAt < first.length) {
          await this.writeRaw(first.subarray(0, splitAt));
          await tick();
          await this.writeRaw(first.subarray(splitAt));
        } else {
          await this.writeRaw(first);
        }
      });
      const onData = (chunk) => {
        if (this.state !== 'CONNECTING') return this.onBytes(chunk);
        buf = Buffer.concat([buf, chunk]);
        const head = parseResponseHead(buf);
        if (!head) {
          if (buf.length > 16384) fail(new Error('handshake response head too long'));
          return undefined;
        }
        this.response = head;
        const accept = acceptFor(this.key);
        const h = head.headers;
        let why = null;
        if (head.status !== 101) why = `answered ${head.statusLine}`;
        else if ((h.upgrade || '').toLowerCase() !== 'websocket') why = `upgrade header ${h.upgrade}`;
        else if (!(h.connection || '').toLowerCase().split(/\s*,\s*/).includes('upgrade')) why = `connection header ${h.connection}`;
        else if (h['sec-websocket-accept'] !== accept) why = `sec-websocket-accept ${h['sec-websocket-accept']}, expected ${accept}`;
        if (why) return fail(Object.assign(new Error(`handshake failed: ${why}`), { head }));
        settled = true;
        clearTimeout(timer);
        this.state = 'OPEN';
        const rest = buf.subarray(head.headLen);
        resolve(head);
        if (rest.length) this.onBytes(rest);
        return undefined;
      };
      sock.on('data', onData);
    });
  }

  // ---- sending ----

  writeRaw(buf) {
    const sock = this.socket;
    if (!sock || sock.destroyed || sock.writableEnded) return Promise.resolve(false);
    this.wire.sentWrites++;
    this.wire.sentBytes += buf.length;
    if (this.wire.sent.length < WIRE_LOG_MAX) {
      this.wire.sent.push({ len: buf.length, hex: buf.subarray(0, 48).toString('hex') });
    }
    return new Promise((resolve) => sock.write(buf, (err) => resolve(!err)));
  }

  // Queues bytes. Consecutive plain sends leave in one write (as the
  // frames of one Autobahn step share a TCP segment); `sync` sends the
  // bytes in their own write; `chop` splits them into writes of that size.
  // Every separate write waits for the previous one to leave and for one
  // event-loop turn, so that they travel as separate segments.
  send(buf, { sync = false, chop = 0 } = {}) {
    this.queue.push({ buf, sync, chop });
    if (!this.pumping) {
      this.pumping = true;
      queueMicrotask(() => this.pump());
    }
  }

  async pump() {
    while (this.queue.length) {
      if (!this.socket || this.socket.destroyed) {
        this.queue.length = 0;
        break;
      }
      const item = this.queue[0];
      if (!item.sync && !item.chop) {
        const bufs = [];
        while (this.queue.length && !this.queue[0].sync && !this.queue[0].chop) bufs.push(this.queue.shift().buf);
        await this.writeRaw(bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));
        continue;
      }
      this.queue.shift();
      const step = item.chop || item.buf.length || 1;
      for (let i = 0; i < item.buf.length; i += step) {
        if (this.socket.destroyed) break;
        await this.writeRaw(item.buf.subarray(i, i + step));
        await tick();
      }
    }
    this.pumping = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  // Resolves once everything queued so far has been written.
  flushed() {
    if (!this.pumping && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // Starts (or answers) the closing handshake with a Close frame. As in
  // Autobahn's sendCloseFrame, the payload is not validated, and a second
  // Close of our own while closing is not sent.
  sendCloseFrame(code = null, reason = null, { isReply = false, sync = false, chop = 0 } = {}) {
    if (this.state === 'CLOSED' || this.state === 'CONNECTING') return;
    if (this.state === 'CLOSING' && !isReply) return;
    if (this.closeSent) return;
    this.closeSent = true;
    this.localCloseCode = code;
    this.send(encodeFrame({ opcode: OP.CLOSE, payload: closePayload(code, reason) }), { sync, chop });
    if (!isReply) {
      this.closedByMe = true;
      this.state = 'CLOSING';
      // Our Close must be answered within the handshake timeout.
      this.after(this.closeHandshakeTimeoutMs, () => {
        if (!this.closeReceived) this.drop();
      });
    }
  }

  // ---- receiving ----

  onBytes(chunk) {
    this.reader.push(chunk);
    if (this.reader.error) this.violation(this.reader.error);
  }

  onFrame(f) {
    this.wire.receivedFrames++;
    if (this.wire.received.length < WIRE_LOG_MAX) {
      this.wire.received.push({ fin: f.fin, rsv: f.rsv, opcode: f.opcode, masked: f.masked, len: f.len, payload: describeBytes(f.payload) });
    }
    if (this.closeReceived) {
      this.violation(`server sent a frame (opcode ${f.opcode}) after its Close`);
      return;
    }
    this.assembler.frame(f);
  }

  onClose(code, reason) {
    this.closeReceived = true;
    this.remoteCloseCode = code;
    this.remoteCloseReason = reason.toString('utf8');
    this.resolveCloseFrame();
    if (!this.replyToClose) return;
    if (this.state === 'OPEN') {
      // The server starts the closing handshake: echo its code.
      this.state = 'CLOSING';
      this.wasClean = true;
      this.sendCloseFrame(code, null, { isReply: true });
    } else if (this.state === 'CLOSING') {
      this.wasClean = true;
    }
    // The server should now close TCP (RFC 6455 7.1.1).
    this.after(this.serverDropTimeoutMs, () => this.drop());
  }

  violation(why) {
    this.violations.push(why);
    this.drop();
  }

  onTcpEnd() {
    if (!this.droppedByMe && this.state !== 'CLOSED') this.serverDropped = true;
    if (this.keepOpenOnEnd) return;
    this.flushed().then(() => {
      if (this.socket && !this.socket.destroyed) this.socket.end();
    });
  }

  onTcpClose() {
    if (this.state !== 'CLOSED' && !this.droppedByMe) this.serverDropped = true;
    this.state = 'CLOSED';
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.resolveClosed();
  }

  // Drops TCP from our side (counted against the server when it should
  // have closed first).
  drop() {
    if (!this.socket || this.socket.destroyed || this.state === 'CLOSED') return;
    if (!this.serverDropped) this.droppedByMe = true;
    this.socket.destroy();
  }

  after(ms, fn) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }
}
