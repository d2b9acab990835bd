// Raw HTTP/1.1 on a TCP socket for the tests that count and order
// responses byte by byte (pipelining, HEAD, bodies refused from the head),
// and the /proc figures they bound memory with.
import net from 'node:net';
import fs from 'node:fs';
import { withTimeout } from './server.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const statusKiB = (pid, field) => Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+)`))[1]);
export const rssKiB = (pid) => statusKiB(pid, 'VmRSS');
// Peak RSS since the start (or since the last resetPeak).
export const peakKiB = (pid) => statusKiB(pid, 'VmHWM');
// Resets VmHWM to the current RSS (Linux: "5" in clear_refs); false if refused.
export function resetPeak(pid) {
  try { fs.writeFileSync(`/proc/${pid}/clear_refs`, '5'); return true; } catch { return false; }
}

// ---- a raw HTTP/1.1 connection whose responses are parsed one by one ----

export class RawHttp {
  // `paused`: the socket never reads until resume() (a client that does not
  // read what it is sent).
  static open(port, { paused = false, ms = 5000 } = {}) {
    return withTimeout(new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      if (paused) sock.pause();
      const conn = new RawHttp(sock);
      sock.once('connect', () => resolve(conn));
      sock.once('error', reject);
    }), ms, 'raw http connect');
  }

  constructor(sock) {
    this.sock = sock;
    this.chunks = []; // received, not yet parsed (joined only when parsing)
    this.pending = 0; // their total length
    this.need = 0; // parse again once `pending` reaches this
    this.count = 0; // responses parsed so far
    this.ended = false;
    this.error = null;
    this.wake = null;
    sock.on('data', (d) => {
      this.chunks.push(d);
      this.pending += d.length;
      if (this.pending >= this.need) this.poke();
    });
    sock.on('error', (e) => { this.error = e; });
    this.closed = new Promise((resolve) => sock.on('close', () => { this.ended = true; this.poke(); resolve(); }));
  }

  poke() { const w = this.wake; this.wake = null; if (w) w(); }

  // Resolves once the bytes are handed to the kernel (or the write failed:
  // the server may close a connection whose body it refused).
  write(data) {
    return new Promise((resolve) => {
      if (this.sock.destroyed) { resolve(false); return; }
      this.sock.write(data, (err) => resolve(!err));
    });
  }

  pause() { this.sock.pause(); }
  resume() { this.sock.resume(); }
  destroy() { this.sock.destroy(); }

  // Parses one response from the front of the buffer, or returns null if it
  // is not all there yet. `head`: it answers a HEAD request (no body).
  parse(head) {
    if (this.pending < this.need || this.pending === 0) return null;
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    const buf = this.chunks[0];
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) { this.need = this.pending + 1; return null; }
    const text = buf.subarray(0, end).toString('latin1');
    const lines = text.split('\r\n');
    const m = lines[0].match(/^HTTP\/1\.1 (\d{3}) /);
    if (!m) throw new Error(`response ${this.count + 1} does not start with a status line: ${JSON.stringify(buf.subarray(0, 80).toString('latin1'))}`);
    const status = Number(m[1]);
    const headers = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    let len = 0;
    if (!head && status !== 204 && status !== 304 && !(status >= 100 && status < 200)) {
      if (headers['content-length'] === undefined) throw new Error(`response ${this.count + 1} has no content-length: ${text}`);
      len = Number(headers['content-length']);
    }
    if (buf.length < end + 4 + len) { this.need = end + 4 + len; return null; }
    const body = Buffer.from(buf.subarray(end + 4, end + 4 + len));
    const rest = buf.subarray(end + 4 + len);
    this.chunks = rest.length ? [rest] : [];
    this.pending = rest.length;
    this.need = 0;
    this.count++;
    let json = null;
    try { json = JSON.parse(body.toString('utf8')); } catch { json = null; }
    return { status, headers, head: text, body, text: body.toString('utf8'), json };
  }

  // The next response; rejects when the connection closes first or after `ms`.
  async next(ms = 5000, { head = false } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = this.parse(head);
      if (r) return r;
      if (this.ended) throw new Error(`connection closed after ${this.count} responses (${this.pending} bytes of a partial one)`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response ${this.count + 1} after ${ms} ms (${this.pending} bytes pending)`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
    }
  }

  waitClosed(ms = 5000) { return withTimeout(this.closed, ms, 'server close'); }
}
