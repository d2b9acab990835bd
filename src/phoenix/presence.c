/* presence.c: Phoenix.Presence on one node (see presence.h). Topics and
 * their keys sit in chained hash maps; each key keeps its metas in an
 * array (order of arrival). A topic's changes since its last diff are
 * records (a rendered meta with its key, join or leave); the diff is built
 * from them when the window closes and published through the endpoint, so
 * it is encoded once per wire format and shared. */
#include "presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "channel.h"
#include "endpoint.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "loop.h"
#include "presence_cluster.h"
#include "presence_msg.h"
#include "pubsub.h"
#include "socket.h"
#include "utf8.h"

#define REF_MAX (PHX_PMSG_REF_MAX + 1)

/* ---- a small chained hash map of named nodes ---- */

typedef struct hnode {
    struct hnode *next;
    char *name; /* owned, NUL-terminated */
    size_t len;
    uint32_t hash;
} hnode_t;

typedef struct hmap {
    hnode_t **b;
    size_t nb, n;
} hmap_t;

static uint32_t hash_of(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static hnode_t *hmap_find(const hmap_t *m, const char *name, size_t len)
{
    if (m->nb == 0)
        return NULL;
    uint32_t h = hash_of(name, len);
    for (hnode_t *n = m->b[h & (m->nb - 1)]; n; n = n->next)
        if (n->hash == h && n->len == len && memcmp(n->name, name, len) == 0)
            return n;
    return NULL;
}

static int hmap_insert(hmap_t *m, hnode_t *node)
{
    if (m->n + 1 > m->nb) {
        size_t nb = m->nb ? m->nb * 2 : 16;
        hnode_t **b = phx_calloc(nb, sizeof(*b));
        if (b == NULL)
            return PHX_ERR_NOMEM;
        for (size_t i = 0; i < m->nb; i++) {
            hnode_t *n = m->b[i];
            while (n) {
                hnode_t *next = n->next;
                n->next = b[n->hash & (nb - 1)];
                b[n->hash & (nb - 1)] = n;
                n = next;
            }
        }
        phx_free(m->b);
        m->b = b;
        m->nb = nb;
    }
    node->hash = hash_of(node->name, node->len);
    hnode_t **slot = &m->b[node->hash & (m->nb - 1)];
    node->next = *slot;
    *slot = node;
    m->n++;
    return 0;
}

static void hmap_remove(hmap_t *m, hnode_t *node)
{
    for (hnode_t **pp = &m->b[node->hash & (m->nb - 1)]; *pp; pp = &(*pp)->next) {
        if (*pp == node) {
            *pp = node->next;
            m->n--;
            return;
        }
    }
}

/* ---- the state ---- */

typedef struct ptopic ptopic_t;
typedef struct pkey pkey_t;

struct phx_pmeta {
    ptopic_t *topic; /* NULL while pending (the join callback) */
    pkey_t *key;
    phx_channel_t *ch; /* NULL: another node's (an rmeta_t) */
    char *pending_key; /* the key while pending */
    char *meta;        /* the caller's object, minified */
    size_t meta_len;
    char ref[REF_MAX];
    char prev_ref[REF_MAX]; /* "" unless updated */
    uint32_t index;         /* in key->metas */
    int32_t join_rec;       /* its pending join record, -1: none */
    uint64_t join_seq;
};

struct pkey {
    hnode_t node;
    phx_pmeta_t **metas;
    uint32_t n, cap;
    uint32_t index; /* in topic->keys */
};

typedef struct prec {
    bool is_join, is_dead;
    char *key; /* owned copy */
    size_t key_len;
    char *json; /* the rendered meta */
    size_t json_len;
} prec_t;

struct ptopic {
    hnode_t node;
    hmap_t keys;
    pkey_t **order; /* keys in order of arrival (swap-removed) */
    uint32_t nkeys, cap;
    size_t nmetas;
    prec_t *recs;
    uint32_t nrecs, rcap;
    uint64_t state_seq; /* p->seq when the last presence_state went out */
    uint64_t due;       /* when its diff goes (loop ms) */
    ptopic_t *dirty_next;
    bool is_dirty;
};

/* Another node's meta: in its topic and key as a local one is, and in its
 * source's list. */
typedef struct rmeta {
    phx_pmeta_t m;
    phx_link_t link;
    phx_presence_src_t *src;
    uint32_t gen;
} rmeta_t;

_Static_assert(offsetof(rmeta_t, m) == 0, "meta_free frees an rmeta_t through its meta");

struct phx_presence {
    phx_endpoint_t *ep;
    phx_pcluster_t *cluster;
    hmap_t topics;
    ptopic_t *dirty, *dirty_tail;
    size_t nmetas;  /* every meta, other nodes' included */
    size_t nremote; /* other nodes' */
    uint64_t seq;
    uint32_t counter;
    bool is_flushing;
};

static phx_presence_t *of(const phx_channel_t *ch)
{
    return ch->sock->ep->presence;
}

/* A phx_ref: URL-safe base64 of 6 bytes of time (µs), 3 of a hash of the
 * node's name (in a cluster; of "" alone) and 3 of a counter: unique per
 * node and track (a restart has another time), 16 characters as Phoenix's. */
static void make_ref(phx_presence_t *p, char out[REF_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    uint32_t c = ++p->counter;
    const char *node = phx_pubsub_node_name(p->ep->pubsub);
    uint32_t nh = hash_of(node ? node : "", node ? strlen(node) : 0);
    uint8_t raw[12] = {(uint8_t)(us >> 40), (uint8_t)(us >> 32), (uint8_t)(us >> 24),
                       (uint8_t)(us >> 16), (uint8_t)(us >> 8),  (uint8_t)us,
                       (uint8_t)(nh >> 16), (uint8_t)(nh >> 8),  (uint8_t)nh,
                       (uint8_t)(c >> 16),  (uint8_t)(c >> 8),   (uint8_t)c};
    phx_buf_t b = {0};
    if (phx_base64url_encode(&b, raw, sizeof(raw)) == 0 && b.len < REF_MAX) {
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    } else {
        snprintf(out, REF_MAX, "r%u", (unsigned)c);
    }
    phx_buf_dispose(&b);
}

/* The meta as the wire has it: the caller's object with phx_ref (and
 * phx_ref_prev after an update) added at the end. */
static int render_meta(const phx_pmeta_t *m, phx_buf_t *out)
{
    int rv = 0;
    if (m->meta_len <= 2) {
        rv |= phx_buf_append_str(out, "{");
    } else {
        rv |= phx_buf_append(out, m->meta, m->meta_len - 1);
        rv |= phx_buf_append_str(out, ",");
    }
    rv |= phx_buf_printf(out, "\"phx_ref\":\"%s\"", m->ref);
    if (m->prev_ref[0])
        rv |= phx_buf_printf(out, ",\"phx_ref_prev\":\"%s\"", m->prev_ref);
    rv |= phx_buf_append_str(out, "}");
    return rv ? PHX_ERR_NOMEM : 0;
}

static void arm(phx_presence_t *p, uint64_t at)
{
    phx_loop_t *loop = p->ep->loop;
    if (p->ep->cfg->presence_diff_ms > 0)
        phx_loop_deadline_arm(loop, at);
}

static void mark_dirty(phx_presence_t *p, ptopic_t *t)
{
    if (t->is_dirty)
        return;
    t->is_dirty = true;
    t->dirty_next = NULL;
    uint64_t now = p->ep->loop->uv ? uv_now(p->ep->loop->uv) : 0;
    t->due = now + (uint64_t)p->ep->cfg->presence_diff_ms;
    if (p->dirty_tail)
        p->dirty_tail->dirty_next = t;
    else
        p->dirty = t;
    p->dirty_tail = t;
    if (p->dirty == t)
        arm(p, t->due);
}

static int add_rec(phx_presence_t *p, ptopic_t *t, bool is_join, const phx_pmeta_t *m)
{
    if (t->nrecs == t->rcap) {
        uint32_t cap = t->rcap ? t->rcap * 2 : 8;
        prec_t *r = phx_realloc(t->recs, cap * sizeof(*r));
        if (r == NULL)
            return PHX_ERR_NOMEM;
        t->recs = r;
        t->rcap = cap;
    }
    phx_buf_t json = {0};
    char *key = phx_strndup(m->key->node.name, m->key->node.len);
    if (key == NULL || render_meta(m, &json) != 0) {
        phx_free(key);
        phx_buf_dispose(&json);
        return PHX_ERR_NOMEM;
    }
    size_t len;
    char *j = (char *)phx_buf_detach(&json, &len);
    t->recs[t->nrecs++] = (prec_t){is_join, false, key, m->key->node.len, j, len};
    mark_dirty(p, t);
    return 0;
}

static void free_recs(prec_t *recs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        phx_free(recs[i].key);
        phx_free(recs[i].json);
    }
    phx_free(recs);
}

static void topic_free(phx_presence_t *p, ptopic_t *t)
{
    hmap_remove(&p->topics, &t->node);
    phx_free(t->keys.b);
    phx_free(t->order);
    free_recs(t->recs, t->nrecs);
    phx_free(t->node.name);
    phx_free(t);
}

static void topic_maybe_free(phx_presence_t *p, ptopic_t *t)
{
    if (t->nkeys == 0 && !t->is_dirty && t->nrecs == 0)
        topic_free(p, t);
}

static ptopic_t *topic_get(phx_presence_t *p, const char *name, size_t len, bool create)
{
    hnode_t *n = hmap_find(&p->topics, name, len);
    if (n || !create)
        return n ? PHX_CONTAINER_OF(n, ptopic_t, node) : NULL;
    ptopic_t *t = phx_calloc(1, sizeof(*t));
    if (t == NULL || (t->node.name = phx_strndup(name, len)) == NULL) {
        phx_free(t);
        return NULL;
    }
    t->node.len = len;
    if (hmap_insert(&p->topics, &t->node) != 0) {
        phx_free(t->node.name);
        phx_free(t);
        return NULL;
    }
    return t;
}

/* ---- tracking ---- */

static void meta_free(phx_pmeta_t *m)
{
    phx_free(m->pending_key);
    phx_free(m->meta);
    /* A local meta or an rmeta_t, which starts with its meta. */
    phx_free(m);
}

/* The op that tells the other nodes of a local meta's join or leave. */
static void note_op(phx_presence_t *p, int kind, const phx_pmeta_t *m)
{
    phx_pmsg_op_t op = {
        .kind = kind,
        .topic = m->topic->node.name,
        .topic_len = m->topic->node.len,
        .key = m->key->node.name,
        .key_len = m->key->node.len,
        .ref = m->ref,
        .ref_len = strlen(m->ref),
        .prev_ref = m->prev_ref,
        .prev_ref_len = strlen(m->prev_ref),
        .meta = m->meta,
        .meta_len = m->meta_len,
    };
    phx_pcluster_note(p->cluster, &op);
}

/* Takes `m` out of its key (and the key out of the topic when it was its
 * last meta); the leave record, or the cancelled join, is the caller's. */
static void detach(phx_presence_t *p, phx_pmeta_t *m)
{
    ptopic_t *t = m->topic;
    pkey_t *k = m->key;
    k->metas[m->index] = k->metas[--k->n];
    k->metas[m->index]->index = m->index;
    t->nmetas--;
    p->nmetas--;
    if (m->ch)
        p->ep->loop->stats.presences--;
    else
        p->nremote--;
    if (k->n == 0) {
        hmap_remove(&t->keys, &k->node);
        t->order[k->index] = t->order[--t->nkeys];
        t->order[k->index]->index = k->index;
        phx_free(k->metas);
        phx_free(k->node.name);
        phx_free(k);
    }
}

/* The leave of a committed meta: cancels its join when that is still
 * pending and no presence_state showed it, else records the leave. */
static void leave_meta(phx_presence_t *p, phx_pmeta_t *m)
{
    ptopic_t *t = m->topic;
    if (m->ch)
        note_op(p, PHX_PMSG_LEAVE, m);
    if (m->join_rec >= 0 && (uint32_t)m->join_rec < t->nrecs && m->join_seq > t->state_seq) {
        t->recs[m->join_rec].is_dead = true;
    } else if (add_rec(p, t, false, m) != 0) {
        PHX_LOG_WARN("event=presence_diff_lost reason=out_of_memory");
    }
    detach(p, m);
}

/* Inserts a pending meta (its key in m->pending_key, taken) into its
 * topic, and records its join. */
static int insert(phx_presence_t *p, phx_pmeta_t *m, ptopic_t *t)
{
    size_t klen = strlen(m->pending_key);
    hnode_t *kn = hmap_find(&t->keys, m->pending_key, klen);
    pkey_t *k = kn ? PHX_CONTAINER_OF(kn, pkey_t, node) : NULL;
    if (k == NULL) {
        if (t->nkeys == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 8;
            pkey_t **o = phx_realloc(t->order, cap * sizeof(*o));
            if (o == NULL)
                goto nomem;
            t->order = o;
            t->cap = cap;
        }
        k = phx_calloc(1, sizeof(*k));
        if (k == NULL)
            goto nomem;
        k->node.name = m->pending_key;
        k->node.len = klen;
        if (hmap_insert(&t->keys, &k->node) != 0) {
            phx_free(k);
            goto nomem;
        }
        m->pending_key = NULL;
        k->index = t->nkeys;
        t->order[t->nkeys++] = k;
    }
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 2;
        phx_pmeta_t **a = phx_realloc(k->metas, cap * sizeof(*a));
        if (a == NULL) {
            if (k->n == 0) {
                hmap_remove(&t->keys, &k->node);
                t->nkeys--;
                m->pending_key = k->node.name;
                phx_free(k->metas);
                phx_free(k);
            }
            goto nomem;
        }
        k->metas = a;
        k->cap = cap;
    }
    m->topic = t;
    m->key = k;
    m->index = k->n;
    k->metas[k->n++] = m;
    t->nmetas++;
    p->nmetas++;
    if (m->ch)
        p->ep->loop->stats.presences++;
    else
        p->nremote++;
    phx_free(m->pending_key);
    m->pending_key = NULL;
    m->join_seq = ++p->seq;
    m->join_rec = (int32_t)t->nrecs;
    if (add_rec(p, t, true, m) != 0)
        m->join_rec = -1;
    return 0;
nomem:
    topic_maybe_free(p, t);
    return PHX_ERR_NOMEM;
}

