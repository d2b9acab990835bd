/* tcp.c: accepted TCP connections. Reads go through one loop-wide scratch
 * buffer to the layer installed in conn->ops (http.c, then ws.c); output is
 * a queue of reference-counted buffers written with one uv_try_write (or one
 * uv_write) per connection per loop turn. Owns phx_conn_t and its closing. */
#include "tcp.h"

#include <string.h>

#include "log.h"
#include "tls.h"

#define IOV_BATCH 128

typedef struct write_req {
    uv_write_t req;
    phx_conn_t *conn;
    size_t bytes;
    uint32_t n;
    phx_rcbuf_t *bufs[];
} write_req_t;

static void tcp_on_close(uv_handle_t *h);

/* ---- queue ---- */

static void q_release_all(phx_conn_t *c)
{
    phx_ring_clear(&c->q);
    c->q_bytes = 0;
}

size_t phx_conn_pending(const phx_conn_t *c)
{
    return c->q_bytes + c->w_bytes + (c->tls ? phx_tls_pending(c->tls) : 0);
}

/* Appends a buffer to the queue (takes the reference). */
static int q_push(phx_conn_t *c, phx_rcbuf_t *buf)
{
    if (phx_ring_push(&c->q, buf, 4) != 0) {
        phx_rcbuf_unref(buf);
        PHX_LOG_WARN("conn=%llu event=out_of_memory where=send_queue", (unsigned long long)c->id);
        phx_conn_close(c, false);
        return PHX_ERR_NOMEM;
    }
    c->q_bytes += buf->len - buf->off;
    return 0;
}

int phx_conn_send(phx_conn_t *c, phx_rcbuf_t *buf)
{
    if (c->is_closing || c->is_flushing_close) {
        phx_rcbuf_unref(buf);
        return PHX_ERR_CLOSED;
    }
    if (c->tls) {
        /* Encrypted at once, so records leave in the order OpenSSL made
         * them; the ciphertext is queued when the connection flushes. */
        int rv = phx_tls_write(c->tls, buf->data + buf->off, buf->len - buf->off);
        phx_rcbuf_unref(buf);
        if (rv != 0) {
            phx_conn_close(c, false);
            return rv;
        }
    } else {
        int rv = q_push(c, buf);
        if (rv != 0)
            return rv;
    }
    c->loop->stats.msgs_out++;
    phx_loop_mark_dirty(c->loop, c);
    if (!c->is_read_paused && (phx_conn_pending(c) > c->loop->cfg->queue_high_bytes ||
                               c->q.len > (uint32_t)c->loop->cfg->max_queued_msgs))
        phx_conn_pause_read(c);
    return 0;
}

int phx_conn_send_copy(phx_conn_t *c, const void *data, size_t len)
{
    phx_rcbuf_t *b = phx_rcbuf_new(len);
    if (b == NULL) {
        phx_conn_close(c, false);
        return PHX_ERR_NOMEM;
    }
    memcpy(b->data, data, len);
    b->len = (uint32_t)len;
    return phx_conn_send(c, b);
}

/* ---- writing ---- */

static void finish_graceful_close(phx_conn_t *c);

/* Output moved on: resume reading below half the high-water mark, and
 * finish a graceful close once everything is written. */
static void after_progress(phx_conn_t *c)
{
    bool drained = phx_conn_pending(c) <= c->loop->cfg->queue_high_bytes / 2;
    if (c->is_read_paused && drained)
        phx_conn_resume_read(c);
    if (drained && !c->is_closing && c->ops && c->ops->on_drained)
        c->ops->on_drained(c);
    if (c->is_flushing_close && c->q.len == 0 && c->writes == 0)
        finish_graceful_close(c);
}

static void write_on_done(uv_write_t *req, int status)
{
    write_req_t *w = req->data;
    phx_conn_t *c = w->conn;
    for (uint32_t i = 0; i < w->n; i++)
        phx_rcbuf_unref(w->bufs[i]);
    c->w_bytes -= w->bytes;
    c->writes--;
    phx_free(w);
    if (status < 0) {
        if (status != UV_ECANCELED)
            PHX_LOG_DEBUG("conn=%llu event=write_error error=%s", (unsigned long long)c->id,
                          uv_err_name(status));
        phx_conn_close(c, false);
        return;
    }
    after_progress(c);
}

