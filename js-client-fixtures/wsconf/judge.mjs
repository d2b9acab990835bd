// Autobahn|Testsuite's verdict rules:
// `behavior` compares the received events with the expected lists, and
// `behaviorClose` checks, in this order, who started closing, whether a
// required clean close happened, the peer's close code (an empty Close is
// always accepted), and whether the client had to drop TCP itself. On top,
// our stricter rule: a server that drops TCP without any Close frame is
// NON-STRICT.
import { describeBytes, sha1 } from './frame.mjs';

export const OK = 'OK';
export const NON_STRICT = 'NON-STRICT';
export const FAILED = 'FAILED';
export const WRONG_CODE = 'WRONG CODE';
export const UNCLEAN = 'UNCLEAN';
export const FAILED_BY_CLIENT = 'FAILED BY CLIENT';
export const INFORMATIONAL = 'INFORMATIONAL';

export const PASSING = new Set([OK, NON_STRICT, INFORMATIONAL]);

export function passed(r) {
  return PASSING.has(r.behavior) && PASSING.has(r.behaviorClose);
}

// Events: { type: 'message', binary, data } | { type: 'ping'|'pong', data }
//       | { type: 'timeout', tag } | { type: 'reply', ref } (phoenix mode:
//         the phx_reply to a heartbeat).
export function eventKey(e) {
  switch (e.type) {
    case 'message': return `message:${e.binary ? 'binary' : 'text'}:${e.data.length}:${sha1(e.data)}`;
    case 'ping':
    case 'pong': return `${e.type}:${e.data.toString('hex')}`;
    case 'timeout': return `timeout:${e.tag}`;
    case 'reply': return `reply:${e.ref}`;
    default: return `${e.type}:${JSON.stringify(e)}`;
  }
}

export function describeEvent(e) {
  switch (e.type) {
    case 'message': return { type: 'message', binary: e.binary, ...describeBytes(e.data) };
    case 'ping':
    case 'pong': return { type: e.type, ...describeBytes(e.data) };
    default: return { ...e };
  }
}

export function eventsEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (eventKey(a[i]) !== eventKey(b[i])) return false;
  return true;
}

// `rec`: { received, expected: {label: events}, expectedClose: {closedByMe,
// codes, requireClean, wrongEndpointFatal}, conn (closing facts),
// override: {behavior, result} (cases that judge messages themselves),
// wrongCodeFailsBehavior, informational }.
export function judge(rec) {
  const { received, expected, expectedClose: ec, conn } = rec;
  let behavior = FAILED;
  let result = 'Actual events differ from any expected.';
  if (rec.override) {
    ({ behavior, result } = rec.override);
  } else {
    for (const label of [OK, NON_STRICT, ...Object.keys(expected).filter((k) => k !== OK && k !== NON_STRICT)]) {
      if (expected[label] && eventsEqual(received, expected[label])) {
        behavior = label;
        result = 'Actual events match at least one expected.';
        break;
      }
    }
  }

  let behaviorClose;
  let resultClose;
  if (ec.closedByMe !== conn.closedByMe) {
    behaviorClose = FAILED;
    resultClose = 'The connection was failed by the wrong endpoint';
  } else if (ec.requireClean && !conn.wasClean) {
    behaviorClose = UNCLEAN;
    resultClose = 'The spec requires the connection to be failed cleanly here';
  } else if (conn.remoteCloseCode !== null && !ec.codes.includes(conn.remoteCloseCode)) {
    behaviorClose = WRONG_CODE;
    resultClose = `The close code should have been ${ec.codes.join(',')} or empty`;
  } else if (conn.droppedByMe) {
    behaviorClose = FAILED_BY_CLIENT;
    resultClose = 'It is preferred that the server close the TCP connection';
  } else if (!conn.closeReceived) {
    behaviorClose = NON_STRICT;
    resultClose = 'The server dropped TCP without sending a Close frame';
  } else {
    behaviorClose = OK;
    resultClose = 'Connection was properly closed';
  }

  if (ec.wrongEndpointFatal && ec.closedByMe !== conn.closedByMe) {
    behavior = FAILED;
    result = 'The connection was closed by the wrong endpoint (fatal for this case)';
  }
  if (rec.wrongCodeFailsBehavior && behaviorClose === WRONG_CODE) {
    behavior = FAILED;
    result = resultClose;
  }
  if (rec.informational) {
    result = `${behavior}: ${result}; close: ${behaviorClose}: ${resultClose}`;
    behavior = INFORMATIONAL;
    behaviorClose = INFORMATIONAL;
  }
  if (conn.violations.length) {
    behavior = FAILED;
    result = `Server protocol violation: ${conn.violations.join('; ')}`;
  }
  return { behavior, behaviorClose, result, resultClose };
}
