/* Unit tests for redis.c's pure parts: the cluster message format (encode,
 * decode, every truncation and hostile field) and the --redis URL; and for
 * redis_tls.c, the TLS bridge of rediss://, on a libuv loop between a unix
 * socket client (hiredis's place) and a TLS echo server written here with
 * tls.c's server side and certificates made by the test. */
#include "redis.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "loopfx.h"
#include "mem.h"
#include "phx.h"
#include "redis_tls.h"
#include "runner.h"
#include "testcert.h"
#include "tls.h"

static phx_bcast_t bc(const char *event, const phx_payload_t *p, uint64_t sender, uint32_t flags)
{
    return (phx_bcast_t){.topic = "room:1",
                         .topic_len = 6,
                         .event = event,
                         .event_len = strlen(event),
                         .payload = p,
                         .origin = {.sender = sender, .flags = flags}};
}

static void roundtrip_every_payload_kind(void)
{
    phx_payload_t json = {(const uint8_t *)"{\"a\":[1,2]}", 11, false};
    phx_payload_t bin = {(const uint8_t *)"\x00\xff\x01", 3, true};
    const phx_payload_t *ps[] = {&json, &bin, NULL};
    for (int i = 0; i < 3; i++) {
        phx_buf_t out = {0};
        phx_bcast_t b =
            bc("new_msg", ps[i], 0x0102030405060708ULL, PHX_ORIGIN_CLIENT | PHX_ORIGIN_IDS_ONLY);
        ASSERT_EQ(phx_redis_msg_encode(&out, "node-a", 6, &b), 0);
        ASSERT_EQ(out.data[0], PHX_REDIS_MSG_VERSION);
        phx_redis_msg_t m;
        ASSERT_EQ(phx_redis_msg_decode(out.data, out.len, NULL, &m), 0);
        ASSERT_MEM_EQ(m.node, m.node_len, "node-a", 6);
        ASSERT_EQ(m.sender, 0x0102030405060708ULL);
        ASSERT_EQ(m.flags, (uint32_t)(PHX_ORIGIN_CLIENT | PHX_ORIGIN_IDS_ONLY));
        ASSERT_MEM_EQ(m.event, m.event_len, "new_msg", 7);
        ASSERT_EQ(m.has_payload, ps[i] != NULL);
        if (ps[i]) {
            ASSERT_MEM_EQ(m.payload.data, m.payload.len, ps[i]->data, ps[i]->len);
            ASSERT_EQ(m.payload.is_binary, ps[i]->is_binary);
        }
        /* Every truncation is malformed, never read past the end. */
        for (size_t n = 0; n < out.len; n++) {
            uint8_t *copy = phx_malloc(n ? n : 1);
            memcpy(copy, out.data, n);
            int rv = phx_redis_msg_decode(copy, n, NULL, &m);
            /* A binary payload may be cut and stay well-formed. */
            if (!(ps[i] == &bin && n >= out.len - bin.len))
                ASSERT_EQ(rv, PHX_ERR_PROTO);
            phx_free(copy);
        }
        phx_buf_dispose(&out);
    }
}

static void encode_refuses_what_does_not_fit(void)
{
    phx_buf_t out = {0};
    phx_bcast_t b = bc("e", NULL, 0, 0);
    char node[300];
    memset(node, 'n', sizeof(node));
    ASSERT_EQ(phx_redis_msg_encode(&out, node, 256, &b), PHX_ERR_INVALID);
    ASSERT_EQ(phx_redis_msg_encode(&out, node, 0, &b), PHX_ERR_INVALID);
    ASSERT_EQ(phx_redis_msg_encode(&out, node, 255, &b), 0);
    phx_buf_dispose(&out);
}

