/* endpoint.c: the Phoenix layer's context of one loop (endpoint.h):
 * channel routes, admission of new sockets (check_origin, the connect step,
 * refusals by reason) and phxd's default Phoenix.Token connect callback. */
#include "endpoint.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etf.h"
#include "expiry.h"
#include "http.h"
#include "log.h"
#include "origin.h"
#include "presence.h"
#include "pubsub.h"
#include "socket.h"
#include "token.h"

/* ---- phxd's default connect callback: params.token as a Phoenix.Token ---- */

static int token_init(phx_endpoint_t *ep, char *err)
{
    phx_token_config_t tc;
    int rv = phx_token_config_from(&tc, ep->cfg);
    if (rv == 0)
        rv = phx_token_new(&ep->token, &tc);
    if (rv != 0)
        snprintf(err, PHX_ERR_LEN, "invalid token settings: %s", phx_strerror(rv));
    return rv;
}

int phx_endpoint_token_user(phx_endpoint_t *ep, const char *token, phx_buf_t *uid,
                            int64_t *expires_ms, phx_refuse_t *why)
{
    *why = PHX_REFUSE_TOKEN_INVALID;
    if (ep->token == NULL)
        return PHX_ERR_AUTH; /* no secret configured: no token is valid */
    phx_term_t *data = NULL;
    int rv = phx_token_verify_until(ep->token, token, token ? strlen(token) : 0, phx_wall_ms(),
                                    ep->cfg->max_age, &data, expires_ms);
    if (rv != 0) {
        *why = rv == PHX_ERR_EXPIRED   ? PHX_REFUSE_TOKEN_EXPIRED
               : rv == PHX_ERR_MISSING ? PHX_REFUSE_TOKEN_MISSING
               : rv == PHX_ERR_DATA    ? PHX_REFUSE_TOKEN_DATA
                                       : PHX_REFUSE_TOKEN_INVALID;
        return rv == PHX_ERR_NOMEM ? rv : PHX_ERR_AUTH;
    }
    /* With user_id_field, map data holds the user id in that field. */
    const phx_term_t *uid_term = data;
    const char *field = ep->cfg->user_id_field;
    if (field && field[0] && data->type == PHX_TERM_MAP) {
        uid_term = phx_term_map_get(data, field, strlen(field));
        if (uid_term == NULL) {
            phx_term_free(data);
            *why = PHX_REFUSE_CALLBACK;
            return PHX_ERR_AUTH;
        }
    }
    uid->len = 0;
    rv = phx_term_id_string(uid_term, uid);
    phx_term_free(data);
    if (rv == 0)
        rv = phx_buf_append_byte(uid, 0);
    if (rv != 0) {
        /* Data that names no user (a tuple, a list) is refused as such. */
        *why = PHX_REFUSE_TOKEN_DATA;
        return rv == PHX_ERR_NOMEM ? rv : PHX_ERR_AUTH;
    }
    return 0;
}

int phx_endpoint_default_connect(phx_connect_t *c, void *user)
{
    phx_endpoint_t *ep = user;
    /* The 1.8 authToken when the client sent one, else params.token. */
    const char *token = c->auth_token ? c->auth_token : phx_connect_param(c, "token");
    phx_buf_t id = {0};
    int64_t expires_ms = INT64_MAX;
    phx_refuse_t why;
    int rv = phx_endpoint_token_user(ep, token, &id, &expires_ms, &why);
    if (rv != 0) {
        /* Counted and logged with this reason by phx_endpoint_refused. */
        c->refused = (int)why;
        phx_buf_dispose(&id);
        return PHX_CONNECT_REFUSE;
    }
    const char *uid = (const char *)id.data;
    phx_buf_t sid = {0};
    rv = phx_buf_printf(&sid, PHX_SOCKET_ID_PREFIX "%s", uid);
    if (rv == 0)
        rv = phx_connect_assign(c, "user_id", uid);
    if (rv == 0)
        rv = phx_connect_set_id(c, (const char *)sid.data);
    if (rv == 0 && expires_ms != INT64_MAX)
        phx_connect_set_expires_at(c, expires_ms);
    phx_buf_dispose(&id);
    phx_buf_dispose(&sid);
    return rv == 0 ? PHX_CONNECT_OK : PHX_CONNECT_REFUSE;
}

