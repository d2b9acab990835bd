/* scenario.c: what phxd-bench's sockets say and when. Runs the phases of a
 * run (ramp with bounded handshakes in flight, settle, measured phase,
 * drain, teardown), the joins, the per-socket Phoenix heartbeat, step
 * timeouts and the progress lines. Messages from conn.c arrive in
 * phx_bench_on_message; traffic.c does what fanout, echo and churn send. */
#include "bench.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phx.h"

#define MAX_ERRORS_PRINTED 10
#define SWEEP_MS 250
#define PROGRESS_MS 1000
#define HB_TICK_MS 1000

static void measure_start(phx_bench_t *b);
static void measure_end(phx_bench_t *b);
static void ramp_fill(phx_bench_t *b);

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
size_t phx_bench_payload(phx_bench_t *b, const char *key, uint64_t v, uint64_t t)
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

void phx_bench_ref(char *buf, char letter, uint64_t n)
{
    buf[0] = letter;
    *put_u64(buf + 1, n) = '\0';
}

uint64_t phx_bench_user_id(const phx_bench_conn_t *c)
{
    return c->b->opts.first_id + c->index;
}

/* The built-in backend's event calls and CPU at a phase boundary. */
static void sample_backend(phx_bench_t *b, uint64_t *events, double *cpu_s)
{
    if (b->backend == NULL)
        return;
    *events = phx_bench_backend_events(b->backend);
    *cpu_s = phx_bench_backend_cpu_s(b->backend);
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

void phx_bench_deadline(phx_bench_conn_t *c)
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
        snprintf(topic, sizeof(topic), "user:%" PRIu64, phx_bench_user_id(c));
        if (phx_bench_conn_push(c, PHX_JR_USER, PHX_JR_USER, topic, "phx_join", "{}", 2) != 0)
            return;
        c->waiting |= PHX_WAIT_USER;
    }
    if (phx_bench_conn_push(c, PHX_JR_ROOM, PHX_JR_ROOM, b->opts.topic, "phx_join", "{}", 2) != 0)
        return;
    c->waiting |= PHX_WAIT_ROOM;
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
        phx_bench_deadline(c);
        size_t n = phx_bench_payload(b, "n", 1, now);
        phx_bench_conn_push(c, PHX_JR_ROOM, "p1", b->opts.topic, "ping", b->payload_buf, n);
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
                        which == PHX_WAIT_USER ? "user:<id>" : c->b->opts.topic,
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
        phx_bench_deadline(c);
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
        phx_bench_finish(b);
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
            on_join_reply(c, ref->p[0] == '1' ? PHX_WAIT_USER : PHX_WAIT_ROOM, is_ok, &resp);
        else
            phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "reply to unknown ref");
        return;
    case 'h':
        c->is_hb_pending = false;
        b->heartbeats++;
        return;
    case 'p':
        if (c->role == PHX_ROLE_CHURN)
            phx_churn_on_ping_reply(c, is_ok);
        else if (c->role == PHX_ROLE_ECHO)
            phx_echo_on_reply(c, m, is_ok, &resp);
        else
            phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "unexpected ping reply");
        return;
    case 'l':
        phx_churn_on_leave_reply(c, phx_bench_span_eq(ref, "l1") ? PHX_WAIT_USER : PHX_WAIT_ROOM,
                                 is_ok);
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
        phx_fanout_on_broadcast(c, m);
    } else if (phx_bench_span_eq(&m->event, "presence_diff")) {
        phx_presence_on_message(c, m, false);
    } else if (phx_bench_span_eq(&m->event, "presence_state")) {
        phx_presence_on_message(c, m, true);
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
        phx_churn_cycle_done(c);
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
        phx_churn_on_closed(c);
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
    if (c->role == PHX_ROLE_ECHO)
        phx_echo_on_closed(c);
}

/* ---- timers ---- */

static void sweep_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    uint64_t now = uv_now(b->loop);
    static const char *const steps[] = {"connect and upgrade", "join",        "-",
                                        "ping reply",          "leave reply", "close"};
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
        phx_bench_ref(ref, 'h', ++c->hb_count);
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
    if (b->phase == PHX_PHASE_MEASURE && !b->srv_mid.is_ok && s.is_ok &&
        secs(uv_hrtime() - b->measure_start_ns) >= b->opts.duration_s / 2) {
        b->srv_mid = s;
        b->cycles_mid = b->cycles;
    }
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
    switch (b->phase == PHX_PHASE_RAMP || b->phase == PHX_PHASE_SETTLE ? -1
                                                                       : (int)b->opts.scenario) {
    case -1:
        count = b->joined;
        fprintf(stderr,
                "[%6.1fs] ramp   joined %u/%u (+%.0f/s)  in flight %u  errors %" PRIu64 "%s\n", el,
                b->joined, b->opts.sockets, (double)(count - b->last_progress_count) / dt,
                b->inflight, errs, srv);
        break;
    case PHX_BENCH_HOLD:
        count = b->heartbeats;
        fprintf(stderr,
                "[%6.1fs] hold   %u sockets  heartbeats %" PRIu64 "  errors %" PRIu64 "%s\n", el,
                b->alive, b->heartbeats, errs, srv);
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
    case PHX_BENCH_BACKEND:
        count = b->echo_replies;
        fprintf(stderr,
                "[%6.1fs] backend %" PRIu64 " callbacks (+%.0f/s)  outstanding %" PRIu64
                "  backend calls %" PRIu64 "  errors %" PRIu64 "%s\n",
                el, b->echo_replies, (double)(count - b->last_progress_count) / dt,
                b->echo_outstanding,
                b->backend != NULL ? phx_bench_backend_events(b->backend) : b->backend_timed, errs,
                srv);
        break;
    case PHX_BENCH_PRESENCE:
        count = b->pres_converged;
        fprintf(stderr, "[%6.1fs] presence %u/%u views complete  errors %" PRIu64 "%s\n", el,
                b->pres_converged, b->opts.sockets, errs, srv);
        break;
    default:
        count = b->cycles;
        fprintf(stderr,
                "[%6.1fs] churn  %" PRIu64 " cycles (+%.0f/s)  active %u  errors %" PRIu64 "%s\n",
                el, b->cycles, (double)(count - b->last_progress_count) / dt, b->active, errs, srv);
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
    phx_bench_finish(b);
}

