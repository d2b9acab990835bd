/* redis_tls.c: the TLS bridge of rediss:// (see redis_tls.h). A unix
 * socket listener that redis.c's hiredis contexts connect to and, for each
 * connection accepted there, a TCP connection to Redis with a tls.c client
 * session between the two. Owns the listener, the handshake timer, the
 * bridged connections and the private directory of the socket. */
#include "redis_tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "list.h"
#include "log.h"
#include "mem.h"
#include "phx.h"
#include "tls.h"

/* One hiredis connection and its TLS connection to Redis. Freed when both
 * handles are closed. */
typedef struct bconn {
    phx_link_t link; /* b->conns, until closing */
    phx_redis_tls_t *b;
    uv_pipe_t pipe; /* hiredis's side */
    uv_tcp_t tcp;   /* Redis's side */
    uv_connect_t connect;
    phx_tls_t *tls;
    uint64_t since;     /* accepted at (loop time): the handshake's deadline */
    size_t pipe_queued; /* plaintext written to hiredis, not yet taken by the socket */
    size_t tcp_queued;  /* ciphertext written to Redis, not yet taken */
    int open_handles;
    bool is_ready; /* the TLS handshake is done: hiredis's bytes are read */
    bool is_pipe_reading, is_tcp_reading;
    bool is_draining; /* Redis ended: close once hiredis has what came before */
    bool is_closing;
} bconn_t;

/* A write that did not complete at once: owns its bytes (a TLS rcbuf, or
 * a copy of plaintext in data[]). */
typedef struct bwrite {
    uv_write_t w;
    bconn_t *c;
    phx_rcbuf_t *buf; /* NULL: the bytes are in data[] */
    size_t len;
    bool is_to_pipe;
    uint8_t data[];
} bwrite_t;

struct phx_redis_tls {
    phx_loop_t *loop;
    phx_tls_ctx_t *ctx;
    char *server_name;
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    bool has_dir, has_sock;
    uv_pipe_t listener;
    uv_pipe_t spare; /* takes a connection that cannot be served, to close it */
    bool is_spare_busy;
    uv_timer_t timer; /* handshake deadlines */
    bool is_started;  /* the handles exist */
    bool is_closing;
    int open_handles; /* the listener, the timer, one per connection */
    struct sockaddr_storage target;
    bool has_target;
    char target_name[80]; /* "ip:port", for logs */
    phx_list_t conns;
    char last_error[200]; /* empty: none since the last handshake */
    bool is_failing;      /* a TLS failure was logged in this streak */
    phx_redis_tls_stats_t st;
    void (*done)(void *arg);
    void *done_arg;
};

#define CONN_OF(l) PHX_CONTAINER_OF(l, bconn_t, link)

/* ---- creation ---- */

int phx_redis_tls_new(phx_redis_tls_t **out, phx_loop_t *loop, const char *server_name,
                      const char *ca_file, bool verify, char *err)
{
    phx_redis_tls_t *b = phx_calloc(1, sizeof(*b));
    if (b == NULL)
        goto nomem;
    b->loop = loop;
    if ((b->server_name = phx_strdup(server_name)) == NULL)
        goto nomem_b;
    b->ctx = phx_tls_client_ctx_new(ca_file, verify, err);
    if (b->ctx == NULL) {
        char why[PHX_ERR_LEN];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, PHX_ERR_LEN, "--redis rediss://: %.200s", why);
        phx_free(b->server_name);
        phx_free(b);
        return PHX_ERR_INVALID;
    }
    *out = b;
    return 0;
nomem_b:
    phx_free(b);
nomem:
    snprintf(err, PHX_ERR_LEN, "out of memory");
    return PHX_ERR_NOMEM;
}

static void remove_files(phx_redis_tls_t *b)
{
    if (b->has_sock)
        unlink(b->path);
    if (b->has_dir)
        rmdir(b->dir);
    b->has_sock = b->has_dir = false;
}

void phx_redis_tls_free(phx_redis_tls_t *b)
{
    if (b == NULL)
        return;
    PHX_ASSERT(b->open_handles == 0);
    remove_files(b);
    phx_tls_ctx_free(b->ctx);
    phx_free(b->server_name);
    phx_free(b);
}

const char *phx_redis_tls_path(const phx_redis_tls_t *b)
{
    return b->path;
}