/* ---- set-up ---- */

int phx_endpoint_init(phx_endpoint_t *ep, phx_loop_t *loop, const phx_config_t *cfg, char *err)
{
    memset(ep, 0, sizeof(*ep));
    ep->loop = loop;
    ep->cfg = cfg;
    ep->connect_cb = phx_endpoint_default_connect;
    ep->connect_user = ep;
    phx_expiry_init(&ep->expiry, loop, cfg);
    int rv = phx_pubsub_new(&ep->pubsub, loop);
    if (rv != 0) {
        snprintf(err, PHX_ERR_LEN, "cannot create server: %s", phx_strerror(rv));
        return rv;
    }
    if ((rv = phx_presence_new(&ep->presence, ep)) != 0) {
        snprintf(err, PHX_ERR_LEN, "cannot create server: %s", phx_strerror(rv));
        phx_endpoint_dispose(ep);
        return rv;
    }
    ep->origin = phx_origin_parse(cfg->check_origin, cfg->url_host, err);
    if (ep->origin == NULL) {
        phx_endpoint_dispose(ep);
        return PHX_ERR_INVALID;
    }
    if (cfg->secret_key_base != NULL && (rv = token_init(ep, err)) != 0) {
        phx_endpoint_dispose(ep);
        return rv;
    }
    if (cfg->expire_sockets)
        phx_expiry_start(&ep->expiry);
    return 0;
}

void phx_endpoint_dispose(phx_endpoint_t *ep)
{
    phx_expiry_dispose(&ep->expiry);
    phx_presence_free(ep->presence);
    ep->presence = NULL;
    phx_pubsub_free(ep->pubsub);
    ep->pubsub = NULL;
    phx_origin_free(ep->origin);
    ep->origin = NULL;
    phx_token_free(ep->token);
    ep->token = NULL;
    for (size_t i = 0; i < ep->nroutes; i++)
        phx_free(ep->routes[i].pattern);
    phx_free(ep->routes);
    ep->routes = NULL;
    ep->nroutes = 0;
}

void phx_endpoint_on_connect(phx_endpoint_t *ep, phx_connect_cb cb, void *user)
{
    ep->connect_cb = cb ? cb : phx_endpoint_default_connect;
    ep->connect_user = cb ? user : ep;
}

/* ---- channel routes ---- */

int phx_endpoint_add_route(phx_endpoint_t *ep, const char *pattern, const phx_channel_handler_t *h,
                           void *user)
{
    if (pattern == NULL || h == NULL || h->join == NULL || ep->nroutes >= UINT16_MAX)
        return PHX_ERR_INVALID; /* a channel keeps its route as a 16-bit index */
    phx_route_t *r = phx_realloc(ep->routes, (ep->nroutes + 1) * sizeof(*r));
    if (r == NULL)
        return PHX_ERR_NOMEM;
    ep->routes = r;
    size_t len = strlen(pattern);
    phx_route_t *nr = &r[ep->nroutes];
    nr->pattern = phx_strdup(pattern);
    if (nr->pattern == NULL)
        return PHX_ERR_NOMEM;
    nr->is_prefix = len > 0 && pattern[len - 1] == '*';
    nr->len = nr->is_prefix ? len - 1 : len;
    nr->handler = h;
    nr->user = user;
    ep->nroutes++;
    return 0;
}

const phx_route_t *phx_endpoint_route(const phx_endpoint_t *ep, const char *topic, size_t len)
{
    for (size_t i = 0; i < ep->nroutes; i++) {
        const phx_route_t *r = &ep->routes[i];
        if (r->is_prefix ? (len >= r->len && memcmp(topic, r->pattern, r->len) == 0)
                         : (len == r->len && memcmp(topic, r->pattern, len) == 0))
            return r;
    }
    return NULL;
}

/* ---- admission ---- */

