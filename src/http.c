/* http.c: llhttp glue for the request head of each new connection. Caps the
 * URL (414), header bytes and count (431) and the whole head's time (408),
 * routes the request, and writes plain responses. The head's storage lives
 * only until the connection upgrades or closes. */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "log.h"
#include "longpoll.h"
#include "metrics.h"
#include "server.h"
#include "ws.h"

static void http_on_read(phx_conn_t *c, uint8_t *data, size_t len);
static void http_on_close(phx_conn_t *c);

static const phx_conn_ops_t http_ops = {
    .on_read = http_on_read,
    .on_close = http_on_close,
    .on_free = http_on_close,
};

/* ---- llhttp callbacks ---- */

static phx_http_t *http_of(llhttp_t *p)
{
    return p->data;
}

static int fail_with(llhttp_t *p, uint16_t status, const char *reason)
{
    http_of(p)->error_status = status;
    llhttp_set_error_reason(p, reason);
    return HPE_USER;
}

/* Counts head bytes against the cap. */
static int count_bytes(llhttp_t *p, size_t len, uint16_t status, const char *reason)
{
    phx_http_t *h = http_of(p);
    h->head_bytes += len;
    if (h->head_bytes > h->max_header_bytes)
        return fail_with(p, status, reason);
    return 0;
}

static int http_on_url(llhttp_t *p, const char *at, size_t len)
{
    int rv = count_bytes(p, len, 414, "URI too long");
    if (rv)
        return rv;
    if (phx_buf_append(&http_of(p)->url, at, len) != 0)
        return fail_with(p, 503, "out of memory");
    return 0;
}

static int http_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    phx_http_t *h = http_of(p);
    int rv = count_bytes(p, len, 431, "request header fields too large");
    if (rv)
        return rv;
    if (h->hstate != 1) {
        if (h->nheaders >= h->max_headers)
            return fail_with(p, 431, "too many header fields");
        h->nheaders++;
        h->hstate = 1;
    }
    for (size_t i = 0; i < len; i++)
        if (phx_buf_append_byte(&h->headers, (uint8_t)tolower((unsigned char)at[i])) != 0)
            return fail_with(p, 503, "out of memory");
    return 0;
}

static int http_on_header_field_complete(llhttp_t *p)
{
    phx_http_t *h = http_of(p);
    if (phx_buf_append_byte(&h->headers, 0) != 0) {
        h->error_status = 503;
        return -1;
    }
    h->hstate = 2;
    h->value_start = (uint32_t)h->headers.len;
    return 0;
}

static int http_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    int rv = count_bytes(p, len, 431, "request header fields too large");
    if (rv)
        return rv;
    if (phx_buf_append(&http_of(p)->headers, at, len) != 0)
        return fail_with(p, 503, "out of memory");
    return 0;
}

static int http_on_header_value_complete(llhttp_t *p)
{
    phx_http_t *h = http_of(p);
    /* Trim trailing whitespace (llhttp already skipped the leading). */
    while (h->headers.len > h->value_start && (h->headers.data[h->headers.len - 1] == ' ' ||
                                               h->headers.data[h->headers.len - 1] == '\t'))
        h->headers.len--;
    if (phx_buf_append_byte(&h->headers, 0) != 0) {
        h->error_status = 503;
        return -1;
    }
    h->hstate = 0;
    return 0;
}

static int http_on_body(llhttp_t *p, const char *at, size_t len)
{
    phx_http_t *h = http_of(p);
    if (len > h->max_body_bytes || h->body.len > h->max_body_bytes - len)
        return fail_with(p, 413, "request body too large");
    if (phx_buf_append(&h->body, at, len) != 0)
        return fail_with(p, 503, "out of memory");
    return 0;
}

static int http_on_message_complete(llhttp_t *p)
{
    http_of(p)->is_complete = true;
    http_of(p)->keep_alive = llhttp_should_keep_alive(p) != 0;
    /* One request per connection is handled at a time. */
    return HPE_PAUSED;
}

static llhttp_settings_t http_settings;
static bool http_settings_ready;

static const llhttp_settings_t *settings(void)
{
    if (!http_settings_ready) {
        llhttp_settings_init(&http_settings);
        http_settings.on_url = http_on_url;
        http_settings.on_header_field = http_on_header_field;
        http_settings.on_header_field_complete = http_on_header_field_complete;
        http_settings.on_header_value = http_on_header_value;
        http_settings.on_header_value_complete = http_on_header_value_complete;
        http_settings.on_body = http_on_body;
        http_settings.on_message_complete = http_on_message_complete;
        http_settings_ready = true;
    }
    return &http_settings;
}

