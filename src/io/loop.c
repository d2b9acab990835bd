/* loop.c: phx_loop_t (see loop.h). The activity lists implement the
 * handshake, idle, close and LongPoll-window timeouts without a timer per
 * connection: each list is ordered by its entries' `since`, so only its
 * head can be due, and one timer fires at the earliest head. */
#include "loop.h"

#include <malloc.h>
#include <string.h>

#include "log.h"
#include "tcp.h"

uint64_t phx_loop_list_timeout(const phx_loop_t *loop, int id)
{
    switch (id) {
    case PHX_LIST_HTTP:
        return (uint64_t)loop->cfg->handshake_timeout_ms;
    case PHX_LIST_WS:
        return (uint64_t)loop->cfg->idle_timeout_ms;
    case PHX_LIST_CLOSE:
        return (uint64_t)loop->cfg->close_timeout_ms;
    case PHX_LIST_POLL:
        return (uint64_t)loop->cfg->longpoll_window_ms;
    default:
        return 0;
    }
}

static void deadline_on_timer(uv_timer_t *t);

void phx_loop_deadline_arm(phx_loop_t *loop, uint64_t at)
{
    if (!loop->is_started || (loop->is_stopping && loop->nconns == 0) ||
        uv_is_closing((uv_handle_t *)&loop->deadline_timer))
        return;
    if (loop->deadline_at != 0 && loop->deadline_at <= at)
        return;
    uint64_t now = uv_now(loop->uv);
    loop->deadline_at = at;
    uv_timer_start(&loop->deadline_timer, deadline_on_timer, at > now ? at - now : 0, 0);
}

phx_conn_t *phx_loop_list_first(const phx_loop_t *loop, phx_list_id_t id)
{
    phx_link_t *n = loop->lists[id].head;
    return n ? PHX_CONTAINER_OF(n, phx_conn_t, link) : NULL;
}

phx_conn_t *phx_loop_list_next(const phx_conn_t *c)
{
    phx_link_t *n = c->link.next;
    return n ? PHX_CONTAINER_OF(n, phx_conn_t, link) : NULL;
}

void phx_loop_list_remove(phx_loop_t *loop, phx_conn_t *c)
{
    if (c->list == PHX_LIST_NONE)
        return;
    phx_list_unlink(&loop->lists[c->list], &c->link);
    c->list = PHX_LIST_NONE;
}

void phx_loop_list_touch(phx_loop_t *loop, phx_conn_t *c, phx_list_id_t id)
{
    if (c->list == id && loop->lists[id].tail == &c->link) {
        c->since = uv_now(loop->uv);
        return;
    }
    phx_loop_list_remove(loop, c);
    phx_list_t *l = &loop->lists[id];
    c->since = uv_now(loop->uv);
    c->list = (uint8_t)id;
    phx_list_append(l, &c->link);
    uint64_t timeout = phx_loop_list_timeout(loop, id);
    if (timeout > 0 && l->head == &c->link)
        phx_loop_deadline_arm(loop, c->since + timeout);
}

static void trim_now(phx_loop_t *loop, uint64_t now);

static void deadline_on_timer(uv_timer_t *t)
{
    phx_loop_t *loop = t->data;
    uint64_t now = uv_now(loop->uv);
    uint64_t next = 0;
    loop->deadline_at = 0;
    for (int id = PHX_LIST_HTTP; id < PHX_LIST_COUNT; id++) {
        uint64_t timeout = phx_loop_list_timeout(loop, id);
        phx_conn_t *c;
        /* Heads are the oldest; each expired one leaves the list when it
         * closes (or moves to another list). */
        while (timeout > 0 && (c = phx_loop_list_first(loop, id)) != NULL &&
               c->since + timeout <= now) {
            if (id != PHX_LIST_CLOSE && c->ops && c->ops->on_timeout) {
                phx_conn_enter(c);
                c->ops->on_timeout(c);
                phx_conn_leave(c);
            } else {
                phx_conn_close(c, false);
            }
            if (phx_loop_list_first(loop, id) == c) /* not moved: force it out */
                phx_conn_close(c, false);
        }
        if (timeout > 0 && (c = phx_loop_list_first(loop, id)) != NULL) {
            uint64_t at = c->since + timeout;
            if (next == 0 || at < next)
                next = at;
        }
    }
    if (loop->is_trim_pending) {
        if (now >= loop->last_trim + 1000)
            trim_now(loop, now);
        else if (next == 0 || loop->last_trim + 1000 < next)
            next = loop->last_trim + 1000;
    }
    for (size_t i = 0; i < loop->nhooks; i++) {
        if (loop->hooks[i].on_deadline == NULL)
            continue;
        uint64_t at = loop->hooks[i].on_deadline(loop->hooks[i].arg, now);
        if (at && (next == 0 || at < next))
            next = at;
    }
    if (next)
        phx_loop_deadline_arm(loop, next);
}

