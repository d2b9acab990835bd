/* server.c: phx_server_t. Owns the loop-side handles (listener, flush
 * check/prepare, the deadline timer), the activity lists that implement the
 * handshake, idle and close timeouts without a timer per connection, the
 * channel routes, and graceful shutdown. */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "backend.h"
#include "http.h"
#include "log.h"
#include "longpoll.h"
#include "metrics.h"
#include "origin.h"
#include "pubsub.h"
#include "redis.h"
#include "tls.h"
#include "token.h"
#include "ws.h"

void phx_config_init(phx_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->port = 4000;
    cfg->socket_path = "/socket";
    cfg->check_origin = "true";
    cfg->url_host = NULL;
    cfg->salt = "user socket";
    cfg->max_age.kind = PHX_MAX_AGE_TOKEN;
    cfg->key_iterations = 1000;
    cfg->key_length = 32;
    cfg->key_digest = "sha256";
    cfg->idle_timeout_ms = 60000;
    cfg->handshake_timeout_ms = 10000;
    cfg->close_timeout_ms = 5000;
    cfg->max_message_bytes = 1024 * 1024;
    cfg->max_fragments = 1024;
    cfg->max_header_bytes = 8192;
    cfg->max_headers = 100;
    cfg->max_channels = 100;
    cfg->max_json_depth = 64;
    cfg->max_token_bytes = 4096;
    cfg->max_topic_bytes = 1024;
    cfg->queue_high_bytes = 1024 * 1024;
    cfg->queue_limit_bytes = 8 * 1024 * 1024;
    cfg->max_connections = 0;
    cfg->max_queued_msgs = 4096;
    cfg->longpoll = true;
    cfg->expiry_warning_s = 30;
    cfg->refresh_interval_s = 5;
    cfg->longpoll_window_ms = 10000;
    cfg->longpoll_max_messages = 1000;
    cfg->longpoll_max_sessions = 10000;
    cfg->max_body_bytes = 8000000;
    cfg->max_body_bytes_total = 64 * 1024 * 1024;
    cfg->longpoll_max_sessions_per_user = 32;
    cfg->redis_prefix = "phxd";
    cfg->presence_diff_ms = 20;
    cfg->presence_max_keys = 10000;
    cfg->presence_max_metas = 32;
    cfg->presence_max_meta_bytes = 1024;
    cfg->presence_max_remote = 1000000;
    cfg->max_waiting_msgs = 1024;
    cfg->max_waiting_bytes = 16 * 1024 * 1024;
    cfg->backend_timeout_ms = 5000;
    cfg->backend_max_inflight = 256;
    cfg->backend_max_queue = 4096;
    cfg->backend_max_answer_bytes = 1024 * 1024;
    cfg->backend_breaker_calls = 20;
    cfg->backend_breaker_percent = 50;
    cfg->backend_breaker_open_ms = 5000;
}

/* ---- accepting ---- */

static void refuse_on_read(phx_conn_t *c, uint8_t *data, size_t len)
{
    /* Whatever the request, the answer is already queued. */
}

static const phx_conn_ops_t refuse_ops = {.on_read = refuse_on_read};