/* ---- the codec ---- */

phx_http_t *phx_http_new(size_t max_header_bytes, uint32_t max_headers, size_t max_body_bytes)
{
    phx_http_t *h = phx_calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    llhttp_init(&h->parser, HTTP_REQUEST, settings());
    h->parser.data = h;
    h->max_header_bytes = max_header_bytes;
    h->max_headers = max_headers;
    h->max_body_bytes = max_body_bytes;
    return h;
}

void phx_http_reset(phx_http_t *h)
{
    /* The parser paused at the end of the request; the bytes after it are
     * in the stash and are fed from the start of the next request. */
    llhttp_init(&h->parser, HTTP_REQUEST, settings());
    h->parser.data = h;
    h->url.len = 0;
    h->headers.len = 0;
    h->body.len = 0;
    if (h->body.cap > 65536)
        phx_buf_dispose(&h->body);
    h->nheaders = 0;
    h->value_start = 0;
    h->hstate = 0;
    h->error_status = 0;
    h->is_complete = false;
    h->is_waiting = false;
    h->keep_alive = false;
    h->head_bytes = 0;
    h->parked = NULL;
}

void phx_http_free(phx_http_t *h)
{
    if (h == NULL)
        return;
    phx_buf_dispose(&h->url);
    phx_buf_dispose(&h->headers);
    phx_buf_dispose(&h->body);
    phx_buf_dispose(&h->stash);
    phx_free(h);
}

int phx_http_feed(phx_http_t *h, const uint8_t *data, size_t len, size_t *used)
{
    *used = len;
    llhttp_errno_t err = llhttp_execute(&h->parser, (const char *)data, len);
    if (err == HPE_OK)
        return 0;
    if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && h->is_complete) {
        const char *pos = llhttp_get_error_pos(&h->parser);
        if (pos >= (const char *)data && pos <= (const char *)data + len)
            *used = (size_t)((const uint8_t *)pos - data);
        return 200;
    }
    return h->error_status ? h->error_status : 400;
}

int phx_http_method(const phx_http_t *h)
{
    return llhttp_get_method((llhttp_t *)&h->parser);
}

bool phx_http_is_11(const phx_http_t *h)
{
    llhttp_t *p = (llhttp_t *)&h->parser;
    return llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) >= 1;
}

/* ---- public helpers ---- */

const char *phx_http_header(const phx_http_t *h, const char *name)
{
    if (h->headers.data == NULL)
        return NULL;
    const char *p = (const char *)h->headers.data;
    const char *end = p + h->headers.len;
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            return NULL;
        if (strcmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

int phx_http_header_join(const phx_http_t *h, const char *name, phx_buf_t *out)
{
    if (h->headers.data == NULL)
        return 0;
    const char *p = (const char *)h->headers.data;
    const char *end = p + h->headers.len;
    bool first = true;
    while (p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            break;
        if (strcmp(p, name) == 0) {
            if ((!first && phx_buf_append_str(out, ", ") != 0) ||
                phx_buf_append_str(out, value) != 0)
                return PHX_ERR_NOMEM;
            first = false;
        }
        p = value + strlen(value) + 1;
    }
    return 0;
}

unsigned phx_http_header_count(const phx_http_t *h, const char *name)
{
    unsigned n = 0;
    if (h->headers.data == NULL)
        return 0;
    const char *p = (const char *)h->headers.data;
    const char *end = p + h->headers.len;
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            break;
        if (strcmp(p, name) == 0)
            n++;
        p = value + strlen(value) + 1;
    }
    return n;
}

void phx_http_target(const phx_http_t *h, const char **path, size_t *path_len, const char **query,
                     size_t *query_len)
{
    const char *u = (const char *)h->url.data;
    size_t len = h->url.len;
    if (u == NULL) {
        u = "";
        len = 0;
    }
    const char *q = memchr(u, '?', len);
    *path = u;
    *path_len = q ? (size_t)(q - u) : len;
    *query = q ? q + 1 : "";
    *query_len = q ? len - (size_t)(q - u) - 1 : 0;
    /* A fragment is never sent by clients, but cut it if present. */
    const char *frag = memchr(*query, '#', *query_len);
    if (frag)
        *query_len = (size_t)(frag - *query);
}

const char *phx_http_list_next(const char *p, const char **item, size_t *len)
{
    while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
    if (*p == '\0')
        return NULL;
    const char *start = p;
    while (*p && *p != ',')
        p++;
    const char *end = p;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *item = start;
    *len = (size_t)(end - start);
    return p;
}

bool phx_http_header_has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *item;
    size_t len;
    for (const char *p = value; p && (p = phx_http_list_next(p, &item, &len)) != NULL;)
        if (len == tlen && strncasecmp(item, token, tlen) == 0)
            return true;
    return false;
}

