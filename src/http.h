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
    llhttp_t parser;
    phx_buf_t url;
    phx_buf_t headers; /* "name\0value\0" pairs, names lower-cased */
    uint32_t nheaders;
    uint32_t value_start; /* offset of the value being read */
    uint8_t hstate;       /* 0 none, 1 reading a name, 2 reading a value */
    uint16_t error_status; /* status chosen by a callback (414, 431) */
    bool is_complete;
    size_t head_bytes;
};

/* Sets up the HTTP state of a freshly accepted connection (the init hook of
 * phx_conn_accept). Returns 0 or PHX_ERR_NOMEM. */
int phx_http_conn_init(phx_conn_t *c);
/* The handshake deadline passed: answer 408 and close. */
void phx_http_timeout(phx_conn_t *c);
/* Frees the HTTP state (after an upgrade, or on close). */
void phx_http_dispose(phx_conn_t *c);

/* The first value of header `name` (lower case), or NULL. Valid until
 * phx_http_dispose. */
const char *phx_http_header(const phx_http_t *h, const char *name);
/* The path and the query (without '?'; "" when none) of the request URL. */
void phx_http_target(const phx_http_t *h, const char **path, size_t *path_len,
                     const char **query, size_t *query_len);
/* True when the comma-separated header value contains `token`
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade. */
bool phx_http_header_has_token(const char *value, const char *token);

/* Queues a complete response and closes the connection once it is written.
 * `extra_headers` is NULL or "name: value\r\n" lines. */
void phx_http_respond(phx_conn_t *c, int status, const char *extra_headers,
                      const char *content_type, const void *body, size_t body_len);

#endif /* PHX_HTTP_H */