/* Inserts a pending local meta into its topic and tells the other nodes. */
static int commit(phx_presence_t *p, phx_pmeta_t *m, const char *topic, size_t tlen)
{
    ptopic_t *t = topic_get(p, topic, tlen, true);
    if (t == NULL)
        return PHX_ERR_NOMEM;
    int rv = insert(p, m, t);
    if (rv == 0)
        note_op(p, PHX_PMSG_JOIN, m);
    return rv;
}

static const char *refusal_log(const phx_channel_t *ch, const char *key, const char *why)
{
    char name[256], k[160];
    const char *topic = phx_channel_topic(ch);
    PHX_LOG_INFO("event=presence_refused topic=%s key=%s reason=%s",
                 phx_log_value(name, sizeof(name), topic, strlen(topic)),
                 phx_log_value(k, sizeof(k), key, strlen(key)), why);
    ch->sock->ep->loop->stats.presence_refusals++;
    return why;
}

/* The bounds for one more meta of `key` on the channel's topic (a meta the
 * channel holds already does not count); `max_keys` (0: none) caps the keys
 * as well as cfg.presence_max_keys. */
static int check_bounds(phx_presence_t *p, phx_channel_t *ch, const char *key, size_t max_keys,
                        const char **why)
{
    const phx_config_t *cfg = p->ep->cfg;
    const char *name = phx_channel_topic(ch);
    ptopic_t *t = topic_get(p, name, strlen(name), false);
    if (t == NULL)
        return 0;
    hnode_t *kn = hmap_find(&t->keys, key, strlen(key));
    pkey_t *k = kn ? PHX_CONTAINER_OF(kn, pkey_t, node) : NULL;
    if (cfg->presence_max_keys > 0 && (max_keys == 0 || (size_t)cfg->presence_max_keys < max_keys))
        max_keys = (size_t)cfg->presence_max_keys;
    if (k == NULL && max_keys > 0 && t->nkeys >= max_keys) {
        *why = refusal_log(ch, key, "too many presences on this topic");
        return PHX_ERR_LIMIT;
    }
    if (k && cfg->presence_max_metas > 0 && k->n >= (uint32_t)cfg->presence_max_metas) {
        *why = refusal_log(ch, key, "too many metas for this key");
        return PHX_ERR_LIMIT;
    }
    return 0;
}

