// Autobahn 5.x Fragmentation: fragmented control frames fail (5.1, 5.2);
// text in two fragments is echoed whether sent in one write, per frame or
// octet-wise (5.3-5.5), also with a Ping in between that must be answered
// before the message completes (5.6-5.8); continuations with nothing to
// continue and data frames inside a fragmented message fail (5.9-5.18);
// 5.19/5.20 pause inside a fragmented message with Pings around the pause.
import { OP } from '../frame.mjs';
import { CODE } from '../context.mjs';

const B = (s) => Buffer.from(s, 'latin1');
const FAIL = { closedByMe: false, codes: [CODE.PROTOCOL_ERROR], requireClean: false };
const MODES = [[{}, ''], [{ sync: true }, ' Octets are sent in frame-wise chops.'], [{ chop: 1 }, ' Octets are sent in octet-wise chops.']];

function fragmentedControl(id, opcode, name) {
  return {
    id,
    description: `Send ${name} fragmented into 2 fragments.`,
    expectation: 'Connection is failed immediately, since control message MUST NOT be fragmented.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...FAIL };
      ctx.sendFrame({ opcode, fin: false, payload: B('fragment1') });
      ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: B('fragment2') });
      ctx.killAfter(1);
    },
  };
}

function twoFragments(n, [send, how], withPing) {
  return {
    id: `5.${n}`,
    description: `Send text Message fragmented into 2 fragments${withPing ? ', one ping with payload in-between' : ''}.${how}`,
    expectation: withPing ? "A pong is received, then the message is echo'ed back to us." : "Message is processed and echo'ed back to us.",
    run(ctx) {
      const m = ctx.textParts(['fragment1', 'fragment2']);
      const ping = B('ping payload');
      ctx.expected.OK = withPing ? [{ type: 'pong', data: ping }, m.expect] : [m.expect];
      ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.parts[0], ...send });
      if (withPing) ctx.sendFrame({ opcode: OP.PING, payload: ping, ...send });
      ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: m.parts[1], ...send });
      ctx.closeAfter(1);
    },
  };
}

function orphan(n, fin, [send]) {
  const chops = send.sync ? 'per-frame chops' : send.chop ? 'octet-wise chops' : 'one chop';
  return {
    id: `5.${n}`,
    description: `Send unfragmented Text Message after Continuation Frame with FIN = ${fin}, where there is nothing to continue, sent in ${chops}.`,
    expectation: 'The connection is failed immediately, since there is no message to continue.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...FAIL };
      ctx.sendFrame({ opcode: OP.CONT, fin, payload: B('non-continuation payload'), ...send });
      ctx.sendFrame({ opcode: OP.TEXT, fin: true, payload: B('Hello, world!'), ...send });
      ctx.killAfter(1);
    },
  };
}

function repeated(n, firstFin) {
  return {
    id: `5.${n}`,
    description: `Repeated 2x: Continuation Frame with FIN = ${firstFin} (where there is nothing to continue), then text Message fragmented into 2 fragments.`,
    expectation: 'The connection is failed immediately, since there is no message to continue.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...FAIL };
      for (let i = 0; i < 2; i++) {
        ctx.sendFrame({ opcode: OP.CONT, fin: firstFin, payload: B('fragment1') });
        ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: B('fragment2') });
        ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: B('fragment3') });
      }
      ctx.killAfter(1);
    },
  };
}

function pausedFragments(n, sync) {
  return {
    id: `5.${n}`,
    description: `A fragmented text message is sent in multiple frames. After sending the first 2 frames of the text message, a Ping is sent. Then we wait 1s, then we send 2 more text fragments, another Ping and then the final text fragment. Everything is legal.${sync ? ' All frames are sent with SYNC = True (each frame in its own write).' : ''}`,
    expectation: "The peer immediately answers the first Ping before it has received the last text message fragment. The peer pong's back the Ping's payload exactly, and echo's the payload of the fragmented message back to us.",
    run(ctx) {
      const m = ctx.textParts(['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5']);
      const pings = [B('pongme 1!'), B('pongme 2!')];
      ctx.expected.OK = [{ type: 'pong', data: pings[0] }, { type: 'pong', data: pings[1] }, m.expect];
      ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.parts[0], sync });
      ctx.sendFrame({ opcode: OP.CONT, fin: false, payload: m.parts[1], sync });
      ctx.sendFrame({ opcode: OP.PING, payload: pings[0], sync });
      ctx.continueLater(1, () => {
        ctx.sendFrame({ opcode: OP.CONT, fin: false, payload: m.parts[2], sync });
        ctx.sendFrame({ opcode: OP.CONT, fin: false, payload: m.parts[3], sync });
        ctx.sendFrame({ opcode: OP.PING, payload: pings[1], sync });
        ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: m.parts[4], sync });
        ctx.closeAfter(1);
      });
    },
    timeoutMs: 30000,
  };
}

export const cases = [
  fragmentedControl('5.1', OP.PING, 'Ping'),
  fragmentedControl('5.2', OP.PONG, 'Pong'),
  ...MODES.map((mode, i) => twoFragments(3 + i, mode, false)),
  ...MODES.map((mode, i) => twoFragments(6 + i, mode, true)),
  ...MODES.map((mode, i) => orphan(9 + i, true, mode)),
  ...MODES.map((mode, i) => orphan(12 + i, false, mode)),
  {
    id: '5.15',
    description: 'Send text Message fragmented into 2 fragments, then Continuation Frame with FIN = false where there is nothing to continue, then unfragmented Text Message, all sent in one chop.',
    expectation: 'The connection is failed immediately, since there is no message to continue.',
    run(ctx) {
      const m = ctx.textParts(['fragment1', 'fragment2']);
      ctx.expected.OK = [m.expect];
      ctx.expected['NON-STRICT'] = [];
      ctx.expectedClose = { ...FAIL };
      ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.parts[0] });
      ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: m.parts[1] });
      ctx.sendFrame({ opcode: OP.CONT, fin: false, payload: B('fragment3') });
      ctx.sendFrame({ opcode: OP.TEXT, fin: true, payload: B('fragment4') });
      ctx.killAfter(1);
    },
  },
  repeated(16, false),
  repeated(17, true),
  {
    id: '5.18',
    description: 'Send text Message fragmented into 2 fragments, with both frame opcodes set to text, sent in one chop.',
    expectation: 'The connection is failed immediately, since all data frames after the initial data frame must have opcode 0.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...FAIL };
      ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: B('fragment1') });
      ctx.sendFrame({ opcode: OP.TEXT, fin: true, payload: B('fragment2') });
      ctx.killAfter(1);
    },
  },
  pausedFragments(19, false),
  pausedFragments(20, true),
];
