// A complete phxd backend in plain Node (no dependencies): the channel logic
// of a small chat, as a Phoenix app would write it in connect/3, join/3,
// handle_in/3 and terminate/2. Run it, then phxd pointed at it:
//
//   PHXD_BACKEND_SECRET=s3cret node examples/backend/backend.mjs 4100 &
//   phxd --connect backend --backend-url http://127.0.0.1:4100/phxd \
//        --backend-secret s3cret --channel '"room:*" join=backend events=backend'
//
// The contract (every call, its answer) is in docs/backend.md.
import http from "node:http";
import crypto from "node:crypto";

const port = Number(process.argv[2] || 4100);
const secret = process.env.PHXD_BACKEND_SECRET || "";
const members = { "room:lobby": null, "room:secret": new Set(["alice"]) }; // null: anyone

function signed(req, body) {
  if (!secret) return true;
  const want = "sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex");
  const got = req.headers["x-phxd-signature"] || "";
  return got.length === want.length && crypto.timingSafeEqual(Buffer.from(got), Buffer.from(want));
}

const handlers = {
  // connect/3: params.user names the user (a real app checks a session).
  connect: ({ params }) =>
    params.user ? { status: "ok", socket_id: `users_socket:${params.user}`, user_id: params.user,
                    assigns: { name: params.user } }
                : { status: "error" },
  // join/3: membership checked, presence tracked, a welcome pushed after the reply.
  join: ({ topic, socket }) => {
    const allowed = members[topic];
    if (allowed === undefined || (allowed && !allowed.has(socket.assigns.name)))
      return { status: "error", response: { reason: "unauthorized" } };
    return { status: "ok", response: { joined: topic },
             presence: { key: socket.assigns.name, meta: { status: "online" } },
             push: [{ event: "welcome", payload: { text: `hello ${socket.assigns.name}` } }] };
  },
  // handle_in/3: a message is sanitized and broadcast, then acknowledged.
  event: ({ topic, event, payload, socket }) => {
    if (event === "shout") {
      const body = String(payload.body ?? "").slice(0, 500).replace(/[<>]/g, "");
      return { reply: { status: "ok", response: { saved: true } },
               broadcast: [{ topic, event: "shout", payload: { from: socket.assigns.name, body } }] };
    }
    if (event === "typing") return { reply: null, presence: { meta: { status: "typing" } } };
    if (event === "bye") return { reply: { status: "ok", response: {} }, stop: { reason: "bye" } };
    return { reply: { status: "error", response: { reason: "unknown event" } } };
  },
  leave: () => ({}),
  batch: () => ({}),
};

http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (req.method !== "POST" || !signed(req, body)) { res.writeHead(401).end(); return; }
    const call = JSON.parse(body);
    const answer = (handlers[call.type] || (() => ({})))(call);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
  });
}).listen(port, "127.0.0.1", () => console.log(`backend on http://127.0.0.1:${port}/phxd`));
