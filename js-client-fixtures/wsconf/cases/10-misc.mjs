// Autobahn 10.1.1 (Misc, auto-fragmentation): a 65536-byte text message
// sent in frames of 1300 payload bytes is echoed.
export const cases = [{
  id: '10.1.1',
  description: 'Send text message with payload of length 65536 auto-fragmented with autoFragmentSize = 1300.',
  expectation: "Receive echo'ed text message (with payload as sent and transmitted frame counts as expected). Clean close with normal code.",
  run(ctx) {
    const m = ctx.textSized(65536);
    ctx.expected.OK = [m.expect];
    ctx.sendMessage(m.bytes, { fragSize: 1300 });
    ctx.killAfter(10);
  },
}];
