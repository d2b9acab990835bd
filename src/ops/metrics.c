/* metrics.c: /healthz and /metrics (see metrics.h). Everything is read from
 * counters the server keeps anyway, plus the process_* metrics from /proc
 * (never blocks); rendering costs one pass over them. */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "http.h"
#include "longpoll.h"
#include "presence.h"
#include "presence_cluster.h"
#include "pubsub.h"
#include "redis.h"

static const char *const api_route_labels[PHX_API_ROUTES] = {
    [PHX_API_BROADCAST] = "/api/broadcast",
    [PHX_API_DISCONNECT] = "/api/disconnect",
    [PHX_API_PRESENCE] = "/api/presence",
    [PHX_API_OTHER] = "other",
};

/* The Prometheus client libraries' process_* metrics, read from /proc
 * (Linux); what cannot be read is left out. */
static int process_metrics(phx_buf_t *out)
{
    int rv = 0;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    /* Fields after the command's closing parenthesis, numbered from 3
     * (the state) as in proc(5). */
    char *p = strrchr(buf, ')');
    unsigned long long field[25] = {0};
    int k = 3;
    if (p && p[1] == ' ' && ticks > 0 && page > 0) {
        char *save = NULL;
        for (char *tok = strtok_r(p + 2, " ", &save); tok && k <= 24;
             tok = strtok_r(NULL, " ", &save), k++)
            field[k] = strtoull(tok, NULL, 10);
    }
    if (k > 24) {
        double cpu = (double)(field[14] + field[15]) / (double)ticks; /* utime, stime */
        rv |= phx_buf_printf(out,
                             "# HELP process_cpu_seconds_total Total user and system CPU time "
                             "spent in seconds.\n"
                             "# TYPE process_cpu_seconds_total counter\n"
                             "process_cpu_seconds_total %.2f\n",
                             cpu);
        rv |= phx_buf_printf(out,
                             "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                             "# TYPE process_virtual_memory_bytes gauge\n"
                             "process_virtual_memory_bytes %llu\n"
                             "# HELP process_resident_memory_bytes Resident memory size in "
                             "bytes.\n"
                             "# TYPE process_resident_memory_bytes gauge\n"
                             "process_resident_memory_bytes %llu\n",
                             field[23], field[24] * (unsigned long long)page);
        /* The start time: boot time (btime of /proc/stat) plus field 22. */
        FILE *sf = fopen("/proc/stat", "re");
        unsigned long long btime = 0;
        char line[256];
        while (sf && fgets(line, sizeof(line), sf))
            if (strncmp(line, "btime ", 6) == 0) {
                btime = strtoull(line + 6, NULL, 10);
                break;
            }
        if (sf)
            fclose(sf);
        if (btime)
            rv |= phx_buf_printf(out,
                                 "# HELP process_start_time_seconds Start time of the process "
                                 "since unix epoch in seconds.\n"
                                 "# TYPE process_start_time_seconds gauge\n"
                                 "process_start_time_seconds %.2f\n",
                                 (double)btime + (double)field[22] / (double)ticks);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        unsigned long long fds = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        rv |= phx_buf_printf(out,
                             "# HELP process_open_fds Number of open file descriptors.\n"
                             "# TYPE process_open_fds gauge\n"
                             "process_open_fds %llu\n",
                             fds > 0 ? fds - 1 : 0); /* not the directory's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        rv |= phx_buf_printf(out,
                             "# HELP process_max_fds Maximum number of open file descriptors.\n"
                             "# TYPE process_max_fds gauge\n"
                             "process_max_fds %llu\n",
                             rl.rlim_cur == RLIM_INFINITY ? 0ULL : (unsigned long long)rl.rlim_cur);
    return rv;
}

static int metric(phx_buf_t *out, const char *name, const char *type, const char *help,
                  unsigned long long value)
{
    return phx_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
                          name, value);
}

/* A histogram of `nb` bounds (microseconds, printed in seconds), its +Inf
 * slot last in `hist`. */
static int histogram(phx_buf_t *out, const char *name, const char *help, const uint64_t *hist,
                     const uint64_t *bounds_us, int nb, double sum_s, uint64_t count)
{
    int rv = phx_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (int b = 0; b < nb; b++) {
        cum += hist[b];
        rv |= phx_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bounds_us[b] / 1e6,
                             cum);
    }
    cum += hist[nb];
    rv |= phx_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                         cum, name, sum_s, name, (unsigned long long)count);
    return rv;
}

/* Backend callbacks: calls by type and outcome (the types and outcomes
 * seen so far), latency, in flight, queued, breakers. */
