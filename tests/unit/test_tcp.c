/* Unit tests for the io layer on its own (io/loop.c, io/tcp.c): a phx_loop_t
 * on the test's libuv loop, a loopback listener whose connections are
 * adopted with phx_conn_accept and driven by a fake layer (a phx_conn_ops_t
 * that records reads, closes, frees, deferred steps, timeouts and drains),
 * and a raw client socket. No HTTP, no Phoenix. */
#include "tcp.h"

#include <string.h>

#include <uv.h>

#include "loop.h"
#include "loopfx.h"
#include "phx.h"
#include "rawclient.h"
#include "runner.h"

typedef struct fx {
    loopfx_t lf;
    rawclient_t rc;
    bool rc_open;
    /* what the fake layer saw */
    phx_conn_t *conn; /* the last accepted connection, NULL once freed */
    int accepted;
    phx_buf_t got; /* every byte given to on_read */
    int reads, closes, frees, deferred, timeouts, drained;
    char events[64]; /* 'c' close, 'f' free, 'd' deferred, 't' timeout */
    size_t nev;
    uint8_t *layer; /* the layer's per-connection memory, freed in on_free */
    /* what the fake layer does */
    phx_list_id_t list_on_accept; /* touched at accept (PHX_LIST_NONE: none) */
    int send_buffer;              /* SO_SNDBUF of accepted sockets (0: default) */
    bool echo;                    /* on_read sends the bytes back */
    bool close_in_read;           /* on_read closes the connection */
    bool defer_in_read;           /* on_read asks for a deferred step */
    int closes_seen_in_read;      /* `closes` right after close_in_read's close */
    int deferred_seen_in_read;    /* `deferred` when on_read returned */
    uint8_t dispatch_in_deferred; /* c->in_dispatch inside on_deferred */
    const char *deferred_send;    /* on_deferred sends it */
    int timeout_action;           /* 0 close, 1 nothing, 2 move to PHX_LIST_WS */
} fx_t;

static fx_t *F;

static void note(char ev)
{
    if (F->nev + 1 < sizeof(F->events))
        F->events[F->nev++] = ev;
}

static void fake_read(phx_conn_t *c, uint8_t *data, size_t len)
{
    F->reads++;
    ASSERT_EQ(phx_buf_append(&F->got, data, len), 0);
    if (F->echo)
        phx_conn_send_copy(c, data, len);
    if (F->defer_in_read) {
        phx_loop_defer(c->loop, c);
        phx_loop_defer(c->loop, c); /* twice: still once */
        F->deferred_seen_in_read = F->deferred;
    }
    if (F->close_in_read) {
        phx_conn_close(c, false);
        /* The layer is on the stack: on_close waits for the read to end. */
        F->closes_seen_in_read = F->closes;
    }
}

static void fake_close(phx_conn_t *c)
{
    F->closes++;
    note('c');
}

static void fake_free(phx_conn_t *c)
{
    F->frees++;
    note('f');
    phx_free(F->layer);
    F->layer = NULL;
    if (F->conn == c)
        F->conn = NULL;
}

static void fake_deferred(phx_conn_t *c)
{
    F->deferred++;
    note('d');
    F->dispatch_in_deferred = c->in_dispatch;
    if (F->deferred_send)
        phx_conn_send_copy(c, F->deferred_send, strlen(F->deferred_send));
}

static void fake_timeout(phx_conn_t *c)
{
    F->timeouts++;
    note('t');
    if (F->timeout_action == 0)
        phx_conn_close(c, false);
    else if (F->timeout_action == 2)
        phx_loop_list_touch(c->loop, c, PHX_LIST_WS);
}

static void fake_drained(phx_conn_t *c)
{
    F->drained++;
}

static const phx_conn_ops_t fake_ops = {
    .on_read = fake_read,
    .on_close = fake_close,
    .on_free = fake_free,
    .on_drained = fake_drained,
    .on_deferred = fake_deferred,
    .on_timeout = fake_timeout,
};

