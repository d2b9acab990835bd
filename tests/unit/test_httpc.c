/* Unit tests for http/client.c: the answer parser on its own (every
 * chunking down to one byte), then the pool on a libuv loop against a small
 * HTTP server written here on 127.0.0.1 (plain, and TLS through tls.c with
 * certificates made by the test), which answers as the test's mode says:
 * echo, chunked, until close, 500, silence, cut short, too large, garbage,
 * held until released. No timing is asserted: the only windows (a request
 * timeout, an idle timeout) are 400 ms or more and are awaited, not timed. */
#include "client.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "mem.h"
#include "phx.h"
#include "runner.h"
#include "testcert.h"
#include "tls.h"

/* ---- the answer parser ---- */

typedef struct {
    const char *bytes;
    int rv; /* 1 (complete) or the error, after the end of the stream */
    int status;
    const char *body;
    bool keep_alive;
} answer_case_t;

static const answer_case_t answers[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 1, 200, "hello", true},
    {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n"
     "0\r\nTrailer: x\r\n\r\n",
     1, 200, "hello world", true},
    {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", 1, 200, "until close",
     false},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 1, 200, "ok",
     true},
    {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 1, 200, "ok", false},
    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 1, 200, "ok", false},
    {"HTTP/1.1 204 No Content\r\n\r\n", 1, 204, "", true},
    {"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops", 1, 500, "oops", true},
    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1, 200, "", true},
    {"garbage\r\n\r\n", PHX_ERR_PROTO, 0, NULL, false},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     PHX_ERR_PROTO, 0, NULL, false},
    {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", PHX_ERR_PROTO, 0, NULL, false},
    {"HTTP/1.1 200 OK\r\nContent-Le", PHX_ERR_PROTO, 0, NULL, false},
    {"", PHX_ERR_PROTO, 0, NULL, false},
    {"HTTP/1.1 100 Continue\r\n\r\n", PHX_ERR_PROTO, 0, NULL, false},
    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", PHX_ERR_PROTO, 0, NULL,
     false},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", PHX_ERR_PROTO, 0, NULL, false},
    {"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n", PHX_ERR_LIMIT, 0, NULL, false},
};

/* Feeds `len` bytes in chunks of `chunk` from exact-size copies, then the
 * end of the stream. Returns 1 or the error. */
static int parse_chunked(phx_httpc_parser_t *ps, const char *bytes, size_t len, size_t chunk)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        uint8_t *copy = malloc(n);
        memcpy(copy, bytes + off, n);
        size_t used;
        int rv = phx_httpc_parser_feed(ps, copy, n, &used);
        free(copy);
        if (rv == 1)
            ASSERT_EQ(off + used, len); /* each answer ends its bytes */
        if (rv != 0)
            return rv;
        ASSERT_EQ(used, n);
        off += n;
    }
    return phx_httpc_parser_finish(ps);
}

static void parser_every_chunking(void)
{
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        const answer_case_t *a = &answers[i];
        size_t len = strlen(a->bytes);
        for (size_t chunk = 1; chunk <= (len ? len : 1); chunk++) {
            phx_httpc_parser_t ps;
            phx_httpc_parser_init(&ps, 1024, 1024);
            int rv = parse_chunked(&ps, a->bytes, len, chunk);
            if (rv != a->rv)
                fprintf(stderr, "case %zu chunk %zu: %d\n", i, chunk, rv);
            ASSERT_EQ(rv, a->rv);
            if (rv == 1) {
                ASSERT_EQ(ps.status, a->status);
                ASSERT_MEM_EQ(ps.body.data, ps.body.len, a->body, strlen(a->body));
                ASSERT_EQ(ps.keep_alive, a->keep_alive);
            }
            /* Once stopped, it stays stopped. */
            size_t used;
            ASSERT_EQ(phx_httpc_parser_feed(&ps, (const uint8_t *)"x", 1, &used), rv);
            phx_httpc_parser_dispose(&ps);
        }
    }
}

static void parser_bounds_and_extra_bytes(void)
{
    phx_buf_t body = {0};
    int status = 0;
    /* A chunked body over the bound, never stored past it. */
    phx_buf_t big = {0};
    ASSERT_EQ(phx_buf_append_str(&big, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"), 0);
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(phx_buf_append_str(&big, "c8\r\n"), 0);
        for (int j = 0; j < 200; j++)
            ASSERT_EQ(phx_buf_append_byte(&big, 'a'), 0);
        ASSERT_EQ(phx_buf_append_str(&big, "\r\n"), 0);
    }
    ASSERT_EQ(phx_buf_append_str(&big, "0\r\n\r\n"), 0);
    ASSERT_EQ(phx_httpc_parse_response(big.data, big.len, 1024, &status, &body), PHX_ERR_LIMIT);
    ASSERT_EQ(phx_httpc_parse_response(big.data, big.len, 4096, &status, &body), 0);
    ASSERT_EQ(status, 200);
    ASSERT_EQ(body.len, 2000);
    /* The same bytes: the wire count (framing included) is the bound. */
    ASSERT_EQ(phx_httpc_parse_response(big.data, big.len, 2000, &status, &body), PHX_ERR_LIMIT);
    phx_buf_dispose(&big);
    body.len = 0;
    /* A head over the header bound. */
    phx_httpc_parser_t ps;
    phx_httpc_parser_init(&ps, 65536, 64);
    const char *longhead =
        "HTTP/1.1 200 OK\r\nx-long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaa\r\ncontent-length: 0\r\n\r\n";
    size_t used;
    ASSERT_EQ(phx_httpc_parser_feed(&ps, (const uint8_t *)longhead, strlen(longhead), &used),
              PHX_ERR_LIMIT);
    phx_httpc_parser_dispose(&ps);
    /* Bytes after the answer are not taken; a reset parser takes the next. */
    const char *two = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 201 Created\r\n"
                      "content-length: 1\r\n\r\nx";
    phx_httpc_parser_init(&ps, 1024, 1024);
    ASSERT_EQ(phx_httpc_parser_feed(&ps, (const uint8_t *)two, strlen(two), &used), 1);
    ASSERT_EQ(used, 40);
    ASSERT_EQ(ps.status, 200);
    ASSERT_MEM_EQ(ps.body.data, ps.body.len, "ok", 2);
    phx_httpc_parser_reset(&ps);
    size_t used2;
    ASSERT_EQ(phx_httpc_parser_feed(&ps, (const uint8_t *)two + used, strlen(two) - used, &used2),
              1);
    ASSERT_EQ(used2, strlen(two) - used);
    ASSERT_EQ(ps.status, 201);
    ASSERT_MEM_EQ(ps.body.data, ps.body.len, "x", 1);
    phx_httpc_parser_dispose(&ps);
    phx_buf_dispose(&body);
}

/* ---- the test server ---- */

enum {
    M_ECHO,            /* 200 with the request's body */
    M_ECHO_THEN_CLOSE, /* the same, then close (no connection: close said) */
    M_CHUNKED,         /* 100 Continue, then a chunked "hello world" */
    M_CLOSE,           /* HTTP/1.1 with connection: close, body until close */
    M_HTTP10,          /* HTTP/1.0 without keep-alive, body until close */
    M_500,             /* 500 "oops" */
    M_SILENT,          /* never answers */
    M_MIDWAY,          /* promises 100 bytes, sends 7, closes */
    M_BIG_DECLARED,    /* content-length: 5000 */
    M_BIG_CHUNKED,     /* 5000 bytes in chunks */
    M_GARBAGE,         /* not HTTP */
    M_HOLD,            /* answers "ok" when srv_release says */
    M_ECHO_EXTRA,      /* M_ECHO, then (in its own write) an answer nobody asked for */
};

typedef struct srv srv_t;

typedef struct sconn {
    srv_t *s;
    uv_tcp_t tcp;
    phx_tls_t *tls;
    phx_buf_t in;
    int id;
    int held;
    int writes;
    bool is_closing;
    bool close_after_write;
    struct sconn *next;
} sconn_t;

struct srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    phx_tls_ctx_t *tls;
    int mode;
    int accepted; /* connections ever accepted */
    int open;     /* connections open now */
    int requests; /* requests read */
    int last_conn;
    phx_buf_t last_req;
    sconn_t *conns;
};

