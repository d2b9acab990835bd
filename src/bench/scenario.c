/* scenario.c: what phxd-bench's sockets say and when. Runs the phases of a
 * run (ramp with bounded handshakes in flight, settle, measured phase,
 * drain, teardown), the four scenarios (hold, fanout, echo, churn), the
 * per-socket Phoenix heartbeat, step timeouts and the progress lines.
 * Messages from conn.c arrive in phx_bench_on_message. */
#include "bench.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phx.h"

/* Refs: joins use "1" (user:<id>) and "2" (the room), which are also the
 * join_refs of later pushes; other refs carry a letter and a counter:
 * h<n> heartbeat, p<n> ping, b<n> broadcast push, l1/l2 leaves. */
#define JR_USER "1"
#define JR_ROOM "2"
#define WAIT_USER 1u
#define WAIT_ROOM 2u
#define MAX_ERRORS_PRINTED 10
#define SWEEP_MS 250
#define PROGRESS_MS 1000
#define HB_TICK_MS 1000
#define CHURN_TICK_MS 5

static void finish(phx_bench_t *b);
static void rest(phx_bench_t *b);
static void measure_start(phx_bench_t *b);
static void measure_end(phx_bench_t *b);
static void ramp_fill(phx_bench_t *b);
static void churn_start(phx_bench_conn_t *c);
static void publish(phx_bench_t *b);

/* ---- helpers ---- */

uint64_t phx_bench_rand(phx_bench_t *b)
{
    /* xorshift64*: masks and keys need to be unpredictable to proxies, not
     * to attackers. */
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

const char *phx_bench_err_name(phx_bench_err_t kind)
{
    static const char *const names[] = {
#define PHX_BENCH_ERR_NAME(name, text) text,
        PHX_BENCH_ERRORS(PHX_BENCH_ERR_NAME)
#undef PHX_BENCH_ERR_NAME
    };
    return kind < PHX_BENCH_ERR_COUNT ? names[kind] : "?";
}

void phx_bench_error(phx_bench_t *b, phx_bench_err_t kind, const phx_bench_conn_t *c,
                     const char *fmt, ...)
{
    b->errors[kind]++;
    if (b->errors_printed >= MAX_ERRORS_PRINTED)
        return;
    b->errors_printed++;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c != NULL)
        fprintf(stderr, "phxd-bench: error %s: socket %u: %s\n", phx_bench_err_name(kind), c->index,
                msg);
    else
        fprintf(stderr, "phxd-bench: error %s: %s\n", phx_bench_err_name(kind), msg);
    if (b->errors_printed == MAX_ERRORS_PRINTED)
        fprintf(stderr, "phxd-bench: (further errors are only counted)\n");
}

