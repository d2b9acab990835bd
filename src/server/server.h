/* server.h: phx_server_t, the root every module hangs off: the loop, the
 * listener, the connection lists with their deadlines, the once-per-turn
 * flush of output, the channel routes and the pubsub, graceful shutdown. */
#ifndef PHX_SERVER_H
#define PHX_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http.h"
#include "loop.h"
#include "phx.h"
#include "counters.h"
#include "endpoint.h"
#include "metrics.h"
#include "tcp.h"

typedef struct phx_longpoll phx_longpoll_t;
typedef struct phx_redis phx_redis_t;
typedef struct phx_backend phx_backend_t;

typedef struct phx_static {
    struct phx_static *next;
    char *path;
    char *content_type;
    uint8_t *bytes;
    size_t len;
} phx_static_t;

struct phx_server {
    uv_loop_t *uv;
    phx_loop_t loop;  /* the per-loop state: lists, flushing, stats, scratch */
    phx_config_t cfg; /* strings point into `cfg_strings` */
    char *cfg_strings[24];
    size_t ncfg_strings;
    bool is_cfg_nomem;
    uv_tcp_t listener;
    uv_tcp_t api_listener; /* --api-listen: API, /healthz and /metrics only */
    int api_port;
    uv_timer_t drain_timer;
    size_t drain_batch;
    uint64_t drain_interval_ms;
    uint64_t drain_deadline;
    int open_handles; /* server handles not yet closed */
    int stop_code;
    void (*stop_done)(phx_server_t *);
    int bound_port;
    phx_endpoint_t ep; /* the Phoenix layer: PubSub, admission, channel routes */
    phx_longpoll_t *longpoll;
    phx_redis_t *redis;     /* the cluster backend (cfg.redis_url), or NULL */
    phx_backend_t *backend; /* backend callbacks over HTTP, made on first use */
    phx_metrics_t metrics;  /* what /metrics and /healthz read */
    phx_static_t *statics;
    phx_router_t router;     /* the main listener's routes */
    phx_router_t api_router; /* --api-listen's */
};

/* The server's backend callbacks (backend.h), made on first use; NULL
 * when out of memory. */
phx_backend_t *phx_server_backend(phx_server_t *srv);

/* The static asset served at `path`, or NULL. */
const phx_static_t *phx_server_static_find(const phx_server_t *srv, const char *path, size_t len);

#endif /* PHX_SERVER_H */
