/* conn.c: phxd-bench's client sockets. Connects to the socket's server
 * (one of the --url targets, optionally from a rotating --source-ips
 * address), sends the HTTP upgrade, checks the 101 and
 * Sec-WebSocket-Accept, then runs wslay in client mode without message
 * buffering: frames are handed to scenario.c straight from wslay's input
 * buffer. Reads use one loop-wide buffer; writes go out with uv_try_write
 * and fall back to one uv_write per socket. Owns every uv handle of a
 * socket; scenario.c decides what the socket says. */
#include "bench.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "phx.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* linux/in.h; not in glibc's netinet/in.h */
#endif

static const char *find_crlf2(const void *data, size_t len)
{
    const char *p = data;
    for (size_t i = 0; i + 4 <= len; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return p + i;
    return NULL;
}

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* Largest HTTP response head accepted during the upgrade. */
#define MAX_HEAD_BYTES 8192
/* Largest server message accepted (Phoenix replies and broadcasts are far
 * smaller; this only bounds the split-message buffer). */
#define MAX_MSG_BYTES (16u << 20)

static void conn_on_close(uv_handle_t *h);
static void conn_on_write(uv_write_t *req, int status);

/* ---- target ---- */

static int parse_ipv4(const char *s, size_t len, struct in_addr *out)
{
    char tmp[INET_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    return inet_pton(AF_INET, tmp, out) == 1 ? 0 : -1;
}

/* "127.0.0.2-127.0.0.9", "127.0.0.2,127.0.0.3" or a mix. IPv4 only. */
static int parse_source_ips(phx_bench_t *b, const char *spec, char *err, size_t err_len)
{
    size_t cap = 0;
    const char *p = spec;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *dash = memchr(p, '-', len);
        struct in_addr lo, hi;
        if (dash != NULL) {
            if (parse_ipv4(p, (size_t)(dash - p), &lo) != 0 ||
                parse_ipv4(dash + 1, len - (size_t)(dash - p) - 1, &hi) != 0)
                goto bad;
        } else if (parse_ipv4(p, len, &lo) != 0) {
            goto bad;
        } else {
            hi = lo;
        }
        uint32_t a = ntohl(lo.s_addr), z = ntohl(hi.s_addr);
        if (z < a || z - a > 65535)
            goto bad;
        for (uint64_t ip = a; ip <= z; ip++) {
            if (b->n_src == cap) {
                cap = cap ? cap * 2 : 16;
                void *n = phx_realloc(b->src, cap * sizeof(*b->src));
                if (n == NULL) {
                    snprintf(err, err_len, "out of memory");
                    return PHX_ERR_NOMEM;
                }
                b->src = n;
            }
            struct sockaddr_in *sin = (struct sockaddr_in *)&b->src[b->n_src++];
            memset(sin, 0, sizeof(*b->src));
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl((uint32_t)ip);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (b->n_src == 0)
        goto bad;
    return 0;
bad:
    snprintf(err, err_len, "bad --source-ips '%s' (want A.B.C.D-A.B.C.D or a comma list)", spec);
    return PHX_ERR_INVALID;
}

/* Parses one URL into `t`: resolves the host and builds the request
 * around the token. */
static int target_parse(phx_bench_t *b, phx_bench_target_t *t, char *err, size_t err_len)
{
    const char *url = t->url;
    const char *what = url == b->opts.publish_url ? "--publish-url" : "--url";
    int rv = PHX_ERR_INVALID;
    const char *rest;
    int default_port;
    if (strncmp(url, "ws://", 5) == 0) {
        rest = url + 5;
        default_port = 80;
    } else if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
        default_port = 80;
    } else {
        snprintf(err, err_len, "%s must start with ws:// (wss is not supported): %s", what, url);
        return PHX_ERR_INVALID;
    }
    const char *slash = strchr(rest, '/');
    size_t hostport_len = slash ? (size_t)(slash - rest) : strlen(rest);
    char host[256];
    char port[16];
    const char *hp_end = rest + hostport_len;
    const char *colon;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', hostport_len);
        if (close == NULL || (size_t)(close - rest - 1) >= sizeof(host))
            goto bad_url;
        memcpy(host, rest + 1, (size_t)(close - rest - 1));
        host[close - rest - 1] = '\0';
        colon = close + 1 < hp_end && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(rest, ':', hostport_len);
        size_t hl = colon ? (size_t)(colon - rest) : hostport_len;
        if (hl == 0 || hl >= sizeof(host))
            goto bad_url;
        memcpy(host, rest, hl);
        host[hl] = '\0';
    }
    if (colon != NULL) {
        size_t pl = (size_t)(hp_end - colon - 1);
        if (pl == 0 || pl >= sizeof(port))
            goto bad_url;
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
    } else {
        snprintf(port, sizeof(port), "%d", default_port);
    }

    /* Name resolution happens once, before the loop runs. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        snprintf(err, err_len, "cannot resolve %s:%s: %s", host, port, gai_strerror(gai));
        return PHX_ERR_INVALID;
    }
    memcpy(&t->dst, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);

    /* The path is the socket prefix; like phoenix.js the bench appends
     * /websocket unless the URL already ends with it. */
    const char *path = slash ? slash : "/socket";
    size_t path_len = strcspn(path, "?#");
    while (path_len > 1 && path[path_len - 1] == '/')
        path_len--;
    bool has_ws = path_len >= 10 && memcmp(path + path_len - 10, "/websocket", 10) == 0;
    phx_buf_t head = {0}, tail = {0};
    rv = PHX_ERR_NOMEM;
    if (phx_buf_printf(&head, "GET %.*s%s?", (int)path_len, path, has_ws ? "" : "/websocket") ||
        (b->opts.params && b->opts.params[0] && phx_buf_printf(&head, "%s&", b->opts.params)) ||
        phx_buf_append_str(&head, "token="))
        goto fail;
    const char *host_open = t->dst.ss_family == AF_INET6 ? "[" : "";
    const char *host_close = t->dst.ss_family == AF_INET6 ? "]" : "";
    if (phx_buf_printf(&tail,
                       "&vsn=%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Key: ",
                       b->opts.vsn, host_open, host, host_close, port))
        goto fail;
    t->request_head = (char *)phx_buf_detach(&head, &t->request_head_len);
    t->request_tail = (char *)phx_buf_detach(&tail, &t->request_tail_len);
    return 0;
fail:
    phx_buf_dispose(&head);
    phx_buf_dispose(&tail);
    snprintf(err, err_len, "out of memory");
    return rv;
bad_url:
    snprintf(err, err_len, "bad %s '%s' (want ws://host:port/socket)", what, url);
    return PHX_ERR_INVALID;
}

int phx_bench_target_init(phx_bench_t *b, char *err, size_t err_len)
{
    const phx_bench_opts_t *o = &b->opts;
    int rv;
    b->n_targets = 0;
    for (uint32_t i = 0; i < o->n_urls; i++)
        b->targets[b->n_targets++].url = o->urls[i];
    b->publish_target = 0;
    if (o->publish_url != NULL) {
        /* The publisher joins a listed server when its URL is one of them. */
        uint32_t i = 0;
        while (i < o->n_urls && strcmp(o->urls[i], o->publish_url) != 0)
            i++;
        if (i == o->n_urls)
            b->targets[b->n_targets++].url = o->publish_url;
        b->publish_target = i;
    }
    for (uint32_t i = 0; i < b->n_targets; i++)
        if ((rv = target_parse(b, &b->targets[i], err, err_len)) != 0)
            return rv;

    if (o->source_ips != NULL) {
        for (uint32_t i = 0; i < b->n_targets; i++) {
            if (b->targets[i].dst.ss_family != AF_INET) {
                snprintf(err, err_len, "--source-ips needs IPv4 servers (%s)", b->targets[i].url);
                return PHX_ERR_INVALID;
            }
        }
        if ((rv = parse_source_ips(b, o->source_ips, err, err_len)) != 0)
            return rv;
    }
    b->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (b->sha1 == NULL) {
        snprintf(err, err_len, "OpenSSL has no SHA1");
        return PHX_ERR_INVALID;
    }
    return 0;
}

void phx_bench_target_dispose(phx_bench_t *b)
{
    for (uint32_t i = 0; i < b->n_targets; i++) {
        phx_free(b->targets[i].request_head);
        phx_free(b->targets[i].request_tail);
        b->targets[i].request_head = b->targets[i].request_tail = NULL;
    }
    phx_free(b->src);
    EVP_MD_free(b->sha1);
    b->src = NULL;
    b->sha1 = NULL;
}

/* ---- writes ---- */

static void conn_fail(phx_bench_conn_t *c, phx_bench_err_t kind, const char *what, int err)
{
    phx_bench_error(c->b, kind, c, "%s: %s", what, err ? uv_strerror(err) : "failed");
    phx_bench_conn_close(c);
}

/* Starts a uv_write of c->wbuf. */
static void write_start(phx_bench_conn_t *c)
{
    uv_buf_t buf = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    int rv = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, conn_on_write);
    if (rv != 0) {
        conn_fail(c, PHX_BENCH_ERR_CLOSED, "write", rv);
        return;
    }
    c->is_writing = true;
}