static int backend_metrics(const phx_stats_t *st, phx_buf_t *out)
{
    int rv = phx_buf_printf(out, "# HELP phxd_backend_calls_total Backend calls by type and "
                                 "outcome.\n"
                                 "# TYPE phxd_backend_calls_total counter\n");
    for (int t = 0; t < PHX_BCALL_COUNT; t++)
        for (int o = 0; o < PHX_BOUT_COUNT; o++)
            if (st->backend_calls[t][o] || o == PHX_BOUT_OK)
                rv |= phx_buf_printf(out,
                                     "phxd_backend_calls_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                                     phx_bcall_name((phx_bcall_t)t), phx_bout_name((phx_bout_t)o),
                                     (unsigned long long)st->backend_calls[t][o]);
    rv |= histogram(out, "phxd_backend_call_seconds",
                    "Time from a backend call to its answer (or failure).", st->backend_hist,
                    phx_backend_bounds_us(), PHX_BACKEND_BUCKETS, st->backend_sum_s,
                    st->backend_count);
    rv |= metric(out, "phxd_backend_inflight", "gauge", "Backend calls waiting for their answer.",
                 st->backend_inflight);
    rv |= metric(out, "phxd_backend_queued", "gauge",
                 "Backend calls waiting for a free connection.", st->backend_queued);
    rv |= metric(out, "phxd_backend_breakers_open", "gauge",
                 "Backend URLs whose circuit breaker fails calls at once (open or half-open).",
                 st->backend_breakers_open);
    rv |= metric(out, "phxd_backend_breaker_trips_total", "counter",
                 "Times a backend circuit breaker opened.", st->backend_breaker_trips);
    rv |= metric(out, "phxd_backend_leave_batches_total", "counter",
                 "Batch calls that carried several leaves.", st->backend_leave_batches);
    return rv;
}

/* The cluster backend's state and counts, labelled with the node name
 * (which --node-name restricts to characters a label may hold). */
static int redis_metrics(const phx_redis_t *r, phx_buf_t *out)
{
    const phx_redis_stats_t *st = phx_redis_stats(r);
    const char *node = phx_redis_node(r);
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
        {"phxd_redis_published_total", "counter", "Broadcasts published to Redis (answered).",
         offsetof(phx_redis_stats_t, published)},
        {"phxd_redis_publish_dropped_total", "counter",
         "Broadcasts not published: Redis down, output over the cap, or lost in flight.",
         offsetof(phx_redis_stats_t, publish_dropped)},
        {"phxd_redis_received_total", "counter", "Broadcasts received from other nodes.",
         offsetof(phx_redis_stats_t, received)},
        {"phxd_redis_malformed_total", "counter", "Redis messages dropped as malformed.",
         offsetof(phx_redis_stats_t, malformed)},
        {"phxd_redis_reconnects_total", "counter", "Redis sessions established after the first.",
         offsetof(phx_redis_stats_t, reconnects)},
        {"phxd_redis_subscribe_commands_total", "counter",
         "SUBSCRIBE commands sent (topic subscriptions are batched per loop turn).",
         offsetof(phx_redis_stats_t, subscribe_cmds)},
        {"phxd_redis_node_messages_published_total", "counter",
         "Node messages (Presence replication) published to Redis (answered).",
         offsetof(phx_redis_stats_t, node_published)},
        {"phxd_redis_node_messages_dropped_total", "counter",
         "Node messages not published: Redis down, output over the cap, or lost in flight.",
         offsetof(phx_redis_stats_t, node_dropped)},
        {"phxd_phoenix_pubsub_delivered_total", "counter",
         "Broadcasts from Phoenix.PubSub (Elixir nodes) delivered here.",
         offsetof(phx_redis_stats_t, pps_delivered)},
        {"phxd_phoenix_pubsub_ignored_total", "counter",
         "Phoenix.PubSub messages not for phxd (other dispatchers, Presence, :except/:only).",
         offsetof(phx_redis_stats_t, pps_not_for_us)},
        {"phxd_phoenix_pubsub_skipped_total", "counter",
         "Phoenix.PubSub broadcasts with no form phxd can send (non-UTF-8, no JSON form).",
         offsetof(phx_redis_stats_t, pps_skipped)},
        {"phxd_phoenix_pubsub_malformed_total", "counter",
         "Phoenix.PubSub messages that could not be decoded or passed the limits.",
         offsetof(phx_redis_stats_t, pps_malformed)},
        {"phxd_phoenix_pubsub_published_total", "counter",
         "Broadcasts published in Phoenix.PubSub's format.",
         offsetof(phx_redis_stats_t, pps_published)},
    };
    int rv = phx_buf_printf(out,
                            "# HELP phxd_redis_connected 1 while both Redis connections are up.\n"
                            "# TYPE phxd_redis_connected gauge\n"
                            "phxd_redis_connected{node=\"%s\"} %d\n",
                            node, phx_redis_is_connected(r) ? 1 : 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t v;
        memcpy(&v, (const char *)st + rows[i].off, sizeof(v));
        rv |= phx_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s{node=\"%s\"} %llu\n",
                             rows[i].name, rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                             node, (unsigned long long)v);
    }
    return rv;
}

