/* phoenix_pubsub.c: Phoenix.PubSub's Redis adapter messages
 * (phoenix_pubsub.h). The outer 6-tuple is walked without building terms
 * (phx_etf_text measures each element), so that another dispatcher's
 * message (Presence's heartbeats, any PubSub.broadcast) is recognised from
 * its small elements and never decoded whole. Compressed terms are
 * inflated by zlib into a buffer of their declared size, bounded first. */
#include "phoenix_pubsub.h"

#include <string.h>

#include <zlib.h>

#include "phx.h"
#include "utf8.h"

#define TAG_VERSION 131
#define TAG_COMPRESSED 80

static const char struct_name[] = "Elixir.Phoenix.Socket.Broadcast";
static const char dispatcher_name[] = "Elixir.Phoenix.Channel.Server";
static const char unnamed_origin[] = "phoenix";

void phx_pps_msg_dispose(phx_pps_msg_t *m)
{
    phx_term_free(m->node_term_);
    phx_term_free(m->msg_term_);
    phx_buf_dispose(&m->json_);
    phx_free(m->inflated_);
    memset(m, 0, sizeof(*m));
}

/* ---- inflating (term_to_binary(T, [compressed])) ---- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return phx_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    phx_free(p);
}

/* `data` is 131, 80, a 4-byte size N, then a zlib stream of N bytes (the
 * term without its version byte). Returns a phx_malloc'd buffer of 1 + N
 * bytes starting with 131 in *out. */
static int inflate_term(const uint8_t *data, size_t len, size_t max, uint8_t **out, size_t *out_len)
{
    if (len < 6)
        return PHX_ERR_INVALID;
    size_t n = (size_t)data[2] << 24 | (size_t)data[3] << 16 | (size_t)data[4] << 8 | data[5];
    if (n > max)
        return PHX_ERR_LIMIT;
    if (n == 0 || len - 6 > UINT_MAX)
        return PHX_ERR_INVALID;
    uint8_t *buf = phx_malloc(n + 1);
    if (buf == NULL)
        return PHX_ERR_NOMEM;
    buf[0] = TAG_VERSION;
    z_stream z;
    memset(&z, 0, sizeof(z));
    z.zalloc = z_alloc;
    z.zfree = z_free;
    int zr = inflateInit(&z);
    if (zr != Z_OK) {
        phx_free(buf);
        return zr == Z_MEM_ERROR ? PHX_ERR_NOMEM : PHX_ERR_INVALID;
    }
    z.next_in = (Bytef *)(uintptr_t)(data + 6);
    z.avail_in = (uInt)(len - 6);
    z.next_out = buf + 1;
    z.avail_out = (uInt)n;
    zr = inflate(&z, Z_FINISH);
    /* The stream must end exactly at the declared size and use every byte
     * given (Z_BUF_ERROR: it wants more room or more input). */
    bool ok = zr == Z_STREAM_END && z.avail_out == 0 && z.avail_in == 0;
    inflateEnd(&z);
    if (!ok) {
        phx_free(buf);
        return zr == Z_MEM_ERROR ? PHX_ERR_NOMEM : PHX_ERR_INVALID;
    }
    *out = buf;
    *out_len = n + 1;
    return 0;
}

/* ---- the outer tuple ---- */

typedef struct {
    const uint8_t *p;
    size_t len;
} span_t;

/* Decodes one element (no version byte) as a term of its own. */
static int decode_span(span_t s, const phx_etf_limits_t *lim, phx_term_t **out)
{
    uint8_t *buf = phx_malloc(s.len + 1);
    if (buf == NULL)
        return PHX_ERR_NOMEM;
    buf[0] = TAG_VERSION;
    memcpy(buf + 1, s.p, s.len);
    int rv = phx_etf_decode(buf, s.len + 1, lim, out);
    phx_free(buf);
    return rv;
}

/* The text of an atom element, without building a term: true when `s` is
 * an atom (any of the four tags) whose text is the ASCII `name`. */
