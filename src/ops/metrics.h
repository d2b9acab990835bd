/* metrics.h: GET /healthz (200 while serving, 503 while draining) and
 * GET /metrics in the Prometheus text exposition format. */
#ifndef PHX_METRICS_H
#define PHX_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"
#include "http.h"
#include "loop.h"
#include "mem.h"
#include "tcp.h"

typedef struct phx_longpoll phx_longpoll_t;
typedef struct phx_redis phx_redis_t;

/* What the metrics read (all borrowed; the server fills it in). */
typedef struct phx_metrics {
    phx_loop_t *loop;          /* statistics, lists, draining */
    phx_endpoint_t *ep;        /* the PubSub's topics */
    phx_longpoll_t **longpoll; /* the LongPoll sessions (may point to NULL) */
    phx_redis_t **redis;       /* the cluster backend (NULL or pointing to NULL: none) */
} phx_metrics_t;

/* Appends the metrics text to `out`. Returns 0 or PHX_ERR_NOMEM. */
int phx_metrics_render(const phx_metrics_t *m, phx_buf_t *out);
/* Routes /healthz (and /metrics with `with_metrics`) to `m` (borrowed).
 * Returns 0 or PHX_ERR_NOMEM. */
int phx_metrics_add_routes(phx_router_t *r, bool with_metrics, const phx_metrics_t *m);
/* Answers /healthz or /metrics on `c` when `path` is one of them; returns
 * false otherwise. */
bool phx_metrics_request(const phx_metrics_t *m, phx_conn_t *c, const char *path, size_t len);

#endif /* PHX_METRICS_H */
