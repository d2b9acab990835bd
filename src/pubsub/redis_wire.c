/* redis_wire.c: what the cluster backend reads and writes that is not
 * Redis's own protocol (see redis.h): the broadcast messages phxd nodes
 * publish on a topic's channel, and the --redis URL. Pure: no I/O. */
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "query.h"
#include "utf8.h"

/* ---- the message format ---- */

int phx_redis_msg_encode(phx_buf_t *out, const char *node, size_t node_len, const phx_bcast_t *b)
{
    if (node_len == 0 || node_len > PHX_REDIS_NODE_MAX || b->event_len > 0xffff)
        return PHX_ERR_INVALID;
    const phx_payload_t *p = b->payload;
    uint8_t kind = p == NULL      ? PHX_REDIS_PAYLOAD_NONE
                   : p->is_binary ? PHX_REDIS_PAYLOAD_BINARY
                                  : PHX_REDIS_PAYLOAD_JSON;
    size_t plen = p ? p->len : 0;
    if (phx_buf_reserve(out, 1 + 1 + node_len + 8 + 1 + 2 + b->event_len + 1 + plen) != 0)
        return PHX_ERR_NOMEM;
    uint8_t head[2] = {PHX_REDIS_MSG_VERSION, (uint8_t)node_len};
    phx_buf_append(out, head, 2);
    phx_buf_append(out, node, node_len);
    uint8_t mid[11];
    for (int i = 0; i < 8; i++)
        mid[i] = (uint8_t)(b->origin.sender >> (56 - 8 * i));
    mid[8] = (uint8_t)(b->origin.flags & (PHX_ORIGIN_CLIENT | PHX_ORIGIN_IDS_ONLY));
    mid[9] = (uint8_t)(b->event_len >> 8);
    mid[10] = (uint8_t)b->event_len;
    phx_buf_append(out, mid, sizeof(mid));
    phx_buf_append(out, b->event, b->event_len);
    phx_buf_append_byte(out, kind);
    if (plen)
        phx_buf_append(out, p->data, plen);
    return 0;
}

int phx_redis_msg_decode(const uint8_t *data, size_t len, const phx_json_limits_t *lim,
                         phx_redis_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    size_t at = 0;
    if (len < 2 || data[0] != PHX_REDIS_MSG_VERSION)
        return PHX_ERR_PROTO;
    size_t nlen = data[1];
    at = 2;
    if (nlen == 0 || len - at < nlen)
        return PHX_ERR_PROTO;
    m->node = (const char *)data + at;
    m->node_len = nlen;
    at += nlen;
    if (len - at < 8 + 1 + 2)
        return PHX_ERR_PROTO;
    for (int i = 0; i < 8; i++)
        m->sender = m->sender << 8 | data[at + i];
    at += 8;
    uint8_t flags = data[at++];
    if (flags & ~(PHX_ORIGIN_CLIENT | PHX_ORIGIN_IDS_ONLY))
        return PHX_ERR_PROTO;
    m->flags = flags;
    size_t elen = (size_t)data[at] << 8 | data[at + 1];
    at += 2;
    if (elen == 0 || len - at < elen + 1)
        return PHX_ERR_PROTO;
    m->event = (const char *)data + at;
    m->event_len = elen;
    if (!phx_utf8_valid(data + at, elen) || memchr(data + at, 0, elen))
        return PHX_ERR_PROTO;
    at += elen;
    uint8_t kind = data[at++];
    const uint8_t *p = data + at;
    size_t plen = len - at;
    switch (kind) {
    case PHX_REDIS_PAYLOAD_NONE:
        if (plen != 0)
            return PHX_ERR_PROTO;
        break;
    case PHX_REDIS_PAYLOAD_JSON:
        if (phx_json_validate(p, plen, lim) != 0)
            return PHX_ERR_PROTO;
        m->has_payload = true;
        m->payload = (phx_payload_t){.data = p, .len = plen, .is_binary = false};
        break;
    case PHX_REDIS_PAYLOAD_BINARY:
        m->has_payload = true;
        m->payload = (phx_payload_t){.data = p, .len = plen, .is_binary = true};
        break;
    default:
        return PHX_ERR_PROTO;
    }
    return 0;
}

/* ---- the URL ---- */

