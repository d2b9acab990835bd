/* presence_cluster.c: Presence replication between the nodes of a cluster
 * (see presence_cluster.h). Sits between presence.c (the merged state) and
 * the PubSub's node messages; owns the records of the other nodes (name,
 * incarnation, sequence, last heard) and the delta being built. */
#include "presence_cluster.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "endpoint.h"
#include "log.h"
#include "loop.h"
#include "presence_msg.h"
#include "pubsub.h"

typedef struct pnode {
    char name[PHX_PMSG_NODE_MAX + 1];
    size_t len;
    uint64_t incarnation;
    uint64_t seq;         /* its last delta seen (or its last state's) */
    uint64_t last_seen;   /* loop ms */
    uint64_t req_at;      /* its state asked for at (0: not waiting for it) */
    uint64_t answered_at; /* it was last sent this node's state at */
    uint32_t next_part;   /* of the state being received */
    bool in_state;        /* between a state's first and last parts */
    bool is_synced;       /* a whole state of it has been applied */
    phx_presence_src_t src;
} pnode_t;

struct phx_pcluster {
    phx_presence_t *p;
    phx_endpoint_t *ep;
    phx_pubsub_t *ps;
    pnode_t **nodes;
    size_t nnodes, cap;
    const char *self; /* the backend's node name while the link is up */
    size_t self_len;
    uint64_t incarnation;
    uint64_t seq; /* this node's last delta */
    uint64_t next_hb;
    bool is_up;
    bool is_gone;    /* goodbye said */
    bool is_lost;    /* changes made while they could not be sent */
    phx_buf_t delta; /* ops of the pending delta */
    uint32_t delta_ops;
    phx_buf_t out; /* a message being built */
    phx_pmsg_limits_t lim;
    size_t max_msg;
    bool logged_conflict;
    phx_pcluster_stats_t st;
};

static const phx_node_handler_t handler;

static uint64_t now_ms(const phx_pcluster_t *c)
{
    return c->ep->loop->uv ? uv_now(c->ep->loop->uv) : 0;
}

static void arm(phx_pcluster_t *c, uint64_t at)
{
    phx_loop_deadline_arm(c->ep->loop, at);
}

static void dropped(phx_pcluster_t *c, const char *why)
{
    c->st.dropped++;
    if (c->st.dropped == 1 || c->st.dropped % 1000 == 0)
        PHX_LOG_WARN("event=presence_message_dropped node=%s reason=%s count=%llu",
                     c->self ? c->self : "-", why, (unsigned long long)c->st.dropped);
}

/* ---- sending ---- */

/* Sends c->out to `to` (NULL: every node). */
static void send_out(phx_pcluster_t *c, const char *to, size_t to_len)
{
    if (phx_pubsub_node_send(c->ps, to, to_len, c->out.data, c->out.len) == 0)
        c->st.msgs_out++;
    else
        c->st.dropped++;
}

static int head(phx_pcluster_t *c, phx_pmsg_type_t type)
{
    c->out.len = 0;
    return phx_pmsg_put_head(&c->out, type, c->self, c->self_len, c->incarnation, c->seq);
}

/* Sends the pending delta, if any: deltas are numbered so that a gap shows. */
static void flush_delta(phx_pcluster_t *c)
{
    if (c->delta_ops == 0)
        return;
    c->seq++;
    if (head(c, PHX_PMSG_DELTA) == 0 && phx_buf_append(&c->out, c->delta.data, c->delta.len) == 0)
        send_out(c, NULL, 0);
    else
        c->st.dropped++;
    c->delta.len = 0;
    c->delta_ops = 0;
}

void phx_pcluster_note(phx_pcluster_t *c, const phx_pmsg_op_t *op)
{
    if (c == NULL || c->is_gone)
        return;
    if (!c->is_up) {
        /* Not sent: the next delta number skips one, and the heartbeat
         * after the link is back makes every node ask for the state. */
        if (phx_pubsub_node_name(c->ps) != NULL)
            c->is_lost = true;
        return;
    }
    if (c->delta_ops > 0 && c->delta.len + phx_pmsg_op_size(op) > PHX_PCLUSTER_CHUNK)
        flush_delta(c);
    if (phx_pmsg_put_op(&c->delta, op) == 0)
        c->delta_ops++;
    else
        c->is_lost = true;
}