const char *phx_redis_tls_last_error(const phx_redis_tls_t *b)
{
    return b->last_error[0] ? b->last_error : NULL;
}

const phx_redis_tls_stats_t *phx_redis_tls_stats(const phx_redis_tls_t *b)
{
    return &b->st;
}

int phx_redis_tls_set_target(phx_redis_tls_t *b, const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) == 0) {
        snprintf(b->target_name, sizeof(b->target_name), "%s:%d", ip, port);
    } else if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) == 0) {
        snprintf(b->target_name, sizeof(b->target_name), "[%s]:%d", ip, port);
    } else {
        return PHX_ERR_INVALID;
    }
    b->target = ss;
    b->has_target = true;
    return 0;
}

/* ---- failures ---- */

/* Records why a connection to Redis failed (for redis.c's log lines). */
static void set_error(phx_redis_tls_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(phx_redis_tls_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->last_error, sizeof(b->last_error), fmt, ap);
    va_end(ap);
    b->st.failures++;
}

/* A TLS failure: recorded, and logged once per streak (a streak ends with
 * a successful handshake). */
static void tls_failed(phx_redis_tls_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void tls_failed(phx_redis_tls_t *b, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    set_error(b, "TLS: %s", why);
    if (b->is_failing)
        return;
    b->is_failing = true;
    PHX_LOG_WARN("event=redis_tls_failed target=%s server_name=%s reason=\"%s\"", b->target_name,
                 b->server_name, why);
}

/* ---- one bridged connection ---- */

static void maybe_done(phx_redis_tls_t *b);

static void bconn_on_close(uv_handle_t *h)
{
    bconn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    phx_redis_tls_t *b = c->b;
    phx_tls_free(c->tls);
    phx_free(c);
    b->st.open--;
    b->open_handles--;
    maybe_done(b);
}

/* Idempotent. Pending writes end with UV_ECANCELED before the close
 * callbacks, which free the connection. */
static void bconn_close(bconn_t *c)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    phx_list_unlink(&c->b->conns, &c->link);
    uv_close((uv_handle_t *)&c->pipe, bconn_on_close);
    uv_close((uv_handle_t *)&c->tcp, bconn_on_close);
}

/* Redis is done: nothing more is read from either side, and the
 * connection closes once hiredis has been given what Redis sent before
 * (an error reply before a close, for instance). */
static void bconn_drain(bconn_t *c)
{
    c->is_draining = true;
    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->is_pipe_reading = c->is_tcp_reading = false;
    if (c->pipe_queued == 0)
        bconn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    bconn_t *c = h->data;
    (void)hint;
    /* The loop's scratch: read_cb follows at once on this thread. */
    *buf = uv_buf_init((char *)c->b->loop->scratch, PHX_SCRATCH_BYTES);
}

static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *w, int status)
{
    bwrite_t *bw = PHX_CONTAINER_OF(w, bwrite_t, w);
    bconn_t *c = bw->c;
    bool to_pipe = bw->is_to_pipe;
    if (to_pipe)
        c->pipe_queued -= bw->len;
    else
        c->tcp_queued -= bw->len;
    phx_rcbuf_unref(bw->buf);
    phx_free(bw);
    if (c->is_closing)
        return;
    if (status < 0) {
        if (!to_pipe)
            set_error(c->b, "write to Redis at %s: %s", c->b->target_name, uv_strerror(status));
        bconn_close(c);
        return;
    }
    if (c->is_draining) {
        if (c->pipe_queued == 0)
            bconn_close(c);
        return;
    }
    /* Below half the bound again: the paused side is read again. */
    if (to_pipe && !c->is_tcp_reading && c->pipe_queued <= PHX_REDIS_TLS_QUEUE_BYTES / 2) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_tcp_read) == 0)
            c->is_tcp_reading = true;
    } else if (!to_pipe && c->is_ready && !c->is_pipe_reading &&
               c->tcp_queued <= PHX_REDIS_TLS_QUEUE_BYTES / 2) {
        if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_pipe_read) == 0)
            c->is_pipe_reading = true;
    }
}

/* Writes `len` bytes to one side: at once when the socket takes them,
 * otherwise queued (counted against the bound). `owned` (taken) holds the
 * bytes; NULL: they are borrowed and what is queued is copied. Returns 0
 * or an error (the connection must close). */
