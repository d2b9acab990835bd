/* client.c: the HTTP/1.1 client pool (see client.h). It sits beside the
 * server's own HTTP code, on the io layer: libuv TCP handles, tls.c for
 * https and llhttp in response mode. The pool owns its connections, its
 * requests (until their callback has run), one timer for every deadline and
 * one idle handle that reports failures on the loop's next turn. */
#include "client.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "list.h"
#include "log.h"
#include "phx.h"
#include "tls.h"

#define HTTPC_MAX_ADDRS 8
#define HTTPC_READ_BYTES 65536
#define HTTPC_TLS_SCRATCH_BYTES 16384

/* ---- the pool ---- */

typedef enum {
    REQ_QUEUED,  /* in h->queue */
    REQ_ACTIVE,  /* on a connection (or just taken off one) */
    REQ_FAILING, /* in h->failing, its error reported on the next turn */
    REQ_DONE,    /* its callback is running */
} req_state_t;

typedef struct conn conn_t;

struct phx_httpc_req {
    phx_link_t link;  /* h->queue or h->failing, by state */
    phx_link_t dlink; /* h->deadlines while queued or active */
    phx_httpc_t *h;
    conn_t *conn;
    phx_rcbuf_t *msg; /* the whole request: head and body */
    phx_httpc_cb cb;
    void *arg;
    uint64_t deadline;
    int err; /* REQ_FAILING: what the callback gets */
    req_state_t state;
    bool is_retried;  /* sent again after a dead keep-alive connection */
    bool needs_fresh; /* must go out on a new connection */
};

struct conn {
    phx_link_t link;  /* h->idle or h->busy */
    phx_link_t clink; /* h->connecting until connected */
    phx_httpc_t *h;
    uv_tcp_t tcp;
    uv_connect_t connect;
    phx_tls_t *tls;
    phx_httpc_parser_t ps;
    phx_httpc_req_t *req; /* the request being served */
    uint64_t since;       /* when the connect or the idle time began */
    int addr_idx;         /* which of the pool's addresses */
    int outcome;          /* of the bytes just read: 0, 1 (complete) or an error */
    bool has_extra;       /* bytes came after the answer */
    bool is_idle, is_connecting, is_reused, is_closing;
};

/* A write owns a reference to its bytes. */
typedef struct wreq {
    uv_write_t w;
    phx_rcbuf_t *buf;
} wreq_t;

struct phx_httpc {
    uv_loop_t *loop;
    phx_httpc_opts_t o;
    char *host;   /* name or address, IPv6 without brackets */
    char *prefix; /* "POST <target> HTTP/1.1\r\nhost: <authority>\r\ncontent-length: " */
    size_t prefix_len;
    char port[8];
    phx_tls_ctx_t *tls_ctx; /* https only */
    struct sockaddr_storage addrs[HTTPC_MAX_ADDRS];
    int naddrs, addr_next; /* 0 addresses: resolve before connecting */
    bool is_literal;       /* an IP address in the URL: never resolved */
    bool is_resolving;
    bool is_closing;
    uv_getaddrinfo_t gai;
    uv_timer_t timer;
    uint64_t timer_due; /* 0: not armed */
    uv_idle_t defer;
    phx_list_t queue, failing, deadlines; /* requests */
    phx_list_t idle, busy, connecting;    /* connections */
    size_t nconns, inflight;
    unsigned pending; /* closes and callbacks to wait for before the free */
    void (*done)(void *arg);
    void *done_arg;
    uint8_t *rbuf; /* read scratch: HTTPC_READ_BYTES then the TLS scratch */
};

#define REQ_OF(l) PHX_CONTAINER_OF(l, phx_httpc_req_t, link)
#define REQ_OF_D(l) PHX_CONTAINER_OF(l, phx_httpc_req_t, dlink)
#define CONN_OF(l) PHX_CONTAINER_OF(l, conn_t, link)
#define CONN_OF_C(l) PHX_CONTAINER_OF(l, conn_t, clink)

static void pump(phx_httpc_t *h);
static void timer_update(phx_httpc_t *h);
static void pending_done(phx_httpc_t *h);
static void conn_close(conn_t *c);
static void conn_failed(conn_t *c, int err);
static void conn_complete(conn_t *c);