typedef struct peer_out {
    phx_buf_t *out;
    const char *node;
    int rv;
} peer_out_t;

static void peer_row(void *arg, const char *peer, size_t metas)
{
    peer_out_t *po = arg;
    po->rv |= phx_buf_printf(po->out, "phxd_presences_remote{node=\"%s\",peer=\"%s\"} %zu\n",
                             po->node, peer, metas);
}

/* Presence across the cluster (presence_cluster.h): what this node holds
 * for each other node, the nodes it knows alive, and its replication
 * messages. Node names are --node-name's characters, safe in a label. */
static int cluster_presence_metrics(const phx_metrics_t *m, const char *node, phx_buf_t *out)
{
    const phx_pcluster_t *c = phx_presence_cluster(m->ep->presence);
    const phx_pcluster_stats_t *st = phx_pcluster_stats(c);
    static const struct {
        const char *name, *help;
        size_t off;
    } rows[] = {
        {"phxd_presence_messages_in_total", "Presence replication messages from other nodes.",
         offsetof(phx_pcluster_stats_t, msgs_in)},
        {"phxd_presence_messages_out_total", "Presence replication messages sent.",
         offsetof(phx_pcluster_stats_t, msgs_out)},
        {"phxd_presence_messages_dropped_total",
         "Presence replication messages dropped: malformed, over the bounds, unsendable.",
         offsetof(phx_pcluster_stats_t, dropped)},
        {"phxd_presence_remote_refused_total",
         "Other nodes' presence joins refused by the presence bounds.",
         offsetof(phx_pcluster_stats_t, refused)},
        {"phxd_presence_state_requests_total", "Whole states asked of other nodes.",
         offsetof(phx_pcluster_stats_t, state_reqs)},
        {"phxd_presence_states_sent_total", "Whole states sent to other nodes.",
         offsetof(phx_pcluster_stats_t, states_sent)},
        {"phxd_presence_nodes_down_total",
         "Nodes declared down after 12 s of silence (their presences left).",
         offsetof(phx_pcluster_stats_t, nodes_down)},
        {"phxd_presence_goodbyes_total", "Nodes that left cleanly (their presences left).",
         offsetof(phx_pcluster_stats_t, goodbyes)},
    };
    int rv = phx_buf_printf(out,
                            "# HELP phxd_cluster_nodes Other nodes known alive (heard from within "
                            "12 s).\n"
                            "# TYPE phxd_cluster_nodes gauge\n"
                            "phxd_cluster_nodes{node=\"%s\"} %zu\n"
                            "# HELP phxd_presences_remote Presence metas held for another node.\n"
                            "# TYPE phxd_presences_remote gauge\n",
                            node, phx_pcluster_node_count(c));
    peer_out_t po = {out, node, 0};
    phx_pcluster_foreach_node(c, peer_row, &po);
    rv |= po.rv;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t v;
        memcpy(&v, (const char *)st + rows[i].off, sizeof(v));
        rv |= phx_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s{node=\"%s\"} %llu\n",
                             rows[i].name, rows[i].help, rows[i].name, rows[i].name, node,
                             (unsigned long long)v);
    }
    return rv;
}

