/* socket.c: the Phoenix socket. The connect step (query params, vsn, the
 * connect callback, assigns and socket id, phxd's default Phoenix.Token
 * callback), then every decoded client message: heartbeats here, the rest
 * to channel.c. Transport-independent: ws.c (and later longpoll.c) call in
 * through this header and are called back through phx_transport_ops_t. */
#include "socket.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "expiry.h"
#include "list.h"
#include "log.h"
#include "pubsub.h"
#include "query.h"
#include "token.h"

struct phx_connect_str {
    phx_connect_str_t *next;
    char s[];
};

/* ---- connect ---- */

void phx_connect_init(phx_connect_t *c, phx_endpoint_t *ep, const phx_transport_ops_t *ops,
                      const char *peer, int peer_port, const char *uri, size_t uri_len,
                      const char *query, size_t query_len,
                      const char *(*header)(void *ctx, const char *name), void *header_ctx)
{
    memset(c, 0, sizeof(*c));
    c->ep = ep;
    c->ops = ops;
    c->peer = peer;
    c->peer_port = peer_port;
    c->uri = uri;
    c->uri_len = uri_len;
    c->query = query;
    c->query_len = query_len;
    c->header = header;
    c->header_ctx = header_ctx;
}

void phx_connect_dispose(phx_connect_t *c)
{
    phx_connect_str_t *s = c->strings;
    while (s) {
        phx_connect_str_t *next = s->next;
        phx_free(s);
        s = next;
    }
    c->strings = NULL;
    phx_query_free(c->params);
    c->params = NULL;
    phx_buf_dispose(&c->assigns);
    phx_free(c->id);
    c->id = NULL;
    phx_free(c->auth_token);
    c->auth_token = NULL;
}

/* Keeps a NUL-terminated copy alive until dispose; NULL when out of memory. */
static const char *keep(phx_connect_t *c, const void *data, size_t len)
{
    phx_connect_str_t *s = phx_malloc(sizeof(*s) + len + 1);
    if (s == NULL)
        return NULL;
    if (len)
        memcpy(s->s, data, len);
    s->s[len] = '\0';
    s->next = c->strings;
    c->strings = s;
    return s->s;
}

int phx_connect_run(phx_connect_t *c)
{
    phx_query_limits_t lim = PHX_QUERY_LIMITS_DEFAULT;
    if (c->ep->cfg->max_header_bytes > lim.max_len)
        lim.max_len = (uint32_t)c->ep->cfg->max_header_bytes;
    c->refused = PHX_REFUSE_CALLBACK;
    int rv = phx_query_parse(&c->params, c->query, c->query_len, &lim);
    if (rv != 0) {
        c->refused = PHX_REFUSE_QUERY;
        return rv == PHX_ERR_NOMEM ? PHX_ERR_NOMEM : PHX_ERR_INVALID;
    }
    const uint8_t *vsn = NULL;
    size_t vsn_len = 0;
    phx_query_kind_t kind = phx_query_get(c->params, "vsn", 3, &vsn, &vsn_len);
    if (kind == PHX_QUERY_NESTED ||
        phx_vsn_parse((const char *)vsn, vsn_len, kind == PHX_QUERY_STRING, &c->fmt) != 0) {
        c->refused = PHX_REFUSE_VSN;
        return PHX_ERR_AUTH;
    }
    int answer = c->ep->connect_cb(c, c->ep->connect_user);
    if (answer == PHX_CONNECT_DEFER && c->deferred)
        return PHX_ERR_AGAIN; /* the transport parks the request */
    if (answer != PHX_CONNECT_OK)
        return PHX_ERR_AUTH; /* logged with its reason by phx_endpoint_refused */
    return 0;
}