void phx_httpc_opts_init(phx_httpc_opts_t *o)
{
    *o = (phx_httpc_opts_t){
        .max_conns = 256,
        .max_queue = 4096,
        .timeout_ms = 5000,
        .connect_timeout_ms = 0,
        .max_response_bytes = 1 << 20,
        .max_header_bytes = 32 << 10,
        .idle_ms = 30000,
        .retry_reused = true,
    };
}

/* ---- requests ---- */

/* Takes `req` off the pool's lists (not off a connection). */
static void req_unlink(phx_httpc_req_t *req)
{
    phx_httpc_t *h = req->h;
    PHX_ASSERT(req->conn == NULL);
    if (req->state == REQ_QUEUED)
        phx_list_unlink(&h->queue, &req->link);
    else if (req->state == REQ_FAILING)
        phx_list_unlink(&h->failing, &req->link);
    phx_list_unlink(&h->deadlines, &req->dlink);
}

static void req_free(phx_httpc_req_t *req)
{
    phx_rcbuf_unref(req->msg);
    phx_free(req);
}

/* Runs the callback and frees the request. The pool may be closing when
 * this returns: callers check h->is_closing. */
static void deliver(phx_httpc_req_t *req, int err, int status, const uint8_t *body, size_t len)
{
    req_unlink(req);
    req->state = REQ_DONE;
    req->cb(req->arg, err, status, body ? body : (const uint8_t *)"", len);
    req_free(req);
}

static void defer_on_idle(uv_idle_t *idle)
{
    phx_httpc_t *h = idle->data;
    /* Only the failures already waiting: one a callback adds waits for the
     * next turn, so a callback that posts into a full queue cannot spin. */
    for (size_t n = h->failing.count; n > 0 && h->failing.head && !h->is_closing; n--) {
        phx_httpc_req_t *req = REQ_OF(h->failing.head);
        deliver(req, req->err, 0, NULL, 0);
    }
    if (h->failing.head == NULL && !h->is_closing)
        uv_idle_stop(&h->defer);
}

/* Reports `err` on the loop's next turn, never from the caller's stack. */
static void fail_later(phx_httpc_req_t *req, int err)
{
    phx_httpc_t *h = req->h;
    req_unlink(req);
    req->state = REQ_FAILING;
    req->err = err;
    phx_list_append(&h->failing, &req->link);
    PHX_ASSERT(!h->is_closing);
    uv_idle_start(&h->defer, defer_on_idle);
}

static void requeue_head(phx_httpc_req_t *req)
{
    req->state = REQ_QUEUED;
    phx_list_prepend(&req->h->queue, &req->link);
}

/* ---- connections ---- */

/* Ties `req` to `c`. */
static void conn_assign(conn_t *c, phx_httpc_req_t *req)
{
    if (req->state == REQ_QUEUED)
        phx_list_unlink(&c->h->queue, &req->link);
    req->state = REQ_ACTIVE;
    req->conn = c;
    c->req = req;
    c->has_extra = false;
    c->h->inflight++;
}

/* Unties the connection's request (which stays on the deadline list until
 * it is delivered, failed, requeued or freed) and returns it. */
static phx_httpc_req_t *conn_detach(conn_t *c)
{
    phx_httpc_req_t *req = c->req;
    if (req == NULL)
        return NULL;
    req->conn = NULL;
    c->req = NULL;
    c->h->inflight--;
    return req;
}

static void conn_on_close(uv_handle_t *handle)
{
    conn_t *c = handle->data;
    phx_httpc_t *h = c->h;
    phx_tls_free(c->tls);
    phx_httpc_parser_dispose(&c->ps);
    phx_free(c);
    pending_done(h);
}

/* Idempotent; the connection's request must have been detached. Its
 * memory lives until the close callback, after any write callback. */