uint64_t phx_bench_error_total(const phx_bench_t *b)
{
    uint64_t n = 0;
    for (int i = 0; i < PHX_BENCH_ERR_COUNT; i++)
        n += b->errors[i];
    return n;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* Builds `{"<key>":<v>,"t":<now>[,"pad":"xx.."]}` in b->payload_buf. */
static size_t build_payload(phx_bench_t *b, const char *key, uint64_t v, uint64_t t)
{
    char *p = b->payload_buf;
    *p++ = '{';
    *p++ = '"';
    p = put_str(p, key);
    p = put_str(p, "\":");
    p = put_u64(p, v);
    p = put_str(p, ",\"t\":");
    p = put_u64(p, t);
    if (b->opts.payload_bytes > 0) {
        p = put_str(p, ",\"pad\":\"");
        memset(p, 'x', b->opts.payload_bytes);
        p += b->opts.payload_bytes;
        *p++ = '"';
    }
    *p++ = '}';
    return (size_t)(p - b->payload_buf);
}

static void make_ref(char *buf, char letter, uint64_t n)
{
    buf[0] = letter;
    *put_u64(buf + 1, n) = '\0';
}

static uint64_t user_id(const phx_bench_conn_t *c)
{
    return c->b->opts.first_id + c->index;
}

static void sample_server(phx_bench_t *b, phx_proc_sample_t *out)
{
    if (b->opts.server_pid <= 0) {
        memset(out, 0, sizeof(*out));
        return;
    }
    phx_proc_sample(b->opts.server_pid, out);
    if (out->is_ok && out->rss_bytes > b->srv_rss_peak)
        b->srv_rss_peak = out->rss_bytes;
}

static void set_deadline(phx_bench_conn_t *c)
{
    c->deadline_ms = uv_now(c->b->loop) + c->b->opts.timeout_ms;
}

/* ---- joins ---- */

static void send_joins(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    c->step = PHX_STEP_JOINING;
    c->waiting = 0;
    if ((c->role == PHX_ROLE_HOLD || c->role == PHX_ROLE_CHURN) && b->has_user_topic) {
        char topic[48];
        snprintf(topic, sizeof(topic), "user:%" PRIu64, user_id(c));
        if (phx_bench_conn_push(c, JR_USER, JR_USER, topic, "phx_join", "{}", 2) != 0)
            return;
        c->waiting |= WAIT_USER;
    }
    if (phx_bench_conn_push(c, JR_ROOM, JR_ROOM, b->opts.topic, "phx_join", "{}", 2) != 0)
        return;
    c->waiting |= WAIT_ROOM;
}

void phx_bench_on_open(phx_bench_conn_t *c)
{
    send_joins(c);
}

static void ramp_check_done(phx_bench_t *b);

static void on_joined(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    uint64_t now = uv_hrtime();
    c->step = PHX_STEP_JOINED;
    c->deadline_ms = 0;
    if (c->role == PHX_ROLE_CHURN) {
        b->cycle_joins++;
        c->step = PHX_STEP_PINGING;
        set_deadline(c);
        size_t n = build_payload(b, "n", 1, now);
        phx_bench_conn_push(c, JR_ROOM, "p1", b->opts.topic, "ping", b->payload_buf, n);
        return;
    }
    c->is_joined = true;
    if (c->role != PHX_ROLE_PUBLISHER) {
        b->joined++;
        b->alive++;
        if (b->first_join_ns == 0)
            b->first_join_ns = now;
        b->last_join_ns = now;
        phx_hist_record(&b->connect_hist, now - c->t_start_ns);
    }
    if (c->is_ramping) {
        c->is_ramping = false;
        b->inflight--;
        ramp_fill(b);
    }
}

static void on_join_reply(phx_bench_conn_t *c, unsigned which, bool is_ok,
                          const phx_bench_span_t *resp)
{
    if (c->step != PHX_STEP_JOINING || !(c->waiting & which)) {
        phx_bench_error(c->b, PHX_BENCH_ERR_PROTOCOL, c, "unexpected join reply");
        return;
    }
    if (!is_ok) {
        phx_bench_error(c->b, PHX_BENCH_ERR_JOIN, c, "join of %s refused: %.*s",
                        which == WAIT_USER ? "user:<id>" : c->b->opts.topic,
                        (int)(resp->len > 100 ? 100 : resp->len), resp->p ? resp->p : "");
        phx_bench_conn_close(c);
        return;
    }
    c->waiting &= ~which;
    if (c->waiting == 0)
        on_joined(c);
}

/* ---- ramp ---- */

static void ramp_fill(phx_bench_t *b)
{
    if (b->phase != PHX_PHASE_RAMP)
        return;
    while (b->inflight < b->opts.concurrency && b->next_launch < b->n_conns) {
        phx_bench_conn_t *c = &b->conns[b->next_launch++];
        c->is_ramping = true;
        b->inflight++;
        c->t_start_ns = uv_hrtime();
        set_deadline(c);
        if (phx_bench_conn_start(c) != 0 && !c->has_handle) {
            c->is_ramping = false;
            b->inflight--;
        }
    }
    ramp_check_done(b);
}

static void settle_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    sample_server(b, &b->srv_ramp);
    if (b->alive == 0) {
        fprintf(stderr, "phxd-bench: no socket joined; nothing to measure\n");
        finish(b);
        return;
    }
    measure_start(b);
}

static void ramp_check_done(phx_bench_t *b)
{
    if (b->phase != PHX_PHASE_RAMP || b->next_launch < b->n_conns || b->inflight > 0)
        return;
    b->ramp_end_ns = uv_hrtime();
    b->cpu_ramp_end = phx_self_cpu_s();
    b->phase = PHX_PHASE_SETTLE;
    if (!b->opts.is_quiet)
        fprintf(stderr, "phxd-bench: ramp done: %u/%u sockets joined in %.2f s\n", b->joined,
                b->opts.sockets, secs(b->ramp_end_ns - b->t0_ns));
    uv_timer_start(&b->phase_timer, settle_on_timer, b->opts.settle_ms, 0);
}

/* ---- fanout ---- */

