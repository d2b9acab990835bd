// Autobahn 2.x Pings/Pongs: a Pong with the identical payload for every
// Ping (empty, text, binary, 125 bytes, octet-wise), a 126-byte Ping fails
// the connection (1002), unsolicited Pongs are ignored.
import { OP } from '../frame.mjs';
import { CODE } from '../context.mjs';

const B = (s) => Buffer.from(s, 'latin1');

function pingCase(id, description, payload, { chop = 0, wait = 1 } = {}) {
  return {
    id,
    description,
    expectation: "Pong (with payload echo'ed) is sent in reply to Ping. Clean close with normal code.",
    run(ctx) {
      ctx.expected.OK = [{ type: 'pong', data: payload }];
      ctx.sendFrame({ opcode: OP.PING, payload, chop });
      ctx.closeAfter(wait);
    },
  };
}

export const cases = [
  pingCase('2.1', 'Send ping without payload.', B('')),
  pingCase('2.2', 'Send ping with small text payload.', B('Hello, world!')),
  pingCase('2.3', 'Send ping with small binary (non UTF-8) payload.', B('\x00\xff\xfe\xfd\xfc\xfb\x00\xff')),
  pingCase('2.4', 'Send ping with binary payload of 125 octets.', Buffer.alloc(125, 0xfe)),
  {
    id: '2.5',
    description: 'Send ping with binary payload of 126 octets.',
    expectation: 'Connection is failed immediately (1002/Protocol Error), since control frames are only allowed to have payload up to and including 125 octets.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { closedByMe: false, codes: [CODE.PROTOCOL_ERROR], requireClean: false };
      ctx.sendFrame({ opcode: OP.PING, payload: Buffer.alloc(126, 0xfe) });
      ctx.killAfter(1);
    },
  },
  pingCase('2.6', 'Send ping with binary payload of 125 octets, send in octet-wise chops.', Buffer.alloc(125, 0xfe), { chop: 1, wait: 2 }),
  {
    id: '2.7',
    description: 'Send unsolicited pong without payload. Verify nothing is received. Clean close with normal code.',
    expectation: 'Nothing.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.sendFrame({ opcode: OP.PONG });
      ctx.sendClose(CODE.NORMAL);
      ctx.closeAfter(1);
    },
  },
  {
    id: '2.8',
    description: 'Send unsolicited pong with payload. Verify nothing is received. Clean close with normal code.',
    expectation: 'Nothing.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.sendFrame({ opcode: OP.PONG, payload: B('unsolicited pong payload') });
      ctx.sendClose(CODE.NORMAL);
      ctx.closeAfter(1);
    },
  },
  {
    id: '2.9',
    description: 'Send unsolicited pong with payload. Send ping with payload. Verify pong for ping is received.',
    expectation: "Nothing in reply to own Pong, but Pong with payload echo'ed in reply to Ping. Clean close with normal code.",
    run(ctx) {
      ctx.expected.OK = [{ type: 'pong', data: B('ping payload') }];
      ctx.sendFrame({ opcode: OP.PONG, payload: B('unsolicited pong payload') });
      ctx.sendFrame({ opcode: OP.PING, payload: B('ping payload') });
      ctx.closeAfter(1);
    },
  },
  ...[['2.10', 0, ''], ['2.11', 1, ' Send out octets in octet-wise chops.']].map(([id, chop, how]) => ({
    id,
    description: `Send 10 Pings with payload.${how}`,
    expectation: 'Pongs for our Pings with all the payloads. Note: This is not required by the Spec .. but we check for this behaviour anyway. Clean close with normal code.',
    run(ctx) {
      ctx.expected.OK = [];
      for (let i = 0; i < 10; i++) {
        const payload = B(`payload-${i}`);
        ctx.expected.OK.push({ type: 'pong', data: payload });
        ctx.sendFrame({ opcode: OP.PING, payload, chop });
      }
      ctx.closeAfter(3);
    },
  })),
];
