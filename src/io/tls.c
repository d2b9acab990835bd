/* tls.c: OpenSSL with memory BIOs (see tls.h). */
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "phx.h"

struct phx_tls_ctx {
    SSL_CTX *ctx;
    bool is_verifying; /* client: peers' certificates are checked */
};

struct phx_tls {
    SSL *ssl;
    BIO *rbio;           /* ciphertext in (owned by ssl) */
    BIO *wbio;           /* ciphertext out (owned by ssl) */
    phx_buf_t early;     /* plaintext sent before the handshake completed */
    const char *failure; /* why the session failed (a static string), or NULL */
    bool is_ready;
};

static void last_error(char *err, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[160];
    ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, PHX_ERR_LEN, "%s %s: %s", what, file ? file : "", e ? buf : "failed");
}

phx_tls_ctx_t *phx_tls_ctx_new(const char *cert_file, const char *key_file, char *err)
{
    phx_tls_ctx_t *c = phx_calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        return NULL;
    }
    c->ctx = SSL_CTX_new(TLS_server_method());
    if (c->ctx == NULL) {
        last_error(err, "cannot create a TLS context", NULL);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.2: forward-secret AEAD suites only; TLS 1.3 keeps its defaults. */
    SSL_CTX_set_cipher_list(c->ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1");
    SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_file) != 1) {
        last_error(err, "cannot load the TLS certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        last_error(err, "cannot load the TLS key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c->ctx) != 1) {
        last_error(err, "the TLS key does not match the certificate", key_file);
        goto fail;
    }
    return c;
fail:
    /* Leave no error queued for the next OpenSSL call on this thread to
     * mistake for its own (a failed reload happens on the loop's thread). */
    ERR_clear_error();
    phx_tls_ctx_free(c);
    return NULL;
}

/* Loads OpenSSL's default CA file. Its default directory is the fallback
 * only: certificates there are read during handshakes, on the loop. */
static int load_default_cas(SSL_CTX *ctx)
{
    const char *env = getenv(X509_get_default_cert_file_env());
    const char *file = env && *env ? env : X509_get_default_cert_file();
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) == 1)
        return 1;
    ERR_clear_error();
    PHX_LOG_WARN("event=tls_ca_file_missing file=%s fallback=default_paths", file);
    return SSL_CTX_set_default_verify_paths(ctx);
}

phx_tls_ctx_t *phx_tls_client_ctx_new(const char *ca_file, bool verify, char *err)
{
    phx_tls_ctx_t *c = phx_calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        return NULL;
    }
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL) {
        last_error(err, "cannot create a TLS context", NULL);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
    c->is_verifying = verify;
    if (!verify) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
        return c;
    }
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file != NULL && SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
        last_error(err, "cannot load the CA file", ca_file);
        goto fail;
    }
    if (ca_file == NULL && load_default_cas(c->ctx) != 1) {
        last_error(err, "cannot load OpenSSL's default CAs", NULL);
        goto fail;
    }
    return c;
fail:
    ERR_clear_error();
    phx_tls_ctx_free(c);
    return NULL;
}

void phx_tls_ctx_free(phx_tls_ctx_t *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ctx);
    phx_free(c);
}

/* A session with its memory BIOs, in neither role yet. */
static phx_tls_t *session_new(phx_tls_ctx_t *ctx)
{
    phx_tls_t *t = phx_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(ctx->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        phx_free(t);
        return NULL;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    return t;
}

phx_tls_t *phx_tls_new(phx_tls_ctx_t *ctx)
{
    phx_tls_t *t = session_new(ctx);
    if (t != NULL)
        SSL_set_accept_state(t->ssl);
    return t;
}

static bool is_ip_literal(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

phx_tls_t *phx_tls_client_new(phx_tls_ctx_t *ctx, const char *server_name)
{
    phx_tls_t *t = session_new(ctx);
    if (t == NULL)
        return NULL;
    SSL_set_connect_state(t->ssl);
    int ok = 1;
    if (is_ip_literal(server_name)) {
        /* RFC 6066: no SNI for addresses; the certificate names the IP. */
        if (ctx->is_verifying)
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name);
    } else {
        ok = SSL_set_tlsext_host_name(t->ssl, server_name);
        if (ok == 1 && ctx->is_verifying)
            ok = SSL_set1_host(t->ssl, server_name);
    }
    if (ok != 1) {
        ERR_clear_error();
        phx_tls_free(t);
        return NULL;
    }
    return t;
}

void phx_tls_free(phx_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    phx_buf_dispose(&t->early);
    phx_free(t);
}

bool phx_tls_has_input(const phx_tls_t *t)
{
    return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0;
}

bool phx_tls_is_ready(const phx_tls_t *t)
{
    return t->is_ready;
}

const char *phx_tls_failure(const phx_tls_t *t)
{
    return t->failure;
}

static int write_all(phx_tls_t *t, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int n = len > INT32_MAX ? INT32_MAX : (int)len;
        int r = SSL_write(t->ssl, data, n);
        if (r <= 0) {
            ERR_clear_error();
            return PHX_ERR_PROTO;
        }
        data += r;
        len -= (size_t)r;
    }
    return 0;
}