typedef struct {
    uv_write_t w;
    phx_rcbuf_t *buf;
} swrite_t;

static uint8_t tls_scratch[16384];

static void sconn_on_close(uv_handle_t *handle)
{
    sconn_t *sc = handle->data;
    srv_t *s = sc->s;
    for (sconn_t **p = &s->conns; *p; p = &(*p)->next)
        if (*p == sc) {
            *p = sc->next;
            break;
        }
    s->open--;
    phx_tls_free(sc->tls);
    phx_buf_dispose(&sc->in);
    phx_free(sc);
}

static void sconn_close(sconn_t *sc)
{
    if (sc->is_closing)
        return;
    sc->is_closing = true;
    uv_close((uv_handle_t *)&sc->tcp, sconn_on_close);
}

static void sconn_on_write(uv_write_t *w, int status)
{
    swrite_t *sw = (swrite_t *)w;
    sconn_t *sc = w->handle->data;
    phx_rcbuf_unref(sw->buf);
    phx_free(sw);
    sc->writes--;
    if (sc->close_after_write && sc->writes == 0)
        sconn_close(sc);
}

static void sconn_write_raw(sconn_t *sc, phx_rcbuf_t *b)
{
    swrite_t *sw = phx_malloc(sizeof(*sw));
    ASSERT(sw != NULL);
    sw->buf = b;
    uv_buf_t ub = uv_buf_init((char *)b->data, b->len);
    ASSERT_EQ(uv_write(&sw->w, (uv_stream_t *)&sc->tcp, &ub, 1, sconn_on_write), 0);
    sc->writes++;
}

static void sconn_flush(sconn_t *sc)
{
    while (sc->tls && phx_tls_pending(sc->tls) > 0)
        sconn_write_raw(sc, phx_tls_take(sc->tls));
}

static void sconn_send(sconn_t *sc, const void *data, size_t len)
{
    if (sc->is_closing)
        return;
    if (sc->tls) {
        ASSERT_EQ(phx_tls_write(sc->tls, data, len), 0);
        sconn_flush(sc);
        return;
    }
    phx_rcbuf_t *b = phx_rcbuf_new(len);
    memcpy(b->data, data, len);
    b->len = (uint32_t)len;
    sconn_write_raw(sc, b);
}

static void sconn_send_str(sconn_t *sc, const char *s)
{
    sconn_send(sc, s, strlen(s));
}

/* Closes once everything queued is written. */
static void sconn_close_after(sconn_t *sc)
{
    uv_read_stop((uv_stream_t *)&sc->tcp);
    sc->close_after_write = true;
    if (sc->writes == 0)
        sconn_close(sc);
}

