/* serializer.c: Phoenix messages to and from V1 JSON, V2 JSON and V2 binary
 * (docs/protocol.md §2), and vsn negotiation (§1.3). Sits between
 * the transports (ws.c, longpoll.c) and socket.c. Decoding works in place in
 * the caller's frame buffer; encoding allocates exactly one rcbuf per message,
 * which the caller owns. */
#include "serializer.h"

#include <string.h>

#include "json.h"
#include "log.h"
#include "phx.h"
#include "utf8.h"

/* ---- vsn negotiation ---- */

static bool is_ident_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* A SemVer numeric part: digits, and no leading zero unless it is "0". */
static bool is_number(const char *s, size_t n)
{
    return all_digits(s, n) && !(n > 1 && s[0] == '0');
}

/* Dot-separated non-empty identifiers of [0-9A-Za-z-]. Pre-release
 * identifiers that are numeric must not have leading zeros. */
static bool dot_idents_ok(const char *s, size_t n, bool is_pre)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!is_ident_char(s[i]))
                return false;
            continue;
        }
        size_t part = i - start;
        if (part == 0)
            return false;
        if (is_pre && all_digits(s + start, part) && !is_number(s + start, part))
            return false;
        start = i + 1;
    }
    return true;
}

int phx_vsn_parse(const char *vsn, size_t len, bool present, phx_fmt_t *fmt)
{
    if (!present) {
        *fmt = PHX_FMT_V1_JSON;
        return 0;
    }
    const char *plus = memchr(vsn, '+', len);
    size_t core_len = plus != NULL ? (size_t)(plus - vsn) : len;
    if (plus != NULL && !dot_idents_ok(plus + 1, len - core_len - 1, false))
        return PHX_ERR_INVALID;
    const char *dash = memchr(vsn, '-', core_len);
    size_t ver_len = dash != NULL ? (size_t)(dash - vsn) : core_len;
    if (dash != NULL && !dot_idents_ok(dash + 1, core_len - ver_len - 1, true))
        return PHX_ERR_INVALID;

    /* MAJOR.MINOR.PATCH: exactly three numeric parts. */
    const char *part[3];
    size_t part_len[3], n = 0, start = 0;
    for (size_t i = 0; i <= ver_len; i++) {
        if (i < ver_len && vsn[i] != '.')
            continue;
        if (n == 3 || !is_number(vsn + start, i - start))
            return PHX_ERR_INVALID;
        part[n] = vsn + start;
        part_len[n++] = i - start;
        start = i + 1;
    }
    if (n != 3)
        return PHX_ERR_INVALID;

    /* "~> M.0.0" is ">= M.0.0 and < M.1.0-0": minor 0, and a pre-release
     * only above M.0.0 (M.0.0-x sorts below M.0.0). Nothing with minor 1 can
     * sort below M.1.0-0, whose pre-release "0" is the smallest there is. */
    if (part_len[1] != 1 || part[1][0] != '0' || part_len[0] != 1)
        return PHX_ERR_NOTFOUND;
    if (dash != NULL && part_len[2] == 1 && part[2][0] == '0')
        return PHX_ERR_NOTFOUND;
    if (part[0][0] == '1')
        *fmt = PHX_FMT_V1_JSON;
    else if (part[0][0] == '2')
        *fmt = PHX_FMT_V2_JSON;
    else
        return PHX_ERR_NOTFOUND;
    return 0;
}

/* ---- fields ---- */

phx_field_t phx_field_str(const char *s)
{
    return phx_field_bytes(s, strlen(s));
}

bool phx_field_eq(const phx_field_t *f, const char *s)
{
    size_t n = strlen(s);
    return f->kind == PHX_FIELD_STRING && f->len == n && (n == 0 || memcmp(f->p, s, n) == 0);
}

/* ---- decoding ---- */

/* Turns the value span `sp` (inside `frame`) into a field. A string is
 * unescaped in place, so all spans of a message must be collected before the
 * first call. */
