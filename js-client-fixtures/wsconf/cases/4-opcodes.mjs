// Autobahn 4.x Opcodes: reserved non-control opcodes 3-7 (4.1) and control
// opcodes 11-15 (4.2), with or without payload, some after a valid message
// and before a Ping. The connection fails at once (1002); the earlier echo
// is allowed, no Pong.
import { OP } from '../frame.mjs';
import { CODE } from '../context.mjs';

const HELLO = Buffer.from('Hello, world!');
const FAIL = { closedByMe: false, codes: [CODE.PROTOCOL_ERROR], requireClean: false };

function opcodeCases(sub, first, kind) {
  return [
    {
      id: `4.${sub}.1`,
      description: `Send frame with reserved ${kind} Opcode = ${first}.`,
      expectation: 'The connection is failed immediately.',
      run(ctx) {
        ctx.expected.OK = [];
        ctx.expectedClose = { ...FAIL };
        ctx.sendFrame({ opcode: first });
        ctx.killAfter(1);
      },
    },
    {
      id: `4.${sub}.2`,
      description: `Send frame with reserved ${kind} Opcode = ${first + 1} and non-empty payload.`,
      expectation: 'The connection is failed immediately.',
      run(ctx) {
        ctx.expected.OK = [];
        ctx.expectedClose = { ...FAIL };
        ctx.sendFrame({ opcode: first + 1, payload: Buffer.from('reserved opcode payload') });
        ctx.killAfter(1);
      },
    },
    ...[[3, null, {}], [4, HELLO, {}], [5, HELLO, { chop: 1 }]].map(([n, payload, send]) => ({
      id: `4.${sub}.${n}`,
      description: `Send small text message, then send frame with reserved ${kind} Opcode = ${first + n - 1}${payload ? ' and non-empty payload' : ''}, then send Ping.${send.chop ? ' Octets are sent in octet-wise chops.' : ''}`,
      expectation: 'Echo for first message is received, but then connection is failed immediately, since reserved opcode frame is used. A Pong is not received.',
      run(ctx) {
        const m = ctx.text(HELLO);
        ctx.expected.OK = [m.expect];
        ctx.expected['NON-STRICT'] = [];
        ctx.expectedClose = { ...FAIL };
        ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes, ...send });
        ctx.sendFrame({ opcode: first + n - 1, payload: payload || Buffer.alloc(0), ...send });
        ctx.sendFrame({ opcode: OP.PING, ...send });
        ctx.killAfter(1);
      },
    })),
  ];
}

export const cases = [...opcodeCases(1, 3, 'non-control'), ...opcodeCases(2, 11, 'control')];