static void conn_close(conn_t *c)
{
    if (c->is_closing)
        return;
    phx_httpc_t *h = c->h;
    PHX_ASSERT(c->req == NULL);
    c->is_closing = true;
    h->nconns--;
    phx_list_unlink(c->is_idle ? &h->idle : &h->busy, &c->link);
    if (c->is_connecting)
        phx_list_unlink(&h->connecting, &c->clink);
    c->is_idle = c->is_connecting = false;
    h->pending++;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

static void conn_make_idle(conn_t *c)
{
    phx_httpc_t *h = c->h;
    phx_list_unlink(&h->busy, &c->link);
    phx_list_append(&h->idle, &c->link);
    c->is_idle = true;
    c->is_reused = true;
    c->since = uv_now(h->loop);
    phx_httpc_parser_reset(&c->ps);
}

static void conn_on_write(uv_write_t *w, int status)
{
    wreq_t *wr = PHX_CONTAINER_OF(w, wreq_t, w);
    conn_t *c = w->handle->data;
    phx_rcbuf_unref(wr->buf);
    phx_free(wr);
    if (status < 0 && status != UV_ECANCELED && !c->is_closing) {
        phx_httpc_t *h = c->h;
        conn_failed(c, status);
        pump(h);
    }
}

/* Writes `buf` (takes it). Returns 0 or an error. A request usually fits
 * the socket's buffer: it is written at once, without a write request and
 * the poll registration that costs; the rest (if any) is queued. */
static int conn_write(conn_t *c, phx_rcbuf_t *buf)
{
    uv_buf_t b = uv_buf_init((char *)buf->data + buf->off, buf->len - buf->off);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len) {
        phx_rcbuf_unref(buf);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
        phx_rcbuf_unref(buf);
        return n;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    wreq_t *wr = phx_malloc(sizeof(*wr));
    if (wr == NULL) {
        phx_rcbuf_unref(buf);
        return PHX_ERR_NOMEM;
    }
    wr->buf = buf;
    int rv = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write);
    if (rv != 0) {
        phx_rcbuf_unref(buf);
        phx_free(wr);
    }
    return rv;
}

/* Writes the ciphertext TLS has made. */
static int conn_flush(conn_t *c)
{
    while (phx_tls_pending(c->tls) > 0) {
        phx_rcbuf_t *b = phx_tls_take(c->tls);
        if (b == NULL)
            return PHX_ERR_NOMEM;
        int rv = conn_write(c, b);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* Feeds plaintext of the answer to the parser; false stops the delivery. */
static bool conn_parse(void *arg, uint8_t *p, size_t n)
{
    conn_t *c = arg;
    if (c->req == NULL) {
        /* Nothing was asked: a server talking out of turn. */
        c->outcome = PHX_ERR_PROTO;
        return false;
    }
    size_t used;
    int rv = phx_httpc_parser_feed(&c->ps, p, n, &used);
    if (rv == 0)
        return true;
    c->outcome = rv;
    if (rv == 1 && used < n)
        c->has_extra = true;
    return false;
}

/* Sends the connection's request (or, before the TLS handshake is done,
 * hands it to tls.c, which sends it as soon as it is). */
static int conn_send(conn_t *c)
{
    phx_rcbuf_t *m = c->req->msg;
    if (c->tls == NULL)
        return conn_write(c, phx_rcbuf_ref(m));
    int rv = phx_tls_write(c->tls, m->data, m->len);
    if (rv == 0 && !phx_tls_is_ready(c->tls)) {
        /* The first feed makes the ClientHello. */
        c->outcome = 0;
        rv = phx_tls_feed(c->tls, NULL, 0, c->h->rbuf + HTTPC_READ_BYTES, HTTPC_TLS_SCRATCH_BYTES,
                          conn_parse, c);
    }
    return rv ? rv : conn_flush(c);
}

/* The connection broke (`err`: a read or write error, UV_EOF when the
 * server closed). A read-until-close answer completes; a reused connection
 * that the server closed before answering a byte gets the request again on
 * a new connection, once; otherwise the request fails. */
static void conn_failed(conn_t *c, int err)
{
    phx_httpc_req_t *req = c->req;
    if (req == NULL) {
        conn_close(c);
        return;
    }
    if (err == UV_EOF && phx_httpc_parser_finish(&c->ps) == 1) {
        conn_complete(c);
        return;
    }
    conn_detach(c);
    bool is_race = c->h->o.retry_reused && c->ps.bytes == 0 && c->is_reused && !req->is_retried &&
                   (err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE);
    conn_close(c);
    if (is_race) {
        PHX_LOG_DEBUG("event=httpc_retry host=%s error=%s", c->h->host, phx_err_name(err));
        req->is_retried = req->needs_fresh = true;
        requeue_head(req);
        return;
    }
    fail_later(req, err == UV_EOF ? PHX_ERR_PROTO : err);
}

/* The answer is complete: the connection goes back to the pool (or
 * closes) before the callback, which may post on it. */
static void conn_complete(conn_t *c)
{
    phx_httpc_req_t *req = conn_detach(c);
    int status = c->ps.status;
    phx_buf_t body = c->ps.body;
    c->ps.body = (phx_buf_t){0};
    /* Bytes after the answer (in this read, or still inside the TLS
     * session) were not asked for: the connection is not used again. */
    bool extra = c->has_extra || (c->tls && phx_tls_has_input(c->tls));
    if (c->ps.keep_alive && !extra && !c->h->is_closing)
        conn_make_idle(c);
    else
        conn_close(c);
    deliver(req, 0, status, body.data, body.len);
    phx_buf_dispose(&body);
}

/* Acts on what conn_parse (or TLS) found in the bytes just read. */
static void conn_settle(conn_t *c)
{
    int outcome = c->outcome;
    c->outcome = 0;
    if (outcome == 1) {
        conn_complete(c);
    } else if (outcome < 0) {
        phx_httpc_req_t *req = conn_detach(c);
        conn_close(c);
        if (req)
            fail_later(req, outcome);
    }
}

static void conn_on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    conn_t *c = handle->data;
    /* One scratch per pool: read_cb follows at once on this thread. */
    *buf = uv_buf_init((char *)c->h->rbuf, HTTPC_READ_BYTES);
}

static void conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    phx_httpc_t *h = c->h;
    if (nread == 0 || c->is_closing)
        return;
    if (nread < 0) {
        conn_failed(c, (int)nread);
        pump(h);
        return;
    }
    c->outcome = 0;
    if (c->tls == NULL) {
        conn_parse(c, (uint8_t *)buf->base, (size_t)nread);
    } else {
        int rv = phx_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread,
                              h->rbuf + HTTPC_READ_BYTES, HTTPC_TLS_SCRATCH_BYTES, conn_parse, c);
        if (c->outcome == 0 && rv == 1) {
            /* close_notify: the same as the end of the stream. */
            conn_failed(c, UV_EOF);
            pump(h);
            return;
        }
        if (c->outcome == 0 && rv < 0) {
            const char *why = phx_tls_failure(c->tls);
            PHX_LOG_WARN("event=httpc_tls_failed host=%s reason=\"%s\"", h->host,
                         why ? why : "TLS error");
            c->outcome = rv;
        }
        if (c->outcome >= 0 && (rv = conn_flush(c)) != 0) {
            if (c->outcome == 1)
                c->has_extra = true; /* answered: delivered, the connection not kept */
            else
                c->outcome = rv;
        }
    }
    conn_settle(c);
    pump(h);
}