/* A message built by hand: version, node, sender, flags, event, kind, payload. */
static size_t build(uint8_t *buf, uint8_t version, const char *node, uint8_t flags,
                    const char *event, size_t elen, uint8_t kind, const char *payload, size_t plen)
{
    size_t n = 0, nl = strlen(node);
    buf[n++] = version;
    buf[n++] = (uint8_t)nl;
    memcpy(buf + n, node, nl);
    n += nl;
    memset(buf + n, 0, 8);
    n += 8;
    buf[n++] = flags;
    buf[n++] = (uint8_t)(elen >> 8);
    buf[n++] = (uint8_t)elen;
    memcpy(buf + n, event, elen);
    n += elen;
    buf[n++] = kind;
    memcpy(buf + n, payload, plen);
    return n + plen;
}

static void hostile_messages_are_malformed(void)
{
    uint8_t buf[512];
    phx_redis_msg_t m;
    size_t n = build(buf, 1, "a", 0, "ev", 2, 1, "{}", 2);
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), 0);
    n = build(buf, 2, "a", 0, "ev", 2, 1, "{}", 2); /* unknown version */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "", 0, "ev", 2, 1, "{}", 2); /* empty node */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 4, "ev", 2, 1, "{}", 2); /* unknown flag */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "", 0, 1, "{}", 2); /* empty event */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "\xff\xfe", 2, 1, "{}", 2); /* event not UTF-8 */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "e\0v", 3, 1, "{}", 2); /* NUL in the event */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 3, "{}", 2); /* unknown kind */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 0, "{}", 2); /* kind none with bytes */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "{\"a\":", 5); /* not JSON */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "", 0); /* empty JSON */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "[[[1]]]", 7); /* too deep */
    phx_json_limits_t lim = {.max_depth = 2};
    ASSERT_EQ(phx_redis_msg_decode(buf, n, &lim, &m), PHX_ERR_PROTO);
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), 0);
    /* A node length or an event length that points past the end. */
    n = build(buf, 1, "a", 0, "ev", 2, 1, "{}", 2);
    buf[1] = 200;
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 1, "{}", 2);
    buf[12] = 0xff; /* event length high byte */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), PHX_ERR_PROTO);
    n = build(buf, 1, "a", 0, "ev", 2, 2, "", 0); /* empty binary is fine */
    ASSERT_EQ(phx_redis_msg_decode(buf, n, NULL, &m), 0);
    ASSERT_EQ(m.payload.len, 0u);
    ASSERT(m.payload.is_binary);
}

static void urls(void)
{
    char err[PHX_ERR_LEN];
    phx_redis_url_t u;
    ASSERT_EQ(phx_redis_url_parse("redis://127.0.0.1:6380/3", &u, err), 0);
    ASSERT_STR_EQ(u.host, "127.0.0.1");
    ASSERT_EQ(u.port, 6380);
    ASSERT_EQ(u.db, 3);
    ASSERT(u.password == NULL && u.user == NULL && u.path == NULL);
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("redis://us%40er:p%3Ass@localhost", &u, err), 0);
    ASSERT_STR_EQ(u.user, "us@er");
    ASSERT_STR_EQ(u.password, "p:ss");
    ASSERT_STR_EQ(u.host, "localhost");
    ASSERT_EQ(u.port, 6379);
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("redis://:secret@[::1]:7000", &u, err), 0);
    ASSERT(u.user == NULL);
    ASSERT_STR_EQ(u.password, "secret");
    ASSERT_STR_EQ(u.host, "::1");
    ASSERT_EQ(u.port, 7000);
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("unix:///run/redis.sock", &u, err), 0);
    ASSERT_STR_EQ(u.path, "/run/redis.sock");
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("/tmp/r.sock", &u, err), 0);
    ASSERT_STR_EQ(u.path, "/tmp/r.sock");
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("rediss://:pw@redis.example:6380/2", &u, err), 0);
    ASSERT(u.is_tls);
    ASSERT_STR_EQ(u.host, "redis.example");
    ASSERT_STR_EQ(u.password, "pw");
    ASSERT_EQ(u.port, 6380);
    ASSERT_EQ(u.db, 2);
    phx_redis_url_dispose(&u);
    ASSERT_EQ(phx_redis_url_parse("redis://h", &u, err), 0);
    ASSERT(!u.is_tls);
    phx_redis_url_dispose(&u);
    const char *bad[] = {"",
                         "http://h",
                         "redis://",
                         "redis://h:",
                         "redis://h:0",
                         "redis://h:65536",
                         "redis://h:12x",
                         "redis://h/x",
                         "redis://[::1",
                         "unix://",
                         "unix://relative",
                         "redis://u:%zz@h",
                         "redis://h?x",
                         "redis://u:%00@h",
                         "redis://[::1]x",
                         "rediss://",
                         "rediss:/h",
                         "redisss://h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(phx_redis_url_parse(bad[i], &u, err), PHX_ERR_INVALID);
        ASSERT(u.host == NULL && u.path == NULL && u.password == NULL);
    }
}

