// Raw clients for wire-level tests.
//
// RawWs: a WebSocket client on `ws` that sends arbitrary text/binary frames
// (including text frames whose bytes are not UTF-8) and exposes every frame
// the server sends, byte for byte, plus the close code.
//
// rawUpgrade / encodeFrame / FrameReader: a tiny RFC 6455 client on plain
// TCP, for what `ws` cannot produce (e.g. a frame in the same TCP write as
// the upgrade request).
//
// httpRequest: one HTTP request over TCP that resolves as soon as the whole
// response (head + Content-Length body) is in, and says whether the server
// closed the connection afterwards.
import net from 'node:net';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { withTimeout } from './server.mjs';

// A FIFO of values that callers await one at a time.
class Inbox {
  constructor() { this.items = []; this.waiters = []; this.failure = null; }
  put(v) {
    const w = this.waiters.shift();
    if (w) w.resolve(v); else this.items.push(v);
  }
  fail(err) {
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
  take(ms, what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.failure) return Promise.reject(this.failure);
    let waiter;
    const p = new Promise((resolve, reject) => { waiter = { resolve, reject }; this.waiters.push(waiter); });
    return withTimeout(p, ms, what).catch((e) => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }
}

// `query` is the raw query string (without '?'). Resolves once open; rejects
// with { status } if the upgrade is answered with another status.
export function rawWs(server, query, { path = '/socket/websocket', ms = 5000, wsOptions = {} } = {}) {
  const url = `ws://127.0.0.1:${server.port}${path}?${query}`;
  const ws = new WebSocket(url, wsOptions);
  const client = new RawWs(ws);
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (req, res) => {
      const err = Object.assign(new Error(`upgrade answered ${res.statusCode}`), { status: res.statusCode });
      res.resume();
      ws.terminate();
      reject(err);
    });
    ws.once('error', reject);
  }), ms, 'raw ws open');
}

export class RawWs {
  constructor(ws) {
    this.ws = ws;
    this.inbox = new Inbox();
    this.received = [];
    this.closeInfo = null;
    this.errors = [];
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
      const msg = { data: buf, isBinary, text: isBinary ? null : buf.toString('utf8') };
      this.received.push(msg);
      this.inbox.put(msg);
    });
    ws.on('error', (e) => { this.errors.push(e); });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        this.inbox.fail(Object.assign(new Error(`socket closed with ${code}`), { closeInfo: this.closeInfo }));
        resolve(this.closeInfo);
      });
    });
  }

  get isOpen() { return this.ws.readyState === WebSocket.OPEN; }

  send(text) { this.ws.send(text); }
  sendJson(value) { this.ws.send(JSON.stringify(value)); }
  sendBinary(buf) { this.ws.send(buf, { binary: true }); }
  // A text frame carrying `buf` as is (ws does not validate outgoing UTF-8).
  sendTextBytes(buf) { this.ws.send(buf, { binary: false }); }

  // The next frame from the server: { data, isBinary, text }.
  next(ms = 5000) { return this.inbox.take(ms, 'raw ws message'); }
  async nextText(ms = 5000) {
    const m = await this.next(ms);
    if (m.isBinary) throw new Error(`expected a text frame, got binary ${m.data.toString('hex')}`);
    return m.text;
  }
  async nextJson(ms = 5000) { return JSON.parse(await this.nextText(ms)); }

  // Resolves with { code, reason } of the close.
  waitClosed(ms = 5000) { return withTimeout(this.closed, ms, 'raw ws close'); }

  // Closes and waits for the close handshake (or terminates after 2 s).
  async close() {
    if (this.closeInfo) return this.closeInfo;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    try {
      return await withTimeout(this.closed, 2000, 'close');
    } catch {
      this.ws.terminate();
      return this.closed;
    }
  }
}

// Joins `topic` on a V2 raw socket with join_ref = ref = `ref`; resolves with the reply array.
export async function rawJoinV2(client, topic, ref, payload = {}) {
  client.sendJson([ref, ref, topic, 'phx_join', payload]);
  return client.nextJson();
}

// ---- RFC 6455 frames over plain TCP ----