/* Over max_connections: answer 503 at once, without parsing anything. */
static int refuse_conn_init(phx_conn_t *c, void *arg)
{
    static const char resp[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "content-length: 0\r\n"
                               "retry-after: 1\r\n"
                               "connection: close\r\n\r\n";
    c->ops = &refuse_ops;
    phx_stats_refused(&c->loop->stats, PHX_REFUSE_CAPACITY, c->peer, NULL);
    phx_conn_send_copy(c, resp, sizeof(resp) - 1);
    phx_conn_close(c, true);
    return 0;
}

static void server_conn_gone(void *owner);
static void loop_closed(void *owner);

static int conn_init(phx_conn_t *c, void *arg)
{
    phx_server_t *srv = arg;
    return phx_http_conn_init(c, &srv->router);
}

static int conn_init_api(phx_conn_t *c, void *arg)
{
    phx_server_t *srv = arg;
    return phx_http_conn_init(c, &srv->api_router);
}

/* A static asset (GET or HEAD). */
static void static_handle(phx_conn_t *c, void *user)
{
    const phx_static_t *st = user;
    int method = phx_http_method(c->http);
    if (method == HTTP_GET || method == HTTP_HEAD)
        phx_http_write(c, 200, NULL, st->content_type, st->bytes, st->len, 0);
    else
        phx_http_write(c, 404, NULL, NULL, NULL, 0, 0);
}

/* Each layer adds the routes it owns. With --api-listen, the API and
 * /metrics live only on that listener (with /healthz), and nothing else
 * does. */
static int build_routes(phx_server_t *srv)
{
    bool apart = srv->cfg.api_listen != NULL;
    int rv = phx_ws_add_routes(&srv->router, &srv->ep);
    if (rv == 0 && srv->cfg.longpoll)
        rv = phx_longpoll_add_route(&srv->router, srv->longpoll);
    if (rv == 0 && !apart)
        rv = phx_api_add_routes(&srv->router, &srv->ep);
    if (rv == 0)
        rv = phx_metrics_add_routes(&srv->router, !apart, &srv->metrics);
    for (const phx_static_t *st = srv->statics; st && rv == 0; st = st->next) {
        phx_http_route_t rt = {.path = st->path, .handle = static_handle, .user = (void *)st};
        rv = phx_router_add(&srv->router, &rt);
    }
    if (rv == 0 && apart)
        rv = phx_api_add_routes(&srv->api_router, &srv->ep);
    if (rv == 0 && apart)
        rv = phx_metrics_add_routes(&srv->api_router, true, &srv->metrics);
    return rv;
}

static void listener_on_connection(uv_stream_t *l, int status)
{
    phx_server_t *srv = l->data;
    if (status < 0) {
        /* libuv already drained the backlog with its spare descriptor
         * (EMFILE); keep serving the others. */
        PHX_LOG_WARN("event=accept_error error=%s", uv_err_name(status));
        return;
    }
    bool full =
        srv->cfg.max_connections > 0 && srv->loop.nconns >= (size_t)srv->cfg.max_connections;
    int (*init)(phx_conn_t *, void *) =
        l == (uv_stream_t *)&srv->api_listener ? conn_init_api : conn_init;
    int rv = phx_conn_accept(&srv->loop, l, full ? refuse_conn_init : init, srv);
    if (rv != 0)
        PHX_LOG_WARN("event=accept_error error=%s", phx_err_name(rv));
}

/* ---- lifecycle ---- */

/* A copy of a configuration string owned by the server (NULL stays NULL;
 * a failed copy sets is_cfg_nomem). */
static const char *dup_opt(phx_server_t *srv, const char *s)
{
    if (s == NULL)
        return NULL;
    PHX_ASSERT(srv->ncfg_strings < sizeof(srv->cfg_strings) / sizeof(srv->cfg_strings[0]));
    char *copy = phx_strdup(s);
    if (copy == NULL)
        srv->is_cfg_nomem = true;
    srv->cfg_strings[srv->ncfg_strings++] = copy;
    return copy;
}

int phx_server_new(phx_server_t **out, void *loop, const phx_config_t *cfg, char *err)
{
    phx_server_t *srv = phx_calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        return PHX_ERR_NOMEM;
    }
    srv->uv = loop;
    srv->cfg = *cfg;
    srv->cfg.host = dup_opt(srv, cfg->host);
    srv->cfg.socket_path = dup_opt(srv, cfg->socket_path);
    srv->cfg.secret_key_base = dup_opt(srv, cfg->secret_key_base);
    srv->cfg.salt = dup_opt(srv, cfg->salt);
    srv->cfg.key_digest = dup_opt(srv, cfg->key_digest);
    srv->cfg.check_origin = dup_opt(srv, cfg->check_origin);
    srv->cfg.url_host = dup_opt(srv, cfg->url_host);
    srv->cfg.api_key = dup_opt(srv, cfg->api_key);
    srv->cfg.user_id_field = dup_opt(srv, cfg->user_id_field);
    srv->cfg.tls_cert = dup_opt(srv, cfg->tls_cert);
    srv->cfg.tls_key = dup_opt(srv, cfg->tls_key);
    srv->cfg.echo_path = dup_opt(srv, cfg->echo_path);
    srv->cfg.api_listen = dup_opt(srv, cfg->api_listen);
    srv->cfg.redis_url = dup_opt(srv, cfg->redis_url);
    srv->cfg.node_name = dup_opt(srv, cfg->node_name);
    srv->cfg.redis_prefix = dup_opt(srv, cfg->redis_prefix);
    srv->cfg.phoenix_pubsub = dup_opt(srv, cfg->phoenix_pubsub);
    srv->cfg.redis_ca_file = dup_opt(srv, cfg->redis_ca_file);
    srv->cfg.backend_url = dup_opt(srv, cfg->backend_url);
    srv->cfg.backend_secret = dup_opt(srv, cfg->backend_secret);
    srv->cfg.backend_ca_file = dup_opt(srv, cfg->backend_ca_file);
    int rv = PHX_ERR_NOMEM;
    if (srv->is_cfg_nomem || srv->cfg.host == NULL || srv->cfg.socket_path == NULL)
        goto fail;
    if ((rv = phx_loop_init(&srv->loop, loop, &srv->cfg)) != 0)
        goto fail;
    srv->loop.owner = srv;
    srv->loop.on_conn_gone = server_conn_gone;
    srv->loop.on_closed = loop_closed;
    if (srv->cfg.tls_cert || srv->cfg.tls_key) {
        if (srv->cfg.tls_cert == NULL || srv->cfg.tls_key == NULL) {
            snprintf(err, PHX_ERR_LEN, "TLS needs both a certificate and a key");
            rv = PHX_ERR_INVALID;
            goto fail_quiet;
        }
        srv->loop.tls_ctx = phx_tls_ctx_new(srv->cfg.tls_cert, srv->cfg.tls_key, err);
        if (srv->loop.tls_ctx == NULL) {
            rv = PHX_ERR_INVALID;
            goto fail_quiet;
        }
    }
    if ((rv = phx_endpoint_init(&srv->ep, &srv->loop, &srv->cfg, err)) != 0)
        goto fail_quiet;
    if ((rv = phx_longpoll_new(&srv->longpoll, &srv->ep, err)) != 0)
        goto fail_quiet;
    /* The cluster: a backend of the endpoint's PubSub (plugged in and
     * connected by phx_server_start). */
    if (srv->cfg.redis_url && srv->cfg.redis_url[0] &&
        (rv = phx_redis_new(&srv->redis, &srv->loop, srv->ep.pubsub, &srv->cfg, err)) != 0)
        goto fail_quiet;
    if (srv->cfg.backend_connect) {
        /* --connect backend: the connect step is a call to --backend-url. */
        phx_backend_t *b = phx_server_backend(srv);
        if (b == NULL) {
            rv = PHX_ERR_NOMEM;
            goto fail;
        }
        if (srv->cfg.backend_url == NULL || srv->cfg.backend_url[0] == '\0') {
            snprintf(err, PHX_ERR_LEN, "--connect backend needs --backend-url");
            rv = PHX_ERR_INVALID;
            goto fail_quiet;
        }
        if (phx_backend_target(b, NULL, err) == NULL) {
            rv = PHX_ERR_INVALID;
            goto fail_quiet;
        }
        phx_endpoint_on_connect(&srv->ep, phx_backend_connect, b);
    }
    srv->metrics = (phx_metrics_t){
        .loop = &srv->loop, .ep = &srv->ep, .longpoll = &srv->longpoll, .redis = &srv->redis};
    uv_tcp_init(srv->uv, &srv->listener);
    uv_tcp_init(srv->uv, &srv->api_listener);
    uv_timer_init(srv->uv, &srv->drain_timer);
    srv->listener.data = srv->api_listener.data = srv->drain_timer.data = srv;
    srv->open_handles = 3;
    *out = srv;
    return 0;
fail:
    snprintf(err, PHX_ERR_LEN, "cannot create server: %s", phx_strerror(rv));
fail_quiet:
    phx_backend_free(srv->backend);
    phx_redis_free(srv->redis);
    phx_longpoll_free(srv->longpoll);
    phx_tls_ctx_free(srv->loop.tls_ctx);
    phx_endpoint_dispose(&srv->ep);
    for (size_t i = 0; i < sizeof(srv->cfg_strings) / sizeof(srv->cfg_strings[0]); i++)
        phx_free(srv->cfg_strings[i]);
    phx_loop_dispose(&srv->loop);
    phx_free(srv);
    return rv;
}

