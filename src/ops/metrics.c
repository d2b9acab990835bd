/* metrics.c: /healthz and /metrics (see metrics.h). Everything is read from
 * counters the server keeps anyway; rendering costs one pass over them. */
#include "metrics.h"

#include <string.h>

#include "http.h"
#include "longpoll.h"
#include "pubsub.h"

static const char *const refuse_labels[] = {
#define PHX_REFUSE_LABEL(name, label) label,
    PHX_REFUSE_MAP(PHX_REFUSE_LABEL)
#undef PHX_REFUSE_LABEL
};

static int metric(phx_buf_t *out, const char *name, const char *type, const char *help,
                  unsigned long long value)
{
    return phx_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
                          name, value);
}

int phx_metrics_render(const phx_metrics_t *m, phx_buf_t *out)
{
    const phx_loop_t *loop = m->loop;
    const phx_stats_t *st = &loop->stats;
    int rv = 0;
    rv |= phx_buf_printf(out,
                         "# HELP phxd_connections Open connections by transport.\n"
                         "# TYPE phxd_connections gauge\n"
                         "phxd_connections{transport=\"websocket\"} %zu\n"
                         "phxd_connections{transport=\"longpoll\"} %zu\n"
                         "phxd_connections{transport=\"http\"} %zu\n",
                         loop->lists[PHX_LIST_WS].count, phx_longpoll_session_count(*m->longpoll),
                         loop->lists[PHX_LIST_HTTP].count + loop->lists[PHX_LIST_POLL].count);
    rv |= metric(out, "phxd_channels_joined", "gauge", "Joined channels.", st->joined_channels);
    rv |= metric(out, "phxd_topics", "gauge", "Topics with subscribers or socket ids.",
                 phx_pubsub_topic_count(m->ep->pubsub));
    rv |= metric(out, "phxd_connections_accepted_total", "counter", "TCP connections accepted.",
                 st->accepted);
    rv |=
        metric(out, "phxd_messages_in_total", "counter", "Client messages received.", st->msgs_in);
    rv |= metric(out, "phxd_messages_out_total", "counter", "Messages queued to clients.",
                 st->msgs_out);
    rv |= metric(out, "phxd_bytes_in_total", "counter", "Bytes read from clients.", st->bytes_in);
    rv |=
        metric(out, "phxd_bytes_out_total", "counter", "Bytes written to clients.", st->bytes_out);
    rv |= phx_buf_printf(out, "# HELP phxd_connects_refused_total Refused connections by reason.\n"
                              "# TYPE phxd_connects_refused_total counter\n");
    for (int i = 0; i < PHX_REFUSE_COUNT; i++)
        rv |= phx_buf_printf(out, "phxd_connects_refused_total{reason=\"%s\"} %llu\n",
                             refuse_labels[i], (unsigned long long)st->refused[i]);
    rv |= metric(out, "phxd_joins_refused_total", "counter", "Refused channel joins.",
                 st->refused_joins);
    rv |= metric(out, "phxd_slow_consumer_disconnects_total", "counter",
                 "Sockets closed because their queued output passed the limit.", st->slow_closes);
    rv |= metric(out, "phxd_sockets_expired_total", "counter",
                 "Sockets closed (4001) when their token expired (--expire-sockets).",
                 st->expired_sockets);
    rv |= metric(out, "phxd_token_refreshes_total", "counter",
                 "access_token pushes that moved a socket's expiry.", st->token_refreshes);
    rv |= metric(out, "phxd_token_refresh_refusals_total", "counter",
                 "access_token pushes refused (the socket closed 4001).", st->token_refusals);
    rv |= metric(out, "phxd_broadcasts_total", "counter", "Broadcasts published.", st->broadcasts);
    rv |= phx_buf_printf(out, "# HELP phxd_broadcast_fanout_seconds Time from a broadcast to its "
                              "last recipient's bytes being written.\n"
                              "# TYPE phxd_broadcast_fanout_seconds histogram\n");
    const uint64_t *bounds = phx_loop_fanout_bounds();
    unsigned long long cum = 0;
    for (int b = 0; b < PHX_FANOUT_BUCKETS; b++) {
        cum += st->fanout_hist[b];
        rv |= phx_buf_printf(out, "phxd_broadcast_fanout_seconds_bucket{le=\"%g\"} %llu\n",
                             (double)bounds[b] / 1e6, cum);
    }
    cum += st->fanout_hist[PHX_FANOUT_BUCKETS];
    rv |= phx_buf_printf(out,
                         "phxd_broadcast_fanout_seconds_bucket{le=\"+Inf\"} %llu\n"
                         "phxd_broadcast_fanout_seconds_sum %.6f\n"
                         "phxd_broadcast_fanout_seconds_count %llu\n",
                         cum, st->fanout_sum_s, (unsigned long long)st->fanout_count);
    rv |= metric(out, "phxd_draining", "gauge", "1 while the server drains.",
                 loop->is_draining || loop->is_stopping);
    return rv ? PHX_ERR_NOMEM : 0;
}

bool phx_metrics_request(const phx_metrics_t *m, phx_conn_t *c, const char *path, size_t len)
{
    if (len == 8 && memcmp(path, "/healthz", 8) == 0) {
        bool up = !m->loop->is_draining && !m->loop->is_stopping;
        const char *body = up ? "ok\n" : "draining\n";
        phx_http_write(c, up ? 200 : 503, NULL, "text/plain", body, strlen(body),
                       PHX_HTTP_NO_CACHE);
        return true;
    }
    if (len == 8 && memcmp(path, "/metrics", 8) == 0) {
        phx_buf_t b = {0};
        if (phx_metrics_render(m, &b) != 0) {
            phx_buf_dispose(&b);
            phx_http_respond(c, 503, NULL, NULL, NULL, 0);
            return true;
        }
        phx_http_write(c, 200, NULL, "text/plain; version=0.0.4", b.data, b.len, PHX_HTTP_NO_CACHE);
        phx_buf_dispose(&b);
        return true;
    }
    return false;
}

static void route_handle(phx_conn_t *c, void *user)
{
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(c->http, &path, &path_len, &query, &query_len);
    phx_metrics_request(user, c, path, path_len);
}

int phx_metrics_add_routes(phx_router_t *r, bool with_metrics, const phx_metrics_t *m)
{
    phx_http_route_t healthz = {.path = "/healthz", .handle = route_handle, .user = (void *)m};
    phx_http_route_t metrics = {.path = "/metrics", .handle = route_handle, .user = (void *)m};
    int rv = phx_router_add(r, &healthz);
    if (rv == 0 && with_metrics)
        rv = phx_router_add(r, &metrics);
    return rv;
}