/* ---- flushing once per loop turn ---- */

void phx_loop_mark_dirty(phx_loop_t *loop, phx_conn_t *c)
{
    if (c->is_dirty)
        return;
    c->is_dirty = true;
    c->dirty_next = loop->dirty;
    loop->dirty = c;
}

void phx_loop_defer(phx_loop_t *loop, phx_conn_t *c)
{
    if (c->is_deferred || c->is_closing)
        return;
    c->is_deferred = true;
    c->deferred_next = NULL;
    if (loop->deferred_tail)
        loop->deferred_tail->deferred_next = c;
    else
        loop->deferred = c;
    loop->deferred_tail = c;
}

void phx_loop_undefer(phx_loop_t *loop, phx_conn_t *c)
{
    if (!c->is_deferred)
        return;
    phx_conn_t *prev = NULL;
    for (phx_conn_t *e = loop->deferred; e; prev = e, e = e->deferred_next) {
        if (e != c)
            continue;
        if (prev)
            prev->deferred_next = c->deferred_next;
        else
            loop->deferred = c->deferred_next;
        if (loop->deferred_tail == c)
            loop->deferred_tail = prev;
        break;
    }
    c->is_deferred = false;
    c->deferred_next = NULL;
}

/* Runs the deferred steps in the order they were asked for; a step may ask
 * for more (the next pipelined request), which run in the same pass. */
static void run_deferred(phx_loop_t *loop)
{
    while (loop->deferred) {
        phx_conn_t *c = loop->deferred;
        loop->deferred = c->deferred_next;
        if (loop->deferred == NULL)
            loop->deferred_tail = NULL;
        c->deferred_next = NULL;
        c->is_deferred = false;
        if (c->is_closing || c->ops == NULL || c->ops->on_deferred == NULL)
            continue;
        phx_conn_enter(c);
        c->ops->on_deferred(c);
        phx_conn_leave(c);
    }
}

static const uint64_t fanout_bounds_us[PHX_FANOUT_BUCKETS] = {
    100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};

void phx_loop_broadcast_started(phx_loop_t *loop)
{
    loop->stats.broadcasts++;
    if (loop->turn_bcasts < sizeof(loop->turn_bcast_start) / sizeof(loop->turn_bcast_start[0]))
        loop->turn_bcast_start[loop->turn_bcasts++] = uv_hrtime();
}

static void observe_fanouts(phx_loop_t *loop)
{
    uint64_t now = uv_hrtime();
    for (uint32_t i = 0; i < loop->turn_bcasts; i++) {
        uint64_t us = (now - loop->turn_bcast_start[i]) / 1000;
        phx_hist_add(loop->stats.fanout_hist, fanout_bounds_us, PHX_FANOUT_BUCKETS,
                     &loop->stats.fanout_sum_s, &loop->stats.fanout_count, us);
    }
    loop->turn_bcasts = 0;
}

const uint64_t *phx_loop_fanout_bounds(void)
{
    return fanout_bounds_us;
}

static void flush_all(phx_loop_t *loop)
{
    /* Deferred requests and the hooks feed each other (an answer lets the
     * next pipelined request run, a request queues messages for a parked
     * poll), so both run until neither has work left. */
    do {
        run_deferred(loop);
        for (size_t i = 0; i < loop->nhooks; i++)
            if (loop->hooks[i].before_flush)
                loop->hooks[i].before_flush(loop->hooks[i].arg);
    } while (loop->deferred);
    while (loop->dirty) {
        phx_conn_t *c = loop->dirty;
        loop->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->is_dirty = false;
        phx_conn_flush(c);
    }
    /* A broadcast's fan-out ends when its bytes are handed to the kernel. */
    if (loop->turn_bcasts)
        observe_fanouts(loop);
}