static const char *status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void process_stash(phx_conn_t *c);

void phx_http_write(phx_conn_t *c, int status, const char *extra_headers, const char *content_type,
                    const void *body, size_t body_len, int flags)
{
    phx_http_t *h = c->http;
    bool close = (flags & PHX_HTTP_CLOSE) || h == NULL || !h->keep_alive || c->srv->is_draining;
    phx_buf_t b = {0};
    int rv = phx_buf_printf(
        &b, "HTTP/1.1 %d %s\r\n%s%s%s%scontent-length: %zu\r\n%s%s\r\n", status,
        status_text(status),
        (flags & PHX_HTTP_NO_CACHE) ? "cache-control: no-store\r\n"
                                    : "cache-control: max-age=0, private, must-revalidate\r\n",
        content_type ? "content-type: " : "", content_type ? content_type : "",
        content_type ? "\r\n" : "", body_len, close ? "connection: close\r\n" : "",
        extra_headers ? extra_headers : "");
    if (rv == 0 && body_len)
        rv = phx_buf_append(&b, body, body_len);
    if (rv == 0)
        phx_conn_send_copy(c, b.data, b.len);
    phx_buf_dispose(&b);
    if (status >= 400)
        PHX_LOG_DEBUG("conn=%llu peer=%s event=http_response status=%d", (unsigned long long)c->id,
                      c->peer, status);
    if (close || rv != 0) {
        phx_conn_close(c, true);
        return;
    }
    /* Ready for the next request on this connection. */
    phx_http_reset(h);
    phx_server_list_touch(c->srv, c, PHX_LIST_HTTP);
    if (!c->in_dispatch)
        process_stash(c);
}

void phx_http_respond(phx_conn_t *c, int status, const char *extra_headers,
                      const char *content_type, const void *body, size_t body_len)
{
    phx_http_write(c, status, extra_headers, content_type, body, body_len, PHX_HTTP_CLOSE);
}

/* ---- routing ---- */

