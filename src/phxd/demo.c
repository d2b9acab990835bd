/* demo.c: phxd's demo page (see demo.h). */
#include "demo.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "demo_config.h" /* PHXD_PHOENIX_JS_DEFAULT, PHXD_PHOENIX_JS_FROM_BINDIR (meson) */
#include "demo_page.h"   /* phxd_demo_index_html, PHXD_DEMO_INDEX_HTML_LEN (embed.py) */
#include "etf.h"
#include "log.h"
#include "mem.h"
#include "token.h"

/* phoenix.min.js is about 28 KB; anything far larger is not it. */
#define PHOENIX_JS_MAX_BYTES (8u << 20)

static const char token_placeholder[] = "__PHXD_DEMO_TOKEN__";
static const char socket_path_placeholder[] = "__PHXD_SOCKET_PATH__";

const char *phxd_demo_phoenix_js_default(void)
{
    return PHXD_PHOENIX_JS_DEFAULT;
}

/* The phoenix.min.js read without --phoenix-js: the first of these that
 * exists, else the installed path (which the warning then names).
 *  1. <the executable's folder>/PHXD_PHOENIX_JS_FROM_BINDIR
 *     (../share/phxd/phoenix.min.js): an install, wherever its prefix was
 *     moved or staged (DESTDIR); for a phxd where it was installed, this is
 *     the installed path;
 *  2. <the executable's folder>/phoenix.min.js: the build directory, where
 *     meson copies the file next to the phxd it builds;
 *  3. PHXD_PHOENIX_JS_DEFAULT: <prefix>/<datadir>/phxd/phoenix.min.js.
 * No path of the source or build tree is compiled in. */
static const char *find_phoenix_js(char *buf, size_t len)
{
    size_t n = len;
    if (uv_exepath(buf, &n) == 0 && n < len) {
        char *slash = strrchr(buf, '/');
        if (slash != NULL) {
            size_t dir = (size_t)(slash - buf) + 1;
            const char *rel[] = {PHXD_PHOENIX_JS_FROM_BINDIR, "phoenix.min.js"};
            for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
                if (rel[i][0] == '\0' || dir + strlen(rel[i]) >= len)
                    continue;
                memcpy(buf + dir, rel[i], strlen(rel[i]) + 1);
                if (access(buf, R_OK) == 0)
                    return buf;
            }
        }
    }
    return PHXD_PHOENIX_JS_DEFAULT;
}

char *phxd_demo_token(const phxd_options_t *o)
{
    phx_token_config_t tc;
    if (phx_token_config_from(&tc, &o->cfg) != 0)
        return NULL;
    phx_token_t *tok = NULL;
    phx_term_t *data = NULL;
    phx_buf_t out = {0};
    char *result = NULL;
    uv_timeval64_t now;
    uv_gettimeofday(&now);
    int64_t now_ms = now.tv_sec * 1000 + now.tv_usec / 1000;
    phx_max_age_t day = {PHX_MAX_AGE_SECONDS, 86400, false};
    if (phx_token_new(&tok, &tc) == 0 && phx_term_new_int(&data, 1) == 0 &&
        phx_token_sign(tok, data, now_ms, day, &out) == 0)
        result = phx_strndup((const char *)out.data, out.len);
    phx_buf_dispose(&out);
    phx_term_free(data);
    phx_token_free(tok);
    return result;
}

/* Reads a whole regular file into `out`. Returns 0, PHX_ERR_NOMEM, or
 * another negative code with the reason in `why`. */
static int read_file(const char *path, phx_buf_t *out, char *why, size_t why_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, why_len, "%s", strerror(errno));
        return PHX_ERR_NOTFOUND;
    }
    struct stat st;
    int rv = 0;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "not a regular file");
        rv = PHX_ERR_INVALID;
    } else if ((uintmax_t)st.st_size > PHOENIX_JS_MAX_BYTES) {
        snprintf(why, why_len, "larger than %u bytes", PHOENIX_JS_MAX_BYTES);
        rv = PHX_ERR_LIMIT;
    }
    while (rv == 0) {
        if (phx_buf_reserve(out, 65536) != 0) {
            rv = PHX_ERR_NOMEM;
            break;
        }
        size_t n = fread(out->data + out->len, 1, out->cap - out->len, f);
        out->len += n;
        if (out->len > PHOENIX_JS_MAX_BYTES) {
            snprintf(why, why_len, "larger than %u bytes", PHOENIX_JS_MAX_BYTES);
            rv = PHX_ERR_LIMIT;
        } else if (n == 0) {
            if (ferror(f)) {
                snprintf(why, why_len, "read error");
                rv = PHX_ERR_INVALID;
            }
            break;
        }
    }
    fclose(f);
    if (rv == 0 && out->len == 0) {
        snprintf(why, why_len, "empty file");
        rv = PHX_ERR_INVALID;
    }
    if (rv != 0)
        phx_buf_dispose(out);
    return rv;
}