/* The connection could not be made: the request tries the pool's next
 * address, or fails (and the name is resolved again next time). */
static void conn_connect_failed(conn_t *c, int err)
{
    phx_httpc_t *h = c->h;
    phx_httpc_req_t *req = conn_detach(c);
    conn_close(c);
    bool has_next = c->addr_idx + 1 < h->naddrs;
    PHX_LOG_DEBUG("event=httpc_connect_failed host=%s error=%s", h->host, phx_err_name(err));
    if (has_next) {
        if (h->addr_next <= c->addr_idx)
            h->addr_next = c->addr_idx + 1;
    } else if (!h->is_literal && h->addr_next == c->addr_idx) {
        h->naddrs = 0;
    }
    if (req == NULL)
        return;
    if (has_next)
        requeue_head(req);
    else
        fail_later(req, err);
}

static void conn_on_connect(uv_connect_t *cr, int status)
{
    conn_t *c = cr->handle->data;
    phx_httpc_t *h = c->h;
    if (c->is_closing)
        return;
    phx_list_unlink(&h->connecting, &c->clink);
    c->is_connecting = false;
    if (status < 0) {
        conn_connect_failed(c, status);
        pump(h);
        return;
    }
    int rv = uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
    if (rv == 0)
        rv = conn_send(c);
    if (rv != 0) {
        c->outcome = rv;
        conn_settle(c);
    }
    pump(h);
}