/* ---- the TLS bridge ---- */

/* A TLS server on 127.0.0.1 that echoes the plaintext it gets (its own
 * output queue is unbounded: it stands in for Redis). While `is_deaf`, a
 * connection past its handshake reads nothing. */
typedef struct echo_conn {
    struct echo_srv *s;
    uv_tcp_t tcp;
    phx_tls_t *tls;
    bool is_closing;
    struct echo_conn *next;
} echo_conn_t;

typedef struct echo_srv {
    uv_tcp_t listener;
    int port;
    phx_tls_ctx_t *ctx;
    int accepted, open;
    size_t echoed;
    bool is_deaf;
    echo_conn_t *conns;
} echo_srv_t;

typedef struct {
    uv_write_t w;
    phx_rcbuf_t *buf;
} echo_write_t;

static uint8_t echo_scratch[65536];
static uint8_t echo_plain[16384];

static void echo_on_close(uv_handle_t *h)
{
    echo_conn_t *ec = h->data;
    for (echo_conn_t **p = &ec->s->conns; *p; p = &(*p)->next)
        if (*p == ec) {
            *p = ec->next;
            break;
        }
    ec->s->open--;
    phx_tls_free(ec->tls);
    phx_free(ec);
}

static void echo_close(echo_conn_t *ec)
{
    if (ec->is_closing)
        return;
    ec->is_closing = true;
    uv_close((uv_handle_t *)&ec->tcp, echo_on_close);
}

static void echo_on_write(uv_write_t *w, int status)
{
    echo_write_t *ew = (echo_write_t *)w;
    (void)status;
    phx_rcbuf_unref(ew->buf);
    phx_free(ew);
}

static void echo_flush(echo_conn_t *ec)
{
    while (phx_tls_pending(ec->tls) > 0) {
        echo_write_t *ew = phx_malloc(sizeof(*ew));
        ASSERT(ew != NULL);
        ew->buf = phx_tls_take(ec->tls);
        ASSERT(ew->buf != NULL);
        uv_buf_t ub = uv_buf_init((char *)ew->buf->data, ew->buf->len);
        ASSERT_EQ(uv_write(&ew->w, (uv_stream_t *)&ec->tcp, &ub, 1, echo_on_write), 0);
    }
}

static bool echo_back(void *arg, uint8_t *p, size_t n)
{
    echo_conn_t *ec = arg;
    ASSERT_EQ(phx_tls_write(ec->tls, p, n), 0);
    ec->s->echoed += n;
    return true;
}

static void echo_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init((char *)echo_scratch, sizeof(echo_scratch));
}

static void echo_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    echo_conn_t *ec = stream->data;
    if (nread == 0 || ec->is_closing)
        return;
    if (nread < 0) {
        echo_close(ec);
        return;
    }
    int rv = phx_tls_feed(ec->tls, (const uint8_t *)buf->base, (size_t)nread, echo_plain,
                          sizeof(echo_plain), echo_back, ec);
    echo_flush(ec);
    if (rv != 0) {
        echo_close(ec);
        return;
    }
    if (ec->s->is_deaf && phx_tls_is_ready(ec->tls))
        uv_read_stop(stream);
}