void phx_pcluster_before_flush(phx_pcluster_t *c)
{
    if (c->is_lost && !c->is_gone) {
        c->seq++;
        c->is_lost = false;
    }
    flush_delta(c);
}

static void send_heartbeat(phx_pcluster_t *c)
{
    phx_pcluster_before_flush(c); /* the heartbeat's count covers every change */
    if (head(c, PHX_PMSG_HEARTBEAT) == 0 &&
        phx_pmsg_put_u32(&c->out, (uint32_t)phx_presence_local_count(c->p)) == 0)
        send_out(c, NULL, 0);
}

static void request_state(phx_pcluster_t *c, pnode_t *n, uint64_t now)
{
    if (n && n->req_at && now < n->req_at + PHX_PCLUSTER_RETRY_MS)
        return;
    if (head(c, PHX_PMSG_STATE_REQ) != 0 ||
        phx_pmsg_put_target(&c->out, n ? n->name : NULL, n ? n->len : 0) != 0)
        return;
    /* A request for one node goes to its node channel; for all, to all. */
    send_out(c, n ? n->name : NULL, n ? n->len : 0);
    c->st.state_reqs++;
    if (n) {
        n->req_at = now ? now : 1;
        arm(c, n->req_at + PHX_PCLUSTER_RETRY_MS);
    }
}

typedef struct state_out {
    phx_pcluster_t *c;
    pnode_t *to;
    uint32_t part;
    size_t ops_at; /* where the ops of the part being built start */
    bool failed;
} state_out_t;

static int state_part_head(state_out_t *so)
{
    phx_pcluster_t *c = so->c;
    int rv = head(c, PHX_PMSG_STATE);
    rv |= phx_pmsg_put_u32(&c->out, so->part);
    rv |= phx_pmsg_put_u8(&c->out, 0);
    so->ops_at = c->out.len;
    return rv;
}

/* Sends the part being built; its flags byte sits just before its ops. */
static void state_part_send(state_out_t *so, bool is_last)
{
    phx_pcluster_t *c = so->c;
    c->out.data[so->ops_at - 1] = is_last ? 1 : 0;
    send_out(c, so->to->name, so->to->len);
    so->part++;
}

static void state_add(void *arg, const phx_pmsg_op_t *op)
{
    state_out_t *so = arg;
    phx_pcluster_t *c = so->c;
    if (so->failed)
        return;
    if (c->out.len > so->ops_at &&
        c->out.len - so->ops_at + phx_pmsg_op_size(op) > PHX_PCLUSTER_CHUNK) {
        state_part_send(so, false);
        if (state_part_head(so) != 0) {
            so->failed = true;
            return;
        }
    }
    if (phx_pmsg_put_op(&c->out, op) != 0)
        so->failed = true;
}

/* Sends this node's whole state to `n`, in parts. */
static void answer_state(phx_pcluster_t *c, pnode_t *n, uint64_t now)
{
    if (n->answered_at && now < n->answered_at + PHX_PCLUSTER_ANSWER_MS) {
        c->st.dropped++; /* asked again too soon: it asks again after its retry time */
        return;
    }
    n->answered_at = now ? now : 1;
    /* The pending delta first: the state's number then covers all of it. */
    phx_pcluster_before_flush(c);
    state_out_t so = {.c = c, .to = n};
    if (state_part_head(&so) != 0)
        return;
    phx_presence_foreach_local(c->p, state_add, &so);
    if (so.failed) {
        c->st.dropped++;
        return;
    }
    state_part_send(&so, true);
    c->st.states_sent++;
}

/* ---- other nodes ---- */