static int bconn_write(bconn_t *c, bool to_pipe, phx_rcbuf_t *owned, const uint8_t *data,
                       size_t len)
{
    uv_stream_t *s = to_pipe ? (uv_stream_t *)&c->pipe : (uv_stream_t *)&c->tcp;
    size_t *queued = to_pipe ? &c->pipe_queued : &c->tcp_queued;
    uv_buf_t ub = uv_buf_init((char *)data, (unsigned)len);
    /* EAGAIN too while writes are queued: the order is kept. */
    int n = uv_try_write(s, &ub, 1);
    if (n < 0 && n != UV_EAGAIN) {
        phx_rcbuf_unref(owned);
        return n;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == len) {
        phx_rcbuf_unref(owned);
        return 0;
    }
    data += done;
    len -= done;
    bwrite_t *bw = phx_malloc(sizeof(*bw) + (owned ? 0 : len));
    if (bw == NULL) {
        phx_rcbuf_unref(owned);
        return PHX_ERR_NOMEM;
    }
    if (owned == NULL) {
        memcpy(bw->data, data, len);
        data = bw->data;
    }
    bw->c = c;
    bw->buf = owned;
    bw->len = len;
    bw->is_to_pipe = to_pipe;
    ub = uv_buf_init((char *)data, (unsigned)len);
    int rv = uv_write(&bw->w, s, &ub, 1, on_write);
    if (rv != 0) {
        phx_rcbuf_unref(owned);
        phx_free(bw);
        return rv;
    }
    *queued += len;
    if (*queued > c->b->st.peak_queued)
        c->b->st.peak_queued = *queued;
    return 0;
}

/* Writes the ciphertext tls.c has made to Redis. */
static int bconn_flush(bconn_t *c)
{
    while (phx_tls_pending(c->tls) > 0) {
        phx_rcbuf_t *buf = phx_tls_take(c->tls);
        if (buf == NULL)
            return PHX_ERR_NOMEM;
        int rv = bconn_write(c, false, buf, buf->data + buf->off, buf->len - buf->off);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* Plaintext from Redis (borrowed: the loop's TLS scratch) to hiredis. */
static bool deliver_to_pipe(void *arg, uint8_t *p, size_t n)
{
    bconn_t *c = arg;
    if (c->is_closing)
        return false;
    if (bconn_write(c, true, NULL, p, n) != 0) {
        bconn_close(c);
        return false;
    }
    return true;
}

static void handshake_done(bconn_t *c)
{
    phx_redis_tls_t *b = c->b;
    c->is_ready = true;
    b->st.handshakes++;
    b->is_failing = false;
    b->last_error[0] = '\0';
    PHX_LOG_DEBUG("event=redis_tls_up target=%s", b->target_name);
    /* hiredis's commands have waited in its socket until now. */
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_pipe_read) == 0)
        c->is_pipe_reading = true;
    else
        bconn_close(c);
}

/* A TLS error from phx_tls_feed: the alert (if any) goes out, best effort,
 * and both sides close. */
static void bconn_tls_error(bconn_t *c, int rv)
{
    const char *why = phx_tls_failure(c->tls);
    if (rv == PHX_ERR_AUTH)
        tls_failed(c->b, "certificate verification failed: %s", why ? why : "untrusted");
    else
        tls_failed(c->b, "%s", why ? why : phx_strerror(rv));
    bconn_flush(c);
    bconn_close(c);
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    bconn_t *c = s->data;
    phx_redis_tls_t *b = c->b;
    if (nread == 0 || c->is_closing)
        return;
    if (nread < 0) {
        if (!c->is_ready)
            tls_failed(b, "%s during the handshake",
                       nread == UV_EOF ? "Redis closed the connection" : uv_strerror((int)nread));
        else if (nread == UV_EOF)
            set_error(b, "Redis at %s closed the connection", b->target_name);
        else
            set_error(b, "read from Redis at %s: %s", b->target_name, uv_strerror((int)nread));
        bconn_drain(c);
        return;
    }
    int rv = phx_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread, b->loop->tls_scratch,
                          PHX_TLS_SCRATCH_BYTES, deliver_to_pipe, c);
    if (c->is_closing)
        return;
    if (rv < 0) {
        bconn_tls_error(c, rv);
        return;
    }
    if (bconn_flush(c) != 0) {
        set_error(b, "write to Redis at %s failed", b->target_name);
        bconn_close(c);
        return;
    }
    if (!c->is_ready && phx_tls_is_ready(c->tls)) {
        handshake_done(c);
        if (c->is_closing)
            return;
    }
    if (rv == 1) {
        /* close_notify: the same as the end of the stream. */
        set_error(b, "Redis at %s closed the TLS session", b->target_name);
        bconn_drain(c);
        return;
    }
    if (c->pipe_queued > PHX_REDIS_TLS_QUEUE_BYTES && c->is_tcp_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->is_tcp_reading = false;
    }
}