static void flush_on_check(uv_check_t *h)
{
    flush_all(h->data);
}

static void flush_on_prepare(uv_prepare_t *h)
{
    flush_all(h->data);
}

/* ---- memory ---- */

/* Gives memory freed by closed connections back to the system: glibc keeps
 * freed chunks in the middle of the heap for reuse, so after many sockets
 * come and go RSS would otherwise stay at its high-water mark. Done when
 * the loop becomes idle, or after many closes, at most once a second:
 * malloc_trim walks the free lists (CPU only, no I/O). */
static void trim_now(phx_loop_t *loop, uint64_t now)
{
    malloc_trim(64 * 1024);
    loop->closed_since_trim = 0;
    loop->last_trim = now;
    loop->is_trim_pending = false;
}

static void maybe_trim(phx_loop_t *loop)
{
    loop->closed_since_trim++;
    bool idle = loop->nconns == 0 && loop->closed_since_trim >= 64;
    if (!idle && loop->closed_since_trim < 4096)
        return;
    uint64_t now = uv_now(loop->uv);
    if (now >= loop->last_trim + 1000) {
        trim_now(loop, now);
    } else if (!loop->is_trim_pending && !loop->is_stopping) {
        /* Too soon after the last one: the deadline timer does it. */
        loop->is_trim_pending = true;
        phx_loop_deadline_arm(loop, loop->last_trim + 1000);
    }
}

void phx_loop_conn_gone(phx_loop_t *loop)
{
    loop->nconns--;
    maybe_trim(loop);
    if (loop->on_conn_gone)
        loop->on_conn_gone(loop->owner);
}

/* ---- lifecycle ---- */

int phx_loop_init(phx_loop_t *loop, uv_loop_t *uv, const phx_config_t *cfg)
{
    memset(loop, 0, sizeof(*loop));
    loop->uv = uv;
    loop->cfg = cfg;
    loop->scratch = phx_malloc(PHX_SCRATCH_BYTES);
    loop->tls_scratch = phx_malloc(PHX_TLS_SCRATCH_BYTES);
    if (loop->scratch == NULL || loop->tls_scratch == NULL) {
        phx_loop_dispose(loop);
        return PHX_ERR_NOMEM;
    }
    return 0;
}

void phx_loop_start(phx_loop_t *loop)
{
    if (loop->is_started)
        return;
    loop->is_started = true;
    uv_check_init(loop->uv, &loop->flush_check);
    uv_prepare_init(loop->uv, &loop->flush_prepare);
    uv_timer_init(loop->uv, &loop->deadline_timer);
    loop->flush_check.data = loop->flush_prepare.data = loop->deadline_timer.data = loop;
    loop->open_handles = 3;
    uv_check_start(&loop->flush_check, flush_on_check);
    uv_prepare_start(&loop->flush_prepare, flush_on_prepare);
}

void phx_loop_add_hook(phx_loop_t *loop, const phx_loop_hook_t *hook)
{
    PHX_ASSERT(loop->nhooks < PHX_LOOP_HOOKS);
    loop->hooks[loop->nhooks++] = *hook;
}

void phx_loop_remove_hook(phx_loop_t *loop, void *arg)
{
    size_t j = 0;
    for (size_t i = 0; i < loop->nhooks; i++)
        if (loop->hooks[i].arg != arg)
            loop->hooks[j++] = loop->hooks[i];
    loop->nhooks = j;
}

static void handle_on_close(uv_handle_t *h)
{
    phx_loop_t *loop = h->data;
    if (--loop->open_handles == 0 && loop->on_closed)
        loop->on_closed(loop->owner);
}

void phx_loop_close(phx_loop_t *loop)
{
    if (!loop->is_started || uv_is_closing((uv_handle_t *)&loop->flush_check))
        return;
    uv_close((uv_handle_t *)&loop->flush_check, handle_on_close);
    uv_close((uv_handle_t *)&loop->flush_prepare, handle_on_close);
    uv_close((uv_handle_t *)&loop->deadline_timer, handle_on_close);
}

void phx_loop_dispose(phx_loop_t *loop)
{
    phx_free(loop->scratch);
    phx_free(loop->tls_scratch);
    loop->scratch = loop->tls_scratch = NULL;
    phx_buf_dispose(&loop->out_scratch);
}
