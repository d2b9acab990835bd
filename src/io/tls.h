/* tls.h: the optional TLS layer, OpenSSL with memory BIOs under libuv.
 * tcp.c feeds it the ciphertext it reads and gets plaintext back; whatever
 * the layers above send is encrypted at once (so records leave in the order
 * OpenSSL made them) and the ciphertext is written by tcp.c's usual path.
 * http.c and everything above never know it is there. The same sessions
 * serve the client side (http/client.c calling an https:// backend). */
#ifndef PHX_TLS_H
#define PHX_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

typedef struct phx_tls_ctx phx_tls_ctx_t;
typedef struct phx_tls phx_tls_t;

/* Loads a PEM certificate chain and private key (reads the files
 * synchronously: at startup and on a reload). TLS 1.2 and 1.3, no
 * renegotiation, no compression. Returns an owned context or NULL with one
 * line in `err` (PHX_ERR_LEN bytes). */
phx_tls_ctx_t *phx_tls_ctx_new(const char *cert_file, const char *key_file, char *err);
/* Frees the handle. Sessions made from it stay valid: each holds its own
 * reference to the OpenSSL context, which lives until the last is freed
 * (this is what lets a reload swap contexts under open connections). */
void phx_tls_ctx_free(phx_tls_ctx_t *ctx);

/* A context for client sessions. With `verify`, peers must present a
 * certificate chain to a CA of `ca_file` (a PEM bundle) or, when it is NULL,
 * of OpenSSL's default CA file ($SSL_CERT_FILE or the build's default; its
 * default directory, looked up during handshakes, only when that file cannot
 * be loaded). The file is read synchronously: at startup. Without `verify`
 * nothing is loaded and any certificate is accepted (tests). TLS 1.2 and
 * 1.3, no renegotiation, no compression. Returns an owned context (free it
 * with phx_tls_ctx_free) or NULL with one line in `err` (PHX_ERR_LEN). */
phx_tls_ctx_t *phx_tls_client_ctx_new(const char *ca_file, bool verify, char *err);

/* A server-side TLS session for one connection. NULL when out of memory. */
phx_tls_t *phx_tls_new(phx_tls_ctx_t *ctx);
/* A client-side TLS session (ctx from phx_tls_client_ctx_new) to
 * `server_name` (borrowed): a host name is sent as SNI and, when the context
 * verifies, must match the certificate; an IP literal (IPv6 without
 * brackets) is not sent as SNI and, when verifying, must be one of the
 * certificate's IP addresses. The first phx_tls_feed (with no bytes, once
 * connected) makes the ClientHello. NULL when out of memory. */
phx_tls_t *phx_tls_client_new(phx_tls_ctx_t *ctx, const char *server_name);
void phx_tls_free(phx_tls_t *t);

/* Feeds `len` bytes of ciphertext. Every piece of plaintext that becomes
 * available is handed to `deliver` (borrowed during the call, at most
 * `scratch_cap` bytes at a time, read through `scratch`); delivery stops
 * early when `deliver` returns false. Returns 0, 1 when the peer sent
 * close_notify, or PHX_ERR_PROTO on a TLS error (the connection must close;
 * an alert may be pending in the output, or, when the peer spoke plain HTTP
 * to the TLS port, a plain-text 400 saying to use https://). A client
 * session whose peer's certificate fails verification gets PHX_ERR_AUTH. */
int phx_tls_feed(phx_tls_t *t, const uint8_t *data, size_t len, uint8_t *scratch,
                 size_t scratch_cap, bool (*deliver)(void *arg, uint8_t *p, size_t n), void *arg);
/* Encrypts `len` bytes of plaintext (records go to the pending output).
 * Returns 0 or PHX_ERR_PROTO / PHX_ERR_NOMEM. Before the handshake is done,
 * the bytes are kept and encrypted as soon as it is. */
int phx_tls_write(phx_tls_t *t, const uint8_t *data, size_t len);
/* Queues close_notify. */
void phx_tls_shutdown(phx_tls_t *t);
/* Bytes of ciphertext waiting to be written. */
size_t phx_tls_pending(const phx_tls_t *t);
/* Moves the pending ciphertext into a new rcbuf (NULL when none, or out of
 * memory: check phx_tls_pending). */
phx_rcbuf_t *phx_tls_take(phx_tls_t *t);
/* True when bytes received are still inside the session (a record, or
 * plaintext, that no feed has delivered yet). */
bool phx_tls_has_input(const phx_tls_t *t);
/* True once the handshake has completed. */
bool phx_tls_is_ready(const phx_tls_t *t);
/* After phx_tls_feed failed: why, in OpenSSL's words (for PHX_ERR_AUTH the
 * certificate check's: "self-signed certificate", "hostname mismatch", ...).
 * A static string, or NULL while nothing failed. */
const char *phx_tls_failure(const phx_tls_t *t);

#endif /* PHX_TLS_H */