/* Drops `n` written bytes from the head of the queue. */
static void q_consume(phx_conn_t *c, size_t n)
{
    c->q_bytes -= n;
    c->loop->stats.bytes_out += n;
    while (n > 0) {
        phx_rcbuf_t *b = phx_ring_at(&c->q, 0);
        size_t left = b->len - b->off - c->q.head_off;
        if (n < left) {
            c->q.head_off += (uint32_t)n;
            return;
        }
        n -= left;
        phx_rcbuf_unref(phx_ring_pop(&c->q));
    }
}

/* Fills `bufs` from the queue head; returns the count. */
static uint32_t q_bufs(phx_conn_t *c, uv_buf_t *bufs, uint32_t max)
{
    uint32_t n = c->q.len < max ? c->q.len : max;
    for (uint32_t i = 0; i < n; i++) {
        phx_rcbuf_t *b = phx_ring_at(&c->q, i);
        uint32_t off = b->off + (i == 0 ? c->q.head_off : 0);
        bufs[i] = uv_buf_init((char *)b->data + off, b->len - off);
    }
    return n;
}

/* Hands the whole queue to one uv_write. */
static int q_write_async(phx_conn_t *c)
{
    uv_buf_t stackbufs[IOV_BATCH];
    uint32_t n = c->q.len;
    write_req_t *w = phx_malloc(sizeof(*w) + n * sizeof(w->bufs[0]));
    uv_buf_t *bufs = n <= IOV_BATCH ? stackbufs : phx_malloc(n * sizeof(uv_buf_t));
    if (w == NULL || bufs == NULL) {
        phx_free(w);
        if (bufs != stackbufs)
            phx_free(bufs);
        return PHX_ERR_NOMEM;
    }
    q_bufs(c, bufs, n);
    w->conn = c;
    w->n = n;
    w->bytes = c->q_bytes;
    w->req.data = w;
    for (uint32_t i = 0; i < n; i++)
        w->bufs[i] = phx_ring_at(&c->q, i);
    int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, write_on_done);
    if (bufs != stackbufs)
        phx_free(bufs);
    if (rv != 0) {
        phx_free(w);
        return rv;
    }
    /* The request now owns the references. */
    c->writes++;
    c->w_bytes += c->q_bytes;
    c->loop->stats.bytes_out += c->q_bytes;
    phx_ring_forget(&c->q);
    c->q_bytes = 0;
    return 0;
}

void phx_conn_flush(phx_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->tls && phx_tls_pending(c->tls) > 0) {
        phx_rcbuf_t *cipher = phx_tls_take(c->tls);
        if (cipher == NULL || q_push(c, cipher) != 0) {
            phx_conn_close(c, false);
            return;
        }
    }
    while (c->q.len > 0 && c->writes == 0) {
        uv_buf_t bufs[IOV_BATCH];
        uint32_t n = q_bufs(c, bufs, IOV_BATCH);
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (r > 0) {
            size_t total = 0;
            for (uint32_t i = 0; i < n; i++)
                total += bufs[i].len;
            q_consume(c, (size_t)r);
            if ((size_t)r < total)
                break; /* the kernel buffer is full */
            continue;
        }
        if (r != UV_EAGAIN && r != 0) {
            PHX_LOG_DEBUG("conn=%llu event=write_error error=%s", (unsigned long long)c->id,
                          uv_err_name(r));
            q_release_all(c);
            phx_conn_close(c, false);
            return;
        }
        break;
    }
    if (c->q.len > 0) {
        int rv = q_write_async(c);
        if (rv != 0) {
            PHX_LOG_WARN("conn=%llu event=write_error error=%s", (unsigned long long)c->id,
                         phx_err_name(rv));
            q_release_all(c);
            phx_conn_close(c, false);
            return;
        }
    }
    after_progress(c);
}

/* ---- reading ---- */

static void tcp_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    phx_conn_t *c = h->data;
    /* One scratch buffer for the whole loop: read_cb consumes it at once. */
    *buf = uv_buf_init((char *)c->loop->scratch, PHX_SCRATCH_BYTES);
}

static bool tls_deliver(void *arg, uint8_t *p, size_t n)
{
    phx_conn_t *c = arg;
    if (c->kind == PHX_CONN_DRAIN || c->is_closing)
        return false;
    c->ops->on_read(c, p, n);
    return !c->is_closing;
}