static bool span_is_atom(span_t s, const char *name)
{
    size_t n = strlen(name), hl;
    if (s.len < 2)
        return false;
    switch (s.p[0]) {
    case 's':
    case 'w':
        hl = 2;
        if (s.p[1] != n)
            return false;
        break;
    case 'd':
    case 'v':
        hl = 3;
        if (s.len < 3 || ((size_t)s.p[1] << 8 | s.p[2]) != n)
            return false;
        break;
    default:
        return false;
    }
    return s.len == hl + n && memcmp(s.p + hl, name, n) == 0;
}

static int not_for_us(phx_pps_msg_t *out, const char *reason)
{
    out->reason = reason;
    return PHX_PPS_NOT_FOR_US;
}

static int skip(phx_pps_msg_t *out, const char *reason)
{
    out->reason = reason;
    return PHX_PPS_SKIP;
}

/* ---- Jason's mapping ---- */

/* Whether Jason.encode! takes `t` (Jason.Encoder's built-in clauses):
 * atoms, integers, floats, UTF-8 binaries, proper lists, and maps without
 * :__struct__ whose keys are UTF-8 binaries, atoms or integers (keys go
 * through String.Chars; floats print as JSON prints them). Tuples, pids and the like, non-UTF-8
 * binaries and structs (no derived encoder is known here) have no JSON form. */
static bool jason_ok(const phx_term_t *t)
{
    switch (t->type) {
    case PHX_TERM_INTEGER:
    case PHX_TERM_FLOAT:
    case PHX_TERM_ATOM:
    case PHX_TERM_CHARLIST:
        return true;
    case PHX_TERM_BINARY:
        return phx_utf8_valid(t->u.bytes.data, t->u.bytes.len);
    case PHX_TERM_LIST:
        for (size_t i = 0; i < t->u.seq.count; i++)
            if (!jason_ok(t->u.seq.items[i]))
                return false;
        return true;
    case PHX_TERM_MAP:
        for (size_t i = 0; i < t->u.map.count; i++) {
            const phx_term_t *k = t->u.map.pairs[i].key;
            if (k->type == PHX_TERM_ATOM) {
                if (phx_term_is_atom(k, "__struct__"))
                    return false;
            } else if (k->type == PHX_TERM_BINARY) {
                if (!phx_utf8_valid(k->u.bytes.data, k->u.bytes.len))
                    return false;
            } else if (k->type != PHX_TERM_INTEGER && k->type != PHX_TERM_FLOAT) {
                return false;
            }
            if (!jason_ok(t->u.map.pairs[i].value))
                return false;
        }
        return true;
    case PHX_TERM_TUPLE:
    case PHX_TERM_OTHER:
        return false;
    }
    return false;
}

static bool utf8_binary(const phx_term_t *t)
{
    return t != NULL && t->type == PHX_TERM_BINARY &&
           phx_utf8_valid(t->u.bytes.data, t->u.bytes.len);
}

static bool atom_or_binary_text(const phx_term_t *t, const char *text, size_t len)
{
    return t != NULL && (t->type == PHX_TERM_BINARY || t->type == PHX_TERM_ATOM) &&
           t->u.bytes.len == len && (len == 0 || memcmp(t->u.bytes.data, text, len) == 0);
}

/* The value of the atom key `name` in a map (structs have atom keys only;
 * phx_term_map_get would also take a binary key). */
static const phx_term_t *struct_field(const phx_term_t *m, const char *name)
{
    for (size_t i = 0; i < m->u.map.count; i++)
        if (phx_term_is_atom(m->u.map.pairs[i].key, name))
            return m->u.map.pairs[i].value;
    return NULL;
}