static void srv_answer(sconn_t *sc, const uint8_t *body, size_t len)
{
    char head[128];
    switch (sc->s->mode) {
    case M_ECHO:
    case M_ECHO_THEN_CLOSE:
    case M_ECHO_EXTRA:
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\ncontent-length: %zu\r\n\r\n", len);
        sconn_send_str(sc, head);
        sconn_send(sc, body, len);
        if (sc->s->mode == M_ECHO_THEN_CLOSE)
            sconn_close_after(sc);
        if (sc->s->mode == M_ECHO_EXTRA)
            sconn_send_str(sc, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale");
        break;
    case M_CHUNKED:
        sconn_send_str(sc, "HTTP/1.1 100 Continue\r\n\r\n");
        sconn_send_str(sc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
        sconn_send_str(sc, "6\r\n world\r\n0\r\n\r\n");
        break;
    case M_CLOSE:
        sconn_send_str(sc, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil close");
        sconn_close_after(sc);
        break;
    case M_HTTP10:
        sconn_send_str(sc, "HTTP/1.0 200 OK\r\n\r\nold style");
        sconn_close_after(sc);
        break;
    case M_500:
        sconn_send_str(sc, "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops");
        break;
    case M_SILENT:
        break;
    case M_MIDWAY:
        sconn_send_str(sc, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial");
        sconn_close_after(sc);
        break;
    case M_BIG_DECLARED:
        sconn_send_str(sc, "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n");
        break;
    case M_BIG_CHUNKED: {
        char chunk[512];
        memset(chunk, 'b', sizeof(chunk));
        memcpy(chunk, "1f4\r\n", 5);
        memcpy(chunk + 505, "\r\n", 2);
        sconn_send_str(sc, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        for (int i = 0; i < 10; i++)
            sconn_send(sc, chunk, 507);
        sconn_send_str(sc, "0\r\n\r\n");
        break;
    }
    case M_GARBAGE:
        sconn_send_str(sc, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
        break;
    case M_HOLD:
        sc->held++;
        break;
    }
}

static size_t find_crlf2(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return i;
    return SIZE_MAX;
}

/* Answers every complete request in sc->in. */
static void sconn_process(sconn_t *sc)
{
    srv_t *s = sc->s;
    while (!sc->is_closing && !sc->close_after_write) {
        size_t end = find_crlf2(sc->in.data, sc->in.len);
        if (end == SIZE_MAX)
            return;
        size_t head = end + 4;
        char *h = phx_strndup((const char *)sc->in.data, head);
        for (char *c = h; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        const char *cl = strstr(h, "\r\ncontent-length:");
        size_t clen = cl ? strtoul(cl + 17, NULL, 10) : 0;
        phx_free(h);
        if (sc->in.len < head + clen)
            return;
        s->requests++;
        s->last_conn = sc->id;
        s->last_req.len = 0;
        ASSERT_EQ(phx_buf_append(&s->last_req, sc->in.data, head + clen), 0);
        srv_answer(sc, sc->in.data + head, clen);
        phx_buf_consume(&sc->in, head + clen);
    }
}

static bool sconn_take_plain(void *arg, uint8_t *p, size_t n)
{
    sconn_t *sc = arg;
    ASSERT_EQ(phx_buf_append(&sc->in, p, n), 0);
    return true;
}

static void sconn_on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    static char rbuf[65536];
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void sconn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sconn_t *sc = stream->data;
    if (nread == 0 || sc->is_closing)
        return;
    if (nread < 0) {
        sconn_close(sc);
        return;
    }
    if (sc->tls) {
        int rv = phx_tls_feed(sc->tls, (const uint8_t *)buf->base, (size_t)nread, tls_scratch,
                              sizeof(tls_scratch), sconn_take_plain, sc);
        sconn_flush(sc);
        if (rv != 0) {
            sconn_close_after(sc);
            return;
        }
    } else {
        ASSERT_EQ(phx_buf_append(&sc->in, buf->base, (size_t)nread), 0);
    }
    sconn_process(sc);
}

static void srv_on_connection(uv_stream_t *l, int status)
{
    srv_t *s = l->data;
    ASSERT_EQ(status, 0);
    sconn_t *sc = phx_calloc(1, sizeof(*sc));
    sc->s = s;
    ASSERT_EQ(uv_tcp_init(s->loop, &sc->tcp), 0);
    sc->tcp.data = sc;
    ASSERT_EQ(uv_accept(l, (uv_stream_t *)&sc->tcp), 0);
    if (s->tls)
        ASSERT((sc->tls = phx_tls_new(s->tls)) != NULL);
    sc->id = ++s->accepted;
    s->open++;
    sc->next = s->conns;
    s->conns = sc;
    ASSERT_EQ(uv_read_start((uv_stream_t *)&sc->tcp, sconn_on_alloc, sconn_on_read), 0);
}

static void srv_start(srv_t *s, uv_loop_t *loop, phx_tls_ctx_t *tls)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->tls = tls;
    ASSERT_EQ(uv_tcp_init(loop, &s->listener), 0);
    s->listener.data = s;
    struct sockaddr_in addr;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ASSERT_EQ(uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0), 0);
    ASSERT_EQ(uv_listen((uv_stream_t *)&s->listener, 64, srv_on_connection), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    ASSERT_EQ(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

/* Answers "ok" to every held request; later ones are echoed. */
static void srv_release(srv_t *s)
{
    s->mode = M_ECHO;
    for (sconn_t *sc = s->conns; sc; sc = sc->next)
        for (; sc->held > 0; sc->held--)
            sconn_send_str(sc, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
}

static void srv_stop(srv_t *s)
{
    for (sconn_t *sc = s->conns; sc; sc = sc->next)
        sconn_close(sc);
    uv_close((uv_handle_t *)&s->listener, NULL);
    phx_buf_dispose(&s->last_req);
}

/* ---- the client side ---- */

static uv_loop_t L;
static srv_t S;
static bool in_post; /* a callback must never run from inside phx_httpc_post */

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        while (!(cond))                                                                            \
            uv_run(&L, UV_RUN_ONCE);                                                               \
    } while (0)

typedef struct res {
    int calls;
    int err;
    int status;
    phx_buf_t body;
    /* what the callback does next */
    phx_httpc_t *post_on; /* posts "again" with `next` as its result */
    struct res *next;
    phx_httpc_req_t **self; /* cancels its own request (a no-op) */
    phx_httpc_t *close_on;  /* closes this pool */
    int *done;              /* counts the close's `done` */
} res_t;

static void on_res(void *arg, int err, int status, const uint8_t *body, size_t len);
static void count_done(void *arg);

static phx_httpc_req_t *post(phx_httpc_t *h, const char *body, res_t *r)
{
    phx_httpc_req_t *req = NULL;
    in_post = true;
    int rv = phx_httpc_post(h, "content-type: application/json\r\n", (const uint8_t *)body,
                            strlen(body), on_res, r, &req);
    in_post = false;
    ASSERT_EQ(rv, 0);
    ASSERT(req != NULL);
    return req;
}

static void on_res(void *arg, int err, int status, const uint8_t *body, size_t len)
{
    res_t *r = arg;
    ASSERT(!in_post);
    ASSERT(body != NULL);
    r->calls++;
    r->err = err;
    r->status = status;
    r->body.len = 0;
    ASSERT_EQ(phx_buf_append(&r->body, body, len), 0);
    if (r->self)
        phx_httpc_cancel(*r->self);
    if (r->post_on)
        post(r->post_on, "again", r->next);
    if (r->close_on)
        phx_httpc_close(r->close_on, count_done, r->done);
}

static void res_dispose(res_t *r, int n)
{
    for (int i = 0; i < n; i++)
        phx_buf_dispose(&r[i].body);
}

static void count_done(void *arg)
{
    (*(int *)arg)++;
}

static void opts_for_tests(phx_httpc_opts_t *o)
{
    phx_httpc_opts_init(o);
    /* Generous: valgrind and parallel sanitizer runs are slow. */
    o->timeout_ms = 60000;
}

static phx_httpc_t *pool(const char *scheme, const char *path, const phx_httpc_opts_t *o)
{
    char url[256], err[PHX_ERR_LEN];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, S.port, path);
    phx_httpc_t *h = NULL;
    int rv = phx_httpc_new(&h, &L, url, o, err);
    if (rv != 0)
        fprintf(stderr, "phx_httpc_new: %s\n", err);
    ASSERT_EQ(rv, 0);
    return h;
}

static void setup(phx_tls_ctx_t *tls)
{
    /* As phxd does: a write to a socket the peer closed is an error code. */
    signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ(uv_loop_init(&L), 0);
    srv_start(&S, &L, tls);
}

/* glibc keeps a resolver context per thread that ran getaddrinfo, freed
 * when the thread exits; libuv's pool threads exit only in
 * uv_library_shutdown. A test that resolved a name calls it before the
 * runner's _exit (so valgrind sees no leak), unless the tests share the
 * process (PHX_TEST_TIMEOUT=0), where libuv must stay usable. */
static void end_threadpool(void)
{
    const char *t = getenv("PHX_TEST_TIMEOUT");
    if (t == NULL || atoi(t) != 0)
        uv_library_shutdown();
}

/* Closes the pool and the server, runs the loop dry, closes it. */
static void teardown(phx_httpc_t *h)
{
    int done = 0;
    phx_httpc_close(h, count_done, &done);
    srv_stop(&S);
    while (uv_run(&L, UV_RUN_DEFAULT) != 0) {
    }
    ASSERT_EQ(done, 1);
    phx_tls_ctx_free(S.tls);
    ASSERT_EQ(uv_loop_close(&L), 0);
}

static void answers_content_length_and_sends_the_request(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/hook?x=1#frag", &o);
    res_t r = {0};
    post(h, "{\"a\":1}", &r);
    ASSERT_EQ(r.calls, 0);
    RUN_UNTIL(r.calls == 1);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_MEM_EQ(r.body.data, r.body.len, "{\"a\":1}", 7);
    char want[256];
    snprintf(want, sizeof(want),
             "POST /hook?x=1 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-length: 7\r\n"
             "content-type: application/json\r\n\r\n{\"a\":1}",
             S.port);
    ASSERT_MEM_EQ(S.last_req.data, S.last_req.len, want, strlen(want));
    /* No headers, no body. */
    res_t r2 = {0};
    ASSERT_EQ(phx_httpc_post(h, NULL, NULL, 0, on_res, &r2, NULL), 0);
    RUN_UNTIL(r2.calls == 1);
    ASSERT_EQ(r2.err, 0);
    ASSERT_EQ(r2.body.len, 0);
    snprintf(want, sizeof(want),
             "POST /hook?x=1 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-length: 0\r\n\r\n", S.port);
    ASSERT_MEM_EQ(S.last_req.data, S.last_req.len, want, strlen(want));
    teardown(h);
    res_dispose(&r, 1);
    res_dispose(&r2, 1);
}

static void keepalive_reuses_the_connection(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[3] = {{0}};
    post(h, "one", &r[0]);
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(phx_httpc_conns(h), 1);
    ASSERT_EQ(phx_httpc_inflight(h), 0);
    post(h, "two", &r[1]);
    RUN_UNTIL(r[1].calls == 1);
    ASSERT_MEM_EQ(r[1].body.data, r[1].body.len, "two", 3);
    /* Posted from a callback: the same connection again. */
    res_t cb = {.post_on = h, .next = &r[2]};
    post(h, "three", &cb);
    RUN_UNTIL(r[2].calls == 1);
    ASSERT_EQ(cb.err, 0);
    ASSERT_EQ(r[2].err, 0);
    ASSERT_MEM_EQ(r[2].body.data, r[2].body.len, "again", 5);
    ASSERT_EQ(S.accepted, 1);
    ASSERT_EQ(S.requests, 4);
    ASSERT_EQ(phx_httpc_conns(h), 1);
    teardown(h);
    res_dispose(r, 3);
    res_dispose(&cb, 1);
}

static void concurrency_up_to_max_conns_then_queue(void)
{
    setup(NULL);
    S.mode = M_HOLD;
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.max_conns = 2;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[5] = {{0}};
    for (int i = 0; i < 5; i++)
        post(h, "x", &r[i]);
    ASSERT_EQ(phx_httpc_inflight(h), 2);
    ASSERT_EQ(phx_httpc_queued(h), 3);
    ASSERT_EQ(phx_httpc_conns(h), 2);
    RUN_UNTIL(S.requests == 2);
    ASSERT_EQ(S.accepted, 2);
    ASSERT_EQ(phx_httpc_queued(h), 3);
    srv_release(&S);
    RUN_UNTIL(r[0].calls + r[1].calls + r[2].calls + r[3].calls + r[4].calls == 5);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(r[i].calls, 1);
        ASSERT_EQ(r[i].err, 0);
        ASSERT_EQ(r[i].status, 200);
    }
    ASSERT_EQ(S.accepted, 2);
    ASSERT_EQ(S.requests, 5);
    ASSERT_EQ(phx_httpc_inflight(h), 0);
    ASSERT_EQ(phx_httpc_queued(h), 0);
    ASSERT_EQ(phx_httpc_conns(h), 2);
    teardown(h);
    res_dispose(r, 5);
}

static void queue_full_fails_from_the_loop(void)
{
    setup(NULL);
    S.mode = M_HOLD;
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.max_conns = 1;
    o.max_queue = 1;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[3] = {{0}};
    for (int i = 0; i < 3; i++)
        post(h, "x", &r[i]);
    /* Not from inside the call (on_res checks too). */
    ASSERT_EQ(r[2].calls, 0);
    ASSERT_EQ(phx_httpc_inflight(h), 1);
    ASSERT_EQ(phx_httpc_queued(h), 1);
    RUN_UNTIL(r[2].calls == 1);
    ASSERT_EQ(r[2].err, PHX_ERR_LIMIT);
    ASSERT_EQ(r[2].status, 0);
    ASSERT_EQ(r[0].calls + r[1].calls, 0);
    RUN_UNTIL(S.requests == 1);
    srv_release(&S);
    RUN_UNTIL(r[0].calls == 1 && r[1].calls == 1);
    ASSERT_EQ(r[0].err, 0);
    ASSERT_EQ(r[1].err, 0);
    ASSERT_EQ(S.accepted, 1);
    teardown(h);
    res_dispose(r, 3);
}

/* One request in `mode`; returns its result in *r. */
static void one(phx_httpc_t *h, int mode, res_t *r)
{
    S.mode = mode;
    post(h, "x", r);
    RUN_UNTIL(r->calls == 1);
}

static void chunked_answer_after_interim_ones(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[2] = {{0}};
    one(h, M_CHUNKED, &r[0]);
    one(h, M_CHUNKED, &r[1]);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(r[i].err, 0);
        ASSERT_EQ(r[i].status, 200);
        ASSERT_MEM_EQ(r[i].body.data, r[i].body.len, "hello world", 11);
    }
    ASSERT_EQ(S.accepted, 1);
    teardown(h);
    res_dispose(r, 2);
}

static void answers_read_until_close(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[2] = {{0}};
    one(h, M_CLOSE, &r[0]);
    ASSERT_EQ(r[0].err, 0);
    ASSERT_EQ(r[0].status, 200);
    ASSERT_MEM_EQ(r[0].body.data, r[0].body.len, "until close", 11);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    one(h, M_HTTP10, &r[1]);
    ASSERT_EQ(r[1].err, 0);
    ASSERT_MEM_EQ(r[1].body.data, r[1].body.len, "old style", 9);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    ASSERT_EQ(S.accepted, 2);
    teardown(h);
    res_dispose(r, 2);
}

static void status_500_is_an_answer(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r = {0};
    one(h, M_500, &r);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(r.status, 500);
    ASSERT_MEM_EQ(r.body.data, r.body.len, "oops", 4);
    ASSERT_EQ(phx_httpc_conns(h), 1); /* kept alive */
    teardown(h);
    res_dispose(&r, 1);
}

static void connection_refused(void)
{
    setup(NULL);
    /* A port nobody listens on: bound, then closed. */
    uv_tcp_t t;
    ASSERT_EQ(uv_tcp_init(&L, &t), 0);
    struct sockaddr_in addr;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ASSERT_EQ(uv_tcp_bind(&t, (struct sockaddr *)&addr, 0), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    ASSERT_EQ(uv_tcp_getsockname(&t, (struct sockaddr *)&bound, &len), 0);
    int port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&L, UV_RUN_NOWAIT);
    char url[64], err[PHX_ERR_LEN];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h;
    ASSERT_EQ(phx_httpc_new(&h, &L, url, &o, err), 0);
    res_t r[2] = {{0}};
    post(h, "x", &r[0]);
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(r[0].err, UV_ECONNREFUSED);
    ASSERT_EQ(r[0].status, 0);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    /* Again: the address of a literal stays. */
    post(h, "x", &r[1]);
    RUN_UNTIL(r[1].calls == 1);
    ASSERT_EQ(r[1].err, UV_ECONNREFUSED);
    teardown(h);
    res_dispose(r, 2);
}

static void timeout_closes_the_connection(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.timeout_ms = 500;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r = {0};
    one(h, M_SILENT, &r);
    ASSERT_EQ(r.err, UV_ETIMEDOUT);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    ASSERT_EQ(phx_httpc_inflight(h), 0);
    /* The server sees the connection go: it is never reused. */
    RUN_UNTIL(S.open == 0);
    ASSERT_EQ(S.accepted, 1);
    teardown(h);
    res_dispose(&r, 1);
}

static void timeout_covers_the_queue(void)
{
    setup(NULL);
    S.mode = M_SILENT;
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.timeout_ms = 400;
    o.max_conns = 1;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[2] = {{0}};
    post(h, "x", &r[0]);
    post(h, "x", &r[1]);
    ASSERT_EQ(phx_httpc_queued(h), 1);
    RUN_UNTIL(r[0].calls == 1 && r[1].calls == 1);
    ASSERT_EQ(r[0].err, UV_ETIMEDOUT);
    ASSERT_EQ(r[1].err, UV_ETIMEDOUT);
    teardown(h);
    res_dispose(r, 2);
}

static void closed_mid_answer_is_proto(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r = {0};
    one(h, M_MIDWAY, &r);
    ASSERT_EQ(r.err, PHX_ERR_PROTO);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    teardown(h);
    res_dispose(&r, 1);
}

static void oversized_answer_is_limit(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.max_response_bytes = 1024;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[3] = {{0}};
    one(h, M_BIG_DECLARED, &r[0]);
    ASSERT_EQ(r[0].err, PHX_ERR_LIMIT);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    one(h, M_BIG_CHUNKED, &r[1]);
    ASSERT_EQ(r[1].err, PHX_ERR_LIMIT);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    /* The pool goes on. */
    one(h, M_ECHO, &r[2]);
    ASSERT_EQ(r[2].err, 0);
    ASSERT_EQ(S.accepted, 3);
    teardown(h);
    res_dispose(r, 3);
}

static void garbage_answer_is_proto(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r = {0};
    one(h, M_GARBAGE, &r);
    ASSERT_EQ(r.err, PHX_ERR_PROTO);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    RUN_UNTIL(S.open == 0);
    teardown(h);
    res_dispose(&r, 1);
}

static void keepalive_race_is_retried_once(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h = pool("http", "/", &o);
    /* The server answers and closes without saying so; the callback posts
     * at once, on the connection that is going away. */
    res_t second = {0};
    res_t first = {.post_on = h, .next = &second};
    S.mode = M_ECHO_THEN_CLOSE;
    post(h, "x", &first);
    RUN_UNTIL(first.calls == 1);
    ASSERT_EQ(first.err, 0);
    S.mode = M_ECHO;
    RUN_UNTIL(second.calls == 1);
    ASSERT_EQ(second.err, 0);
    ASSERT_EQ(second.status, 200);
    ASSERT_MEM_EQ(second.body.data, second.body.len, "again", 5);
    ASSERT_EQ(S.accepted, 2);
    ASSERT_EQ(S.requests, 2);
    ASSERT_EQ(S.last_conn, 2);
    teardown(h);
    res_dispose(&first, 1);
    res_dispose(&second, 1);
}

/* The same without retries (requests that must not run twice): the
 * request fails, and the next one goes on a new connection. */
static void keepalive_race_without_retry_fails(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.retry_reused = false;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t second = {0};
    res_t first = {.post_on = h, .next = &second};
    S.mode = M_ECHO_THEN_CLOSE;
    post(h, "x", &first);
    RUN_UNTIL(first.calls == 1);
    ASSERT_EQ(first.err, 0);
    S.mode = M_ECHO;
    RUN_UNTIL(second.calls == 1);
    ASSERT(second.err < 0);
    res_t third = {0};
    one(h, M_ECHO, &third);
    ASSERT_EQ(third.err, 0);
    ASSERT_EQ(S.accepted, 2);
    teardown(h);
    res_dispose(&first, 1);
    res_dispose(&second, 1);
    res_dispose(&third, 1);
}

static void idle_connection_is_closed(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.idle_ms = 400;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[2] = {{0}};
    one(h, M_ECHO, &r[0]);
    ASSERT_EQ(phx_httpc_conns(h), 1);
    RUN_UNTIL(phx_httpc_conns(h) == 0);
    RUN_UNTIL(S.open == 0);
    /* A server closing an idle connection is noticed too. */
    one(h, M_ECHO_THEN_CLOSE, &r[1]);
    ASSERT_EQ(r[1].err, 0);
    RUN_UNTIL(phx_httpc_conns(h) == 0);
    ASSERT_EQ(S.accepted, 2);
    teardown(h);
    res_dispose(r, 2);
}

static void cancel_never_calls_back(void)
{
    setup(NULL);
    S.mode = M_HOLD;
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.max_conns = 1;
    o.max_queue = 1;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[5] = {{0}};
    phx_httpc_req_t *q[5];
    for (int i = 0; i < 3; i++)
        q[i] = post(h, "x", &r[i]);
    /* Failing (queue full, not yet reported), queued, in flight. */
    phx_httpc_cancel(q[2]);
    phx_httpc_cancel(q[1]);
    ASSERT_EQ(phx_httpc_queued(h), 0);
    RUN_UNTIL(S.requests == 1);
    phx_httpc_cancel(q[0]);
    ASSERT_EQ(phx_httpc_inflight(h), 0);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    RUN_UNTIL(S.open == 0);
    /* A callback cancelling its own request does nothing. */
    S.mode = M_ECHO;
    r[3].self = &q[3];
    q[3] = post(h, "y", &r[3]);
    RUN_UNTIL(r[3].calls == 1);
    ASSERT_EQ(r[3].err, 0);
    /* Cancelled before the connection is made. */
    q[4] = post(h, "z", &r[4]);
    phx_httpc_cancel(q[4]);
    for (int i = 0; i < 20; i++)
        uv_run(&L, UV_RUN_NOWAIT);
    ASSERT_EQ(r[0].calls + r[1].calls + r[2].calls + r[4].calls, 0);
    teardown(h);
    res_dispose(r, 5);
}

static void close_with_requests_in_flight(void)
{
    setup(NULL);
    S.mode = M_HOLD;
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.max_conns = 2;
    phx_httpc_t *h = pool("http", "/", &o);
    res_t r[3] = {{0}};
    for (int i = 0; i < 3; i++)
        post(h, "x", &r[i]);
    RUN_UNTIL(S.requests == 2);
    int done = 0;
    phx_httpc_close(h, count_done, &done);
    /* Every callback ran from inside the close. */
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(r[i].calls, 1);
        ASSERT_EQ(r[i].err, PHX_ERR_CLOSED);
    }
    ASSERT_EQ(done, 0);
    ASSERT_EQ(phx_httpc_post(h, NULL, NULL, 0, on_res, &r[0], NULL), PHX_ERR_CLOSED);
    phx_httpc_close(h, count_done, &done); /* a no-op */
    RUN_UNTIL(done == 1);
    RUN_UNTIL(S.open == 0);
    srv_stop(&S);
    while (uv_run(&L, UV_RUN_DEFAULT) != 0) {
    }
    ASSERT_EQ(done, 1);
    ASSERT_EQ(uv_loop_close(&L), 0);
    res_dispose(r, 3);
}

static void close_from_a_callback(void)
{
    setup(NULL);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.max_conns = 1;
    phx_httpc_t *h = pool("http", "/", &o);
    int done = 0;
    res_t r[2] = {{.close_on = h, .done = &done}, {0}};
    post(h, "x", &r[0]);
    post(h, "y", &r[1]);
    ASSERT_EQ(phx_httpc_queued(h), 1);
    /* r[0]'s callback closes the pool: r[1] fails from inside it. */
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(r[0].err, 0);
    ASSERT_EQ(r[1].calls, 1);
    ASSERT_EQ(r[1].err, PHX_ERR_CLOSED);
    RUN_UNTIL(done == 1);
    ASSERT_EQ(S.requests, 1);
    srv_stop(&S);
    while (uv_run(&L, UV_RUN_DEFAULT) != 0) {
    }
    ASSERT_EQ(uv_loop_close(&L), 0);
    res_dispose(r, 2);
}

static void refuses_bad_urls_headers_and_options(void)
{
    ASSERT_EQ(uv_loop_init(&L), 0);
    static const char *bad[] = {
        "ftp://h/",       "http://",        "http:///x",      "http://:80/",
        "http://a b/",    "http://u@h/",    "http://h:0/",    "http://h:65536/",
        "http://h:x/",    "http://h:/",     "http://[::1/",   "http://[zz]/",
        "http://h/pa th", "http://h/\r\nx", "http://[::1]x/", "http://h:12345678/",
    };
    char err[PHX_ERR_LEN];
    phx_httpc_t *h;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        if (phx_httpc_new(&h, &L, bad[i], NULL, err) != PHX_ERR_INVALID)
            phx_test_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
        ASSERT(err[0] != 0);
    }
    static const char *good[] = {
        "http://127.0.0.1:1/",  "HTTP://[::1]:8080/x?y", "http://example.com/hook?x=1#f",
        "http://example.com?q", "https://localhost/",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (phx_httpc_new(&h, &L, good[i], NULL, err) != 0)
            phx_test_fail(__FILE__, __LINE__, "refused %s: %s", good[i], err);
        phx_httpc_close(h, NULL, NULL);
    }
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.max_conns = 0;
    ASSERT_EQ(phx_httpc_new(&h, &L, "http://h/", &o, err), PHX_ERR_INVALID);
    opts_for_tests(&o);
    o.ca_file = "/nonexistent/ca.pem";
    ASSERT_EQ(phx_httpc_new(&h, &L, "https://h/", &o, err), PHX_ERR_INVALID);
    ASSERT(strstr(err, "CA") != NULL);
    /* Header lines must end in CRLF and hold no empty line. */
    ASSERT_EQ(phx_httpc_new(&h, &L, "http://127.0.0.1:1/", NULL, err), 0);
    res_t r = {0};
    static const char *bad_headers[] = {
        "x: y",           "\r\n",       "a: b\r\n\r\nPOST / HTTP/1.1\r\n", "\n", "a: b\nc: d\r\n",
        "a: b\rc: d\r\n", "a: b\r\n\r",
    };
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++)
        ASSERT_EQ(phx_httpc_post(h, bad_headers[i], NULL, 0, on_res, &r, NULL), PHX_ERR_INVALID);
    ASSERT_EQ(phx_httpc_queued(h) + phx_httpc_inflight(h), 0);
    res_t fine = {0};
    ASSERT_EQ(phx_httpc_post(h, "a: 1\r\nb: 2\r\n", NULL, 0, on_res, &fine, NULL), 0);
    phx_httpc_close(h, NULL, NULL);
    ASSERT_EQ(fine.calls, 1);
    ASSERT_EQ(fine.err, PHX_ERR_CLOSED);
    while (uv_run(&L, UV_RUN_DEFAULT) != 0) {
    }
    ASSERT_EQ(r.calls, 0);
    res_dispose(&fine, 1);
    ASSERT_EQ(uv_loop_close(&L), 0);
}

static void resolves_a_name(void)
{
    setup(NULL);
    char url[64], err[PHX_ERR_LEN];
    snprintf(url, sizeof(url), "http://localhost:%d/n", S.port);
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    phx_httpc_t *h;
    ASSERT_EQ(phx_httpc_new(&h, &L, url, &o, err), 0);
    res_t r[2] = {{0}};
    post(h, "x", &r[0]);
    ASSERT_EQ(phx_httpc_queued(h), 1); /* waiting for the name */
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(r[0].err, 0);
    char host[64];
    snprintf(host, sizeof(host), "host: localhost:%d\r\n", S.port);
    ASSERT(strstr((const char *)S.last_req.data, host) != NULL);
    post(h, "y", &r[1]);
    RUN_UNTIL(r[1].calls == 1);
    ASSERT_EQ(r[1].err, 0);
    ASSERT_EQ(S.accepted, 1);
    teardown(h);
    res_dispose(r, 2);
    end_threadpool();
}

static void allocation_failures_are_clean(void)
{
    ASSERT_EQ(uv_loop_init(&L), 0);
    char err[PHX_ERR_LEN];
    res_t r = {0};
    phx_mem_reset_count();
    phx_httpc_t *h;
    ASSERT_EQ(phx_httpc_new(&h, &L, "http://127.0.0.1:1/x", NULL, err), 0);
    unsigned long n_new = phx_mem_count();
    phx_mem_reset_count();
    ASSERT_EQ(phx_httpc_post(h, "a: b\r\n", (const uint8_t *)"{}", 2, on_res, &r, NULL), 0);
    unsigned long n_post = phx_mem_count();
    phx_httpc_close(h, NULL, NULL);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.err, PHX_ERR_CLOSED);
    for (unsigned long i = 1; i <= n_new; i++) {
        phx_mem_fail_at(i);
        ASSERT_EQ(phx_httpc_new(&h, &L, "http://127.0.0.1:1/x", NULL, err), PHX_ERR_NOMEM);
        phx_mem_fail_at(0);
    }
    ASSERT_EQ(phx_httpc_new(&h, &L, "http://127.0.0.1:1/x", NULL, err), 0);
    for (unsigned long i = 1; i <= n_post; i++) {
        phx_mem_fail_at(i);
        int rv = phx_httpc_post(h, "a: b\r\n", (const uint8_t *)"{}", 2, on_res, &r, NULL);
        phx_mem_fail_at(0);
        /* The request and its bytes are made first; what fails later
         * (opening the connection) is reported through the callback. */
        if (rv != 0)
            ASSERT_EQ(rv, PHX_ERR_NOMEM);
    }
    phx_httpc_close(h, NULL, NULL);
    while (uv_run(&L, UV_RUN_DEFAULT) != 0) {
    }
    ASSERT_EQ(uv_loop_close(&L), 0);
    res_dispose(&r, 1);
}

