// Autobahn 1.x Framing: text (1.1) and binary (1.2) messages of 0, 125,
// 126, 127, 128, 65535 and 65536 bytes (the length encoding boundaries),
// and 65536 bytes sent in chops of 997 octets. Expect the echo, then a
// clean close with 1000.
import { OP } from '../frame.mjs';

const SIZES = [0, 125, 126, 127, 128, 65535, 65536];
const wait = (size) => (size > 128 ? 10 : 1);

function framing(kind, i, size, chop) {
  const binary = kind === 'binary';
  return {
    id: `1.${binary ? 2 : 1}.${i}`,
    binaryData: binary,
    description: `Send ${kind} message with payload of length ${size}${chop ? `. Sent out data in chops of ${chop} octets.` : '.'}`,
    expectation: `Receive echo'ed ${kind} message (with payload as sent). Clean close with normal code.`,
    run(ctx) {
      const m = binary ? ctx.binarySized(size) : ctx.textSized(size);
      ctx.expected.OK = [m.expect];
      ctx.sendFrame({ opcode: binary ? OP.BINARY : OP.TEXT, payload: m.bytes, chop });
      ctx.killAfter(wait(size));
    },
  };
}

export const cases = [];
for (const kind of ['text', 'binary']) {
  SIZES.forEach((size, i) => cases.push(framing(kind, i + 1, size, 0)));
  cases.push(framing(kind, 8, 65536, 997));
}
