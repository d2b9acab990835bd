/* ws.c: the WebSocket transport over tcp.c. The handshake (RFC 6455 4.2)
 * follows Phoenix's order of checks; frames are read through wslay in
 * no-buffering mode with phxd's own reassembly (message size and fragment
 * caps). The wslay context (about 8 KiB) exists only while a frame, a
 * fragmented message or an automatic reply is in flight: a frame-boundary
 * tracker that reads the same bytes tells when it can be released. */
#include "ws.h"

#include <string.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "base64.h"
#include "http.h"
#include "log.h"
#include "socket.h"

struct phx_ws {
    wslay_event_context_ptr ctx; /* NULL while idle */
    phx_conn_t *conn;
    phx_socket_t *sock;
    /* input handed to wslay's recv callback during phx_ws feed */
    const uint8_t *src;
    size_t src_len;
    /* frame-boundary tracker over the raw input */
    uint64_t payload_left;
    uint8_t hdr[14];
    uint8_t hdr_have;
    uint8_t hdr_need;
    /* message reassembly (no-buffering mode) */
    uint8_t frame_opcode;
    uint8_t msg_opcode;
    bool in_msg;
    bool is_failed; /* we queued a Close: ignore further input */
    bool is_closed; /* phx_ws_close ran */
    bool is_echo;   /* the raw echo route (--echo-path), no Phoenix socket */
    uint32_t fragments;
    uint8_t close_code[2]; /* the first bytes of a Close frame's payload */
    uint8_t close_have;
    uint64_t close_len; /* payload length of the Close frame being read */
    phx_buf_t msg;
};

static void ws_on_read(phx_conn_t *c, uint8_t *data, size_t len);
static void ws_on_close(phx_conn_t *c);
static void ws_on_free(phx_conn_t *c);
static void ws_on_shutdown(phx_conn_t *c, int code, bool drain);

static const phx_conn_ops_t ws_conn_ops = {
    .on_read = ws_on_read,
    .on_close = ws_on_close,
    .on_free = ws_on_free,
    .on_timeout = phx_ws_timeout,
    .on_shutdown = ws_on_shutdown,
};

/* The server stops or drains: a Close frame with its code (1001), so
 * phoenix.js reconnects. */
static void ws_on_shutdown(phx_conn_t *c, int code, bool drain)
{
    phx_ws_close(c, code, NULL);
}

/* ---- frames we build ourselves ---- */

