// RFC 6455 frames for the conformance client: an encoder that can produce
// any frame, legal or not (reserved bits and opcodes, unmasked frames, lying
// or non-minimal lengths), and a streaming decoder for what the server sends
// that flags everything a client must reject (RFC 6455 section 5).
import crypto from 'node:crypto';
import { isUtf8 } from 'node:buffer';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

export const isControl = (opcode) => (opcode & 0x8) !== 0;

// XORs `data` with the 4-byte `key`, starting at key offset `offset`.
export function maskBytes(data, key, offset = 0) {
  const out = Buffer.allocUnsafe(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ key[(i + offset) & 3];
  return out;
}

// Builds one frame. Options:
//   fin (true), rsv (0-7), opcode (0-15), payload (Buffer|string),
//   mask: true (random key), false (unmasked) or a 4-byte Buffer;
//   len: the declared payload length (BigInt or number) when it must differ
//        from the payload actually sent (lying headers);
//   lenBits: 7, 16 or 64 to force an encoding of the length (non-minimal
//        encodings); by default the minimal one.
export function encodeFrame({
  fin = true, rsv = 0, opcode, payload = Buffer.alloc(0), mask = true, len, lenBits,
} = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const declared = BigInt(len === undefined ? data.length : len);
  let bits = lenBits;
  if (bits === undefined) bits = declared < 126n ? 7 : declared <= 0xffffn ? 16 : 64;
  const key = mask === true ? crypto.randomBytes(4) : mask === false ? null : mask;
  const hlen = 2 + (bits === 16 ? 2 : bits === 64 ? 8 : 0) + (key ? 4 : 0);
  const out = Buffer.allocUnsafe(hlen + data.length);
  out[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0xf);
  const maskBit = key ? 0x80 : 0;
  let p = 2;
  if (bits === 7) {
    out[1] = maskBit | Number(declared & 0x7fn);
  } else if (bits === 16) {
    out[1] = maskBit | 126;
    out.writeUInt16BE(Number(declared & 0xffffn), 2);
    p = 4;
  } else {
    out[1] = maskBit | 127;
    out.writeBigUInt64BE(BigInt.asUintN(64, declared), 2);
    p = 10;
  }
  if (key) {
    key.copy(out, p);
    p += 4;
    for (let i = 0; i < data.length; i++) out[p + i] = data[i] ^ key[i & 3];
  } else {
    data.copy(out, p);
  }
  return out;
}

// The payload of a Close frame: no code (null) gives an empty payload
// unless `reason` is given (Autobahn's sendCloseFrame does the same: a
// reason alone makes a 1-byte or longer payload without a code).
export function closePayload(code, reason) {
  const r = reason === undefined || reason === null ? Buffer.alloc(0)
    : Buffer.isBuffer(reason) ? reason : Buffer.from(reason, 'utf8');
  if (code === null || code === undefined) return r;
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(code & 0xffff, 0);
  return Buffer.concat([b, r]);
}

// Close codes a peer may send (RFC 6455 7.4.1 and the IANA registry):
// 1000-1003, 1007-1014, 3000-4999.
export function isValidCloseCode(code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

// Streaming decoder of server frames. push(chunk) calls onFrame(frame) for
// every complete frame: { fin, rsv, opcode, masked, len, payload }. The
// payload is unmasked if the server (wrongly) masked it. Memory is linear
// in the payload: chunks are collected, never re-concatenated per read.
export class FrameReader {
  constructor(onFrame, { maxPayload = 1 << 30 } = {}) {
    this.onFrame = onFrame;
    this.maxPayload = maxPayload;
    this.hdr = Buffer.alloc(14);
    this.have = 0;
    this.need = 2;
    this.frame = null;
    this.parts = [];
    this.left = 0;
    this.error = null;
  }

  push(chunk) {
    let off = 0;
    while (off < chunk.length && !this.error) {
      if (this.frame === null) {
        const take = Math.min(this.need - this.have, chunk.length - off);
        chunk.copy(this.hdr, this.have, off, off + take);
        this.have += take;
        off += take;
        if (this.have < this.need) break;
        if (this.need === 2) {
          const l7 = this.hdr[1] & 0x7f;
          this.need = 2 + (l7 === 126 ? 2 : l7 === 127 ? 8 : 0) + ((this.hdr[1] & 0x80) ? 4 : 0);
          if (this.have < this.need) continue;
        }
        this.startFrame();
        if (this.left === 0) this.endFrame();
      } else {
        const take = Math.min(this.left, chunk.length - off);
        this.parts.push(chunk.subarray(off, off + take));
        this.left -= take;
        off += take;
        if (this.left === 0) this.endFrame();
      }
    }
  }

  startFrame() {
    const h = this.hdr;
    const l7 = h[1] & 0x7f;
    let len = l7;
    let p = 2;
    let minimal = true;
    if (l7 === 126) {
      len = h.readUInt16BE(2);
      p = 4;
      minimal = len >= 126;
    } else if (l7 === 127) {
      const big = h.readBigUInt64BE(2);
      p = 10;
      minimal = big >= 65536n && big < (1n << 63n);
      if (big > BigInt(this.maxPayload)) {
        this.error = `server frame declares ${big} bytes`;
        return;
      }
      len = Number(big);
    }
    const masked = (h[1] & 0x80) !== 0;
    this.frame = {
      fin: (h[0] & 0x80) !== 0,
      rsv: (h[0] >> 4) & 7,
      opcode: h[0] & 0xf,
      masked,
      minimal,
      key: masked ? Buffer.from(h.subarray(p, p + 4)) : null,
      len,
    };
    this.left = len;
    this.parts = [];
  }

  endFrame() {
    const f = this.frame;
    let payload = this.parts.length === 1 ? Buffer.from(this.parts[0]) : Buffer.concat(this.parts, f.len);
    if (f.key) payload = maskBytes(payload, f.key);
    f.payload = payload;
    this.frame = null;
    this.parts = [];
    this.have = 0;
    this.need = 2;
    this.onFrame(f);
  }
}

// Reassembles frames into messages and checks them as a client must.
// Calls handlers.message(opcode, payload), .ping(payload), .pong(payload),
// .close(code|null, reasonBuffer), and .violation(text) for anything a
// conforming server never sends.
export class MessageAssembler {
  constructor(handlers) {
    this.h = handlers;
    this.msgOpcode = null;
    this.parts = [];
    this.msgLen = 0;
  }

  frame(f) {
    const h = this.h;
    if (f.masked) return h.violation('server frame is masked');
    if (f.rsv) return h.violation(`server frame has RSV bits ${f.rsv}`);
    if (!f.minimal) return h.violation('server frame length is not minimally encoded');
    if ((f.opcode >= 3 && f.opcode <= 7) || f.opcode >= 11) {
      return h.violation(`server frame has reserved opcode ${f.opcode}`);
    }
    if (isControl(f.opcode)) {
      if (!f.fin) return h.violation('server control frame is fragmented');
      if (f.len > 125) return h.violation(`server control frame has ${f.len} bytes`);
      if (f.opcode === OP.PING) return h.ping(f.payload);
      if (f.opcode === OP.PONG) return h.pong(f.payload);
      const p = f.payload;
      if (p.length === 1) return h.violation('server Close payload has 1 byte');
      if (p.length >= 2) {
        const code = p.readUInt16BE(0);
        if (!isValidCloseCode(code)) return h.violation(`server Close code ${code} is not allowed`);
        const reason = p.subarray(2);
        if (!isUtf8(reason)) return h.violation('server Close reason is not UTF-8');
        return h.close(code, reason);
      }
      return h.close(null, Buffer.alloc(0));
    }
    if (f.opcode === OP.CONT) {
      if (this.msgOpcode === null) return h.violation('server continuation frame without a message');
    } else {
      if (this.msgOpcode !== null) return h.violation('server data frame inside a fragmented message');
      this.msgOpcode = f.opcode;
      this.parts = [];
      this.msgLen = 0;
    }
    if (f.payload.length) {
      this.parts.push(f.payload);
      this.msgLen += f.payload.length;
    }
    if (!f.fin) return undefined;
    const op = this.msgOpcode;
    const data = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.msgLen);
    this.msgOpcode = null;
    this.parts = [];
    this.msgLen = 0;
    if (op === OP.TEXT && !isUtf8(data)) return h.violation('server text message is not UTF-8');
    return h.message(op, data);
  }
}

export function sha1(buf) {
  return crypto.createHash('sha1').update(buf).digest('hex');
}

// A short printable form of bytes for reports: the text when it is short
// printable ASCII, else hex; long payloads as length and SHA-1.
export function describeBytes(buf, max = 64) {
  if (buf.length > max) return { len: buf.length, sha1: sha1(buf), head: buf.subarray(0, 16).toString('hex') };
  if (/^[\x20-\x7e]*$/.test(buf.toString('latin1'))) return { len: buf.length, text: buf.toString('latin1') };
  return { len: buf.length, hex: buf.toString('hex') };
}