/* Opens a connection for `req` to the pool's next address. */
static void conn_open(phx_httpc_t *h, phx_httpc_req_t *req)
{
    conn_t *c = phx_calloc(1, sizeof(*c));
    if (c == NULL) {
        fail_later(req, PHX_ERR_NOMEM);
        return;
    }
    c->h = h;
    phx_httpc_parser_init(&c->ps, h->o.max_response_bytes, h->o.max_header_bytes);
    if (h->tls_ctx && (c->tls = phx_tls_client_new(h->tls_ctx, h->host)) == NULL) {
        phx_free(c);
        fail_later(req, PHX_ERR_NOMEM);
        return;
    }
    int rv = uv_tcp_init(h->loop, &c->tcp);
    if (rv != 0) {
        phx_tls_free(c->tls);
        phx_free(c);
        fail_later(req, rv);
        return;
    }
    c->tcp.data = c;
    h->nconns++;
    phx_list_append(&h->busy, &c->link);
    phx_list_append(&h->connecting, &c->clink);
    c->is_connecting = true;
    c->since = uv_now(h->loop);
    c->addr_idx = h->addr_next;
    conn_assign(c, req);
    uv_tcp_nodelay(&c->tcp, 1);
    rv = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&h->addrs[c->addr_idx],
                        conn_on_connect);
    if (rv != 0)
        conn_connect_failed(c, rv);
}

/* ---- name resolution ---- */

/* No address: the queued requests fail unless a connection is left to
 * serve them. */
static void fail_waiting(phx_httpc_t *h, int err)
{
    if (h->nconns > 0)
        return;
    while (h->queue.head)
        fail_later(REQ_OF(h->queue.head), err);
}

static void gai_on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    phx_httpc_t *h = gai->data;
    h->is_resolving = false;
    if (h->is_closing) {
        uv_freeaddrinfo(res);
        pending_done(h);
        return;
    }
    h->naddrs = 0;
    for (struct addrinfo *ai = res; status == 0 && ai && h->naddrs < HTTPC_MAX_ADDRS;
         ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(h->addrs[0]))
            memcpy(&h->addrs[h->naddrs++], ai->ai_addr, ai->ai_addrlen);
    }
    uv_freeaddrinfo(res);
    h->addr_next = 0;
    if (h->naddrs == 0) {
        PHX_LOG_DEBUG("event=httpc_resolve_failed host=%s error=%s", h->host,
                      phx_err_name(status ? status : UV_EAI_NONAME));
        fail_waiting(h, status ? status : UV_EAI_NONAME);
    }
    pump(h);
}

static void resolve(phx_httpc_t *h)
{
    if (h->is_resolving)
        return;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rv = uv_getaddrinfo(h->loop, &h->gai, gai_on_resolved, h->host, h->port, &hints);
    if (rv != 0) {
        fail_waiting(h, rv);
        return;
    }
    h->is_resolving = true;
}

/* ---- scheduling ---- */

/* Gives queued requests to idle connections (the most recent first), then
 * to new ones up to max_conns. Never runs a callback. */
static void pump(phx_httpc_t *h)
{
    while (!h->is_closing && h->queue.head) {
        phx_httpc_req_t *req = REQ_OF(h->queue.head);
        if (!req->needs_fresh && h->idle.tail) {
            conn_t *c = CONN_OF(h->idle.tail);
            phx_list_unlink(&h->idle, &c->link);
            phx_list_append(&h->busy, &c->link);
            c->is_idle = false;
            conn_assign(c, req);
            int rv = conn_send(c);
            if (rv != 0)
                conn_failed(c, rv);
            continue;
        }
        if (h->nconns >= (size_t)h->o.max_conns) {
            /* A retry needs a new connection: an idle one makes room. */
            if (req->needs_fresh && h->idle.head) {
                conn_close(CONN_OF(h->idle.head));
                continue;
            }
            break;
        }
        if (h->naddrs == 0) {
            resolve(h);
            break;
        }
        conn_open(h, req);
    }
    timer_update(h);
}

static uint64_t connect_timeout(const phx_httpc_t *h)
{
    return (uint64_t)(h->o.connect_timeout_ms > 0 ? h->o.connect_timeout_ms : h->o.timeout_ms);
}

static void timer_on_fire(uv_timer_t *timer)
{
    phx_httpc_t *h = timer->data;
    h->timer_due = 0;
    uint64_t now = uv_now(h->loop);
    while (h->idle.head && CONN_OF(h->idle.head)->since + (uint64_t)h->o.idle_ms <= now)
        conn_close(CONN_OF(h->idle.head));
    while (h->connecting.head && CONN_OF_C(h->connecting.head)->since + connect_timeout(h) <= now)
        conn_connect_failed(CONN_OF_C(h->connecting.head), UV_ETIMEDOUT);
    while (h->deadlines.head && REQ_OF_D(h->deadlines.head)->deadline <= now) {
        phx_httpc_req_t *req = REQ_OF_D(h->deadlines.head);
        conn_t *c = req->conn;
        /* The connection is never reused: its late answer would be taken
         * for the next request's. */
        if (c) {
            conn_detach(c);
            conn_close(c);
        }
        deliver(req, UV_ETIMEDOUT, 0, NULL, 0);
        if (h->is_closing)
            return;
    }
    pump(h);
}