/* ---- TLS ---- */

static phx_tls_ctx_t *server_ctx(const char *cert, const char *key)
{
    char err[PHX_ERR_LEN];
    phx_tls_ctx_t *ctx = phx_tls_ctx_new(cert, key, err);
    if (ctx == NULL)
        fprintf(stderr, "%s\n", err);
    ASSERT(ctx != NULL);
    return ctx;
}

static void https_without_verification(void)
{
    phx_test_certs_t c;
    phx_test_certs_make(&c, "phx-httpc");
    setup(server_ctx(c.cert, c.key));
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.tls_insecure = true;
    phx_httpc_t *h = pool("https", "/tls", &o);
    res_t r[3] = {{0}};
    post(h, "secret one", &r[0]);
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(r[0].err, 0);
    ASSERT_EQ(r[0].status, 200);
    ASSERT_MEM_EQ(r[0].body.data, r[0].body.len, "secret one", 10);
    post(h, "secret two", &r[1]);
    RUN_UNTIL(r[1].calls == 1);
    ASSERT_MEM_EQ(r[1].body.data, r[1].body.len, "secret two", 10);
    one(h, M_CHUNKED, &r[2]);
    ASSERT_MEM_EQ(r[2].body.data, r[2].body.len, "hello world", 11);
    ASSERT_EQ(S.accepted, 1);
    ASSERT(strncmp((const char *)S.last_req.data, "POST /tls HTTP/1.1\r\n", 20) == 0);
    teardown(h);
    res_dispose(r, 3);
    phx_test_certs_remove(&c);
}

