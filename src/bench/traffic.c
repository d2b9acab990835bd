/* traffic.c: the measured phase of fanout, echo, backend and churn.
 * Fanout: one publisher socket pushes sequence-numbered, timestamped events
 * at --rate and every subscriber's delivery is checked and timed (also per
 * server when the sockets are spread over several). Echo: sockets keep
 * --window pings outstanding (or --rate pings/s overall). Backend: the
 * same with --event pushes, whose replies a backend makes; a reply carrying
 * the backend's own time ("backend_ns", the built-in backend's) also gives
 * the round trip minus that time. Churn: workers
 * loop connect, join, ping, leave, close. scenario.c runs the phases and
 * hands replies and broadcasts here. */
#include "bench.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "phx.h"

#define CHURN_TICK_MS 5

static void churn_start(phx_bench_conn_t *c);

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
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
        if (b->n_targets > 1) {
            phx_bench_bnode_t *nn = phx_realloc(b->bnodes, cap * b->n_targets * sizeof(*nn));
            if (nn == NULL) {
                phx_bench_error(b, PHX_BENCH_ERR_RESOURCE, NULL, "out of memory");
                return;
            }
            b->bnodes = nn;
        }
        b->cap_bcasts = cap;
    }
    uint64_t seq = b->n_bcasts;
    phx_bench_bcast_t *bc = &b->bcasts[seq];
    memset(bc, 0, sizeof(*bc));
    bc->expected = b->subscribers;
    if (b->n_targets > 1) {
        phx_bench_bnode_t *bn = &b->bnodes[seq * b->n_targets];
        for (uint32_t i = 0; i < b->n_targets; i++)
            bn[i] = (phx_bench_bnode_t){.expected = b->targets[i].subscribers};
    }
    char ref[24];
    phx_bench_ref(ref, 'b', seq);
    bc->sent_ns = uv_hrtime();
    size_t n = phx_bench_payload(b, "seq", seq, bc->sent_ns);
    b->n_bcasts++;
    if (phx_bench_conn_push(p, PHX_JR_ROOM, ref, b->opts.topic, b->opts.event, b->payload_buf, n) ==
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

void phx_fanout_on_broadcast(phx_bench_conn_t *c, const phx_bench_msg_t *m)
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
    if (b->n_targets > 1) {
        phx_bench_bnode_t *bn = &b->bnodes[seq * b->n_targets + c->target];
        bn->count++;
        bn->last_ns = now;
        b->targets[c->target].deliveries++;
    }
    if (b->phase == PHX_PHASE_MEASURE)
        b->deliveries_in_window++;
    phx_hist_record(&b->delivery_hist, now - bc->sent_ns);
    if (bc->count != bc->expected)
        return;
    b->bcasts_complete++;
    if (b->phase == PHX_PHASE_DRAIN && b->bcasts_complete == b->n_bcasts)
        phx_bench_finish(b);
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
    phx_bench_ref(ref, 'p', c->echo_sent);
    size_t n = phx_bench_payload(b, "n", c->echo_sent, now);
    const char *event = b->opts.scenario == PHX_BENCH_BACKEND ? b->opts.event : "ping";
    int rv = phx_bench_conn_push(c, PHX_JR_ROOM, ref, b->opts.topic, event, b->payload_buf, n);
    if (rv != 0)
        return rv;
    b->echo_ts[(size_t)c->index * w + c->echo_sent % w] = now;
    if (c->echo_sent == c->echo_acked)
        phx_bench_deadline(c);
    c->echo_sent++;
    b->echo_outstanding++;
    b->echo_sent++;
    return 0;
}

void phx_echo_on_reply(phx_bench_conn_t *c, const phx_bench_msg_t *m, bool is_ok,
                       const phx_bench_span_t *resp)
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
    uint64_t rtt = now - b->echo_ts[(size_t)c->index * w + n % w];
    phx_hist_record(&b->echo_hist, rtt);
    phx_bench_span_t be_ns;
    uint64_t t;
    if (b->opts.scenario == PHX_BENCH_BACKEND && resp->p != NULL &&
        phx_bench_json_get(resp, "backend_ns", &be_ns) && phx_bench_span_u64(&be_ns, &t)) {
        /* Both clocks are this host's CLOCK_MONOTONIC; the backend's time
         * lies inside the round trip. */
        phx_hist_record(&b->added_hist, rtt > t ? rtt - t : 0);
        b->backend_timed++;
    }
    c->echo_acked++;
    b->echo_outstanding--;
    b->echo_replies++;
    if (b->phase == PHX_PHASE_MEASURE)
        b->echo_in_window++;
    c->deadline_ms = c->echo_acked == c->echo_sent ? 0 : uv_now(b->loop) + b->opts.timeout_ms;
    if (b->phase == PHX_PHASE_MEASURE && b->opts.rate <= 0)
        echo_send(c);
    else if (b->phase == PHX_PHASE_DRAIN && b->echo_outstanding == 0)
        phx_bench_finish(b);
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