/* --reuse-port: the listening socket is made here with SO_REUSEPORT (this
 * libuv's uv_tcp_bind has no flag for it) and handed to `l`; the kernel
 * then spreads new connections over every process bound to the port. */
static int open_reuse_port(uv_tcp_t *l, const struct sockaddr *addr)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
        int rv = -errno;
        close(fd);
        return rv;
    }
    int rv = uv_tcp_open(l, (uv_os_sock_t)fd);
    if (rv != 0)
        close(fd);
    return rv;
}

/* Binds and listens on host:port; returns 0 and the port bound, or an
 * error with `err`. */
static int listen_on(phx_server_t *srv, uv_tcp_t *l, const char *host, int port, int *bound_port,
                     char *err)
{
    struct sockaddr_storage addr;
    int rv;
    if (strchr(host, ':'))
        rv = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        rv = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rv != 0) {
        snprintf(err, PHX_ERR_LEN, "invalid listen address %s: %s", host, uv_strerror(rv));
        return rv;
    }
    if (srv->cfg.reuse_port)
        rv = open_reuse_port(l, (const struct sockaddr *)&addr);
    if (rv == 0 && (rv = uv_tcp_bind(l, (struct sockaddr *)&addr, 0)) == 0)
        rv = uv_listen((uv_stream_t *)l, 4096, listener_on_connection);
    if (rv != 0) {
        snprintf(err, PHX_ERR_LEN, "cannot listen on %s:%d: %s", host, port, uv_strerror(rv));
        return rv;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(l, (struct sockaddr *)&bound, &len);
    *bound_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

/* Splits "HOST:PORT" or "[V6]:PORT". */
static int split_host_port(const char *s, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return PHX_ERR_INVALID;
    const char *h = s, *hend = colon;
    if (*h == '[' && hend[-1] == ']') {
        h++;
        hend--;
    }
    if ((size_t)(hend - h) >= cap)
        return PHX_ERR_INVALID;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return PHX_ERR_INVALID;
    *port = (int)p;
    return 0;
}

int phx_server_start(phx_server_t *srv, char *err)
{
    if (build_routes(srv) != 0) {
        snprintf(err, PHX_ERR_LEN, "cannot set up routes: out of memory");
        return PHX_ERR_NOMEM;
    }
    int rv = listen_on(srv, &srv->listener, srv->cfg.host, srv->cfg.port, &srv->bound_port, err);
    if (rv != 0)
        return rv;
    if (srv->cfg.api_listen) {
        char host[128];
        int port;
        if (split_host_port(srv->cfg.api_listen, host, sizeof(host), &port) != 0) {
            snprintf(err, PHX_ERR_LEN, "api-listen must be HOST:PORT, got \"%s\"",
                     srv->cfg.api_listen);
            return PHX_ERR_INVALID;
        }
        if ((rv = listen_on(srv, &srv->api_listener, host, port, &srv->api_port, err)) != 0)
            return rv;
    }
    phx_loop_start(&srv->loop);
    if (srv->redis && (rv = phx_redis_start(srv->redis, err)) != 0)
        return rv;
    return 0;
}

int phx_server_port(const phx_server_t *srv)
{
    return srv->bound_port;
}

int phx_server_api_port(const phx_server_t *srv)
{
    return srv->api_port;
}

void phx_server_on_connect(phx_server_t *srv, phx_connect_cb cb, void *user)
{
    phx_endpoint_on_connect(&srv->ep, cb, user);
}

int phx_server_channel(phx_server_t *srv, const char *pattern, const phx_channel_handler_t *h,
                       void *user)
{
    return phx_endpoint_add_route(&srv->ep, pattern, h, user);
}

int phx_broadcast(phx_server_t *srv, const char *topic, const char *event,
                  const phx_payload_t *payload)
{
    /* Phoenix's Endpoint.broadcast: a "disconnect" on a socket id topic
     * closes that id's sockets, on every node. */
    int rv = phx_endpoint_broadcast(&srv->ep, topic, strlen(topic), event, payload, 0, 0);
    return rv < 0 ? rv : 0;
}

static void server_done(phx_server_t *srv)
{
    if (srv->open_handles == 0 && srv->loop.open_handles == 0 && srv->stop_done)
        srv->stop_done(srv);
}

static void handle_on_close(uv_handle_t *h)
{
    phx_server_t *srv = h->data;
    srv->open_handles--;
    server_done(srv);
}

static void loop_closed(void *owner)
{
    server_done(owner);
}

static void redis_closed(void *arg)
{
    phx_server_t *srv = arg;
    srv->open_handles--;
    server_done(srv);
}

static void backend_closed(void *arg)
{
    phx_server_t *srv = arg;
    srv->open_handles--;
    server_done(srv);
}

static void maybe_finish_stop(phx_server_t *srv)
{
    if (!srv->loop.is_stopping || srv->loop.nconns > 0 ||
        uv_is_closing((uv_handle_t *)&srv->drain_timer))
        return;
    uv_close((uv_handle_t *)&srv->drain_timer, handle_on_close);
    /* Every socket is gone: the leave calls they made go out, and the
     * backend's connections close after them. */
    if (phx_backend_close(srv->backend, backend_closed, srv))
        srv->open_handles++;
    phx_loop_close(&srv->loop);
}

phx_backend_t *phx_server_backend(phx_server_t *srv)
{
    if (srv->backend == NULL && phx_backend_new(&srv->backend, &srv->loop, &srv->ep) != 0)
        return NULL;
    return srv->backend;
}

static void server_conn_gone(void *owner)
{
    maybe_finish_stop(owner);
}

void phx_server_stop(phx_server_t *srv, int code, void (*done)(phx_server_t *))
{
    if (srv->loop.is_stopping)
        return;
    srv->loop.is_stopping = true;
    srv->stop_code = code;
    srv->stop_done = done;
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, handle_on_close);
    if (!uv_is_closing((uv_handle_t *)&srv->api_listener))
        uv_close((uv_handle_t *)&srv->api_listener, handle_on_close);
    uv_timer_stop(&srv->drain_timer);
    /* The cluster goes first: nothing more is published or received, and
     * hiredis's poll handles close well before the loop's own. */
    if (phx_redis_close(srv->redis, redis_closed, srv))
        srv->open_handles++;
    /* LongPoll sessions end (parked polls are answered), then every
     * connection closes: upgraded ones with a Close frame. */
    phx_longpoll_stop(srv->longpoll);
    for (int id = PHX_LIST_HTTP; id < PHX_LIST_COUNT; id++) {
        if (id == PHX_LIST_CLOSE)
            continue;
        phx_conn_t *c = phx_loop_list_first(&srv->loop, id);
        while (c) {
            phx_conn_t *next = phx_loop_list_next(c);
            phx_conn_shutdown(c, code, false);
            c = next;
        }
    }
    maybe_finish_stop(srv);
}

