/* http.c: llhttp glue for the request head of each new connection. Caps the
 * URL (414), header bytes and count (431) and the whole head's time (408),
 * routes the request, and writes plain responses. The head's storage lives
 * only until the connection upgrades or closes. */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static void http_on_read(phx_conn_t *c, uint8_t *data, size_t len);
static void http_on_close(phx_conn_t *c);
static void http_on_drained(phx_conn_t *c);
static void pump(phx_conn_t *c);

static void http_on_timeout(phx_conn_t *c);
static void http_on_shutdown(phx_conn_t *c, int code, bool drain);

static const phx_conn_ops_t http_ops = {
    .on_read = http_on_read,
    .on_close = http_on_close,
    .on_free = http_on_close,
    .on_drained = http_on_drained,
    .on_deferred = pump,
    .on_timeout = http_on_timeout,
    .on_shutdown = http_on_shutdown,
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

/* Whether `more` body bytes fit the shared budget. */
static bool budget_allows(const phx_http_t *h, uint64_t more)
{
    return h->body_held == NULL || more <= h->body_held_max - *h->body_held;
}

static int http_on_headers_complete(llhttp_t *p)
{
    phx_http_t *h = http_of(p);
    /* A declared length is judged before any byte of the body arrives. */
    if (!(p->flags & F_CHUNKED) && p->content_length > h->max_body_bytes)
        return fail_with(p, 413, "request body too large");
    if (!(p->flags & F_CHUNKED) && !budget_allows(h, p->content_length))
        return fail_with(p, 503, "request bodies over the total");
    if (h->pause_on_head) {
        h->is_head_paused = true;
        return HPE_PAUSED;
    }
    return 0;
}

static int http_on_body(llhttp_t *p, const char *at, size_t len)
{
    phx_http_t *h = http_of(p);
    if (len > h->max_body_bytes || h->body.len > h->max_body_bytes - len)
        return fail_with(p, 413, "request body too large");
    if (!budget_allows(h, len))
        return fail_with(p, 503, "request bodies over the total");
    if (phx_buf_append(&h->body, at, len) != 0)
        return fail_with(p, 503, "out of memory");
    if (h->body_held)
        *h->body_held += len;
    return 0;
}

/* Gives the body's bytes back to the shared budget. */
static void body_release(phx_http_t *h)
{
    if (h->body_held) {
        PHX_ASSERT(*h->body_held >= h->body.len);
        *h->body_held -= h->body.len;
    }
    h->body.len = 0;
}

static int http_on_message_complete(llhttp_t *p)
{
    http_of(p)->is_complete = true;
    http_of(p)->keep_alive = llhttp_should_keep_alive(p) != 0;
    /* One request per connection is handled at a time. */
    return HPE_PAUSED;
}

/* Read only, so every loop (and thread) shares it safely; the fields not
 * named are NULL, as llhttp_settings_init would leave them. */
static const llhttp_settings_t http_settings = {
    .on_url = http_on_url,
    .on_header_field = http_on_header_field,
    .on_header_field_complete = http_on_header_field_complete,
    .on_header_value = http_on_header_value,
    .on_header_value_complete = http_on_header_value_complete,
    .on_headers_complete = http_on_headers_complete,
    .on_body = http_on_body,
    .on_message_complete = http_on_message_complete,
};

static const llhttp_settings_t *settings(void)
{
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
    body_release(h);
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
    h->is_head_paused = false;
    PHX_ASSERT(h->waiter == NULL);
}

void phx_http_free(phx_http_t *h)
{
    if (h == NULL)
        return;
    body_release(h);
    phx_buf_dispose(&h->url);
    phx_buf_dispose(&h->headers);
    phx_buf_dispose(&h->body);
    phx_buf_dispose(&h->stash);
    phx_free(h);
}

void phx_http_set_budget(phx_http_t *h, size_t *held, size_t max)
{
    h->body_held = held;
    h->body_held_max = max;
}

void phx_http_pause_on_head(phx_http_t *h, bool on)
{
    h->pause_on_head = on;
}

void phx_http_continue(phx_http_t *h)
{
    if (!h->is_head_paused)
        return;
    h->is_head_paused = false;
    llhttp_resume(&h->parser);
}

bool phx_http_has_body(const phx_http_t *h)
{
    return (h->parser.flags & F_CHUNKED) || h->parser.content_length > 0;
}

int phx_http_feed(phx_http_t *h, const uint8_t *data, size_t len, size_t *used)
{
    *used = len;
    llhttp_errno_t err = llhttp_execute(&h->parser, (const char *)data, len);
    if (err == HPE_OK)
        return 0;
    if (err == HPE_PAUSED && h->is_head_paused && !h->is_complete) {
        const char *pos = llhttp_get_error_pos(&h->parser);
        if (pos >= (const char *)data && pos <= (const char *)data + len)
            *used = (size_t)((const uint8_t *)pos - data);
        return 100;
    }
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

/* Stashed input beyond this holds reading off until the requests in it
 * have been answered. */
#define STASH_HOLD_BYTES (64 * 1024)

/* The head of the response; `body_len` is announced even when the body is
 * left out (HEAD). */
static int response_head(phx_buf_t *b, int status, const char *extra_headers,
                         const char *content_type, size_t body_len, bool close, int flags)
{
    return phx_buf_printf(
        b, "HTTP/1.1 %d %s\r\n%s%s%s%scontent-length: %zu\r\n%s%s\r\n", status, status_text(status),
        (flags & PHX_HTTP_NO_CACHE) ? "cache-control: no-store\r\n"
                                    : "cache-control: max-age=0, private, must-revalidate\r\n",
        content_type ? "content-type: " : "", content_type ? content_type : "",
        content_type ? "\r\n" : "", body_len, close ? "connection: close\r\n" : "",
        extra_headers ? extra_headers : "");
}

/* Whether the response goes out at all: a connection that has not read
 * what it was already sent (pipelined requests it never reads, polls left
 * unread) is a slow consumer, closed as a WebSocket would be. */
static bool output_ok(phx_conn_t *c)
{
    if (phx_conn_pending(c) <= c->loop->cfg->queue_limit_bytes)
        return true;
    c->loop->stats.slow_closes++;
    PHX_LOG_INFO("conn=%llu peer=%s event=slow_consumer transport=http pending=%zu",
                 (unsigned long long)c->id, c->peer, phx_conn_pending(c));
    phx_conn_close(c, false);
    return false;
}

static bool wants_close(const phx_conn_t *c, int flags)
{
    const phx_http_t *h = c->http;
    return (flags & PHX_HTTP_CLOSE) || h == NULL || !h->keep_alive || c->loop->is_draining;
}

static bool is_head_request(const phx_conn_t *c)
{
    return c->http && phx_http_method(c->http) == HTTP_HEAD;
}

/* After a response was queued: close, or get ready for the next request. */
static void response_done(phx_conn_t *c, int status, bool close, int rv)
{
    if (status >= 400)
        PHX_LOG_DEBUG("conn=%llu peer=%s event=http_response status=%d", (unsigned long long)c->id,
                      c->peer, status);
    if (close || rv != 0) {
        phx_conn_close(c, true);
        return;
    }
    phx_http_t *h = c->http;
    phx_http_reset(h);
    phx_loop_list_touch(c->loop, c, PHX_LIST_HTTP);
    /* A request already received runs later in this loop turn, never
     * inside the code that answered this one. */
    if (h->stash.len > 0)
        phx_loop_defer(c->loop, c);
}

void phx_http_write(phx_conn_t *c, int status, const char *extra_headers, const char *content_type,
                    const void *body, size_t body_len, int flags)
{
    if (c->is_closing || !output_ok(c))
        return;
    bool close = wants_close(c, flags);
    phx_buf_t b = {0};
    int rv = response_head(&b, status, extra_headers, content_type, body_len, close, flags);
    if (rv == 0 && body_len && !is_head_request(c))
        rv = phx_buf_append(&b, body, body_len);
    if (rv == 0)
        rv = phx_conn_send_copy(c, b.data, b.len);
    phx_buf_dispose(&b);
    response_done(c, status, close, rv);
}

void phx_http_write_parts(phx_conn_t *c, int status, const char *extra_headers,
                          const char *content_type, phx_rcbuf_t *const *parts, size_t nparts,
                          int flags)
{
    if (c->is_closing || !output_ok(c))
        return;
    bool close = wants_close(c, flags);
    size_t body_len = 0;
    for (size_t i = 0; i < nparts; i++)
        body_len += parts[i]->len - parts[i]->off;
    phx_buf_t b = {0};
    int rv = response_head(&b, status, extra_headers, content_type, body_len, close, flags);
    if (rv == 0)
        rv = phx_conn_send_copy(c, b.data, b.len);
    phx_buf_dispose(&b);
    for (size_t i = 0; i < nparts && rv == 0 && !is_head_request(c); i++)
        rv = phx_conn_send(c, phx_rcbuf_ref(parts[i]));
    response_done(c, status, close, rv);
}

void phx_http_respond(phx_conn_t *c, int status, const char *extra_headers,
                      const char *content_type, const void *body, size_t body_len)
{
    phx_http_write(c, status, extra_headers, content_type, body, body_len, PHX_HTTP_CLOSE);
}

/* ---- routing ---- */

int phx_router_add(phx_router_t *r, const phx_http_route_t *route)
{
    phx_http_route_t *routes = phx_realloc(r->routes, (r->count + 1) * sizeof(*routes));
    if (routes == NULL)
        return PHX_ERR_NOMEM;
    r->routes = routes;
    char *path = phx_strdup(route->path);
    if (path == NULL)
        return PHX_ERR_NOMEM;
    routes[r->count] = *route;
    routes[r->count].path = path;
    r->count++;
    return 0;
}

int phx_router_add_transport(phx_router_t *r, const char *socket_path, const char *transport,
                             const phx_http_route_t *route)
{
    phx_buf_t path = {0};
    size_t n = strlen(socket_path);
    if (n > 0 && socket_path[n - 1] == '/')
        n--;
    if (phx_buf_printf(&path, "%.*s/%s", (int)n, socket_path, transport) != 0) {
        phx_buf_dispose(&path);
        return PHX_ERR_NOMEM;
    }
    phx_http_route_t rt = *route;
    rt.path = (const char *)path.data;
    rt.match = PHX_MATCH_SLASH;
    int rv = phx_router_add(r, &rt);
    phx_buf_dispose(&path);
    return rv;
}

void phx_router_free(phx_router_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        phx_free((char *)r->routes[i].path);
    phx_free(r->routes);
    r->routes = NULL;
    r->count = 0;
}

static bool route_matches(const phx_http_route_t *rt, const char *path, size_t len)
{
    size_t plen = strlen(rt->path);
    switch (rt->match) {
    case PHX_MATCH_PREFIX:
        return len >= plen && memcmp(path, rt->path, plen) == 0;
    case PHX_MATCH_SLASH:
        /* A trailing slash matches too (Phoenix matches on segments). */
        if (len == plen + 1 && path[plen] == '/')
            len = plen;
        return len == plen && memcmp(path, rt->path, plen) == 0;
    default:
        return len == plen && memcmp(path, rt->path, plen) == 0;
    }
}

const phx_http_route_t *phx_router_find(const phx_router_t *r, const char *path, size_t len)
{
    for (size_t i = 0; r && i < r->count; i++)
        if (route_matches(&r->routes[i], path, len))
            return &r->routes[i];
    return NULL;
}

static const phx_http_route_t *route_of(const phx_conn_t *c)
{
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(c->http, &path, &path_len, &query, &query_len);
    return phx_router_find(c->http->router, path, path_len);
}

/* A socket endpoint while the server drains: 503 (phoenix.js retries
 * later, against another node). */
static bool refused_draining(phx_conn_t *c)
{
    if (!c->loop->is_draining && !c->loop->is_stopping)
        return false;
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(c->http, &path, &path_len, &query, &query_len);
    const char *transport = path_len >= 9 && memcmp(path + path_len - 9, "/longpoll", 9) == 0
                                ? "longpoll"
                                : "websocket";
    phx_stats_refused(&c->loop->stats, PHX_REFUSE_DRAINING, c->peer, transport);
    phx_http_respond(c, 503, "retry-after: 1\r\n", NULL, NULL, 0);
    return true;
}

/* Judges a complete head before any of its body is read: the route says
 * whether it takes a body (a LongPoll POST to a live session, an API call
 * with the right key); any other request announcing one is answered at
 * once (413, or 404 where there is no such route). Returns false after
 * answering (and closing). */
static bool head_ok(phx_conn_t *c)
{
    phx_http_t *h = c->http;
    const phx_http_route_t *rt = route_of(c);
    if (rt && rt->is_socket && refused_draining(c))
        return false;
    int verdict = rt && rt->head ? rt->head(c, rt->user) : PHX_HEAD_NO_BODY;
    if (verdict == PHX_HEAD_ANSWERED)
        return false;
    if (verdict == PHX_HEAD_NO_BODY && phx_http_has_body(h)) {
        phx_http_respond(c, rt ? 413 : 404, NULL, NULL, NULL, 0);
        return false;
    }
    const char *expect = phx_http_header(h, "expect");
    if (verdict == PHX_HEAD_BODY && expect && strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        phx_conn_send_copy(c, cont, sizeof(cont) - 1);
    }
    return true;
}

/* Puts bytes in front of the stash (those after the request just parsed). */
static int stash_front(phx_http_t *h, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    if (h->stash.len == 0)
        return phx_buf_append(&h->stash, data, len);
    phx_buf_t b = {0};
    if (phx_buf_append(&b, data, len) != 0 ||
        phx_buf_append(&b, h->stash.data, h->stash.len) != 0) {
        phx_buf_dispose(&b);
        return PHX_ERR_NOMEM;
    }
    phx_buf_dispose(&h->stash);
    h->stash = b;
    return 0;
}

static void route(phx_conn_t *c, uint8_t *rest, size_t rest_len)
{
    const phx_http_route_t *rt = route_of(c);
    if (rt && rt->is_socket && refused_draining(c))
        return;
    if (rt && rt->upgrade) {
        rt->upgrade(c, rt->user, rest, rest_len);
        return;
    }
    /* Every other route answers over HTTP: the bytes after the request
     * are the next requests, handled once this one is answered. */
    if (stash_front(c->http, rest, rest_len) != 0) {
        phx_conn_close(c, false);
        return;
    }
    if (rt == NULL || rt->handle == NULL) {
        phx_http_write(c, 404, NULL, NULL, NULL, 0, 0);
        return;
    }
    rt->handle(c, rt->user);
}

/* ---- waiting ---- */

void phx_http_wait(phx_conn_t *c, const phx_http_waiter_t *waiter, void *arg)
{
    phx_http_t *h = c->http;
    PHX_ASSERT(h->waiter == NULL);
    h->waiter = waiter;
    h->wait_arg = arg;
    h->is_waiting = true;
    phx_loop_list_touch(c->loop, c, PHX_LIST_POLL);
}

int phx_http_park(phx_conn_t *c, const phx_http_waiter_t *waiter, void *arg, const uint8_t *rest,
                  size_t rest_len)
{
    if (stash_front(c->http, rest, rest_len) != 0)
        return PHX_ERR_NOMEM;
    phx_http_wait(c, waiter, arg);
    return 0;
}

uint8_t *phx_http_unpark(phx_conn_t *c, size_t *len)
{
    phx_http_unwait(c);
    c->http->is_waiting = false;
    *len = 0;
    return c->http->stash.len ? phx_buf_detach(&c->http->stash, len) : NULL;
}

void phx_http_unwait(phx_conn_t *c)
{
    if (c->http == NULL)
        return;
    c->http->waiter = NULL;
    c->http->wait_arg = NULL;
}

void *phx_http_waiting_for(const phx_conn_t *c)
{
    return c->http && c->http->waiter ? c->http->wait_arg : NULL;
}

/* ---- connection hooks ---- */

/* Parses `data`; judges the head, then on a complete request routes it with
 * the bytes after it. */
static void handle_bytes(phx_conn_t *c, uint8_t *data, size_t len)
{
    phx_http_t *h = c->http;
    size_t used;
    int status = phx_http_feed(h, data, len, &used);
    if (status == 100) {
        if (!head_ok(c))
            return; /* answered and closing: the rest is dropped */
        phx_http_continue(h);
        data += used;
        len -= used;
        status = phx_http_feed(h, data, len, &used);
    }
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

/* Handles the requests waiting in the stash, one at a time, while the
 * connection is free for them: not waiting on a parked poll, and not
 * congested (answers it has not read wait first; on_drained resumes). */
static void pump(phx_conn_t *c)
{
    while (!c->is_closing && c->http && c->kind == PHX_CONN_HTTP && !c->http->is_waiting &&
           c->http->stash.len > 0 && !phx_conn_is_congested(c)) {
        size_t len;
        uint8_t *bytes = phx_buf_detach(&c->http->stash, &len);
        handle_bytes(c, bytes, len);
        phx_free(bytes);
    }
    if (!c->is_closing && c->http && c->kind == PHX_CONN_HTTP)
        phx_conn_hold_read(c, c->http->stash.len >= STASH_HOLD_BYTES);
}

static void http_on_read(phx_conn_t *c, uint8_t *data, size_t len)
{
    phx_http_t *h = c->http;
    if (h->is_waiting || h->stash.len > 0 || phx_conn_is_congested(c)) {
        /* A request is being answered: keep the bytes for later, bounded
         * (reading is held off well before this). */
        if (h->stash.len + len > h->max_header_bytes + h->max_body_bytes ||
            phx_buf_append(&h->stash, data, len) != 0) {
            phx_http_respond(c, 400, NULL, NULL, NULL, 0);
            return;
        }
        pump(c);
        return;
    }
    handle_bytes(c, data, len);
    pump(c);
}

static void http_on_drained(phx_conn_t *c)
{
    if (c->http && c->kind == PHX_CONN_HTTP && !c->http->is_waiting && c->http->stash.len > 0)
        phx_loop_defer(c->loop, c);
}

static void http_on_close(phx_conn_t *c)
{
    phx_http_t *h = c->http;
    if (h && h->waiter) {
        const phx_http_waiter_t *w = h->waiter;
        void *arg = h->wait_arg;
        phx_http_unwait(c);
        w->on_closed(c, arg);
    }
    phx_http_dispose(c);
}

int phx_http_conn_init(phx_conn_t *c, const phx_router_t *router)
{
    phx_http_t *h = phx_http_new(c->loop->cfg->max_header_bytes,
                                 (uint32_t)c->loop->cfg->max_headers, c->loop->cfg->max_body_bytes);
    if (h == NULL)
        return PHX_ERR_NOMEM;
    phx_http_set_budget(h, &c->loop->body_bytes_held, c->loop->cfg->max_body_bytes_total);
    phx_http_pause_on_head(h, true);
    h->router = router;
    c->http = h;
    c->ops = &http_ops;
    c->kind = PHX_CONN_HTTP;
    phx_loop_list_touch(c->loop, c, PHX_LIST_HTTP);
    return 0;
}

void phx_http_timeout(phx_conn_t *c)
{
    if (c->http && phx_conn_pending(c) > 0) {
        /* Answers still not taken by the kernel after the whole head
         * deadline: the peer reads nothing (the requests after them wait,
         * in the stash or in the kernel). A slow consumer. */
        c->loop->stats.slow_closes++;
        PHX_LOG_INFO("conn=%llu peer=%s event=slow_consumer transport=http pending=%zu",
                     (unsigned long long)c->id, c->peer, phx_conn_pending(c));
        phx_conn_close(c, false);
        return;
    }
    if (c->http && c->http->head_bytes > 0)
        phx_http_respond(c, 408, NULL, NULL, NULL, 0);
    else
        phx_conn_close(c, false);
}

/* The deadline of the connection's list passed: a parked poll's window, or
 * the head deadline. */
static void http_on_timeout(phx_conn_t *c)
{
    phx_http_t *h = c->http;
    if (h && h->waiter) {
        const phx_http_waiter_t *w = h->waiter;
        void *arg = h->wait_arg;
        w->on_timeout(c, arg);
        return;
    }
    phx_http_timeout(c);
}

/* Stop: every connection goes. Drain: parked polls and idle keep-alive
 * connections go at once; a request still being received is left to
 * finish (it gets 503, or /healthz its answer). */
static void http_on_shutdown(phx_conn_t *c, int code, bool drain)
{
    if (drain && c->list == PHX_LIST_HTTP && c->http && c->http->head_bytes > 0)
        return;
    phx_conn_close(c, phx_conn_pending(c) > 0);
}

void phx_http_dispose(phx_conn_t *c)
{
    phx_http_free(c->http);
    c->http = NULL;
}