static void publish(phx_bench_t *b)
{
    phx_bench_conn_t *p = b->publisher;
    if (p == NULL || !p->is_joined || p->is_closing)
        return;
    if (b->n_bcasts == b->cap_bcasts) {
        size_t cap = b->cap_bcasts ? b->cap_bcasts * 2 : 1024;
        phx_bench_bcast_t *n = phx_realloc(b->bcasts, cap * sizeof(*n));
        if (n == NULL) {
            phx_bench_error(b, PHX_BENCH_ERR_RESOURCE, NULL, "out of memory");
            return;
        }
        b->bcasts = n;
        b->cap_bcasts = cap;
    }
    uint64_t seq = b->n_bcasts;
    phx_bench_bcast_t *bc = &b->bcasts[seq];
    memset(bc, 0, sizeof(*bc));
    bc->expected = b->subscribers;
    char ref[24];
    make_ref(ref, 'b', seq);
    bc->sent_ns = uv_hrtime();
    size_t n = build_payload(b, "seq", seq, bc->sent_ns);
    b->n_bcasts++;
    if (phx_bench_conn_push(p, JR_ROOM, ref, b->opts.topic, b->opts.event, b->payload_buf, n) ==
        0)
        phx_bench_conn_flush(p);
}

static void publish_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    if (b->phase != PHX_PHASE_MEASURE)
        return;
    uint64_t now = uv_hrtime();
    if (b->opts.rate <= 0) {
        /* Closed loop: this timer is only the watchdog of a broadcast that
         * never completed; send the next one anyway. */
        publish(b);
        uv_timer_start(&b->pace_timer, publish_on_timer, b->opts.timeout_ms, 0);
        return;
    }
    double interval_ns = 1e9 / b->opts.rate;
    uint64_t due = (uint64_t)((double)(now - b->measure_start_ns) / interval_ns) + 1;
    while (b->n_bcasts < due && b->phase == PHX_PHASE_MEASURE)
        publish(b);
    double next = (double)b->measure_start_ns + (double)b->n_bcasts * interval_ns;
    double wait_ms = (next - (double)uv_hrtime()) / 1e6;
    uv_timer_start(&b->pace_timer, publish_on_timer, wait_ms < 1 ? 1 : (uint64_t)ceil(wait_ms), 0);
}

static bool payload_seq(const phx_bench_span_t *payload, uint64_t *seq)
{
    /* Fast path for the bench's own encoding, then any key order. */
    static const char prefix[] = "{\"seq\":";
    size_t pl = sizeof(prefix) - 1;
    if (payload->len > pl && memcmp(payload->p, prefix, pl) == 0) {
        uint64_t v = 0;
        size_t i = pl;
        while (i < payload->len && payload->p[i] >= '0' && payload->p[i] <= '9')
            v = v * 10 + (uint64_t)(payload->p[i++] - '0');
        if (i > pl && i < payload->len && (payload->p[i] == ',' || payload->p[i] == '}')) {
            *seq = v;
            return true;
        }
    }
    phx_bench_span_t s;
    return phx_bench_json_get(payload, "seq", &s) && phx_bench_span_u64(&s, seq);
}

static void on_broadcast(phx_bench_conn_t *c, const phx_bench_msg_t *m)
{
    phx_bench_t *b = c->b;
    uint64_t seq;
    if (c->role != PHX_ROLE_SUBSCRIBER && c->role != PHX_ROLE_PUBLISHER) {
        b->other_msgs++;
        return;
    }
    if (!payload_seq(&m->payload, &seq) || seq >= b->n_bcasts) {
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "broadcast with an unknown seq");
        return;
    }
    if (c->role == PHX_ROLE_PUBLISHER) {
        b->publisher_copies++;
        return;
    }
    uint64_t now = uv_hrtime();
    if (seq < c->next_seq) {
        phx_bench_error(b, PHX_BENCH_ERR_ORDER, c, "broadcast %" PRIu64 " after %u", seq,
                        c->next_seq - 1);
        return;
    }
    c->next_seq = (uint32_t)seq + 1;
    c->received++;
    phx_bench_bcast_t *bc = &b->bcasts[seq];
    bc->count++;
    bc->last_ns = now;
    b->deliveries++;
    if (b->phase == PHX_PHASE_MEASURE)
        b->deliveries_in_window++;
    phx_hist_record(&b->delivery_hist, now - bc->sent_ns);
    if (bc->count != bc->expected)
        return;
    b->bcasts_complete++;
    if (b->phase == PHX_PHASE_DRAIN && b->bcasts_complete == b->n_bcasts)
        finish(b);
    else if (b->phase == PHX_PHASE_MEASURE && b->opts.rate <= 0 && seq + 1 == b->n_bcasts) {
        publish(b);
        uv_timer_start(&b->pace_timer, publish_on_timer, b->opts.timeout_ms, 0);
    }
}

/* ---- echo ---- */