phx_connect_t *phx_connect_defer(phx_connect_t *c)
{
    if (c->deferred || c->is_parked)
        return NULL; /* once per connect step, from inside the callback */
    phx_connect_t *d = phx_malloc(sizeof(*d));
    if (d == NULL)
        return NULL;
    /* The copy takes what the step owns (the strings already handed to
     * the callback stay valid); the request itself stays with the
     * transport, so the accessors that read it are for the callback's
     * own run only. */
    *d = *c;
    d->deferred = NULL;
    d->params = NULL; /* the request's: it stays with the step */
    c->strings = NULL;
    memset(&c->assigns, 0, sizeof(c->assigns));
    c->id = NULL;
    c->auth_token = NULL;
    c->deferred = d;
    return d;
}

static void connect_free(phx_connect_t *d)
{
    phx_connect_dispose(d);
    phx_free(d);
}

void phx_connect_park(phx_connect_t *d, void (*resume)(phx_connect_t *d, int result), void *arg,
                      void *ctx)
{
    d->resume = resume;
    d->resume_arg = arg;
    d->resume_ctx = ctx;
    d->is_parked = true;
    if (d->has_early) {
        if (arg)
            resume(d, d->early_result);
        connect_free(d);
    }
}

void phx_connect_orphan(phx_connect_t *d)
{
    d->resume_arg = NULL;
}

void phx_connect_resume(phx_connect_t *d, int result)
{
    if (!d->is_parked) {
        d->has_early = true; /* answered before the transport parked it */
        d->early_result = result;
        return;
    }
    if (d->resume_arg)
        d->resume(d, result);
    connect_free(d);
}

const char *phx_connect_param(const phx_connect_t *c, const char *key)
{
    const uint8_t *val;
    size_t len;
    if (c->params == NULL ||
        phx_query_get(c->params, key, strlen(key), &val, &len) != PHX_QUERY_STRING)
        return NULL;
    return keep((phx_connect_t *)c, val, len);
}

const char *phx_connect_params_json(const phx_connect_t *c)
{
    phx_buf_t b = {0};
    if (c->params == NULL || phx_query_to_json(c->params, &b) != 0) {
        phx_buf_dispose(&b);
        return "{}";
    }
    const char *s = keep((phx_connect_t *)c, b.data, b.len);
    phx_buf_dispose(&b);
    return s ? s : "{}";
}

const char *phx_connect_peer_address(const phx_connect_t *c)
{
    return c->peer;
}

int phx_connect_peer_port(const phx_connect_t *c)
{
    return c->peer_port;
}

const char *phx_connect_uri(const phx_connect_t *c)
{
    return keep((phx_connect_t *)c, c->uri, c->uri_len);
}