/* Whether the object `meta` names phx_ref or phx_ref_prev itself. */
static bool has_reserved_member(const uint8_t *meta, size_t len)
{
    phx_json_iter_t it;
    phx_json_span_t key, val;
    if (phx_json_iter_init(&it, meta, len) != 0)
        return true;
    while (phx_json_iter_next(&it, &key, &val))
        if ((key.len == 9 && memcmp(key.p, "\"phx_ref\"", 9) == 0) ||
            (key.len == 14 && memcmp(key.p, "\"phx_ref_prev\"", 14) == 0))
            return true;
    return false;
}

int phx_presence_track_why(phx_channel_t *ch, const char *key, const char *meta_json,
                           const char **why)
{
    return phx_presence_track_max(ch, key, meta_json, 0, why);
}

int phx_presence_track_max(phx_channel_t *ch, const char *key, const char *meta_json,
                           size_t max_keys, const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = NULL;
    if (ch == NULL || key == NULL || ch->state == PHX_CHAN_CLOSED || ch->sock->is_closing)
        return PHX_ERR_STATE;
    phx_presence_t *p = of(ch);
    const phx_config_t *cfg = p->ep->cfg;
    size_t klen = strlen(key);
    if (klen == 0 || klen > cfg->max_topic_bytes || !phx_utf8_valid((const uint8_t *)key, klen)) {
        *why = refusal_log(ch, key, "invalid key");
        return PHX_ERR_INVALID;
    }
    if (meta_json == NULL)
        meta_json = "{}";
    size_t mlen = strlen(meta_json);
    if (mlen > cfg->presence_max_meta_bytes) {
        *why = refusal_log(ch, key, "meta too large");
        return PHX_ERR_LIMIT;
    }
    phx_pmeta_t *m = phx_calloc(1, sizeof(*m));
    if (m == NULL || (m->meta = phx_strndup(meta_json, mlen)) == NULL ||
        (m->pending_key = phx_strndup(key, klen)) == NULL) {
        if (m)
            meta_free(m);
        return PHX_ERR_NOMEM;
    }
    phx_json_limits_t lim = {.max_depth = (uint32_t)cfg->max_json_depth};
    if (phx_json_minify((uint8_t *)m->meta, mlen, &lim, &m->meta_len) != 0 ||
        phx_json_type((const uint8_t *)m->meta, m->meta_len) != PHX_JSON_OBJECT ||
        has_reserved_member((const uint8_t *)m->meta, m->meta_len)) {
        meta_free(m);
        *why = refusal_log(ch, key, "meta must be a JSON object without phx_ref");
        return PHX_ERR_INVALID;
    }
    m->meta[m->meta_len] = '\0';
    m->ch = ch;
    m->join_rec = -1;
    phx_pmeta_t *old = ch->presence;
    bool same_key = old && strcmp(old->topic ? old->key->node.name : old->pending_key, key) == 0;
    if (!same_key) {
        int rv = check_bounds(p, ch, key, max_keys, why);
        if (rv != 0) {
            meta_free(m);
            return rv;
        }
    }
    make_ref(p, m->ref);
    if (old && old->topic && same_key)
        memcpy(m->prev_ref, old->ref, REF_MAX); /* an update: Phoenix's phx_ref_prev */
    if (old)
        phx_presence_end(ch);
    ch->presence = m;
    ch->wants_presence = true;
    if (ch->state != PHX_CHAN_JOINED)
        return 0; /* committed after the join reply */
    size_t tlen;
    const char *topic = phx_channel_topic(ch);
    tlen = strlen(topic);
    int rv = commit(p, m, topic, tlen);
    if (rv != 0) {
        ch->presence = NULL;
        meta_free(m);
    }
    return rv;
}