static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    bconn_t *c = s->data;
    if (nread == 0 || c->is_closing)
        return;
    if (nread < 0) {
        /* hiredis closed its connection (or lost it): nothing to report. */
        bconn_close(c);
        return;
    }
    int rv = phx_tls_write(c->tls, (const uint8_t *)buf->base, (size_t)nread);
    if (rv == 0)
        rv = bconn_flush(c);
    if (rv != 0) {
        set_error(c->b, "TLS to Redis at %s: %s", c->b->target_name, phx_strerror(rv));
        bconn_close(c);
        return;
    }
    if (c->tcp_queued > PHX_REDIS_TLS_QUEUE_BYTES && c->is_pipe_reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->is_pipe_reading = false;
    }
}

static void on_tcp_connect(uv_connect_t *req, int status)
{
    bconn_t *c = req->handle->data;
    phx_redis_tls_t *b = c->b;
    if (c->is_closing)
        return;
    if (status < 0) {
        set_error(b, "connect to %s: %s", b->target_name, uv_strerror(status));
        bconn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    /* As hiredis does on its own TCP connections: a dead peer is found. */
    uv_tcp_keepalive(&c->tcp, 1, 15);
    int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_tcp_read);
    if (rv != 0) {
        set_error(b, "read from Redis at %s: %s", b->target_name, uv_strerror(rv));
        bconn_close(c);
        return;
    }
    c->is_tcp_reading = true;
    /* The first feed makes the ClientHello. */
    rv = phx_tls_feed(c->tls, NULL, 0, b->loop->tls_scratch, PHX_TLS_SCRATCH_BYTES, deliver_to_pipe,
                      c);
    if (rv < 0) {
        bconn_tls_error(c, rv);
        return;
    }
    if (bconn_flush(c) != 0) {
        set_error(b, "write to Redis at %s failed", b->target_name);
        bconn_close(c);
    }
}

/* ---- the handshake deadline: one timer for every connection ---- */

static void on_timer(uv_timer_t *t)
{
    phx_redis_tls_t *b = t->data;
    uint64_t now = uv_now(b->loop->uv), next = 0;
    for (phx_link_t *l = b->conns.head; l != NULL;) {
        bconn_t *c = CONN_OF(l);
        l = l->next; /* closing unlinks c */
        if (c->is_ready)
            continue;
        uint64_t due = c->since + PHX_REDIS_TLS_HANDSHAKE_MS;
        if (due <= now) {
            tls_failed(b, "no handshake with %s within %d ms", b->target_name,
                       PHX_REDIS_TLS_HANDSHAKE_MS);
            bconn_close(c);
        } else if (next == 0 || due < next) {
            next = due;
        }
    }
    if (next)
        uv_timer_start(t, on_timer, next - now, 0);
}

/* ---- the listener ---- */

static void on_handle_closed(uv_handle_t *h);

static void on_spare_closed(uv_handle_t *h)
{
    phx_redis_tls_t *b = h->data;
    b->is_spare_busy = false;
    on_handle_closed(h);
}

