/* client.h: a non-blocking HTTP/1.1 client on the loop, for calling an
 * application's backend (POST JSON, JSON back). A pool per origin keeps
 * keep-alive connections (plain TCP or TLS through tls.c), queues requests
 * beyond them and bounds every answer, every wait and the queue. Answers are
 * parsed by phx_httpc_parser_t, which the fuzz target drives on its own.
 * The process must ignore SIGPIPE (phxd's main does): a server may close a
 * connection while a request is being written. */
#ifndef PHX_CLIENT_H
#define PHX_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "mem.h"

typedef struct phx_httpc phx_httpc_t;         /* a pool for one origin (scheme, host, port) */
typedef struct phx_httpc_req phx_httpc_req_t; /* one request in flight or queued */

typedef struct phx_httpc_opts {
    int max_conns;             /* keep-alive connections in the pool, also the max in flight
                                  (default 256) */
    int max_queue;             /* requests waiting for a free connection; beyond: fail at once,
                                  PHX_ERR_LIMIT (default 4096) */
    int timeout_ms;            /* per request, from the call to the last byte of the answer
                                  (default 5000) */
    int connect_timeout_ms;    /* one connection attempt (default 0: timeout_ms) */
    size_t max_response_bytes; /* head + body of one answer as sent (with any 1xx answers and
                                  chunk framing); beyond: PHX_ERR_LIMIT (default 1 MiB) */
    size_t max_header_bytes;   /* status line and header fields of one answer; beyond:
                                  PHX_ERR_LIMIT (default 32 KiB) */
    int idle_ms;               /* a keep-alive connection unused this long is closed
                                  (default 30000) */
    const char *ca_file;       /* https: CA bundle PEM (NULL: OpenSSL's default CA file) */
    bool tls_insecure;         /* https: do not verify the certificate (tests) */
    /* A request whose reused keep-alive connection closes before any byte
     * of the answer is sent once more on a new connection (the server may
     * have closed the idle connection as the request went out). Only for
     * requests that may run twice: the server may also have run it and
     * died before answering (default true). */
    bool retry_reused;
} phx_httpc_opts_t;

/* Fills the defaults. */
void phx_httpc_opts_init(phx_httpc_opts_t *o);

/* Makes a pool on `loop` for `url` ("http://host:port/path?q" or
 * "https://..."; host a name, an IPv4 address or an [IPv6] address; no
 * user info; the port defaults to 80 or 443). The path and query of the URL
 * (default "/") are the request target of every call. `o` (copied; NULL for
 * the defaults) and `url` are borrowed. For https, the CA file is read here,
 * synchronously: make pools at startup. A host name is resolved with
 * uv_getaddrinfo when a connection is first needed; the addresses are kept
 * and tried in order, and resolved again after every one failed. Returns 0
 * with *out (owned: release it with phx_httpc_close), or PHX_ERR_INVALID
 * (URL, option or TLS set-up) / PHX_ERR_NOMEM with one line in `err`
 * (PHX_ERR_LEN bytes). */
int phx_httpc_new(phx_httpc_t **out, uv_loop_t *loop, const char *url, const phx_httpc_opts_t *o,
                  char *err);

/* Called exactly once per request unless cancelled: err 0 with the HTTP
 * status (200-999) and the body (borrowed during the call; never NULL, may
 * be empty), or err < 0 with status 0: a libuv code (UV_ECONNREFUSED,
 * UV_ETIMEDOUT when the request's time ran out, a UV_EAI_* resolution
 * error...), PHX_ERR_PROTO (an unparsable answer, or the connection closed
 * before the answer was complete), PHX_ERR_AUTH (https: the certificate
 * failed verification), PHX_ERR_LIMIT (the answer is too large, or the queue
 * was full), PHX_ERR_NOMEM, or PHX_ERR_CLOSED (the pool was closed). Runs
 * from the loop (or from phx_httpc_close), never from inside
 * phx_httpc_post or phx_httpc_cancel. The callback may post, cancel any
 * request and close the pool. */
typedef void (*phx_httpc_cb)(void *arg, int err, int status, const uint8_t *body, size_t len);