/* Sends `len` bytes now if the kernel takes them, else keeps the rest.
 * Borrows `data`. */
static void write_bytes(phx_bench_conn_t *c, const uint8_t *data, size_t len)
{
    if (len == 0 || c->is_closing)
        return;
    if (c->is_writing) {
        if (phx_buf_append(&c->pending, data, len) != 0)
            conn_fail(c, PHX_BENCH_ERR_RESOURCE, "out of memory", 0);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n == (int)len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, PHX_BENCH_ERR_CLOSED, "write", n);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    c->wbuf.len = 0;
    if (phx_buf_append(&c->wbuf, data + done, len - done) != 0) {
        conn_fail(c, PHX_BENCH_ERR_RESOURCE, "out of memory", 0);
        return;
    }
    write_start(c);
}

static void conn_on_write(uv_write_t *req, int status)
{
    phx_bench_conn_t *c = req->handle->data;
    c->is_writing = false;
    c->wbuf.len = 0;
    if (c->is_closing)
        return;
    if (status < 0) {
        conn_fail(c, PHX_BENCH_ERR_CLOSED, "write", status);
        return;
    }
    if (c->pending.len > 0) {
        phx_buf_t t = c->wbuf;
        c->wbuf = c->pending;
        c->pending = t;
        c->pending.len = 0;
        write_start(c);
    }
}

