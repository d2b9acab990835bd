/* proto.c: phxd-bench's Phoenix message codec (V1 and V2 JSON). The
 * decoder walks a frame once with a bounded recursive scanner and returns
 * spans into it; the encoder writes into a caller buffer. Nothing here
 * allocates, so the bench's receive and send paths cost no malloc. */
#include "proto.h"

#include <string.h>

#include "phx.h"

/* ---- scanning ---- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* `p` is at the opening quote. Returns the byte after the closing quote, or
 * NULL when the string is unterminated or holds a raw control byte. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            if (++p >= end)
                return NULL;
        } else if (c < 0x20) {
            return NULL;
        }
    }
    return NULL;
}

static const char *skip_literal(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0)
        return NULL;
    return p + n;
}

static const char *skip_number(const char *p, const char *end)
{
    const char *start = p;
    if (p < end && *p == '-')
        p++;
    const char *digits = p;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                       *p == '+' || *p == '-'))
        p++;
    if (p == digits || !(digits[0] >= '0' && digits[0] <= '9'))
        return NULL;
    return p > start ? p : NULL;
}

/* Scans the value at `p` (no leading whitespace) and fills *out. Returns the
 * byte after it, or NULL on invalid input or nesting beyond the limit. */
static const char *scan_value(const char *p, const char *end, unsigned depth, phx_bench_span_t *out)
{
    if (p >= end)
        return NULL;
    const char *q;
    out->is_string = false;
    out->is_null = false;
    switch (*p) {
    case '"':
        if ((q = skip_string(p, end)) == NULL)
            return NULL;
        out->p = p + 1;
        out->len = (size_t)(q - p) - 2;
        out->is_string = true;
        return q;
    case '{':
    case '[': {
        if (depth >= PHX_BENCH_JSON_MAX_DEPTH)
            return NULL;
        char close = *p == '{' ? '}' : ']';
        bool is_object = *p == '{';
        q = skip_ws(p + 1, end);
        if (q < end && *q == close) {
            out->p = p;
            out->len = (size_t)(q + 1 - p);
            return q + 1;
        }
        for (;;) {
            phx_bench_span_t inner;
            if (is_object) {
                if (q >= end || *q != '"' || (q = skip_string(q, end)) == NULL)
                    return NULL;
                q = skip_ws(q, end);
                if (q >= end || *q != ':')
                    return NULL;
                q = skip_ws(q + 1, end);
            }
            if ((q = scan_value(q, end, depth + 1, &inner)) == NULL)
                return NULL;
            q = skip_ws(q, end);
            if (q >= end)
                return NULL;
            if (*q == close)
                break;
            if (*q != ',')
                return NULL;
            q = skip_ws(q + 1, end);
        }
        out->p = p;
        out->len = (size_t)(q + 1 - p);
        return q + 1;
    }
    case 't':
        q = skip_literal(p, end, "true");
        break;
    case 'f':
        q = skip_literal(p, end, "false");
        break;
    case 'n':
        q = skip_literal(p, end, "null");
        if (q != NULL) {
            out->p = p;
            out->len = 0;
            out->is_null = true;
            return q;
        }
        break;
    default:
        q = skip_number(p, end);
        break;
    }
    if (q == NULL)
        return NULL;
    out->p = p;
    out->len = (size_t)(q - p);
    return q;
}

static bool key_eq(const char *k, size_t klen, const char *key)
{
    size_t n = strlen(key);
    return klen == n && memcmp(k, key, n) == 0;
}

/* ---- decoding ---- */

static int decode_v2(const char *p, const char *end, phx_bench_msg_t *out)
{
    phx_bench_span_t *fields[5] = {&out->join_ref, &out->ref, &out->topic, &out->event,
                                   &out->payload};
    if (p >= end || *p != '[')
        return PHX_ERR_PROTO;
    p = skip_ws(p + 1, end);
    for (size_t i = 0;; i++) {
        phx_bench_span_t ignored;
        phx_bench_span_t *dst = i < 5 ? fields[i] : &ignored;
        if ((p = scan_value(p, end, 1, dst)) == NULL)
            return PHX_ERR_PROTO;
        p = skip_ws(p, end);
        if (p >= end)
            return PHX_ERR_PROTO;
        if (*p == ']')
            return i >= 4 ? 0 : PHX_ERR_PROTO;
        if (*p != ',')
            return PHX_ERR_PROTO;
        p = skip_ws(p + 1, end);
    }
}

static int decode_v1(const char *p, const char *end, phx_bench_msg_t *out)
{
    unsigned seen = 0;
    if (p >= end || *p != '{')
        return PHX_ERR_PROTO;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return PHX_ERR_PROTO;
    for (;;) {
        phx_bench_span_t key, val;
        if (p >= end || *p != '"' || (p = scan_value(p, end, 1, &key)) == NULL)
            return PHX_ERR_PROTO;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return PHX_ERR_PROTO;
        p = skip_ws(p + 1, end);
        if ((p = scan_value(p, end, 1, &val)) == NULL)
            return PHX_ERR_PROTO;
        if (key_eq(key.p, key.len, "topic")) {
            out->topic = val;
            seen |= 1;
        } else if (key_eq(key.p, key.len, "event")) {
            out->event = val;
            seen |= 2;
        } else if (key_eq(key.p, key.len, "payload")) {
            out->payload = val;
            seen |= 4;
        } else if (key_eq(key.p, key.len, "ref")) {
            out->ref = val;
            seen |= 8;
        } else if (key_eq(key.p, key.len, "join_ref")) {
            out->join_ref = val;
        }
        p = skip_ws(p, end);
        if (p >= end)
            return PHX_ERR_PROTO;
        if (*p == '}')
            return seen == 15 ? 0 : PHX_ERR_PROTO;
        if (*p != ',')
            return PHX_ERR_PROTO;
        p = skip_ws(p + 1, end);
    }
}