int phx_presence_track(phx_channel_t *ch, const char *key, const char *meta_json)
{
    return phx_presence_track_why(ch, key, meta_json, NULL);
}

void phx_presence_end(phx_channel_t *ch)
{
    phx_pmeta_t *m = ch->presence;
    if (m == NULL)
        return;
    ch->presence = NULL;
    if (m->topic) {
        phx_presence_t *p = of(ch);
        ptopic_t *t = m->topic;
        leave_meta(p, m);
        topic_maybe_free(p, t);
    }
    meta_free(m);
}

int phx_presence_untrack(phx_channel_t *ch)
{
    if (ch == NULL || ch->presence == NULL)
        return PHX_ERR_NOTFOUND;
    phx_presence_end(ch);
    return 0;
}

int phx_presence_sync(phx_channel_t *ch)
{
    if (ch == NULL || ch->state == PHX_CHAN_CLOSED)
        return PHX_ERR_STATE;
    ch->wants_presence = true;
    if (ch->state != PHX_CHAN_JOINED)
        return 0;
    phx_presence_t *p = of(ch);
    const char *topic = phx_channel_topic(ch);
    size_t tlen = strlen(topic);
    phx_buf_t b = {0};
    int rv = phx_presence_list_json(p, topic, tlen, &b);
    if (rv == 0) {
        ptopic_t *t = topic_get(p, topic, tlen, false);
        /* The joins it shows can no longer cancel out: this channel has
         * seen them. Its own join, committed just before, can: if it
         * leaves within the window, it hears nothing more anyway. */
        uint64_t seen = p->seq;
        if (ch->presence && ch->presence->topic == t && ch->presence->join_seq == p->seq)
            seen--;
        if (t && seen > t->state_seq)
            t->state_seq = seen;
        phx_payload_t pl = {b.data, b.len, false};
        rv = phx_channel_push(ch, "presence_state", &pl);
    }
    phx_buf_dispose(&b);
    return rv;
}

