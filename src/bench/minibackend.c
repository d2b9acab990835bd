/* minibackend.c: phxd-bench's built-in backend (minibackend.h). One thread, one
 * libuv loop: a listener, keep-alive connections parsed by llhttp one
 * request at a time (the parser pauses at the end of a request and the
 * socket stops reading until the answer is written, so pipelined requests
 * are answered in order), and, with a delay, one timerfd polled by the loop
 * for the FIFO of requests waiting for it (every request waits the same
 * time, so the FIFO is in deadline order). The bench's thread only reads
 * the atomic counters while the backend runs, and the histogram after the
 * thread has ended. The thread allocates with the C library, not
 * phx_malloc, whose failure injector's counters are not thread-safe. */
#include "minibackend.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>
#include <llhttp.h>

#include "phx.h"

#define READ_BUF_BYTES (64 * 1024)
/* Largest request line plus headers accepted. */
#define MAX_HEAD_BYTES (64 * 1024)
/* Body bytes kept to find the call's "type" (phxd writes it first). */
#define BODY_SCAN_BYTES 64
#define LISTEN_BACKLOG 1024

typedef struct be_conn be_conn_t;

/* Growable bytes of the backend's thread (see above: not phx_buf_t). */
typedef struct be_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} be_buf_t;

struct be_conn {
    uv_tcp_t tcp; /* tcp.data = this */
    uv_write_t wreq;
    llhttp_t parser; /* parser.data = this */
    phx_bench_backend_t *be;
    be_conn_t *prev, *next;   /* every connection */
    be_conn_t *wprev, *wnext; /* the requests waiting for the delay */
    be_buf_t stash;           /* bytes after a complete request, parsed once it is answered */
    be_buf_t out;             /* the part of an answer uv_try_write did not take */
    uint64_t read_ns;         /* when the read being parsed arrived */
    uint64_t start_ns;        /* when the request's first byte arrived */
    uint64_t due_ns;          /* delay: when to answer */
    size_t head_bytes;
    size_t body_len; /* bytes in body_head */
    char body_head[BODY_SCAN_BYTES];
    bool is_complete; /* a request is parsed and not yet answered */
    bool is_keep_alive;
    bool is_post;
    bool is_waiting;    /* in the delay FIFO */
    bool is_delay_done; /* the delay of the complete request has passed */
    bool is_writing;    /* a uv_write is in flight */
    bool is_reading;
    bool is_closing;
};

struct phx_bench_backend {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop_async;
    uv_poll_t delay_poll;
    uv_thread_t thread;
    int timer_fd; /* -1 without a delay */
    int port;
    uint64_t delay_ns;
    be_conn_t *conns;
    be_conn_t *wait_head, *wait_tail;
    uint8_t *rbuf;
    phx_hist_t hist;
    double cpu_final_s; /* the thread's CPU time when it ended */
    bool has_loop;
    bool has_thread;
    bool is_stopped;
    _Atomic uint64_t events;
    _Atomic uint64_t calls;
    _Atomic uint64_t bad;
};

static int buf_append(be_buf_t *b, const void *data, size_t len)
{
    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < len)
            cap *= 2;
        uint8_t *n = realloc(b->data, cap);
        if (n == NULL)
            return PHX_ERR_NOMEM;
        b->data = n;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_dispose(be_buf_t *b)
{
    free(b->data);
    *b = (be_buf_t){0};
}

static void conn_pump(be_conn_t *c);
static void conn_on_write(uv_write_t *req, int status);
static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---- connections ---- */

static void conn_on_close(uv_handle_t *h)
{
    be_conn_t *c = h->data;
    phx_bench_backend_t *be = c->be;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        be->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    buf_dispose(&c->stash);
    buf_dispose(&c->out);
    free(c);
}

