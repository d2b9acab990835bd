/* presence_msg.c: Presence replication messages (see presence_msg.h): a
 * header writer, an op writer, and a decoder that checks a whole message
 * before anything of it is applied. Pure: bytes in, bytes or spans out. */
#include "presence_msg.h"

#include <string.h>

#include "utf8.h"

/* ---- reading ---- */

typedef struct rd {
    const uint8_t *p;
    size_t len, at;
} rd_t;

static bool rd_u8(rd_t *r, uint32_t *v)
{
    if (r->len - r->at < 1)
        return false;
    *v = r->p[r->at++];
    return true;
}

static bool rd_u16(rd_t *r, uint32_t *v)
{
    if (r->len - r->at < 2)
        return false;
    *v = (uint32_t)r->p[r->at] << 8 | r->p[r->at + 1];
    r->at += 2;
    return true;
}

static bool rd_u32(rd_t *r, uint32_t *v)
{
    if (r->len - r->at < 4)
        return false;
    *v = (uint32_t)r->p[r->at] << 24 | (uint32_t)r->p[r->at + 1] << 16 |
         (uint32_t)r->p[r->at + 2] << 8 | r->p[r->at + 3];
    r->at += 4;
    return true;
}

static bool rd_u64(rd_t *r, uint64_t *v)
{
    if (r->len - r->at < 8)
        return false;
    *v = 0;
    for (int i = 0; i < 8; i++)
        *v = *v << 8 | r->p[r->at + (size_t)i];
    r->at += 8;
    return true;
}

static bool rd_bytes(rd_t *r, size_t n, const char **out)
{
    if (r->len - r->at < n)
        return false;
    *out = (const char *)r->p + r->at;
    r->at += n;
    return true;
}

bool phx_pmsg_node_ok(const char *s, size_t len)
{
    if (len == 0 || len > PHX_PMSG_NODE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@' || c == ':' || c == '+'))
            return false;
    }
    return true;
}

static bool ref_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool text_ok(const char *s, size_t len)
{
    return len > 0 && phx_utf8_valid((const uint8_t *)s, len) && memchr(s, 0, len) == NULL;
}

/* A meta: a JSON object within the limits, without phx_ref or
 * phx_ref_prev of its own. */
static bool meta_ok(const char *s, size_t len, const phx_json_limits_t *lim)
{
    const uint8_t *p = (const uint8_t *)s;
    if (len < 2 || p[0] != '{' || p[len - 1] != '}' || phx_json_validate(p, len, lim) != 0)
        return false;
    phx_json_iter_t it;
    phx_json_span_t key, val;
    if (phx_json_iter_init(&it, p, len) != 0 || !phx_json_iter_is_object(&it))
        return false;
    while (phx_json_iter_next(&it, &key, &val))
        if ((key.len == 9 && memcmp(key.p, "\"phx_ref\"", 9) == 0) ||
            (key.len == 14 && memcmp(key.p, "\"phx_ref_prev\"", 14) == 0))
            return false;
    return true;
}

/* Reads one op; with `lim` also checks it. */
static bool read_op(rd_t *r, phx_pmsg_op_t *op, const phx_pmsg_limits_t *lim)
{
    uint32_t kind, tlen, klen, rlen, plen = 0, mlen = 0;
    memset(op, 0, sizeof(*op));
    if (!rd_u8(r, &kind) || (kind != PHX_PMSG_JOIN && kind != PHX_PMSG_LEAVE))
        return false;
    op->kind = (int)kind;
    if (!rd_u16(r, &tlen) || !rd_bytes(r, tlen, &op->topic) || !rd_u16(r, &klen) ||
        !rd_bytes(r, klen, &op->key) || !rd_u8(r, &rlen) || !rd_bytes(r, rlen, &op->ref))
        return false;
    op->topic_len = tlen;
    op->key_len = klen;
    op->ref_len = rlen;
    if (kind == PHX_PMSG_JOIN) {
        if (!rd_u8(r, &plen) || !rd_bytes(r, plen, &op->prev_ref) || !rd_u32(r, &mlen) ||
            !rd_bytes(r, mlen, &op->meta))
            return false;
        op->prev_ref_len = plen;
        op->meta_len = mlen;
    }
    if (lim == NULL)
        return true;
    if ((lim->max_topic && (tlen > lim->max_topic || klen > lim->max_topic)) ||
        !text_ok(op->topic, tlen) || !text_ok(op->key, klen))
        return false;
    if (rlen == 0 || rlen > PHX_PMSG_REF_MAX || !ref_ok(op->ref, rlen))
        return false;
    if (kind == PHX_PMSG_JOIN) {
        if (plen > PHX_PMSG_REF_MAX || !ref_ok(op->prev_ref, plen))
            return false;
        phx_json_limits_t jl = lim->json.max_depth ? lim->json : PHX_JSON_LIMITS_DEFAULT;
        if ((lim->max_meta && mlen > lim->max_meta) || !meta_ok(op->meta, mlen, &jl))
            return false;
    }
    return true;
}