void phx_bench_conn_flush(phx_bench_conn_t *c)
{
    if (c->is_closing || c->ws == NULL || !wslay_event_want_write(c->ws))
        return;
    phx_bench_t *b = c->b;
    b->wscratch.len = 0;
    if (wslay_event_send(c->ws) != 0) {
        conn_fail(c, PHX_BENCH_ERR_RESOURCE, "wslay send", 0);
        return;
    }
    /* While a write is in flight the send callback appended to c->pending. */
    if (!c->is_writing)
        write_bytes(c, b->wscratch.data, b->wscratch.len);
}

/* ---- wslay callbacks ---- */

static ssize_t ws_on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user_data)
{
    phx_bench_conn_t *c = user_data;
    phx_bench_t *b = c->b;
    if (b->rx_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < b->rx_len ? len : b->rx_len;
    memcpy(buf, b->rx, n);
    b->rx += n;
    b->rx_len -= n;
    return (ssize_t)n;
}

static ssize_t ws_on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
    phx_bench_conn_t *c = user_data;
    phx_buf_t *dst = c->is_writing ? &c->pending : &c->b->wscratch;
    if (phx_buf_append(dst, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int ws_on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
    phx_bench_conn_t *c = user_data;
    uint64_t r = phx_bench_rand(c->b);
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0 && i > 0)
            r = phx_bench_rand(c->b);
        buf[i] = (uint8_t)(r >> (8 * (i % 8)));
    }
    return 0;
}

static void deliver(phx_bench_conn_t *c, const uint8_t *data, size_t len)
{
    phx_bench_msg_t m;
    if (!c->msg_is_text) {
        c->b->other_msgs++; /* binary payloads are not part of any scenario */
        return;
    }
    if (phx_bench_msg_decode((const char *)data, len, c->b->opts.is_v1, &m) != 0) {
        phx_bench_error(c->b, PHX_BENCH_ERR_PROTOCOL, c, "undecodable message: %.*s",
                        (int)(len > 120 ? 120 : len), (const char *)data);
        phx_bench_conn_close(c);
        return;
    }
    phx_bench_on_message(c, &m);
}

static void ws_on_frame_start(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg,
                              void *user_data)
{
    phx_bench_conn_t *c = user_data;
    c->frame_is_ctrl = (arg->opcode & 0x8) != 0;
    if (c->frame_is_ctrl)
        return;
    if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
        c->msg_is_text = arg->opcode == WSLAY_TEXT_FRAME;
        c->in.len = 0;
    }
    c->frame_is_fin = arg->fin != 0;
    c->frame_len = arg->payload_length;
    c->frame_off = 0;
    c->msg_is_done = false;
}