static void wait_unlink(be_conn_t *c)
{
    phx_bench_backend_t *be = c->be;
    if (!c->is_waiting)
        return;
    if (c->wprev != NULL)
        c->wprev->wnext = c->wnext;
    else
        be->wait_head = c->wnext;
    if (c->wnext != NULL)
        c->wnext->wprev = c->wprev;
    else
        be->wait_tail = c->wprev;
    c->wprev = c->wnext = NULL;
    c->is_waiting = false;
}

static void conn_close(be_conn_t *c)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    wait_unlink(c);
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

static void conn_bad(be_conn_t *c)
{
    atomic_fetch_add_explicit(&c->be->bad, 1, memory_order_relaxed);
    conn_close(c);
}

/* ---- llhttp callbacks ---- */

static int count_head(llhttp_t *p, size_t len)
{
    be_conn_t *c = p->data;
    c->head_bytes += len;
    if (c->head_bytes <= MAX_HEAD_BYTES)
        return HPE_OK;
    llhttp_set_error_reason(p, "request head too large");
    return HPE_USER;
}

static int req_on_message_begin(llhttp_t *p)
{
    be_conn_t *c = p->data;
    c->start_ns = c->read_ns;
    c->head_bytes = 0;
    c->body_len = 0;
    return HPE_OK;
}

static int req_on_head_data(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    return count_head(p, len);
}

static int req_on_body(llhttp_t *p, const char *at, size_t len)
{
    be_conn_t *c = p->data;
    size_t room = sizeof(c->body_head) - c->body_len;
    size_t n = len < room ? len : room;
    memcpy(c->body_head + c->body_len, at, n);
    c->body_len += n;
    return HPE_OK;
}

static int req_on_message_complete(llhttp_t *p)
{
    be_conn_t *c = p->data;
    c->is_complete = true;
    c->is_keep_alive = llhttp_should_keep_alive(p) != 0;
    c->is_post = llhttp_get_method(p) == HTTP_POST;
    /* One request at a time: the rest waits until this one is answered. */
    return HPE_PAUSED;
}

static const llhttp_settings_t req_settings = {
    .on_message_begin = req_on_message_begin,
    .on_url = req_on_head_data,
    .on_header_field = req_on_head_data,
    .on_header_value = req_on_head_data,
    .on_body = req_on_body,
    .on_message_complete = req_on_message_complete,
};

/* Parses `len` bytes; at the end of a request stops reading and stashes
 * what follows it. */
static void conn_parse(be_conn_t *c, const uint8_t *data, size_t len)
{
    llhttp_errno_t e = llhttp_execute(&c->parser, (const char *)data, len);
    if (e == HPE_OK)
        return;
    if (e != HPE_PAUSED || !c->is_complete) {
        conn_bad(c);
        return;
    }
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t used = len;
    if (pos >= (const char *)data && pos <= (const char *)data + len)
        used = (size_t)((const uint8_t *)pos - data);
    if (used < len && buf_append(&c->stash, data + used, len - used) != 0) {
        conn_close(c);
        return;
    }
    if (c->is_reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->is_reading = false;
    }
}

/* ---- answers ---- */

