/* http.h: the HTTP/1.1 request head of a new connection, parsed by llhttp
 * with caps on URL and header bytes and header count, then routed:
 * <socket_path>/websocket to ws.c; anything else gets a plain response. */
#ifndef PHX_HTTP_H
#define PHX_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "mem.h"
#include "tcp.h"

struct phx_http {
    llhttp_t parser; /* parser.data == this */
    size_t max_header_bytes;
    uint32_t max_headers;
    phx_buf_t url;
    phx_buf_t headers; /* "name\0value\0" pairs, names lower-cased */
    uint32_t nheaders;
    uint32_t value_start;  /* offset of the value being read */
    uint8_t hstate;        /* 0 none, 1 reading a name, 2 reading a value */
    uint16_t error_status; /* status chosen by a callback (413, 414, 431) */
    bool is_complete;
    bool is_waiting; /* a response is pending (phx_http_wait) */
    bool keep_alive; /* the request allows another one on the connection */
    size_t head_bytes;
    size_t max_body_bytes;
    phx_buf_t body;
    phx_buf_t stash;                      /* bytes received after the current request */
    const struct phx_http_waiter *waiter; /* who answers the pending response */
    void *wait_arg;
    const struct phx_router *router; /* the listener's routes */
    bool pause_on_head;              /* stop after the head so the route can judge the body */
    bool is_head_paused;             /* stopped there; phx_http_continue resumes */
    size_t *body_held;               /* body bytes held by every parser sharing the budget */
    size_t body_held_max;
};

/* ---- the request-head codec (pure: no socket, no clock) ---- */

/* Returns an owned parser (phx_http_free) with the given caps, or NULL. */
phx_http_t *phx_http_new(size_t max_header_bytes, uint32_t max_headers, size_t max_body_bytes);
/* Forgets the request (keeps the caps) so the next one can be parsed. */
void phx_http_reset(phx_http_t *h);
void phx_http_free(phx_http_t *h);
/* Shares a budget of body bytes among parsers: `*held` counts the bytes
 * every one of them holds, and a body that would take it past `max` is
 * refused with 503. */
void phx_http_set_budget(phx_http_t *h, size_t *held, size_t max);
/* With `on`, phx_http_feed stops after each request head (answer 100) so
 * the caller can decide on the body before any of it is stored. */
void phx_http_pause_on_head(phx_http_t *h, bool on);
/* Resumes a parser stopped after the head; feed the bytes after *used. */
void phx_http_continue(phx_http_t *h);
/* Whether the request announces a body (a content-length above 0 or a
 * chunked transfer coding); valid from the head on. */
bool phx_http_has_body(const phx_http_t *h);
/* Feeds bytes of the request. Returns:
 *   0            the request is not complete yet (all bytes consumed);
 *   100          (pause_on_head) the head is complete and nothing of the
 *                body has been read: *used is the bytes of `data` up to
 *                that point; phx_http_continue, then feed the rest;
 *   > 100        the request is complete: the HTTP status to answer when it
 *                is an error (400, 413, 414, 431, 503), or 200 when it is
 *                fine; *used is set to the bytes of `data` that belonged to
 *                it;
 * The bytes after *used (a pipelined WebSocket frame) belong to the next
 * layer. Borrows `data`. */
int phx_http_feed(phx_http_t *h, const uint8_t *data, size_t len, size_t *used);
/* The request method (llhttp_method_t) and version. */
int phx_http_method(const phx_http_t *h);
bool phx_http_is_11(const phx_http_t *h);

/* ---- the connection glue ---- */

/* ---- routes: registered by the layers that own them ---- */

enum {
    PHX_MATCH_EXACT = 0, /* the path itself */
    PHX_MATCH_SLASH,     /* the path, with or without a trailing '/' */
    PHX_MATCH_PREFIX,    /* any path that starts with it */
};

/* What a route says of a request's body once the head is complete. */
enum {
    PHX_HEAD_ANSWERED = -1, /* answered (and closing): nothing more is read */
    PHX_HEAD_NO_BODY = 0,   /* takes no body: one announced is answered 413 */
    PHX_HEAD_BODY = 1,      /* reads the body (bounded by max_body_bytes) */
};

typedef struct phx_http_route {
    const char *path; /* copied by phx_router_add */
    int match;        /* PHX_MATCH_* */
    /* A socket endpoint: refused with 503 while the server drains. */
    bool is_socket;
    /* Optional: judges the head before any of the body is read
     * (PHX_HEAD_*). Without it the route takes no body. */
    int (*head)(phx_conn_t *c, void *user);
    /* The complete request, answered with phx_http_write (now or later:
     * the bytes after it wait for that answer). */
    void (*handle)(phx_conn_t *c, void *user);
    /* Instead of handle: the request hands the connection to another
     * protocol (a WebSocket), with the bytes already read after it. */
    void (*upgrade)(phx_conn_t *c, void *user, uint8_t *rest, size_t rest_len);
    void *user;
} phx_http_route_t;

/* The routes of one listener, tried in the order they were added. */
typedef struct phx_router {
    phx_http_route_t *routes;
    size_t count;
} phx_router_t;

