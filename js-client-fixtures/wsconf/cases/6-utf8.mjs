// Autobahn 6.x UTF-8 Handling. 6.1 empty fragments, 6.2 valid text split on
// and inside code points, 6.3 invalid text whole and in 1-byte fragments,
// 6.4 fail-fast (the invalid byte arrives in the 2nd of 3 frames or chops,
// with pauses: the server must close during the 2nd pause, before the 3rd
// part), and 6.5-6.23: the 132 sequences built from the byte patterns of
// Markus Kuhn's UTF-8 decoder stress test, each sent as one text message;
// valid ones (buffer.isUtf8) are echoed, invalid ones close with 1007, and
// a close by the wrong side is fatal.
import { isUtf8 } from 'node:buffer';
import { OP, encodeFrame } from '../frame.mjs';
import { CODE } from '../context.mjs';

const H = (hex) => Buffer.from(hex.replace(/\s+/g, ''), 'hex');
const L = (s) => Buffer.from(s, 'latin1');
const U = (s) => Buffer.from(s, 'utf8');

const INVALID_CLOSE = { closedByMe: false, codes: [CODE.INVALID_PAYLOAD], requireClean: false };

// ---- 6.5-6.23 from the stress test's byte patterns ----

const KOSME = H('cebae1bdb9cf83cebcceb5'); // "κόσμε"

// [subcategory title, [[bytes, validity as the stress test declares it or
// null where it is computed], ...]]. Validity used by the cases is
// buffer.isUtf8; a mismatch with a declared value is a table error.
function utf8Sequences() {
  const seqs = [];
  seqs.push(['Some valid UTF-8 sequences', [
    [L('hello\x24world'), true], [L('hello\xc2\xa2world'), true], [L('hello\xe2\x82\xacworld'), true],
    [L('hello\xf0\xa4\xad\xa2world'), true], [KOSME, true]]]);
  const prefixes = [];
  for (let i = 1; i <= KOSME.length; i++) prefixes.push([KOSME.subarray(0, i), null]);
  seqs.push(['All prefixes of a valid UTF-8 string that contains multi-byte code points', prefixes]);
  seqs.push(['First possible sequence of a certain length', [[H('00'), true], [H('c280'), true], [H('e0a080'), true], [H('f0908080'), true]]]);
  seqs.push(['First possible sequence length 5/6 (invalid codepoints)', [[H('f888808080'), false], [H('fc8480808080'), false]]]);
  seqs.push(['Last possible sequence of a certain length', [[H('7f'), true], [H('dfbf'), true], [H('efbfbf'), true], [H('f48fbfbf'), true]]]);
  seqs.push(['Last possible sequence length 4/5/6 (invalid codepoints)', [[H('f7bfbfbf'), false], [H('fbbfbfbfbf'), false], [H('fdbfbfbfbfbf'), false]]]);
  seqs.push(['Other boundary conditions', [[H('ed9fbf'), true], [H('ee8080'), true], [H('efbfbd'), true], [H('f48fbfbf'), true], [H('f4908080'), false]]]);
  const cont = [H('80'), H('bf'), H('80bf'), H('80bf80'), H('80bf80bf'), H('80bf80bf80'), H('80bf80bf80bf')];
  const allCont = [];
  for (let b = 0x80; b < 0xbf; b++) allCont.push(b);
  cont.push(Buffer.from(allCont));
  seqs.push(['Unexpected continuation bytes', cont.map((b) => [b, false])]);
  const lonely = [];
  for (const [lo, hi] of [[0xc0, 0xdf], [0xe0, 0xef], [0xf0, 0xf7], [0xf8, 0xfb], [0xfc, 0xfd]]) {
    const bytes = [];
    for (let b = lo; b < hi; b++) bytes.push(b, 0x20);
    lonely.push([Buffer.from(bytes), false]);
  }
  seqs.push(['Lonely start characters', lonely]);
  const missing = ['c0', 'e080', 'f08080', 'f8808080', 'fc80808080', 'df', 'efbf', 'f7bfbf', 'fbbfbfbf', 'fdbfbfbfbf'].map(H);
  seqs.push(['Sequences with last continuation byte missing', missing.map((b) => [b, false])]);
  seqs.push(['Concatenation of incomplete sequences', [[Buffer.concat(missing), false]]]);
  seqs.push(['Impossible bytes', [[H('fe'), false], [H('ff'), false], [H('fefeffff'), false]]]);
  seqs.push(['Examples of an overlong ASCII character', ['c0af', 'e080af', 'f08080af', 'f8808080af', 'fc80808080af'].map((h) => [H(h), false])]);
  seqs.push(['Maximum overlong sequences', ['c1bf', 'e09fbf', 'f08fbfbf', 'f887bfbfbf', 'fc83bfbfbfbf'].map((h) => [H(h), false])]);
  seqs.push(['Overlong representation of the NUL character', ['c080', 'e08080', 'f0808080', 'f880808080', 'fc8080808080'].map((h) => [H(h), false])]);
  seqs.push(['Single UTF-16 surrogates', ['eda080', 'edadbf', 'edae80', 'edafbf', 'edb080', 'edbe80', 'edbfbf'].map((h) => [H(h), false])]);
  seqs.push(['Paired UTF-16 surrogates', ['eda080edb080', 'eda080edbfbf', 'edadbfedb080', 'edadbfedbfbf', 'edae80edb080', 'edae80edbfbf', 'edafbfedb080', 'edafbfedbfbf'].map((h) => [H(h), false])]);
  const nonchars = [[H('efbfbe'), true], [H('efbfbf'), true]];
  for (const z1 of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
    for (const z2 of [0x8f, 0x9f, 0xaf, 0xbf]) {
      if (z1 === 0xf4 && z2 !== 0x8f) continue; // above U+10FFFF
      for (const z3 of [0xbe, 0xbf]) {
        const zz = Buffer.from([z1, z2, 0xbf, z3]);
        if (z1 === 0xf0 && z2 === 0x8f) continue; // overlong
        nonchars.push([zz, true]);
      }
    }
  }
  seqs.push(['Non-character code points (valid UTF-8)', nonchars]);
  seqs.push(['Unicode specials (i.e. replacement char)', ['efbfb9', 'efbfba', 'efbfbb', 'efbfbc', 'efbfbd', 'efbfbe', 'efbfbf'].map((h) => [H(h), true])]);
  return seqs;
}