void phx_presence_joined(phx_channel_t *ch)
{
    if (ch->presence && ch->presence->topic == NULL) {
        const char *topic = phx_channel_topic(ch);
        if (commit(of(ch), ch->presence, topic, strlen(topic)) != 0) {
            meta_free(ch->presence);
            ch->presence = NULL;
            PHX_LOG_WARN("event=presence_refused reason=out_of_memory");
        }
    }
    if (ch->wants_presence)
        phx_presence_sync(ch);
}

/* ---- other nodes' presences (presence_cluster.c) ---- */

static phx_pmeta_t *find_meta(phx_presence_t *p, const phx_presence_src_t *src,
                              const phx_pmsg_op_t *op, ptopic_t **tp)
{
    ptopic_t *t = topic_get(p, op->topic, op->topic_len, false);
    hnode_t *kn = t ? hmap_find(&t->keys, op->key, op->key_len) : NULL;
    *tp = t;
    if (kn == NULL)
        return NULL;
    pkey_t *k = PHX_CONTAINER_OF(kn, pkey_t, node);
    for (uint32_t i = 0; i < k->n; i++) {
        phx_pmeta_t *m = k->metas[i];
        if (m->ch == NULL && PHX_CONTAINER_OF(m, rmeta_t, m)->src == src &&
            strlen(m->ref) == op->ref_len && memcmp(m->ref, op->ref, op->ref_len) == 0)
            return m;
    }
    return NULL;
}