/* The same layer without a timeout handler: the loop closes the conn. */
static const phx_conn_ops_t fake_ops_no_timeout = {
    .on_read = fake_read,
    .on_close = fake_close,
    .on_free = fake_free,
};

static const phx_conn_ops_t *accept_ops = &fake_ops;

static int fake_init(phx_conn_t *c, void *arg)
{
    fx_t *f = arg;
    c->ops = accept_ops;
    f->conn = c;
    f->accepted++;
    f->layer = phx_malloc(64);
    if (f->send_buffer) {
        int sz = f->send_buffer;
        uv_send_buffer_size((uv_handle_t *)&c->tcp, &sz);
    }
    if (f->list_on_accept != PHX_LIST_NONE)
        phx_loop_list_touch(c->loop, c, f->list_on_accept);
    return 0;
}

static void fx_start(fx_t *f, void (*tweak)(fx_t *))
{
    memset(f, 0, sizeof(*f));
    F = f;
    accept_ops = &fake_ops;
    loopfx_begin(&f->lf);
    if (tweak)
        tweak(f);
    loopfx_loop_init(&f->lf);
    loopfx_listen(&f->lf, fake_init, f);
}

static bool pred_accepted(rawclient_t *c, void *arg)
{
    return F->accepted > 0 && F->conn != NULL;
}

/* Connects the raw client and waits for the server side to be adopted. */
static void fx_connect(fx_t *f)
{
    loopfx_client(&f->lf, &f->rc);
    f->rc_open = true;
    ASSERT(rawclient_wait(&f->rc, pred_accepted, NULL, 2000));
    ASSERT_EQ(f->lf.loop.nconns, 1);
}

/* Closes everything and checks that the loop has nothing left. */
static void fx_stop(fx_t *f)
{
    if (f->rc_open) {
        rawclient_close(&f->rc);
        f->rc_open = false;
    }
    if (f->conn)
        phx_conn_close(f->conn, false);
    loopfx_wait_conns(&f->lf);
    ASSERT(f->conn == NULL);
    ASSERT(f->layer == NULL);
    loopfx_close(&f->lf);
    ASSERT_EQ(f->lf.loop.open_handles, 0);
    phx_buf_dispose(&f->got);
    loopfx_dispose(&f->lf);
}

static bool pred_got(rawclient_t *c, void *arg)
{
    return F->got.len >= *(size_t *)arg;
}

static bool pred_client_has(rawclient_t *c, void *arg)
{
    return c->in.len >= *(size_t *)arg;
}

static bool pred_freed(rawclient_t *c, void *arg)
{
    return F->frees > 0;
}

static bool is_freed(void *arg)
{
    return ((fx_t *)arg)->frees > 0;
}

/* The client closes its side; runs the loop until the conn is freed. */
static void client_leaves(fx_t *f)
{
    rawclient_close(&f->rc);
    f->rc_open = false;
    loopfx_run_until(&f->lf, is_freed, f);
}

/* The layer saw one close and one free, and exactly `events` in all. */
static void expect_closed_once(const fx_t *f, const char *events)
{
    ASSERT_EQ(f->closes, 1);
    ASSERT_EQ(f->frees, 1);
    ASSERT_STR_EQ(f->events, events);
}

/* ---- reading ---- */

static void bytes_reach_on_read_in_order(void)
{
    fx_t f;
    fx_start(&f, NULL);
    fx_connect(&f);
    static const char msg[] = "hello, loopback world";
    size_t want = sizeof(msg) - 1;
    rawclient_write(&f.rc, msg, 7, 1); /* byte by byte: several reads */
    rawclient_write(&f.rc, msg + 7, want - 7, 0);
    ASSERT(rawclient_wait(&f.rc, pred_got, &want, 2000));
    ASSERT_MEM_EQ(f.got.data, f.got.len, msg, want);
    ASSERT(f.reads >= 2);
    ASSERT_EQ(f.lf.loop.stats.bytes_in, want);
    ASSERT_EQ(f.closes, 0);
    ASSERT(f.conn->is_reading);
    fx_stop(&f);
    ASSERT_EQ(f.closes, 1);
    ASSERT_EQ(f.frees, 1);
}

