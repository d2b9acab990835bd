/* origin.c: check_origin (see origin.h). */
#include "origin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "phx.h"

typedef enum { MODE_HOST, MODE_OFF, MODE_CONN, MODE_LIST } origin_mode_t;

typedef struct rule {
    char scheme[16];  /* "" = any */
    char host[256];   /* "" = any */
    bool is_wildcard; /* host was "*.rest": matches rest and *.rest */
    int port;         /* 0 = any */
} rule_t;

struct phx_origin_policy {
    origin_mode_t mode;
    char *url_host;
    rule_t *rules;
    size_t nrules;
};

static int default_port(const char *scheme)
{
    if (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0)
        return 80;
    if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0)
        return 443;
    return 0;
}

/* Splits "scheme://host:port/..." or "//host:port"; parts may be empty. */
static bool split(const char *uri, size_t len, char *scheme, size_t scheme_cap, char *host,
                  size_t host_cap, int *port, bool *has_port)
{
    const char *p = uri, *end = uri + len;
    scheme[0] = host[0] = '\0';
    *port = 0;
    *has_port = false;
    const char *sep = NULL;
    for (const char *q = p; q < end; q++) {
        if (end - q >= 3 && memcmp(q, "://", 3) == 0) {
            sep = q;
            break;
        }
        if (!(isalnum((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.'))
            break;
    }
    if (sep) {
        size_t n = (size_t)(sep - p);
        if (n == 0 || n >= scheme_cap)
            return false;
        for (size_t i = 0; i < n; i++)
            scheme[i] = (char)tolower((unsigned char)p[i]);
        scheme[n] = '\0';
        p = sep + 3;
    } else if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
        p += 2;
    } else {
        return false; /* no authority: "null", a bare word */
    }
    /* The authority ends at '/', '?' or '#'. */
    const char *aend = p;
    while (aend < end && *aend != '/' && *aend != '?' && *aend != '#')
        aend++;
    /* Userinfo is not part of an origin; refuse it rather than guess. */
    if (memchr(p, '@', (size_t)(aend - p)))
        return false;
    const char *hstart = p, *hend;
    const char *portp = NULL;
    if (p < aend && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(aend - p));
        if (close == NULL)
            return false;
        hstart = p + 1;
        hend = close;
        if (close + 1 < aend) {
            if (close[1] != ':')
                return false;
            portp = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(aend - p));
        hend = colon ? colon : aend;
        if (colon)
            portp = colon + 1;
    }
    size_t hn = (size_t)(hend - hstart);
    if (hn >= host_cap)
        return false;
    memcpy(host, hstart, hn);
    host[hn] = '\0';
    if (portp) {
        if (portp == aend)
            return false;
        long v = 0;
        for (const char *q = portp; q < aend; q++) {
            if (!isdigit((unsigned char)*q))
                return false;
            v = v * 10 + (*q - '0');
            if (v > 65535)
                return false;
        }
        *port = (int)v;
        *has_port = true;
    }
    return true;
}

bool phx_origin_split(const char *uri, char *scheme, size_t scheme_cap, char *host, size_t host_cap,
                      int *port)
{
    bool has_port;
    if (!split(uri, strlen(uri), scheme, scheme_cap, host, host_cap, port, &has_port) ||
        host[0] == '\0')
        return false;
    if (!has_port)
        *port = default_port(scheme);
    return true;
}

phx_origin_policy_t *phx_origin_parse(const char *spec, const char *url_host, char *err)
{
    phx_origin_policy_t *p = phx_calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        return NULL;
    }
    if (url_host && *url_host && (p->url_host = phx_strdup(url_host)) == NULL)
        goto nomem;
    if (spec == NULL || strcmp(spec, "true") == 0) {
        p->mode = MODE_HOST;
        return p;
    }
    if (strcmp(spec, "false") == 0) {
        p->mode = MODE_OFF;
        return p;
    }
    if (strcmp(spec, "conn") == 0 || strcmp(spec, ":conn") == 0) {
        p->mode = MODE_CONN;
        return p;
    }
    p->mode = MODE_LIST;
    const char *s = spec;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        while (n > 0 && isspace((unsigned char)*s)) {
            s++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)s[n - 1]))
            n--;
        if (n > 0) {
            rule_t r;
            memset(&r, 0, sizeof(r));
            bool has_port;
            if (!split(s, n, r.scheme, sizeof(r.scheme), r.host, sizeof(r.host), &r.port,
                       &has_port) ||
                r.host[0] == '\0') {
                snprintf(err, PHX_ERR_LEN,
                         "check-origin: \"%.*s\" is not like https://host, //host or "
                         "//*.host:port",
                         (int)n, s);
                phx_origin_free(p);
                return NULL;
            }
            if (!has_port && r.scheme[0])
                r.port = default_port(r.scheme);
            if (strncmp(r.host, "*.", 2) == 0) {
                r.is_wildcard = true;
                memmove(r.host, r.host + 2, strlen(r.host + 2) + 1);
            }
            rule_t *rules = phx_realloc(p->rules, (p->nrules + 1) * sizeof(*rules));
            if (rules == NULL)
                goto nomem;
            p->rules = rules;
            p->rules[p->nrules++] = r;
        }
        if (!comma)
            break;
        s = comma + 1;
    }
    if (p->nrules == 0) {
        snprintf(err, PHX_ERR_LEN, "check-origin: empty list");
        phx_origin_free(p);
        return NULL;
    }
    return p;