/* POSTs `body` (copied, `len` bytes; may be NULL when len is 0) with
 * `headers` (borrowed: extra header lines, each ending "\r\n", or NULL; e.g.
 * "content-type: application/json\r\nx-phxd-signature: sha256=...\r\n").
 * The pool adds the request line, host and content-length. The request's
 * time starts now. Returns 0 with *req_out (if not NULL; valid until the
 * callback starts or the request is cancelled), and `cb` will be called
 * once (a full queue too is reported through it, on a later loop turn); or
 * returns PHX_ERR_INVALID (a header line not ending in "\r\n", a bare CR or
 * LF, an empty line), PHX_ERR_LIMIT (a request over 4 GiB), PHX_ERR_NOMEM
 * or PHX_ERR_CLOSED (after phx_httpc_close), and `cb` is never called. */
int phx_httpc_post(phx_httpc_t *h, const char *headers, const uint8_t *body, size_t len,
                   phx_httpc_cb cb, void *arg, phx_httpc_req_t **req_out);

/* The callback of `req` will not be called; its memory is released now
 * (any write still using its bytes holds its own reference). A request on a
 * connection closes that connection (its answer will not be read). A no-op
 * on a request whose callback is running; never call it after that. */
void phx_httpc_cancel(phx_httpc_req_t *req);

/* Requests on a connection (connecting, writing or reading the answer). */
size_t phx_httpc_inflight(const phx_httpc_t *h);
/* Requests waiting for a connection (or for the name to resolve). */
size_t phx_httpc_queued(const phx_httpc_t *h);
/* Open connections: connecting, busy or idle (not those closing). */
size_t phx_httpc_conns(const phx_httpc_t *h);

/* Closes the pool: every request not yet answered (queued, in flight, or
 * failed and waiting for its callback) gets PHX_ERR_CLOSED, its callback run
 * from inside this call; then every connection and handle is closed, with
 * no close_notify or other goodbye. `done` (may be NULL) runs from the loop
 * once every libuv handle and request of the pool is finished, after which
 * the pool's memory is released. Idempotent (a second call does nothing);
 * may be called from a callback. phx_httpc_close(NULL, ...) is a no-op. */
void phx_httpc_close(phx_httpc_t *h, void (*done)(void *arg), void *arg);

/* ---- the answer parser (the client's and the fuzz target's) ---- */

/* One answer at a time over llhttp in response mode: content-length,
 * chunked and read-until-close bodies, 1xx interim answers skipped (101 is
 * refused: nothing here asks to switch protocols). Embedded in its owner;
 * the body is stored in `body`, which the owner may take (it then zeroes
 * the buffer). */
typedef struct phx_httpc_parser {
    llhttp_t _p;
    size_t max_bytes;        /* wire bytes of one answer */
    size_t max_header_bytes; /* status and header bytes of one answer */
    size_t bytes;            /* wire bytes of this answer so far */
    size_t head_bytes;       /* status and header bytes so far */
    int error;               /* the PHX_ERR_* that stopped the parser */
    int status;              /* the final answer's status, once complete */
    bool is_complete;
    bool keep_alive; /* once complete: the connection may carry another request */
    phx_buf_t body;
} phx_httpc_parser_t;

void phx_httpc_parser_init(phx_httpc_parser_t *ps, size_t max_bytes, size_t max_header_bytes);
/* Ready for the next answer (keeps the body's storage when small). */
void phx_httpc_parser_reset(phx_httpc_parser_t *ps);
void phx_httpc_parser_dispose(phx_httpc_parser_t *ps);
/* Feeds the bytes the server sent (borrowed). Returns 0 (more is needed), 1
 * (the answer is complete: status, keep_alive and body are set and *used
 * says how many of the bytes belonged to it; any more were sent unasked),
 * or PHX_ERR_PROTO (malformed), PHX_ERR_LIMIT (over a bound) or
 * PHX_ERR_NOMEM, after which the parser keeps returning that error until
 * reset. *used is `len` unless the answer completed. */
int phx_httpc_parser_feed(phx_httpc_parser_t *ps, const uint8_t *data, size_t len, size_t *used);
/* The server closed the connection: returns 1 when that completes the
 * answer (a body read until close; keep_alive is false), else the error
 * (PHX_ERR_PROTO for an answer cut short or never begun). */
int phx_httpc_parser_finish(phx_httpc_parser_t *ps);

/* Parses `len` bytes as everything a server sent before closing, with
 * `max` as both bounds. Returns 0 with the final status in *status and a
 * copy of the body appended to `body` (owned by the caller), or the error
 * of phx_httpc_parser_feed / _finish. */
int phx_httpc_parse_response(const uint8_t *data, size_t len, size_t max, int *status,
                             phx_buf_t *body);

#endif /* PHX_CLIENT_H */
