/* publish_cli.c: `phxd publish` (see publish_cli.h). Builds the JSON body
 * with json.c's escaping, sends one request with `Connection: close` and
 * reads the answer (bounded) until its Content-Length or the end of the
 * stream, over plain TCP or (https://) a blocking OpenSSL client that
 * verifies the server's certificate. Owns nothing past return. */
#include "publish_cli.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "json.h"
#include "mem.h"
#include "phx.h"
#include "utf8.h"

#define DEFAULT_URL "http://127.0.0.1:4000"
#define DEFAULT_TIMEOUT_MS 10000
#define MAX_ANSWER_BYTES (1024 * 1024)

static const char usage_text[] =
    "usage: phxd publish [--url URL] [--api-key KEY] [--timeout-ms N] [TLS options]\n"
    "                    TOPIC EVENT [JSON_OBJECT]\n"
    "       phxd publish [--url URL] [--api-key KEY] [--timeout-ms N] [TLS options]\n"
    "                    --disconnect SOCKET_ID\n"
    "Broadcasts EVENT with the payload (default {}) to every subscriber of TOPIC through\n"
    "POST URL/api/broadcast, or closes every socket whose id is SOCKET_ID\n"
    "(users_socket:42) through POST URL/api/disconnect, and prints the answer\n"
    "({\"recipients\":N} or {\"sockets\":N}).\n"
    "  --url URL         phxd's address, http:// or https:// (default $PHXD_URL, then\n"
    "                    " DEFAULT_URL ")\n"
    "  --api-key KEY     the server's --api-key (default $PHXD_API_KEY, which keeps the key\n"
    "                    out of the process list)\n"
    "  --timeout-ms N    give up after N ms without progress (default 10000)\n"
    "  --cacert FILE     https://: trust the certificates in FILE (PEM) instead of the\n"
    "                    system's store, e.g. a self-signed server's own certificate\n"
    "  --insecure        https://: do not verify the server's certificate (tests only)\n"
    "Exit status: 0 on a 2xx answer, 1 otherwise (the answer on stderr), 2 on usage errors.\n";

static const char presence_usage_text[] =
    "usage: phxd presence [--url URL] [--api-key KEY] [--timeout-ms N] [TLS options] TOPIC\n"
    "Prints who is present on TOPIC (GET URL/api/presence?topic=TOPIC):\n"
    "{\"topic\":TOPIC,\"presences\":{KEY:{\"metas\":[...]},...}}, the shape of presence_state.\n"
    "Options as for phxd publish (see phxd publish --help).\n"
    "Exit status: 0 on a 2xx answer, 1 otherwise (the answer on stderr), 2 on usage errors.\n";

/* "publish" or "presence": the subcommand running (messages name it). */
static const char *cmd = "publish";

typedef struct publish_opts {
    const char *url;
    const char *api_key;
    long timeout_ms;
    const char *disconnect;
    const char *cacert;
    bool insecure;
    const char *pos[3];
    int npos;
} publish_opts_t;

typedef struct target {
    char host[256]; /* without IPv6 brackets */
    char port[8];
    char host_header[280];
    char prefix[512]; /* path before /api/..., without a trailing '/' */
    bool tls;         /* https:// */
} target_t;

/* One connection: a socket, and for https:// its TLS session. */
typedef struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} conn_t;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "phxd %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see phxd %s --help)\n", cmd);
    return 2;
}

