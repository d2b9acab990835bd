// Autobahn 3.x Reserved Bits: RSV 1..7 on text, binary, ping (Autobahn's
// 3.6 sends a binary frame) and close frames, some after a valid message.
// No extension is negotiated, so the connection fails at once (1002); an
// echo of the earlier valid message is allowed, no Pong afterwards.
import { OP } from '../frame.mjs';
import { CODE } from '../context.mjs';

const HELLO = Buffer.from('Hello, world!');
const SMALL_BINARY = Buffer.from('00fffefdfcfb00ff', 'hex');
const FAIL = { closedByMe: false, codes: [CODE.PROTOCOL_ERROR], requireClean: false };

function single(id, description, frame) {
  return {
    id,
    description,
    expectation: 'The connection is failed immediately (1002/protocol error), since RSV must be 0, when no extension defining RSV meaning has been negotiated.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...FAIL };
      ctx.sendFrame(frame);
      ctx.killAfter(1);
    },
  };
}

function afterMessage(id, rsv, send, how) {
  return {
    id,
    description: `Send small text message, then send again with RSV = ${rsv}, then send Ping.${how}`,
    expectation: 'Echo for first message is received, but then connection is failed immediately, since RSV must be 0, when no extension defining RSV meaning has been negotiated. The Pong is not received.',
    run(ctx) {
      const m = ctx.text(HELLO);
      ctx.expected.OK = [m.expect];
      ctx.expected['NON-STRICT'] = [];
      ctx.expectedClose = { ...FAIL };
      ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes, ...send });
      ctx.sendFrame({ opcode: OP.TEXT, payload: HELLO, rsv, ...send });
      ctx.sendFrame({ opcode: OP.PING, ...send });
      ctx.killAfter(1);
    },
  };
}

export const cases = [
  single('3.1', 'Send small text message with RSV = 1.', { opcode: OP.TEXT, payload: HELLO, rsv: 1 }),
  afterMessage('3.2', 2, {}, ''),
  afterMessage('3.3', 3, { sync: true }, ' Octets are sent in frame-wise chops.'),
  afterMessage('3.4', 4, { chop: 1 }, ' Octets are sent in octet-wise chops.'),
  single('3.5', 'Send small binary message with RSV = 5.', { opcode: OP.BINARY, payload: SMALL_BINARY, rsv: 5 }),
  single('3.6', "Send Ping with RSV = 6 (as Autobahn's case code does, the frame sent is a binary frame with RSV = 6).",
    { opcode: OP.BINARY, payload: HELLO, rsv: 6 }),
  single('3.7', 'Send Close with RSV = 7.', { opcode: OP.CLOSE, rsv: 7 }),
];