static bool path_is(const char *path, size_t len, const char *prefix, const char *leaf)
{
    size_t plen = strlen(prefix), llen = strlen(leaf);
    if (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    if (len < plen + 1 + llen || memcmp(path, prefix, plen) != 0 || path[plen] != '/' ||
        memcmp(path + plen + 1, leaf, llen) != 0)
        return false;
    size_t rest = len - plen - 1 - llen;
    /* A trailing slash matches too (Phoenix matches on segments). */
    return rest == 0 || (rest == 1 && path[len - 1] == '/');
}

phx_route_kind_t phx_http_route(const char *path, size_t len, const char *socket_path)
{
    if (path_is(path, len, socket_path, "websocket"))
        return PHX_ROUTE_WEBSOCKET;
    if (path_is(path, len, socket_path, "longpoll"))
        return PHX_ROUTE_LONGPOLL;
    return PHX_ROUTE_NOT_FOUND;
}

static void route(phx_conn_t *c, uint8_t *rest, size_t rest_len)
{
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(c->http, &path, &path_len, &query, &query_len);
    bool api_apart = c->srv->cfg.api_listen != NULL;
    if (c->is_api || (api_apart && (phx_api_path(path, path_len) ||
                                    (path_len == 8 && memcmp(path, "/metrics", 8) == 0)))) {
        /* With --api-listen, the API and /metrics live only there, and
         * nothing else does. */
        if (c->is_api && phx_api_path(path, path_len))
            phx_api_request(c, path, path_len);
        else if (!c->is_api || !phx_metrics_request(c, path, path_len))
            phx_http_respond(c, 404, NULL, NULL, NULL, 0);
        return;
    }
    const char *echo_path = c->srv->cfg.echo_path;
    if (echo_path && strlen(echo_path) == path_len && memcmp(path, echo_path, path_len) == 0) {
        phx_ws_echo_handshake(c, rest, rest_len);
        return;
    }
    phx_route_kind_t kind = phx_http_route(path, path_len, c->srv->cfg.socket_path);
    if (kind != PHX_ROUTE_NOT_FOUND && !phx_server_accepts_sockets(c->srv, c))
        return;
    switch (kind) {
    case PHX_ROUTE_WEBSOCKET:
        phx_ws_handshake(c, rest, rest_len);
        return;
    case PHX_ROUTE_LONGPOLL:
        if (c->srv->cfg.longpoll) {
            /* Bytes after the request wait for its response. */
            if (rest_len && phx_buf_append(&c->http->stash, rest, rest_len) != 0) {
                phx_conn_close(c, false);
                return;
            }
            phx_longpoll_request(c);
            return;
        }
        phx_http_respond(c, 404, NULL, NULL, NULL, 0);
        return;
    default:
        if (phx_api_path(path, path_len)) {
            phx_api_request(c, path, path_len);
            return;
        }
        if (phx_metrics_request(c, path, path_len))
            return;
        const phx_static_t *st = phx_server_static_find(c->srv, path, path_len);
        if (st && (phx_http_method(c->http) == HTTP_GET || phx_http_method(c->http) == HTTP_HEAD)) {
            phx_http_write(c, 200, NULL, st->content_type, st->bytes, st->len, 0);
            return;
        }
        phx_http_respond(c, 404, NULL, NULL, NULL, 0);
        return;
    }
}

/* ---- connection hooks ---- */

/* Parses `data`; on a complete request routes it with the bytes after it. */
static void handle_bytes(phx_conn_t *c, uint8_t *data, size_t len)
{
    phx_http_t *h = c->http;
    size_t used;
    int status = phx_http_feed(h, data, len, &used);
    if (status == 0)
        return; /* the request is not complete yet */
    if (status == 200) {
        route(c, data + used, len - used);
        return;
    }
    PHX_LOG_DEBUG("conn=%llu peer=%s event=http_error status=%d reason=\"%s\"",
                  (unsigned long long)c->id, c->peer, status, llhttp_get_error_reason(&h->parser));
    phx_http_respond(c, status, NULL, NULL, NULL, 0);
}

/* Handles requests that arrived while an earlier one was being answered. */
static void process_stash(phx_conn_t *c)
{
    while (!c->is_closing && c->http && !c->http->is_waiting && c->http->stash.len > 0 &&
           c->kind == PHX_CONN_HTTP) {
        size_t len;
        uint8_t *bytes = phx_buf_detach(&c->http->stash, &len);
        phx_conn_enter(c);
        handle_bytes(c, bytes, len);
        phx_free(bytes);
        bool closing = c->is_closing;
        phx_conn_leave(c);
        if (closing)
            break;
    }
}

static void http_on_read(phx_conn_t *c, uint8_t *data, size_t len)
{
    phx_http_t *h = c->http;
    if (h->is_waiting || h->stash.len > 0) {
        /* A request is being answered: keep the bytes for later, bounded. */
        if (h->stash.len + len > h->max_header_bytes + h->max_body_bytes ||
            phx_buf_append(&h->stash, data, len) != 0) {
            phx_http_respond(c, 400, NULL, NULL, NULL, 0);
            return;
        }
        process_stash(c);
        return;
    }
    handle_bytes(c, data, len);
    process_stash(c);
}

static void http_on_close(phx_conn_t *c)
{
    phx_longpoll_conn_closed(c);
    phx_http_dispose(c);
}

int phx_http_conn_init(phx_conn_t *c)
{
    phx_http_t *h = phx_http_new(c->srv->cfg.max_header_bytes, (uint32_t)c->srv->cfg.max_headers,
                                 c->srv->cfg.max_body_bytes);
    if (h == NULL)
        return PHX_ERR_NOMEM;
    c->http = h;
    c->ops = &http_ops;
    c->kind = PHX_CONN_HTTP;
    phx_server_list_touch(c->srv, c, PHX_LIST_HTTP);
    return 0;
}

int phx_http_conn_init_api(phx_conn_t *c)
{
    c->is_api = true;
    return phx_http_conn_init(c);
}

void phx_http_timeout(phx_conn_t *c)
{
    if (c->http && c->http->head_bytes > 0)
        phx_http_respond(c, 408, NULL, NULL, NULL, 0);
    else
        phx_conn_close(c, false);
}

void phx_http_dispose(phx_conn_t *c)
{
    phx_http_free(c->http);
    c->http = NULL;
}