static void ws_on_frame_chunk(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_chunk_arg *arg,
                              void *user_data)
{
    phx_bench_conn_t *c = user_data;
    if (c->frame_is_ctrl || c->is_closing || arg->data_length == 0)
        return;
    /* The common case: a whole single-frame message in wslay's buffer. */
    if (c->frame_is_fin && c->frame_off == 0 && c->in.len == 0 &&
        arg->data_length == c->frame_len) {
        c->frame_off = arg->data_length;
        c->msg_is_done = true;
        deliver(c, arg->data, arg->data_length);
        return;
    }
    if (c->in.len + arg->data_length > MAX_MSG_BYTES ||
        phx_buf_append(&c->in, arg->data, arg->data_length) != 0) {
        phx_bench_error(c->b, PHX_BENCH_ERR_RESOURCE, c, "message over %u bytes", MAX_MSG_BYTES);
        phx_bench_conn_close(c);
        return;
    }
    c->frame_off += arg->data_length;
}

static void ws_on_frame_end(wslay_event_context_ptr ctx, void *user_data)
{
    phx_bench_conn_t *c = user_data;
    if (c->frame_is_ctrl || c->is_closing || !c->frame_is_fin || c->msg_is_done)
        return;
    deliver(c, c->in.data, c->in.len);
    c->in.len = 0;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    phx_bench_conn_t *c = user_data;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && !c->is_closing)
        phx_bench_on_eof(c);
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_on_recv,
    .send_callback = ws_on_send,
    .genmask_callback = ws_on_genmask,
    .on_frame_recv_start_callback = ws_on_frame_start,
    .on_frame_recv_chunk_callback = ws_on_frame_chunk,
    .on_frame_recv_end_callback = ws_on_frame_end,
    .on_msg_recv_callback = ws_on_msg,
};

/* Hands input bytes to wslay; messages reach scenario.c on the way. */
static void ws_feed(phx_bench_conn_t *c, const uint8_t *data, size_t len)
{
    phx_bench_t *b = c->b;
    b->rx = data;
    b->rx_len = len;
    int rv = wslay_event_recv(c->ws);
    b->rx = NULL;
    b->rx_len = 0;
    if (c->is_closing)
        return;
    if (rv != 0) {
        conn_fail(c, PHX_BENCH_ERR_RESOURCE, "wslay recv", 0);
        return;
    }
    if (!wslay_event_get_read_enabled(c->ws) && !wslay_event_get_close_received(c->ws)) {
        /* wslay queued a Close of its own: the server broke the framing. */
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "invalid WebSocket frame from the server");
        phx_bench_conn_flush(c);
        phx_bench_conn_close(c);
        return;
    }
    phx_bench_conn_flush(c);
}

/* ---- upgrade ---- */

static bool head_has_accept(const phx_bench_conn_t *c, const char *head, size_t len)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    char in[64];
    char want[64];
    size_t kl = strlen(c->ws_key);
    memcpy(in, c->ws_key, kl);
    memcpy(in + kl, WS_GUID, sizeof(WS_GUID) - 1);
    if (EVP_Digest(in, kl + sizeof(WS_GUID) - 1, md, &md_len, c->b->sha1, NULL) != 1)
        return false;
    int wl = EVP_EncodeBlock((unsigned char *)want, md, (int)md_len);
    const char *p = head;
    const char *end = head + len;
    static const char name[] = "sec-websocket-accept:";
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (ll > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
            const char *v = p + sizeof(name) - 1;
            const char *ve = p + ll;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            return ve - v == wl && memcmp(v, want, (size_t)wl) == 0;
        }
        p += ll + 1;
    }
    return false;
}

/* Reads the upgrade response from `data` (more bytes may follow in later
 * reads). Bytes past the head go to wslay. */