/* An answer nobody asked for, in the TLS record after the real one (kept
 * inside the session, not in the bytes just read): never taken for the
 * next request's answer; the connection is not used again. */
static void https_extra_answer_is_not_kept(void)
{
    phx_test_certs_t c;
    phx_test_certs_make(&c, "phx-httpc");
    setup(server_ctx(c.cert, c.key));
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.tls_insecure = true;
    phx_httpc_t *h = pool("https", "/tls", &o);
    res_t r[2] = {{0}};
    S.mode = M_ECHO_EXTRA;
    post(h, "first", &r[0]);
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(r[0].err, 0);
    ASSERT_MEM_EQ(r[0].body.data, r[0].body.len, "first", 5);
    S.mode = M_ECHO;
    post(h, "second", &r[1]);
    RUN_UNTIL(r[1].calls == 1);
    ASSERT_EQ(r[1].err, 0);
    ASSERT_MEM_EQ(r[1].body.data, r[1].body.len, "second", 6);
    ASSERT_EQ(S.accepted, 2);
    teardown(h);
    res_dispose(r, 2);
    phx_test_certs_remove(&c);
}

static void https_verified_with_a_ca_file(void)
{
    phx_test_certs_t c;
    phx_test_certs_make(&c, "phx-httpc");
    setup(server_ctx(c.cert, c.key));
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    o.ca_file = c.cert;
    phx_httpc_t *h = pool("https", "/", &o);
    res_t r[3] = {{0}};
    post(h, "by address", &r[0]);
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(r[0].err, 0);
    ASSERT_MEM_EQ(r[0].body.data, r[0].body.len, "by address", 10);
    /* By name: SNI and the name checked against the certificate. */
    char url[64], err[PHX_ERR_LEN];
    snprintf(url, sizeof(url), "https://localhost:%d/", S.port);
    phx_httpc_t *byname;
    ASSERT_EQ(phx_httpc_new(&byname, &L, url, &o, err), 0);
    post(byname, "by name", &r[1]);
    RUN_UNTIL(r[1].calls == 1);
    ASSERT_EQ(r[1].err, 0);
    ASSERT_MEM_EQ(r[1].body.data, r[1].body.len, "by name", 7);
    int done = 0;
    phx_httpc_close(byname, count_done, &done);
    RUN_UNTIL(done == 1);
    post(h, "again", &r[2]);
    RUN_UNTIL(r[2].calls == 1);
    ASSERT_EQ(r[2].err, 0);
    teardown(h);
    res_dispose(r, 3);
    phx_test_certs_remove(&c);
    end_threadpool();
}