/* A plain HTTP request on the TLS port (OpenSSL recognises GET, POST,
 * HEAD and PUT before any handshake, and sends no alert): answered in plain
 * HTTP, as nginx and Go do, so that curl and `phxd publish` can say what is
 * wrong instead of seeing the connection close without a word. */
static void answer_plain_http(phx_tls_t *t)
{
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\n"
                                 "content-type: text/plain\r\n"
                                 "content-length: 41\r\n"
                                 "connection: close\r\n"
                                 "\r\n"
                                 "this port speaks TLS: use https:// here\r\n";
    BIO_write(t->wbio, answer, (int)sizeof(answer) - 1);
}

int phx_tls_feed(phx_tls_t *t, const uint8_t *data, size_t len, uint8_t *scratch,
                 size_t scratch_cap, bool (*deliver)(void *arg, uint8_t *p, size_t n), void *arg)
{
    if (len > 0 && BIO_write(t->rbio, data, (int)len) != (int)len)
        return PHX_ERR_NOMEM;
    if (!t->is_ready) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            PHX_LOG_DEBUG("event=tls_handshake_failed error=%d", e);
            unsigned long last = ERR_peek_last_error();
            if (ERR_GET_REASON(last) == SSL_R_HTTP_REQUEST)
                answer_plain_http(t);
            t->failure = last ? ERR_reason_error_string(last) : NULL;
            if (t->failure == NULL)
                t->failure =
                    e == SSL_ERROR_SYSCALL ? "unexpected end of the handshake" : "handshake failed";
            ERR_clear_error();
            if (!SSL_is_server(t->ssl)) {
                long v = SSL_get_verify_result(t->ssl);
                if (v != X509_V_OK) {
                    t->failure = X509_verify_cert_error_string(v);
                    PHX_LOG_DEBUG("event=tls_verify_failed reason=\"%s\"", t->failure);
                    return PHX_ERR_AUTH;
                }
            }
            return PHX_ERR_PROTO;
        }
        t->is_ready = true;
        if (t->early.len) {
            int rv = write_all(t, t->early.data, t->early.len);
            phx_buf_dispose(&t->early);
            if (rv)
                return rv;
        }
    }
    for (;;) {
        int r = SSL_read(t->ssl, scratch, (int)scratch_cap);
        if (r > 0) {
            if (!deliver(arg, scratch, (size_t)r))
                return 0;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN)
            return 1;
        unsigned long last = ERR_peek_last_error();
        t->failure = last ? ERR_reason_error_string(last) : NULL;
        if (t->failure == NULL)
            t->failure = "record layer error";
        ERR_clear_error();
        return PHX_ERR_PROTO;
    }
}

int phx_tls_write(phx_tls_t *t, const uint8_t *data, size_t len)
{
    if (!t->is_ready)
        return phx_buf_append(&t->early, data, len);
    return write_all(t, data, len);
}

void phx_tls_shutdown(phx_tls_t *t)
{
    if (t->is_ready) {
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

size_t phx_tls_pending(const phx_tls_t *t)
{
    return BIO_ctrl_pending(t->wbio);
}

phx_rcbuf_t *phx_tls_take(phx_tls_t *t)
{
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n == 0)
        return NULL;
    phx_rcbuf_t *b = phx_rcbuf_new(n);
    if (b == NULL)
        return NULL;
    int r = BIO_read(t->wbio, b->data, (int)n);
    if (r <= 0) {
        phx_rcbuf_unref(b);
        return NULL;
    }
    b->len = (uint32_t)r;
    return b;
}
