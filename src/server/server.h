/* server.h: phx_server_t, the root every module hangs off: the loop, the
 * listener, the connection lists with their deadlines, the once-per-turn
 * flush of output, the channel routes and the pubsub, graceful shutdown. */
#ifndef PHX_SERVER_H
#define PHX_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "phx.h"
#include "tcp.h"

typedef struct phx_pubsub phx_pubsub_t;
typedef struct phx_token phx_token_t;
typedef struct phx_longpoll phx_longpoll_t;
typedef struct phx_origin_policy phx_origin_policy_t;
typedef struct phx_tls_ctx phx_tls_ctx_t;

#define PHX_SCRATCH_BYTES (64 * 1024)
#define PHX_TLS_SCRATCH_BYTES (16 * 1024)

typedef struct phx_route {
    char *pattern;
    size_t len; /* without the trailing '*' when is_prefix */
    bool is_prefix;
    const phx_channel_handler_t *handler;
    void *user;
} phx_route_t;

typedef struct phx_static {
    struct phx_static *next;
    char *path;
    char *content_type;
    uint8_t *bytes;
    size_t len;
} phx_static_t;

typedef struct phx_conn_list {
    phx_conn_t *head, *tail;
    size_t count;
} phx_conn_list_t;

/* Why a connection was refused (metrics label "reason"). */
#define PHX_REFUSE_MAP(X)                                                                          \
    X(ORIGIN, "origin")                                                                            \
    X(VSN, "vsn")                                                                                  \
    X(QUERY, "query")                                                                              \
    X(TOKEN_INVALID, "token_invalid")                                                              \
    X(TOKEN_EXPIRED, "token_expired")                                                              \
    X(TOKEN_MISSING, "token_missing")                                                              \
    X(CALLBACK, "callback")                                                                        \
    X(CAPACITY, "capacity")                                                                        \
    X(DRAINING, "draining")

typedef enum {
#define PHX_REFUSE_ENUM(name, label) PHX_REFUSE_##name,
    PHX_REFUSE_MAP(PHX_REFUSE_ENUM)
#undef PHX_REFUSE_ENUM
        PHX_REFUSE_COUNT
} phx_refuse_t;

/* Fan-out time histogram bounds, in microseconds. */
#define PHX_FANOUT_BUCKETS 12

typedef struct phx_stats {
    uint64_t accepted;
    uint64_t msgs_in, msgs_out;
    uint64_t bytes_in, bytes_out;
    uint64_t refused_connects;
    uint64_t refused[PHX_REFUSE_COUNT];
    uint64_t refused_joins;
    uint64_t slow_closes;
    uint64_t joined_channels; /* gauge */
    uint64_t broadcasts;
    uint64_t fanout_hist[PHX_FANOUT_BUCKETS + 1]; /* last: +Inf */
    double fanout_sum_s;
    uint64_t fanout_count;
} phx_stats_t;

struct phx_server {
    uv_loop_t *loop;
    phx_config_t cfg; /* strings point into `cfg_strings` */
    char *cfg_strings[16];
    size_t ncfg_strings;
    bool is_cfg_nomem;
    uv_tcp_t listener;
    uv_tcp_t api_listener; /* --api-listen: API, /healthz and /metrics only */
    int api_port;
    uv_check_t flush_check;
    uv_prepare_t flush_prepare;
    uv_timer_t deadline_timer;
    uv_timer_t drain_timer;
    size_t drain_batch;
    uint64_t drain_interval_ms;
    uint64_t drain_deadline;
    uint64_t deadline_at; /* when deadline_timer fires; 0 = stopped */
    int open_handles;     /* server handles not yet closed */
    bool is_stopping;
    int stop_code;
    void (*stop_done)(phx_server_t *);
    int bound_port;
    phx_conn_list_t lists[PHX_LIST_COUNT]; /* indexed by phx_list_id_t */
    phx_conn_t *dirty;                     /* connections with output to flush */
    phx_conn_t *deferred;                  /* connections with a deferred step */
    phx_conn_t *deferred_tail;
    size_t body_bytes_held; /* request body bytes held by every connection */
    size_t nconns;
    uint64_t next_conn_id;
    uint32_t closed_since_trim; /* connections freed since the last malloc_trim */
    uint64_t last_trim;
    bool is_trim_pending;
    uint8_t *scratch;
    phx_buf_t ws_out; /* wslay's output of one wslay_event_send */
    phx_connect_cb connect_cb;
    void *connect_user;
    phx_token_t *token; /* the default connect callback's verifier */
    phx_route_t *routes;
    size_t nroutes;
    phx_pubsub_t *pubsub;
    phx_longpoll_t *longpoll;
    phx_origin_policy_t *origin;
    phx_static_t *statics;
    phx_tls_ctx_t *tls_ctx; /* NULL: plain TCP */
    uint8_t *tls_scratch;   /* decrypted bytes of one read */
    phx_stats_t stats;
    /* broadcasts of this loop turn, timed until their bytes are written */
    uint64_t turn_bcast_start[64];
    uint32_t turn_bcasts;
    bool is_draining;
};

/* Moves `c` to the tail of list `id` with `since` = now (activity). */
void phx_server_list_touch(phx_server_t *srv, phx_conn_t *c, phx_list_id_t id);
/* Makes the deadline timer fire no later than `at` (loop time, ms). */
void phx_server_deadline_arm(phx_server_t *srv, uint64_t at);
/* Removes `c` from its list. */
void phx_server_list_remove(phx_server_t *srv, phx_conn_t *c);
/* Puts `c` on the flush list (once). */
void phx_server_mark_dirty(phx_server_t *srv, phx_conn_t *c);
/* Runs c->ops->on_deferred(c) later in this loop turn, before output is
 * flushed, with nothing else on the stack (once, however often asked).
 * This is how a layer continues work that an answer made possible (the
 * next pipelined request) without running it inside the code that wrote
 * the answer. */
void phx_server_defer(phx_server_t *srv, phx_conn_t *c);
/* Forgets a deferred step of `c` (it is being freed). */
void phx_server_undefer(phx_server_t *srv, phx_conn_t *c);
/* Called by tcp.c when a connection has been freed. */
void phx_server_conn_gone(phx_server_t *srv);
/* The route whose pattern matches `topic`, or NULL. */
const phx_route_t *phx_server_route(const phx_server_t *srv, const char *topic, size_t len);
/* The fan-out histogram's upper bounds (PHX_FANOUT_BUCKETS, microseconds). */
const uint64_t *phx_server_fanout_bounds(void);
/* The static asset served at `path`, or NULL. */
const phx_static_t *phx_server_static_find(const phx_server_t *srv, const char *path, size_t len);
/* Counts a refused connection. */
void phx_server_refused(phx_server_t *srv, phx_refuse_t why);
/* Notes the start of a broadcast (fan-out time metric). */
void phx_server_broadcast_started(phx_server_t *srv);
/* False (after answering 503 and closing) while the server drains: no
 * new WebSocket or LongPoll session is accepted then. */
bool phx_server_accepts_sockets(phx_server_t *srv, phx_conn_t *c);
/* check_origin for a request on `c` (c->http): false when refused. */
bool phx_server_origin_ok(phx_server_t *srv, phx_conn_t *c);
/* The default connect callback: verifies params.token as a Phoenix.Token. */
int phx_server_default_connect(phx_connect_t *c, void *user);
/* Creates srv->token from the configuration (socket.c). */
int phx_server_token_init(phx_server_t *srv, char *err);

#endif /* PHX_SERVER_H */