static pnode_t *node_find(phx_pcluster_t *c, const char *name, size_t len, size_t *index)
{
    for (size_t i = 0; i < c->nnodes; i++) {
        pnode_t *n = c->nodes[i];
        if (n->len == len && memcmp(n->name, name, len) == 0) {
            if (index)
                *index = i;
            return n;
        }
    }
    return NULL;
}

static pnode_t *node_add(phx_pcluster_t *c, const phx_pmsg_t *m, uint64_t now)
{
    if (c->nnodes >= PHX_PCLUSTER_MAX_NODES)
        return NULL;
    if (c->nnodes == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        pnode_t **a = phx_realloc(c->nodes, cap * sizeof(*a));
        if (a == NULL)
            return NULL;
        c->nodes = a;
        c->cap = cap;
    }
    pnode_t *n = phx_calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    memcpy(n->name, m->node, m->node_len);
    n->len = m->node_len;
    n->incarnation = m->incarnation;
    n->last_seen = now;
    c->nodes[c->nnodes++] = n;
    arm(c, now + PHX_PCLUSTER_DOWN_MS);
    PHX_LOG_INFO("event=presence_node_up node=%s peer=%s", c->self ? c->self : "-", n->name);
    return n;
}

/* The node's presences leave everywhere here; the record goes too. */
static void node_remove(phx_pcluster_t *c, size_t index, const char *why)
{
    pnode_t *n = c->nodes[index];
    size_t left = phx_presence_remote_sweep(c->p, &n->src, true);
    PHX_LOG_INFO("event=presence_node_down node=%s peer=%s reason=%s presences=%zu",
                 c->self ? c->self : "-", n->name, why, left);
    c->nodes[index] = c->nodes[--c->nnodes];
    phx_free(n);
}

/* ---- receiving ---- */

static void apply_ops(phx_pcluster_t *c, pnode_t *n, const phx_pmsg_t *m)
{
    size_t at = 0;
    phx_pmsg_op_t op;
    while (phx_pmsg_next_op(m, &at, &op)) {
        if (op.kind == PHX_PMSG_LEAVE) {
            phx_presence_remote_leave(c->p, &n->src, &op);
            continue;
        }
        int rv = phx_presence_remote_join(c->p, &n->src, &op);
        if (rv != 0) {
            n->src.refused++;
            c->st.refused++;
            if (c->st.refused == 1 || c->st.refused % 1000 == 0)
                PHX_LOG_WARN("event=presence_remote_refused node=%s peer=%s reason=%s count=%llu",
                             c->self, n->name, rv == PHX_ERR_LIMIT ? "limit" : "out_of_memory",
                             (unsigned long long)c->st.refused);
        }
    }
}

static void on_state(phx_pcluster_t *c, pnode_t *n, const phx_pmsg_t *m, uint64_t now)
{
    if (m->part == 0) {
        n->src.gen++;
        n->src.refused = 0;
        n->in_state = true;
        n->next_part = 0;
        /* A state nobody here asked for (an answer to a request to every
         * node) is waited for too: if its last part is lost, the tick asks
         * again. */
        if (n->req_at == 0) {
            n->req_at = now ? now : 1;
            arm(c, n->req_at + PHX_PCLUSTER_RETRY_MS);
        }
    } else if (!n->in_state || m->part != n->next_part) {
        /* A part went missing: ask again (the parts that came are kept). */
        n->in_state = false;
        request_state(c, n, now);
        return;
    }
    apply_ops(c, n, m);
    n->next_part++;
    if (!m->is_last)
        return;
    /* What the state does not name has left. */
    phx_presence_remote_sweep(c->p, &n->src, false);
    n->in_state = false;
    n->is_synced = true;
    n->seq = m->seq;
    n->req_at = 0;
}