static size_t header_len(uint64_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

static size_t write_header(uint8_t *out, uint8_t opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

void phx_ws_frame_prepare(phx_rcbuf_t *b)
{
    if (b->off != b->payload_off)
        return; /* already framed by an earlier recipient */
    uint64_t len = b->len - b->payload_off;
    size_t hl = header_len(len);
    PHX_ASSERT(b->payload_off >= hl);
    b->off = b->payload_off - (uint32_t)hl;
    write_header(b->data + b->off, b->is_binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, len);
}

/* ---- the transport interface used by socket.c ---- */

static int ws_transport_send(void *t, phx_rcbuf_t *msg)
{
    phx_conn_t *c = t;
    phx_ws_frame_prepare(msg);
    if (phx_conn_pending(c) + (msg->len - msg->off) > c->loop->cfg->queue_limit_bytes) {
        phx_rcbuf_unref(msg);
        c->loop->stats.slow_closes++;
        PHX_LOG_INFO("conn=%llu peer=%s event=slow_consumer pending=%zu", (unsigned long long)c->id,
                     c->peer, phx_conn_pending(c));
        phx_ws_close(c, PHX_WS_POLICY, "slow consumer");
        return PHX_ERR_LIMIT;
    }
    return phx_conn_send(c, msg);
}

static void ws_transport_close(void *t, int code)
{
    phx_ws_close(t, code, NULL);
}

static const phx_transport_ops_t ws_transport = {
    .name = "websocket",
    .send = ws_transport_send,
    .close = ws_transport_close,
    .supports_binary = true,
};

/* ---- wslay glue ---- */

static ssize_t ws_on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user)
{
    phx_ws_t *w = user;
    if (w->src_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < w->src_len ? len : w->src_len;
    memcpy(buf, w->src, n);
    w->src += n;
    w->src_len -= n;
    return (ssize_t)n;
}

/* wslay writes control frames (pongs, Close replies) here. They are
 * gathered in the server's scratch buffer during one wslay_event_send and
 * queued as one buffer behind everything already queued, so a burst of
 * pings costs one queue entry. */
static ssize_t ws_on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user)
{
    phx_ws_t *w = user;
    if (phx_buf_append(&w->conn->loop->out_scratch, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Moves wslay's pending output to the connection's queue. */
static void flush_wslay(phx_ws_t *w)
{
    phx_buf_t *out = &w->conn->loop->out_scratch;
    out->len = 0;
    wslay_event_send(w->ctx);
    if (out->len > 0)
        phx_conn_send_copy(w->conn, out->data, out->len);
    out->len = 0;
    if (out->cap > 65536)
        phx_buf_dispose(out);
}

/* Refuses the current message: queue a Close and stop reading. */
static void fail(phx_ws_t *w, int code)
{
    if (w->is_failed)
        return;
    w->is_failed = true;
    if (w->sock)
        phx_socket_set_close_code(w->sock, code);
    wslay_event_queue_close(w->ctx, (uint16_t)code, NULL, 0);
    wslay_event_shutdown_read(w->ctx);
}

static void ws_on_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    phx_ws_t *w = user;
    w->frame_opcode = arg->opcode;
    /* Any frame, pings included, shows the peer is alive. */
    phx_loop_list_touch(w->conn->loop, w->conn, PHX_LIST_WS);
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        w->close_have = 0;
        w->close_len = arg->payload_length;
    }
    if (w->is_failed || (arg->opcode & 0x8))
        return; /* control frames are buffered and checked by wslay */
    const phx_config_t *cfg = w->conn->loop->cfg;
    if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
        w->msg_opcode = arg->opcode;
        w->in_msg = true;
        w->fragments = 0;
        w->msg.len = 0;
    }
    if (++w->fragments > (uint32_t)cfg->max_fragments) {
        PHX_LOG_DEBUG("conn=%llu event=ws_close code=1009 reason=\"too many fragments\"",
                      (unsigned long long)w->conn->id);
        fail(w, PHX_WS_TOO_BIG);
        return;
    }
    if (arg->payload_length > cfg->max_message_bytes ||
        w->msg.len + arg->payload_length > cfg->max_message_bytes) {
        PHX_LOG_DEBUG("conn=%llu event=ws_close code=1009 reason=\"message over limit\"",
                      (unsigned long long)w->conn->id);
        fail(w, PHX_WS_TOO_BIG);
        return;
    }
    /* Reserve only what has arrived (chunks append), never the declared size. */
}

static void ws_on_frame_chunk(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    phx_ws_t *w = user;
    if (w->frame_opcode == WSLAY_CONNECTION_CLOSE) {
        for (size_t i = 0; i < arg->data_length && w->close_have < 2; i++)
            w->close_code[w->close_have++] = arg->data[i];
        return;
    }
    if (w->is_failed || (w->frame_opcode & 0x8) || arg->data_length == 0)
        return;
    if (phx_buf_append(&w->msg, arg->data, arg->data_length) != 0) {
        PHX_LOG_WARN("conn=%llu event=out_of_memory where=ws_message",
                     (unsigned long long)w->conn->id);
        fail(w, PHX_WS_INTERNAL_ERROR);
    }
}

/* The echo route sends every message back as it came. */
static void echo(phx_ws_t *w, bool is_binary)
{
    phx_rcbuf_t *b = phx_rcbuf_new(10 + w->msg.len);
    if (b == NULL) {
        phx_ws_close(w->conn, PHX_WS_INTERNAL_ERROR, NULL);
        return;
    }
    b->off = b->payload_off = 10;
    if (w->msg.len)
        memcpy(b->data + 10, w->msg.data, w->msg.len);
    b->len = (uint32_t)(10 + w->msg.len);
    b->is_binary = is_binary;
    ws_transport_send(w->conn, b);
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user)
{
    phx_ws_t *w = user;
    phx_conn_t *c = w->conn;
    if (w->is_failed || c->is_closing)
        return;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        /* wslay already queued the reply Close; it goes out after the
         * recv loop, then the connection closes. */
        PHX_LOG_DEBUG("conn=%llu event=ws_close_received code=%u", (unsigned long long)c->id,
                      arg->status_code);
        if (w->sock) /* the peer's code, 1005 when it sent none */
            phx_socket_set_close_code(w->sock, arg->status_code ? arg->status_code : 1005);
        return;
    }
    if (arg->opcode == WSLAY_PING) {
        /* wslay has just queued the pong: send it now, so that it goes out
         * before any reply to a message that follows in the same read (and
         * is not dropped if a later frame in that read fails the
         * connection). */
        flush_wslay(w);
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* pong */
    w->in_msg = false;
    c->loop->stats.msgs_in++;
    phx_loop_list_touch(c->loop, c, PHX_LIST_WS);
    if (w->is_echo) {
        echo(w, arg->opcode == WSLAY_BINARY_FRAME);
        phx_buf_dispose(&w->msg);
        return;
    }
    /* The socket layer may decode in place; the buffer is ours until the
     * next message starts. */
    if (w->sock) /* none on a connection refused with a Close (refuse-mode close) */
        phx_socket_handle(w->sock, arg->opcode == WSLAY_BINARY_FRAME, w->msg.data, w->msg.len);
    /* An idle socket holds no message buffer. */
    phx_buf_dispose(&w->msg);
    if (c->is_closing)
        wslay_event_shutdown_read(ctx);
}

/* A complete, valid Close frame from the peer: answer as Phoenix on Bandit
 * does, with 1000 when the peer's code is 1000-1003, 1007-1011, 3000-4999 or
 * absent, else 1002, and no reason. Queued before wslay's own echo, which is
 * then dropped. */
static void ws_on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    phx_ws_t *w = user;
    if (w->frame_opcode != WSLAY_CONNECTION_CLOSE || w->is_failed)
        return;
    uint16_t reply = 1000;
    if (w->close_len == 1) {
        reply = 1002; /* a status code cannot be one byte long */
    } else if (w->close_have == 2) {
        unsigned code = (unsigned)w->close_code[0] << 8 | w->close_code[1];
        bool ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                  (code >= 3000 && code <= 4999);
        reply = ok ? 1000 : 1002;
    }
    wslay_event_queue_close(ctx, reply, NULL, 0);
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_on_recv,
    .send_callback = ws_on_send,
    .on_frame_recv_start_callback = ws_on_frame_start,
    .on_frame_recv_chunk_callback = ws_on_frame_chunk,
    .on_frame_recv_end_callback = ws_on_frame_end,
    .on_msg_recv_callback = ws_on_msg,
};