int phx_presence_remote_join(phx_presence_t *p, phx_presence_src_t *src, const phx_pmsg_op_t *op)
{
    const phx_config_t *cfg = p->ep->cfg;
    ptopic_t *t;
    phx_pmeta_t *old = find_meta(p, src, op, &t);
    if (old) {
        PHX_CONTAINER_OF(old, rmeta_t, m)->gen = src->gen;
        return 0;
    }
    /* The bounds of a local track apply to the merged view; a message
     * from another node is checked as a client's input is. */
    if (op->topic_len > cfg->max_topic_bytes || op->key_len > cfg->max_topic_bytes ||
        op->meta_len > cfg->presence_max_meta_bytes || op->ref_len >= REF_MAX ||
        op->prev_ref_len >= REF_MAX)
        return PHX_ERR_LIMIT;
    if (cfg->presence_max_remote > 0 && p->nremote >= (size_t)cfg->presence_max_remote)
        return PHX_ERR_LIMIT;
    hnode_t *kn = t ? hmap_find(&t->keys, op->key, op->key_len) : NULL;
    pkey_t *k = kn ? PHX_CONTAINER_OF(kn, pkey_t, node) : NULL;
    if (t && k == NULL && cfg->presence_max_keys > 0 &&
        t->nkeys >= (uint32_t)cfg->presence_max_keys)
        return PHX_ERR_LIMIT;
    if (k && cfg->presence_max_metas > 0 && k->n >= (uint32_t)cfg->presence_max_metas)
        return PHX_ERR_LIMIT;
    rmeta_t *r = phx_calloc(1, sizeof(*r));
    if (r == NULL)
        return PHX_ERR_NOMEM;
    phx_pmeta_t *m = &r->m;
    m->join_rec = -1;
    if ((m->meta = phx_strndup(op->meta, op->meta_len)) == NULL ||
        (m->pending_key = phx_strndup(op->key, op->key_len)) == NULL) {
        meta_free(m);
        return PHX_ERR_NOMEM;
    }
    /* Checked by the decoder; minified so that it renders as ours do. */
    phx_json_limits_t lim = {.max_depth = (uint32_t)cfg->max_json_depth};
    if (phx_json_minify((uint8_t *)m->meta, op->meta_len, &lim, &m->meta_len) != 0) {
        meta_free(m);
        return PHX_ERR_LIMIT;
    }
    m->meta[m->meta_len] = '\0';
    memcpy(m->ref, op->ref, op->ref_len);
    memcpy(m->prev_ref, op->prev_ref, op->prev_ref_len);
    if (t == NULL && (t = topic_get(p, op->topic, op->topic_len, true)) == NULL) {
        meta_free(m);
        return PHX_ERR_NOMEM;
    }
    int rv = insert(p, m, t);
    if (rv != 0) {
        meta_free(m);
        return rv;
    }
    r->src = src;
    r->gen = src->gen;
    phx_list_append(&src->metas, &r->link);
    return 0;
}

/* A remote meta leaves (its diff recorded) and is freed. */
static void remote_drop(phx_presence_t *p, phx_pmeta_t *m)
{
    rmeta_t *r = PHX_CONTAINER_OF(m, rmeta_t, m);
    ptopic_t *t = m->topic;
    phx_list_unlink(&r->src->metas, &r->link);
    leave_meta(p, m);
    topic_maybe_free(p, t);
    meta_free(m);
}

int phx_presence_remote_leave(phx_presence_t *p, phx_presence_src_t *src, const phx_pmsg_op_t *op)
{
    ptopic_t *t;
    phx_pmeta_t *m = find_meta(p, src, op, &t);
    if (m == NULL)
        return PHX_ERR_NOTFOUND;
    remote_drop(p, m);
    return 0;
}

size_t phx_presence_remote_sweep(phx_presence_t *p, phx_presence_src_t *src, bool all)
{
    size_t n = 0;
    phx_link_t *l = src->metas.head;
    while (l) {
        phx_link_t *next = l->next;
        rmeta_t *r = PHX_CONTAINER_OF(l, rmeta_t, link);
        if (all || r->gen != src->gen) {
            remote_drop(p, &r->m);
            n++;
        }
        l = next;
    }
    return n;
}

void phx_presence_foreach_local(phx_presence_t *p, void (*fn)(void *arg, const phx_pmsg_op_t *op),
                                void *arg)
{
    for (size_t i = 0; i < p->topics.nb; i++) {
        for (hnode_t *n = p->topics.b[i]; n; n = n->next) {
            ptopic_t *t = PHX_CONTAINER_OF(n, ptopic_t, node);
            for (uint32_t k = 0; k < t->nkeys; k++) {
                pkey_t *key = t->order[k];
                for (uint32_t j = 0; j < key->n; j++) {
                    phx_pmeta_t *m = key->metas[j];
                    if (m->ch == NULL)
                        continue;
                    phx_pmsg_op_t op = {
                        .kind = PHX_PMSG_JOIN,
                        .topic = t->node.name,
                        .topic_len = t->node.len,
                        .key = key->node.name,
                        .key_len = key->node.len,
                        .ref = m->ref,
                        .ref_len = strlen(m->ref),
                        .prev_ref = m->prev_ref,
                        .prev_ref_len = strlen(m->prev_ref),
                        .meta = m->meta,
                        .meta_len = m->meta_len,
                    };
                    fn(arg, &op);
                }
            }
        }
    }
}