void phx_redis_url_dispose(phx_redis_url_t *u)
{
    phx_free(u->host);
    phx_free(u->path);
    phx_free(u->user);
    phx_free(u->password);
    memset(u, 0, sizeof(*u));
}

/* A percent-decoded copy of s[0..len), or NULL (bad escape: *bad set). */
static char *pct_dup(const char *s, size_t len, bool *bad)
{
    char *out = phx_malloc(len + 1);
    if (out == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < len ? phx_hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < len ? phx_hex_digit((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                *bad = true;
                phx_free(out);
                return NULL;
            }
            out[j++] = (char)(hi << 4 | lo);
            i += 2;
            continue;
        }
        out[j++] = s[i];
    }
    out[j] = '\0';
    return out;
}

int phx_redis_url_parse(const char *url, phx_redis_url_t *out, char *err)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    const char *path = NULL;
    if (strncmp(url, "unix://", 7) == 0)
        path = url + 7;
    else if (url[0] == '/')
        path = url;
    if (path) {
        if (path[0] != '/' || path[1] == '\0') {
            snprintf(err, PHX_ERR_LEN, "--redis: a unix socket needs an absolute path, got \"%s\"",
                     url);
            return PHX_ERR_INVALID;
        }
        out->path = phx_strdup(path);
        return out->path ? 0 : PHX_ERR_NOMEM;
    }
    /* rediss://: the same, over TLS (the bridge of redis_tls.h). */
    out->is_tls = strncmp(url, "rediss://", 9) == 0;
    if (!out->is_tls && strncmp(url, "redis://", 8) != 0) {
        snprintf(err, PHX_ERR_LEN,
                 "--redis must be redis[s]://[user:password@]host[:port][/db], unix:///path or "
                 "/path.sock");
        return PHX_ERR_INVALID;
    }
    const char *s = url + (out->is_tls ? 9 : 8);
    const char *end = s + strcspn(s, "/?#");
    const char *at = NULL;
    for (const char *q = s; q < end; q++)
        if (*q == '@')
            at = q;
    bool bad = false;
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon) {
            if (colon > s && (out->user = pct_dup(s, (size_t)(colon - s), &bad)) == NULL && !bad)
                goto nomem;
            if (!bad &&
                (out->password = pct_dup(colon + 1, (size_t)(at - colon - 1), &bad)) == NULL &&
                !bad)
                goto nomem;
        } else if (at > s && (out->password = pct_dup(s, (size_t)(at - s), &bad)) == NULL && !bad) {
            goto nomem;
        }
        if (bad)
            goto invalid;
        s = at + 1;
    }
    const char *hs = s, *he;
    const char *portp = NULL;
    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (rb == NULL)
            goto invalid;
        hs = s + 1;
        he = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                goto invalid;
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        he = colon ? colon : end;
        if (colon)
            portp = colon + 1;
    }
    if (he == hs)
        goto invalid;
    if (portp) {
        long p = 0;
        if (portp == end)
            goto invalid;
        for (const char *q = portp; q < end; q++) {
            if (*q < '0' || *q > '9' || p > 65535)
                goto invalid;
            p = p * 10 + (*q - '0');
        }
        if (p < 1 || p > 65535)
            goto invalid;
        out->port = (int)p;
    }
    out->host = phx_malloc((size_t)(he - hs) + 1);
    if (out->host == NULL)
        goto nomem;
    memcpy(out->host, hs, (size_t)(he - hs));
    out->host[he - hs] = '\0';
    if (*end == '/') {
        const char *d = end + 1;
        long db = 0;
        if (*d) {
            for (; *d; d++) {
                if (*d < '0' || *d > '9' || db > 100000)
                    goto invalid;
                db = db * 10 + (*d - '0');
            }
        }
        out->db = (int)db;
    } else if (*end) {
        goto invalid;
    }
    return 0;
invalid:
    phx_redis_url_dispose(out);
    snprintf(err, PHX_ERR_LEN,
             "--redis: cannot parse the URL (redis[s]://[user:password@]host[:port][/db], "
             "unix:///path or /path.sock)");
    return PHX_ERR_INVALID;
nomem:
    phx_redis_url_dispose(out);
    snprintf(err, PHX_ERR_LEN, "out of memory");
    return PHX_ERR_NOMEM;
}