/* ---- writing ---- */

static void queued_output_is_written_in_order_once_per_turn(void)
{
    fx_t f;
    fx_start(&f, NULL);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    phx_rcbuf_t *two = phx_rcbuf_new(4);
    memcpy(two->data, "two,", 4);
    two->len = 4;
    phx_rcbuf_ref(two); /* ours, to watch the queue release its own */
    ASSERT_EQ(phx_conn_send_copy(c, "one,", 4), 0);
    ASSERT_EQ(phx_conn_send(c, two), 0);
    ASSERT_EQ(phx_conn_send_copy(c, "three", 5), 0);
    /* Queued, not written: the flush comes once, at the end of the turn. */
    ASSERT_EQ(phx_conn_pending(c), 13);
    ASSERT(c->is_dirty);
    ASSERT(f.lf.loop.dirty == c);
    ASSERT_EQ(two->refs, 2);
    ASSERT_EQ(f.lf.loop.stats.msgs_out, 3);
    loopfx_run_turns(&f.lf, 1);
    ASSERT_EQ(phx_conn_pending(c), 0);
    ASSERT(!c->is_dirty);
    ASSERT(f.lf.loop.dirty == NULL);
    ASSERT_EQ(two->refs, 1);
    ASSERT_EQ(f.lf.loop.stats.bytes_out, 13);
    phx_rcbuf_unref(two);
    size_t want = 13;
    ASSERT(rawclient_wait(&f.rc, pred_client_has, &want, 2000));
    ASSERT_MEM_EQ(f.rc.in.data, f.rc.in.len, "one,two,three", 13);
    /* Nothing is written twice in later turns. */
    loopfx_run_turns(&f.lf, 3);
    ASSERT_EQ(f.rc.in.len, 13);
    fx_stop(&f);
}

/* An answer queued while reading leaves when the read ends. */
static void answer_to_a_read_leaves_at_once(void)
{
    fx_t f;
    fx_start(&f, NULL);
    f.echo = true;
    fx_connect(&f);
    rawclient_write(&f.rc, "ping", 4, 0);
    size_t want = 4;
    ASSERT(rawclient_wait(&f.rc, pred_client_has, &want, 2000));
    ASSERT_MEM_EQ(f.rc.in.data, f.rc.in.len, "ping", 4);
    ASSERT_EQ(phx_conn_pending(f.conn), 0);
    fx_stop(&f);
}

/* ---- closing ---- */

static void close_runs_on_close_then_on_free_once(void)
{
    fx_t f;
    fx_start(&f, NULL);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    phx_conn_close(c, false);
    ASSERT_EQ(f.closes, 1); /* at once: no layer code on the stack */
    ASSERT_EQ(f.frees, 0);  /* later: the handle closes first */
    phx_conn_close(c, false);
    phx_conn_close(c, true);
    ASSERT_EQ(f.closes, 1);
    ASSERT(rawclient_wait(&f.rc, pred_freed, NULL, 5000));
    expect_closed_once(&f, "cf");
    ASSERT_EQ(f.lf.loop.nconns, 0);
    ASSERT(f.layer == NULL);
    ASSERT(rawclient_wait_eof(&f.rc, 2000));
    fx_stop(&f);
    ASSERT_EQ(f.frees, 1);
}