size_t phx_presence_local_count(const phx_presence_t *p)
{
    return p->nmetas - p->nremote;
}

size_t phx_presence_remote_count(const phx_presence_t *p)
{
    return p->nremote;
}

phx_pcluster_t *phx_presence_cluster(const phx_presence_t *p)
{
    return p->cluster;
}

/* ---- lists and diffs ---- */

static int append_key(phx_buf_t *out, const char *key, size_t len)
{
    return phx_json_append_string(out, (const uint8_t *)key, len);
}

int phx_presence_list_json(phx_presence_t *p, const char *topic, size_t len, phx_buf_t *out)
{
    ptopic_t *t = topic_get(p, topic, len, false);
    int rv = phx_buf_append_str(out, "{");
    for (uint32_t i = 0; t && i < t->nkeys && rv == 0; i++) {
        pkey_t *k = t->order[i];
        if (i)
            rv |= phx_buf_append_str(out, ",");
        rv |= append_key(out, k->node.name, k->node.len);
        rv |= phx_buf_append_str(out, ":{\"metas\":[");
        for (uint32_t j = 0; j < k->n && rv == 0; j++) {
            if (j)
                rv |= phx_buf_append_str(out, ",");
            rv |= render_meta(k->metas[j], out);
        }
        rv |= phx_buf_append_str(out, "]}");
    }
    rv |= phx_buf_append_str(out, "}");
    return rv ? PHX_ERR_NOMEM : 0;
}

static const prec_t *sort_base;

/* Joins before leaves, then by key, then in order of arrival. */
static int rec_cmp(const void *a, const void *b)
{
    const prec_t *x = &sort_base[*(const uint32_t *)a], *y = &sort_base[*(const uint32_t *)b];
    if (x->is_join != y->is_join)
        return x->is_join ? -1 : 1;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c == 0 && x->key_len != y->key_len)
        c = x->key_len < y->key_len ? -1 : 1;
    if (c)
        return c;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    return i < j ? -1 : i > j;
}

/* {"joins":{...},"leaves":{...}} of `n` records; false when nothing is
 * left of them (every join cancelled by its leave). */
static int build_diff(prec_t *recs, uint32_t n, phx_buf_t *out, bool *is_empty)
{
    uint32_t *idx = phx_malloc((n ? n : 1) * sizeof(*idx));
    if (idx == NULL)
        return PHX_ERR_NOMEM;
    uint32_t live = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!recs[i].is_dead)
            idx[live++] = i;
    *is_empty = live == 0;
    sort_base = recs;
    qsort(idx, live, sizeof(*idx), rec_cmp);
    int rv = phx_buf_append_str(out, "{\"joins\":{");
    bool in_leaves = false;
    const prec_t *prev = NULL;
    for (uint32_t i = 0; i < live && rv == 0; i++) {
        const prec_t *r = &recs[idx[i]];
        if (!r->is_join && !in_leaves) {
            if (prev)
                rv |= phx_buf_append_str(out, "]}");
            rv |= phx_buf_append_str(out, "},\"leaves\":{");
            in_leaves = true;
            prev = NULL;
        }
        bool same =
            prev && prev->key_len == r->key_len && memcmp(prev->key, r->key, r->key_len) == 0;
        if (same) {
            rv |= phx_buf_append_str(out, ",");
        } else {
            if (prev)
                rv |= phx_buf_append_str(out, "]},");
            rv |= append_key(out, r->key, r->key_len);
            rv |= phx_buf_append_str(out, ":{\"metas\":[");
        }
        rv |= phx_buf_append(out, r->json, r->json_len);
        prev = r;
    }
    if (prev)
        rv |= phx_buf_append_str(out, "]}");
    rv |= phx_buf_append_str(out, in_leaves ? "}}" : "},\"leaves\":{}}");
    phx_free(idx);
    return rv ? PHX_ERR_NOMEM : 0;
}

static void flush_topic(phx_presence_t *p, ptopic_t *t)
{
    prec_t *recs = t->recs;
    uint32_t n = t->nrecs;
    /* Detached first: a delivery may close a socket, whose leave starts
     * the topic's next diff. */
    t->recs = NULL;
    t->nrecs = t->rcap = 0;
    for (uint32_t i = 0; i < t->nkeys; i++)
        for (uint32_t j = 0; j < t->order[i]->n; j++)
            t->order[i]->metas[j]->join_rec = -1;
    phx_buf_t b = {0};
    bool is_empty = true;
    if (n && build_diff(recs, n, &b, &is_empty) == 0 && !is_empty) {
        phx_payload_t pl = {b.data, b.len, false};
        p->ep->loop->stats.presence_diffs++;
        /* To this node's subscribers only: every node computes the diffs
         * of the whole cluster's changes for its own (presence_cluster.h),
         * so a diff crossing to another node would arrive twice. */
        phx_bcast_t bc = {.topic = t->node.name,
                          .topic_len = t->node.len,
                          .event = "presence_diff",
                          .event_len = 13,
                          .payload = &pl};
        phx_pubsub_deliver(p->ep->pubsub, &bc);
    }
    phx_buf_dispose(&b);
    free_recs(recs, n);
}