/* A token goes into a JavaScript string literal: only the characters
 * Phoenix.Token uses (base64url and dots) are let through. */
static bool token_is_safe(const char *t)
{
    for (; *t; t++)
        if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') ||
              *t == '-' || *t == '_' || *t == '.'))
            return false;
    return true;
}

/* Appends `s` as the inside of a JavaScript string literal: quotes,
 * backslashes, '<' (no "</script>") and control bytes escaped; other bytes,
 * UTF-8 included, as they are (the page is UTF-8). */
static int append_js_string(phx_buf_t *b, const char *s)
{
    int rv = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && rv == 0; p++) {
        if (*p < 0x20 || *p == '"' || *p == '\\' || *p == '<' || *p == 0x7f)
            rv = phx_buf_printf(b, "\\x%02x", *p);
        else
            rv = phx_buf_append_byte(b, *p);
    }
    return rv;
}

/* The page with its placeholders replaced: the token (checked to be
 * base64url and dots) and the socket path (escaped). */
static int render_page(const char *token, const char *socket_path, phx_buf_t *page)
{
    const char *p = (const char *)phxd_demo_index_html;
    const char *end = p + PHXD_DEMO_INDEX_HTML_LEN;
    while (p < end) {
        /* The array is NUL-terminated, so strstr stops at its end. */
        const char *tok = strstr(p, token_placeholder);
        const char *sock = strstr(p, socket_path_placeholder);
        const char *hit = tok && (!sock || tok < sock) ? tok : sock;
        size_t take = hit ? (size_t)(hit - p) : (size_t)(end - p);
        if (phx_buf_append(page, p, take) != 0)
            return PHX_ERR_NOMEM;
        if (hit == NULL)
            break;
        if (hit == tok) {
            if (phx_buf_append_str(page, token) != 0)
                return PHX_ERR_NOMEM;
            p = hit + sizeof(token_placeholder) - 1;
        } else {
            if (append_js_string(page, socket_path) != 0)
                return PHX_ERR_NOMEM;
            p = hit + sizeof(socket_path_placeholder) - 1;
        }
    }
    return 0;
}

int phxd_demo_install(phx_server_t *srv, const phxd_options_t *o, const char *demo_token, char *err)
{
    const char *phoenix_js_path = o->phoenix_js;
    char found[4096];
    if (phoenix_js_path == NULL || phoenix_js_path[0] == '\0')
        phoenix_js_path = find_phoenix_js(found, sizeof(found));
    phx_buf_t js = {0};
    char why[128] = "";
    int rv = read_file(phoenix_js_path, &js, why, sizeof(why));
    if (rv == 0) {
        rv = phx_server_static(srv, "/phoenix.js", "text/javascript; charset=utf-8", js.data,
                               js.len);
        if (rv == 0)
            PHX_LOG_INFO("event=demo_phoenix_js path=\"%s\" bytes=%zu", phoenix_js_path, js.len);
        phx_buf_dispose(&js);
    } else if (rv != PHX_ERR_NOMEM) {
        PHX_LOG_WARN("event=phoenix_js_missing path=\"%s\" error=\"%s\" msg=\"the demo page at / "
                     "cannot load phoenix.js: pass --phoenix-js PATH, or build phxd with "
                     "js-client-fixtures' npm packages installed (tests/dev.sh build) so that "
                     "meson installs it\"",
                     phoenix_js_path, why);
        rv = 0;
    }
    if (rv != 0) {
        snprintf(err, PHX_ERR_LEN, "demo page: out of memory");
        return rv;
    }
    const char *token = demo_token ? demo_token : "";
    if (!token_is_safe(token)) {
        PHX_LOG_WARN("event=demo_token_skipped msg=\"unexpected characters in the demo token\"");
        token = "";
    }
    phx_buf_t page = {0};
    rv = render_page(token, o->cfg.socket_path, &page);
    if (rv == 0)
        rv = phx_server_static(srv, "/", "text/html; charset=utf-8", page.data, page.len);
    phx_buf_dispose(&page);
    if (rv != 0)
        snprintf(err, PHX_ERR_LEN, "demo page: out of memory");
    return rv;
}

void phxd_demo_banner(FILE *out, const phxd_options_t *o, int port, const char *demo_token)
{
    /* A wildcard address is not one a browser can open: show loopback. */
    const char *host = o->cfg.host;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    bool v6 = strchr(host, ':') != NULL;
    bool tls = o->cfg.tls_cert != NULL;
    if (o->demo_page)
        fprintf(out, "demo page: %s://%s%s%s:%d/%s\n", tls ? "https" : "http", v6 ? "[" : "", host,
                v6 ? "]" : "", port, demo_token ? "" : "?token=TOKEN");
    if (demo_token)
        fprintf(out, "demo token (user_id 1, valid 24 h): %s\n", demo_token);
}