static void close_inside_a_read_is_deferred_to_its_end(void)
{
    fx_t f;
    fx_start(&f, NULL);
    f.close_in_read = true;
    fx_connect(&f);
    rawclient_write(&f.rc, "x", 1, 0);
    ASSERT(rawclient_wait(&f.rc, pred_freed, NULL, 5000));
    ASSERT_EQ(f.reads, 1);
    ASSERT_EQ(f.closes_seen_in_read, 0);
    expect_closed_once(&f, "cf");
    fx_stop(&f);
}

static void peer_eof_closes_once(void)
{
    fx_t f;
    fx_start(&f, NULL);
    fx_connect(&f);
    client_leaves(&f);
    expect_closed_once(&f, "cf");
    fx_stop(&f);
}

static void graceful_close_writes_queued_output_first(void)
{
    fx_t f;
    fx_start(&f, NULL);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    ASSERT_EQ(phx_conn_send_copy(c, "bye", 3), 0);
    phx_conn_close(c, true);
    ASSERT_EQ(f.closes, 1);
    ASSERT(c->is_closing);
    ASSERT_EQ(c->list, PHX_LIST_CLOSE);
    /* Nothing more is queued once closing. */
    ASSERT_EQ(phx_conn_send_copy(c, "more", 4), PHX_ERR_CLOSED);
    ASSERT(rawclient_wait_eof(&f.rc, 2000));
    ASSERT_MEM_EQ(f.rc.in.data, f.rc.in.len, "bye", 3);
    /* Our side half-closed; the conn lives until the peer closes. */
    ASSERT_EQ(f.frees, 0);
    client_leaves(&f);
    ASSERT_EQ(f.closes, 1);
    ASSERT_STR_EQ(f.events, "cf");
    fx_stop(&f);
}

/* ---- backpressure ---- */

static void slow_consumer_limits(fx_t *f)
{
    f->lf.cfg.queue_high_bytes = 256 * 1024;
    f->send_buffer = 16 * 1024;
}

/* The raw client's own read path, to resume reading after a pause. */
static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof(slab));
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    rawclient_t *c = s->data;
    if (n > 0)
        phx_buf_append(&c->in, buf->base, (size_t)n);
    else if (n < 0)
        c->is_eof = true;
}

static bool pred_drained_and_read(rawclient_t *c, void *arg)
{
    size_t total = *(size_t *)arg;
    return c->in.len >= total && F->got.len >= 4 && !F->conn->is_read_paused;
}

/* A peer that does not read: output passes the high-water mark, reading
 * stops (its input waits in the kernel) until output falls to half the
 * mark, then resumes and the layer is told (on_drained). */
static void slow_consumer_pauses_reading_at_the_high_water_mark(void)
{
    fx_t f;
    fx_start(&f, slow_consumer_limits);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    uv_read_stop((uv_stream_t *)&f.rc.tcp);
    enum { CHUNK = 64 * 1024, CHUNKS = 64 }; /* 4 MiB: far more than the kernel buffers */
    uint8_t *chunk = phx_malloc(CHUNK);
    size_t total = 0;
    for (int i = 0; i < CHUNKS; i++) {
        for (size_t j = 0; j < CHUNK; j++)
            chunk[j] = (uint8_t)((total + j) % 251);
        ASSERT_EQ(phx_conn_send_copy(c, chunk, CHUNK), 0);
        total += CHUNK;
        /* Paused as soon as the queue passes the mark. */
        ASSERT_EQ(c->is_read_paused, total > f.lf.cfg.queue_high_bytes);
    }
    phx_free(chunk);
    ASSERT(!c->is_reading);
    ASSERT(!c->is_closing);
    /* The kernel takes what it can; the rest waits, reading stays off and
     * the client's bytes are not read. */
    loopfx_run_for(&f.lf, 50);
    rawclient_write(&f.rc, "ping", 4, 0);
    loopfx_run_for(&f.lf, 50);
    ASSERT(phx_conn_pending(c) > f.lf.cfg.queue_high_bytes);
    ASSERT(c->is_read_paused);
    ASSERT(!c->is_reading);
    ASSERT_EQ(f.got.len, 0);
    ASSERT_EQ(f.drained, 0);
    ASSERT_EQ(f.closes, 0);
    /* The client reads: everything arrives in order, reading resumes, the
     * waiting input is read. */
    ASSERT_EQ(uv_read_start((uv_stream_t *)&f.rc.tcp, client_alloc, client_read), 0);
    ASSERT(rawclient_wait(&f.rc, pred_drained_and_read, &total, 4000));
    ASSERT_EQ(f.rc.in.len, total);
    for (size_t i = 0; i < total; i++)
        if (f.rc.in.data[i] != (uint8_t)(i % 251))
            ASSERT_EQ(i, (size_t)-1);
    ASSERT_MEM_EQ(f.got.data, f.got.len, "ping", 4);
    ASSERT(c->is_reading);
    ASSERT(f.drained >= 1);
    ASSERT_EQ(phx_conn_pending(c), 0);
    ASSERT_EQ(f.closes, 0);
    fx_stop(&f);
}