/* Sends the diffs due at `now` (all of them when `all`); returns when the
 * next one is due (0: none). */
static uint64_t flush_due(phx_presence_t *p, uint64_t now, bool all)
{
    if (p->is_flushing)
        return p->dirty ? p->dirty->due : 0;
    p->is_flushing = true;
    /* Only what was dirty when this began: a topic dirtied meanwhile waits
     * for its own window. */
    ptopic_t *last = p->dirty_tail;
    while (p->dirty && (all || p->dirty->due <= now)) {
        ptopic_t *t = p->dirty;
        p->dirty = t->dirty_next;
        if (p->dirty == NULL)
            p->dirty_tail = NULL;
        t->is_dirty = false;
        t->dirty_next = NULL;
        flush_topic(p, t);
        topic_maybe_free(p, t);
        if (t == last)
            break;
    }
    p->is_flushing = false;
    return p->dirty ? p->dirty->due : 0;
}

void phx_presence_flush(phx_presence_t *p)
{
    flush_due(p, 0, true);
}

static uint64_t on_deadline(void *arg, uint64_t now)
{
    phx_presence_t *p = arg;
    uint64_t next = flush_due(p, now, false);
    uint64_t tick = phx_pcluster_tick(p->cluster, now);
    return tick && (next == 0 || tick < next) ? tick : next;
}

static void before_flush(void *arg)
{
    phx_presence_t *p = arg;
    phx_pcluster_before_flush(p->cluster);
    if (p->ep->cfg->presence_diff_ms <= 0 && p->dirty)
        flush_due(p, 0, true);
}

/* ---- life ---- */

int phx_presence_new(phx_presence_t **out, phx_endpoint_t *ep)
{
    phx_presence_t *p = phx_calloc(1, sizeof(*p));
    if (p == NULL)
        return PHX_ERR_NOMEM;
    p->ep = ep;
    int rv = phx_pcluster_new(&p->cluster, p, ep);
    if (rv != 0) {
        phx_free(p);
        return rv;
    }
    phx_loop_hook_t hook = {.before_flush = before_flush, .on_deadline = on_deadline, .arg = p};
    phx_loop_add_hook(ep->loop, &hook);
    *out = p;
    return 0;
}

void phx_presence_free(phx_presence_t *p)
{
    if (p == NULL)
        return;
    phx_loop_remove_hook(p->ep->loop, p);
    for (size_t i = 0; i < p->topics.nb; i++) {
        hnode_t *n = p->topics.b[i];
        while (n) {
            hnode_t *next = n->next;
            ptopic_t *t = PHX_CONTAINER_OF(n, ptopic_t, node);
            for (uint32_t k = 0; k < t->nkeys; k++) {
                pkey_t *key = t->order[k];
                for (uint32_t j = 0; j < key->n; j++) {
                    if (key->metas[j]->ch)
                        key->metas[j]->ch->presence = NULL;
                    meta_free(key->metas[j]);
                }
                phx_free(key->metas);
                phx_free(key->node.name);
                phx_free(key);
            }
            phx_free(t->keys.b);
            phx_free(t->order);
            free_recs(t->recs, t->nrecs);
            phx_free(t->node.name);
            phx_free(t);
            n = next;
        }
    }
    phx_free(p->topics.b);
    /* The sources' lists pointed at metas freed above: the cluster only
     * frees its node records. */
    phx_pcluster_free(p->cluster);
    phx_free(p);
}

size_t phx_presence_count(const phx_presence_t *p)
{
    return p->nmetas;
}

size_t phx_presence_topic_count(const phx_presence_t *p)
{
    return p->topics.n;
}

size_t phx_presence_key_metas(phx_presence_t *p, const char *topic, const char *key)
{
    ptopic_t *t = topic_get(p, topic, strlen(topic), false);
    hnode_t *kn = t ? hmap_find(&t->keys, key, strlen(key)) : NULL;
    return kn ? PHX_CONTAINER_OF(kn, pkey_t, node)->n : 0;
}

bool phx_event_is_reserved(const char *event, size_t len)
{
    return (len >= 4 && memcmp(event, "phx_", 4) == 0) ||
           (len == 14 && memcmp(event, "presence_state", 14) == 0) ||
           (len == 13 && memcmp(event, "presence_diff", 13) == 0);
}

const char *phx_presence_key_of(const phx_channel_t *ch)
{
    const phx_pmeta_t *pm = ch->presence;
    if (pm == NULL)
        return NULL;
    return pm->key ? pm->key->node.name : pm->pending_key;
}