export function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true } = {}) {
  payload = Buffer.from(payload);
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.from([(fin ? 0x80 : 0) | opcode, (mask ? 0x80 : 0) | len]);
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = (mask ? 0x80 : 0) | 126; head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = (mask ? 0x80 : 0) | 127; head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

// Incremental parser of server frames: push(bytes) -> complete frames.
export class FrameReader {
  constructor() { this.buf = Buffer.alloc(0); }
  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    const frames = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (b.length < 4) break; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) break; len = Number(b.readBigUInt64BE(2)); off = 10; }
      const masked = (b[1] & 0x80) !== 0;
      if (masked) off += 4;
      if (b.length < off + len) break;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) {
        const key = b.subarray(off - 4, off);
        for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
      }
      frames.push({ fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, masked, payload });
      this.buf = b.subarray(off + len);
    }
    return frames;
  }
}

export const SAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

export function upgradeRequest(port, query, { key = SAMPLE_KEY, path = '/socket/websocket', extraHeaders = '' } = {}) {
  return `GET ${path}?${query} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
    `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: ${key}\r\n${extraHeaders}\r\n`;
}

// Opens TCP, writes `request` (+ `after`, in the same write), parses the
// response head, then the frames that follow it.
// Resolves { status, headers, head, nextFrame(ms), write(buf), closed, destroy() }.
export function rawUpgrade(port, request, after = Buffer.alloc(0), ms = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const inbox = new Inbox();
    const reader = new FrameReader();
    let head = null;
    let pending = Buffer.alloc(0);
    const closed = new Promise((r) => sock.on('close', () => { inbox.fail(new Error('tcp closed')); r(); }));
    sock.on('error', (e) => { inbox.fail(e); if (!head) reject(e); });
    sock.on('connect', () => sock.write(Buffer.concat([Buffer.from(request, 'latin1'), Buffer.from(after)])));
    sock.on('data', (d) => {
      if (!head) {
        pending = Buffer.concat([pending, d]);
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = pending.subarray(0, end).toString('latin1');
        const lines = text.split('\r\n');
        const m = lines[0].match(/^HTTP\/1\.1 (\d{3})/);
        const headers = {};
        for (const line of lines.slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        head = { status: m ? Number(m[1]) : 0, headers, head: text };
        d = pending.subarray(end + 4);
        resolve({
          ...head,
          nextFrame: (t = 5000) => inbox.take(t, 'raw tcp frame'),
          write: (buf) => sock.write(buf),
          closed,
          destroy: () => sock.destroy(),
        });
      }
      for (const f of reader.push(d)) inbox.put(f);
    });
  }), ms, 'raw upgrade');
}

// One HTTP request; resolves { status, headers, body, closedAfter } where
// closedAfter() resolves once the server closes the connection.
export function httpRequest(port, request, ms = 5000) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let done = false;
    const closed = new Promise((r) => sock.on('close', r));
    const finish = (force) => {
      if (done) return;
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) { if (force) { done = true; resolve({ status: 0, headers: {}, body: data, raw: data, closedAfter: () => closed }); } return; }
      const text = data.subarray(0, end).toString('latin1');
      const lines = text.split('\r\n');
      const m = lines[0].match(/^HTTP\/1\.1 (\d{3})/);
      const headers = {};
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      const status = m ? Number(m[1]) : 0;
      // 1xx, 204 and 304 carry no body (after a 101 the bytes are frames).
      const cl = (status >= 100 && status < 200) || status === 204 || status === 304 ? '0' : headers['content-length'];
      const body = data.subarray(end + 4);
      if (cl !== undefined && body.length < Number(cl) && !force) return;
      if (cl === undefined && !force) return;
      done = true;
      resolve({
        status, headers, head: text,
        body: cl !== undefined ? body.subarray(0, Number(cl)) : body,
        raw: data,
        closedAfter: (t = 5000) => withTimeout(closed, t, 'server close after response'),
        destroy: () => sock.destroy(),
      });
    };
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d) => { data = Buffer.concat([data, d]); finish(false); });
    sock.on('error', (e) => { if (!done) reject(e); });
    sock.on('close', () => finish(true));
  }), ms, 'http request');
}