static void few_queued_msgs(fx_t *f)
{
    f->lf.cfg.max_queued_msgs = 8;
}

/* The count of queued messages is a mark too. */
static void too_many_queued_messages_pause_reading(void)
{
    fx_t f;
    fx_start(&f, few_queued_msgs);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(phx_conn_send_copy(c, "m", 1), 0);
    ASSERT(!c->is_read_paused);
    ASSERT_EQ(phx_conn_send_copy(c, "m", 1), 0);
    ASSERT(c->is_read_paused);
    ASSERT(!c->is_reading);
    ASSERT(!phx_conn_is_congested(c)); /* 9 bytes: the count, not the bytes */
    /* Written in the turn: reading resumes. */
    loopfx_run_turns(&f.lf, 1);
    ASSERT(!c->is_read_paused);
    ASSERT(c->is_reading);
    ASSERT(f.drained >= 1);
    size_t want = 9;
    ASSERT(rawclient_wait(&f.rc, pred_client_has, &want, 2000));
    ASSERT_MEM_EQ(f.rc.in.data, f.rc.in.len, "mmmmmmmmm", 9);
    fx_stop(&f);
}

/* A layer holding reading off keeps it off through output backpressure. */
static void held_reading_is_not_resumed_by_drain(void)
{
    fx_t f;
    fx_start(&f, few_queued_msgs);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    phx_conn_hold_read(c, true);
    ASSERT(!c->is_reading);
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(phx_conn_send_copy(c, "m", 1), 0);
    ASSERT(c->is_read_paused);
    loopfx_run_turns(&f.lf, 1);
    ASSERT(!c->is_read_paused);
    ASSERT(!c->is_reading); /* still held */
    rawclient_write(&f.rc, "in", 2, 0);
    loopfx_run_for(&f.lf, 30);
    ASSERT_EQ(f.got.len, 0);
    phx_conn_hold_read(c, false);
    ASSERT(c->is_reading);
    size_t want = 2;
    ASSERT(rawclient_wait(&f.rc, pred_got, &want, 2000));
    ASSERT_MEM_EQ(f.got.data, f.got.len, "in", 2);
    fx_stop(&f);
}

/* ---- deadlines ---- */

/* Long enough for the accept to be seen first even under valgrind on a
 * loaded machine. */
#define SHORT_DEADLINE_MS 500

static void short_http_deadline(fx_t *f)
{
    f->lf.cfg.handshake_timeout_ms = SHORT_DEADLINE_MS;
    f->list_on_accept = PHX_LIST_HTTP;
}

static bool pred_timed_out_or_freed(rawclient_t *c, void *arg)
{
    return F->timeouts > 0 || F->frees > 0;
}