static int field_from_span(phx_field_t *f, uint8_t *frame, const phx_json_span_t *sp,
                           uint32_t max_len)
{
    uint8_t *p = frame + (sp->p - frame);
    switch (sp->type) {
    case PHX_JSON_NULL:
        *f = phx_field_null();
        return 0;
    case PHX_JSON_STRING: {
        size_t n;
        bool has_nul;
        if (phx_json_string_decode(p, sp->len, p, &n, &has_nul) != 0 || has_nul)
            return PHX_ERR_PROTO;
        if (n > max_len)
            return PHX_ERR_LIMIT;
        *f = phx_field_bytes(p, n);
        return 0;
    }
    default:
        if (sp->len > max_len)
            return PHX_ERR_LIMIT;
        f->kind = PHX_FIELD_OTHER;
        f->p = p;
        f->len = sp->len;
        return 0;
    }
}

static int decode_v2_text(phx_msg_t *msg, uint8_t *frame, size_t len, const phx_msg_limits_t *lim)
{
    phx_json_iter_t it;
    if (phx_json_iter_init(&it, frame, len) != 0 || phx_json_iter_is_object(&it))
        return PHX_ERR_PROTO;
    phx_json_span_t el[5];
    for (int i = 0; i < 5; i++) {
        if (!phx_json_iter_next(&it, NULL, &el[i]))
            return PHX_ERR_PROTO;
    }
    int rv;
    if ((rv = field_from_span(&msg->join_ref, frame, &el[0], lim->max_ref_len)) != 0 ||
        (rv = field_from_span(&msg->ref, frame, &el[1], lim->max_ref_len)) != 0 ||
        (rv = field_from_span(&msg->topic, frame, &el[2], lim->max_topic_len)) != 0 ||
        (rv = field_from_span(&msg->event, frame, &el[3], lim->max_event_len)) != 0)
        return rv;
    msg->payload = el[4].p;
    msg->payload_len = el[4].len;
    return 0;
}

enum { V1_TOPIC, V1_EVENT, V1_PAYLOAD, V1_REF, V1_JOIN_REF, V1_NKEYS };

/* Index of the V1 envelope key named by the string span `key`, after
 * unescaping ("\u0074opic" is "topic", as Jason reads it), or -1. */
static int v1_key_index(const phx_json_span_t *key)
{
    static const char *const names[V1_NKEYS] = {"topic", "event", "payload", "ref", "join_ref"};
    /* The longest name is 8 bytes; each byte costs at most a 6-byte escape. */
    uint8_t buf[64];
    size_t n;
    bool has_nul;
    if (key->len > sizeof(buf) || phx_json_string_decode(key->p, key->len, buf, &n, &has_nul) != 0)
        return -1;
    for (int i = 0; i < V1_NKEYS; i++) {
        if (strlen(names[i]) == n && memcmp(names[i], buf, n) == 0)
            return i;
    }
    return -1;
}

static int decode_v1_text(phx_msg_t *msg, uint8_t *frame, size_t len, const phx_msg_limits_t *lim)
{
    phx_json_iter_t it;
    if (phx_json_iter_init(&it, frame, len) != 0 || !phx_json_iter_is_object(&it))
        return PHX_ERR_PROTO;
    phx_json_span_t val[V1_NKEYS], key, v;
    bool seen[V1_NKEYS] = {false};
    while (phx_json_iter_next(&it, &key, &v)) {
        int k = v1_key_index(&key);
        if (k < 0)
            continue;
        /* Jason keeps the last duplicate and cJSON the first: refuse rather
         * than act on a value a proxy or log may have read differently. */
        if (seen[k])
            return PHX_ERR_PROTO;
        seen[k] = true;
        val[k] = v;
    }
    if (!seen[V1_TOPIC] || !seen[V1_EVENT] || !seen[V1_PAYLOAD] || !seen[V1_REF])
        return PHX_ERR_PROTO;
    int rv;
    if ((rv = field_from_span(&msg->ref, frame, &val[V1_REF], lim->max_ref_len)) != 0 ||
        (rv = field_from_span(&msg->topic, frame, &val[V1_TOPIC], lim->max_topic_len)) != 0 ||
        (rv = field_from_span(&msg->event, frame, &val[V1_EVENT], lim->max_event_len)) != 0)
        return rv;
    if (seen[V1_JOIN_REF]) {
        rv = field_from_span(&msg->join_ref, frame, &val[V1_JOIN_REF], lim->max_ref_len);
        if (rv != 0)
            return rv;
    } else {
        msg->join_ref = phx_field_null();
    }
    msg->payload = val[V1_PAYLOAD].p;
    msg->payload_len = val[V1_PAYLOAD].len;
    return 0;
}

