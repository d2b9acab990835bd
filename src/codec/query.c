/* query.c: connect params from the request's query string, decoded as Plug
 * does (docs/protocol.md §1.2), for http.c/longpoll.c (vsn, token) and the connect
 * callback (the whole map as JSON). A phx_query_t owns two allocations: a
 * node array (a tree linked by indices, so it can grow by realloc) and one
 * buffer holding every decoded key and value. */
#include "query.h"

#include <string.h>

#include "json.h"
#include "phx.h"
#include "utf8.h"

typedef enum { QN_STRING, QN_MAP, QN_LIST } qn_kind_t;

#define QN_NONE UINT32_MAX

/* A node of the params tree. A child of a map has a key; a child of a list
 * has none. Strings live in phx_query_t.str. */
typedef struct qnode {
    qn_kind_t kind;
    uint32_t key_off, key_len; /* as a map member */
    uint32_t val_off, val_len; /* QN_STRING */
    uint32_t first, last;      /* children (QN_MAP, QN_LIST) */
    uint32_t next;             /* next sibling */
} qnode_t;

struct phx_query {
    qnode_t *nodes; /* nodes[0] is the top-level map */
    uint32_t n_nodes;
    uint32_t cap_nodes;
    uint8_t *str; /* decoded keys and values */
    size_t str_len;
};

/* A place a value can go: member `key` of map `node`, or a new element at
 * the end of list `node` (key_len == QN_NONE marks the list case). */
typedef struct slot {
    uint32_t node;
    uint32_t key_off, key_len;
} slot_t;

/* ---- decoding ---- */

int phx_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded decoding of s[0..n) appended to q->str.
 * A '%' not followed by two hex digits is kept as it is. */
static void form_decode(phx_query_t *q, const uint8_t *s, size_t n)
{
    uint8_t *out = q->str + q->str_len;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && n - i > 2) {
            int hi = phx_hex_digit(s[i + 1]), lo = phx_hex_digit(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (uint8_t)(hi << 4 | lo);
                i += 2;
            }
        }
        out[w++] = c;
    }
    q->str_len += w;
}

/* ---- tree ---- */

static int node_new(phx_query_t *q, qn_kind_t kind, uint32_t *idx)
{
    if (q->n_nodes == q->cap_nodes) {
        uint32_t cap = q->cap_nodes ? q->cap_nodes * 2 : 16;
        qnode_t *p = phx_realloc(q->nodes, cap * sizeof(*p));
        if (p == NULL)
            return PHX_ERR_NOMEM;
        q->nodes = p;
        q->cap_nodes = cap;
    }
    *idx = q->n_nodes++;
    qnode_t *n = &q->nodes[*idx];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->first = n->last = n->next = QN_NONE;
    return 0;
}

static void child_append(phx_query_t *q, uint32_t parent, uint32_t child)
{
    qnode_t *p = &q->nodes[parent];
    if (p->last == QN_NONE)
        p->first = child;
    else
        q->nodes[p->last].next = child;
    p->last = child;
}

static uint32_t map_find(const phx_query_t *q, uint32_t map, const uint8_t *key, size_t key_len)
{
    for (uint32_t c = q->nodes[map].first; c != QN_NONE; c = q->nodes[c].next) {
        const qnode_t *n = &q->nodes[c];
        if (n->key_len == key_len && memcmp(q->str + n->key_off, key, key_len) == 0)
            return c;
    }
    return QN_NONE;
}

/* Returns in *idx a node of `kind` in slot `s`. In a map, an existing
 * member of that kind is reused (maps merge, lists grow) and a member of
 * another kind is replaced: the later assignment wins. In a list, a new
 * element is appended. The replaced subtree stays unreachable in the arena. */
static int slot_take(phx_query_t *q, const slot_t *s, qn_kind_t kind, uint32_t *idx)
{
    int rv;
    if (s->key_len != QN_NONE) {
        uint32_t c = map_find(q, s->node, q->str + s->key_off, s->key_len);
        if (c != QN_NONE) {
            qnode_t *n = &q->nodes[c];
            if (n->kind != kind || kind == QN_STRING) {
                n->kind = kind;
                n->first = n->last = QN_NONE;
                n->val_off = n->val_len = 0;
            }
            *idx = c;
            return 0;
        }
    }
    if ((rv = node_new(q, kind, idx)) != 0)
        return rv;
    if (s->key_len != QN_NONE) {
        q->nodes[*idx].key_off = s->key_off;
        q->nodes[*idx].key_len = s->key_len;
    }
    child_append(q, s->node, *idx);
    return 0;
}