/* Arms the timer for the earliest of: a request's deadline, a connect
 * timeout, an idle connection's end. Each list is in time order (a pool has
 * one timeout of each kind), so only their heads matter. A timer armed
 * earlier than needed is left alone: it fires, finds nothing, re-arms. */
static void timer_update(phx_httpc_t *h)
{
    if (h->is_closing)
        return;
    uint64_t due = UINT64_MAX;
    if (h->deadlines.head)
        due = REQ_OF_D(h->deadlines.head)->deadline;
    if (h->connecting.head) {
        uint64_t t = CONN_OF_C(h->connecting.head)->since + connect_timeout(h);
        due = t < due ? t : due;
    }
    if (h->idle.head) {
        uint64_t t = CONN_OF(h->idle.head)->since + (uint64_t)h->o.idle_ms;
        due = t < due ? t : due;
    }
    if (due == UINT64_MAX) {
        if (h->timer_due) {
            uv_timer_stop(&h->timer);
            h->timer_due = 0;
        }
        return;
    }
    if (h->timer_due && h->timer_due <= due)
        return;
    uint64_t now = uv_now(h->loop);
    uv_timer_start(&h->timer, timer_on_fire, due > now ? due - now : 0, 0);
    h->timer_due = due ? due : 1;
}

/* ---- the API ---- */

/* Header lines: each ends in CRLF, CR and LF appear only as that pair,
 * and no line is empty (it would end the head early and make the rest a
 * second request). */
static bool headers_ok(const char *headers, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        bool is_line_start = i == 0 || headers[i - 1] == '\n';
        if (headers[i] == '\r' && (is_line_start || i + 1 == len || headers[i + 1] != '\n'))
            return false;
        if (headers[i] == '\n' && (i == 0 || headers[i - 1] != '\r'))
            return false;
    }
    return len == 0 || headers[len - 1] == '\n';
}

int phx_httpc_post(phx_httpc_t *h, const char *headers, const uint8_t *body, size_t len,
                   phx_httpc_cb cb, void *arg, phx_httpc_req_t **req_out)
{
    if (h->is_closing)
        return PHX_ERR_CLOSED;
    size_t hlen = headers ? strlen(headers) : 0;
    if (!headers_ok(headers, hlen))
        return PHX_ERR_INVALID;
    char clen[32];
    size_t cl = (size_t)snprintf(clen, sizeof(clen), "%zu\r\n", len);
    size_t fixed = h->prefix_len + cl + hlen + 2;
    if (len > UINT32_MAX - 4096 - fixed)
        return PHX_ERR_LIMIT;
    phx_httpc_req_t *req = phx_calloc(1, sizeof(*req));
    if (req == NULL)
        return PHX_ERR_NOMEM;
    if ((req->msg = phx_rcbuf_new(fixed + len)) == NULL) {
        phx_free(req);
        return PHX_ERR_NOMEM;
    }
    uint8_t *p = req->msg->data;
    memcpy(p, h->prefix, h->prefix_len);
    p += h->prefix_len;
    memcpy(p, clen, cl);
    p += cl;
    if (hlen)
        memcpy(p, headers, hlen);
    p += hlen;
    memcpy(p, "\r\n", 2);
    p += 2;
    if (len)
        memcpy(p, body, len);
    req->msg->len = (uint32_t)(fixed + len);
    req->h = h;
    req->cb = cb;
    req->arg = arg;
    req->deadline = uv_now(h->loop) + (uint64_t)h->o.timeout_ms;
    req->state = REQ_QUEUED;
    phx_list_append(&h->queue, &req->link);
    phx_list_append(&h->deadlines, &req->dlink);
    pump(h);
    /* Still queued: it waits for a connection unless the queue is full.
     * Requests that will get one of the free slots once the name is
     * resolved are not counted. */
    size_t free_slots = h->nconns < (size_t)h->o.max_conns ? (size_t)h->o.max_conns - h->nconns : 0;
    if (req->state == REQ_QUEUED && h->queue.count > (size_t)h->o.max_queue + free_slots) {
        fail_later(req, PHX_ERR_LIMIT);
        timer_update(h);
    }
    if (req_out)
        *req_out = req;
    return 0;
}