static int ctx_acquire(phx_ws_t *w)
{
    if (w->ctx)
        return 0;
    if (wslay_event_context_server_init(&w->ctx, &ws_callbacks, w) != 0) {
        w->ctx = NULL;
        return PHX_ERR_NOMEM;
    }
    wslay_event_config_set_no_buffering(w->ctx, 1);
    /* Per-frame check inside wslay; the whole-message cap is ours. */
    wslay_event_config_set_max_recv_msg_length(w->ctx, w->conn->loop->cfg->max_message_bytes);
    return 0;
}

static void ctx_release(phx_ws_t *w)
{
    if (w->ctx) {
        wslay_event_context_free(w->ctx);
        w->ctx = NULL;
    }
}

/* Follows frame boundaries in the raw input, as wslay sees it. */
static void track(phx_ws_t *w, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (w->payload_left > 0) {
            size_t take = n < w->payload_left ? n : (size_t)w->payload_left;
            w->payload_left -= take;
            p += take;
            n -= take;
            continue;
        }
        w->hdr[w->hdr_have++] = *p++;
        n--;
        if (w->hdr_have == 2) {
            uint8_t len7 = w->hdr[1] & 0x7f;
            w->hdr_need = (uint8_t)(2 +
                                    (len7 == 126   ? 2
                                     : len7 == 127 ? 8
                                                   : 0) +
                                    ((w->hdr[1] & 0x80) ? 4 : 0));
        }
        if (w->hdr_have >= 2 && w->hdr_have == w->hdr_need) {
            uint8_t len7 = w->hdr[1] & 0x7f;
            uint64_t len = len7;
            if (len7 == 126)
                len = (uint64_t)w->hdr[2] << 8 | w->hdr[3];
            else if (len7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = len << 8 | w->hdr[2 + i];
            }
            w->payload_left = len;
            w->hdr_have = 0;
            w->hdr_need = 0;
        }
    }
}