static void https_refuses_bad_certificates(void)
{
    phx_test_certs_t c;
    phx_test_certs_make(&c, "phx-httpc");
    setup(server_ctx(c.cert, c.key));
    phx_httpc_opts_t o;
    opts_for_tests(&o);
    /* Signed by no CA the client trusts. */
    o.ca_file = c.other;
    phx_httpc_t *h = pool("https", "/", &o);
    res_t r[2] = {{0}};
    post(h, "x", &r[0]);
    RUN_UNTIL(r[0].calls == 1);
    ASSERT_EQ(r[0].err, PHX_ERR_AUTH);
    ASSERT_EQ(S.requests, 0);
    ASSERT_EQ(phx_httpc_conns(h), 0);
    teardown(h);
    /* Trusted, but for another name. */
    setup(server_ctx(c.other, c.okey));
    h = pool("https", "/", &o);
    post(h, "x", &r[1]);
    RUN_UNTIL(r[1].calls == 1);
    ASSERT_EQ(r[1].err, PHX_ERR_AUTH);
    ASSERT_EQ(S.requests, 0);
    teardown(h);
    res_dispose(r, 2);
    phx_test_certs_remove(&c);
}

const phx_test_t phx_tests_httpc[] = {
    {"parser_every_chunking", parser_every_chunking},
    {"parser_bounds_and_extra_bytes", parser_bounds_and_extra_bytes},
    {"answers_content_length_and_sends_the_request", answers_content_length_and_sends_the_request},
    {"keepalive_reuses_the_connection", keepalive_reuses_the_connection},
    {"concurrency_up_to_max_conns_then_queue", concurrency_up_to_max_conns_then_queue},
    {"queue_full_fails_from_the_loop", queue_full_fails_from_the_loop},
    {"chunked_answer_after_interim_ones", chunked_answer_after_interim_ones},
    {"answers_read_until_close", answers_read_until_close},
    {"status_500_is_an_answer", status_500_is_an_answer},
    {"connection_refused", connection_refused},
    {"timeout_closes_the_connection", timeout_closes_the_connection},
    {"timeout_covers_the_queue", timeout_covers_the_queue},
    {"closed_mid_answer_is_proto", closed_mid_answer_is_proto},
    {"oversized_answer_is_limit", oversized_answer_is_limit},
    {"garbage_answer_is_proto", garbage_answer_is_proto},
    {"keepalive_race_is_retried_once", keepalive_race_is_retried_once},
    {"keepalive_race_without_retry_fails", keepalive_race_without_retry_fails},
    {"idle_connection_is_closed", idle_connection_is_closed},
    {"cancel_never_calls_back", cancel_never_calls_back},
    {"close_with_requests_in_flight", close_with_requests_in_flight},
    {"close_from_a_callback", close_from_a_callback},
    {"refuses_bad_urls_headers_and_options", refuses_bad_urls_headers_and_options},
    {"resolves_a_name", resolves_a_name},
    {"allocation_failures_are_clean", allocation_failures_are_clean},
    {"https_without_verification", https_without_verification},
    {"https_extra_answer_is_not_kept", https_extra_answer_is_not_kept},
    {"https_verified_with_a_ca_file", https_verified_with_a_ca_file},
    {"https_refuses_bad_certificates", https_refuses_bad_certificates},
    {NULL, NULL},
};