/* The call's "type" from the first bytes of its body; "" when not found. */
static void call_type(const be_conn_t *c, char *out, size_t cap)
{
    static const char key[] = "\"type\"";
    const char *s = c->body_head, *end = c->body_head + c->body_len;
    out[0] = '\0';
    const char *k = NULL;
    for (const char *q = s; k == NULL && q + sizeof(key) - 1 <= end; q++)
        if (memcmp(q, key, sizeof(key) - 1) == 0)
            k = q;
    if (k == NULL)
        return;
    const char *p = k + sizeof(key) - 1;
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    if (p >= end || *p != '"')
        return;
    p++;
    size_t n = 0;
    while (p + n < end && p[n] != '"' && n + 1 < cap)
        n++;
    if (p + n >= end || p[n] != '"')
        return;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The request is answered and written: next request, or close. */
static void conn_answered(be_conn_t *c)
{
    c->is_complete = false;
    c->is_delay_done = false;
    if (!c->is_keep_alive) {
        conn_close(c);
        return;
    }
    llhttp_resume(&c->parser);
}

static void conn_answer(be_conn_t *c)
{
    phx_bench_backend_t *be = c->be;
    char type[16];
    char body[256];
    int body_len;
    const char *status = "200 OK";
    bool is_event = false;
    if (!c->is_post) {
        atomic_fetch_add_explicit(&be->bad, 1, memory_order_relaxed);
        status = "405 Method Not Allowed";
        body_len = snprintf(body, sizeof(body), "{}");
    } else {
        call_type(c, type, sizeof(type));
        uint64_t n = atomic_fetch_add_explicit(&be->calls, 1, memory_order_relaxed) + 1;
        if (strcmp(type, "event") == 0) {
            is_event = true;
            uint64_t t = uv_hrtime() - c->start_ns;
            phx_hist_record(&be->hist, t);
            body_len = snprintf(body, sizeof(body),
                                "{\"reply\":{\"status\":\"ok\",\"response\":{\"n\":%llu,"
                                "\"backend_ns\":%llu}}}",
                                (unsigned long long)n, (unsigned long long)t);
        } else if (strcmp(type, "join") == 0) {
            body_len = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"response\":{}}");
        } else if (strcmp(type, "connect") == 0) {
            body_len = snprintf(body, sizeof(body), "{\"status\":\"ok\"}");
        } else {
            body_len = snprintf(body, sizeof(body), "{}");
        }
    }
    char msg[512];
    int len = snprintf(msg, sizeof(msg),
                       "HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                       "%s\r\n%s",
                       status, body_len, c->is_keep_alive ? "" : "connection: close\r\n", body);
    if (is_event)
        atomic_fetch_add_explicit(&be->events, 1, memory_order_relaxed);
    uv_buf_t ub = uv_buf_init(msg, (unsigned)len);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
    if (w == len) {
        conn_answered(c);
        return;
    }
    if (w < 0 && w != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    size_t done = w > 0 ? (size_t)w : 0;
    c->out.len = 0;
    if (buf_append(&c->out, msg + done, (size_t)len - done) != 0) {
        conn_close(c);
        return;
    }
    ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, conn_on_write) != 0) {
        conn_close(c);
        return;
    }
    c->is_writing = true;
}

static void conn_on_write(uv_write_t *req, int status)
{
    be_conn_t *c = req->data;
    c->is_writing = false;
    c->out.len = 0;
    if (c->is_closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_answered(c);
    conn_pump(c);
}

/* ---- the delay ---- */

static void delay_arm(phx_bench_backend_t *be, uint64_t due_ns)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(due_ns / 1000000000u);
    its.it_value.tv_nsec = (long)(due_ns % 1000000000u);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1; /* zero would disarm */
    (void)timerfd_settime(be->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void delay_queue(be_conn_t *c)
{
    phx_bench_backend_t *be = c->be;
    /* uv_hrtime is CLOCK_MONOTONIC, the timerfd's clock. */
    c->due_ns = uv_hrtime() + be->delay_ns;
    c->is_waiting = true;
    c->wnext = NULL;
    c->wprev = be->wait_tail;
    if (be->wait_tail != NULL) {
        be->wait_tail->wnext = c;
    } else {
        be->wait_head = c;
        delay_arm(be, c->due_ns);
    }
    be->wait_tail = c;
}

static void delay_on_poll(uv_poll_t *h, int status, int events)
{
    phx_bench_backend_t *be = h->data;
    uint64_t expirations;
    (void)status;
    (void)events;
    while (read(be->timer_fd, &expirations, sizeof(expirations)) > 0)
        continue;
    uint64_t now = uv_hrtime();
    while (be->wait_head != NULL && be->wait_head->due_ns <= now) {
        be_conn_t *c = be->wait_head;
        wait_unlink(c);
        c->is_delay_done = true;
        conn_pump(c);
    }
    if (be->wait_head != NULL)
        delay_arm(be, be->wait_head->due_ns);
}

/* Answers the complete request (after its delay), then parses stashed
 * bytes, until a request waits (delay, write in flight) or more bytes are
 * needed (then reads). */
static void conn_pump(be_conn_t *c)
{
    for (;;) {
        if (c->is_closing || c->is_waiting || c->is_writing)
            return;
        if (c->is_complete) {
            if (c->be->delay_ns > 0 && !c->is_delay_done) {
                delay_queue(c);
                return;
            }
            conn_answer(c);
            continue;
        }
        if (c->stash.len > 0) {
            be_buf_t pending = c->stash;
            c->stash = (be_buf_t){0};
            conn_parse(c, pending.data, pending.len);
            buf_dispose(&pending);
            continue;
        }
        if (!c->is_reading) {
            if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read) != 0) {
                conn_close(c);
                return;
            }
            c->is_reading = true;
        }
        return;
    }
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    be_conn_t *c = h->data;
    (void)suggested;
    /* One loop-wide buffer: libuv reads into it right after this call. */
    *buf = uv_buf_init((char *)c->be->rbuf, READ_BUF_BYTES);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    be_conn_t *c = s->data;
    if (nread < 0) {
        conn_close(c); /* EOF or an error: phxd closed or reset */
        return;
    }
    if (nread == 0)
        return;
    c->read_ns = uv_hrtime();
    conn_parse(c, (const uint8_t *)buf->base, (size_t)nread);
    conn_pump(c);
}