/* The Broadcast struct in out->msg_term_ for `topic` (the message's). */
static int take_broadcast(phx_pps_msg_t *out, const phx_term_t *topic)
{
    const phx_term_t *m = out->msg_term_;
    const phx_term_t *st = struct_field(m, "__struct__");
    if (!phx_term_is_atom(st, struct_name))
        return not_for_us(out, "message");
    const phx_term_t *btopic = struct_field(m, "topic");
    const phx_term_t *event = struct_field(m, "event");
    const phx_term_t *payload = struct_field(m, "payload");
    if (!utf8_binary(btopic))
        return skip(out, "topic");
    if (!utf8_binary(event))
        return skip(out, "event");
    if (phx_term_compare(btopic, topic) != 0)
        return skip(out, "topic_mismatch");
    out->topic = (const char *)btopic->u.bytes.data;
    out->topic_len = btopic->u.bytes.len;
    out->event = (const char *)event->u.bytes.data;
    out->event_len = event->u.bytes.len;
    const char *why = NULL;
    if (payload != NULL && payload->type == PHX_TERM_TUPLE && payload->u.seq.count == 2 &&
        phx_term_is_atom(payload->u.seq.items[0], "binary") &&
        payload->u.seq.items[1]->type == PHX_TERM_BINARY) {
        /* V2's fastlane! puts both sizes in one byte each (byte_size!). */
        if (out->topic_len > 255 || out->event_len > 255) {
            why = "binary_header";
        } else {
            const phx_term_t *d = payload->u.seq.items[1];
            out->payload.data = d->u.bytes.data;
            out->payload.len = d->u.bytes.len;
            out->payload.is_binary = true;
            return PHX_PPS_DELIVER;
        }
    } else if (payload == NULL || payload->type != PHX_TERM_MAP) {
        why = "payload";
    } else if (!jason_ok(payload)) {
        why = "json";
    } else {
        int rv = phx_term_to_json(payload, &out->json_);
        if (rv != 0)
            return rv;
        out->payload.data = out->json_.data;
        out->payload.len = out->json_.len;
        return PHX_PPS_DELIVER;
    }
    /* Phoenix's socket process takes a "disconnect" whole, whatever its
     * payload: it still closes the sockets of that id. */
    if (out->event_len == 10 && memcmp(out->event, "disconnect", 10) == 0) {
        out->ids_only = true;
        out->payload.data = (const uint8_t *)"{}";
        out->payload.len = 2;
        return PHX_PPS_DELIVER;
    }
    out->topic = out->event = NULL;
    out->topic_len = out->event_len = 0;
    return skip(out, why);
}

/* Walks the outer tuple of the term at data[1..len). */
static int decode_outer(const uint8_t *data, size_t len, const char *self_node,
                        const phx_etf_limits_t *lim, phx_pps_msg_t *out)
{
    const uint8_t *p = data + 1, *end = data + len;
    uint32_t depth = lim->max_depth ? lim->max_depth : PHX_ETF_DEFAULT_MAX_DEPTH;
    if (depth > PHX_ETF_HARD_MAX_DEPTH)
        depth = PHX_ETF_HARD_MAX_DEPTH;
    size_t arity = 0;
    bool tuple = false;
    if (end - p >= 2 && p[0] == 'h') {
        arity = p[1];
        tuple = true;
        p += 2;
    } else if (end - p >= 5 && p[0] == 'i') {
        arity = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        tuple = true;
        p += 5;
    }
    if (!tuple || arity != 6) {
        /* Some other term: well formed, or not. */
        ssize_t n = phx_etf_text(data + 1, len - 1, depth, NULL);
        if (n < 0)
            return (int)n;
        return (size_t)n == len - 1 ? not_for_us(out, "shape") : PHX_ERR_INVALID;
    }
    span_t el[6];
    for (int i = 0; i < 6; i++) {
        ssize_t n = phx_etf_text(p, (size_t)(end - p), depth - 1, NULL);
        if (n < 0)
            return (int)n;
        el[i].p = p;
        el[i].len = (size_t)n;
        p += n;
    }
    if (p != end)
        return PHX_ERR_INVALID;

    /* {3, mode, node_name, topic, message, dispatcher}: the adapter's
     * handle_info matches the version and the mode first. */
    if (!(el[0].len == 2 && el[0].p[0] == 'a' && el[0].p[1] == PHX_PPS_VSN))
        return not_for_us(out, "vsn");
    if (span_is_atom(el[1], "except"))
        out->mode = PHX_PPS_EXCEPT;
    else if (span_is_atom(el[1], "only"))
        out->mode = PHX_PPS_ONLY;
    else
        return not_for_us(out, "mode");
    int rv = decode_span(el[2], lim, &out->node_term_);
    if (rv != 0)
        return rv;
    const phx_term_t *node = out->node_term_;
    out->node = "";
    if (node->type == PHX_TERM_BINARY || node->type == PHX_TERM_ATOM) {
        out->node = (const char *)node->u.bytes.data;
        out->node_len = node->u.bytes.len;
    }
    bool is_self = atom_or_binary_text(node, self_node, strlen(self_node));
    if (out->mode == PHX_PPS_EXCEPT && is_self)
        return not_for_us(out, "except_self");
    if (out->mode == PHX_PPS_ONLY && !is_self)
        return not_for_us(out, "only_other");
    if (!span_is_atom(el[5], dispatcher_name))
        return not_for_us(out, "dispatcher");
    /* Only now the message itself. */
    phx_term_t *topic = NULL;
    if ((rv = decode_span(el[3], lim, &topic)) != 0)
        return rv;
    rv = decode_span(el[4], lim, &out->msg_term_);
    if (rv == 0) {
        if (out->msg_term_->type != PHX_TERM_MAP)
            rv = not_for_us(out, "message");
        else if (!utf8_binary(topic))
            rv = phx_term_is_atom(struct_field(out->msg_term_, "__struct__"), struct_name)
                     ? skip(out, "topic")
                     : not_for_us(out, "message");
        else
            rv = take_broadcast(out, topic);
    }
    phx_term_free(topic);
    return rv;
}

