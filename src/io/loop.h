/* loop.h: phx_loop_t, the state of one event loop and of nothing else: its
 * scratch buffers, the activity lists whose heads carry the connection
 * deadlines (one timer for all of them), the list of connections with
 * output to flush once per loop turn, the deferred steps, statistics,
 * memory trimming, and the hooks through which the layers above take part
 * in a loop turn. A second loop in another thread gets its own phx_loop_t;
 * nothing here is shared between loops. Configuration is read, never
 * owned. */
#ifndef PHX_LOOP_H
#define PHX_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "list.h"
#include "mem.h"
#include "phx.h"
#include "counters.h"

typedef struct phx_conn phx_conn_t;
typedef struct phx_tls_ctx phx_tls_ctx_t;

#define PHX_SCRATCH_BYTES (64 * 1024)
#define PHX_TLS_SCRATCH_BYTES (16 * 1024)

/* Which activity list a connection sits in; each has its own timeout. */
typedef enum {
    PHX_LIST_NONE = 0,
    PHX_LIST_HTTP,  /* deadline: handshake timeout from accept or the last answer */
    PHX_LIST_WS,    /* deadline: idle timeout from the last frame */
    PHX_LIST_CLOSE, /* deadline: close timeout from the start of closing */
    PHX_LIST_POLL,  /* deadline: LongPoll window from the start of a parked GET */
    PHX_LIST_COUNT,
} phx_list_id_t;

/* A layer above that takes part in every loop turn (LongPoll answers its
 * parked polls before output is flushed, and ends idle sessions on the
 * deadline timer). */
typedef struct phx_loop_hook {
    /* Before output is flushed (it may ask for deferred steps, which run
     * before the flush too). May be NULL. */
    void (*before_flush)(void *arg);
    /* On the deadline timer: does what is due at `now` and returns the
     * next time it needs the timer (0: none). May be NULL. */
    uint64_t (*on_deadline)(void *arg, uint64_t now);
    void *arg;
} phx_loop_hook_t;

#define PHX_LOOP_HOOKS 8

typedef struct phx_loop phx_loop_t;

struct phx_loop {
    uv_loop_t *uv;
    const phx_config_t *cfg;          /* the owner's configuration (read only) */
    phx_tls_ctx_t *tls_ctx;           /* NULL: plain TCP */
    uint8_t *scratch;                 /* one read's bytes */
    uint8_t *tls_scratch;             /* one read's decrypted bytes */
    phx_buf_t out_scratch;            /* a frame being built (wslay's output) */
    phx_list_t lists[PHX_LIST_COUNT]; /* of phx_conn_t.link, indexed by phx_list_id_t */
    uv_timer_t deadline_timer;
    uint64_t deadline_at; /* when deadline_timer fires; 0 = stopped */
    uv_check_t flush_check;
    uv_prepare_t flush_prepare;
    phx_conn_t *dirty;    /* connections with output to flush */
    phx_conn_t *deferred; /* connections with a deferred step, in order */
    phx_conn_t *deferred_tail;
    size_t nconns;
    uint64_t next_conn_id;
    size_t body_bytes_held; /* request body bytes held by every connection */
    uint32_t closed_since_trim;
    uint64_t last_trim;
    bool is_trim_pending;
    bool is_draining; /* no new sockets; keep-alive ends; /healthz says so */
    bool is_stopping;
    phx_stats_t stats;
    /* broadcasts of this loop turn, timed until their bytes are written */
    uint64_t turn_bcast_start[64];
    uint32_t turn_bcasts;
    phx_loop_hook_t hooks[PHX_LOOP_HOOKS];
    size_t nhooks;
    /* The owner is told when a connection has been freed. */
    void (*on_conn_gone)(void *owner);
    void *owner;
    bool is_started;  /* the handles exist (phx_loop_start) */
    int open_handles; /* the loop's own handles not yet closed */
    void (*on_closed)(void *owner);
};

/* Sets up `loop` on `uv` with `cfg` (kept by pointer): memory only.
 * Returns 0 or PHX_ERR_NOMEM. */
int phx_loop_init(phx_loop_t *loop, uv_loop_t *uv, const phx_config_t *cfg);
/* Creates the loop's handles and starts the once-per-turn flush. */
void phx_loop_start(phx_loop_t *loop);
/* Closes the loop's handles; `on_closed` runs when they are closed. */
void phx_loop_close(phx_loop_t *loop);
/* Frees the loop's memory (after its handles closed, or if never started). */
void phx_loop_dispose(phx_loop_t *loop);
/* Adds a hook (at most PHX_LOOP_HOOKS). */
void phx_loop_add_hook(phx_loop_t *loop, const phx_loop_hook_t *hook);
/* Removes the hooks whose arg is `arg` (their owner is going away). */
void phx_loop_remove_hook(phx_loop_t *loop, void *arg);

/* Moves `c` to the tail of list `id` with `since` = now (activity). */
void phx_loop_list_touch(phx_loop_t *loop, phx_conn_t *c, phx_list_id_t id);
/* The oldest connection of list `id`, or NULL. */
phx_conn_t *phx_loop_list_first(const phx_loop_t *loop, phx_list_id_t id);
/* The connection after `c` in its list, or NULL. */
phx_conn_t *phx_loop_list_next(const phx_conn_t *c);
/* Removes `c` from its list. */
void phx_loop_list_remove(phx_loop_t *loop, phx_conn_t *c);
/* Makes the deadline timer fire no later than `at` (loop time, ms). */
void phx_loop_deadline_arm(phx_loop_t *loop, uint64_t at);
/* Puts `c` on the flush list (once). */
void phx_loop_mark_dirty(phx_loop_t *loop, phx_conn_t *c);
/* Runs c->ops->on_deferred(c) later in this loop turn, before output is
 * flushed, with nothing else on the stack (once, however often asked).
 * This is how a layer continues work that an answer made possible (the
 * next pipelined request) without running it inside the code that wrote
 * the answer. */
void phx_loop_defer(phx_loop_t *loop, phx_conn_t *c);
/* Forgets a deferred step of `c` (it is being freed). */
void phx_loop_undefer(phx_loop_t *loop, phx_conn_t *c);
/* Called by tcp.c when a connection has been freed. */
void phx_loop_conn_gone(phx_loop_t *loop);
/* Notes the start of a broadcast (fan-out time metric). */
void phx_loop_broadcast_started(phx_loop_t *loop);
/* The fan-out histogram's upper bounds (PHX_FANOUT_BUCKETS, microseconds). */
const uint64_t *phx_loop_fanout_bounds(void);
/* The timeout of list `id` under the configuration (ms; 0 = none). */
uint64_t phx_loop_list_timeout(const phx_loop_t *loop, int id);

#endif /* PHX_LOOP_H */