int phx_metrics_render(const phx_metrics_t *m, phx_buf_t *out)
{
    const phx_loop_t *loop = m->loop;
    const phx_stats_t *st = &loop->stats;
    int rv = process_metrics(out);
    const phx_redis_t *redis = m->redis ? *m->redis : NULL;
    rv |= phx_buf_printf(out,
                         "# HELP phxd_build_info The running phxd's version (and its node "
                         "name in a cluster).\n"
                         "# TYPE phxd_build_info gauge\n"
                         "phxd_build_info{version=\"%s\"%s%s%s} 1\n",
                         phx_version(), redis ? ",node=\"" : "", redis ? phx_redis_node(redis) : "",
                         redis ? "\"" : "");
    if (redis) {
        rv |= redis_metrics(redis, out);
        rv |= cluster_presence_metrics(m, phx_redis_node(redis), out);
    }
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
    rv |= metric(out, "phxd_presences", "gauge",
                 "Presence metas tracked for this node's channels (one per tracked channel).",
                 st->presences);
    rv |= metric(out, "phxd_presence_topics", "gauge", "Topics with presences or a pending diff.",
                 phx_presence_topic_count(m->ep->presence));
    rv |= metric(out, "phxd_presence_diffs_total", "counter", "presence_diff broadcasts sent.",
                 st->presence_diffs);
    rv |= metric(out, "phxd_presence_refusals_total", "counter",
                 "Presence tracks refused (bounds, invalid key or meta); the join still succeeds.",
                 st->presence_refusals);
    rv |= metric(out, "phxd_connections_accepted_total", "counter", "TCP connections accepted.",
                 st->accepted);
    rv |=
        metric(out, "phxd_messages_in_total", "counter", "Client messages received.", st->msgs_in);
    rv |= metric(out, "phxd_messages_out_total", "counter", "Messages queued to clients.",
                 st->msgs_out);
    rv |= metric(out, "phxd_received_bytes_total", "counter", "Bytes read from clients.",
                 st->bytes_in);
    rv |=
        metric(out, "phxd_sent_bytes_total", "counter", "Bytes written to clients.", st->bytes_out);
    rv |= phx_buf_printf(out, "# HELP phxd_connects_refused_total Refused connections by reason.\n"
                              "# TYPE phxd_connects_refused_total counter\n");
    for (int i = 0; i < PHX_REFUSE_COUNT; i++)
        rv |= phx_buf_printf(out, "phxd_connects_refused_total{reason=\"%s\"} %llu\n",
                             phx_refuse_name((phx_refuse_t)i), (unsigned long long)st->refused[i]);
    rv |= metric(out, "phxd_joins_total", "counter", "Channel joins accepted.", st->joins);
    rv |= phx_buf_printf(out, "# HELP phxd_joins_refused_total Refused channel joins by reason.\n"
                              "# TYPE phxd_joins_refused_total counter\n");
    for (int i = 0; i < PHX_JOIN_REFUSE_COUNT; i++)
        rv |= phx_buf_printf(out, "phxd_joins_refused_total{reason=\"%s\"} %llu\n",
                             phx_join_refuse_name((phx_join_refuse_t)i),
                             (unsigned long long)st->refused_joins[i]);
    /* Only the routes and statuses seen so far, as client libraries do. */
    rv |= phx_buf_printf(out, "# HELP phxd_api_requests_total HTTP API requests answered, by "
                              "route and status.\n"
                              "# TYPE phxd_api_requests_total counter\n");
    for (int r = 0; r < PHX_API_ROUTES; r++)
        for (int k = 0; k < PHX_API_STATUSES; k++) {
            if (st->api_requests[r][k] == 0)
                continue;
            int status = phx_api_slot_status(k);
            char label[8];
            snprintf(label, sizeof(label), "%d", status);
            rv |= phx_buf_printf(out, "phxd_api_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                                 api_route_labels[r], status ? label : "other",
                                 (unsigned long long)st->api_requests[r][k]);
        }
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
    rv |= histogram(out, "phxd_broadcast_fanout_seconds",
                    "Time from a broadcast to its last recipient's bytes being written.",
                    st->fanout_hist, phx_loop_fanout_bounds(), PHX_FANOUT_BUCKETS, st->fanout_sum_s,
                    st->fanout_count);
    rv |= backend_metrics(st, out);
    rv |= metric(out, "phxd_draining", "gauge", "1 while the server drains.",
                 loop->is_draining || loop->is_stopping);
    return rv ? PHX_ERR_NOMEM : 0;
}

bool phx_metrics_request(const phx_metrics_t *m, phx_conn_t *c, const char *path, size_t len)
{
    if (len == 8 && memcmp(path, "/healthz", 8) == 0) {
        bool up = !m->loop->is_draining && !m->loop->is_stopping;
        const phx_redis_t *redis = m->redis ? *m->redis : NULL;
        /* Degraded, still 200: local traffic is served without Redis. */
        const char *body = !up                                       ? "draining\n"
                           : redis && !phx_redis_is_connected(redis) ? "ok\nredis: disconnected\n"
                           : redis                                   ? "ok\nredis: connected\n"
                                                                     : "ok\n";
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