int phx_bench_msg_decode(const char *data, size_t len, bool is_v1, phx_bench_msg_t *out)
{
    const char *end = data + len;
    memset(out, 0, sizeof(*out));
    out->join_ref.is_null = true;
    const char *p = skip_ws(data, end);
    int rv = is_v1 ? decode_v1(p, end, out) : decode_v2(p, end, out);
    if (rv != 0)
        return rv;
    if (!out->topic.is_string || !out->event.is_string)
        return PHX_ERR_PROTO;
    out->len = len;
    return 0;
}

bool phx_bench_json_get(const phx_bench_span_t *obj, const char *key, phx_bench_span_t *out)
{
    if (obj->is_string || obj->is_null || obj->len < 2 || obj->p[0] != '{')
        return false;
    const char *end = obj->p + obj->len;
    const char *p = skip_ws(obj->p + 1, end);
    while (p < end && *p == '"') {
        phx_bench_span_t k;
        if ((p = scan_value(p, end, 1, &k)) == NULL)
            return false;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return false;
        p = skip_ws(p + 1, end);
        if ((p = scan_value(p, end, 1, out)) == NULL)
            return false;
        if (key_eq(k.p, k.len, key))
            return true;
        p = skip_ws(p, end);
        if (p >= end || *p != ',')
            return false;
        p = skip_ws(p + 1, end);
    }
    return false;
}

int phx_bench_json_next(const phx_bench_span_t *obj, size_t *pos, phx_bench_span_t *key,
                        phx_bench_span_t *val)
{
    if (obj->is_string || obj->is_null || obj->len < 2 || obj->p[0] != '{')
        return -1;
    const char *end = obj->p + obj->len;
    const char *p = obj->p + (*pos == 0 ? 1 : *pos);
    p = skip_ws(p, end);
    if (*pos != 0) {
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
        else
            return p < end && *p == '}' ? 0 : -1;
    } else if (p < end && *p == '}') {
        return 0;
    }
    if (p >= end || *p != '"' || (p = scan_value(p, end, 1, key)) == NULL)
        return -1;
    p = skip_ws(p, end);
    if (p >= end || *p != ':')
        return -1;
    p = skip_ws(p + 1, end);
    if ((p = scan_value(p, end, 1, val)) == NULL)
        return -1;
    *pos = (size_t)(p - obj->p);
    return 1;
}

bool phx_bench_span_u64(const phx_bench_span_t *s, uint64_t *out)
{
    if (s->is_null || s->len == 0 || s->len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s->len; i++) {
        unsigned d = (unsigned)(s->p[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool phx_bench_span_eq(const phx_bench_span_t *s, const char *text)
{
    return s->is_string && key_eq(s->p, s->len, text);
}

bool phx_bench_reply_status(const phx_bench_msg_t *msg, bool *is_ok, phx_bench_span_t *response)
{
    phx_bench_span_t status;
    if (!phx_bench_json_get(&msg->payload, "status", &status) || !status.is_string)
        return false;
    *is_ok = phx_bench_span_eq(&status, "ok");
    if (response != NULL && !phx_bench_json_get(&msg->payload, "response", response))
        memset(response, 0, sizeof(*response));
    return true;
}

/* ---- encoding ---- */

typedef struct out {
    char *p;
    char *end;
    bool is_full;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->is_full || (size_t)(o->end - o->p) < n) {
        o->is_full = true;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

static void put_str(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A JSON string, or null for NULL. */
static void put_jstr(out_t *o, const char *s)
{
    if (s == NULL) {
        put(o, "null", 4);
        return;
    }
    put(o, "\"", 1);
    put_str(o, s);
    put(o, "\"", 1);
}

size_t phx_bench_msg_encode(char *buf, size_t cap, bool is_v1, const char *join_ref,
                            const char *ref, const char *topic, const char *event,
                            const char *payload, size_t payload_len)
{
    out_t o = {buf, buf + cap, false};
    if (is_v1) {
        put_str(&o, "{\"topic\":");
        put_jstr(&o, topic);
        put_str(&o, ",\"event\":");
        put_jstr(&o, event);
        put_str(&o, ",\"payload\":");
        put(&o, payload, payload_len);
        put_str(&o, ",\"ref\":");
        put_jstr(&o, ref);
        put_str(&o, ",\"join_ref\":");
        put_jstr(&o, join_ref);
        put(&o, "}", 1);
    } else {
        put(&o, "[", 1);
        put_jstr(&o, join_ref);
        put(&o, ",", 1);
        put_jstr(&o, ref);
        put(&o, ",", 1);
        put_jstr(&o, topic);
        put(&o, ",", 1);
        put_jstr(&o, event);
        put(&o, ",", 1);
        put(&o, payload, payload_len);
        put(&o, "]", 1);
    }
    return o.is_full ? 0 : (size_t)(o.p - buf);
}

bool phx_bench_json_safe(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}