int phx_pmsg_decode(const uint8_t *data, size_t len, const phx_pmsg_limits_t *lim, phx_pmsg_t *m)
{
    static const phx_pmsg_limits_t none = {0};
    if (lim == NULL)
        lim = &none;
    memset(m, 0, sizeof(*m));
    rd_t r = {data, len, 0};
    uint32_t version, type, nlen;
    if (!rd_u8(&r, &version) || version != PHX_PMSG_VERSION || !rd_u8(&r, &type) ||
        type < PHX_PMSG_DELTA || type > PHX_PMSG_GOODBYE || !rd_u8(&r, &nlen) ||
        !rd_bytes(&r, nlen, &m->node) || !phx_pmsg_node_ok(m->node, nlen) ||
        !rd_u64(&r, &m->incarnation) || m->incarnation == 0 || !rd_u64(&r, &m->seq))
        return PHX_ERR_PROTO;
    m->type = (phx_pmsg_type_t)type;
    m->node_len = nlen;
    uint32_t v;
    switch (m->type) {
    case PHX_PMSG_HEARTBEAT:
        if (!rd_u32(&r, &m->count))
            return PHX_ERR_PROTO;
        break;
    case PHX_PMSG_STATE_REQ:
        if (!rd_u8(&r, &v) || !rd_bytes(&r, v, &m->target))
            return PHX_ERR_PROTO;
        m->target_len = v;
        if (v == 0)
            m->target = NULL;
        else if (!phx_pmsg_node_ok(m->target, v))
            return PHX_ERR_PROTO;
        break;
    case PHX_PMSG_STATE:
        if (!rd_u32(&r, &m->part) || !rd_u8(&r, &v) || (v & ~1u) != 0)
            return PHX_ERR_PROTO;
        m->is_last = (v & 1u) != 0;
        break;
    default:
        break;
    }
    if (m->type != PHX_PMSG_DELTA && m->type != PHX_PMSG_STATE)
        return r.at == len ? 0 : PHX_ERR_PROTO;
    m->ops = data + r.at;
    m->ops_len = len - r.at;
    while (r.at < len) {
        phx_pmsg_op_t op;
        if (!read_op(&r, &op, lim))
            return PHX_ERR_PROTO;
        if (m->type == PHX_PMSG_STATE && op.kind != PHX_PMSG_JOIN)
            return PHX_ERR_PROTO;
        if (lim->max_ops && m->nops >= lim->max_ops)
            return PHX_ERR_PROTO;
        m->nops++;
    }
    if (m->type == PHX_PMSG_DELTA && m->nops == 0)
        return PHX_ERR_PROTO;
    return 0;
}

bool phx_pmsg_next_op(const phx_pmsg_t *m, size_t *at, phx_pmsg_op_t *op)
{
    if (*at >= m->ops_len)
        return false;
    rd_t r = {m->ops, m->ops_len, *at};
    if (!read_op(&r, op, NULL))
        return false; /* not from phx_pmsg_decode */
    *at = r.at;
    return true;
}

/* ---- writing ---- */

static int put_be(phx_buf_t *out, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    return phx_buf_append(out, b, (size_t)bytes) ? PHX_ERR_NOMEM : 0;
}

int phx_pmsg_put_u32(phx_buf_t *out, uint32_t v)
{
    return put_be(out, v, 4);
}

int phx_pmsg_put_u8(phx_buf_t *out, uint8_t v)
{
    return put_be(out, v, 1);
}

int phx_pmsg_put_head(phx_buf_t *out, phx_pmsg_type_t type, const char *node, size_t node_len,
                      uint64_t incarnation, uint64_t seq)
{
    if (!phx_pmsg_node_ok(node, node_len) || incarnation == 0)
        return PHX_ERR_INVALID;
    if (phx_buf_reserve(out, 3 + node_len + 16) != 0)
        return PHX_ERR_NOMEM;
    put_be(out, PHX_PMSG_VERSION, 1);
    put_be(out, (uint64_t)type, 1);
    put_be(out, node_len, 1);
    phx_buf_append(out, node, node_len);
    put_be(out, incarnation, 8);
    put_be(out, seq, 8);
    return 0;
}

int phx_pmsg_put_target(phx_buf_t *out, const char *node, size_t len)
{
    if (node == NULL)
        len = 0;
    if (len > PHX_PMSG_NODE_MAX)
        return PHX_ERR_INVALID;
    if (put_be(out, len, 1) != 0 || (len && phx_buf_append(out, node, len) != 0))
        return PHX_ERR_NOMEM;
    return 0;
}

size_t phx_pmsg_op_size(const phx_pmsg_op_t *op)
{
    size_t n = 1 + 2 + op->topic_len + 2 + op->key_len + 1 + op->ref_len;
    if (op->kind == PHX_PMSG_JOIN)
        n += 1 + op->prev_ref_len + 4 + op->meta_len;
    return n;
}

int phx_pmsg_put_op(phx_buf_t *out, const phx_pmsg_op_t *op)
{
    bool is_join = op->kind == PHX_PMSG_JOIN;
    if ((!is_join && op->kind != PHX_PMSG_LEAVE) || op->topic_len > 0xffff ||
        op->key_len > 0xffff || op->ref_len == 0 || op->ref_len > PHX_PMSG_REF_MAX ||
        (is_join && (op->prev_ref_len > PHX_PMSG_REF_MAX || op->meta_len > 0xffffffffu)))
        return PHX_ERR_INVALID;
    if (phx_buf_reserve(out, phx_pmsg_op_size(op)) != 0)
        return PHX_ERR_NOMEM;
    put_be(out, (uint64_t)op->kind, 1);
    put_be(out, op->topic_len, 2);
    phx_buf_append(out, op->topic, op->topic_len);
    put_be(out, op->key_len, 2);
    phx_buf_append(out, op->key, op->key_len);
    put_be(out, op->ref_len, 1);
    phx_buf_append(out, op->ref, op->ref_len);
    if (is_join) {
        put_be(out, op->prev_ref_len, 1);
        if (op->prev_ref_len)
            phx_buf_append(out, op->prev_ref, op->prev_ref_len);
        put_be(out, op->meta_len, 4);
        phx_buf_append(out, op->meta, op->meta_len);
    }
    return 0;
}