/* Splits the decoded key as Plug does: a key ending in ']' is cut at its
 * first '[' into a name and the bracket parts separated by "]["; any other
 * key is a plain name. Stores offsets (into q->str) of up to max segments;
 * returns the number of segments, or max + 1 when there are more. */
static size_t split_key(const phx_query_t *q, uint32_t off, uint32_t len, uint32_t *seg_off,
                        uint32_t *seg_len, size_t max)
{
    const uint8_t *k = q->str + off;
    const uint8_t *open = len > 0 && k[len - 1] == ']' ? memchr(k, '[', len - 1) : NULL;
    if (open == NULL) {
        /* "a]" also lands here as the name "a", as in Plug. */
        seg_off[0] = off;
        seg_len[0] = len > 0 && k[len - 1] == ']' ? len - 1 : len;
        return 1;
    }
    size_t n = 0, end = len - 1;
    seg_off[n] = off;
    seg_len[n++] = (uint32_t)(open - k);
    size_t i = (size_t)(open - k) + 1, start = i;
    for (;;) {
        bool at_end = i >= end;
        if (!at_end && !(k[i] == ']' && i + 1 < end && k[i + 1] == '[')) {
            i++;
            continue;
        }
        if (n == max)
            return max + 1;
        seg_off[n] = off + (uint32_t)start;
        seg_len[n++] = (uint32_t)(i - start);
        if (at_end)
            return n;
        i += 2;
        start = i;
    }
}

static int assign(phx_query_t *q, uint32_t key_off, uint32_t key_len, uint32_t val_off,
                  uint32_t val_len, uint32_t max_depth)
{
    uint32_t seg_off[PHX_QUERY_DEPTH_CAP + 1], seg_len[PHX_QUERY_DEPTH_CAP + 1];
    size_t max = (size_t)(max_depth < PHX_QUERY_DEPTH_CAP ? max_depth : PHX_QUERY_DEPTH_CAP) + 1;
    size_t n = split_key(q, key_off, key_len, seg_off, seg_len, max);
    if (n > max)
        return PHX_ERR_LIMIT;
    /* An empty name with brackets ("[a]=1", "]=1") would be a list segment
     * at the top level, which is a map: Plug drops the pair. */
    if (seg_len[0] == 0 && (n > 1 || (key_len > 0 && q->str[key_off + key_len - 1] == ']')))
        return 0;
    slot_t s = {0, seg_off[0], seg_len[0]};
    int rv;
    for (size_t i = 1; i < n; i++) {
        bool is_list = seg_len[i] == 0;
        uint32_t node;
        if ((rv = slot_take(q, &s, is_list ? QN_LIST : QN_MAP, &node)) != 0)
            return rv;
        s.node = node;
        s.key_off = seg_off[i];
        s.key_len = is_list ? QN_NONE : seg_len[i];
    }
    uint32_t leaf;
    if ((rv = slot_take(q, &s, QN_STRING, &leaf)) != 0)
        return rv;
    q->nodes[leaf].val_off = val_off;
    q->nodes[leaf].val_len = val_len;
    return 0;
}

static int parse_part(phx_query_t *q, const uint8_t *part, size_t n, uint32_t max_depth)
{
    const uint8_t *eq = memchr(part, '=', n);
    size_t key_raw = eq != NULL ? (size_t)(eq - part) : n;
    uint32_t key_off = (uint32_t)q->str_len;
    form_decode(q, part, key_raw);
    uint32_t key_len = (uint32_t)(q->str_len - key_off);
    uint32_t val_off = (uint32_t)q->str_len;
    if (eq != NULL)
        form_decode(q, eq + 1, n - key_raw - 1);
    uint32_t val_len = (uint32_t)(q->str_len - val_off);
    if (!phx_utf8_valid(q->str + key_off, key_len) || !phx_utf8_valid(q->str + val_off, val_len))
        return PHX_ERR_INVALID;
    return assign(q, key_off, key_len, val_off, val_len, max_depth);
}

