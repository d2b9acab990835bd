import { startServer, signToken, upgradeStatus, rawHttp } from './lib/server.mjs';
import { rawWs, httpRequest, rawUpgrade, upgradeRequest, encodeFrame } from './lib/raw.mjs';
const s = await startServer();
console.log(s.stdout());
const tok = signToken(42);
const q = `token=${encodeURIComponent(tok)}&vsn=2.0.0`;
const c = await rawWs(s, q);
const show = async (label, out) => { c.send(out); try { console.log(label, (await c.next(1000)).text); } catch (e) { console.log(label, 'ERR', e.message); } };
await show('hb', '[null,"7","phoenix","heartbeat",{}]');
await show('unk', '["3","3","nope:1","phx_join",{}]');
await show('join', '["1","1","room:a","phx_join",{}]');
c.send('["2","2","room:a","phx_join",{}]'); console.log('dup', (await c.next()).text, (await c.next()).text);
await show('leave-unknown', '["9","10","room:zz","phx_leave",{}]');
await show('stale', '["1","11","room:a","x",{}]');
await show('nonjoined', '["5","12","room:q","x",{}]');
await show('numref', '[null,7,"phoenix","heartbeat",{}]');
await show('numjoin', '[1,1,"room:n","phx_join",{}]');
await show('big', '["2","13","room:a","ping",{"n":12345678901234567890}]');
c.send('["2","14","room:a","ev",{"n":12345678901234567890}]'); console.log('bc', (await c.next()).text, (await c.next()).text);
await show('user', '["20","20","user:43","phx_join",{}]');
await show('user', '["21","21","user:42","phx_join",{}]');
for (const [l, rq] of [['404', 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n'], ['plain', `GET /socket/websocket?${q} HTTP/1.1\r\nHost: a\r\n\r\n`], ['post', `POST /socket/websocket?${q} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n`], ['bad', 'GARBAGE\r\n\r\n'], ['403', upgradeRequest(s.port, 'token=x&vsn=2.0.0')], ['nokey', upgradeRequest(s.port, q).replace(/Sec-WebSocket-Key:[^\r]*\r\n/, '')], ['emptykey', upgradeRequest(s.port, q, {key: ''})], ['shortkey', upgradeRequest(s.port, q, {key: 'abc'})], ['v8', upgradeRequest(s.port, q).replace('Version: 13', 'Version: 8')], ['bighdr', `GET /x HTTP/1.1\r\nHost: a\r\nX-A: ${'a'.repeat(9000)}\r\n\r\n`], ['many', `GET /x HTTP/1.1\r\nHost: a\r\n${Array.from({length: 120}, (_, i) => `X-${i}: 1\r\n`).join('')}\r\n`]]) {
  try { const r = await httpRequest(s.port, rq, 3000); console.log(l, JSON.stringify(r.head), JSON.stringify(r.body.toString())); } catch (e) { console.log(l, e.message); }
}
function r0(x) { return x; }
const u = await rawUpgrade(s.port, upgradeRequest(s.port, q), encodeFrame(1, '[null,"7","phoenix","heartbeat",{}]'));
console.log(u.head); const f = await u.nextFrame(); console.log(f.opcode, f.payload.toString()); u.destroy();
await c.close();
console.log(await s.stop());