/* ---- static assets ---- */

int phx_server_static(phx_server_t *srv, const char *path, const char *content_type,
                      const void *bytes, size_t len)
{
    phx_static_t *st = phx_calloc(1, sizeof(*st));
    if (st == NULL)
        return PHX_ERR_NOMEM;
    st->path = phx_strdup(path);
    st->content_type = phx_strdup(content_type);
    st->bytes = phx_malloc(len);
    if (st->path == NULL || st->content_type == NULL || st->bytes == NULL) {
        phx_free(st->path);
        phx_free(st->content_type);
        phx_free(st->bytes);
        phx_free(st);
        return PHX_ERR_NOMEM;
    }
    if (len)
        memcpy(st->bytes, bytes, len);
    st->len = len;
    st->next = srv->statics;
    srv->statics = st;
    return 0;
}

const phx_static_t *phx_server_static_find(const phx_server_t *srv, const char *path, size_t len)
{
    for (const phx_static_t *st = srv->statics; st; st = st->next)
        if (strlen(st->path) == len && memcmp(st->path, path, len) == 0)
            return st;
    return NULL;
}

/* ---- draining ---- */

static void drain_on_timer(uv_timer_t *t);

/* Closes up to `batch` sockets; returns how many are left. */
static size_t drain_step(phx_server_t *srv)
{
    size_t closed = 0;
    size_t batch = srv->drain_batch ? srv->drain_batch : SIZE_MAX;
    phx_conn_t *c;
    while (closed < batch && (c = phx_loop_list_first(&srv->loop, PHX_LIST_WS)) != NULL) {
        phx_conn_shutdown(c, srv->stop_code, true);
        closed++;
    }
    closed += phx_longpoll_drain(srv->longpoll, batch > closed ? batch - closed : 0);
    /* Parked polls and idle keep-alive connections go at once (requests
     * still being received are left to finish: they get 503 or /healthz). */
    for (int id = PHX_LIST_HTTP; id < PHX_LIST_COUNT; id++) {
        if (id == PHX_LIST_WS || id == PHX_LIST_CLOSE)
            continue;
        c = phx_loop_list_first(&srv->loop, id);
        while (c) {
            phx_conn_t *next = phx_loop_list_next(c);
            phx_conn_shutdown(c, srv->stop_code, true);
            c = next;
        }
    }
    PHX_LOG_INFO("event=drain closed=%zu left=%zu", closed,
                 srv->loop.lists[PHX_LIST_WS].count + phx_longpoll_session_count(srv->longpoll));
    return srv->loop.lists[PHX_LIST_WS].count + phx_longpoll_session_count(srv->longpoll);
}