static int echo_send(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    uint32_t w = b->opts.window;
    uint64_t now = uv_hrtime();
    char ref[24];
    make_ref(ref, 'p', c->echo_sent);
    size_t n = build_payload(b, "n", c->echo_sent, now);
    int rv = phx_bench_conn_push(c, JR_ROOM, ref, b->opts.topic, "ping", b->payload_buf, n);
    if (rv != 0)
        return rv;
    b->echo_ts[(size_t)c->index * w + c->echo_sent % w] = now;
    if (c->echo_sent == c->echo_acked)
        set_deadline(c);
    c->echo_sent++;
    b->echo_outstanding++;
    b->echo_sent++;
    return 0;
}

static void echo_on_reply(phx_bench_conn_t *c, const phx_bench_msg_t *m, bool is_ok)
{
    phx_bench_t *b = c->b;
    uint64_t now = uv_hrtime();
    phx_bench_span_t num = {m->ref.p + 1, m->ref.len - 1, true, false};
    uint64_t n;
    if (!phx_bench_span_u64(&num, &n) || n != c->echo_acked || c->echo_acked == c->echo_sent) {
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "ping reply %.*s out of order (expected p%u)",
                        (int)m->ref.len, m->ref.p, c->echo_acked);
        phx_bench_conn_close(c);
        return;
    }
    if (!is_ok)
        phx_bench_error(b, PHX_BENCH_ERR_REPLY, c, "ping answered with an error");
    uint32_t w = b->opts.window;
    phx_hist_record(&b->echo_hist, now - b->echo_ts[(size_t)c->index * w + n % w]);
    c->echo_acked++;
    b->echo_outstanding--;
    b->echo_replies++;
    if (b->phase == PHX_PHASE_MEASURE)
        b->echo_in_window++;
    c->deadline_ms = c->echo_acked == c->echo_sent ? 0 : uv_now(b->loop) + b->opts.timeout_ms;
    if (b->phase == PHX_PHASE_MEASURE && b->opts.rate <= 0)
        echo_send(c);
    else if (b->phase == PHX_PHASE_DRAIN && b->echo_outstanding == 0)
        finish(b);
}

/* Open loop (--rate > 0): sends the pings due since the phase started,
 * round-robin over the sockets with room in their window. */
static void echo_pace_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    if (b->phase != PHX_PHASE_MEASURE)
        return;
    uint64_t due = (uint64_t)(secs(uv_hrtime() - b->measure_start_ns) * b->opts.rate);
    while (b->echo_sent + b->echo_skipped < due) {
        phx_bench_conn_t *found = NULL;
        for (uint32_t k = 0; k < b->n_conns && found == NULL; k++) {
            phx_bench_conn_t *c = &b->conns[b->echo_cursor++ % b->n_conns];
            if (c->is_joined && !c->is_closing && c->echo_sent - c->echo_acked < b->opts.window)
                found = c;
        }
        if (found == NULL) {
            b->echo_skipped += due - b->echo_sent - b->echo_skipped;
            break;
        }
        if (echo_send(found) == 0)
            phx_bench_conn_flush(found);
    }
}

/* ---- churn ---- */

static void churn_on_ping_reply(phx_bench_conn_t *c, bool is_ok)
{
    phx_bench_t *b = c->b;
    if (c->step != PHX_STEP_PINGING) {
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "unexpected ping reply");
        return;
    }
    if (!is_ok)
        phx_bench_error(b, PHX_BENCH_ERR_REPLY, c, "ping answered with an error");
    c->step = PHX_STEP_LEAVING;
    c->waiting = WAIT_ROOM;
    set_deadline(c);
    if (phx_bench_conn_push(c, JR_ROOM, "l2", b->opts.topic, "phx_leave", "{}", 2) != 0)
        return;
    if (b->has_user_topic) {
        char topic[48];
        snprintf(topic, sizeof(topic), "user:%" PRIu64, user_id(c));
        if (phx_bench_conn_push(c, JR_USER, "l1", topic, "phx_leave", "{}", 2) != 0)
            return;
        c->waiting |= WAIT_USER;
    }
}

static void churn_on_leave_reply(phx_bench_conn_t *c, unsigned which, bool is_ok)
{
    if (c->step != PHX_STEP_LEAVING || !(c->waiting & which)) {
        phx_bench_error(c->b, PHX_BENCH_ERR_PROTOCOL, c, "unexpected leave reply");
        return;
    }
    if (!is_ok)
        phx_bench_error(c->b, PHX_BENCH_ERR_REPLY, c, "leave answered with an error");
    c->waiting &= ~which;
    if (c->waiting != 0)
        return;
    c->step = PHX_STEP_CLOSING;
    set_deadline(c);
    phx_bench_conn_ws_close(c);
}