int phx_pps_decode(const uint8_t *data, size_t len, const char *self_node,
                   const phx_pps_limits_t *limits, phx_pps_msg_t *out)
{
    phx_pps_msg_dispose(out);
    phx_etf_limits_t lim = {0};
    size_t max_inflated = PHX_PPS_DEFAULT_MAX_INFLATED;
    if (limits != NULL) {
        lim = limits->etf;
        if (limits->max_inflated)
            max_inflated = limits->max_inflated;
    }
    lim.keep_other = true;
    if (len < 2 || data[0] != TAG_VERSION)
        return PHX_ERR_INVALID;
    if (data[1] == TAG_COMPRESSED) {
        size_t n = 0;
        int rv = inflate_term(data, len, max_inflated, &out->inflated_, &n);
        if (rv != 0)
            return rv;
        data = out->inflated_;
        len = n;
        /* A compressed term holds one plain term, never another. */
        if (len < 2 || data[1] == TAG_COMPRESSED)
            return PHX_ERR_INVALID;
    }
    int rv = decode_outer(data, len, self_node ? self_node : "", &lim, out);
    if (rv != PHX_PPS_DELIVER) {
        out->topic = out->event = NULL;
        out->topic_len = out->event_len = 0;
        out->payload = (phx_payload_t){0};
        out->ids_only = false;
    }
    return rv;
}

void phx_pps_msg_bcast(const phx_pps_msg_t *m, phx_bcast_t *b)
{
    memset(b, 0, sizeof(*b));
    b->topic = m->topic;
    b->topic_len = m->topic_len;
    b->event = m->event;
    b->event_len = m->event_len;
    b->payload = &m->payload;
    b->origin.node = m->mode == PHX_PPS_EXCEPT && m->node_len > 0 ? m->node : unnamed_origin;
    b->origin.flags = m->ids_only ? PHX_ORIGIN_IDS_ONLY : 0;
}

/* ---- encoding ---- */