/* Ciphertext in, plaintext to the layer above (through its own scratch
 * buffer: the read scratch still holds the ciphertext). */
static void tls_read(phx_conn_t *c, uint8_t *data, size_t len)
{
    phx_conn_enter(c);
    int rv = phx_tls_feed(c->tls, data, len, c->loop->tls_scratch, PHX_TLS_SCRATCH_BYTES,
                          tls_deliver, c);
    if (phx_tls_pending(c->tls) > 0)
        phx_loop_mark_dirty(c->loop, c);
    if (rv < 0) {
        /* Let the alert out, then close. */
        phx_conn_close(c, true);
    } else if (rv == 1 && !c->is_closing) {
        /* close_notify from the peer: answer it and close. */
        if (c->ops->on_peer_close)
            c->ops->on_peer_close(c);
        else
            phx_conn_close(c, true);
    }
    phx_conn_leave(c);
}

/* The answer to what a connection just sent (a reply, a pong) leaves at
 * once instead of at the end of the loop turn: a turn can handle a thousand
 * reads, and the first reply would wait for all of them. Output for other
 * connections (broadcasts) still waits for the end of the turn, where each
 * connection gets one write. */
static void flush_answer(phx_conn_t *c)
{
    if (c->q.len > 0 || (c->tls && phx_tls_pending(c->tls) > 0))
        phx_conn_flush(c);
}

static void tcp_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    phx_conn_t *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            PHX_LOG_DEBUG("conn=%llu event=read_error error=%s", (unsigned long long)c->id,
                          uv_err_name((int)nread));
        phx_conn_close(c, false);
        return;
    }
    c->loop->stats.bytes_in += (uint64_t)nread;
    if (c->tls) {
        tls_read(c, (uint8_t *)buf->base, (size_t)nread);
        flush_answer(c);
        return;
    }
    if (c->kind == PHX_CONN_DRAIN || c->is_closing)
        return;
    phx_conn_enter(c);
    c->ops->on_read(c, (uint8_t *)buf->base, (size_t)nread);
    phx_conn_leave(c);
    flush_answer(c);
}

void phx_conn_enter(phx_conn_t *c)
{
    c->in_dispatch++;
}

void phx_conn_leave(phx_conn_t *c)
{
    PHX_ASSERT(c->in_dispatch > 0);
    if (--c->in_dispatch == 0 && c->is_close_deferred) {
        /* The layers above were on the stack when the connection closed. */
        c->is_close_deferred = false;
        if (c->ops->on_close)
            c->ops->on_close(c);
    }
}

void phx_conn_pause_read(phx_conn_t *c)
{
    if (c->is_flushing_close)
        return; /* a closing connection drains its input */
    if (c->is_reading && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->is_reading = false;
    }
    c->is_read_paused = true;
}

bool phx_conn_is_congested(const phx_conn_t *c)
{
    return phx_conn_pending(c) > c->loop->cfg->queue_high_bytes;
}

void phx_conn_hold_read(phx_conn_t *c, bool hold)
{
    if (hold == c->is_read_held)
        return;
    c->is_read_held = hold;
    if (hold) {
        if (c->is_reading && !uv_is_closing((uv_handle_t *)&c->tcp)) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->is_reading = false;
        }
    } else if (!c->is_read_paused || c->is_flushing_close) {
        phx_conn_resume_read(c);
    }
}

void phx_conn_resume_read(phx_conn_t *c)
{
    c->is_read_paused = false;
    if (c->is_read_held && !c->is_flushing_close)
        return;
    if (!c->is_reading && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        if (uv_read_start((uv_stream_t *)&c->tcp, tcp_on_alloc, tcp_on_read) == 0)
            c->is_reading = true;
    }
}

/* ---- accept ---- */