static void echo_on_connection(uv_stream_t *l, int status)
{
    echo_srv_t *s = l->data;
    ASSERT_EQ(status, 0);
    echo_conn_t *ec = phx_calloc(1, sizeof(*ec));
    ASSERT(ec != NULL);
    ec->s = s;
    ASSERT_EQ(uv_tcp_init(l->loop, &ec->tcp), 0);
    ec->tcp.data = ec;
    ASSERT_EQ(uv_accept(l, (uv_stream_t *)&ec->tcp), 0);
    ASSERT((ec->tls = phx_tls_new(s->ctx)) != NULL);
    s->accepted++;
    s->open++;
    ec->next = s->conns;
    s->conns = ec;
    ASSERT_EQ(uv_read_start((uv_stream_t *)&ec->tcp, echo_alloc, echo_on_read), 0);
}

static void echo_start(echo_srv_t *s, uv_loop_t *loop, const phx_test_certs_t *c)
{
    memset(s, 0, sizeof(*s));
    char err[PHX_ERR_LEN];
    s->ctx = phx_tls_ctx_new(c->cert, c->key, err);
    ASSERT(s->ctx != NULL);
    ASSERT_EQ(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    struct sockaddr_in addr;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ASSERT_EQ(uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0), 0);
    ASSERT_EQ(uv_listen((uv_stream_t *)&s->listener, 16, echo_on_connection), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    ASSERT_EQ(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void echo_undeafen(echo_srv_t *s)
{
    s->is_deaf = false;
    for (echo_conn_t *ec = s->conns; ec; ec = ec->next)
        ASSERT_EQ(uv_read_start((uv_stream_t *)&ec->tcp, echo_alloc, echo_on_read), 0);
}

static void echo_stop(echo_srv_t *s)
{
    for (echo_conn_t *ec = s->conns; ec; ec = ec->next)
        echo_close(ec);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

/* hiredis's place: a unix socket client of the bridge. */
typedef struct {
    uv_pipe_t pipe;
    uv_connect_t connect;
    uv_write_t w;
    phx_buf_t got;
    bool is_connected, is_eof, is_written, is_reading, is_closed;
    int connect_status;
} pclient_t;

static uint8_t pclient_scratch[65536];

static void pclient_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init((char *)pclient_scratch, sizeof(pclient_scratch));
}

static void pclient_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pclient_t *pc = s->data;
    if (nread > 0)
        ASSERT_EQ(phx_buf_append(&pc->got, buf->base, (size_t)nread), 0);
    else if (nread < 0)
        pc->is_eof = true;
}

static void pclient_on_connect(uv_connect_t *req, int status)
{
    pclient_t *pc = req->handle->data;
    pc->connect_status = status;
    pc->is_connected = true;
}

static void pclient_read(pclient_t *pc)
{
    ASSERT_EQ(uv_read_start((uv_stream_t *)&pc->pipe, pclient_alloc, pclient_on_read), 0);
    pc->is_reading = true;
}

static bool pclient_is_connected(void *arg)
{
    return ((pclient_t *)arg)->is_connected;
}

static void pclient_open(pclient_t *pc, loopfx_t *lf, const char *path, bool read)
{
    memset(pc, 0, sizeof(*pc));
    ASSERT_EQ(uv_pipe_init(&lf->uv, &pc->pipe, 0), 0);
    pc->pipe.data = pc;
    uv_pipe_connect(&pc->connect, &pc->pipe, path, pclient_on_connect);
    loopfx_run_until(lf, pclient_is_connected, pc);
    ASSERT_EQ(pc->connect_status, 0);
    if (read)
        pclient_read(pc);
}

static void pclient_on_write(uv_write_t *w, int status)
{
    pclient_t *pc = w->handle->data;
    ASSERT_EQ(status, 0);
    pc->is_written = true;
}

/* Writes `data` (borrowed until is_written). */
static void pclient_write(pclient_t *pc, const uint8_t *data, size_t len)
{
    pc->is_written = false;
    uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
    ASSERT_EQ(uv_write(&pc->w, (uv_stream_t *)&pc->pipe, &ub, 1, pclient_on_write), 0);
}

static void pclient_on_close(uv_handle_t *h)
{
    ((pclient_t *)h->data)->is_closed = true;
}

static bool pclient_is_closed(void *arg)
{
    return ((pclient_t *)arg)->is_closed;
}

/* Closes the client and waits: its memory may be used again after. */
static void pclient_close(pclient_t *pc, loopfx_t *lf)
{
    uv_close((uv_handle_t *)&pc->pipe, pclient_on_close);
    loopfx_run_until(lf, pclient_is_closed, pc);
}

typedef struct {
    pclient_t *pc;
    size_t want;
} got_t;

static bool got_enough(void *arg)
{
    got_t *g = arg;
    return g->pc->got.len >= g->want || g->pc->is_eof;
}

static bool pclient_eof(void *arg)
{
    return ((pclient_t *)arg)->is_eof;
}

static bool pclient_written(void *arg)
{
    return ((pclient_t *)arg)->is_written;
}

/* The bridge with its loop. */
typedef struct {
    loopfx_t lf;
    phx_redis_tls_t *b;
    bool is_closed;
} bridge_fx_t;

static void bridge_begin(bridge_fx_t *fx, const char *server_name, const char *ca, bool verify)
{
    memset(fx, 0, sizeof(*fx));
    loopfx_begin(&fx->lf);
    loopfx_loop_init(&fx->lf);
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_redis_tls_new(&fx->b, &fx->lf.loop, server_name, ca, verify, err), 0);
    ASSERT_EQ(phx_redis_tls_start(fx->b, err), 0);
}

static void bridge_on_closed(void *arg)
{
    ((bridge_fx_t *)arg)->is_closed = true;
}

static bool bridge_is_closed(void *arg)
{
    return ((bridge_fx_t *)arg)->is_closed;
}

/* Closes the bridge, runs the loop empty, checks that the socket and its
 * directory are gone and that the loop closes. */
static void bridge_end(bridge_fx_t *fx)
{
    char path[128], dir[128];
    snprintf(path, sizeof(path), "%s", phx_redis_tls_path(fx->b));
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    ASSERT(phx_redis_tls_close(fx->b, bridge_on_closed, fx));
    ASSERT(!phx_redis_tls_close(fx->b, bridge_on_closed, fx));
    loopfx_run_until(&fx->lf, bridge_is_closed, fx);
    while (uv_run(&fx->lf.uv, UV_RUN_DEFAULT) != 0) {
    }
    struct stat st;
    ASSERT(stat(path, &st) != 0);
    ASSERT(stat(dir, &st) != 0);
    phx_redis_tls_free(fx->b);
    loopfx_dispose(&fx->lf);
}

static void tls_bridge_carries_bytes_both_ways(void)
{
    phx_test_certs_t c;
    phx_test_certs_make(&c, "phx-rtls");
    bridge_fx_t fx;
    bridge_begin(&fx, "127.0.0.1", c.cert, true);
    /* The socket sits alone in a directory only this user can enter. */
    char dir[128];
    snprintf(dir, sizeof(dir), "%s", phx_redis_tls_path(fx.b));
    *strrchr(dir, '/') = '\0';
    struct stat st;
    ASSERT_EQ(stat(dir, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    echo_srv_t s;
    echo_start(&s, &fx.lf.uv, &c);
    ASSERT_EQ(phx_redis_tls_set_target(fx.b, "127.0.0.1", s.port), 0);
    ASSERT_EQ(phx_redis_tls_set_target(fx.b, "not an ip", 1), PHX_ERR_INVALID);
    pclient_t pc;
    pclient_open(&pc, &fx.lf, phx_redis_tls_path(fx.b), true);
    pclient_write(&pc, (const uint8_t *)"PING\r\n", 6);
    got_t g = {&pc, 6};
    loopfx_run_until(&fx.lf, got_enough, &g);
    ASSERT_MEM_EQ(pc.got.data, pc.got.len, "PING\r\n", 6);
    /* A megabyte, in order. */
    size_t n = 1 << 20;
    uint8_t *big = phx_malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7 + i / 251);
    pc.got.len = 0;
    pclient_write(&pc, big, n);
    g.want = n;
    loopfx_run_until(&fx.lf, got_enough, &g);
    ASSERT_MEM_EQ(pc.got.data, pc.got.len, big, n);
    const phx_redis_tls_stats_t *st2 = phx_redis_tls_stats(fx.b);
    ASSERT_EQ(st2->accepted, 1);
    ASSERT_EQ(st2->handshakes, 1);
    ASSERT_EQ(st2->failures, 0);
    ASSERT_EQ(st2->open, 1);
    ASSERT(phx_redis_tls_last_error(fx.b) == NULL);
    /* hiredis closing closes Redis's side too. */
    pclient_close(&pc, &fx.lf);
    while (s.open > 0 || st2->open > 0)
        uv_run(&fx.lf.uv, UV_RUN_ONCE);
    /* Redis closing closes hiredis's side. */
    phx_buf_dispose(&pc.got);
    pclient_open(&pc, &fx.lf, phx_redis_tls_path(fx.b), true);
    pclient_write(&pc, (const uint8_t *)"x", 1);
    g = (got_t){&pc, 1};
    loopfx_run_until(&fx.lf, got_enough, &g);
    echo_close(s.conns);
    loopfx_run_until(&fx.lf, pclient_eof, &pc);
    ASSERT(strstr(phx_redis_tls_last_error(fx.b), "closed") != NULL);
    pclient_close(&pc, &fx.lf);
    phx_buf_dispose(&pc.got);
    phx_free(big);
    echo_stop(&s);
    phx_tls_ctx_free(s.ctx);
    bridge_end(&fx);
    phx_test_certs_remove(&c);
}

/* The one test of the bound on each direction: what the bridge queued for a
 * side never went far past PHX_REDIS_TLS_QUEUE_BYTES, the bound was
 * reached, and every byte still arrives in order. */
static void tls_bridge_bounds_its_queues(void)
{
    phx_test_certs_t c;
    phx_test_certs_make(&c, "phx-rtls");
    bridge_fx_t fx;
    bridge_begin(&fx, "localhost", c.cert, true);
    echo_srv_t s;
    echo_start(&s, &fx.lf.uv, &c);
    ASSERT_EQ(phx_redis_tls_set_target(fx.b, "127.0.0.1", s.port), 0);
    size_t n = 8u << 20, slack = 160u << 10;
    uint8_t *big = phx_malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i ^ (i >> 9));
    /* hiredis does not read: the echo backs up toward the bridge, which
     * stops reading Redis; what hiredis writes still goes through. */
    pclient_t pc;
    pclient_open(&pc, &fx.lf, phx_redis_tls_path(fx.b), false);
    pclient_write(&pc, big, n);
    loopfx_run_until(&fx.lf, pclient_written, &pc);
    loopfx_run_for(&fx.lf, 100);
    const phx_redis_tls_stats_t *st = phx_redis_tls_stats(fx.b);
    ASSERT(st->peak_queued >= PHX_REDIS_TLS_QUEUE_BYTES);
    ASSERT(st->peak_queued <= PHX_REDIS_TLS_QUEUE_BYTES + slack);
    pclient_read(&pc);
    got_t g = {&pc, n};
    loopfx_run_until(&fx.lf, got_enough, &g);
    ASSERT_EQ(pc.got.len, n);
    ASSERT(memcmp(pc.got.data, big, n) == 0);
    ASSERT(st->peak_queued <= PHX_REDIS_TLS_QUEUE_BYTES + slack);
    pclient_close(&pc, &fx.lf);
    phx_buf_dispose(&pc.got);
    while (s.open > 0 || st->open > 0)
        uv_run(&fx.lf.uv, UV_RUN_ONCE);
    /* Redis does not read (after the handshake): the bridge stops reading
     * hiredis, whose write waits. */
    s.is_deaf = true;
    pclient_open(&pc, &fx.lf, phx_redis_tls_path(fx.b), true);
    pclient_write(&pc, big, n);
    loopfx_run_for(&fx.lf, 300);
    ASSERT(!pc.is_written);
    ASSERT(st->peak_queued <= PHX_REDIS_TLS_QUEUE_BYTES + slack);
    echo_undeafen(&s);
    g = (got_t){&pc, n};
    loopfx_run_until(&fx.lf, got_enough, &g);
    ASSERT_EQ(pc.got.len, n);
    ASSERT(memcmp(pc.got.data, big, n) == 0);
    ASSERT(pc.is_written);
    ASSERT(st->peak_queued <= PHX_REDIS_TLS_QUEUE_BYTES + slack);
    /* Closing the bridge with a connection open closes it too. */
    pclient_close(&pc, &fx.lf);
    phx_buf_dispose(&pc.got);
    phx_free(big);
    echo_stop(&s);
    phx_tls_ctx_free(s.ctx);
    bridge_end(&fx);
    phx_test_certs_remove(&c);
}

static void count_tls_failed(int level, const char *line, void *user)
{
    (void)level;
    if (strstr(line, "event=redis_tls_failed") != NULL)
        (*(int *)user)++;
}

/* A server that does not speak TLS: it answers anything with a RESP error,
 * as a plain Redis port would. */
static void plain_on_write(uv_write_t *w, int status)
{
    (void)status;
    phx_free(w);
}

static void plain_on_close(uv_handle_t *h)
{
    phx_free(h);
}

static void plain_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0) {
        uv_close((uv_handle_t *)stream, plain_on_close);
        return;
    }
    if (nread == 0)
        return;
    static char answer[] = "-ERR unknown command\r\n";
    uv_write_t *w = phx_malloc(sizeof(*w));
    uv_buf_t ub = uv_buf_init(answer, sizeof(answer) - 1);
    ASSERT_EQ(uv_write(w, stream, &ub, 1, plain_on_write), 0);
}