nomem:
    snprintf(err, PHX_ERR_LEN, "out of memory");
    phx_origin_free(p);
    return NULL;
}

bool phx_origin_is_off(const phx_origin_policy_t *p)
{
    return p->mode == MODE_OFF;
}

void phx_origin_free(phx_origin_policy_t *p)
{
    if (p == NULL)
        return;
    phx_free(p->url_host);
    phx_free(p->rules);
    phx_free(p);
}

static bool host_matches(const rule_t *r, const char *host)
{
    if (r->host[0] == '\0')
        return true;
    if (strcmp(r->host, host) == 0)
        return true;
    if (!r->is_wildcard)
        return false;
    size_t hl = strlen(host), rl = strlen(r->host);
    return hl > rl + 1 && host[hl - rl - 1] == '.' && strcmp(host + hl - rl, r->host) == 0;
}

/* The parts of a Host header ("name:port", "[v6]:port"); false when
 * absent or malformed. */
static bool split_host_header(const char *host, char *rh, size_t cap, int *port, bool *has_port)
{
    if (host == NULL)
        return false;
    char scheme[16], authority[300];
    snprintf(authority, sizeof(authority), "//%s", host);
    return split(authority, strlen(authority), scheme, sizeof(scheme), rh, cap, port, has_port);
}

bool phx_origin_allowed(const phx_origin_policy_t *p, const char *origin, const char *host,
                        bool is_tls)
{
    if (origin == NULL || p->mode == MODE_OFF)
        return true;
    char scheme[16], ohost[256];
    int port;
    bool has_port;
    if (!split(origin, strlen(origin), scheme, sizeof(scheme), ohost, sizeof(ohost), &port,
               &has_port) ||
        ohost[0] == '\0')
        return false;
    if (!has_port)
        port = default_port(scheme);
    switch (p->mode) {
    case MODE_HOST: {
        if (p->url_host)
            return strcmp(ohost, p->url_host) == 0;
        char rh[256];
        int rp;
        bool rhp;
        return split_host_header(host, rh, sizeof(rh), &rp, &rhp) && strcmp(ohost, rh) == 0;
    }
    case MODE_CONN: {
        char rh[256];
        int rp;
        bool rhp;
        if (!split_host_header(host, rh, sizeof(rh), &rp, &rhp))
            return false;
        /* The request's own scheme as Plug sees it: http or https. */
        const char *own_scheme = is_tls ? "https" : "http";
        if (!rhp)
            rp = default_port(own_scheme);
        return strcmp(scheme, own_scheme) == 0 && strcmp(ohost, rh) == 0 && port == rp;
    }
    case MODE_LIST:
        for (size_t i = 0; i < p->nrules; i++) {
            const rule_t *r = &p->rules[i];
            if (r->scheme[0] && strcmp(r->scheme, scheme) != 0)
                continue;
            if (r->port && r->port != port)
                continue;
            if (host_matches(r, ohost))
                return true;
        }
        return false;
    default:
        return false;
    }
}