static bool at_rest(const phx_ws_t *w)
{
    return w->hdr_have == 0 && w->payload_left == 0 && !w->in_msg && !w->is_failed &&
           (w->ctx == NULL || !wslay_event_want_write(w->ctx));
}

static void ws_feed(phx_conn_t *c, const uint8_t *data, size_t len)
{
    phx_ws_t *w = c->ws;
    if (w->is_closed || len == 0)
        return;
    if (ctx_acquire(w) != 0) {
        PHX_LOG_WARN("conn=%llu event=out_of_memory where=wslay_context",
                     (unsigned long long)c->id);
        phx_conn_close(c, false);
        return;
    }
    track(w, data, len);
    w->src = data;
    w->src_len = len;
    int rv = wslay_event_recv(w->ctx);
    w->src = NULL;
    w->src_len = 0;
    if (c->is_closing || w->is_closed)
        return; /* the socket layer closed the connection */
    /* Automatic replies (pong, Close) and a Close queued after an error go
     * out now, before the connection closes. */
    flush_wslay(w);
    if (rv != 0 || w->is_failed || !wslay_event_want_read(w->ctx) ||
        wslay_event_get_close_sent(w->ctx)) {
        if (rv != 0)
            PHX_LOG_DEBUG("conn=%llu event=ws_error error=%d", (unsigned long long)c->id, rv);
        w->is_closed = true;
        ctx_release(w);
        phx_conn_close(c, true);
        return;
    }
    if (at_rest(w))
        ctx_release(w);
}

static void ws_on_read(phx_conn_t *c, uint8_t *data, size_t len)
{
    ws_feed(c, data, len);
}

static void ws_on_close(phx_conn_t *c)
{
    phx_ws_t *w = c->ws;
    if (w == NULL)
        return;
    w->is_closed = true;
    if (w->sock) {
        phx_socket_t *s = w->sock;
        w->sock = NULL;
        phx_socket_closed(s);
    }
    /* wslay may be on the stack (a message handler closed the connection):
     * the context is released in ws_on_free. */
}

static void ws_on_free(phx_conn_t *c)
{
    phx_ws_t *w = c->ws;
    if (w == NULL)
        return;
    ctx_release(w);
    phx_buf_dispose(&w->msg);
    phx_free(w);
    c->ws = NULL;
}

/* ---- closing ---- */

void phx_ws_close(phx_conn_t *c, int code, const char *reason)
{
    phx_ws_t *w = c->ws;
    if (w == NULL || w->is_closed || c->is_closing)
        return;
    w->is_closed = true;
    if (w->sock)
        phx_socket_set_close_code(w->sock, code);
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 123)
        rlen = 123;
    uint8_t frame[2 + 2 + 123];
    frame[0] = 0x88;
    frame[1] = (uint8_t)(2 + rlen);
    frame[2] = (uint8_t)(code >> 8);
    frame[3] = (uint8_t)code;
    if (rlen)
        memcpy(frame + 4, reason, rlen);
    PHX_LOG_DEBUG("conn=%llu peer=%s event=ws_close code=%d", (unsigned long long)c->id, c->peer,
                  code);
    phx_conn_send_copy(c, frame, 4 + rlen);
    phx_conn_close(c, true);
}

void phx_ws_timeout(phx_conn_t *c)
{
    /* Phoenix on Bandit closes an idle WebSocket with 1002. */
    phx_ws_close(c, PHX_WS_PROTOCOL_ERROR, "idle timeout");
}