void phx_churn_on_ping_reply(phx_bench_conn_t *c, bool is_ok)
{
    phx_bench_t *b = c->b;
    if (c->step != PHX_STEP_PINGING) {
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "unexpected ping reply");
        return;
    }
    if (!is_ok)
        phx_bench_error(b, PHX_BENCH_ERR_REPLY, c, "ping answered with an error");
    c->step = PHX_STEP_LEAVING;
    c->waiting = PHX_WAIT_ROOM;
    phx_bench_deadline(c);
    if (phx_bench_conn_push(c, PHX_JR_ROOM, "l2", b->opts.topic, "phx_leave", "{}", 2) != 0)
        return;
    if (b->has_user_topic) {
        char topic[48];
        snprintf(topic, sizeof(topic), "user:%" PRIu64, phx_bench_user_id(c));
        if (phx_bench_conn_push(c, PHX_JR_USER, "l1", topic, "phx_leave", "{}", 2) != 0)
            return;
        c->waiting |= PHX_WAIT_USER;
    }
}

void phx_churn_on_leave_reply(phx_bench_conn_t *c, unsigned which, bool is_ok)
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
    phx_bench_deadline(c);
    phx_bench_conn_ws_close(c);
}

/* Idle workers wait in a FIFO ring, so every worker gets its turn. */
static void idle_push(phx_bench_t *b, uint32_t index)
{
    b->idle[(b->idle_head + b->n_idle++) % b->n_conns] = index;
}

static uint32_t idle_pop(phx_bench_t *b)
{
    uint32_t index = b->idle[b->idle_head];
    b->idle_head = (b->idle_head + 1) % b->n_conns;
    b->n_idle--;
    return index;
}

static void churn_start(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    c->t_start_ns = uv_hrtime();
    c->step = PHX_STEP_NONE;
    phx_bench_deadline(c);
    b->cycles_started++;
    b->active++;
    if (phx_bench_conn_start(c) != 0 && !c->has_handle) {
        b->active--;
        idle_push(b, c->index);
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
        churn_start(&b->conns[idle_pop(b)]);
    }
}

void phx_churn_cycle_done(phx_bench_conn_t *c)
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

/* ---- starting and stopping ---- */

int phx_fanout_start(phx_bench_t *b)
{
    if (b->publisher == NULL || !b->publisher->is_joined) {
        phx_bench_error(b, PHX_BENCH_ERR_JOIN, NULL, "the publisher socket did not join");
        return PHX_ERR_STATE;
    }
    b->subscribers = b->alive;
    for (uint32_t i = 0; i < b->n_conns; i++) {
        const phx_bench_conn_t *c = &b->conns[i];
        if (c->role == PHX_ROLE_SUBSCRIBER && c->is_joined)
            b->targets[c->target].subscribers++;
    }
    publish_on_timer(&b->pace_timer);
    if (b->opts.rate <= 0)
        uv_timer_start(&b->pace_timer, publish_on_timer, b->opts.timeout_ms, 0);
    return 0;
}