static void upgrade_feed(phx_bench_conn_t *c, const uint8_t *data, size_t len)
{
    const char *head;
    size_t head_len;
    const uint8_t *rest;
    size_t rest_len;
    const char *hit;
    if (c->in.len == 0 && (hit = find_crlf2(data, len)) != NULL) {
        head = (const char *)data;
        head_len = (size_t)(hit - head) + 4;
        rest = data + head_len;
        rest_len = len - head_len;
    } else {
        size_t old = c->in.len;
        if (old + len > MAX_HEAD_BYTES || phx_buf_append(&c->in, data, len) != 0) {
            phx_bench_error(c->b, PHX_BENCH_ERR_HANDSHAKE, c, "response head over %d bytes",
                            MAX_HEAD_BYTES);
            phx_bench_conn_close(c);
            return;
        }
        size_t from = old >= 3 ? old - 3 : 0;
        hit = find_crlf2(c->in.data + from, c->in.len - from);
        if (hit == NULL)
            return;
        head = (const char *)c->in.data;
        head_len = (size_t)(hit - head) + 4;
        /* The rest is still in `data`: the head ended inside this read. */
        rest_len = c->in.len - head_len;
        rest = data + len - rest_len;
    }
    if (head_len < 12 || memcmp(head, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(head, '\r', head_len);
        phx_bench_error(c->b, PHX_BENCH_ERR_HANDSHAKE, c, "upgrade refused: %.*s",
                        (int)(eol ? eol - head : 40), head);
        phx_bench_conn_close(c);
        return;
    }
    if (!head_has_accept(c, head, head_len)) {
        phx_bench_error(c->b, PHX_BENCH_ERR_HANDSHAKE, c, "missing or wrong Sec-WebSocket-Accept");
        phx_bench_conn_close(c);
        return;
    }
    phx_buf_dispose(&c->in);
    if (wslay_event_context_client_init(&c->ws, &ws_callbacks, c) != 0) {
        c->ws = NULL;
        conn_fail(c, PHX_BENCH_ERR_RESOURCE, "wslay context", 0);
        return;
    }
    wslay_event_config_set_no_buffering(c->ws, 1);
    wslay_event_config_set_max_recv_msg_length(c->ws, MAX_MSG_BYTES);
    c->state = PHX_CONN_OPEN;
    phx_bench_on_open(c);
    if (c->is_closing)
        return;
    if (rest_len > 0)
        ws_feed(c, rest, rest_len);
    else
        phx_bench_conn_flush(c);
}

/* ---- reads ---- */

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    phx_bench_conn_t *c = h->data;
    *buf = uv_buf_init((char *)c->b->rbuf, (unsigned)c->b->rbuf_cap);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    phx_bench_conn_t *c = s->data;
    if (nread == 0 || c->is_closing)
        return;
    if (nread < 0) {
        c->is_eof = true;
        uv_read_stop(s);
        if (c->state == PHX_CONN_UPGRADING) {
            phx_bench_error(c->b, PHX_BENCH_ERR_HANDSHAKE, c, "connection ended during upgrade: %s",
                            uv_strerror((int)nread));
            phx_bench_conn_close(c);
        } else if (nread == UV_EOF) {
            phx_bench_on_eof(c);
        } else {
            phx_bench_error(c->b, PHX_BENCH_ERR_CLOSED, c, "read: %s", uv_strerror((int)nread));
            phx_bench_conn_close(c);
        }
        return;
    }
    if (c->state == PHX_CONN_UPGRADING)
        upgrade_feed(c, (const uint8_t *)buf->base, (size_t)nread);
    else if (c->ws != NULL)
        ws_feed(c, (const uint8_t *)buf->base, (size_t)nread);
}

/* ---- connect ---- */

static void make_key(phx_bench_conn_t *c)
{
    uint8_t raw[16];
    uint64_t r1 = phx_bench_rand(c->b), r2 = phx_bench_rand(c->b);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    EVP_EncodeBlock((unsigned char *)c->ws_key, raw, sizeof(raw));
}

static void conn_on_connect(uv_connect_t *req, int status)
{
    phx_bench_conn_t *c = req->data;
    phx_bench_t *b = c->b;
    if (c->is_closing)
        return;
    if (status < 0) {
        conn_fail(c, PHX_BENCH_ERR_CONNECT, "connect", status);
        return;
    }
    int rv = uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
    if (rv != 0) {
        conn_fail(c, PHX_BENCH_ERR_CONNECT, "read start", rv);
        return;
    }
    c->state = PHX_CONN_UPGRADING;
    make_key(c);
    /* The request is assembled in the loop-wide scratch and written at
     * once; write_bytes copies whatever the kernel does not take. */
    const char *token = (const char *)b->tokens.data + b->token_off[c->index % b->n_tokens];
    size_t tl = strlen(token);
    size_t kl = strlen(c->ws_key);
    const phx_bench_target_t *t = &b->targets[c->target];
    size_t need = t->request_head_len + tl + t->request_tail_len + kl + 4;
    if (need > sizeof(b->msg_buf)) {
        conn_fail(c, PHX_BENCH_ERR_RESOURCE, "request too long", 0);
        return;
    }
    char *p = b->msg_buf;
    memcpy(p, t->request_head, t->request_head_len);
    p += t->request_head_len;
    memcpy(p, token, tl);
    p += tl;
    memcpy(p, t->request_tail, t->request_tail_len);
    p += t->request_tail_len;
    memcpy(p, c->ws_key, kl);
    p += kl;
    memcpy(p, "\r\n\r\n", 4);
    write_bytes(c, (const uint8_t *)b->msg_buf, need);
}