bool phx_ws_has_context(const phx_conn_t *c)
{
    return c->ws && c->ws->ctx;
}

/* ---- handshake ---- */

static void accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char input[24 + sizeof(guid)];
    size_t klen = strlen(key);
    memcpy(input, key, klen);
    memcpy(input + klen, guid, sizeof(guid) - 1);
    EVP_Digest(input, klen + sizeof(guid) - 1, digest, &dlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, digest, (int)dlen);
}

static bool valid_key(const char *key)
{
    /* base64 of 16 bytes: 22 characters and "==". */
    if (key == NULL || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (int i = 0; i < 22; i++) {
        char ch = key[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return false;
    }
    return true;
}

static const char *header_of(void *ctx, const char *name)
{
    return phx_http_header(ctx, name);
}

#define BEARER_PREFIX "base64url.bearer.phx."

/* Sec-WebSocket-Protocol (docs/protocol.md §1.5): the phoenix.js 1.8 authToken rides
 * in an entry "base64url.bearer.phx.<base64>", the standard alphabet (what
 * phoenix.js's btoa writes) or base64url, padding optional; the server's only
 * subprotocol is "phoenix", selected when offered. No header: no
 * subprotocol. Offered but without "phoenix", or an undecodable token: 403.
 * Returns 0 or PHX_ERR_AUTH / PHX_ERR_NOMEM. */
static int subprotocols(const char *offered, phx_connect_t *ci, bool *select_phoenix)
{
    *select_phoenix = false;
    if (offered == NULL)
        return 0;
    const char *bearer = NULL;
    size_t bearer_len = 0;
    int bearers = 0;
    bool has_phoenix = false;
    const char *start;
    size_t n;
    for (const char *p = offered; (p = phx_http_list_next(p, &start, &n)) != NULL;) {
        if (n >= sizeof(BEARER_PREFIX) - 1 &&
            memcmp(start, BEARER_PREFIX, sizeof(BEARER_PREFIX) - 1) == 0) {
            bearers++;
            bearer = start + sizeof(BEARER_PREFIX) - 1;
            bearer_len = n - (sizeof(BEARER_PREFIX) - 1);
        } else if (n == 7 && memcmp(start, "phoenix", 7) == 0) {
            has_phoenix = true;
        }
    }
    if (bearers == 1) {
        phx_buf_t tok = {0};
        /* phoenix.js writes btoa's standard alphabet behind the
         * "base64url." prefix; other clients write base64url. */
        int rv = phx_base64_decode_any(&tok, bearer, bearer_len);
        if (rv != 0 || memchr(tok.data, 0, tok.len) != NULL) {
            phx_buf_dispose(&tok);
            ci->refused = PHX_REFUSE_TOKEN_INVALID; /* the metrics' reason */
            return rv == PHX_ERR_NOMEM ? PHX_ERR_NOMEM : PHX_ERR_AUTH;
        }
        if (phx_buf_append_byte(&tok, 0) != 0) {
            phx_buf_dispose(&tok);
            return PHX_ERR_NOMEM;
        }
        ci->auth_token = (char *)phx_buf_detach(&tok, NULL);
    }
    if (!has_phoenix) {
        ci->refused = PHX_REFUSE_SUBPROTOCOL;
        return PHX_ERR_AUTH;
    }
    *select_phoenix = true;
    return 0;
}

/* RFC 6455 4.2.1 checks of an upgrade request; returns why it is refused,
 * or NULL. */
static const char *upgrade_problem(phx_http_t *h)
{
    const char *version = phx_http_header(h, "sec-websocket-version");
    const char *host = phx_http_header(h, "host");
    if (!phx_http_is_11(h))
        return "HTTP/1.1 or later is required";
    if (host == NULL || host[0] == '\0')
        return "'host' header is absent";
    if (!phx_http_header_has_token(phx_http_header(h, "connection"), "upgrade"))
        return "'connection' header must contain 'upgrade'";
    if (!valid_key(phx_http_header(h, "sec-websocket-key")))
        return "'sec-websocket-key' header is absent or invalid";
    if (version == NULL || strcmp(version, "13") != 0)
        return "'sec-websocket-version' header must be '13'";
    return NULL;
}

static void refuse_upgrade(phx_conn_t *c, const char *why)
{
    const char *version = phx_http_header(c->http, "sec-websocket-version");
    bool bad_version = version == NULL || strcmp(version, "13") != 0;
    phx_http_respond(c, 400, bad_version ? "sec-websocket-version: 13\r\n" : NULL, "text/plain",
                     why, strlen(why));
}

/* Answers 101 and hands the connection (and `rest`) to the WebSocket
 * layer with state `w`. */
static void upgrade(phx_conn_t *c, phx_ws_t *w, bool select_phoenix, uint8_t *rest, size_t rest_len)
{
    char accept[29];
    accept_key(phx_http_header(c->http, "sec-websocket-key"), accept);
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "upgrade: websocket\r\n"
                     "connection: Upgrade\r\n"
                     "sec-websocket-accept: %s\r\n"
                     "%s"
                     "\r\n",
                     accept, select_phoenix ? "sec-websocket-protocol: phoenix\r\n" : "");
    /* The head's storage is no longer needed: the idle socket keeps none. */
    phx_http_dispose(c);
    c->ws = w;
    c->ops = &ws_conn_ops;
    c->kind = PHX_CONN_WS;
    phx_loop_list_touch(c->loop, c, PHX_LIST_WS);
    phx_conn_send_copy(c, resp, (size_t)n);
    PHX_LOG_DEBUG("conn=%llu peer=%s event=ws_upgrade", (unsigned long long)c->id, c->peer);
    if (rest_len > 0)
        ws_feed(c, rest, rest_len);
}

/* refuse-mode close: a refused connect is upgraded and closed at once with
 * 4003 and a reason a page can read (phoenix.js's onClose sees both),
 * where a 403 before the upgrade is hidden by the browser. The phoenix
 * subprotocol is selected when offered, or the browser fails the
 * connection without a code. */
static void refuse_with_close(phx_conn_t *c, int refused)
{
    const char *reason = refused == PHX_REFUSE_TOKEN_INVALID   ? "invalid token"
                         : refused == PHX_REFUSE_TOKEN_EXPIRED ? "expired token"
                         : refused == PHX_REFUSE_TOKEN_MISSING ? "missing token"
                                                               : "unauthorized";
    bool offered =
        phx_http_header_has_token(phx_http_header(c->http, "sec-websocket-protocol"), "phoenix");
    phx_ws_t *w = phx_calloc(1, sizeof(*w));
    if (w == NULL) {
        phx_http_respond(c, 403, NULL, NULL, NULL, 0);
        return;
    }
    w->conn = c;
    upgrade(c, w, offered, NULL, 0);
    phx_ws_close(c, 4003, reason);
}

/* The connect step answered `status` (0: admitted): the refusal, or the
 * upgrade. Disposes `ci`. */
static void admit(phx_endpoint_t *ep, phx_conn_t *c, phx_connect_t *ci, int status,
                  bool select_phoenix, uint8_t *rest, size_t rest_len)
{
    phx_http_t *h = c->http;
    if (status == 403 && ep->cfg->refuse_close && upgrade_problem(h) == NULL) {
        refuse_with_close(c, ci->refused);
        return;
    }
    if (status != 0) {
        phx_http_respond(c, status, NULL, NULL, NULL, 0);
        return;
    }
    /* Upgrade validation comes after the connect callback, as in Phoenix. */
    const char *why = upgrade_problem(h);
    if (why) {
        phx_connect_dispose(ci);
        refuse_upgrade(c, why);
        return;
    }
    phx_ws_t *w = phx_calloc(1, sizeof(*w));
    if (w == NULL) {
        phx_connect_dispose(ci);
        phx_http_respond(c, 503, NULL, NULL, NULL, 0);
        return;
    }
    w->conn = c;
    int rv = phx_socket_new(&w->sock, ci, c);
    phx_connect_dispose(ci);
    if (rv != 0) {
        phx_free(w);
        phx_http_respond(c, 503, NULL, NULL, NULL, 0);
        return;
    }
    phx_socket_opened(w->sock, c->peer);
    upgrade(c, w, select_phoenix, rest, rest_len);
}

/* admit, for a connect step answered later (phx_endpoint_connect_wait). */
static void admit_later(phx_conn_t *c, phx_connect_t *d, int status, uint8_t *rest, size_t rest_len,
                        void *ctx)
{
    admit(ctx, c, d, status, d->tflags != 0, rest, rest_len);
}

void phx_ws_handshake(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *rest, size_t rest_len)
{
    phx_http_t *h = c->http;
    if (phx_http_method(h) != HTTP_GET) {
        phx_http_respond(c, 400, NULL, NULL, NULL, 0);
        return;
    }
    /* A request that is not an upgrade at all (a plain GET) is refused
     * before the connect callback runs. */
    const char *upgrade_hdr = phx_http_header(h, "upgrade");
    if (!phx_http_header_has_token(upgrade_hdr, "websocket")) {
        static const char msg[] = "'upgrade' header must contain 'websocket'";
        phx_http_respond(c, 400, NULL, "text/plain", msg, sizeof(msg) - 1);
        return;
    }
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(h, &path, &path_len, &query, &query_len);
    int status = phx_endpoint_check_origin(ep, c, ws_transport.name);
    if (status != 0) {
        phx_http_respond(c, status, NULL, NULL, NULL, 0);
        return;
    }
    phx_connect_t conn_info;
    phx_connect_init(&conn_info, ep, &ws_transport, c->peer, c->peer_port,
                     (const char *)h->url.data, h->url.len, query, query_len, header_of, h);
    conn_info.http = h;
    bool select_phoenix = false;
    int rv =
        subprotocols(phx_http_header(h, "sec-websocket-protocol"), &conn_info, &select_phoenix);
    status =
        rv != 0 ? phx_endpoint_refused(ep, &conn_info, rv) : phx_endpoint_connect(ep, &conn_info);
    if (status == PHX_ERR_AGAIN) {
        /* The connect callback answers later: the request waits. */
        conn_info.deferred->tflags = select_phoenix;
        phx_endpoint_connect_wait(ep, &conn_info, c, rest, rest_len, NULL, admit_later, ep);
        return;
    }
    admit(ep, c, &conn_info, status, select_phoenix, rest, rest_len);
}

void phx_ws_echo_handshake(phx_conn_t *c, uint8_t *rest, size_t rest_len)
{
    phx_http_t *h = c->http;
    const char *why = phx_http_method(h) != HTTP_GET ? "GET is required" : upgrade_problem(h);
    if (why == NULL && !phx_http_header_has_token(phx_http_header(h, "upgrade"), "websocket"))
        why = "'upgrade' header must contain 'websocket'";
    if (why) {
        refuse_upgrade(c, why);
        return;
    }
    phx_ws_t *w = phx_calloc(1, sizeof(*w));
    if (w == NULL) {
        phx_http_respond(c, 503, NULL, NULL, NULL, 0);
        return;
    }
    w->conn = c;
    w->is_echo = true;
    upgrade(c, w, false, rest, rest_len);
}

static void ws_route(phx_conn_t *c, void *user, uint8_t *rest, size_t rest_len)
{
    phx_ws_handshake(user, c, rest, rest_len);
}

static void echo_route(phx_conn_t *c, void *user, uint8_t *rest, size_t rest_len)
{
    phx_ws_echo_handshake(c, rest, rest_len);
}

int phx_ws_add_routes(phx_router_t *r, phx_endpoint_t *ep)
{
    const phx_config_t *cfg = ep->cfg;
    phx_http_route_t rt = {.is_socket = true, .upgrade = ws_route, .user = ep};
    int rv = phx_router_add_transport(r, cfg->socket_path, "websocket", &rt);
    if (rv == 0 && cfg->echo_path) {
        phx_http_route_t echo = {.path = cfg->echo_path, .upgrade = echo_route};
        rv = phx_router_add(r, &echo);
    }
    return rv;
}