static void on_connection(uv_stream_t *l, int status)
{
    phx_redis_tls_t *b = l->data;
    if (status < 0) {
        PHX_LOG_WARN("event=redis_tls_accept_failed error=%s", uv_strerror(status));
        return;
    }
    if (b->is_closing)
        return;
    bconn_t *c = phx_calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Accepted into the spare and closed at once: hiredis sees the
         * connection end and retries after its backoff (a connection left
         * unaccepted would stop libuv polling the listener for good). */
        PHX_LOG_WARN("event=redis_tls_accept_failed error=nomem");
        if (!b->is_spare_busy) {
            uv_pipe_init(b->loop->uv, &b->spare, 0);
            b->spare.data = b;
            b->is_spare_busy = true;
            b->open_handles++;
            uv_accept(l, (uv_stream_t *)&b->spare);
            uv_close((uv_handle_t *)&b->spare, on_spare_closed);
        }
        return;
    }
    uv_loop_t *uv = b->loop->uv;
    c->b = b;
    uv_pipe_init(uv, &c->pipe, 0);
    uv_tcp_init(uv, &c->tcp);
    c->pipe.data = c->tcp.data = c;
    c->open_handles = 2;
    c->since = uv_now(uv);
    b->open_handles++;
    b->st.open++;
    phx_list_append(&b->conns, &c->link);
    int rv = uv_accept(l, (uv_stream_t *)&c->pipe);
    if (rv != 0) {
        PHX_LOG_WARN("event=redis_tls_accept_failed error=%s", uv_strerror(rv));
        bconn_close(c);
        return;
    }
    b->st.accepted++;
    if (!b->has_target) {
        set_error(b, "no address for Redis yet");
        bconn_close(c);
        return;
    }
    if ((c->tls = phx_tls_client_new(b->ctx, b->server_name)) == NULL) {
        set_error(b, "TLS: out of memory");
        bconn_close(c);
        return;
    }
    rv = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&b->target, on_tcp_connect);
    if (rv != 0) {
        set_error(b, "connect to %s: %s", b->target_name, uv_strerror(rv));
        bconn_close(c);
        return;
    }
    if (!uv_is_active((uv_handle_t *)&b->timer))
        uv_timer_start(&b->timer, on_timer, PHX_REDIS_TLS_HANDSHAKE_MS, 0);
}

int phx_redis_tls_start(phx_redis_tls_t *b, char *err)
{
    uv_loop_t *uv = b->loop->uv;
    PHX_ASSERT(!b->is_started);
    uv_pipe_init(uv, &b->listener, 0);
    uv_timer_init(uv, &b->timer);
    b->listener.data = b->timer.data = b;
    b->is_started = true;
    b->open_handles = 2;
    /* $TMPDIR when its path leaves room in sun_path (108 bytes). */
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] != '/' || strlen(tmp) > 64)
        tmp = "/tmp";
    snprintf(b->dir, sizeof(b->dir), "%s/phxd-redis-XXXXXX", tmp);
    /* 0700: only this user can reach the socket in it. */
    if (mkdtemp(b->dir) == NULL) {
        int e = errno;
        snprintf(err, PHX_ERR_LEN, "--redis rediss://: cannot make a private directory in %s: %s",
                 tmp, strerror(e));
        b->dir[0] = '\0';
        return -e;
    }
    b->has_dir = true;
    /* The directory's path is at most 82 bytes: this fits sun_path. */
    snprintf(b->path, sizeof(b->path), "%.96s/tls.sock", b->dir);
    int rv = uv_pipe_bind(&b->listener, b->path);
    if (rv == 0) {
        b->has_sock = true;
        rv = uv_listen((uv_stream_t *)&b->listener, 16, on_connection);
    }
    if (rv != 0) {
        snprintf(err, PHX_ERR_LEN, "--redis rediss://: cannot listen on %s: %s", b->path,
                 uv_strerror(rv));
        return rv;
    }
    PHX_LOG_DEBUG("event=redis_tls_bridge path=%s server_name=%s", b->path, b->server_name);
    return 0;
}

/* ---- closing ---- */

static void maybe_done(phx_redis_tls_t *b)
{
    if (!b->is_closing || b->open_handles > 0 || b->done == NULL)
        return;
    void (*done)(void *) = b->done;
    b->done = NULL;
    done(b->done_arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    phx_redis_tls_t *b = h->data;
    b->open_handles--;
    maybe_done(b);
}

bool phx_redis_tls_close(phx_redis_tls_t *b, void (*done)(void *arg), void *arg)
{
    if (b == NULL || b->is_closing)
        return false;
    b->is_closing = true;
    /* The path goes at once (a bound socket's file may be removed while it
     * listens): nothing connects to it any more. */
    remove_files(b);
    if (!b->is_started)
        return false;
    b->done = done;
    b->done_arg = arg;
    uv_close((uv_handle_t *)&b->listener, on_handle_closed);
    uv_close((uv_handle_t *)&b->timer, on_handle_closed);
    while (b->conns.head != NULL)
        bconn_close(CONN_OF(b->conns.head));
    return true;
}