static void churn_start(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    c->t_start_ns = uv_hrtime();
    c->step = PHX_STEP_NONE;
    set_deadline(c);
    b->cycles_started++;
    b->active++;
    if (phx_bench_conn_start(c) != 0 && !c->has_handle) {
        b->active--;
        b->idle[b->n_idle++] = c->index;
    }
}

static void churn_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    if (b->phase != PHX_PHASE_MEASURE)
        return;
    uint64_t allowed = UINT64_MAX;
    if (b->opts.rate > 0) {
        uint64_t due = (uint64_t)(secs(uv_hrtime() - b->measure_start_ns) * b->opts.rate) + 1;
        allowed = due > b->cycles_started ? due - b->cycles_started : 0;
    }
    while (b->n_idle > 0 && allowed > 0) {
        allowed--;
        churn_start(&b->conns[b->idle[--b->n_idle]]);
    }
}

static void churn_cycle_done(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    b->cycles++;
    if (b->phase == PHX_PHASE_MEASURE)
        b->cycles_in_window++;
    phx_hist_record(&b->cycle_hist, uv_hrtime() - c->t_start_ns);
    if (!c->has_cycled) {
        c->has_cycled = true;
        b->workers_cycled++;
    }
    c->step = PHX_STEP_NONE;
    c->deadline_ms = 0;
    phx_bench_conn_close(c);
}

/* ---- messages ---- */

static void on_reply(phx_bench_conn_t *c, const phx_bench_msg_t *m)
{
    phx_bench_t *b = c->b;
    bool is_ok;
    phx_bench_span_t resp;
    if (!phx_bench_reply_status(m, &is_ok, &resp) || !m->ref.is_string || m->ref.len == 0) {
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "malformed phx_reply");
        phx_bench_conn_close(c);
        return;
    }
    const phx_bench_span_t *ref = &m->ref;
    switch (ref->p[0]) {
    case '1':
    case '2':
        if (ref->len == 1)
            on_join_reply(c, ref->p[0] == '1' ? WAIT_USER : WAIT_ROOM, is_ok, &resp);
        else
            phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "reply to unknown ref");
        return;
    case 'h':
        c->is_hb_pending = false;
        b->heartbeats++;
        return;
    case 'p':
        if (c->role == PHX_ROLE_CHURN)
            churn_on_ping_reply(c, is_ok);
        else if (c->role == PHX_ROLE_ECHO)
            echo_on_reply(c, m, is_ok);
        else
            phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "unexpected ping reply");
        return;
    case 'l':
        churn_on_leave_reply(c, phx_bench_span_eq(ref, "l1") ? WAIT_USER : WAIT_ROOM, is_ok);
        return;
    case 'b':
        if (!is_ok)
            phx_bench_error(b, PHX_BENCH_ERR_REPLY, c, "broadcast push answered with an error");
        return;
    default:
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "reply to unknown ref %.*s",
                        (int)(ref->len > 20 ? 20 : ref->len), ref->p);
        return;
    }
}

void phx_bench_on_message(phx_bench_conn_t *c, const phx_bench_msg_t *m)
{
    phx_bench_t *b = c->b;
    if (phx_bench_span_eq(&m->event, "phx_reply")) {
        on_reply(c, m);
    } else if (phx_bench_span_eq(&m->event, b->opts.event)) {
        on_broadcast(c, m);
    } else if (phx_bench_span_eq(&m->event, "phx_close") ||
               phx_bench_span_eq(&m->event, "phx_error")) {
        /* After a leave the server closes the channel; anything else is the
         * server dropping a channel the bench still uses. */
        if (c->role == PHX_ROLE_CHURN &&
            (c->step == PHX_STEP_LEAVING || c->step == PHX_STEP_CLOSING))
            return;
        phx_bench_error(b, PHX_BENCH_ERR_CLOSED, c, "%.*s on %.*s", (int)m->event.len, m->event.p,
                        (int)m->topic.len, m->topic.p);
        phx_bench_conn_close(c);
    } else {
        b->other_msgs++;
    }
}

void phx_bench_on_eof(phx_bench_conn_t *c)
{
    if (c->role == PHX_ROLE_CHURN && c->step == PHX_STEP_CLOSING) {
        churn_cycle_done(c);
        return;
    }
    if (c->b->phase != PHX_PHASE_DONE) {
        unsigned code = c->ws && wslay_event_get_close_received(c->ws)
                            ? wslay_event_get_status_code_received(c->ws)
                            : 0;
        if (code != 0)
            phx_bench_error(c->b, PHX_BENCH_ERR_CLOSED, c, "server closed the WebSocket (code %u)",
                            code);
        else
            phx_bench_error(c->b, PHX_BENCH_ERR_CLOSED, c, "server ended the connection");
    }
    phx_bench_conn_flush(c);
    phx_bench_conn_close(c);
}