static int put_binary(phx_buf_t *out, const void *data, size_t len)
{
    if (len > UINT32_MAX)
        return PHX_ERR_LIMIT;
    uint8_t h[5] = {'m', (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                    (uint8_t)len};
    int rv = phx_buf_append(out, h, 5);
    return rv ? rv : phx_buf_append(out, data, len);
}

static int put_atom(phx_buf_t *out, const char *name, unsigned flags)
{
    return phx_etf_encode_atom(out, name, strlen(name), flags);
}

int phx_pps_encode(const phx_bcast_t *b, const char *self_node, unsigned flags,
                   const phx_etf_limits_t *limits, phx_buf_t *out)
{
    flags &= PHX_ETF_LATIN1_ATOMS;
    const phx_payload_t *pl = b->payload;
    bool is_binary = pl != NULL && pl->is_binary;
    if (!phx_utf8_valid((const uint8_t *)b->topic, b->topic_len) ||
        !phx_utf8_valid((const uint8_t *)b->event, b->event_len))
        return PHX_PPS_SKIP;
    if ((b->origin.flags & PHX_ORIGIN_CLIENT) && b->event_len == 10 &&
        memcmp(b->event, "disconnect", 10) == 0)
        return PHX_PPS_SKIP;
    if (is_binary && (b->topic_len > 255 || b->event_len > 255))
        return PHX_PPS_SKIP;
    phx_term_t *payload = NULL;
    if (!is_binary && pl != NULL && pl->len > 0) {
        int rv = phx_json_to_term((const char *)pl->data, pl->len, limits, &payload);
        if (rv != 0)
            return rv;
        if (payload->type != PHX_TERM_MAP) {
            phx_term_free(payload);
            return PHX_PPS_SKIP;
        }
    }
    /* {3, :except, node, topic, %Broadcast{}, Phoenix.Channel.Server}; the
     * struct's keys in term order: __struct__, event, payload, topic. */
    static const uint8_t head[] = {TAG_VERSION, 'h', 6, 'a', PHX_PPS_VSN};
    static const uint8_t map4[] = {'t', 0, 0, 0, 4};
    int rv = phx_buf_append(out, head, sizeof(head));
    if (rv == 0)
        rv = put_atom(out, "except", flags);
    if (rv == 0)
        rv = put_binary(out, self_node, strlen(self_node));
    if (rv == 0)
        rv = put_binary(out, b->topic, b->topic_len);
    if (rv == 0)
        rv = phx_buf_append(out, map4, sizeof(map4));
    if (rv == 0)
        rv = put_atom(out, "__struct__", flags);
    if (rv == 0)
        rv = put_atom(out, struct_name, flags);
    if (rv == 0)
        rv = put_atom(out, "event", flags);
    if (rv == 0)
        rv = put_binary(out, b->event, b->event_len);
    if (rv == 0)
        rv = put_atom(out, "payload", flags);
    if (rv == 0) {
        if (is_binary) {
            static const uint8_t tuple2[] = {'h', 2};
            rv = phx_buf_append(out, tuple2, sizeof(tuple2));
            if (rv == 0)
                rv = put_atom(out, "binary", flags);
            if (rv == 0)
                rv = put_binary(out, pl->data, pl->len);
        } else if (payload != NULL) {
            rv = phx_etf_encode_term(payload, flags, out);
        } else {
            static const uint8_t empty_map[] = {'t', 0, 0, 0, 0};
            rv = phx_buf_append(out, empty_map, sizeof(empty_map));
        }
    }
    if (rv == 0)
        rv = put_atom(out, "topic", flags);
    if (rv == 0)
        rv = put_binary(out, b->topic, b->topic_len);
    if (rv == 0)
        rv = put_atom(out, dispatcher_name, flags);
    phx_term_free(payload);
    return rv;
}

int phx_pps_channel(const char *name, size_t len, phx_buf_t *out)
{
    /* Module.concat strips a leading "Elixir." and puts it back. */
    if (len >= 7 && memcmp(name, "Elixir.", 7) == 0) {
        name += 7;
        len -= 7;
    }
    if (len == 0)
        return PHX_ERR_INVALID;
    int rv = phx_buf_append_str(out, "phx:Elixir.");
    if (rv == 0)
        rv = phx_buf_append(out, name, len);
    return rv ? rv : phx_buf_append_str(out, ".Adapter");
}