function sequenceCase(i, j, title, bytes) {
  const valid = isUtf8(bytes);
  return {
    id: `6.${i}.${j}`,
    subcategory: title,
    description: `Send a text message with payload which is ${valid ? '' : 'not '}valid UTF-8 in one fragment. Payload: 0x${bytes.toString('hex')}`,
    expectation: valid ? "The message is echo'ed back to us." : 'The connection is failed immediately, since the payload is not valid UTF-8.',
    run(ctx) {
      const m = ctx.text(bytes);
      if (valid) {
        ctx.expected.OK = [m.expect];
      } else {
        ctx.expected.OK = [];
        ctx.expectedClose = { ...INVALID_CLOSE, wrongEndpointFatal: true };
      }
      ctx.sendMessage(m.bytes);
      ctx.killAfter(0.5);
    },
  };
}

function generated() {
  const out = [];
  utf8Sequences().forEach(([title, list], gi) => {
    list.forEach(([bytes, declared], k) => {
      if (declared !== null && declared !== isUtf8(bytes)) {
        throw new Error(`6.${gi + 5}.${k + 1}: table says ${declared}, buffer.isUtf8 says ${!declared}`);
      }
      out.push(sequenceCase(gi + 5, k + 1, title, bytes));
    });
  });
  return out;
}

// ---- 6.1-6.4 ----

const HELLO_UTF8 = U('Hello-µ@ßöäüàá-UTF-8!!');
const INVALID_6_3 = Buffer.concat([KOSME, H('eda080'), L('edited')]);
const P6_4 = [KOSME, H('f4908080'), L('edited')];
const P6_4_ALL = Buffer.concat(P6_4);
const P6_4_BYTE = [P6_4_ALL.subarray(0, 12), P6_4_ALL.subarray(12, 13), P6_4_ALL.subarray(13)];

function validMessage(id, description, build) {
  return {
    id,
    description,
    expectation: "A message is echo'ed back to us.",
    run(ctx) {
      build(ctx);
      ctx.closeAfter(1);
    },
  };
}

// 6.4.x: three parts with two pauses; the server must fail the connection
// after part 2 (fail-fast), not after part 1 and not only at the end.
function failFast(id, description, pieces, asChops, fatal) {
  return {
    id,
    description,
    expectation: 'The first part is accepted, we expect to timeout on the first wait. The 2nd part should be rejected immediately (fail fast on UTF-8). If we timeout, we expect the connection is failed at least then, since the complete message payload is not valid UTF-8.',
    run(ctx) {
      const m = ctx.textParts(pieces);
      ctx.expected.OK = [{ type: 'timeout', tag: 'A' }];
      ctx.expected['NON-STRICT'] = [{ type: 'timeout', tag: 'A' }, { type: 'timeout', tag: 'B' }];
      ctx.expectedClose = { ...INVALID_CLOSE, ...(fatal ? { wrongEndpointFatal: true } : {}) };
      let chunks;
      if (asChops) {
        // One frame whose payload leaves in three writes.
        const frame = encodeFrame({ opcode: OP.TEXT, payload: m.bytes });
        const hl = frame.length - m.bytes.length;
        const a = hl + m.parts[0].length;
        const b = a + m.parts[1].length;
        chunks = [frame.subarray(0, a), frame.subarray(a, b), frame.subarray(b)];
      } else {
        chunks = m.parts.map((p, k) => encodeFrame({ opcode: k === 0 ? OP.TEXT : OP.CONT, fin: k === 2, payload: p }));
      }
      ctx.conn.send(chunks[0]);
      ctx.continueLater(1, () => {
        if (!ctx.isOpen()) return;
        ctx.mark('A');
        ctx.conn.send(chunks[1]);
        ctx.continueLater(1, () => {
          if (!ctx.isOpen()) return;
          ctx.mark('B');
          ctx.conn.send(chunks[2]);
          ctx.killAfter(1);
        });
      });
    },
  };
}