__attribute__((format(printf, 1, 2))) static int failure(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "phxd %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* ---- arguments ---- */

#define HELP_REQUESTED (-1)

static int parse_args(publish_opts_t *o, int argc, char **argv)
{
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (o->npos == 3)
                return usage_error("unexpected argument \"%s\"", arg);
            o->pos[o->npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return HELP_REQUESTED;
        if (strcmp(arg, "--insecure") == 0) {
            o->insecure = true;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char **slot = NULL;
        const char *timeout = NULL;
        if (nlen == 5 && strncmp(arg, "--url", 5) == 0)
            slot = &o->url;
        else if (nlen == 9 && strncmp(arg, "--api-key", 9) == 0)
            slot = &o->api_key;
        else if (nlen == 12 && strncmp(arg, "--disconnect", 12) == 0)
            slot = &o->disconnect;
        else if (nlen == 12 && strncmp(arg, "--timeout-ms", 12) == 0)
            slot = &timeout;
        else if (nlen == 8 && strncmp(arg, "--cacert", 8) == 0)
            slot = &o->cacert;
        else
            return usage_error("unknown option %.*s", (int)nlen, arg);
        if (eq)
            *slot = eq + 1;
        else if (i + 1 < argc)
            *slot = argv[++i];
        else
            return usage_error("option %s needs a value", arg);
        if (slot == &timeout) {
            char *end;
            errno = 0;
            o->timeout_ms = strtol(timeout, &end, 10);
            if (errno || end == timeout || *end || o->timeout_ms < 1 || o->timeout_ms > 3600000)
                return usage_error("--timeout-ms must be from 1 to 3600000, got \"%s\"", timeout);
        }
    }
    return 0;
}

/* Splits http[s]://host[:port][/prefix]. Returns 0 or a usage error
 * status. */
static int parse_url(const char *url, target_t *t)
{
    t->tls = strncasecmp(url, "https://", 8) == 0;
    if (!t->tls && strncasecmp(url, "http://", 7) != 0)
        return usage_error("the URL must start with http:// or https://, got \"%s\"", url);
    const char *p = url + (t->tls ? 8 : 7), *host, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL)
            return usage_error("unclosed '[' in the URL \"%s\"", url);
        p = host_end + 1;
    } else {
        host = p;
        host_end = host + strcspn(host, ":/?#");
        p = host_end;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(t->host))
        return usage_error("no host in the URL \"%s\"", url);
    memcpy(t->host, host, hlen);
    t->host[hlen] = '\0';
    long port = t->tls ? 443 : 80;
    if (*p == ':') {
        char *end;
        errno = 0;
        port = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/'))
            return usage_error("bad port in the URL \"%s\"", url);
        p = end;
    }
    if (*p && *p != '/')
        return usage_error("unexpected \"%s\" in the URL", p);
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(t->prefix) || strcspn(p, "?# \t\r\n") < plen)
        return usage_error("unsupported path in the URL \"%s\"", url);
    memcpy(t->prefix, p, plen);
    t->prefix[plen] = '\0';
    snprintf(t->port, sizeof(t->port), "%ld", port);
    bool v6 = strchr(t->host, ':') != NULL;
    snprintf(t->host_header, sizeof(t->host_header), "%s%s%s:%ld", v6 ? "[" : "", t->host,
             v6 ? "]" : "", port);
    return 0;
}

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* ---- the request ---- */

static int connect_to(const target_t *t, long timeout_ms, int *fd_out)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(t->host, t->port, &hints, &res);
    if (g != 0)
        return failure("cannot resolve %s: %s", t->host, gai_strerror(g));
    int err = 0, fd = -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* Linux applies SO_SNDTIMEO to connect() as well. */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return failure("cannot connect to %s: %s", t->host_header,
                       err == EINPROGRESS || err == EAGAIN ? "timed out" : strerror(err));
    *fd_out = fd;
    return 0;
}

/* ---- TLS ---- */

static void conn_close(conn_t *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    *c = (conn_t){.fd = -1};
}

/* The reason of the oldest queued OpenSSL error, for one line of text. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "the connection was closed during the handshake";
}

/* TLS records begin with their content type (0x15 alert, 0x16 handshake)
 * and version 3.x: what a TLS server sends back to a plain HTTP request. */