static int binary_field(phx_field_t *f, const uint8_t *p, size_t n, uint32_t max_len)
{
    if (memchr(p, 0, n) != NULL || !phx_utf8_valid(p, n))
        return PHX_ERR_PROTO;
    if (n > max_len)
        return PHX_ERR_LIMIT;
    *f = phx_field_bytes(p, n);
    return 0;
}

/* Kind 0 client push: 00 J R T E, then the strings, then the payload. */
static int decode_v2_binary(phx_msg_t *msg, const uint8_t *frame, size_t len,
                            const phx_msg_limits_t *lim)
{
    if (len < 5 || frame[0] != 0)
        return PHX_ERR_PROTO;
    size_t jl = frame[1], rl = frame[2], tl = frame[3], el = frame[4];
    if (len - 5 < jl + rl + tl + el)
        return PHX_ERR_PROTO;
    const uint8_t *p = frame + 5;
    int rv;
    if ((rv = binary_field(&msg->join_ref, p, jl, lim->max_ref_len)) != 0 ||
        (rv = binary_field(&msg->ref, p + jl, rl, lim->max_ref_len)) != 0 ||
        (rv = binary_field(&msg->topic, p + jl + rl, tl, lim->max_topic_len)) != 0 ||
        (rv = binary_field(&msg->event, p + jl + rl + tl, el, lim->max_event_len)) != 0)
        return rv;
    msg->payload = p + jl + rl + tl + el;
    msg->payload_len = len - 5 - (jl + rl + tl + el);
    msg->is_binary = true;
    return 0;
}

int phx_msg_decode(phx_msg_t *msg, phx_fmt_t fmt, bool is_binary, uint8_t *frame, size_t len,
                   const phx_msg_limits_t *lim)
{
    phx_msg_limits_t defaults = PHX_MSG_LIMITS_DEFAULT;
    if (lim == NULL)
        lim = &defaults;
    memset(msg, 0, sizeof(*msg));
    if (is_binary)
        return fmt == PHX_FMT_V2_JSON ? decode_v2_binary(msg, frame, len, lim) : PHX_ERR_PROTO;
    if (fmt != PHX_FMT_V1_JSON && fmt != PHX_FMT_V2_JSON)
        return PHX_ERR_INVALID;
    phx_json_limits_t jl = {.max_depth = lim->max_depth};
    size_t n;
    int rv = phx_json_minify(frame, len, &jl, &n);
    if (rv != 0)
        return rv;
    return fmt == PHX_FMT_V2_JSON ? decode_v2_text(msg, frame, n, lim)
                                  : decode_v1_text(msg, frame, n, lim);
}

/* ---- encoding ---- */

/* Measures (p == NULL) or writes the output, so that both passes share one
 * description of each layout. */
typedef struct writer {
    uint8_t *p;
    size_t n;
} writer_t;