int phx_query_parse(phx_query_t **out, const char *qs, size_t len, const phx_query_limits_t *lim)
{
    phx_query_limits_t defaults = PHX_QUERY_LIMITS_DEFAULT;
    if (lim == NULL)
        lim = &defaults;
    if (len > lim->max_len || len > UINT32_MAX / 2)
        return PHX_ERR_LIMIT;
    int rv = PHX_ERR_NOMEM;
    phx_query_t *q = phx_calloc(1, sizeof(*q));
    if (q == NULL)
        goto fail;
    /* Decoding never lengthens anything, so one buffer of len bytes holds
     * every key and value. */
    if ((q->str = phx_malloc(len)) == NULL)
        goto fail_q;
    uint32_t root;
    if ((rv = node_new(q, QN_MAP, &root)) != 0)
        goto fail_q;
    const uint8_t *p = (const uint8_t *)qs;
    size_t params = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '&')
            continue;
        size_t n = i - start;
        const uint8_t *part = p + start;
        start = i + 1;
        if (n == 0)
            continue;
        if (++params > lim->max_params) {
            rv = PHX_ERR_LIMIT;
            goto fail_q;
        }
        if ((rv = parse_part(q, part, n, lim->max_depth)) != 0)
            goto fail_q;
    }
    *out = q;
    return 0;
fail_q:
    phx_query_free(q);
fail:
    return rv;
}

void phx_query_free(phx_query_t *q)
{
    if (q == NULL)
        return;
    phx_free(q->nodes);
    phx_free(q->str);
    phx_free(q);
}

/* ---- output ---- */

/* Depth is bounded by max_depth at parse time, so recursion is too. */
static int node_to_json(const phx_query_t *q, uint32_t idx, phx_buf_t *out)
{
    const qnode_t *n = &q->nodes[idx];
    if (n->kind == QN_STRING)
        return phx_json_append_string(out, q->str + n->val_off, n->val_len);
    bool is_map = n->kind == QN_MAP;
    if (phx_buf_append_byte(out, is_map ? '{' : '[') != 0)
        return PHX_ERR_NOMEM;
    int rv;
    for (uint32_t c = n->first; c != QN_NONE; c = q->nodes[c].next) {
        if (c != n->first && phx_buf_append_byte(out, ',') != 0)
            return PHX_ERR_NOMEM;
        if (is_map) {
            const qnode_t *k = &q->nodes[c];
            if ((rv = phx_json_append_string(out, q->str + k->key_off, k->key_len)) != 0 ||
                (rv = phx_buf_append_byte(out, ':')) != 0)
                return rv;
        }
        if ((rv = node_to_json(q, c, out)) != 0)
            return rv;
    }
    return phx_buf_append_byte(out, is_map ? '}' : ']');
}

int phx_query_to_json(const phx_query_t *q, phx_buf_t *out)
{
    return node_to_json(q, 0, out);
}

phx_query_kind_t phx_query_get(const phx_query_t *q, const char *key, size_t key_len,
                               const uint8_t **val, size_t *val_len)
{
    uint32_t c = map_find(q, 0, (const uint8_t *)key, key_len);
    phx_query_kind_t kind = PHX_QUERY_ABSENT;
    const uint8_t *v = NULL;
    size_t vl = 0;
    if (c != QN_NONE && q->nodes[c].kind == QN_STRING) {
        kind = PHX_QUERY_STRING;
        v = q->str + q->nodes[c].val_off;
        vl = q->nodes[c].val_len;
    } else if (c != QN_NONE) {
        kind = PHX_QUERY_NESTED;
    }
    if (val != NULL)
        *val = v;
    if (val_len != NULL)
        *val_len = vl;
    return kind;
}

size_t phx_query_count(const phx_query_t *q)
{
    size_t n = 0;
    for (uint32_t c = q->nodes[0].first; c != QN_NONE; c = q->nodes[c].next)
        n++;
    return n;
}