void phx_httpc_cancel(phx_httpc_req_t *req)
{
    if (req == NULL || req->state == REQ_DONE)
        return;
    phx_httpc_t *h = req->h;
    conn_t *c = req->conn;
    if (c) {
        conn_detach(c);
        conn_close(c);
    }
    req_unlink(req);
    req_free(req);
    pump(h);
}

size_t phx_httpc_inflight(const phx_httpc_t *h)
{
    return h->inflight;
}

size_t phx_httpc_queued(const phx_httpc_t *h)
{
    return h->queue.count;
}

size_t phx_httpc_conns(const phx_httpc_t *h)
{
    return h->nconns;
}

static void pool_free(phx_httpc_t *h)
{
    phx_tls_ctx_free(h->tls_ctx);
    phx_free(h->host);
    phx_free(h->prefix);
    phx_free(h->rbuf);
    phx_free(h);
}

static void pending_done(phx_httpc_t *h)
{
    PHX_ASSERT(h->pending > 0);
    if (--h->pending > 0 || !h->is_closing)
        return;
    if (h->done)
        h->done(h->done_arg);
    pool_free(h);
}

static void pool_on_handle_close(uv_handle_t *handle)
{
    pending_done(handle->data);
}

void phx_httpc_close(phx_httpc_t *h, void (*done)(void *arg), void *arg)
{
    if (h == NULL || h->is_closing)
        return;
    h->is_closing = true;
    h->done = done;
    h->done_arg = arg;
    h->pending++; /* held until the end of this call */
    while (h->idle.head)
        conn_close(CONN_OF(h->idle.head));
    while (h->busy.head) {
        conn_t *c = CONN_OF(h->busy.head);
        conn_detach(c);
        conn_close(c);
    }
    if (h->is_resolving) {
        /* The callback runs either way (UV_ECANCELED when it was not
         * started); the pool waits for it. */
        uv_cancel((uv_req_t *)&h->gai);
        h->pending++;
    }
    h->pending += 2;
    uv_close((uv_handle_t *)&h->timer, pool_on_handle_close);
    uv_close((uv_handle_t *)&h->defer, pool_on_handle_close);
    /* Every request left is on the deadline list or the failing list. */
    while (h->deadlines.head)
        deliver(REQ_OF_D(h->deadlines.head), PHX_ERR_CLOSED, 0, NULL, 0);
    while (h->failing.head)
        deliver(REQ_OF(h->failing.head), PHX_ERR_CLOSED, 0, NULL, 0);
    pending_done(h);
}

/* ---- the URL ---- */

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

/* Splits `url` into the pool's host, port, addresses (for an IP literal)
 * and request prefix. */
