/* redis_tls.h: the in-process TLS bridge behind rediss:// (hiredis 0.14
 * has no TLS). redis.c's hiredis contexts connect to a private unix socket
 * that this bridge listens on (in a directory made with mkdtemp, mode
 * 0700, for the backend's whole life); for each connection accepted there
 * the bridge opens a TCP connection to Redis and speaks TLS over it through
 * tls.c's memory BIOs: plaintext from hiredis is encrypted to Redis, and
 * what Redis sends is decrypted to hiredis.
 *
 *   hiredis --unix socket--> bridge --TCP + TLS (tls.c)--> Redis
 *
 * Either side closing, a failed connect, a TLS error (an untrusted or
 * wrong-name certificate among them) or a handshake that takes longer than
 * PHX_REDIS_TLS_HANDSHAKE_MS closes both, which hiredis sees as a
 * disconnect: redis.c's reconnect with backoff applies unchanged. A TLS
 * failure is logged once per streak (until a handshake succeeds).
 *
 * Memory is bounded: each direction's write queue is capped at
 * PHX_REDIS_TLS_QUEUE_BYTES; above it the other side is not read until the
 * queue drains to half (hiredis's own output is bounded by redis.c). The
 * bridge reads the loop's scratch buffers and holds no buffer of its own
 * while idle. */
#ifndef PHX_REDIS_TLS_H
#define PHX_REDIS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct phx_redis_tls phx_redis_tls_t;

/* Bytes one direction may have queued (written, not yet taken by the
 * socket) before the other direction stops being read. One read (64 KiB
 * of ciphertext, or its plaintext) may go past it. */
#define PHX_REDIS_TLS_QUEUE_BYTES (256u * 1024)
/* A connection to Redis not through its TLS handshake by then is closed. */
#define PHX_REDIS_TLS_HANDSHAKE_MS 10000

/* Counts, for tests and logs. */
typedef struct phx_redis_tls_stats {
    uint64_t accepted;   /* hiredis connections bridged */
    uint64_t handshakes; /* TLS sessions established with Redis */
    uint64_t failures;   /* connections to Redis that failed (connect, TLS, timeout) */
    size_t open;         /* bridged connections open now */
    size_t peak_queued;  /* the most bytes one direction ever had queued */
} phx_redis_tls_stats_t;

/* Creates a bridge on `loop` (its scratch buffers are borrowed for reads)
 * to a Redis known as `server_name` (copied: the URL's host; a name is sent
 * as SNI and, with `verify`, must match the certificate, an IP address must
 * be one of its addresses). With `verify` the certificate must chain to a
 * CA of `ca_file` (PEM; NULL: OpenSSL's default CA file), read here,
 * synchronously; without it any certificate is accepted (tests only).
 * Nothing is opened yet. Returns 0, or PHX_ERR_INVALID (the CA file) or
 * PHX_ERR_NOMEM with one line in `err` (PHX_ERR_LEN bytes). */
int phx_redis_tls_new(phx_redis_tls_t **out, phx_loop_t *loop, const char *server_name,
                      const char *ca_file, bool verify, char *err);

/* Makes the private directory and listens on the unix socket in it.
 * Returns 0, or an error with one line in `err`; after a failure too,
 * phx_redis_tls_close must be called (it closes what was opened). */
int phx_redis_tls_start(phx_redis_tls_t *b, char *err);

/* The unix socket's path for redisAsyncConnectUnix (valid until the
 * bridge is freed; empty before phx_redis_tls_start). */
const char *phx_redis_tls_path(const phx_redis_tls_t *b);

/* Where connections accepted from now on go: `ip` (an IP literal,
 * borrowed) and `port`. Returns 0 or PHX_ERR_INVALID. */
int phx_redis_tls_set_target(phx_redis_tls_t *b, const char *ip, int port);

/* Why the last bridged connection failed on Redis's side ("connect to
 * 127.0.0.1:6380: connection refused", "TLS: certificate verification
 * failed: self-signed certificate", ...), or NULL when none failed since
 * the last successful handshake. Valid until the next bridge call. */
const char *phx_redis_tls_last_error(const phx_redis_tls_t *b);

const phx_redis_tls_stats_t *phx_redis_tls_stats(const phx_redis_tls_t *b);

/* Stops listening, closes every bridged connection and removes the socket
 * and its directory. Returns true when `done(arg)` will be called once
 * every handle is closed; false when nothing was open (done is not
 * called). Idempotent: a second call returns false. */
bool phx_redis_tls_close(phx_redis_tls_t *b, void (*done)(void *arg), void *arg);

/* Frees a closed (or never started) bridge; removes the directory if a
 * failed start left it. NULL is a no-op. */
void phx_redis_tls_free(phx_redis_tls_t *b);

#endif /* PHX_REDIS_TLS_H */