static void drain_on_timer(uv_timer_t *t)
{
    phx_server_t *srv = t->data;
    if (srv->loop.is_stopping)
        return;
    uint64_t now = uv_now(srv->uv);
    size_t left = drain_step(srv);
    if (left == 0 || now >= srv->drain_deadline) {
        if (left)
            PHX_LOG_WARN("event=drain_deadline left=%zu", left);
        phx_server_stop(srv, srv->stop_code, srv->stop_done);
        return;
    }
    uint64_t next = srv->drain_interval_ms;
    if (now + next > srv->drain_deadline)
        next = srv->drain_deadline - now;
    uv_timer_start(&srv->drain_timer, drain_on_timer, next, 0);
}

void phx_server_drain(phx_server_t *srv, int code, size_t batch, int interval_ms, int timeout_ms,
                      void (*done)(phx_server_t *))
{
    if (srv->loop.is_stopping || srv->loop.is_draining)
        return;
    srv->loop.is_draining = true;
    srv->stop_code = code;
    srv->stop_done = done;
    srv->drain_batch = batch;
    srv->drain_interval_ms = (uint64_t)(interval_ms > 0 ? interval_ms : 0);
    srv->drain_deadline = uv_now(srv->uv) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    /* The listener stays open so that /healthz can answer 503 to load
     * balancers, but no new socket is accepted (503 before any upgrade,
     * refusal reason "draining"); it closes when the drain ends. */
    PHX_LOG_INFO("event=drain_start sockets=%zu batch=%zu interval_ms=%d timeout_ms=%d",
                 srv->loop.lists[PHX_LIST_WS].count + phx_longpoll_session_count(srv->longpoll),
                 batch, interval_ms, timeout_ms);
    drain_on_timer(&srv->drain_timer);
}