void phx_bench_on_closed(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    c->deadline_ms = 0;
    c->step = PHX_STEP_NONE;
    if (c->role == PHX_ROLE_CHURN) {
        b->active--;
        if (b->phase == PHX_PHASE_MEASURE) {
            if (b->opts.rate <= 0)
                churn_start(c);
            else
                b->idle[b->n_idle++] = c->index;
        } else if (b->phase == PHX_PHASE_DRAIN && b->active == 0) {
            rest(b);
        }
        return;
    }
    if (c->is_joined) {
        c->is_joined = false;
        if (c->role != PHX_ROLE_PUBLISHER)
            b->alive--;
    }
    if (c->is_ramping) {
        c->is_ramping = false;
        b->inflight--;
        ramp_fill(b);
    }
    if (c->role == PHX_ROLE_ECHO && c->echo_sent > c->echo_acked) {
        b->echo_outstanding -= c->echo_sent - c->echo_acked;
        c->echo_acked = c->echo_sent;
        if (b->phase == PHX_PHASE_DRAIN && b->echo_outstanding == 0)
            finish(b);
    }
}

/* ---- timers ---- */

static void sweep_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    uint64_t now = uv_now(b->loop);
    static const char *const steps[] = {"connect and upgrade", "join", "-", "ping reply",
                                        "leave reply", "close"};
    for (uint32_t i = 0; i < b->n_conns; i++) {
        phx_bench_conn_t *c = &b->conns[i];
        if (c->deadline_ms == 0 || now < c->deadline_ms || !c->has_handle || c->is_closing)
            continue;
        const char *what = c->state < PHX_CONN_OPEN ? "connect and upgrade"
                           : c->role == PHX_ROLE_ECHO && c->step == PHX_STEP_JOINED
                               ? "ping reply"
                               : steps[c->step];
        phx_bench_error(b, PHX_BENCH_ERR_TIMEOUT, c, "no %s within %u ms", what,
                        b->opts.timeout_ms);
        c->deadline_ms = 0;
        phx_bench_conn_close(c);
    }
}

static void hb_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    uint32_t slices = b->opts.heartbeat_ms / HB_TICK_MS;
    if (slices == 0)
        slices = 1;
    /* Tick k serves the sockets whose index is k modulo the number of
     * ticks per interval: each socket gets one heartbeat per interval. */
    uint32_t slot = b->hb_cursor++ % slices;
    for (uint32_t i = slot; i < b->n_conns; i += slices) {
        phx_bench_conn_t *c = &b->conns[i];
        if (c->state != PHX_CONN_OPEN || c->is_closing || c->role == PHX_ROLE_CHURN)
            continue;
        if (c->is_hb_pending)
            phx_bench_error(b, PHX_BENCH_ERR_HEARTBEAT, c, "no heartbeat reply within %u ms",
                            b->opts.heartbeat_ms);
        char ref[24];
        make_ref(ref, 'h', ++c->hb_count);
        if (phx_bench_conn_push(c, NULL, ref, "phoenix", "heartbeat", "{}", 2) == 0) {
            c->is_hb_pending = true;
            phx_bench_conn_flush(c);
        }
    }
}

static void progress_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    phx_proc_sample_t s;
    sample_server(b, &s);
    if (b->opts.is_quiet)
        return;
    uint64_t now = uv_hrtime();
    double dt = secs(now - b->last_progress_ns);
    char srv[96] = "";
    if (s.is_ok)
        snprintf(srv, sizeof(srv), "  server rss %.1f MiB (+%.1f) cpu %.1f s",
                 (double)s.rss_bytes / 1048576.0,
                 ((double)s.rss_bytes - (double)b->srv_base.rss_bytes) / 1048576.0,
                 s.cpu_s - b->srv_base.cpu_s);
    uint64_t count;
    double el = secs(now - b->t0_ns);
    uint64_t errs = phx_bench_error_total(b);
    switch (b->phase == PHX_PHASE_RAMP || b->phase == PHX_PHASE_SETTLE ? -1 : (int)b->opts.scenario) {
    case -1:
        count = b->joined;
        fprintf(stderr,
                "[%6.1fs] ramp   joined %u/%u (+%.0f/s)  in flight %u  errors %" PRIu64 "%s\n", el,
                b->joined, b->opts.sockets, (double)(count - b->last_progress_count) / dt,
                b->inflight, errs, srv);
        break;
    case PHX_BENCH_HOLD:
        count = b->heartbeats;
        fprintf(stderr, "[%6.1fs] hold   %u sockets  heartbeats %" PRIu64 "  errors %" PRIu64 "%s\n",
                el, b->alive, b->heartbeats, errs, srv);
        break;
    case PHX_BENCH_FANOUT:
        count = b->deliveries;
        fprintf(stderr,
                "[%6.1fs] fanout sent %zu  complete %zu  deliveries %" PRIu64
                " (+%.0f/s)  errors %" PRIu64 "%s\n",
                el, b->n_bcasts, b->bcasts_complete, b->deliveries,
                (double)(count - b->last_progress_count) / dt, errs, srv);
        break;
    case PHX_BENCH_ECHO:
        count = b->echo_replies;
        fprintf(stderr,
                "[%6.1fs] echo   %" PRIu64 " round trips (+%.0f/s)  outstanding %" PRIu64
                "  errors %" PRIu64 "%s\n",
                el, b->echo_replies, (double)(count - b->last_progress_count) / dt,
                b->echo_outstanding, errs, srv);
        break;
    default:
        count = b->cycles;
        fprintf(stderr,
                "[%6.1fs] churn  %" PRIu64 " cycles (+%.0f/s)  active %u  errors %" PRIu64 "%s\n",
                el, b->cycles, (double)(count - b->last_progress_count) / dt, b->active, errs,
                srv);
        break;
    }
    b->last_progress_ns = now;
    b->last_progress_count = count;
}