static void deadline_calls_on_timeout(void)
{
    fx_t f;
    fx_start(&f, short_http_deadline);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    ASSERT_EQ(c->list, PHX_LIST_HTTP);
    ASSERT_EQ(f.lf.loop.lists[PHX_LIST_HTTP].count, 1);
    uint64_t since = c->since;
    ASSERT(f.lf.loop.deadline_at == since + SHORT_DEADLINE_MS);
    ASSERT(rawclient_wait(&f.rc, pred_freed, NULL, 5000));
    ASSERT(uv_now(&f.lf.uv) >= since + SHORT_DEADLINE_MS);
    /* on_timeout closed it: on_close ran when on_timeout returned. */
    ASSERT_EQ(f.timeouts, 1);
    expect_closed_once(&f, "tcf");
    ASSERT_EQ(f.lf.loop.lists[PHX_LIST_HTTP].count, 0);
    fx_stop(&f);
}

static void deadline_without_on_timeout_closes(void)
{
    fx_t f;
    fx_start(&f, short_http_deadline);
    accept_ops = &fake_ops_no_timeout;
    fx_connect(&f);
    ASSERT(rawclient_wait(&f.rc, pred_freed, NULL, 5000));
    ASSERT_EQ(f.timeouts, 0);
    ASSERT_STR_EQ(f.events, "cf");
    fx_stop(&f);
}

static void deadline_handler_that_keeps_the_conn_is_overruled(void)
{
    fx_t f;
    fx_start(&f, short_http_deadline);
    f.timeout_action = 1; /* neither closes nor moves it */
    fx_connect(&f);
    ASSERT(rawclient_wait(&f.rc, pred_freed, NULL, 5000));
    ASSERT_EQ(f.timeouts, 1);
    ASSERT_STR_EQ(f.events, "tcf");
    fx_stop(&f);
}

static void deadline_handler_may_move_the_conn(void)
{
    fx_t f;
    fx_start(&f, short_http_deadline);
    f.timeout_action = 2; /* to PHX_LIST_WS (idle timeout: 60 s) */
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    ASSERT(rawclient_wait(&f.rc, pred_timed_out_or_freed, NULL, 5000));
    loopfx_run_for(&f.lf, 60);
    ASSERT_EQ(f.timeouts, 1);
    ASSERT_EQ(f.closes, 0);
    ASSERT_EQ(c->list, PHX_LIST_WS);
    ASSERT(phx_loop_list_first(&f.lf.loop, PHX_LIST_WS) == c);
    ASSERT(phx_loop_list_first(&f.lf.loop, PHX_LIST_HTTP) == NULL);
    fx_stop(&f);
}

static void slow_http_deadline(fx_t *f)
{
    f->lf.cfg.handshake_timeout_ms = 300;
    f->list_on_accept = PHX_LIST_HTTP;
}

static void activity_moves_the_deadline(void)
{
    fx_t f;
    fx_start(&f, slow_http_deadline);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    loopfx_run_for(&f.lf, 200);
    ASSERT_EQ(f.timeouts, 0);
    phx_loop_list_touch(&f.lf.loop, c, PHX_LIST_HTTP);
    uint64_t touched = c->since;
    loopfx_run_for(&f.lf, 150); /* past the first deadline, before the new one */
    ASSERT_EQ(f.timeouts, 0);
    ASSERT(rawclient_wait(&f.rc, pred_freed, NULL, 5000));
    ASSERT_EQ(f.timeouts, 1);
    ASSERT(uv_now(&f.lf.uv) >= touched + 300);
    fx_stop(&f);
}

/* ---- deferred steps ---- */