/* ---- the listener and the thread ---- */

static void listener_on_connection(uv_stream_t *server, int status)
{
    phx_bench_backend_t *be = server->data;
    if (status < 0)
        return;
    be_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->be = be;
    uv_tcp_init(&be->loop, &c->tcp);
    c->tcp.data = c;
    c->next = be->conns;
    if (be->conns != NULL)
        be->conns->prev = c;
    be->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
    c->parser.data = c;
    conn_pump(c);
}

static void close_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void stop_on_async(uv_async_t *a)
{
    phx_bench_backend_t *be = a->data;
    close_if_open((uv_handle_t *)&be->listener);
    close_if_open((uv_handle_t *)&be->stop_async);
    if (be->timer_fd >= 0)
        close_if_open((uv_handle_t *)&be->delay_poll);
    for (be_conn_t *c = be->conns; c != NULL; c = c->next)
        conn_close(c);
}

static double thread_cpu_s(clockid_t cid)
{
    struct timespec ts;
    if (clock_gettime(cid, &ts) != 0)
        return -1;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void backend_thread(void *arg)
{
    phx_bench_backend_t *be = arg;
    uv_run(&be->loop, UV_RUN_DEFAULT);
    be->cpu_final_s = thread_cpu_s(CLOCK_THREAD_CPUTIME_ID);
}

/* "HOST:PORT" with HOST an IPv4 address, "[IPv6]" or "localhost". */
static int parse_listen(const char *spec, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon;
    const char *h = spec;
    size_t hlen;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = spec + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - spec);
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return -1;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return -1;
}