static bool looks_like_tls(const uint8_t *p, size_t n)
{
    return n >= 3 && (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03 && p[2] <= 0x04;
}

static bool contains(const char *p, size_t n, const char *want)
{
    size_t w = strlen(want);
    for (size_t i = 0; i + w <= n; i++)
        if (memcmp(p + i, want, w) == 0)
            return true;
    return false;
}

static int speaks_tls(const target_t *t)
{
    return failure("the server at %s speaks TLS: use https://%s%s", t->host_header, t->host_header,
                   t->prefix);
}

/* Runs the TLS handshake on c->fd: the server's certificate is checked
 * against the system's store (or --cacert) and against the URL's host (an
 * IP address or a DNS name, which is also sent as SNI), unless --insecure. */
static int tls_start(conn_t *c, const target_t *t, const publish_opts_t *o)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL)
        return failure("cannot create a TLS context: %s", ssl_reason());
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    if (o->insecure) {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        if (o->cacert ? SSL_CTX_load_verify_locations(c->ctx, o->cacert, NULL) != 1
                      : SSL_CTX_set_default_verify_paths(c->ctx) != 1)
            return failure("cannot load the trusted certificates%s%s: %s",
                           o->cacert ? " from " : "", o->cacert ? o->cacert : "", ssl_reason());
    }
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return failure("cannot create a TLS session: %s", ssl_reason());
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, t->host, ip) == 1 || inet_pton(AF_INET6, t->host, ip) == 1;
    if (!is_ip && SSL_set_tlsext_host_name(c->ssl, t->host) != 1)
        return failure("cannot set the server name %s: %s", t->host, ssl_reason());
    if (!o->insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
        if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, t->host)
                   : X509_VERIFY_PARAM_set1_host(param, t->host, 0)) != 1)
            return failure("cannot check the server's name %s: %s", t->host, ssl_reason());
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(c->ssl);
    if (r == 1)
        return 0;
    long verify = SSL_get_verify_result(c->ssl);
    if (!o->insecure && verify != X509_V_OK)
        return failure("the certificate of %s cannot be verified: %s (give the server's CA "
                       "with --cacert FILE, or --insecure for a test server)",
                       t->host_header, X509_verify_cert_error_string(verify));
    int e = SSL_get_error(c->ssl, r);
    unsigned long reason = ERR_GET_REASON(ERR_peek_error());
    /* A plain HTTP server reads the ClientHello as a bad request and
     * answers in plain text, which is no TLS record. */
    if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
        reason == SSL_R_RECORD_LENGTH_MISMATCH || reason == SSL_R_HTTPS_PROXY_REQUEST ||
        reason == SSL_R_HTTP_REQUEST)
        return failure("the server at %s does not speak TLS (%s): use http://%s%s", t->host_header,
                       ssl_reason(), t->host_header, t->prefix);
    if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
        return failure("the TLS handshake with %s timed out", t->host_header);
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return failure("the TLS handshake with %s failed: the server closed the connection "
                       "(is it serving TLS? try http://)",
                       t->host_header);
    return failure("the TLS handshake with %s failed: %s", t->host_header, ssl_reason());
}

/* For an http:// URL whose server closed without a word: whether a TLS
 * handshake succeeds there (certificate unchecked: only the protocol is in
 * question). Silent. */
static bool probe_tls(const target_t *t, long timeout_ms)
{
    conn_t c = {.fd = -1};
    bool ok = false;
    FILE *saved = stderr;
    FILE *null = fopen("/dev/null", "w");
    if (null == NULL)
        return false;
    stderr = null; /* connect_to's failure line is not meant for a probe */
    if (connect_to(t, timeout_ms, &c.fd) == 0 && (c.ctx = SSL_CTX_new(TLS_client_method())) &&
        (c.ssl = SSL_new(c.ctx)) && SSL_set_fd(c.ssl, c.fd) == 1) {
        SSL_set_verify(c.ssl, SSL_VERIFY_NONE, NULL);
        ok = SSL_connect(c.ssl) == 1;
    }
    stderr = saved;
    fclose(null);
    conn_close(&c);
    ERR_clear_error();
    return ok;
}