static void on_message(void *arg, const uint8_t *data, size_t len)
{
    phx_pcluster_t *c = arg;
    if (!c->is_up || c->is_gone)
        return;
    uint64_t now = now_ms(c);
    phx_pmsg_t m;
    if (len > c->max_msg) {
        dropped(c, "too_large");
        return;
    }
    if (phx_pmsg_decode(data, len, &c->lim, &m) != 0) {
        dropped(c, "malformed");
        return;
    }
    if (m.node_len == c->self_len && memcmp(m.node, c->self, c->self_len) == 0) {
        if (m.incarnation != c->incarnation) {
            /* Another process with this node's name: both would be wrong. */
            if (!c->logged_conflict)
                PHX_LOG_ERROR("event=presence_node_conflict node=%s reason=\"another process "
                              "uses this --node-name\"",
                              c->self);
            c->logged_conflict = true;
            dropped(c, "name_conflict");
        }
        return; /* this node's own, back from Redis */
    }
    size_t index = 0;
    pnode_t *n = node_find(c, m.node, m.node_len, &index);
    if (n && n->incarnation != m.incarnation) {
        /* The node restarted under the same name: its old presences are
         * gone with its old sockets. */
        node_remove(c, index, "restarted");
        n = NULL;
    }
    if (n == NULL) {
        if (m.type == PHX_PMSG_GOODBYE)
            return;
        if ((n = node_add(c, &m, now)) == NULL) {
            dropped(c, "too_many_nodes");
            return;
        }
    }
    c->st.msgs_in++;
    n->last_seen = now;
    switch (m.type) {
    case PHX_PMSG_DELTA:
        apply_ops(c, n, &m);
        if (m.seq != n->seq + 1)
            n->is_synced = false; /* a delta went missing */
        n->seq = m.seq;
        break;
    case PHX_PMSG_HEARTBEAT:
        if (m.seq != n->seq ||
            (!n->in_state && n->src.refused == 0 && n->src.metas.count != m.count))
            n->is_synced = false;
        break;
    case PHX_PMSG_STATE_REQ:
        if (m.target == NULL ||
            (m.target_len == c->self_len && memcmp(m.target, c->self, c->self_len) == 0))
            answer_state(c, n, now);
        break;
    case PHX_PMSG_STATE:
        on_state(c, n, &m, now);
        break;
    case PHX_PMSG_GOODBYE:
        c->st.goodbyes++;
        node_remove(c, index, "goodbye");
        return;
    }
    if (!n->is_synced && !n->in_state)
        request_state(c, n, now);
}

/* ---- the link ---- */

static void on_link(void *arg, int state)
{
    phx_pcluster_t *c = arg;
    uint64_t now = now_ms(c);
    if (state == PHX_NODE_LINK_UP && !c->is_gone) {
        const char *self = phx_pubsub_node_name(c->ps);
        if (self == NULL || !phx_pmsg_node_ok(self, strlen(self)))
            return;
        c->self = self;
        c->self_len = strlen(self);
        c->is_up = true;
        /* Everyone's state again (a late start or a Redis reconnect: what
         * was missed meanwhile is unknown), and this node's number, so that
         * a node that missed its deltas asks for its state. Nodes known
         * before get a whole silence window from now. */
        for (size_t i = 0; i < c->nnodes; i++) {
            c->nodes[i]->last_seen = now;
            c->nodes[i]->in_state = false;
            c->nodes[i]->req_at = now ? now : 1;
        }
        request_state(c, NULL, now);
        send_heartbeat(c);
        c->next_hb = now + PHX_PCLUSTER_HEARTBEAT_MS;
        arm(c, c->next_hb);
        arm(c, now + PHX_PCLUSTER_RETRY_MS);
    } else if (state == PHX_NODE_LINK_DOWN) {
        if (c->delta_ops > 0)
            c->is_lost = true;
        c->delta.len = 0;
        c->delta_ops = 0;
        c->is_up = false;
    } else if (state == PHX_NODE_LINK_CLOSING && c->is_up) {
        /* Nothing more goes out after this: the others drop this node's
         * presences now rather than after the silence window. */
        if (head(c, PHX_PMSG_GOODBYE) == 0)
            send_out(c, NULL, 0);
        c->is_up = false;
        c->is_gone = true;
        c->delta.len = 0;
        c->delta_ops = 0;
    }
}

