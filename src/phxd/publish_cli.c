/* publish_cli.c: `phxd publish` (see publish_cli.h). Builds the JSON body
 * with json.c's escaping, sends one request with `Connection: close` and
 * reads the answer (bounded) until its Content-Length or the end of the
 * stream. Owns nothing past return. */
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

#include "json.h"
#include "mem.h"
#include "phx.h"
#include "utf8.h"

#define DEFAULT_URL "http://127.0.0.1:4000"
#define DEFAULT_TIMEOUT_MS 10000
#define MAX_ANSWER_BYTES (1024 * 1024)

static const char usage_text[] =
    "usage: phxd publish [--url URL] [--api-key KEY] [--timeout-ms N] TOPIC EVENT [JSON_OBJECT]\n"
    "       phxd publish [--url URL] [--api-key KEY] [--timeout-ms N] --disconnect SOCKET_ID\n"
    "Broadcasts EVENT with the payload (default {}) to every subscriber of TOPIC through\n"
    "POST URL/api/broadcast, or closes every socket whose id is SOCKET_ID\n"
    "(users_socket:42) through POST URL/api/disconnect, and prints the answer\n"
    "({\"recipients\":N} or {\"sockets\":N}).\n"
    "  --url URL         phxd's address, http:// only (default $PHXD_URL, then " DEFAULT_URL ")\n"
    "  --api-key KEY     the server's --api-key (default $PHXD_API_KEY, which keeps the key\n"
    "                    out of the process list)\n"
    "  --timeout-ms N    give up after N ms without progress (default 10000)\n"
    "Exit status: 0 on a 2xx answer, 1 otherwise (the answer on stderr), 2 on usage errors.\n";

typedef struct publish_opts {
    const char *url;
    const char *api_key;
    long timeout_ms;
    const char *disconnect;
    const char *pos[3];
    int npos;
} publish_opts_t;

typedef struct target {
    char host[256]; /* without IPv6 brackets */
    char port[8];
    char host_header[280];
    char prefix[512]; /* path before /api/..., without a trailing '/' */
} target_t;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("phxd publish: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see phxd publish --help)\n", stderr);
    return 2;
}

__attribute__((format(printf, 1, 2))) static int failure(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("phxd publish: ", stderr);
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

/* Splits http://host[:port][/prefix]. Returns 0 or a usage error status. */
static int parse_url(const char *url, target_t *t)
{
    if (strncasecmp(url, "https://", 8) == 0)
        return usage_error("https:// is not supported; give phxd's http:// address "
                           "(loopback or a trusted network)");
    if (strncasecmp(url, "http://", 7) != 0)
        return usage_error("the URL must start with http://, got \"%s\"", url);
    const char *p = url + 7, *host, *host_end;
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
    long port = 80;
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

static int send_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
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
static int read_answer(int fd, phx_buf_t *in, int *status, size_t *body)
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
        ssize_t n = recv(fd, in->data + in->len, in->cap - in->len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return failure("cannot read the answer: %s",
                           errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
        if (n == 0)
            break;
        in->len += (size_t)n;
        in->data[in->len] = '\0';
        if (head_end == 0) {
            const char *h = strstr((const char *)in->data, "\r\n\r\n");
            if (h) {
                head_end = (size_t)(h - (const char *)in->data) + 4;
                want = content_length((const char *)in->data, head_end);
            }
        }
    }
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

int phx_publish_cli(int argc, char **argv)
{
    publish_opts_t o = {.timeout_ms = DEFAULT_TIMEOUT_MS};
    int rv = parse_args(&o, argc, argv);
    if (rv == HELP_REQUESTED) {
        fputs(usage_text, stdout);
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
    if (o.disconnect) {
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

    phx_buf_t body = {0}, req = {0}, in = {0};
    rv = 1;
    if (build_body(&o, &body) != 0 ||
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
    int fd = -1;
    if (connect_to(&t, o.timeout_ms, &fd) != 0)
        goto done;
    int status = 0;
    size_t at = 0;
    if (send_all(fd, req.data, req.len) == 0 && read_answer(fd, &in, &status, &at) == 0) {
        const char *answer = (const char *)in.data + at;
        int alen = (int)(in.len - at);
        if (status >= 200 && status < 300) {
            printf("%.*s\n", alen, answer);
            rv = 0;
        } else if (alen > 0) {
            failure("HTTP %d: %.*s", status, alen, answer);
        } else {
            failure("HTTP %d%s", status,
                    status == 404 ? " (is the API on? phxd serves it with --api-key)" : "");
        }
    }
    close(fd);
done:
    phx_buf_dispose(&body);
    phx_buf_dispose(&req);
    phx_buf_dispose(&in);
    return rv;
}