const char *phx_connect_header(const phx_connect_t *c, const char *name)
{
    char lower[128];
    size_t n = strlen(name);
    if (n >= sizeof(lower) || c->header == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    return c->header(c->header_ctx, lower);
}

const char *phx_connect_transport(const phx_connect_t *c)
{
    return c->ops->name;
}

const char *phx_connect_auth_token(const phx_connect_t *c)
{
    return c->auth_token;
}

int phx_connect_assign(phx_connect_t *c, const char *key, const char *value)
{
    if (key == NULL || value == NULL)
        return PHX_ERR_INVALID;
    if (phx_buf_append(&c->assigns, key, strlen(key) + 1) != 0 ||
        phx_buf_append(&c->assigns, value, strlen(value) + 1) != 0)
        return PHX_ERR_NOMEM;
    return 0;
}

int phx_connect_set_id(phx_connect_t *c, const char *id)
{
    char *copy = id ? phx_strdup(id) : NULL;
    if (id && copy == NULL)
        return PHX_ERR_NOMEM;
    phx_free(c->id);
    c->id = copy;
    return 0;
}

void phx_connect_set_expires_at(phx_connect_t *c, int64_t unix_ms)
{
    c->expires_ms = unix_ms;
}

/* ---- the socket ---- */

phx_msg_limits_t phx_socket_limits(const phx_config_t *cfg)
{
    phx_msg_limits_t lim = PHX_MSG_LIMITS_DEFAULT;
    lim.max_depth = (uint32_t)cfg->max_json_depth;
    lim.max_topic_len = lim.max_event_len = lim.max_ref_len = (uint32_t)cfg->max_topic_bytes;
    return lim;
}

/* A broadcast on the socket's id topic: "disconnect" from a server-side
 * source closes the socket (1001), as Phoenix's socket does; anything
 * else is not for it. */
static bool id_deliver(phx_sub_t *sub, phx_fanout_t *f)
{
    phx_socket_t *s = PHX_CONTAINER_OF(sub, phx_socket_t, id_sub);
    if (s->is_closing || !phx_fanout_is_disconnect(f))
        return false;
    /* It leaves the topic first: the walk goes on over the others. */
    phx_pubsub_unsubscribe(s->ep->pubsub, &s->id_sub);
    s->is_kicked = true;
    phx_socket_close(s, 1001);
    return true;
}

int phx_socket_new(phx_socket_t **out, phx_connect_t *c, void *transport)
{
    phx_socket_t *s = phx_calloc(1, sizeof(*s));
    if (s == NULL)
        return PHX_ERR_NOMEM;
    s->ep = c->ep;
    s->ops = c->ops;
    s->transport = transport;
    s->fmt = (uint8_t)c->fmt;
    if (c->assigns.len) {
        size_t len;
        s->assigns = (char *)phx_buf_detach(&c->assigns, &len);
        s->assigns_len = (uint32_t)len;
    }
    s->id = c->id;
    c->id = NULL;
    s->id_sub.deliver = id_deliver;
    s->id_sub.is_id = true;
    if ((s->id && phx_pubsub_subscribe(s->ep->pubsub, &s->id_sub, s->id, strlen(s->id)) != 0) ||
        (s->ep->cfg->expire_sockets && c->expires_ms > 0 &&
         phx_expiry_track(&s->ep->expiry, s, c->expires_ms) != 0)) {
        phx_pubsub_unsubscribe(s->ep->pubsub, &s->id_sub);
        phx_free(s->id);
        phx_free(s->assigns);
        phx_free(s);
        return PHX_ERR_NOMEM;
    }
    *out = s;
    return 0;
}

const char *phx_assigns_get(const char *packed, size_t len, const char *key)
{
    const char *p = packed, *end = packed ? packed + len : NULL;
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        if (strcmp(p, key) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

const char *phx_socket_assign(const phx_socket_t *s, const char *key)
{
    return phx_assigns_get(s->assigns, s->assigns_len, key);
}

int phx_socket_put_assign(phx_socket_t *s, const char *key, const char *value)
{
    phx_buf_t b = {0};
    const char *p = s->assigns, *end = s->assigns ? s->assigns + s->assigns_len : NULL;
    while (p && p < end) {
        const char *v = p + strlen(p) + 1;
        const char *next = v + strlen(v) + 1;
        if (strcmp(p, key) != 0 && phx_buf_append(&b, p, (size_t)(next - p)) != 0)
            goto nomem;
        p = next;
    }
    if (phx_buf_append(&b, key, strlen(key) + 1) != 0 ||
        phx_buf_append(&b, value, strlen(value) + 1) != 0 || b.len > UINT32_MAX)
        goto nomem;
    size_t len;
    phx_free(s->assigns);
    s->assigns = (char *)phx_buf_detach(&b, &len);
    s->assigns_len = (uint32_t)len;
    return 0;
nomem:
    phx_buf_dispose(&b);
    return PHX_ERR_NOMEM;
}

const char *phx_socket_id(const phx_socket_t *s)
{
    return s->id;
}

bool phx_socket_id_topic(const phx_endpoint_t *ep, const char *topic, size_t len)
{
    size_t plen = sizeof(PHX_SOCKET_ID_PREFIX) - 1;
    /* The prefix also covers users who are offline: a client that joined
     * users_socket:42 before user 42 connects would otherwise sit on the
     * id's topic once 42 arrives. */
    if (len >= plen && memcmp(topic, PHX_SOCKET_ID_PREFIX, plen) == 0)
        return true;
    return phx_pubsub_has_id(ep->pubsub, topic, len);
}

int phx_socket_send(phx_socket_t *s, const phx_out_t *m)
{
    if (s->is_closing)
        return PHX_ERR_CLOSED;
    phx_rcbuf_t *b;
    int rv = phx_msg_encode(&b, (phx_fmt_t)s->fmt, m);
    if (rv != 0) {
        PHX_LOG_DEBUG("event=encode_error error=%s", phx_err_name(rv));
        return rv;
    }
    return s->ops->send(s->transport, b);
}

void phx_socket_close(phx_socket_t *s, int code)
{
    if (s->is_closing)
        return;
    phx_socket_set_close_code(s, code);
    s->ops->close(s->transport, code);
}

void phx_socket_set_close_code(phx_socket_t *s, int code)
{
    if (s->close_code == 0 && code > 0 && code <= UINT16_MAX)
        s->close_code = (uint16_t)code;
}

void phx_socket_opened(phx_socket_t *s, const char *peer)
{
    if (s->is_open)
        return;
    s->is_open = true;
    char id[160], uid[160];
    const char *u = phx_socket_assign(s, "user_id");
    PHX_LOG_INFO("event=connect socket_id=%s user_id=%s transport=%s peer=%s",
                 phx_log_value(id, sizeof(id), s->id, s->id ? strlen(s->id) : 0),
                 phx_log_value(uid, sizeof(uid), u, u ? strlen(u) : 0), s->ops->name,
                 peer && peer[0] ? peer : "-");
}

void phx_socket_handle(phx_socket_t *s, bool is_binary, uint8_t *frame, size_t len)
{
    if (s->is_closing)
        return;
    phx_msg_limits_t lim = phx_socket_limits(s->ep->cfg);
    phx_msg_t m;
    int rv = phx_msg_decode(&m, (phx_fmt_t)s->fmt, is_binary, frame, len, &lim);
    if (rv != 0) {
        /* Phoenix crashes the connection process on undecodable input; the
         * HTTP server closes with 1011 and no reason. */
        PHX_LOG_DEBUG("event=decode_error error=%s", phx_err_name(rv));
        phx_socket_close(s, 1011);
        return;
    }
    if (phx_field_eq(&m.topic, "phoenix") && phx_field_eq(&m.event, "heartbeat")) {
        phx_out_t out = {
            .kind = PHX_OUT_REPLY,
            .join_ref = phx_field_null(),
            .ref = m.ref,
            .topic = m.topic,
            .status = phx_field_str("ok"),
        };
        phx_socket_send(s, &out);
        return;
    }
    phx_channel_dispatch(s, &m);
}

void phx_socket_hold(phx_socket_t *s)
{
    s->holds++;
}

void phx_socket_release(phx_socket_t *s)
{
    if (--s->holds == 0 && s->is_gone)
        phx_socket_closed(s);
}

void phx_socket_closed(phx_socket_t *s)
{
    s->is_closing = true;
    if (s->holds > 0) {
        s->is_gone = true;
        return;
    }
    if (s->is_open) {
        char id[160];
        PHX_LOG_INFO("event=close socket_id=%s transport=%s code=%d",
                     phx_log_value(id, sizeof(id), s->id, s->id ? strlen(s->id) : 0), s->ops->name,
                     s->close_code ? s->close_code : 1006);
    }
    phx_expiry_untrack(&s->ep->expiry, s);
    phx_channel_close_all(s, "closed");
    phx_pubsub_unsubscribe(s->ep->pubsub, &s->id_sub);
    phx_free(s->id);
    phx_free(s->assigns);
    phx_free(s);
}