/* ---- phases ---- */

static void measure_on_timer(uv_timer_t *t)
{
    measure_end(t->data);
}

static void rest_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    sample_server(b, &b->srv_end);
    finish(b);
}

/* Churn: every socket is closed; give the server settle_ms to release what
 * they held before the end sample (the point of churn is that memory comes
 * back). */
static void rest(phx_bench_t *b)
{
    b->phase = PHX_PHASE_REST;
    uv_timer_start(&b->phase_timer, rest_on_timer, b->opts.settle_ms, 0);
}

static void drain_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    if (b->opts.scenario != PHX_BENCH_CHURN) {
        finish(b);
        return;
    }
    /* Cut the cycles still running; the last close callback rests. */
    for (uint32_t i = 0; i < b->n_conns; i++) {
        phx_bench_conn_t *c = &b->conns[i];
        if (c->has_handle && !c->is_closing) {
            phx_bench_error(b, PHX_BENCH_ERR_TIMEOUT, c, "cycle unfinished after the drain");
            phx_bench_conn_close(c);
        }
    }
    if (b->active == 0)
        rest(b);
}

static void measure_start(phx_bench_t *b)
{
    b->phase = PHX_PHASE_MEASURE;
    b->measure_start_ns = uv_hrtime();
    b->cpu_measure_start = phx_self_cpu_s();
    sample_server(b, &b->srv_measure);
    phx_host_sample(&b->host_measure_start);
    b->last_progress_ns = b->measure_start_ns;
    b->last_progress_count = 0;
    switch (b->opts.scenario) {
    case PHX_BENCH_HOLD:
        break;
    case PHX_BENCH_FANOUT:
        if (b->publisher == NULL || !b->publisher->is_joined) {
            phx_bench_error(b, PHX_BENCH_ERR_JOIN, NULL, "the publisher socket did not join");
            finish(b);
            return;
        }
        b->subscribers = b->alive;
        publish_on_timer(&b->pace_timer);
        if (b->opts.rate <= 0)
            uv_timer_start(&b->pace_timer, publish_on_timer, b->opts.timeout_ms, 0);
        break;
    case PHX_BENCH_ECHO:
        if (b->opts.rate > 0) {
            uv_timer_start(&b->pace_timer, echo_pace_on_timer, 1, 1);
            break;
        }
        for (uint32_t i = 0; i < b->n_conns; i++) {
            phx_bench_conn_t *c = &b->conns[i];
            if (!c->is_joined || c->is_closing)
                continue;
            for (uint32_t k = 0; k < b->opts.window; k++)
                if (echo_send(c) != 0)
                    break;
            phx_bench_conn_flush(c);
        }
        break;
    case PHX_BENCH_CHURN:
        for (uint32_t i = 0; i < b->n_conns; i++)
            b->idle[b->n_idle++] = b->n_conns - 1 - i;
        churn_on_timer(&b->pace_timer);
        uv_timer_start(&b->pace_timer, churn_on_timer, CHURN_TICK_MS, CHURN_TICK_MS);
        break;
    }
    uint64_t ms = (uint64_t)(b->opts.duration_s * 1000.0 + 0.5);
    uv_timer_start(&b->phase_timer, measure_on_timer, ms, 0);
}