static int send_all(conn_t *c, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n;
        if (c->ssl) {
            int r = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
            n = r > 0 ? r : -1;
            if (r <= 0 && SSL_get_error(c->ssl, r) != SSL_ERROR_SYSCALL)
                return failure("cannot send the request: %s", ssl_reason());
        } else {
            n = send(c->fd, p, len, MSG_NOSIGNAL);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return failure("cannot send the request: %s",
                           n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "timed out"
                                                                              : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* recv() or SSL_read(): bytes read, 0 at the end of the stream, -1 with
 * errno (EPROTO for a TLS error other than the peer's plain close). */
static ssize_t conn_recv(conn_t *c, uint8_t *p, size_t cap)
{
    if (c->ssl == NULL)
        return recv(c->fd, p, cap, 0);
    errno = 0;
    int r = SSL_read(c->ssl, p, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (r > 0)
        return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return errno ? -1 : 0; /* closed without close_notify: the end */
    errno = EPROTO;
    return -1;
}

/* The Content-Length of the answer's head, or -1 when it has none. */
static long long content_length(const char *head, size_t head_len)
{
    const char *p = memchr(head, '\n', head_len), *end = head + head_len;
    while (p && p + 1 < end) {
        p++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            char *stop;
            long long v = strtoll(p + 15, &stop, 10);
            return v >= 0 ? v : -1;
        }
        p = eol;
    }
    return -1;
}

/* Reads the whole answer into `in`; sets *status and *body. */
static int read_answer(conn_t *c, const target_t *t, phx_buf_t *in, int *status, size_t *body)
{
    size_t head_end = 0;
    long long want = -1;
    for (;;) {
        if (head_end && want >= 0 && in->len >= head_end + (size_t)want)
            break;
        if (in->len >= MAX_ANSWER_BYTES)
            return failure("the answer is larger than %d bytes", MAX_ANSWER_BYTES);
        if (phx_buf_reserve(in, 16384) != 0)
            return failure("out of memory");
        ssize_t n = conn_recv(c, in->data + in->len, in->cap - in->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EPROTO && c->ssl)
            return failure("cannot read the answer: %s", ssl_reason());
        if (n < 0 && in->len == 0 && c->ssl == NULL && errno == ECONNRESET && probe_tls(t, 1000))
            return speaks_tls(t);
        if (n < 0)
            return failure("cannot read the answer: %s",
                           errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
        if (n == 0)
            break;
        in->len += (size_t)n;
        /* A TLS record in answer to plain HTTP: a TLS port. */
        if (c->ssl == NULL && looks_like_tls(in->data, in->len))
            return speaks_tls(t);
        in->data[in->len] = '\0';
        if (head_end == 0) {
            const char *h = strstr((const char *)in->data, "\r\n\r\n");
            if (h) {
                head_end = (size_t)(h - (const char *)in->data) + 4;
                want = content_length((const char *)in->data, head_end);
            }
        }
    }
    /* Most TLS servers close without a word on plain HTTP: ask in TLS. */
    if (in->len == 0 && c->ssl == NULL && probe_tls(t, 1000))
        return speaks_tls(t);
    if (in->len == 0 || phx_buf_reserve(in, 1) != 0)
        return failure("the server closed the connection without an answer");
    in->data[in->len] = '\0';
    int code = 0;
    if (head_end == 0 || sscanf((const char *)in->data, "HTTP/1.%*d %3d", &code) != 1)
        return failure("not an HTTP answer");
    *status = code;
    *body = head_end;
    if (want >= 0 && in->len > head_end + (size_t)want)
        in->len = head_end + (size_t)want;
    return 0;
}

static int build_body(const publish_opts_t *o, phx_buf_t *b)
{
    if (o->disconnect) {
        if (phx_buf_append_str(b, "{\"id\":") != 0 ||
            phx_json_append_string(b, (const uint8_t *)o->disconnect, strlen(o->disconnect)) != 0 ||
            phx_buf_append_byte(b, '}') != 0)
            return PHX_ERR_NOMEM;
        return 0;
    }
    const char *payload = o->npos == 3 ? o->pos[2] : "{}";
    if (phx_buf_append_str(b, "{\"topic\":") != 0 ||
        phx_json_append_string(b, (const uint8_t *)o->pos[0], strlen(o->pos[0])) != 0 ||
        phx_buf_append_str(b, ",\"event\":") != 0 ||
        phx_json_append_string(b, (const uint8_t *)o->pos[1], strlen(o->pos[1])) != 0 ||
        phx_buf_append_str(b, ",\"payload\":") != 0 || phx_buf_append_str(b, payload) != 0 ||
        phx_buf_append_byte(b, '}') != 0)
        return PHX_ERR_NOMEM;
    return 0;
}

static bool text_ok(const char *s)
{
    return *s && header_safe(s) && phx_utf8_valid((const uint8_t *)s, strlen(s));
}

/* The query value `s` percent-encoded (everything but unreserved bytes). */
static int append_query_value(phx_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.' || c == '~';
        int rv = plain ? phx_buf_append_byte(b, c)
                       : phx_buf_printf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int phx_presence_cli(int argc, char **argv)
{
    cmd = "presence";
    return phx_publish_cli(argc, argv);
}

int phx_publish_cli(int argc, char **argv)
{
    bool is_presence = strcmp(cmd, "presence") == 0;
    publish_opts_t o = {.timeout_ms = DEFAULT_TIMEOUT_MS};
    int rv = parse_args(&o, argc, argv);
    if (rv == HELP_REQUESTED) {
        fputs(is_presence ? presence_usage_text : usage_text, stdout);
        return 0;
    }
    if (rv != 0)
        return rv;
    if (o.url == NULL)
        o.url = getenv("PHXD_URL");
    if (o.url == NULL || *o.url == '\0')
        o.url = DEFAULT_URL;
    if (o.api_key == NULL)
        o.api_key = getenv("PHXD_API_KEY");
    if (o.api_key == NULL || *o.api_key == '\0')
        return usage_error("an API key is needed (--api-key or PHXD_API_KEY)");
    if (!header_safe(o.api_key))
        return usage_error("the API key contains control characters");
    if (is_presence) {
        if (o.disconnect)
            return usage_error("unknown option --disconnect");
        if (o.npos != 1)
            return usage_error("one TOPIC is required");
        if (!text_ok(o.pos[0]))
            return usage_error("TOPIC must be non-empty UTF-8 text");
    } else if (o.disconnect) {
        if (o.npos != 0)
            return usage_error("--disconnect takes no TOPIC or EVENT");
        if (!text_ok(o.disconnect))
            return usage_error("the socket id must be non-empty UTF-8 text");
    } else {
        if (o.npos < 2)
            return usage_error("TOPIC and EVENT are required");
        if (!text_ok(o.pos[0]) || !text_ok(o.pos[1]))
            return usage_error("TOPIC and EVENT must be non-empty UTF-8 text");
        if (o.npos == 3 && !phx_json_is_object((const uint8_t *)o.pos[2], strlen(o.pos[2]), NULL))
            return usage_error("the payload must be a JSON object, got \"%.60s\"", o.pos[2]);
    }
    target_t t;
    if ((rv = parse_url(o.url, &t)) != 0)
        return rv;
    if (!t.tls && (o.insecure || o.cacert))
        return usage_error("--insecure and --cacert are for https:// URLs");

    phx_buf_t body = {0}, req = {0}, in = {0};
    rv = 1;
    if (is_presence) {
        if (phx_buf_printf(&req, "GET %s/api/presence?topic=", t.prefix) != 0 ||
            append_query_value(&req, o.pos[0]) != 0 ||
            phx_buf_printf(&req,
                           " HTTP/1.1\r\nhost: %s\r\nauthorization: Bearer %s\r\n"
                           "user-agent: phxd-presence/%s\r\nconnection: close\r\n\r\n",
                           t.host_header, o.api_key, PHX_VERSION) != 0) {
            failure("out of memory");
            goto done;
        }
    } else if (build_body(&o, &body) != 0 ||
               phx_buf_printf(&req,
                              "POST %s/api/%s HTTP/1.1\r\nhost: %s\r\nauthorization: Bearer %s\r\n"
                              "content-type: application/json\r\ncontent-length: %zu\r\n"
                              "user-agent: phxd-publish/%s\r\nconnection: close\r\n\r\n",
                              t.prefix, o.disconnect ? "disconnect" : "broadcast", t.host_header,
                              o.api_key, body.len, PHX_VERSION) != 0 ||
               phx_buf_append(&req, body.data, body.len) != 0) {
        failure("out of memory");
        goto done;
    }
    conn_t conn = {.fd = -1};
    if (connect_to(&t, o.timeout_ms, &conn.fd) != 0 || (t.tls && tls_start(&conn, &t, &o) != 0)) {
        conn_close(&conn);
        goto done;
    }
    int status = 0;
    size_t at = 0;
    if (send_all(&conn, req.data, req.len) == 0 && read_answer(&conn, &t, &in, &status, &at) == 0) {
        const char *answer = (const char *)in.data + at;
        int alen = (int)(in.len - at);
        if (status >= 200 && status < 300) {
            printf("%.*s\n", alen, answer);
            rv = 0;
        } else if (!t.tls && status == 400 && contains(answer, (size_t)alen, "speaks TLS")) {
            speaks_tls(&t); /* phxd's answer to plain HTTP on its TLS port */
        } else if (alen > 0) {
            failure("HTTP %d: %.*s", status, alen, answer);
        } else {
            failure("HTTP %d%s", status,
                    status == 404 ? " (is the API on? phxd serves it with --api-key)" : "");
        }
    }
    conn_close(&conn);
done:
    phx_buf_dispose(&body);
    phx_buf_dispose(&req);
    phx_buf_dispose(&in);
    return rv;
}