static void put(writer_t *w, const void *s, size_t n)
{
    if (w->p != NULL && n > 0)
        memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void put_lit(writer_t *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_byte(writer_t *w, uint8_t b)
{
    put(w, &b, 1);
}

static void put_json_field(writer_t *w, const phx_field_t *f)
{
    switch (f->kind) {
    case PHX_FIELD_NULL:
        put_lit(w, "null");
        break;
    case PHX_FIELD_STRING:
        if (w->p != NULL)
            w->n = (size_t)(phx_json_escape(w->p + w->n, f->p, f->len) - w->p);
        else
            w->n += phx_json_escaped_len(f->p, f->len);
        break;
    case PHX_FIELD_OTHER:
        put(w, f->p, f->len);
        break;
    }
}

static void put_json_payload(writer_t *w, const phx_out_t *m)
{
    if (m->payload_len == 0)
        put_lit(w, "{}");
    else
        put(w, m->payload, m->payload_len);
}

static void write_v2_json(writer_t *w, const phx_out_t *m)
{
    static const phx_field_t null_field = {PHX_FIELD_NULL, NULL, 0};
    const phx_field_t *jr = m->kind == PHX_OUT_BROADCAST ? &null_field : &m->join_ref;
    const phx_field_t *ref =
        m->kind == PHX_OUT_REPLY || m->kind == PHX_OUT_MESSAGE ? &m->ref : &null_field;
    put_byte(w, '[');
    put_json_field(w, jr);
    put_byte(w, ',');
    put_json_field(w, ref);
    put_byte(w, ',');
    put_json_field(w, &m->topic);
    if (m->kind == PHX_OUT_REPLY) {
        put_lit(w, ",\"phx_reply\",{\"response\":");
        put_json_payload(w, m);
        put_lit(w, ",\"status\":");
        put_json_field(w, &m->status);
        put_lit(w, "}]");
        return;
    }
    put_byte(w, ',');
    put_json_field(w, &m->event);
    put_byte(w, ',');
    put_json_payload(w, m);
    put_byte(w, ']');
}

static void write_v1_json(writer_t *w, const phx_out_t *m)
{
    static const phx_field_t null_field = {PHX_FIELD_NULL, NULL, 0};
    put_lit(w, "{\"event\":");
    if (m->kind == PHX_OUT_REPLY) {
        put_lit(w, "\"phx_reply\",\"payload\":{\"response\":");
        put_json_payload(w, m);
        put_lit(w, ",\"status\":");
        put_json_field(w, &m->status);
        put_byte(w, '}');
    } else {
        put_json_field(w, &m->event);
        put_lit(w, ",\"payload\":");
        put_json_payload(w, m);
    }
    put_lit(w, ",\"ref\":");
    put_json_field(w,
                   m->kind == PHX_OUT_REPLY || m->kind == PHX_OUT_MESSAGE ? &m->ref : &null_field);
    put_lit(w, ",\"topic\":");
    put_json_field(w, &m->topic);
    put_byte(w, '}');
}

static void put_bin_fields(writer_t *w, const phx_field_t *const *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_byte(w, (uint8_t)f[i]->len);
    for (size_t i = 0; i < n; i++)
        put(w, f[i]->p, f[i]->len);
}

/* The metadata fields of a binary layout, in wire order; returns the kind. */
static uint8_t bin_layout(const phx_out_t *m, const phx_field_t **f, size_t *n)
{
    switch (m->kind) {
    case PHX_OUT_REPLY:
        f[0] = &m->join_ref;
        f[1] = &m->ref;
        f[2] = &m->topic;
        f[3] = &m->status;
        *n = 4;
        return 1;
    case PHX_OUT_BROADCAST:
        f[0] = &m->topic;
        f[1] = &m->event;
        *n = 2;
        return 2;
    default:
        f[0] = &m->join_ref;
        f[1] = &m->topic;
        f[2] = &m->event;
        *n = 3;
        return 0;
    }
}

static void write_v2_binary(writer_t *w, const phx_out_t *m)
{
    const phx_field_t *f[4];
    size_t n;
    put_byte(w, bin_layout(m, f, &n));
    put_bin_fields(w, f, n);
    put(w, m->payload, m->payload_len);
}

static int check_text_field(const phx_field_t *f)
{
    if (f->kind == PHX_FIELD_STRING && !phx_utf8_valid(f->p, f->len))
        return PHX_ERR_INVALID;
    return 0;
}

/* Everything that can make a message unencodable, checked before any byte
 * is written. */
static int check_out(phx_fmt_t fmt, const phx_out_t *m)
{
    if ((fmt != PHX_FMT_V1_JSON && fmt != PHX_FMT_V2_JSON) || m->kind > PHX_OUT_MESSAGE)
        return PHX_ERR_INVALID;
    if (m->is_binary) {
        if (fmt == PHX_FMT_V1_JSON || m->kind == PHX_OUT_MESSAGE)
            return PHX_ERR_INVALID;
        const phx_field_t *f[4];
        size_t n;
        bin_layout(m, f, &n);
        for (size_t i = 0; i < n; i++) {
            if (f[i]->kind == PHX_FIELD_OTHER)
                return PHX_ERR_INVALID;
            if (f[i]->kind == PHX_FIELD_STRING && f[i]->len > 255)
                return PHX_ERR_LIMIT;
        }
        return 0;
    }
    /* Text frames must be valid UTF-8; payloads are the caller's JSON and only
     * their outer shape is checked here (a full scan per broadcast would
     * cost as much as the copy). */
    if (m->kind != PHX_OUT_REPLY && m->payload_len != 0 &&
        (m->payload[0] != '{' || m->payload[m->payload_len - 1] != '}'))
        return PHX_ERR_INVALID;
    /* Only the fields this kind writes (V2 writes a superset of V1). */
    bool has_jr = m->kind != PHX_OUT_BROADCAST;
    bool has_ref = m->kind == PHX_OUT_REPLY || m->kind == PHX_OUT_MESSAGE;
    bool is_reply = m->kind == PHX_OUT_REPLY;
    if ((has_jr && check_text_field(&m->join_ref) != 0) ||
        (has_ref && check_text_field(&m->ref) != 0) || check_text_field(&m->topic) != 0 ||
        check_text_field(is_reply ? &m->status : &m->event) != 0)
        return PHX_ERR_INVALID;
    return 0;
}

static void write_msg(writer_t *w, phx_fmt_t fmt, const phx_out_t *m)
{
    if (m->is_binary)
        write_v2_binary(w, m);
    else if (fmt == PHX_FMT_V2_JSON)
        write_v2_json(w, m);
    else
        write_v1_json(w, m);
}

int phx_msg_encoded_size(phx_fmt_t fmt, const phx_out_t *m, size_t *size)
{
    int rv = check_out(fmt, m);
    if (rv != 0)
        return rv;
    writer_t w = {NULL, 0};
    write_msg(&w, fmt, m);
    /* rcbuf offsets are 32-bit; keep room for the headroom and the header. */
    if (w.n > UINT32_MAX - PHX_MSG_HEADROOM - sizeof(phx_rcbuf_t))
        return PHX_ERR_LIMIT;
    *size = w.n;
    return 0;
}

int phx_msg_encode(phx_rcbuf_t **out, phx_fmt_t fmt, const phx_out_t *m)
{
    size_t size;
    int rv = phx_msg_encoded_size(fmt, m, &size);
    if (rv != 0)
        return rv;
    phx_rcbuf_t *b = phx_rcbuf_new(PHX_MSG_HEADROOM + size);
    if (b == NULL)
        return PHX_ERR_NOMEM;
    writer_t w = {b->data + PHX_MSG_HEADROOM, 0};
    write_msg(&w, fmt, m);
    PHX_ASSERT(w.n == size);
    b->off = b->payload_off = PHX_MSG_HEADROOM;
    b->len = (uint32_t)(PHX_MSG_HEADROOM + size);
    b->is_binary = m->is_binary ? 1 : 0;
    *out = b;
    return 0;
}