static int parse_url(phx_httpc_t *h, const char *url, bool *is_tls, char *err)
{
    const char *p;
    unsigned port;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        port = 80;
        *is_tls = false;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        port = 443;
        *is_tls = true;
    } else {
        snprintf(err, PHX_ERR_LEN, "the URL must start with http:// or https://");
        return PHX_ERR_INVALID;
    }
    size_t alen = strcspn(p, "/?#");
    const char *auth = p, *auth_end = p + alen;
    if (memchr(auth, '@', alen)) {
        snprintf(err, PHX_ERR_LEN, "user info in the URL is not supported");
        return PHX_ERR_INVALID;
    }
    const char *host, *host_end, *q;
    bool is_v6 = false;
    if (*auth == '[') {
        host = auth + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL) {
            snprintf(err, PHX_ERR_LEN, "unclosed [ in the URL's host");
            return PHX_ERR_INVALID;
        }
        q = host_end + 1;
        is_v6 = true;
    } else {
        host = auth;
        host_end = memchr(auth, ':', alen);
        if (host_end == NULL)
            host_end = auth_end;
        q = host_end;
        for (const char *s = host; s < host_end; s++)
            if (!is_name_char(*s)) {
                snprintf(err, PHX_ERR_LEN, "invalid character in the URL's host");
                return PHX_ERR_INVALID;
            }
    }
    if (host_end == host) {
        snprintf(err, PHX_ERR_LEN, "the URL has no host");
        return PHX_ERR_INVALID;
    }
    if (q < auth_end) {
        if (*q != ':' || q + 1 == auth_end || auth_end - q > 6) {
            snprintf(err, PHX_ERR_LEN, "invalid port in the URL");
            return PHX_ERR_INVALID;
        }
        port = 0;
        for (const char *s = q + 1; s < auth_end; s++) {
            if (*s < '0' || *s > '9') {
                snprintf(err, PHX_ERR_LEN, "invalid port in the URL");
                return PHX_ERR_INVALID;
            }
            port = port * 10 + (unsigned)(*s - '0');
        }
        if (port == 0 || port > 65535) {
            snprintf(err, PHX_ERR_LEN, "invalid port in the URL");
            return PHX_ERR_INVALID;
        }
    }
    if ((h->host = phx_strndup(host, (size_t)(host_end - host))) == NULL)
        goto nomem;
    snprintf(h->port, sizeof(h->port), "%u", port);
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&h->addrs[0];
    struct sockaddr_in *a4 = (struct sockaddr_in *)&h->addrs[0];
    if (is_v6) {
        if (uv_ip6_addr(h->host, (int)port, a6) != 0) {
            snprintf(err, PHX_ERR_LEN, "invalid IPv6 address in the URL");
            return PHX_ERR_INVALID;
        }
        h->is_literal = true;
    } else if (uv_inet_pton(AF_INET, h->host, &a4->sin_addr) == 0) {
        uv_ip4_addr(h->host, (int)port, a4);
        h->is_literal = true;
    }
    h->naddrs = h->is_literal ? 1 : 0;
    /* The target: the path and query, without a fragment. */
    const char *target = auth_end;
    size_t tlen = strcspn(target, "#");
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)target[i] <= ' ' || target[i] == 0x7f) {
            snprintf(err, PHX_ERR_LEN, "invalid character in the URL's path");
            return PHX_ERR_INVALID;
        }
    bool is_default = port == (*is_tls ? 443u : 80u);
    phx_buf_t b = {0};
    if (phx_buf_append_str(&b, "POST ") != 0 ||
        (target[0] != '/' && phx_buf_append_byte(&b, '/')) ||
        phx_buf_append(&b, target, tlen) != 0 ||
        phx_buf_printf(&b, " HTTP/1.1\r\nhost: %s%s%s", is_v6 ? "[" : "", h->host,
                       is_v6 ? "]" : "") != 0 ||
        (!is_default && phx_buf_printf(&b, ":%u", port) != 0) ||
        phx_buf_append_str(&b, "\r\ncontent-length: ") != 0) {
        phx_buf_dispose(&b);
        goto nomem;
    }
    h->prefix = (char *)phx_buf_detach(&b, &h->prefix_len);
    return 0;
nomem:
    snprintf(err, PHX_ERR_LEN, "out of memory");
    return PHX_ERR_NOMEM;
}

int phx_httpc_new(phx_httpc_t **out, uv_loop_t *loop, const char *url, const phx_httpc_opts_t *o,
                  char *err)
{
    int rv = PHX_ERR_NOMEM;
    phx_httpc_t *h = phx_calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        goto fail;
    }
    h->loop = loop;
    if (o)
        h->o = *o;
    else
        phx_httpc_opts_init(&h->o);
    h->o.ca_file = NULL; /* borrowed: used here only */
    if (h->o.max_conns < 1 || h->o.max_queue < 0 || h->o.timeout_ms < 1 ||
        h->o.connect_timeout_ms < 0 || h->o.idle_ms < 0 || h->o.max_response_bytes < 1 ||
        h->o.max_header_bytes < 1) {
        snprintf(err, PHX_ERR_LEN, "invalid HTTP client option");
        rv = PHX_ERR_INVALID;
        goto fail_h;
    }
    bool is_tls;
    if ((rv = parse_url(h, url, &is_tls, err)) != 0)
        goto fail_h;
    if ((h->rbuf = phx_malloc(HTTPC_READ_BYTES + HTTPC_TLS_SCRATCH_BYTES)) == NULL) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        rv = PHX_ERR_NOMEM;
        goto fail_h;
    }
    if (is_tls && (h->tls_ctx = phx_tls_client_ctx_new(o ? o->ca_file : NULL,
                                                       !(o && o->tls_insecure), err)) == NULL) {
        rv = PHX_ERR_INVALID;
        goto fail_h;
    }
    /* Neither handle can fail to initialize on a live loop. */
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_idle_init(loop, &h->defer);
    h->defer.data = h;
    h->gai.data = h;
    *out = h;
    return 0;
fail_h:
    pool_free(h);
fail:
    return rv;
}