int phx_endpoint_check_origin(phx_endpoint_t *ep, phx_conn_t *c, const char *transport)
{
    phx_http_t *h = c->http;
    if (phx_origin_is_off(ep->origin))
        return 0; /* Phoenix never reads the header then */
    const char *origin = phx_http_header(h, "origin");
    /* Two Origin headers: refuse rather than pick one. */
    bool ok = !(origin && phx_http_header_count(h, "origin") > 1) &&
              phx_origin_allowed(ep->origin, origin, phx_http_header(h, "host"), c->tls != NULL);
    if (ok)
        return 0;
    phx_stats_refused(&ep->loop->stats, PHX_REFUSE_ORIGIN, c->peer, transport);
    return 403;
}

int phx_endpoint_connect(phx_endpoint_t *ep, phx_connect_t *ci)
{
    int rv = phx_connect_run(ci);
    if (rv == PHX_ERR_AGAIN)
        return rv; /* deferred: ci->deferred answers later */
    return rv == 0 ? 0 : phx_endpoint_refused(ep, ci, rv);
}

/* ---- connect steps answered later ---- */

static void wait_resumed(phx_connect_t *d, int result)
{
    phx_conn_t *c = d->resume_arg;
    size_t rest_len = 0;
    uint8_t *rest = NULL;
    if (d->is_upgrade) {
        rest = phx_http_unpark(c, &rest_len);
    } else {
        /* What came after the request stays for the HTTP layer: the next
         * requests, once this one is answered. */
        phx_http_unwait(c);
    }
    phx_conn_enter(c);
    int status = result == PHX_CONNECT_OK ? 0 : phx_endpoint_refused(d->ep, d, PHX_ERR_AUTH);
    d->admit(c, d, status, rest, rest_len, d->resume_ctx);
    phx_conn_leave(c);
    phx_free(rest);
}

static void wait_timeout(phx_conn_t *c, void *arg)
{
    phx_connect_t *d = arg;
    const char *headers = d->busy_headers;
    phx_connect_orphan(d);
    phx_http_unwait(c);
    phx_http_respond(c, 503, headers, NULL, NULL, 0);
}

static void wait_closed(phx_conn_t *c, void *arg)
{
    phx_connect_orphan(arg);
}

static const phx_http_waiter_t connect_waiter = {
    .on_timeout = wait_timeout,
    .on_closed = wait_closed,
};

void phx_endpoint_connect_wait(phx_endpoint_t *ep, phx_connect_t *ci, phx_conn_t *c, uint8_t *rest,
                               size_t rest_len, const char *busy_headers,
                               void (*admit)(phx_conn_t *c, phx_connect_t *d, int status,
                                             uint8_t *rest, size_t rest_len, void *ctx),
                               void *ctx)
{
    phx_connect_t *d = ci->deferred;
    ci->deferred = NULL;
    phx_connect_dispose(ci);
    d->admit = admit;
    d->busy_headers = busy_headers;
    d->is_upgrade = rest != NULL;
    if (phx_http_park(c, &connect_waiter, d, rest, rest_len) != 0) {
        phx_connect_park(d, wait_resumed, NULL, NULL); /* the answer is dropped */
        phx_http_respond(c, 503, busy_headers, NULL, NULL, 0);
        return;
    }
    phx_connect_park(d, wait_resumed, c, ctx);
}

int phx_endpoint_refused(phx_endpoint_t *ep, phx_connect_t *ci, int rv)
{
    int why = ci->refused;
    const char *peer = ci->peer, *transport = ci->ops->name;
    phx_connect_dispose(ci);
    if (rv == PHX_ERR_INVALID) {
        phx_stats_refused(&ep->loop->stats, PHX_REFUSE_QUERY, peer, transport);
        return 400;
    }
    if (rv == PHX_ERR_NOMEM)
        return 503;
    phx_stats_refused(&ep->loop->stats, (phx_refuse_t)why, peer, transport);
    return 403;
}

int phx_endpoint_broadcast(phx_endpoint_t *ep, const char *topic, size_t topic_len,
                           const char *event, const phx_payload_t *payload, uint64_t sender,
                           uint32_t flags)
{
    phx_bcast_t b = {
        .topic = topic,
        .topic_len = topic_len,
        .event = event,
        .event_len = strlen(event),
        .payload = payload,
        .origin = {.sender = sender, .flags = flags},
    };
    return phx_pubsub_publish(ep->pubsub, &b);
}