export const cases = [
  validMessage('6.1.1', 'Send text message of length 0.', (ctx) => {
    const m = ctx.text('');
    ctx.expected.OK = [m.expect];
    ctx.sendFrame({ opcode: OP.TEXT, payload: m.bytes });
  }),
  validMessage('6.1.2', 'Send fragmented text message, 3 fragments each of length 0.', (ctx) => {
    const m = ctx.textParts(['', '', '']);
    ctx.expected.OK = [m.expect];
    ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.parts[0] });
    ctx.sendFrame({ opcode: OP.CONT, fin: false, payload: m.parts[1] });
    ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: m.parts[2] });
  }),
  validMessage('6.1.3', 'Send fragmented text message, 3 fragments, first and last of length 0, middle non-empty.', (ctx) => {
    const m = ctx.textParts(['', 'middle frame payload', '']);
    ctx.expected.OK = [m.expect];
    ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.parts[0] });
    ctx.sendFrame({ opcode: OP.CONT, fin: false, payload: m.parts[1] });
    ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: m.parts[2] });
  }),
  validMessage('6.2.1', `Send a valid UTF-8 text message in one fragment. MESSAGE: ${HELLO_UTF8.toString('hex')}`, (ctx) => {
    const m = ctx.text(HELLO_UTF8);
    ctx.expected.OK = [m.expect];
    ctx.sendMessage(m.bytes);
  }),
  validMessage('6.2.2', 'Send a valid UTF-8 text message in two fragments, fragmented on UTF-8 code point boundary.', (ctx) => {
    const m = ctx.textParts([U('Hello-µ@ßöä'), U('üàá-UTF-8!!')]);
    ctx.expected.OK = [m.expect];
    ctx.sendFrame({ opcode: OP.TEXT, fin: false, payload: m.parts[0] });
    ctx.sendFrame({ opcode: OP.CONT, fin: true, payload: m.parts[1] });
  }),
  validMessage('6.2.3', 'Send a valid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends.', (ctx) => {
    const m = ctx.text(HELLO_UTF8);
    ctx.expected.OK = [m.expect];
    ctx.sendMessage(m.bytes, { fragSize: 1 });
  }),
  validMessage('6.2.4', `Send a valid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends. MESSAGE: ${KOSME.toString('hex')}`, (ctx) => {
    const m = ctx.text(KOSME);
    ctx.expected.OK = [m.expect];
    ctx.sendMessage(m.bytes, { fragSize: 1 });
  }),
  {
    id: '6.3.1',
    description: `Send invalid UTF-8 text message unfragmented. MESSAGE: ${INVALID_6_3.toString('hex')}`,
    expectation: 'The connection is failed immediately, since the payload is not valid UTF-8.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...INVALID_CLOSE };
      ctx.sendMessage(ctx.text(INVALID_6_3).bytes);
      ctx.killAfter(1);
    },
  },
  {
    id: '6.3.2',
    description: 'Send invalid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends.',
    expectation: 'The connection is failed immediately, since the payload is not valid UTF-8.',
    run(ctx) {
      ctx.expected.OK = [];
      ctx.expectedClose = { ...INVALID_CLOSE, wrongEndpointFatal: true };
      ctx.sendMessage(ctx.text(INVALID_6_3).bytes, { fragSize: 1 });
      ctx.killAfter(1);
    },
  },
  failFast('6.4.1', 'Send invalid UTF-8 text message in 3 fragments (frames). First frame payload is valid, then wait, then 2nd frame which contains the payload making the sequence invalid (f4908080, U+110000), then wait, then 3rd frame with rest.', P6_4, false, true),
  failFast('6.4.2', 'Same as Case 6.4.1, but in 2nd frame, we send only up to and including the octet making the complete payload invalid.', P6_4_BYTE, false, true),
  failFast('6.4.3', 'Same as Case 6.4.1, but we send message not in 3 frames, but in 3 chops of the same message frame.', P6_4, true, true),
  failFast('6.4.4', 'Same as Case 6.4.2, but we send message not in 3 frames, but in 3 chops of the same message frame.', P6_4_BYTE, true, false),
  ...generated(),
];
