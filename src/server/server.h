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
#include "tcp.h"

typedef struct phx_pubsub phx_pubsub_t;
typedef struct phx_token phx_token_t;
typedef struct phx_longpoll phx_longpoll_t;
typedef struct phx_origin_policy phx_origin_policy_t;

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

struct phx_server {
    uv_loop_t *uv;
    phx_loop_t loop;  /* the per-loop state: lists, flushing, stats, scratch */
    phx_config_t cfg; /* strings point into `cfg_strings` */
    char *cfg_strings[16];
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
    phx_connect_cb connect_cb;
    void *connect_user;
    phx_token_t *token; /* the default connect callback's verifier */
    phx_route_t *routes;
    size_t nroutes;
    phx_pubsub_t *pubsub;
    phx_longpoll_t *longpoll;
    phx_origin_policy_t *origin;
    phx_static_t *statics;
    phx_router_t router;     /* the main listener's routes */
    phx_router_t api_router; /* --api-listen's */
};

/* The route whose pattern matches `topic`, or NULL. */
const phx_route_t *phx_server_route(const phx_server_t *srv, const char *topic, size_t len);
/* The static asset served at `path`, or NULL. */
const phx_static_t *phx_server_static_find(const phx_server_t *srv, const char *path, size_t len);
/* check_origin for a request on `c` (c->http): false when refused. */
bool phx_server_origin_ok(phx_server_t *srv, phx_conn_t *c);
/* The default connect callback: verifies params.token as a Phoenix.Token. */
int phx_server_default_connect(phx_connect_t *c, void *user);
/* Creates srv->token from the configuration (socket.c). */
int phx_server_token_init(phx_server_t *srv, char *err);

#endif /* PHX_SERVER_H */