int phx_server_reload_tls(phx_server_t *srv, char *err)
{
    if (srv->loop.tls_ctx == NULL) {
        snprintf(err, PHX_ERR_LEN, "TLS is off: there is no certificate to reload");
        return PHX_ERR_STATE;
    }
    /* Blocking reads of two small PEM files, on the loop's thread: a rare,
     * operator-triggered event, and a page or two read from a local disk. */
    phx_tls_ctx_t *fresh = phx_tls_ctx_new(srv->cfg.tls_cert, srv->cfg.tls_key, err);
    if (fresh == NULL)
        return PHX_ERR_INVALID;
    /* Each open connection's SSL holds its own reference to the old SSL_CTX
     * (SSL_new takes one, SSL_free drops it): freeing our handle here only
     * drops ours, and the old context goes with the last of them. */
    phx_tls_ctx_free(srv->loop.tls_ctx);
    srv->loop.tls_ctx = fresh;
    return 0;
}

void phx_server_free(phx_server_t *srv)
{
    if (srv == NULL)
        return;
    phx_backend_free(srv->backend);
    phx_redis_free(srv->redis);
    phx_longpoll_free(srv->longpoll);
    phx_tls_ctx_free(srv->loop.tls_ctx);
    phx_endpoint_dispose(&srv->ep);
    while (srv->statics) {
        phx_static_t *st = srv->statics;
        srv->statics = st->next;
        phx_free(st->path);
        phx_free(st->content_type);
        phx_free(st->bytes);
        phx_free(st);
    }
    for (size_t i = 0; i < sizeof(srv->cfg_strings) / sizeof(srv->cfg_strings[0]); i++)
        phx_free(srv->cfg_strings[i]);
    phx_router_free(&srv->router);
    phx_router_free(&srv->api_router);
    phx_loop_dispose(&srv->loop);
    phx_free(srv);
}
