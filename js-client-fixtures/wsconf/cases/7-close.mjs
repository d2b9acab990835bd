// Autobahn 7.x Close Handling. 7.1 a message then Close, two Closes, a Ping
// or text after Close, Close inside a fragmented message, 256K message then
// Close (informational); 7.3 Close payloads of 0, 1, 2, 2+reason, 125 and
// 126 bytes; 7.5.1 a reason that is not UTF-8; 7.7 valid codes (answered
// with 1000 or the echoed code); 7.9 invalid codes (1002 or a TCP drop);
// 7.13 codes 5000 and 65535 (informational). A wrong close code also fails
// the behavior (as Autobahn's 7.x cases do).
import { OP } from '../frame.mjs';
import { CODE } from '../context.mjs';

const B = (s) => Buffer.from(s, 'latin1');
const CLEAN = { closedByMe: true, codes: [CODE.NORMAL], requireClean: true };
const INVALID_REASON = Buffer.from('cebae1bdb9cf83cebcceb5eda080656469746564', 'hex');

function closeCase(id, description, expectation, expectedClose, send, extra = {}) {
  return {
    id,
    description,
    expectation,
    suppressClose: true,
    wrongCodeFailsBehavior: true,
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...expectedClose };
      send(ctx);
      ctx.killAfter(1);
    },
    ...extra,
  };
}

export const cases = [
  {
    id: '7.1.1',
    description: 'Send a message followed by a close frame',
    expectation: 'Echoed message followed by clean close with normal code.',
    wrongCodeFailsBehavior: true,
    run(ctx) {
      const m = ctx.text('Hello World!');
      ctx.expected.OK = [m.expect];
      ctx.expectedClose = { ...CLEAN };
      ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes });
      ctx.killAfter(1);
    },
  },
  closeCase('7.1.2', 'Send two close frames', 'Clean close with normal code. Second close frame ignored.', CLEAN, (ctx) => {
    ctx.sendClose(CODE.NORMAL);
    ctx.sendFrame({ opcode: OP.CLOSE });
  }),
  closeCase('7.1.3', 'Send a ping after close message', 'Clean close with normal code, no pong.', CLEAN, (ctx) => {
    ctx.sendClose(CODE.NORMAL);
    ctx.sendFrame({ opcode: OP.PING });
  }),
  closeCase('7.1.4', 'Send text message after sending a close frame.', 'Clean close with normal code. Text message ignored.', CLEAN, (ctx) => {
    ctx.sendClose(CODE.NORMAL);
    ctx.sendFrame({ opcode: OP.TEXT, payload: ctx.text('Hello World!').bytes });
  }),
  closeCase('7.1.5', 'Send message fragment1 followed by close then fragment', 'Clean close with normal code.', CLEAN, (ctx) => {
    const m = ctx.textParts(['fragment1', 'fragment2']);
    ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.parts[0] });
    ctx.sendClose(CODE.NORMAL);
    ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: m.parts[1] });
  }),
  {
    id: '7.1.6',
    description: 'Send 256K message followed by close then a ping',
    expectation: 'Case outcome depends on implementation defined close behavior. Message and close frame are sent back to back. If the close frame is processed before the text message write is complete (as can happen in asynchronous processing models) the close frame is processed first and the text message may not be received or may only be partially received.',
    suppressClose: true,
    informational: true,
    run(ctx) {
      const big = ctx.textSized(256 * 1024, 'BAsd7&jh23');
      const m = ctx.text('Hello World!');
      ctx.expected.OK = [m.expect];
      ctx.expected['NON-STRICT'] = [];
      ctx.expectedClose = { ...CLEAN };
      ctx.sendFrame({ opcode: OP.TEXT, payload: big.bytes });
      ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes });
      ctx.sendClose(CODE.NORMAL);
      ctx.sendFrame({ opcode: OP.PING });
      ctx.killAfter(1);
    },
  },
  closeCase('7.3.1', 'Send a close frame with payload length 0 (no close code, no close reason)', 'Clean close with normal code.', CLEAN,
    (ctx) => ctx.sendCloseFrame()),
  closeCase('7.3.2', 'Send a close frame with payload length 1', 'Clean close with protocol error or drop TCP.',
    { closedByMe: true, codes: [CODE.PROTOCOL_ERROR], requireClean: false }, (ctx) => ctx.sendCloseFrame(null, B('a'))),
  closeCase('7.3.3', 'Send a close frame with payload length 2 (regular close with a code)', 'Clean close with normal code.', CLEAN,
    (ctx) => ctx.sendClose(CODE.NORMAL)),
  closeCase('7.3.4', 'Send a close frame with close code and close reason', 'Clean close with normal code.', CLEAN,
    (ctx) => ctx.sendClose(CODE.NORMAL, 'Hello World!')),
  closeCase('7.3.5', 'Send a close frame with close code and close reason of maximum length (123)', 'Clean close with normal code.', CLEAN,
    (ctx) => ctx.sendClose(CODE.NORMAL, '*'.repeat(123))),
  closeCase('7.3.6', 'Send a close frame with close code and close reason which is too long (124) - total frame payload 126 octets',
    'Clean close with protocol error code or dropped TCP connection.',
    { closedByMe: true, codes: [CODE.PROTOCOL_ERROR], requireClean: false }, (ctx) => ctx.sendCloseFrame(CODE.NORMAL, '*'.repeat(124))),
  closeCase('7.5.1', 'Send a close frame with invalid UTF8 payload', 'Clean close with protocol error or invalid utf8 code or dropped TCP.',
    { closedByMe: true, codes: [CODE.PROTOCOL_ERROR, CODE.INVALID_PAYLOAD], requireClean: false },
    (ctx) => ctx.sendCloseFrame(CODE.NORMAL, INVALID_REASON)),
  ...[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].map((code, i) => closeCase(
    `7.7.${i + 1}`, `Send close with valid close code ${code}`, 'Clean close with normal or echoed code',
    { closedByMe: true, codes: [CODE.NORMAL, code], requireClean: true }, (ctx) => ctx.sendCloseFrame(code))),
  ...[0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].map((code, i) => closeCase(
    `7.9.${i + 1}`, `Send close with invalid close code ${code}`, 'Clean close with protocol error code or drop TCP',
    { closedByMe: true, codes: [CODE.PROTOCOL_ERROR], requireClean: false }, (ctx) => ctx.sendCloseFrame(code))),
  ...[5000, 65535].map((code, i) => closeCase(
    `7.13.${i + 1}`, `Send close with close code ${code}`, 'Actual events are undefined by the spec.',
    { closedByMe: true, codes: [CODE.NORMAL, code, CODE.PROTOCOL_ERROR], requireClean: false },
    (ctx) => ctx.sendCloseFrame(code), { informational: true, wrongCodeFailsBehavior: false })),
];