/* Adds a route (its path is copied). Returns 0 or PHX_ERR_NOMEM. */
int phx_router_add(phx_router_t *r, const phx_http_route_t *route);
/* Adds `route` at the transport path `<socket_path>/<transport>` (a
 * trailing '/' of socket_path is dropped), matched with or without a
 * trailing slash. Returns 0 or PHX_ERR_NOMEM. */
int phx_router_add_transport(phx_router_t *r, const char *socket_path, const char *transport,
                             const phx_http_route_t *route);
void phx_router_free(phx_router_t *r);
/* The first route matching `path`, or NULL. */
const phx_http_route_t *phx_router_find(const phx_router_t *r, const char *path, size_t len);

/* Sets up the HTTP state of a freshly accepted connection whose requests
 * go to `router`. Returns 0 or PHX_ERR_NOMEM. */
int phx_http_conn_init(phx_conn_t *c, const phx_router_t *router);
/* The head deadline passed: answer 408 and close. */
void phx_http_timeout(phx_conn_t *c);

/* ---- a response that comes later (a parked LongPoll GET) ---- */

typedef struct phx_http_waiter {
    /* The wait (PHX_LIST_POLL's window) passed: answer now. */
    void (*on_timeout)(phx_conn_t *c, void *arg);
    /* The connection is closing: forget it. */
    void (*on_closed)(phx_conn_t *c, void *arg);
} phx_http_waiter_t;

/* The response to the current request comes later, from `waiter`: input
 * waits, and the connection sits in PHX_LIST_POLL. */
void phx_http_wait(phx_conn_t *c, const phx_http_waiter_t *waiter, void *arg);
/* The wait ends (the response is about to be written). */
void phx_http_unwait(phx_conn_t *c);
/* phx_http_wait for a request that is not answered over HTTP yet (a
 * WebSocket upgrade whose connect step answers later): the bytes already
 * read after it are kept for the next layer. Returns 0, or PHX_ERR_NOMEM
 * (nothing is waiting). */
int phx_http_park(phx_conn_t *c, const phx_http_waiter_t *waiter, void *arg, const uint8_t *rest,
                  size_t rest_len);
/* Ends a parked wait and hands back the bytes kept after the request
 * (owned by the caller, NULL when none). The request stays readable. */
uint8_t *phx_http_unpark(phx_conn_t *c, size_t *len);
/* The `arg` of the wait of `c`, or NULL. */
void *phx_http_waiting_for(const phx_conn_t *c);
/* Frees the HTTP state (after an upgrade, or on close). */
void phx_http_dispose(phx_conn_t *c);

/* The first value of header `name` (lower case), or NULL. Valid until
 * phx_http_dispose. */
const char *phx_http_header(const phx_http_t *h, const char *name);
/* Appends every value of header `name`, joined with ", ". Returns 0 or
 * PHX_ERR_NOMEM. */
int phx_http_header_join(const phx_http_t *h, const char *name, phx_buf_t *out);
/* How many times header `name` appears. */
unsigned phx_http_header_count(const phx_http_t *h, const char *name);
/* The path and the query (without '?'; "" when none) of the request URL. */
void phx_http_target(const phx_http_t *h, const char **path, size_t *path_len, const char **query,
                     size_t *query_len);
/* Steps through a comma-separated header value: returns where to continue
 * (NULL after the last item) and sets the next item, trimmed. */
const char *phx_http_list_next(const char *p, const char **item, size_t *len);
/* True when the comma-separated header value contains `token`
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade. */
bool phx_http_header_has_token(const char *value, const char *token);

/* Flags of phx_http_write. */
enum {
    PHX_HTTP_CLOSE = 1,    /* close the connection once the response is written */
    PHX_HTTP_NO_CACHE = 2, /* "cache-control: no-store" instead of Plug's default */
};

/* Queues a complete response. `extra_headers` is NULL or "name: value\r\n"
 * lines. A HEAD request gets the headers alone (with the content-length of
 * the body). Unless PHX_HTTP_CLOSE is given or the request does not allow
 * it, the connection stays open for the next request. A connection whose
 * unread output is already past queue_limit_bytes is closed instead (a
 * slow consumer).
 * Never handles another request before returning: a pipelined request that
 * was waiting for this answer runs in a deferred step of the loop, so the
 * caller may hold pointers to anything that request could free. */
void phx_http_write(phx_conn_t *c, int status, const char *extra_headers, const char *content_type,
                    const void *body, size_t body_len, int flags);
/* The same with a body made of shared buffers (each from its `off` to its
 * `len`), queued by reference without a copy. The buffers are borrowed. */
void phx_http_write_parts(phx_conn_t *c, int status, const char *extra_headers,
                          const char *content_type, phx_rcbuf_t *const *parts, size_t nparts,
                          int flags);
/* phx_http_write with PHX_HTTP_CLOSE. */
void phx_http_respond(phx_conn_t *c, int status, const char *extra_headers,
                      const char *content_type, const void *body, size_t body_len);

#endif /* PHX_HTTP_H */
