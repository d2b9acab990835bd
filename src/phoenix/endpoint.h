/* endpoint.h: phx_endpoint_t, what the Phoenix layer of one loop needs and
 * nothing more: the configuration (read only), the loop (statistics), the
 * PubSub, the connect callback with phxd's default Phoenix.Token verifier,
 * the check_origin policy, and the channel routes. The server owns one and
 * hands it to the transports through their HTTP routes; sockets and
 * channels reach it through their socket. Admission (origin check, connect
 * step, refusal counting) lives here once: each transport only formats
 * the status it is given. */
#ifndef PHX_ENDPOINT_H
#define PHX_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "counters.h"
#include "expiry.h"
#include "loop.h"
#include "mem.h"
#include "phx.h"
#include "tcp.h"

typedef struct phx_pubsub phx_pubsub_t;
typedef struct phx_token phx_token_t;
typedef struct phx_origin_policy phx_origin_policy_t;
typedef struct phx_presence phx_presence_t;

/* A channel route: an exact topic or a prefix ("room:*"). */
typedef struct phx_route {
    char *pattern;
    size_t len; /* without the trailing '*' when is_prefix */
    bool is_prefix;
    const phx_channel_handler_t *handler;
    void *user;
} phx_route_t;

typedef struct phx_endpoint {
    phx_loop_t *loop;
    const phx_config_t *cfg;
    phx_pubsub_t *pubsub;
    phx_token_t *token; /* the default connect callback's verifier, or NULL */
    phx_origin_policy_t *origin;
    phx_connect_cb connect_cb;
    void *connect_user;
    phx_route_t *routes;
    size_t nroutes;
    phx_expiry_t expiry;      /* sockets' token expiries (cfg.expire_sockets) */
    phx_presence_t *presence; /* Phoenix.Presence of this loop (presence.h) */
    /* The client message whose join or handle_in callback is running (what
     * phx_channel_defer keeps), and the bytes of the messages waiting for
     * deferred answers (cfg.max_waiting_bytes). */
    const struct phx_msg *dispatching;
    phx_channel_t *dispatching_ch;
    size_t waiting_bytes;
} phx_endpoint_t;

/* Sets up `ep` on `loop` with `cfg` (both kept by pointer): the PubSub,
 * the origin policy, the token verifier when cfg has a secret, and the
 * default connect callback. Returns 0, or an error with `err`. */
int phx_endpoint_init(phx_endpoint_t *ep, phx_loop_t *loop, const phx_config_t *cfg, char *err);
/* Frees what init made and the routes; every socket must be gone. */
void phx_endpoint_dispose(phx_endpoint_t *ep);

/* Sets the connect callback (NULL: the default, verifying params.token). */
void phx_endpoint_on_connect(phx_endpoint_t *ep, phx_connect_cb cb, void *user);
/* Adds a channel route (pattern copied, handler borrowed). The first
 * matching route wins. Returns 0, PHX_ERR_INVALID or PHX_ERR_NOMEM. */
int phx_endpoint_add_route(phx_endpoint_t *ep, const char *pattern, const phx_channel_handler_t *h,
                           void *user);
/* The route whose pattern matches `topic`, or NULL. */
const phx_route_t *phx_endpoint_route(const phx_endpoint_t *ep, const char *topic, size_t len);

/* check_origin for the request on `c` (c->http) to `transport` ("websocket",
 * "longpoll"). Returns 0, or 403 when refused (counted and logged as an
 * origin refusal). */
int phx_endpoint_check_origin(phx_endpoint_t *ep, phx_conn_t *c, const char *transport);
/* Runs the connect step `ci` (prepared with phx_connect_init and whatever
 * the transport adds: an authToken). Returns 0 when admitted, or the HTTP
 * status the transport answers: 400 (undecodable query), 403 (refused:
 * vsn, token, callback), 503 (out of memory). Refusals are counted by
 * reason; `ci` is disposed on refusal. PHX_ERR_AGAIN: the callback
 * answers later through ci->deferred (phx_connect_park). */
int phx_endpoint_connect(phx_endpoint_t *ep, phx_connect_t *ci);
/* After phx_endpoint_connect answered PHX_ERR_AGAIN for `ci`: the request
 * on `c` waits (an upgrade: its bytes after the head, `rest`, kept for the
 * new protocol; else `rest` NULL and the next requests wait) for the connect
 * callback's answer, reading held. Then `admit(c, d, status, rest,
 * rest_len, ctx)` runs as the transport's own step after an immediate
 * answer would: with the step's deferred copy `d` and the status (0, or
 * 403 counted by reason), from the loop inside phx_conn_enter/leave; it
 * disposes `d` and may keep nothing of `rest`. A client gone meanwhile
 * drops the answer; none within the LongPoll window is answered 503 with
 * `busy_headers` (may be NULL), as is a wait that cannot be set up. */
void phx_endpoint_connect_wait(phx_endpoint_t *ep, phx_connect_t *ci, phx_conn_t *c, uint8_t *rest,
                               size_t rest_len, const char *busy_headers,
                               void (*admit)(phx_conn_t *c, phx_connect_t *d, int status,
                                             uint8_t *rest, size_t rest_len, void *ctx),
                               void *ctx);
/* A connect step that failed with `rv` before or in phx_connect_run
 * (PHX_ERR_INVALID: 400; PHX_ERR_NOMEM: 503; anything else: 403 for
 * ci->refused): counts it, disposes `ci` and returns the status. */
int phx_endpoint_refused(phx_endpoint_t *ep, phx_connect_t *ci, int rv);

/* Verifies `token` as the default connect callback does (Phoenix.Token
 * under the configured secret, salt and max_age) and gives its user id
 * (the data, or cfg.user_id_field of map data) as a NUL-terminated string
 * in `uid`, and its expiry in unix ms (INT64_MAX: none). Returns 0,
 * PHX_ERR_AUTH with the reason in *why, or PHX_ERR_NOMEM. */
int phx_endpoint_token_user(phx_endpoint_t *ep, const char *token, phx_buf_t *uid,
                            int64_t *expires_ms, phx_refuse_t *why);

/* phxd's default connect callback (`user` is the endpoint): params.token
 * (or the 1.8 authToken) verified as a Phoenix.Token; the user id becomes
 * the user_id assign and the id users_socket:<user_id>. */
int phx_endpoint_default_connect(phx_connect_t *c, void *user);

/* Publishes a broadcast made on this node (see pubsub.h), from `sender`
 * (phx_sub_origin_id of the subscriber it skips, 0: none) with
 * PHX_ORIGIN_* `flags`. Returns the number of local recipients or a
 * negative code. */
int phx_endpoint_broadcast(phx_endpoint_t *ep, const char *topic, size_t topic_len,
                           const char *event, const phx_payload_t *payload, uint64_t sender,
                           uint32_t flags);

#endif /* PHX_ENDPOINT_H */
