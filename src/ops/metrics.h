/* metrics.h: GET /healthz (200 while serving, 503 while draining) and
 * GET /metrics in the Prometheus text exposition format. */
#ifndef PHX_METRICS_H
#define PHX_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "mem.h"
#include "http.h"
#include "tcp.h"

/* Appends the metrics text of `srv` to `out`. Returns 0 or PHX_ERR_NOMEM. */
int phx_metrics_render(phx_server_t *srv, phx_buf_t *out);
/* Routes /healthz (and /metrics with `with_metrics`). Returns 0 or
 * PHX_ERR_NOMEM. */
int phx_metrics_add_routes(phx_router_t *r, bool with_metrics);
/* Answers /healthz or /metrics on `c` when `path` is one of them; returns
 * false otherwise. */
bool phx_metrics_request(phx_conn_t *c, const char *path, size_t len);

#endif /* PHX_METRICS_H */