/* Churn: every socket is closed; give the server settle_ms to release what
 * they held before the end sample (the point of churn is that memory comes
 * back). */
void phx_bench_rest(phx_bench_t *b)
{
    b->phase = PHX_PHASE_REST;
    uv_timer_start(&b->phase_timer, rest_on_timer, b->opts.settle_ms, 0);
}

static void drain_on_timer(uv_timer_t *t)
{
    phx_bench_t *b = t->data;
    if (b->opts.scenario != PHX_BENCH_CHURN) {
        phx_bench_finish(b);
        return;
    }
    phx_churn_cut(b);
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
        if (phx_fanout_start(b) != 0) {
            phx_bench_finish(b);
            return;
        }
        break;
    case PHX_BENCH_ECHO:
        phx_echo_start(b);
        break;
    case PHX_BENCH_BACKEND:
        sample_backend(b, &b->be_events_start, &b->be_cpu_start);
        phx_echo_start(b);
        break;
    case PHX_BENCH_CHURN:
        phx_churn_start(b);
        break;
    case PHX_BENCH_PRESENCE:
        /* The joins were the load; the phase only waits (at most
         * --duration) for every view to hold every user. */
        if (phx_presence_is_done(b)) {
            measure_end(b);
            return;
        }
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
    sample_backend(b, &b->be_events_end, &b->be_cpu_end);
    b->phase = PHX_PHASE_DRAIN;
    uv_timer_stop(&b->pace_timer);
    bool is_done;
    switch (b->opts.scenario) {
    case PHX_BENCH_FANOUT:
        is_done = b->bcasts_complete == b->n_bcasts;
        break;
    case PHX_BENCH_ECHO:
    case PHX_BENCH_BACKEND:
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
        phx_bench_rest(b);
    else
        phx_bench_finish(b);
}

static void close_timer(uv_timer_t *t)
{
    uv_timer_stop(t);
    if (!uv_is_closing((uv_handle_t *)t))
        uv_close((uv_handle_t *)t, NULL);
}

void phx_bench_finish(phx_bench_t *b)
{
    if (b->phase == PHX_PHASE_DONE)
        return;
    if (b->measure_end_ns == 0 && b->measure_start_ns != 0) {
        b->measure_end_ns = uv_hrtime();
        b->cpu_measure_end = phx_self_cpu_s();
        sample_server(b, &b->srv_measure_end);
        phx_host_sample(&b->host_measure_end);
        sample_backend(b, &b->be_events_end, &b->be_cpu_end);
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
    uint64_t bad = b->backend != NULL ? phx_bench_backend_bad(b->backend) : 0;
    if (bad > 0) {
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, NULL,
                        "the built-in backend got %" PRIu64 " requests that were no call", bad);
        b->errors[PHX_BENCH_ERR_PROTOCOL] += bad - 1;
    }
    if (b->opts.scenario == PHX_BENCH_PRESENCE && b->pres_converged < b->opts.sockets) {
        uint32_t missing = b->opts.sockets - b->pres_converged;
        phx_bench_error(b, PHX_BENCH_ERR_MISSING, NULL,
                        "%u of %u presence views never held every user", missing, b->opts.sockets);
        b->errors[PHX_BENCH_ERR_MISSING] += missing - 1;
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

void phx_bench_on_presence_done(phx_bench_t *b)
{
    sample_server(b, &b->srv_conv);
    if (!b->opts.is_quiet)
        fprintf(stderr,
                "phxd-bench: every presence view holds all %u users, %.3f s after the "
                "last join reply\n",
                b->opts.sockets,
                b->pres_all_ns > b->last_join_ns ? secs(b->pres_all_ns - b->last_join_ns) : 0.0);
    if (b->phase == PHX_PHASE_MEASURE)
        measure_end(b);
}

static void sigint_on_signal(uv_signal_t *s, int signum)
{
    phx_bench_t *b = s->data;
    b->is_interrupted = true;
    fprintf(stderr, "phxd-bench: interrupted\n");
    if (b->phase == PHX_PHASE_MEASURE)
        measure_end(b);
    else
        phx_bench_finish(b);
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