int phx_bench_conn_start(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    int rv;
    c->state = PHX_CONN_CONNECTING;
    c->is_closing = false;
    c->is_writing = false;
    c->is_eof = false;
    c->is_hb_pending = false;
    c->in.len = 0;
    c->wbuf.len = 0;
    c->pending.len = 0;
    c->frame_off = c->frame_len = 0;
    c->msg_is_done = false;
    c->frame_is_ctrl = false;
    if (b->n_src > 0) {
        struct sockaddr_storage *src = &b->src[b->next_src++ % b->n_src];
        rv = uv_tcp_init_ex(b->loop, &c->tcp, AF_INET);
        if (rv != 0)
            goto fail_init;
        c->has_handle = true;
        c->tcp.data = c;
        uv_os_fd_t fd;
        int one = 1;
        /* Defer the port choice to connect(): the kernel then only needs the
         * 4-tuple to be unique, not the (address, port) pair. */
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if ((rv = uv_tcp_bind(&c->tcp, (const struct sockaddr *)src, 0)) != 0)
            goto fail;
    } else {
        rv = uv_tcp_init(b->loop, &c->tcp);
        if (rv != 0)
            goto fail_init;
        c->has_handle = true;
        c->tcp.data = c;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    c->connect_req.data = c;
    rv = uv_tcp_connect(&c->connect_req, &c->tcp,
                        (const struct sockaddr *)&b->targets[c->target].dst, conn_on_connect);
    if (rv != 0)
        goto fail;
    return 0;
fail:
    phx_bench_error(b, PHX_BENCH_ERR_CONNECT, c, "connect: %s", uv_strerror(rv));
    phx_bench_conn_close(c);
    return rv;
fail_init:
    c->state = PHX_CONN_IDLE;
    phx_bench_error(
        b, rv == UV_EMFILE || rv == UV_ENFILE ? PHX_BENCH_ERR_RESOURCE : PHX_BENCH_ERR_CONNECT, c,
        "socket: %s", uv_strerror(rv));
    return rv;
}

/* ---- close ---- */

void phx_bench_conn_close(phx_bench_conn_t *c)
{
    if (c->is_closing || !c->has_handle)
        return;
    c->is_closing = true;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

static void conn_on_close(uv_handle_t *h)
{
    phx_bench_conn_t *c = h->data;
    c->has_handle = false;
    c->state = PHX_CONN_IDLE;
    c->is_writing = false;
    if (c->ws != NULL) {
        wslay_event_context_free(c->ws);
        c->ws = NULL;
    }
    /* An idle worker should not keep large buffers. */
    if (c->wbuf.cap > 4096)
        phx_buf_dispose(&c->wbuf);
    if (c->pending.cap > 4096)
        phx_buf_dispose(&c->pending);
    phx_buf_dispose(&c->in);
    c->wbuf.len = c->pending.len = 0;
    phx_bench_on_closed(c);
}

void phx_bench_conn_ws_close(phx_bench_conn_t *c)
{
    if (c->is_closing || c->ws == NULL)
        return;
    c->state = PHX_CONN_CLOSING;
    wslay_event_queue_close(c->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
    phx_bench_conn_flush(c);
}

int phx_bench_conn_push(phx_bench_conn_t *c, const char *join_ref, const char *ref,
                        const char *topic, const char *event, const char *payload,
                        size_t payload_len)
{
    phx_bench_t *b = c->b;
    if (c->is_closing || c->ws == NULL)
        return PHX_ERR_CLOSED;
    size_t n = phx_bench_msg_encode(b->msg_buf, sizeof(b->msg_buf), b->opts.is_v1, join_ref, ref,
                                    topic, event, payload, payload_len);
    if (n == 0) {
        conn_fail(c, PHX_BENCH_ERR_RESOURCE, "message too long", 0);
        return PHX_ERR_LIMIT;
    }
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)b->msg_buf, n};
    if (wslay_event_queue_msg(c->ws, &msg) != 0) {
        conn_fail(c, PHX_BENCH_ERR_RESOURCE, "wslay queue", 0);
        return PHX_ERR_NOMEM;
    }
    return 0;
}

void phx_bench_conn_dispose(phx_bench_conn_t *c)
{
    phx_buf_dispose(&c->wbuf);
    phx_buf_dispose(&c->pending);
    phx_buf_dispose(&c->in);
}