uint64_t phx_pcluster_tick(phx_pcluster_t *c, uint64_t now)
{
    uint64_t next = 0;
#define NEXT(at)                                                                                   \
    do {                                                                                           \
        uint64_t at_ = (at);                                                                       \
        if (next == 0 || at_ < next)                                                               \
            next = at_;                                                                            \
    } while (0)
    if (c->is_up) {
        if (now >= c->next_hb) {
            send_heartbeat(c);
            c->next_hb = now + PHX_PCLUSTER_HEARTBEAT_MS;
        }
        NEXT(c->next_hb);
    }
    for (size_t i = 0; i < c->nnodes;) {
        pnode_t *n = c->nodes[i];
        if (now >= n->last_seen + PHX_PCLUSTER_DOWN_MS) {
            c->st.nodes_down++;
            PHX_LOG_WARN("event=presence_node_silent node=%s peer=%s silent_ms=%llu",
                         c->self ? c->self : "-", n->name,
                         (unsigned long long)(now - n->last_seen));
            node_remove(c, i, "timeout");
            continue; /* the last record moved to i */
        }
        NEXT(n->last_seen + PHX_PCLUSTER_DOWN_MS);
        if (c->is_up && n->req_at) {
            if (now >= n->req_at + PHX_PCLUSTER_RETRY_MS)
                request_state(c, n, now);
            NEXT(n->req_at + PHX_PCLUSTER_RETRY_MS);
        }
        i++;
    }
#undef NEXT
    return next;
}

/* ---- life ---- */

static const phx_node_handler_t handler = {.on_message = on_message, .on_link = on_link};

int phx_pcluster_new(phx_pcluster_t **out, phx_presence_t *p, phx_endpoint_t *ep)
{
    phx_pcluster_t *c = phx_calloc(1, sizeof(*c));
    if (c == NULL)
        return PHX_ERR_NOMEM;
    c->p = p;
    c->ep = ep;
    c->ps = ep->pubsub;
    /* A random incarnation: a restart under the same node name is told
     * from the old process. */
    uint8_t r[8];
    if (RAND_bytes(r, sizeof(r)) == 1)
        for (int i = 0; i < 8; i++)
            c->incarnation = c->incarnation << 8 | r[i];
    if (c->incarnation == 0)
        c->incarnation = uv_hrtime() | 1;
    const phx_config_t *cfg = ep->cfg;
    c->lim.max_topic = cfg->max_topic_bytes;
    c->lim.max_meta = cfg->presence_max_meta_bytes;
    c->lim.json = PHX_JSON_LIMITS_DEFAULT;
    if (cfg->max_json_depth > 0)
        c->lim.json.max_depth = (uint32_t)cfg->max_json_depth;
    /* The largest message a node sends: a part's worth of ops plus one op
     * at the bounds. */
    c->max_msg = PHX_PMSG_HEAD_MAX + 16 + PHX_PCLUSTER_CHUNK + 16 + 2 * cfg->max_topic_bytes +
                 2 * PHX_PMSG_REF_MAX + cfg->presence_max_meta_bytes;
    phx_pubsub_set_node_handler(c->ps, &handler, c);
    *out = c;
    return 0;
}

void phx_pcluster_free(phx_pcluster_t *c)
{
    if (c == NULL)
        return;
    phx_pubsub_set_node_handler(c->ps, NULL, NULL);
    for (size_t i = 0; i < c->nnodes; i++)
        phx_free(c->nodes[i]);
    phx_free(c->nodes);
    phx_buf_dispose(&c->delta);
    phx_buf_dispose(&c->out);
    phx_free(c);
}

const phx_pcluster_stats_t *phx_pcluster_stats(const phx_pcluster_t *c)
{
    return &c->st;
}

size_t phx_pcluster_node_count(const phx_pcluster_t *c)
{
    return c->nnodes;
}

void phx_pcluster_foreach_node(const phx_pcluster_t *c,
                               void (*fn)(void *arg, const char *node, size_t metas), void *arg)
{
    for (size_t i = 0; i < c->nnodes; i++)
        fn(arg, c->nodes[i]->name, c->nodes[i]->src.metas.count);
}