int phx_bench_backend_start(phx_bench_backend_t **out, const char *listen, uint32_t delay_us,
                            char *err, size_t err_len)
{
    *out = NULL;
    struct sockaddr_storage addr;
    if (parse_listen(listen, &addr) != 0) {
        snprintf(err, err_len, "bad --backend-listen '%s' (HOST:PORT)", listen);
        return PHX_ERR_INVALID;
    }
    phx_bench_backend_t *be = calloc(1, sizeof(*be));
    if (be == NULL) {
        snprintf(err, err_len, "out of memory");
        return PHX_ERR_NOMEM;
    }
    be->timer_fd = -1;
    if ((be->rbuf = malloc(READ_BUF_BYTES)) == NULL || phx_hist_init(&be->hist) != 0) {
        snprintf(err, err_len, "out of memory");
        phx_bench_backend_free(be);
        return PHX_ERR_NOMEM;
    }
    be->delay_ns = (uint64_t)delay_us * 1000u;
    int rv = uv_loop_init(&be->loop);
    if (rv != 0) {
        snprintf(err, err_len, "backend: uv_loop_init: %s", uv_strerror(rv));
        phx_bench_backend_free(be);
        return rv;
    }
    be->has_loop = true;
    uv_tcp_init(&be->loop, &be->listener);
    be->listener.data = be;
    uv_async_init(&be->loop, &be->stop_async, stop_on_async);
    be->stop_async.data = be;
    if ((rv = uv_tcp_bind(&be->listener, (const struct sockaddr *)&addr, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&be->listener, LISTEN_BACKLOG, listener_on_connection)) !=
            0) {
        snprintf(err, err_len, "backend: cannot listen on %s: %s", listen, uv_strerror(rv));
        phx_bench_backend_free(be);
        return rv;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (uv_tcp_getsockname(&be->listener, (struct sockaddr *)&bound, &blen) == 0)
        be->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                     : ((struct sockaddr_in *)&bound)->sin_port);
    if (delay_us > 0) {
        be->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (be->timer_fd < 0) {
            rv = -errno;
            snprintf(err, err_len, "backend: timerfd_create: %s", strerror(errno));
            phx_bench_backend_free(be);
            return rv;
        }
        uv_poll_init(&be->loop, &be->delay_poll, be->timer_fd);
        be->delay_poll.data = be;
        uv_poll_start(&be->delay_poll, UV_READABLE, delay_on_poll);
    }
    if ((rv = uv_thread_create(&be->thread, backend_thread, be)) != 0) {
        snprintf(err, err_len, "backend: uv_thread_create: %s", uv_strerror(rv));
        phx_bench_backend_free(be);
        return rv;
    }
    be->has_thread = true;
    *out = be;
    return 0;
}

int phx_bench_backend_port(const phx_bench_backend_t *be)
{
    return be->port;
}

uint64_t phx_bench_backend_events(const phx_bench_backend_t *be)
{
    return atomic_load_explicit(&((phx_bench_backend_t *)be)->events, memory_order_relaxed);
}

uint64_t phx_bench_backend_calls(const phx_bench_backend_t *be)
{
    return atomic_load_explicit(&((phx_bench_backend_t *)be)->calls, memory_order_relaxed);
}

uint64_t phx_bench_backend_bad(const phx_bench_backend_t *be)
{
    return atomic_load_explicit(&((phx_bench_backend_t *)be)->bad, memory_order_relaxed);
}

double phx_bench_backend_cpu_s(const phx_bench_backend_t *be)
{
    if (be->is_stopped || !be->has_thread)
        return be->cpu_final_s;
    clockid_t cid;
    if (pthread_getcpuclockid(be->thread, &cid) != 0)
        return -1;
    return thread_cpu_s(cid);
}

void phx_bench_backend_stop(phx_bench_backend_t *be)
{
    if (be == NULL || be->is_stopped)
        return;
    if (be->has_thread) {
        uv_async_send(&be->stop_async);
        uv_thread_join(&be->thread);
    }
    be->is_stopped = true;
}

const phx_hist_t *phx_bench_backend_hist(const phx_bench_backend_t *be)
{
    return &be->hist;
}

void phx_bench_backend_free(phx_bench_backend_t *be)
{
    if (be == NULL)
        return;
    phx_bench_backend_stop(be);
    if (be->has_loop) {
        if (!be->has_thread) {
            /* Started no thread: close what setup opened, here. */
            stop_on_async(&be->stop_async);
            uv_run(&be->loop, UV_RUN_DEFAULT);
        }
        uv_loop_close(&be->loop);
    }
    if (be->timer_fd >= 0)
        close(be->timer_fd);
    phx_hist_dispose(&be->hist);
    free(be->rbuf);
    free(be);
}
