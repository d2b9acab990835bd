/* expiry.c: the heap of socket expiries (expiry.h). */
#include "expiry.h"

#include <stdio.h>
#include <time.h>

#include "channel.h"
#include "log.h"
#include "mem.h"
#include "socket.h"

int64_t phx_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t warn_ms(const phx_expiry_t *x)
{
    return (int64_t)x->cfg->expiry_warning_s * 1000;
}

/* When the entry's next event is due. */
static int64_t key(const phx_expiry_t *x, const phx_expiry_entry_t *e)
{
    return e->is_warned ? e->expires_ms : e->expires_ms - warn_ms(x);
}

static void place(phx_expiry_t *x, uint32_t i, phx_expiry_entry_t e)
{
    x->heap[i] = e;
    e.sock->expiry_slot = i + 1;
}

static void sift_up(phx_expiry_t *x, uint32_t i)
{
    phx_expiry_entry_t e = x->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (key(x, &x->heap[parent]) <= key(x, &e))
            break;
        place(x, i, x->heap[parent]);
        i = parent;
    }
    place(x, i, e);
}

static void sift_down(phx_expiry_t *x, uint32_t i)
{
    phx_expiry_entry_t e = x->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= x->n)
            break;
        if (child + 1 < x->n && key(x, &x->heap[child + 1]) < key(x, &x->heap[child]))
            child++;
        if (key(x, &e) <= key(x, &x->heap[child]))
            break;
        place(x, i, x->heap[child]);
        i = child;
    }
    place(x, i, e);
}

/* Re-places entry i after its key changed either way. */
static void fix(phx_expiry_t *x, uint32_t i)
{
    sift_up(x, i);
    sift_down(x, x->heap[i].sock->expiry_slot - 1);
}

/* Makes the loop's deadline timer fire by the heap's first event. */
static void arm(phx_expiry_t *x)
{
    if (x->n == 0 || !x->is_hooked)
        return;
    int64_t wait = key(x, &x->heap[0]) - phx_wall_ms();
    uint64_t now = uv_now(x->loop->uv);
    phx_loop_deadline_arm(x->loop, now + (uint64_t)(wait > 0 ? wait : 0));
}

void phx_expiry_init(phx_expiry_t *x, phx_loop_t *loop, const phx_config_t *cfg)
{
    *x = (phx_expiry_t){.loop = loop, .cfg = cfg};
}

int phx_expiry_track(phx_expiry_t *x, phx_socket_t *s, int64_t expires_ms)
{
    if (s->expiry_slot) {
        phx_expiry_entry_t *e = &x->heap[s->expiry_slot - 1];
        e->expires_ms = expires_ms;
        e->is_warned = false;
        fix(x, s->expiry_slot - 1);
        arm(x);
        return 0;
    }
    if (x->n == x->cap) {
        uint32_t cap = x->cap ? x->cap * 2 : 16;
        phx_expiry_entry_t *heap = phx_realloc(x->heap, (size_t)cap * sizeof(*heap));
        if (heap == NULL)
            return PHX_ERR_NOMEM;
        x->heap = heap;
        x->cap = cap;
    }
    phx_expiry_entry_t e = {.sock = s, .expires_ms = expires_ms};
    place(x, x->n++, e);
    sift_up(x, x->n - 1);
    arm(x);
    return 0;
}

void phx_expiry_untrack(phx_expiry_t *x, phx_socket_t *s)
{
    if (s->expiry_slot == 0)
        return;
    uint32_t i = s->expiry_slot - 1;
    s->expiry_slot = 0;
    x->n--;
    if (i == x->n)
        return;
    place(x, i, x->heap[x->n]);
    fix(x, i);
}

int64_t phx_expiry_of(const phx_expiry_t *x, const phx_socket_t *s)
{
    return s->expiry_slot ? x->heap[s->expiry_slot - 1].expires_ms : 0;
}

bool phx_expiry_may_refresh(phx_expiry_t *x, phx_socket_t *s, int64_t now_ms)
{
    /* A socket without an expiry is tracked from its first refresh on (it
     * never comes due), so that its refreshes are counted too. */
    if (s->expiry_slot == 0 && phx_expiry_track(x, s, INT64_MAX) != 0)
        return true;
    phx_expiry_entry_t *e = &x->heap[s->expiry_slot - 1];
    int64_t interval = (int64_t)x->cfg->refresh_interval_s * 1000;
    if (e->last_refresh_ms != 0 && now_ms - e->last_refresh_ms < interval)
        return false;
    e->last_refresh_ms = now_ms;
    return true;
}

/* phx_token_expiring {"expires_at": <unix seconds>} on every joined
 * channel. A push may make the transport close (a full queue), so the
 * socket is held until the walk ends. */
static void warn(phx_socket_t *s, int64_t expires_ms)
{
    char json[64];
    int n = snprintf(json, sizeof(json), "{\"expires_at\":%lld}",
                     (long long)((expires_ms + 999) / 1000));
    phx_payload_t p = {(const uint8_t *)json, (size_t)n, false};
    phx_socket_hold(s);
    for (phx_channel_t *ch = s->channels; ch && !s->is_closing; ch = ch->next)
        if (ch->state == PHX_CHAN_JOINED)
            phx_channel_push(ch, "phx_token_expiring", &p);
    phx_socket_release(s);
}

static uint64_t on_deadline(void *arg, uint64_t now)
{
    phx_expiry_t *x = arg;
    int64_t wall = phx_wall_ms();
    while (x->n > 0 && key(x, &x->heap[0]) <= wall) {
        phx_expiry_entry_t *e = &x->heap[0];
        phx_socket_t *s = e->sock;
        if (!e->is_warned && e->expires_ms > wall) {
            int64_t expires_ms = e->expires_ms;
            e->is_warned = true;
            sift_down(x, 0);
            warn(s, expires_ms);
            continue;
        }
        /* Expired: the socket goes, so that phoenix.js reconnects and asks
         * its params (or authToken) for a fresh token. */
        phx_expiry_untrack(x, s);
        PHX_LOG_INFO("event=token_expired socket_id=%s", s->id ? s->id : "-");
        x->loop->stats.expired_sockets++;
        phx_socket_close(s, 4001);
    }
    if (x->n == 0)
        return 0;
    int64_t wait = key(x, &x->heap[0]) - wall;
    return now + (uint64_t)(wait > 0 ? wait : 1);
}

void phx_expiry_start(phx_expiry_t *x)
{
    phx_loop_hook_t hook = {.on_deadline = on_deadline, .arg = x};
    phx_loop_add_hook(x->loop, &hook);
    x->is_hooked = true;
    arm(x);
}

void phx_expiry_dispose(phx_expiry_t *x)
{
    if (x->is_hooked)
        phx_loop_remove_hook(x->loop, x);
    phx_free(x->heap);
    *x = (phx_expiry_t){0};
}