static void measure_end(phx_bench_t *b)
{
    if (b->phase != PHX_PHASE_MEASURE)
        return;
    b->measure_end_ns = uv_hrtime();
    b->cpu_measure_end = phx_self_cpu_s();
    sample_server(b, &b->srv_measure_end);
    phx_host_sample(&b->host_measure_end);
    b->phase = PHX_PHASE_DRAIN;
    uv_timer_stop(&b->pace_timer);
    bool is_done;
    switch (b->opts.scenario) {
    case PHX_BENCH_FANOUT:
        is_done = b->bcasts_complete == b->n_bcasts;
        break;
    case PHX_BENCH_ECHO:
        is_done = b->echo_outstanding == 0;
        break;
    case PHX_BENCH_CHURN:
        is_done = b->active == 0;
        break;
    default:
        is_done = true;
        break;
    }
    if (!is_done)
        uv_timer_start(&b->phase_timer, drain_on_timer, b->opts.drain_ms, 0);
    else if (b->opts.scenario == PHX_BENCH_CHURN)
        rest(b);
    else
        finish(b);
}

static void close_timer(uv_timer_t *t)
{
    uv_timer_stop(t);
    if (!uv_is_closing((uv_handle_t *)t))
        uv_close((uv_handle_t *)t, NULL);
}

static void finish(phx_bench_t *b)
{
    if (b->phase == PHX_PHASE_DONE)
        return;
    if (b->measure_end_ns == 0 && b->measure_start_ns != 0) {
        b->measure_end_ns = uv_hrtime();
        b->cpu_measure_end = phx_self_cpu_s();
        sample_server(b, &b->srv_measure_end);
        phx_host_sample(&b->host_measure_end);
    }
    b->phase = PHX_PHASE_DONE;
    b->sockets_final = b->opts.scenario == PHX_BENCH_CHURN ? b->workers_cycled : b->alive;
    b->end_ns = uv_hrtime();
    if (!b->srv_end.is_ok)
        sample_server(b, &b->srv_end);
    b->cpu_end = phx_self_cpu_s();
    if (b->opts.scenario == PHX_BENCH_FANOUT) {
        uint64_t missing = 0;
        for (size_t i = 0; i < b->n_bcasts; i++)
            if (b->bcasts[i].count < b->bcasts[i].expected)
                missing += b->bcasts[i].expected - b->bcasts[i].count;
        if (missing > 0) {
            phx_bench_error(b, PHX_BENCH_ERR_MISSING, NULL,
                            "%" PRIu64 " deliveries missing after %u ms of drain", missing,
                            b->opts.drain_ms);
            b->errors[PHX_BENCH_ERR_MISSING] += missing - 1;
        }
    }
    close_timer(&b->progress_timer);
    close_timer(&b->sweep_timer);
    close_timer(&b->hb_timer);
    close_timer(&b->pace_timer);
    close_timer(&b->phase_timer);
    if (!uv_is_closing((uv_handle_t *)&b->sigint))
        uv_close((uv_handle_t *)&b->sigint, NULL);
    for (uint32_t i = 0; i < b->n_conns; i++)
        phx_bench_conn_close(&b->conns[i]);
}

static void sigint_on_signal(uv_signal_t *s, int signum)
{
    phx_bench_t *b = s->data;
    b->is_interrupted = true;
    fprintf(stderr, "phxd-bench: interrupted\n");
    if (b->phase == PHX_PHASE_MEASURE)
        measure_end(b);
    else
        finish(b);
}

int phx_bench_run_start(phx_bench_t *b)
{
    uv_timer_t *timers[] = {&b->progress_timer, &b->sweep_timer, &b->hb_timer, &b->pace_timer,
                            &b->phase_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(b->loop, timers[i]);
        timers[i]->data = b;
    }
    uv_signal_init(b->loop, &b->sigint);
    b->sigint.data = b;
    uv_signal_start(&b->sigint, sigint_on_signal, SIGINT);

    sample_server(b, &b->srv_base);
    b->srv_rss_peak = b->srv_base.rss_bytes;
    b->cpu_base = phx_self_cpu_s();
    b->t0_ns = uv_hrtime();
    b->last_progress_ns = b->t0_ns;
    uv_update_time(b->loop);

    uv_timer_start(&b->progress_timer, progress_on_timer, PROGRESS_MS, PROGRESS_MS);
    uv_timer_start(&b->sweep_timer, sweep_on_timer, SWEEP_MS, SWEEP_MS);
    if (b->opts.scenario == PHX_BENCH_CHURN) {
        measure_start(b);
        return 0;
    }
    uv_timer_start(&b->hb_timer, hb_on_timer, HB_TICK_MS, HB_TICK_MS);
    b->phase = PHX_PHASE_RAMP;
    ramp_fill(b);
    return 0;
}