static void deferred_step_runs_later_once(void)
{
    fx_t f;
    fx_start(&f, NULL);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    f.deferred_send = "later";
    phx_loop_defer(&f.lf.loop, c);
    phx_loop_defer(&f.lf.loop, c);
    ASSERT_EQ(f.deferred, 0);
    ASSERT(c->is_deferred);
    loopfx_run_turns(&f.lf, 1);
    ASSERT_EQ(f.deferred, 1);
    ASSERT(!c->is_deferred);
    ASSERT_EQ(f.dispatch_in_deferred, 1); /* bracketed, nothing else of ours */
    /* Its output went out in the same turn (deferred steps run before the
     * flush). */
    ASSERT_EQ(phx_conn_pending(c), 0);
    loopfx_run_turns(&f.lf, 3);
    ASSERT_EQ(f.deferred, 1);
    size_t want = 5;
    ASSERT(rawclient_wait(&f.rc, pred_client_has, &want, 2000));
    ASSERT_MEM_EQ(f.rc.in.data, f.rc.in.len, "later", 5);
    fx_stop(&f);
}

static bool pred_deferred(rawclient_t *c, void *arg)
{
    return F->deferred > 0;
}

static void deferred_step_asked_in_a_read_runs_after_it(void)
{
    fx_t f;
    fx_start(&f, NULL);
    f.defer_in_read = true;
    fx_connect(&f);
    rawclient_write(&f.rc, "x", 1, 0);
    ASSERT(rawclient_wait(&f.rc, pred_deferred, NULL, 2000));
    ASSERT_EQ(f.deferred_seen_in_read, 0);
    ASSERT_EQ(f.deferred, 1);
    loopfx_run_turns(&f.lf, 3);
    ASSERT_EQ(f.deferred, 1);
    fx_stop(&f);
}

static void deferred_step_of_a_closed_conn_never_runs(void)
{
    fx_t f;
    fx_start(&f, NULL);
    fx_connect(&f);
    phx_conn_t *c = f.conn;
    phx_loop_defer(&f.lf.loop, c);
    phx_conn_close(c, false);
    phx_loop_defer(&f.lf.loop, c); /* refused: closing */
    ASSERT(rawclient_wait(&f.rc, pred_freed, NULL, 5000));
    ASSERT_EQ(f.deferred, 0);
    ASSERT(f.lf.loop.deferred == NULL);
    ASSERT_STR_EQ(f.events, "cf");
    fx_stop(&f);
}

const phx_test_t phx_tests_tcp[] = {
    {"bytes_reach_on_read_in_order", bytes_reach_on_read_in_order},
    {"queued_output_is_written_in_order_once_per_turn",
     queued_output_is_written_in_order_once_per_turn},
    {"answer_to_a_read_leaves_at_once", answer_to_a_read_leaves_at_once},
    {"close_runs_on_close_then_on_free_once", close_runs_on_close_then_on_free_once},
    {"close_inside_a_read_is_deferred_to_its_end", close_inside_a_read_is_deferred_to_its_end},
    {"peer_eof_closes_once", peer_eof_closes_once},
    {"graceful_close_writes_queued_output_first", graceful_close_writes_queued_output_first},
    {"slow_consumer_pauses_reading_at_the_high_water_mark",
     slow_consumer_pauses_reading_at_the_high_water_mark},
    {"too_many_queued_messages_pause_reading", too_many_queued_messages_pause_reading},
    {"held_reading_is_not_resumed_by_drain", held_reading_is_not_resumed_by_drain},
    {"deadline_calls_on_timeout", deadline_calls_on_timeout},
    {"deadline_without_on_timeout_closes", deadline_without_on_timeout_closes},
    {"deadline_handler_that_keeps_the_conn_is_overruled",
     deadline_handler_that_keeps_the_conn_is_overruled},
    {"deadline_handler_may_move_the_conn", deadline_handler_may_move_the_conn},
    {"activity_moves_the_deadline", activity_moves_the_deadline},
    {"deferred_step_runs_later_once", deferred_step_runs_later_once},
    {"deferred_step_asked_in_a_read_runs_after_it", deferred_step_asked_in_a_read_runs_after_it},
    {"deferred_step_of_a_closed_conn_never_runs", deferred_step_of_a_closed_conn_never_runs},
    {NULL, NULL},
};