void phx_echo_start(phx_bench_t *b)
{
    if (b->opts.rate > 0) {
        uv_timer_start(&b->pace_timer, echo_pace_on_timer, 1, 1);
        return;
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
}

void phx_echo_on_closed(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    if (c->echo_sent == c->echo_acked)
        return;
    b->echo_outstanding -= c->echo_sent - c->echo_acked;
    c->echo_acked = c->echo_sent;
    if (b->phase == PHX_PHASE_DRAIN && b->echo_outstanding == 0)
        phx_bench_finish(b);
}

void phx_churn_start(phx_bench_t *b)
{
    for (uint32_t i = 0; i < b->n_conns; i++)
        idle_push(b, i);
    churn_on_timer(&b->pace_timer);
    uv_timer_start(&b->pace_timer, churn_on_timer, CHURN_TICK_MS, CHURN_TICK_MS);
}

void phx_churn_on_closed(phx_bench_conn_t *c)
{
    phx_bench_t *b = c->b;
    b->active--;
    if (b->phase == PHX_PHASE_MEASURE) {
        if (b->opts.rate <= 0)
            churn_start(c);
        else
            idle_push(b, c->index);
    } else if (b->phase == PHX_PHASE_DRAIN && b->active == 0) {
        phx_bench_rest(b);
    }
}

void phx_churn_cut(phx_bench_t *b)
{
    /* The last close callback rests. */
    for (uint32_t i = 0; i < b->n_conns; i++) {
        phx_bench_conn_t *c = &b->conns[i];
        if (c->has_handle && !c->is_closing) {
            phx_bench_error(b, PHX_BENCH_ERR_TIMEOUT, c, "cycle unfinished after the drain");
            phx_bench_conn_close(c);
        }
    }
    if (b->active == 0)
        phx_bench_rest(b);
}

/* ---- presence ---- */

/* Adds (`is_join`) or removes every key of the object `set` (a
 * presence_state or a diff's joins or leaves) in c's view. A simple set of
 * keys: the bench's users have one meta each, so a key's leave empties it.
 * Returns false on a malformed object or a key that is no bench user. */
static bool pres_apply(phx_bench_conn_t *c, const phx_bench_span_t *set, bool is_join)
{
    phx_bench_t *b = c->b;
    uint64_t *row = b->pres_bits + (size_t)c->index * b->pres_words;
    size_t pos = 0;
    phx_bench_span_t key, val;
    int rv;
    while ((rv = phx_bench_json_next(set, &pos, &key, &val)) == 1) {
        uint64_t id;
        if (!phx_bench_span_u64(&key, &id) || id < b->opts.first_id ||
            id - b->opts.first_id >= b->opts.sockets)
            return false;
        uint64_t k = id - b->opts.first_id;
        uint64_t bit = 1ull << (k % 64);
        uint64_t *w = &row[k / 64];
        if (is_join && !(*w & bit)) {
            *w |= bit;
            c->pres_keys++;
        } else if (!is_join && (*w & bit)) {
            *w &= ~bit;
            c->pres_keys--;
        }
    }
    return rv == 0;
}

bool phx_presence_is_done(const phx_bench_t *b)
{
    return b->pres_all_ns != 0;
}

void phx_presence_on_message(phx_bench_conn_t *c, const phx_bench_msg_t *m, bool is_state)
{
    phx_bench_t *b = c->b;
    if (c->role != PHX_ROLE_PRESENCE || !phx_bench_span_eq(&m->topic, b->opts.topic)) {
        b->other_msgs++;
        return;
    }
    c->pres_msgs++;
    c->pres_bytes += m->len;
    bool is_ok;
    if (is_state) {
        memset(b->pres_bits + (size_t)c->index * b->pres_words, 0, b->pres_words * 8);
        c->pres_keys = 0;
        c->has_pres_state = true;
        is_ok = pres_apply(c, &m->payload, true);
    } else {
        c->pres_diffs++;
        if (!c->has_pres_state)
            b->pres_early++;
        /* phoenix.js applies a diff's joins, then its leaves. */
        phx_bench_span_t joins, leaves;
        is_ok = phx_bench_json_get(&m->payload, "joins", &joins) &&
                phx_bench_json_get(&m->payload, "leaves", &leaves) && pres_apply(c, &joins, true) &&
                pres_apply(c, &leaves, false);
    }
    if (!is_ok) {
        phx_bench_error(b, PHX_BENCH_ERR_PROTOCOL, c, "malformed %s or an unknown key",
                        is_state ? "presence_state" : "presence_diff");
        return;
    }
    bool is_full = c->has_pres_state && c->pres_keys == b->opts.sockets;
    if (is_full && c->pres_full_ns == 0) {
        c->pres_full_ns = uv_hrtime();
        if (++b->pres_converged == b->opts.sockets && b->pres_all_ns == 0) {
            b->pres_all_ns = c->pres_full_ns;
            phx_bench_on_presence_done(b);
        }
    } else if (!is_full && c->pres_full_ns != 0) {
        /* Someone left again: this view is incomplete until it refills. */
        c->pres_full_ns = 0;
        b->pres_converged--;
    }
}
