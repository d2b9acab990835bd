// Every case, in Autobahn's order, then phxd's own extras (x.*).
import { cases as g1 } from './1-framing.mjs';
import { cases as g2 } from './2-pings.mjs';
import { cases as g3 } from './3-reserved-bits.mjs';
import { cases as g4 } from './4-opcodes.mjs';
import { cases as g5 } from './5-fragmentation.mjs';
import { cases as g6 } from './6-utf8.mjs';
import { cases as g7 } from './7-close.mjs';
import { cases as g9 } from './9-limits.mjs';
import { cases as g10 } from './10-misc.mjs';
import { cases as gx } from './x-phxd.mjs';

export const allCases = [...g1, ...g2, ...g3, ...g4, ...g5, ...g6, ...g7, ...g9, ...g10, ...gx];

// The group a case is counted under in summaries: "1".."10", or "x.N".
export function groupOf(id) {
  const parts = id.split('.');
  return parts[0] === 'x' ? `x.${parts[1]}` : parts[0];
}