static void plain_on_connection(uv_stream_t *l, int status)
{
    ASSERT_EQ(status, 0);
    uv_tcp_t *t = phx_malloc(sizeof(*t));
    ASSERT_EQ(uv_tcp_init(l->loop, t), 0);
    ASSERT_EQ(uv_accept(l, (uv_stream_t *)t), 0);
    ASSERT_EQ(uv_read_start((uv_stream_t *)t, echo_alloc, plain_on_read), 0);
}

/* Each failure on Redis's side closes hiredis's connection and says why:
 * an untrusted certificate, a certificate for another name, a refused
 * connect, a server without TLS. A TLS failure is logged once per streak. */
static void tls_bridge_failures_close_and_say_why(void)
{
    phx_test_certs_t c;
    phx_test_certs_make(&c, "phx-rtls");
    int logged = 0;
    phx_set_log(count_tls_failed, &logged);
    struct {
        const char *server_name;
        const char *ca;
        const char *why;
    } cases[] = {
        {"127.0.0.1", c.other, "TLS: certificate verification failed"},
        {"redis.example", c.cert, "TLS: certificate verification failed: hostname mismatch"},
        {"10.9.8.7", c.cert, "TLS: certificate verification failed: IP address mismatch"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bridge_fx_t fx;
        bridge_begin(&fx, cases[i].server_name, cases[i].ca, true);
        echo_srv_t s;
        echo_start(&s, &fx.lf.uv, &c);
        ASSERT_EQ(phx_redis_tls_set_target(fx.b, "127.0.0.1", s.port), 0);
        for (int k = 0; k < 2; k++) {
            pclient_t pc;
            pclient_open(&pc, &fx.lf, phx_redis_tls_path(fx.b), true);
            pclient_write(&pc, (const uint8_t *)"PING\r\n", 6);
            loopfx_run_until(&fx.lf, pclient_eof, &pc);
            ASSERT_EQ(pc.got.len, 0);
            const char *why = phx_redis_tls_last_error(fx.b);
            if (why == NULL || strncmp(why, cases[i].why, strlen(cases[i].why)) != 0)
                phx_test_fail(__FILE__, __LINE__, "case %zu: \"%s\"", i, why ? why : "(null)");
            pclient_close(&pc, &fx.lf);
        }
        ASSERT_EQ(phx_redis_tls_stats(fx.b)->handshakes, 0);
        ASSERT_EQ(phx_redis_tls_stats(fx.b)->failures, 2);
        ASSERT_EQ(s.echoed, 0);
        ASSERT_EQ(logged, (int)i + 1); /* two failures, one line */
        echo_stop(&s);
        phx_tls_ctx_free(s.ctx);
        bridge_end(&fx);
    }
    /* Nothing listening; then a server that does not speak TLS. */
    bridge_fx_t fx;
    bridge_begin(&fx, "127.0.0.1", c.cert, true);
    uv_tcp_t plain;
    ASSERT_EQ(uv_tcp_init(&fx.lf.uv, &plain), 0);
    struct sockaddr_in addr;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ASSERT_EQ(uv_tcp_bind(&plain, (struct sockaddr *)&addr, 0), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    ASSERT_EQ(uv_tcp_getsockname(&plain, (struct sockaddr *)&bound, &len), 0);
    int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    ASSERT_EQ(phx_redis_tls_set_target(fx.b, "127.0.0.1", port), 0);
    pclient_t pc;
    pclient_open(&pc, &fx.lf, phx_redis_tls_path(fx.b), true);
    loopfx_run_until(&fx.lf, pclient_eof, &pc);
    ASSERT(strncmp(phx_redis_tls_last_error(fx.b), "connect to 127.0.0.1:", 21) == 0);
    ASSERT_EQ(logged, 3); /* not a TLS failure */
    pclient_close(&pc, &fx.lf);
    ASSERT_EQ(uv_listen((uv_stream_t *)&plain, 4, plain_on_connection), 0);
    pclient_open(&pc, &fx.lf, phx_redis_tls_path(fx.b), true);
    loopfx_run_until(&fx.lf, pclient_eof, &pc);
    ASSERT_EQ(pc.got.len, 0);
    ASSERT(strncmp(phx_redis_tls_last_error(fx.b), "TLS: ", 5) == 0);
    ASSERT_EQ(logged, 4);
    pclient_close(&pc, &fx.lf);
    uv_close((uv_handle_t *)&plain, NULL);
    bridge_end(&fx);
    phx_set_log(NULL, NULL);
    phx_test_certs_remove(&c);
}

const phx_test_t phx_tests_redis[] = {
    {"roundtrip_every_payload_kind", roundtrip_every_payload_kind},
    {"encode_refuses_what_does_not_fit", encode_refuses_what_does_not_fit},
    {"hostile_messages_are_malformed", hostile_messages_are_malformed},
    {"urls", urls},
    {"tls_bridge_carries_bytes_both_ways", tls_bridge_carries_bytes_both_ways},
    {"tls_bridge_bounds_its_queues", tls_bridge_bounds_its_queues},
    {"tls_bridge_failures_close_and_say_why", tls_bridge_failures_close_and_say_why},
    {NULL, NULL},
};
