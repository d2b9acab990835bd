/* tcp.h: one accepted TCP connection: read plumbing with the loop-wide
 * scratch buffer, the output queue of reference-counted buffers written once
 * per loop turn, backpressure marks, and the one idempotent close path. */
#ifndef PHX_TCP_H
#define PHX_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "loop.h"
#include "list.h"
#include "mem.h"
#include "ring.h"
#include "phx.h"

typedef struct phx_conn phx_conn_t;
typedef struct phx_http phx_http_t;
typedef struct phx_ws phx_ws_t;
typedef struct phx_tls phx_tls_t;

/* Which layer owns the bytes read from the connection. */
/* The layer above installs these (events flow right to left). */
typedef struct phx_conn_ops {
    /* Bytes read from the peer; borrowed during the call. */
    void (*on_read)(phx_conn_t *c, uint8_t *data, size_t len);
    /* The connection starts closing (once): detach from the layers above. */
    void (*on_close)(phx_conn_t *c);
    /* The handle is closed and the conn is about to be freed: release the
     * layer's memory (nothing of it is on the stack any more). */
    void (*on_free)(phx_conn_t *c);
    /* Optional: the peer ended its TLS session (close_notify). */
    void (*on_peer_close)(phx_conn_t *c);
    /* Optional: queued output fell to half the high-water mark. Runs from
     * inside the write path: it may only schedule work (phx_server_defer),
     * never handle input. */
    void (*on_drained)(phx_conn_t *c);
    /* Optional: the deferred step asked for with phx_loop_defer, run from
     * the loop (no other layer's code on the stack). */
    void (*on_deferred)(phx_conn_t *c);
    /* Optional: the deadline of the connection's activity list passed
     * (without it the connection is closed). */
    void (*on_timeout)(phx_conn_t *c);
    /* Optional: the server stops (`drain` false) or drains: close with
     * WebSocket code `code` where the layer speaks it. Without it the
     * connection is closed (gracefully when output is queued). */
    void (*on_shutdown)(phx_conn_t *c, int code, bool drain);
} phx_conn_ops_t;

typedef enum {
    PHX_CONN_HTTP = 0, /* request head (and body) through llhttp */
    PHX_CONN_WS,       /* upgraded: WebSocket frames */
    PHX_CONN_DRAIN,    /* closing: input is read and dropped */
} phx_conn_kind_t;

struct phx_conn {
    uv_tcp_t tcp; /* tcp.data == this */
    phx_loop_t *loop;
    uint64_t id;
    /* in its activity list (loop.c), ordered by `since` */
    phx_link_t link;
    uint64_t since;
    uint8_t list;
    uint8_t kind;
    bool is_closing;        /* phx_conn_close ran: no more output is queued */
    bool is_flushing_close; /* close once the queue has been written */
    bool is_reading;
    bool is_read_paused;    /* above the high-water mark */
    bool is_dirty;          /* in the server's flush list */
    bool is_shut;           /* uv_shutdown issued */
    uint8_t in_dispatch;    /* depth of layer code running for this conn */
    bool is_close_deferred; /* on_close runs when the read callback returns */
    bool is_read_held;      /* the layer above holds reading off (its own bound) */
    bool is_deferred;       /* in the server's deferred list */
    phx_conn_t *dirty_next;
    phx_conn_t *deferred_next;
    /* output queue: a ring of buffer references */
    phx_ring_t q;    /* q.head_off: bytes of the oldest buffer already written */
    size_t q_bytes;  /* bytes queued here (not yet handed to libuv) */
    size_t w_bytes;  /* bytes handed to libuv, not yet written */
    uint32_t writes; /* uv_write requests in flight */
    phx_tls_t *tls;  /* NULL for plain TCP */
    /* the layer above */
    const phx_conn_ops_t *ops;
    phx_http_t *http;
    phx_ws_t *ws;
    char peer[48];
    uint16_t peer_port;
};

/* Accepts one pending connection from `listener` into a new conn (owned by
 * the loop's lists; freed in its close callback) whose bytes go to the ops
 * that `init(c, arg)` installs before reading starts. */
int phx_conn_accept(phx_loop_t *loop, uv_stream_t *listener, int (*init)(phx_conn_t *c, void *arg),
                    void *arg);
/* Shuts the connection down for the server's stop or drain (its
 * on_shutdown, or a close). */
void phx_conn_shutdown(phx_conn_t *c, int code, bool drain);

/* Queues `buf` (takes the reference) for writing in this loop turn; past
 * the high-water mark (queue_high_bytes or max_queued_msgs) reading pauses
 * until half of it is written. Returns 0, PHX_ERR_CLOSED when the
 * connection is closing (the reference is released), or an error after
 * which the connection closes (out of memory, TLS). The hard limit
 * (queue_limit_bytes) is the layer's policy: WebSocket closes with 1008,
 * HTTP stops answering. */
int phx_conn_send(phx_conn_t *c, phx_rcbuf_t *buf);
/* Copies `len` bytes into a new buffer and queues it. */
int phx_conn_send_copy(phx_conn_t *c, const void *data, size_t len);
/* Writes everything queued now (the server calls it once per loop turn). */
void phx_conn_flush(phx_conn_t *c);
/* Bytes waiting to be written (ours plus libuv's). */
size_t phx_conn_pending(const phx_conn_t *c);

/* Closes the connection. With `graceful`, output already queued is written
 * first, then the write side is shut down and input is drained until the
 * peer closes or the close timeout passes; otherwise the socket is closed
 * at once. Idempotent; the conn is freed later, in the close callback. */
void phx_conn_close(phx_conn_t *c, bool graceful);

/* Brackets code of the layers above that runs for this connection (a read,
 * a timer): a close requested inside is deferred (on_close runs at the
 * outermost end), so objects on the stack stay valid. */
void phx_conn_enter(phx_conn_t *c);
void phx_conn_leave(phx_conn_t *c);

/* Stops or resumes reading (backpressure). */
void phx_conn_pause_read(phx_conn_t *c);
void phx_conn_resume_read(phx_conn_t *c);
/* The layer above holds reading off (input it has not handled yet passed
 * its bound) or lets it go again; output backpressure cannot resume reading
 * while it is held. */
void phx_conn_hold_read(phx_conn_t *c, bool hold);
/* True when queued output is above the high-water mark: a layer that
 * produces output from its own input (pipelined HTTP) waits for
 * on_drained. */
bool phx_conn_is_congested(const phx_conn_t *c);

#endif /* PHX_TCP_H */
