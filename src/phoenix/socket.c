/* socket.c: the Phoenix socket. The connect step (query params, vsn, the
 * connect callback, assigns and socket id, phxd's default Phoenix.Token
 * callback), then every decoded client message: heartbeats here, the rest
 * to channel.c. Transport-independent: ws.c (and later longpoll.c) call in
 * through this header and are called back through phx_transport_ops_t. */
#include "socket.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "etf.h"
#include "log.h"
#include "pubsub.h"
#include "query.h"
#include "server.h"
#include "token.h"

struct phx_connect_str {
    phx_connect_str_t *next;
    char s[];
};

/* ---- connect ---- */

void phx_connect_init(phx_connect_t *c, phx_server_t *srv, const phx_transport_ops_t *ops,
                      const char *peer, int peer_port, const char *uri, size_t uri_len,
                      const char *query, size_t query_len,
                      const char *(*header)(void *ctx, const char *name), void *header_ctx)
{
    memset(c, 0, sizeof(*c));
    c->srv = srv;
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
    if (c->srv->cfg.max_header_bytes > lim.max_len)
        lim.max_len = (uint32_t)c->srv->cfg.max_header_bytes;
    c->refused = PHX_REFUSE_CALLBACK;
    int rv = phx_query_parse(&c->params, c->query, c->query_len, &lim);
    if (rv != 0) {
        c->refused = PHX_REFUSE_QUERY;
        PHX_LOG_DEBUG("peer=%s event=connect_refused reason=query error=%s", c->peer,
                      phx_err_name(rv));
        return rv == PHX_ERR_NOMEM ? PHX_ERR_NOMEM : PHX_ERR_INVALID;
    }
    const uint8_t *vsn = NULL;
    size_t vsn_len = 0;
    phx_query_kind_t kind = phx_query_get(c->params, "vsn", 3, &vsn, &vsn_len);
    if (kind == PHX_QUERY_NESTED ||
        phx_vsn_parse((const char *)vsn, vsn_len, kind == PHX_QUERY_STRING, &c->fmt) != 0) {
        PHX_LOG_WARN("peer=%s event=connect_refused reason=unsupported_vsn", c->peer);
        c->refused = PHX_REFUSE_VSN;
        return PHX_ERR_AUTH;
    }
    if (c->srv->connect_cb(c, c->srv->connect_user) != PHX_CONNECT_OK) {
        PHX_LOG_DEBUG("peer=%s event=connect_refused reason=callback", c->peer);
        return PHX_ERR_AUTH;
    }
    return 0;
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

/* ---- phxd's default connect callback: params.token as a Phoenix.Token ---- */

int phx_server_token_init(phx_server_t *srv, char *err)
{
    phx_token_config_t tc = {0};
    tc.secret_key_base = (const uint8_t *)srv->cfg.secret_key_base;
    tc.secret_key_base_len = strlen(srv->cfg.secret_key_base);
    tc.salt = (const uint8_t *)srv->cfg.salt;
    tc.salt_len = strlen(srv->cfg.salt);
    tc.key_iterations = (uint32_t)srv->cfg.key_iterations;
    tc.key_length = (uint32_t)srv->cfg.key_length;
    tc.max_token_bytes = srv->cfg.max_token_bytes;
    int rv = phx_digest_parse(srv->cfg.key_digest, &tc.key_digest);
    if (rv == 0)
        rv = phx_token_new(&srv->token, &tc);
    if (rv != 0)
        snprintf(err, PHX_ERR_LEN, "invalid token settings: %s", phx_strerror(rv));
    return rv;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int phx_server_default_connect(phx_connect_t *c, void *user)
{
    phx_server_t *srv = user;
    if (srv->token == NULL)
        return PHX_CONNECT_REFUSE; /* no secret configured: nobody connects */
    /* The 1.8 authToken when the client sent one, else params.token. */
    const char *token = c->auth_token ? c->auth_token : phx_connect_param(c, "token");
    phx_term_t *data = NULL;
    int rv = phx_token_verify(srv->token, token, token ? strlen(token) : 0, wall_ms(),
                              srv->cfg.max_age, &data);
    if (rv != 0) {
        c->refused = rv == PHX_ERR_EXPIRED   ? PHX_REFUSE_TOKEN_EXPIRED
                     : rv == PHX_ERR_MISSING ? PHX_REFUSE_TOKEN_MISSING
                                             : PHX_REFUSE_TOKEN_INVALID;
        PHX_LOG_DEBUG("peer=%s event=connect_refused reason=token_%s", c->peer,
                      rv == PHX_ERR_EXPIRED   ? "expired"
                      : rv == PHX_ERR_MISSING ? "missing"
                                              : "invalid");
        return PHX_CONNECT_REFUSE;
    }
    /* With user_id_field, map data holds the user id in that field. */
    const phx_term_t *uid_term = data;
    const char *field = srv->cfg.user_id_field;
    if (field && field[0] && data->type == PHX_TERM_MAP) {
        uid_term = phx_term_map_get(data, field, strlen(field));
        if (uid_term == NULL) {
            PHX_LOG_DEBUG("peer=%s event=connect_refused reason=token_without_user_id", c->peer);
            phx_term_free(data);
            return PHX_CONNECT_REFUSE;
        }
    }
    phx_buf_t id = {0};
    rv = phx_term_id_string(uid_term, &id);
    phx_term_free(data);
    if (rv == 0)
        rv = phx_buf_append_byte(&id, 0);
    if (rv != 0) {
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
    phx_buf_dispose(&id);
    phx_buf_dispose(&sid);
    return rv == 0 ? PHX_CONNECT_OK : PHX_CONNECT_REFUSE;
}

/* ---- the socket ---- */

phx_msg_limits_t phx_socket_limits(const phx_server_t *srv)
{
    phx_msg_limits_t lim = PHX_MSG_LIMITS_DEFAULT;
    lim.max_depth = (uint32_t)srv->cfg.max_json_depth;
    lim.max_topic_len = lim.max_event_len = lim.max_ref_len = (uint32_t)srv->cfg.max_topic_bytes;
    return lim;
}

int phx_socket_new(phx_socket_t **out, phx_connect_t *c, void *transport)
{
    phx_socket_t *s = phx_calloc(1, sizeof(*s));
    if (s == NULL)
        return PHX_ERR_NOMEM;
    s->srv = c->srv;
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
    if (s->id && phx_pubsub_add_id(s->srv->pubsub, s) != 0) {
        phx_free(s->id);
        phx_free(s->assigns);
        phx_free(s);
        return PHX_ERR_NOMEM;
    }
    *out = s;
    return 0;
}

const char *phx_socket_assign(const phx_socket_t *s, const char *key)
{
    const char *p = s->assigns, *end = s->assigns + s->assigns_len;
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        if (strcmp(p, key) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

const char *phx_socket_id(const phx_socket_t *s)
{
    return s->id;
}

bool phx_socket_id_topic(const phx_server_t *srv, const char *topic, size_t len)
{
    size_t plen = sizeof(PHX_SOCKET_ID_PREFIX) - 1;
    /* The prefix also covers users who are offline: a client that joined
     * users_socket:42 before user 42 connects would otherwise sit on the
     * id's topic once 42 arrives. */
    if (len >= plen && memcmp(topic, PHX_SOCKET_ID_PREFIX, plen) == 0)
        return true;
    return phx_pubsub_has_id(srv->pubsub, topic, len);
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
    s->ops->close(s->transport, code);
}

void phx_socket_handle(phx_socket_t *s, bool is_binary, uint8_t *frame, size_t len)
{
    if (s->is_closing)
        return;
    phx_msg_limits_t lim = phx_socket_limits(s->srv);
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

void phx_socket_closed(phx_socket_t *s)
{
    s->is_closing = true;
    phx_channel_close_all(s, "closed");
    phx_pubsub_remove_id(s->srv->pubsub, s);
    phx_free(s->id);
    phx_free(s->assigns);
    phx_free(s);
}