int phx_conn_accept(phx_loop_t *loop, uv_stream_t *listener, int (*init)(phx_conn_t *c, void *arg),
                    void *arg)
{
    phx_conn_t *c = phx_calloc(1, sizeof(*c));
    if (c == NULL)
        return PHX_ERR_NOMEM;
    int rv = uv_tcp_init(loop->uv, &c->tcp);
    if (rv != 0) {
        phx_free(c);
        return rv;
    }
    c->tcp.data = c;
    c->loop = loop;
    c->id = ++loop->next_conn_id;
    loop->nconns++;
    loop->stats.accepted++;
    if ((rv = uv_accept(listener, (uv_stream_t *)&c->tcp)) != 0)
        goto fail_close;
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->peer, sizeof(c->peer));
            c->peer_port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->peer, sizeof(c->peer));
            c->peer_port = ntohs(a->sin_port);
        }
    }
    if (loop->tls_ctx && (c->tls = phx_tls_new(loop->tls_ctx)) == NULL) {
        rv = PHX_ERR_NOMEM;
        goto fail_close;
    }
    if ((rv = init(c, arg)) != 0)
        goto fail_close;
    /* init may already have answered and started a graceful close. */
    if (!c->is_reading && !c->is_closing) {
        if ((rv = uv_read_start((uv_stream_t *)&c->tcp, tcp_on_alloc, tcp_on_read)) != 0)
            goto fail_close;
        c->is_reading = true;
    }
    return 0;
fail_close:
    c->is_closing = true;
    uv_close((uv_handle_t *)&c->tcp, tcp_on_close);
    return rv;
}

/* ---- closing ---- */

static void tcp_on_close(uv_handle_t *h)
{
    phx_conn_t *c = h->data;
    phx_loop_t *loop = c->loop;
    /* The flush list is processed before close callbacks run in a loop turn. */
    PHX_ASSERT(!c->is_dirty);
    phx_loop_undefer(loop, c);
    if (c->ops && c->ops->on_free)
        c->ops->on_free(c);
    phx_tls_free(c->tls);
    q_release_all(c);
    phx_free(c);
    phx_loop_conn_gone(loop);
}

static void close_now(phx_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    phx_loop_list_remove(c->loop, c);
    uv_close((uv_handle_t *)&c->tcp, tcp_on_close);
}

static void shutdown_on_done(uv_shutdown_t *req, int status)
{
    phx_conn_t *c = req->data;
    phx_free(req);
    if (status < 0) {
        close_now(c);
        return;
    }
    /* Keep reading (and dropping) until the peer closes or the close
     * timeout of PHX_LIST_CLOSE passes, so our last frames are not lost to
     * a reset caused by unread input. */
}

static void finish_graceful_close(phx_conn_t *c)
{
    if (c->is_shut || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (c->tls && phx_tls_pending(c->tls) > 0) {
        phx_loop_mark_dirty(c->loop, c); /* close_notify first */
        return;
    }
    c->is_shut = true;
    uv_shutdown_t *req = phx_malloc(sizeof(*req));
    if (req == NULL) {
        close_now(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_on_done) != 0) {
        phx_free(req);
        close_now(c);
        return;
    }
    if (!c->is_reading)
        phx_conn_resume_read(c);
}

void phx_conn_close(phx_conn_t *c, bool graceful)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (!c->is_closing) {
        c->is_closing = true;
        if (c->in_dispatch)
            c->is_close_deferred = true;
        else if (c->ops && c->ops->on_close)
            c->ops->on_close(c);
    }
    if (!graceful || c->is_shut) {
        close_now(c);
        return;
    }
    if (c->is_flushing_close)
        return;
    c->is_flushing_close = true;
    c->kind = PHX_CONN_DRAIN;
    if (c->tls)
        phx_tls_shutdown(c->tls); /* close_notify goes out with the rest */
    phx_loop_list_touch(c->loop, c, PHX_LIST_CLOSE);
    /* Reading continues (dropped) so that a peer which keeps sending cannot
     * wedge the close; backpressure no longer applies. */
    phx_conn_resume_read(c);
    if (c->q.len == 0 && c->writes == 0 && (c->tls == NULL || phx_tls_pending(c->tls) == 0))
        finish_graceful_close(c);
    else
        phx_loop_mark_dirty(c->loop, c);
}

void phx_conn_shutdown(phx_conn_t *c, int code, bool drain)
{
    if (c->is_closing && c->list == PHX_LIST_CLOSE)
        return; /* already closing: the close timeout ends it */
    if (c->ops && c->ops->on_shutdown)
        c->ops->on_shutdown(c, code, drain);
    else
        phx_conn_close(c, phx_conn_pending(c) > 0);
}
