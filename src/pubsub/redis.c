/* redis.c: the cluster backend over Redis (see redis.h). */
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "phoenix_pubsub.h"
#include "redis_tls.h"

/* One topic's pending change in this loop turn. */
typedef struct pend {
    char *name;
    size_t len;
    int op; /* +1 subscribe, -1 unsubscribe, 0 cancelled */
} pend_t;

struct phx_redis {
    phx_loop_t *loop;
    phx_pubsub_t *ps;
    const phx_config_t *cfg;
    phx_redis_url_t url;
    char node[PHX_REDIS_NODE_MAX + 1];
    size_t node_len;
    char *prefix;
    size_t prefix_len;
    phx_json_limits_t lim;
    redisAsyncContext *sub; /* subscriber mode */
    redisAsyncContext *pub; /* PUBLISH */
    bool sub_ok, pub_ok;    /* connected */
    bool is_up;             /* both connected, subscriptions sent */
    bool is_link_up;        /* node messages announced up (the :p subscription confirmed) */
    bool ever_up;
    bool is_started;
    bool is_closing;
    bool timer_init;
    int open_timers;
    int open_polls;         /* our poll handles not yet closed (one per context) */
    bool is_resolving;      /* gai in flight: closing waits for it */
    phx_redis_tls_t *tls;   /* rediss://: the TLS bridge hiredis connects through */
    bool is_tls_open;       /* closing: the bridge's handles are not all closed yet */
    uv_getaddrinfo_t gai;   /* the host name's address, looked up off the loop */
    char addr[64];          /* the address connected to (an IP literal) */
    uv_timer_t timer;       /* reconnect */
    uv_timer_t batch_timer; /* the next (UN)SUBSCRIBE batch */
    uint64_t last_batch;    /* loop time of the last batch sent */
    uint32_t attempt;
    uint64_t rng;
    size_t pending_cmds, pending_bytes;
    /* Channels of the (UN)SUBSCRIBE commands sent and not yet confirmed:
     * while some are, the next changes wait (and batch). */
    size_t sub_inflight;
    bool dropped_logged; /* one line per outage */
    pend_t *pend;
    size_t npend, pend_cap;
    uint32_t *idx; /* pend index + 1; 0 = empty */
    size_t idx_cap;
    phx_buf_t pps_chan; /* --phoenix-pubsub: the adapter's channel, or empty */
    phx_buf_t pps_out;  /* scratch: a broadcast in the adapter's format */
    phx_pps_limits_t pps_lim;
    redisAsyncContext *linger; /* closing: the publish connection flushing a goodbye */
    phx_buf_t node_chan;       /* <prefix>:p, node messages to every node */
    phx_buf_t chan;            /* scratch: a channel name */
    phx_buf_t msg;             /* scratch: an encoded message */
    phx_redis_stats_t st;
    void (*done)(void *arg);
    void *done_arg;
};

/* ---- pending subscription changes of this loop turn ---- */

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

static bool pend_reindex(phx_redis_t *r, size_t cap)
{
    uint32_t *idx = phx_calloc(cap, sizeof(*idx));
    if (idx == NULL)
        return false;
    for (size_t k = 0; k < r->npend; k++) {
        size_t i = (size_t)fnv1a(r->pend[k].name, r->pend[k].len) & (cap - 1);
        while (idx[i])
            i = (i + 1) & (cap - 1);
        idx[i] = (uint32_t)k + 1;
    }
    phx_free(r->idx);
    r->idx = idx;
    r->idx_cap = cap;
    return true;
}

/* The pending entry of `name`, created with op 0 when absent (NULL: out of
 * memory). */
static pend_t *pend_get(phx_redis_t *r, const char *name, size_t len)
{
    if (r->idx_cap) {
        size_t i = (size_t)fnv1a(name, len) & (r->idx_cap - 1);
        while (r->idx[i]) {
            pend_t *p = &r->pend[r->idx[i] - 1];
            if (p->len == len && memcmp(p->name, name, len) == 0)
                return p;
            i = (i + 1) & (r->idx_cap - 1);
        }
    }
    if (r->npend == r->pend_cap) {
        size_t cap = r->pend_cap ? r->pend_cap * 2 : 64;
        pend_t *np = phx_realloc(r->pend, cap * sizeof(*np));
        if (np == NULL)
            return NULL;
        r->pend = np;
        r->pend_cap = cap;
    }
    if ((r->npend + 1) * 2 > r->idx_cap && !pend_reindex(r, r->idx_cap ? r->idx_cap * 2 : 128))
        return NULL;
    char *copy = phx_malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, name, len);
    copy[len] = '\0';
    pend_t *p = &r->pend[r->npend];
    *p = (pend_t){.name = copy, .len = len, .op = 0};
    size_t i = (size_t)fnv1a(name, len) & (r->idx_cap - 1);
    while (r->idx[i])
        i = (i + 1) & (r->idx_cap - 1);
    r->idx[i] = (uint32_t)r->npend + 1;
    r->npend++;
    return p;
}

static void pend_clear(phx_redis_t *r)
{
    for (size_t k = 0; k < r->npend; k++)
        phx_free(r->pend[k].name);
    r->npend = 0;
    if (r->idx)
        memset(r->idx, 0, r->idx_cap * sizeof(*r->idx));
}

/* ---- commands ---- */

static int channel_name(phx_redis_t *r, const char *kind, const char *topic, size_t len)
{
    r->chan.len = 0;
    int rv = phx_buf_append(&r->chan, r->prefix, r->prefix_len);
    rv |= phx_buf_append_str(&r->chan, kind);
    rv |= phx_buf_append(&r->chan, topic, len);
    return rv ? PHX_ERR_NOMEM : 0;
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* A (UN)SUBSCRIBE being built: the channel names are owned copies. */
typedef struct cmd {
    const char *name; /* "SUBSCRIBE" / "UNSUBSCRIBE" */
    char **argv;
    size_t *lens;
    int argc, cap;
} cmd_t;

static void cmd_send(phx_redis_t *r, cmd_t *c)
{
    if (c->argc > 1 && r->sub) {
        int rv = redisAsyncCommandArgv(r->sub, on_sub_reply, r, c->argc, (const char **)c->argv,
                                       c->lens);
        if (rv != REDIS_OK) {
            PHX_LOG_WARN("event=redis_command_failed command=%s", c->name);
        } else {
            r->sub_inflight += (size_t)c->argc - 1;
            if (c->name[0] == 'S')
                r->st.subscribe_cmds++;
        }
    }
    for (int i = 1; i < c->argc; i++)
        phx_free(c->argv[i]);
    c->argc = c->argv ? 1 : 0;
}

static void cmd_dispose(cmd_t *c)
{
    phx_free(c->argv);
    phx_free(c->lens);
}

static void cmd_add_raw(phx_redis_t *r, cmd_t *c, const void *chan, size_t len);

/* Adds channel <prefix><kind><topic>; sends every 1000 channels. */
static void cmd_add(phx_redis_t *r, cmd_t *c, const char *kind, const char *topic, size_t len)
{
    if (channel_name(r, kind, topic, len) == 0)
        cmd_add_raw(r, c, r->chan.data, r->chan.len);
}

/* Adds the channel `chan` (copied) to a (UN)SUBSCRIBE command. */
static void cmd_add_raw(phx_redis_t *r, cmd_t *c, const void *chan, size_t len)
{
    if (c->argv == NULL) {
        c->cap = 1001;
        c->argv = phx_calloc((size_t)c->cap, sizeof(*c->argv));
        c->lens = phx_calloc((size_t)c->cap, sizeof(*c->lens));
        if (c->argv == NULL || c->lens == NULL) {
            phx_free(c->argv);
            phx_free(c->lens);
            c->argv = NULL;
            c->lens = NULL;
            return;
        }
        c->argv[0] = (char *)c->name;
        c->lens[0] = strlen(c->name);
        c->argc = 1;
    }
    char *copy = phx_malloc(len ? len : 1);
    if (copy == NULL)
        return;
    memcpy(copy, chan, len);
    c->argv[c->argc] = copy;
    c->lens[c->argc] = len;
    c->argc++;
    if (c->argc == c->cap)
        cmd_send(r, c);
}

static void resubscribe_one(void *arg, const char *topic, size_t len)
{
    void **a = arg;
    cmd_add(a[0], a[1], ":t:", topic, len);
}

/* ---- hiredis on the loop ----
 * Our own adapter rather than <hiredis/adapters/libuv.h>: hiredis 0.14's
 * ignores a poll error status, and libuv reports a refused connect or a
 * reset connection as one (POLLERR), so hiredis would never learn that its
 * connection failed. Here an error status lets hiredis read (or finish the
 * connect) and find the error itself. The poll handles are counted, so
 * that closing waits for them. */

typedef struct uvev {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    phx_redis_t *r;
    uv_poll_t h;
    int events;
} uvev_t;

static void maybe_closed(phx_redis_t *r);

static void ev_poll(uv_poll_t *h, int status, int events)
{
    uvev_t *p = h->data;
    if (status != 0 && p->ac) {
        /* libuv stopped the handle: hiredis finds the socket's error. */
        if (p->ac->c.flags & REDIS_CONNECTED)
            redisAsyncHandleRead(p->ac);
        else
            redisAsyncHandleWrite(p->ac);
        if (p->ac && p->events)
            uv_poll_start(&p->h, p->events, ev_poll);
        return;
    }
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void ev_update(uvev_t *p, int add, int del)
{
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->h, p->events, ev_poll);
    else
        uv_poll_stop(&p->h);
}

static void ev_add_read(void *d)
{
    ev_update(d, UV_READABLE, 0);
}

static void ev_del_read(void *d)
{
    ev_update(d, 0, UV_READABLE);
}

static void ev_add_write(void *d)
{
    ev_update(d, UV_WRITABLE, 0);
}

static void ev_del_write(void *d)
{
    ev_update(d, 0, UV_WRITABLE);
}

static void ev_closed(uv_handle_t *h)
{
    uvev_t *p = h->data;
    phx_redis_t *r = p->r;
    phx_free(p);
    r->open_polls--;
    maybe_closed(r);
}

static void ev_cleanup(void *d)
{
    uvev_t *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->h, ev_closed);
}

static int ev_attach(phx_redis_t *r, redisAsyncContext *ac)
{
    uvev_t *p = phx_calloc(1, sizeof(*p));
    if (p == NULL)
        return PHX_ERR_NOMEM;
    int rv = uv_poll_init(r->loop->uv, &p->h, ac->c.fd);
    if (rv != 0) {
        phx_free(p);
        return rv;
    }
    p->ac = ac;
    p->r = r;
    p->h.data = p;
    r->open_polls++;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = p;
    return 0;
}

/* ---- connection lifecycle ---- */

static void connect_now(phx_redis_t *r);

static void on_timer(uv_timer_t *t)
{
    phx_redis_t *r = t->data;
    if (!r->is_closing)
        connect_now(r);
}

static uint64_t next_rand(phx_redis_t *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

/* Frees both contexts (their callbacks see them as stale). */
static void drop_contexts(phx_redis_t *r)
{
    redisAsyncContext *s = r->sub, *p = r->pub;
    r->sub = r->pub = NULL;
    r->sub_ok = r->pub_ok = false;
    if (s)
        redisAsyncFree(s);
    if (p)
        redisAsyncFree(p);
    r->pending_cmds = r->pending_bytes = 0;
    r->sub_inflight = 0;
}

/* The session failed (or never came up): drop it and retry later. */
static void session_failed(phx_redis_t *r, const char *why)
{
    /* Through the TLS bridge hiredis only sees its unix socket close: the
     * bridge knows what happened on Redis's side. */
    const char *tls_why = r->tls ? phx_redis_tls_last_error(r->tls) : NULL;
    if (tls_why != NULL)
        why = tls_why;
    bool was_up = r->is_up;
    r->is_up = false;
    drop_contexts(r);
    if (r->is_link_up) {
        r->is_link_up = false;
        phx_pubsub_node_link(r->ps, PHX_NODE_LINK_DOWN);
    }
    pend_clear(r);
    if (r->is_closing)
        return;
    uint64_t d = PHX_REDIS_BACKOFF_MIN_MS;
    for (uint32_t i = 0; i < r->attempt && d < PHX_REDIS_BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > PHX_REDIS_BACKOFF_MAX_MS)
        d = PHX_REDIS_BACKOFF_MAX_MS;
    d = d / 2 + next_rand(r) % (d / 2 + 1);
    PHX_LOG_DEBUG("event=redis_retry node=%s error=\"%s\" attempt=%u retry_ms=%llu", r->node, why,
                  r->attempt + 1, (unsigned long long)d);
    if (was_up)
        PHX_LOG_WARN("event=redis_down node=%s error=\"%s\" retry_ms=%llu", r->node, why,
                     (unsigned long long)d);
    else if (r->attempt == 0 || r->attempt % 20 == 0)
        PHX_LOG_WARN("event=redis_unreachable node=%s error=\"%s\" attempt=%u retry_ms=%llu",
                     r->node, why, r->attempt + 1, (unsigned long long)d);
    r->attempt++;
    uv_timer_start(&r->timer, on_timer, d, 0);
}

static void session_up(phx_redis_t *r)
{
    r->is_up = true;
    r->attempt = 0;
    r->dropped_logged = false;
    if (r->ever_up)
        r->st.reconnects++;
    r->ever_up = true;
    pend_clear(r);
    /* The node's own channel first: the subscription count never drops to
     * 0 afterwards (hiredis 0.14 leaves subscriber mode at 0). */
    cmd_t c = {.name = "SUBSCRIBE"};
    cmd_add(r, &c, ":n:", r->node, r->node_len);
    cmd_add_raw(r, &c, r->node_chan.data, r->node_chan.len);
    if (r->pps_chan.len)
        cmd_add_raw(r, &c, r->pps_chan.data, r->pps_chan.len);
    void *arg[2] = {r, &c};
    phx_pubsub_foreach_topic(r->ps, resubscribe_one, arg);
    cmd_send(r, &c);
    cmd_dispose(&c);
    PHX_LOG_INFO("event=redis_up node=%s topics=%zu reconnects=%llu", r->node,
                 phx_pubsub_topic_count(r->ps), (unsigned long long)r->st.reconnects);
}

static void connection_ready(phx_redis_t *r, const redisAsyncContext *ac)
{
    if (ac == r->sub)
        r->sub_ok = true;
    else
        r->pub_ok = true;
    if (r->sub_ok && r->pub_ok && !r->is_up)
        session_up(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    phx_redis_t *r = ac->data;
    if (r == NULL || (ac != r->sub && ac != r->pub))
        return; /* stale */
    if (status != REDIS_OK) {
        /* hiredis frees `ac` after this callback. */
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        if (ac == r->sub)
            r->sub = NULL;
        else
            r->pub = NULL;
        session_failed(r, why);
        return;
    }
    /* The link is made when Redis answers the PING sent after AUTH and
     * SELECT (on_ready_reply): through the TLS bridge the connect is only
     * to the bridge's socket, and a Redis that wants a password refuses
     * every command while accepting the connection. */
}

static void close_timers(phx_redis_t *r);

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    phx_redis_t *r = ac->data;
    if (r != NULL && ac == r->linger) {
        /* The goodbye is out (or the connection failed): finish closing. */
        r->linger = NULL;
        if (r->timer_init && uv_is_active((uv_handle_t *)&r->timer))
            close_timers(r);
        return;
    }
    if (r == NULL || (ac != r->sub && ac != r->pub))
        return;
    char why[128];
    snprintf(why, sizeof(why), "%s", ac->err ? ac->errstr : "connection closed");
    if (ac == r->sub)
        r->sub = NULL;
    else
        r->pub = NULL;
    session_failed(r, why);
}

/* AUTH (and SELECT) answers: an error ends the session. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    phx_redis_t *r = privdata;
    redisReply *rep = reply;
    if (rep == NULL || ac->data == NULL || (ac != r->sub && ac != r->pub))
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        PHX_LOG_ERROR("event=redis_auth_failed node=%s error=\"%.*s\"", r->node,
                      (int)(rep->len > 200 ? 200 : rep->len), rep->str);
        redisAsyncDisconnect(ac);
    }
}

static void session_failed(phx_redis_t *r, const char *why);

/* Redis's answer to the PING sent after AUTH and SELECT. An error (NOAUTH:
 * no password, or a refused one) ends the session before it counts as up,
 * so the next one waits for the backoff. */
static void on_ready_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    phx_redis_t *r = privdata;
    redisReply *rep = reply;
    if (rep == NULL || ac->data == NULL || (ac != r->sub && ac != r->pub))
        return;
    if (rep->type != REDIS_REPLY_ERROR) {
        connection_ready(r, ac);
        return;
    }
    char why[128];
    snprintf(why, sizeof(why), "%.*s", (int)(rep->len > 120 ? 120 : rep->len), rep->str);
    session_failed(r, why); /* frees ac once this callback returns */
}

static redisAsyncContext *open_one(phx_redis_t *r, bool is_sub, char *why, size_t cap)
{
    /* hiredis resolves names with a blocking getaddrinfo: it only ever
     * gets an IP literal (connect_now looked the name up off the loop).
     * rediss:// goes to the TLS bridge's unix socket, which connects to
     * that address. */
    redisAsyncContext *ac = r->tls        ? redisAsyncConnectUnix(phx_redis_tls_path(r->tls))
                            : r->url.path ? redisAsyncConnectUnix(r->url.path)
                                          : redisAsyncConnect(r->addr, r->url.port);
    if (ac == NULL) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, cap, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    if (ev_attach(r, ac) != 0) {
        snprintf(why, cap, "cannot attach to the loop");
        redisAsyncFree(ac);
        return NULL;
    }
    if (!r->url.path && !r->tls)
        redisEnableKeepAlive(&ac->c);
    ac->data = r;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->url.password) {
        if (r->url.user)
            redisAsyncCommand(ac, on_setup_reply, r, "AUTH %s %s", r->url.user, r->url.password);
        else
            redisAsyncCommand(ac, on_setup_reply, r, "AUTH %s", r->url.password);
    }
    if (!is_sub && r->url.db)
        redisAsyncCommand(ac, on_setup_reply, r, "SELECT %d", r->url.db);
    redisAsyncCommand(ac, on_ready_reply, r, "PING");
    return ac;
}

static void maybe_closed(phx_redis_t *r);
static void open_both(phx_redis_t *r);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    phx_redis_t *r = req->data;
    r->is_resolving = false;
    int rv = status;
    if (rv == 0 && res != NULL)
        rv = res->ai_family == AF_INET6
                 ? uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, r->addr, sizeof(r->addr))
                 : uv_ip4_name((const struct sockaddr_in *)res->ai_addr, r->addr, sizeof(r->addr));
    uv_freeaddrinfo(res);
    if (r->is_closing) {
        maybe_closed(r);
        return;
    }
    if (rv != 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", r->url.host, uv_strerror(rv));
        session_failed(r, why);
        return;
    }
    open_both(r);
}

/* Connects both contexts; a host name is looked up first, off the loop. */
static void connect_now(phx_redis_t *r)
{
    if (r->url.path == NULL) {
        unsigned char buf[sizeof(struct in6_addr)];
        const char *h = r->url.host;
        if (uv_inet_pton(AF_INET, h, buf) == 0 || uv_inet_pton(AF_INET6, h, buf) == 0) {
            snprintf(r->addr, sizeof(r->addr), "%s", h);
        } else {
            struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
            r->gai.data = r;
            int rv = uv_getaddrinfo(r->loop->uv, &r->gai, on_resolved, h, NULL, &hints);
            if (rv == 0) {
                r->is_resolving = true;
                return;
            }
            char why[128];
            snprintf(why, sizeof(why), "cannot resolve %s: %s", h, uv_strerror(rv));
            session_failed(r, why);
            return;
        }
    }
    open_both(r);
}

static void open_both(phx_redis_t *r)
{
    char why[128] = "";
    if (r->tls && phx_redis_tls_set_target(r->tls, r->addr, r->url.port) != 0) {
        snprintf(why, sizeof(why), "not an address: %s", r->addr);
        session_failed(r, why);
        return;
    }
    r->sub = open_one(r, true, why, sizeof(why));
    if (r->sub)
        r->pub = open_one(r, false, why, sizeof(why));
    if (r->sub == NULL || r->pub == NULL)
        session_failed(r, why);
}

/* ---- the backend ---- */

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    phx_redis_t *r = ac->data;
    size_t bytes = (size_t)(uintptr_t)privdata >> 1;
    bool is_node = ((uintptr_t)privdata & 1) != 0;
    if (r == NULL)
        return;
    if (ac == r->pub) {
        r->pending_cmds -= r->pending_cmds ? 1 : 0;
        r->pending_bytes -= r->pending_bytes >= bytes ? bytes : r->pending_bytes;
    }
    redisReply *rep = reply;
    bool ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
    if (is_node)
        ok ? r->st.node_published++ : r->st.node_dropped++;
    else
        ok ? r->st.published++ : r->st.publish_dropped++;
}

static int publish_raw(phx_redis_t *r, const phx_buf_t *chan, const phx_buf_t *msg, int kind);

/* What publish_raw sends (its counters). */
enum { PUB_BCAST, PUB_PPS, PUB_NODE };

static int be_publish(void *be, const phx_bcast_t *b)
{
    phx_redis_t *r = be;
    if (!r->is_up || r->pub == NULL) {
        r->st.publish_dropped++;
        if (!r->dropped_logged && !r->is_closing) {
            r->dropped_logged = true;
            PHX_LOG_WARN("event=redis_publish_dropped node=%s reason=disconnected", r->node);
        }
        return 0;
    }
    r->msg.len = 0;
    int rv;
    /* With --phoenix-pubsub a broadcast the adapter's format can carry goes
     * out once, in that format, to the Elixir nodes and the phxd nodes
     * alike (each delivers it: the mode is :except this node). Only what it
     * cannot carry (a client's "disconnect" event) takes phxd's own. */
    if (r->pps_chan.len) {
        r->pps_out.len = 0;
        rv = phx_pps_encode(b, r->node, 0, &r->pps_lim.etf, &r->pps_out);
        if (rv == 0)
            return publish_raw(r, &r->pps_chan, &r->pps_out, PUB_PPS);
    }
    rv = phx_redis_msg_encode(&r->msg, r->node, r->node_len, b);
    if (rv == 0)
        rv = channel_name(r, ":t:", b->topic, b->topic_len);
    if (rv != 0) {
        r->st.publish_dropped++;
        return rv;
    }
    publish_raw(r, &r->chan, &r->msg, PUB_BCAST);
    return 0;
}

/* PUBLISH `chan` `msg` on the publish connection, within the output cap.
 * Returns 0, or PHX_ERR_LIMIT when it was dropped (counted). */
static int publish_raw(phx_redis_t *r, const phx_buf_t *chan, const phx_buf_t *msg, int kind)
{
    size_t bytes = msg->len + chan->len + 32;
    uint64_t *dropped = kind == PUB_NODE ? &r->st.node_dropped : &r->st.publish_dropped;
    if (r->pending_cmds >= PHX_REDIS_MAX_PENDING_CMDS ||
        r->pending_bytes + bytes > PHX_REDIS_MAX_PENDING_BYTES) {
        (*dropped)++;
        if (!r->dropped_logged) {
            r->dropped_logged = true;
            PHX_LOG_WARN("event=redis_publish_dropped node=%s reason=backlog pending_bytes=%zu",
                         r->node, r->pending_bytes);
        }
        return PHX_ERR_LIMIT;
    }
    const char *argv[3] = {"PUBLISH", (const char *)chan->data, (const char *)msg->data};
    size_t lens[3] = {7, chan->len, msg->len};
    void *priv = (void *)(uintptr_t)(bytes << 1 | (kind == PUB_NODE ? 1u : 0u));
    if (redisAsyncCommandArgv(r->pub, on_pub_reply, priv, 3, argv, lens) != REDIS_OK) {
        (*dropped)++;
        return PHX_ERR_LIMIT;
    }
    r->pending_cmds++;
    r->pending_bytes += bytes;
    if (kind == PUB_PPS)
        r->st.pps_published++;
    if (r->pending_cmds < PHX_REDIS_MAX_PENDING_CMDS / 2 &&
        r->pending_bytes < PHX_REDIS_MAX_PENDING_BYTES / 2)
        r->dropped_logged = false;
    return 0;
}

static void be_topic(phx_redis_t *r, const char *topic, size_t len, int op)
{
    if (!r->is_up)
        return; /* subscribed again from the PubSub on reconnect */
    pend_t *p = pend_get(r, topic, len);
    if (p == NULL) {
        PHX_LOG_WARN("event=redis_subscribe_lost reason=nomem");
        return;
    }
    /* An up and a down in one turn cancel. */
    p->op = p->op == -op ? 0 : op;
}

static void be_topic_up(void *be, const char *topic, size_t len)
{
    be_topic(be, topic, len, 1);
}

static void be_topic_down(void *be, const char *topic, size_t len)
{
    be_topic(be, topic, len, -1);
}

/* A node message: to every node on <prefix>:p, or to one on its node
 * channel <prefix>:n:<node>. */
static int be_node_send(void *be, const char *to, size_t to_len, const void *data, size_t len)
{
    phx_redis_t *r = be;
    if (!r->is_up || r->pub == NULL) {
        r->st.node_dropped++;
        return PHX_ERR_STATE;
    }
    if (to != NULL && (to_len == 0 || to_len > PHX_REDIS_NODE_MAX))
        return PHX_ERR_INVALID;
    const phx_buf_t *chan = &r->node_chan;
    if (to != NULL) {
        if (channel_name(r, ":n:", to, to_len) != 0)
            return PHX_ERR_NOMEM;
        chan = &r->chan;
    }
    const phx_buf_t msg = {.data = (uint8_t *)(uintptr_t)data, .len = len, .cap = len};
    return publish_raw(r, chan, &msg, PUB_NODE);
}

static const char *be_node_name(void *be)
{
    return ((phx_redis_t *)be)->node;
}

static const phx_pubsub_backend_t redis_backend = {
    .publish = be_publish,
    .topic_up = be_topic_up,
    .topic_down = be_topic_down,
    .node_send = be_node_send,
    .node_name = be_node_name,
};

static void before_flush(void *arg);

static void on_batch_timer(uv_timer_t *t)
{
    before_flush(t->data);
}

/* Once per loop turn: the subscription changes, batched. One batch is in
 * flight at a time, and batches are at least PHX_REDIS_BATCH_MS apart:
 * changes made meanwhile wait and join the next one, so a storm of joins
 * costs a few commands however its frames are spread over loop turns,
 * while a lone join on an idle node is subscribed at once. */
static void before_flush(void *arg)
{
    phx_redis_t *r = arg;
    if (r->npend == 0)
        return;
    if (!r->is_up || r->sub == NULL) {
        pend_clear(r);
        return;
    }
    if (r->sub_inflight > 0)
        return;
    uint64_t now = uv_now(r->loop->uv);
    if (r->last_batch && now < r->last_batch + PHX_REDIS_BATCH_MS) {
        if (!uv_is_active((uv_handle_t *)&r->batch_timer))
            uv_timer_start(&r->batch_timer, on_batch_timer,
                           r->last_batch + PHX_REDIS_BATCH_MS - now, 0);
        return;
    }
    r->last_batch = now;
    cmd_t unsub = {.name = "UNSUBSCRIBE"}, sub = {.name = "SUBSCRIBE"};
    for (size_t k = 0; k < r->npend; k++) {
        pend_t *p = &r->pend[k];
        if (p->op > 0)
            cmd_add(r, &sub, ":t:", p->name, p->len);
        else if (p->op < 0)
            cmd_add(r, &unsub, ":t:", p->name, p->len);
    }
    pend_clear(r);
    cmd_send(r, &unsub);
    cmd_send(r, &sub);
    cmd_dispose(&unsub);
    cmd_dispose(&sub);
}

/* A message on Phoenix.PubSub's adapter channel: Elixir's broadcasts for
 * phxd's subscribers; everything else is counted and let go. */
static void on_pps_message(phx_redis_t *r, const redisReply *data)
{
    phx_pps_msg_t m = {0};
    int rc = phx_pps_decode((const uint8_t *)data->str, data->len, r->node, &r->pps_lim, &m);
    if (rc == PHX_PPS_DELIVER) {
        phx_bcast_t b;
        phx_pps_msg_bcast(&m, &b);
        if (m.ids_only)
            b.origin.flags |= PHX_ORIGIN_IDS_ONLY;
        r->st.pps_delivered++;
        int rv = phx_pubsub_deliver(r->ps, &b);
        if (rv < 0)
            PHX_LOG_DEBUG("event=phoenix_pubsub_deliver_failed code=%d", rv);
    } else if (rc == PHX_PPS_NOT_FOR_US) {
        r->st.pps_not_for_us++;
    } else if (rc == PHX_PPS_SKIP) {
        r->st.pps_skipped++;
        PHX_LOG_DEBUG("event=phoenix_pubsub_skipped reason=%s", m.reason ? m.reason : "-");
    } else {
        r->st.pps_malformed++;
        if (r->st.pps_malformed == 1 || r->st.pps_malformed % 1000 == 0)
            PHX_LOG_WARN("event=phoenix_pubsub_malformed node=%s count=%llu error=%s", r->node,
                         (unsigned long long)r->st.pps_malformed, phx_err_name(rc));
    }
    phx_pps_msg_dispose(&m);
}

static void on_message(phx_redis_t *r, const redisReply *chan, const redisReply *data)
{
    if (chan->type != REDIS_REPLY_STRING || data->type != REDIS_REPLY_STRING)
        goto malformed;
    if (r->pps_chan.len && chan->len == r->pps_chan.len &&
        memcmp(chan->str, r->pps_chan.data, chan->len) == 0) {
        on_pps_message(r, data);
        return;
    }
    size_t plen = r->prefix_len + 3;
    bool is_node_chan = chan->len == r->node_chan.len &&
                        memcmp(chan->str, r->node_chan.data, r->node_chan.len) == 0;
    if (!is_node_chan && (chan->len < plen || memcmp(chan->str, r->prefix, r->prefix_len) != 0))
        goto malformed;
    if (is_node_chan || memcmp(chan->str + r->prefix_len, ":n:", 3) == 0) {
        /* Node messages (to all, or to this node): the Phoenix layer's,
         * which bounds and checks them itself; only the gross size here. */
        if (data->len > PHX_REDIS_NODE_MSG_MAX)
            goto malformed;
        r->st.node_received++;
        phx_pubsub_node_message(r->ps, (const uint8_t *)data->str, data->len);
        return;
    }
    if (memcmp(chan->str + r->prefix_len, ":t:", 3) != 0)
        goto malformed;
    /* No node publishes more than its largest accepted input (an API body
     * or a client message) plus the header: anything larger is dropped
     * before it is parsed or fanned out. */
    size_t max_in = r->cfg->max_body_bytes > r->cfg->max_message_bytes ? r->cfg->max_body_bytes
                                                                       : r->cfg->max_message_bytes;
    phx_redis_msg_t m;
    if (data->len > max_in + PHX_REDIS_NODE_MAX + 64 ||
        phx_redis_msg_decode((const uint8_t *)data->str, data->len, &r->lim, &m) != 0 ||
        m.event_len > r->cfg->max_topic_bytes) /* no longer than a client's event may be */
        goto malformed;
    if (m.node_len == r->node_len && memcmp(m.node, r->node, r->node_len) == 0)
        return; /* ours: delivered locally already */
    char node[PHX_REDIS_NODE_MAX + 1];
    memcpy(node, m.node, m.node_len);
    node[m.node_len] = '\0';
    phx_bcast_t b = {
        .topic = chan->str + plen,
        .topic_len = chan->len - plen,
        .event = m.event,
        .event_len = m.event_len,
        .payload = m.has_payload ? &m.payload : NULL,
        .origin = {.node = node, .sender = m.sender, .flags = m.flags},
    };
    r->st.received++;
    int rv = phx_pubsub_deliver(r->ps, &b);
    if (rv < 0)
        PHX_LOG_DEBUG("event=redis_deliver_failed code=%d", rv);
    return;
malformed:
    r->st.malformed++;
    if (r->st.malformed == 1 || r->st.malformed % 1000 == 0)
        PHX_LOG_WARN("event=redis_malformed node=%s count=%llu", r->node,
                     (unsigned long long)r->st.malformed);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    phx_redis_t *r = privdata;
    const redisReply *rep = reply;
    if (rep == NULL || ac->data == NULL || ac != r->sub)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        PHX_LOG_WARN("event=redis_error node=%s error=\"%.*s\"", r->node,
                     (int)(rep->len > 200 ? 200 : rep->len), rep->str);
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *kind = rep->element[0];
    if (kind->len == 7 && memcmp(kind->str, "message", 7) == 0) {
        on_message(r, rep->element[1], rep->element[2]);
    } else if ((kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0) ||
               (kind->len == 11 && memcmp(kind->str, "unsubscribe", 11) == 0)) {
        if (r->sub_inflight > 0)
            r->sub_inflight--;
        /* Node messages are announced once their channel (sent right after
         * the node channel, in the session's first SUBSCRIBE) is held:
         * answers to what the Phoenix layer asks then cannot be missed. */
        const redisReply *ch = rep->element[1];
        if (kind->len == 9 && !r->is_link_up && r->is_up && ch->type == REDIS_REPLY_STRING &&
            ch->len == r->node_chan.len && memcmp(ch->str, r->node_chan.data, ch->len) == 0) {
            r->is_link_up = true;
            phx_pubsub_node_link(r->ps, PHX_NODE_LINK_UP);
        }
    }
}

/* ---- creation ---- */

static bool node_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 200)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@' || c == ':' || c == '+'))
            return false;
    }
    return true;
}

int phx_redis_new(phx_redis_t **out, phx_loop_t *loop, phx_pubsub_t *ps, const phx_config_t *cfg,
                  char *err)
{
    phx_redis_t *r = phx_calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        return PHX_ERR_NOMEM;
    }
    r->loop = loop;
    r->ps = ps;
    r->cfg = cfg;
    int rv = phx_redis_url_parse(cfg->redis_url ? cfg->redis_url : "", &r->url, err);
    if (rv != 0) {
        phx_free(r);
        return rv;
    }
    /* The CA file is read now, at startup. */
    const char *ca = cfg->redis_ca_file && cfg->redis_ca_file[0] ? cfg->redis_ca_file : NULL;
    if (r->url.is_tls && (rv = phx_redis_tls_new(&r->tls, loop, r->url.host, ca,
                                                 !cfg->redis_tls_insecure, err)) != 0) {
        phx_redis_free(r);
        return rv;
    }
    if (cfg->node_name) {
        r->node_len = strlen(cfg->node_name);
        if (!node_name_ok(cfg->node_name, r->node_len)) {
            snprintf(err, PHX_ERR_LEN,
                     "--node-name must be 1 to 200 of A-Z a-z 0-9 . _ - @ : +, got \"%.60s\"",
                     cfg->node_name);
            phx_redis_free(r);
            return PHX_ERR_INVALID;
        }
        memcpy(r->node, cfg->node_name, r->node_len + 1);
    } else {
        char host[128] = "phxd";
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "phxd");
        host[sizeof(host) - 1] = '\0';
        for (char *c = host; *c; c++)
            if (!node_name_ok(c, 1))
                *c = '_';
        snprintf(r->node, sizeof(r->node), "%s-%ld", host[0] ? host : "phxd", (long)getpid());
        r->node_len = strlen(r->node);
    }
    if (cfg->phoenix_pubsub && cfg->phoenix_pubsub[0]) {
        if (phx_pps_channel(cfg->phoenix_pubsub, strlen(cfg->phoenix_pubsub), &r->pps_chan) != 0) {
            snprintf(err, PHX_ERR_LEN, "--phoenix-pubsub: not a module name: \"%.60s\"",
                     cfg->phoenix_pubsub);
            phx_redis_free(r);
            return PHX_ERR_INVALID;
        }
        r->pps_lim.max_inflated = cfg->max_message_bytes;
    }
    const char *prefix = cfg->redis_prefix && cfg->redis_prefix[0] ? cfg->redis_prefix : "phxd";
    r->prefix_len = strlen(prefix);
    if (r->prefix_len > 100 || strpbrk(prefix, " \t\r\n*?[]")) {
        snprintf(err, PHX_ERR_LEN,
                 "--redis-prefix must be at most 100 bytes without spaces or "
                 "glob characters");
        phx_redis_free(r);
        return PHX_ERR_INVALID;
    }
    r->prefix = phx_strdup(prefix);
    if (r->prefix == NULL || phx_buf_append(&r->node_chan, prefix, r->prefix_len) != 0 ||
        phx_buf_append_str(&r->node_chan, ":p") != 0) {
        snprintf(err, PHX_ERR_LEN, "out of memory");
        phx_redis_free(r);
        return PHX_ERR_NOMEM;
    }
    r->lim = PHX_JSON_LIMITS_DEFAULT;
    if (cfg->max_json_depth > 0)
        r->lim.max_depth = (uint32_t)cfg->max_json_depth;
    r->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    if (r->rng == 0)
        r->rng = 1;
    *out = r;
    return 0;
}

int phx_redis_start(phx_redis_t *r, char *err)
{
    if (r->is_started)
        return 0;
    r->is_started = true;
    uv_timer_init(r->loop->uv, &r->timer);
    uv_timer_init(r->loop->uv, &r->batch_timer);
    r->timer.data = r->batch_timer.data = r;
    r->timer_init = true;
    r->open_timers = 2;
    int rv;
    if (r->tls && (rv = phx_redis_tls_start(r->tls, err)) != 0)
        return rv;
    phx_loop_hook_t hook = {.before_flush = before_flush, .arg = r};
    phx_loop_add_hook(r->loop, &hook);
    phx_pubsub_set_backend(r->ps, &redis_backend, r);
    PHX_LOG_INFO("event=redis_connecting node=%s target=%s%s prefix=%s tls=%s", r->node,
                 r->url.path ? "unix:" : "", r->url.path ? r->url.path : r->url.host, r->prefix,
                 !r->tls                      ? "off"
                 : r->cfg->redis_tls_insecure ? "unverified"
                                              : "on");
    if (r->tls && r->cfg->redis_tls_insecure)
        PHX_LOG_WARN("event=redis_tls_unverified node=%s msg=\"--redis-tls-insecure: Redis's "
                     "certificate is not checked (tests and development only)\"",
                     r->node);
    connect_now(r);
    return 0;
}

static void maybe_closed(phx_redis_t *r)
{
    if (!r->is_closing || r->open_timers > 0 || r->open_polls > 0 || r->is_resolving ||
        r->is_tls_open || r->done == NULL)
        return;
    void (*done)(void *) = r->done;
    r->done = NULL;
    done(r->done_arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    phx_redis_t *r = h->data;
    r->open_timers--;
    maybe_closed(r);
}

static void on_tls_closed(void *arg)
{
    phx_redis_t *r = arg;
    r->is_tls_open = false;
    maybe_closed(r);
}

/* The last step of closing (after the goodbye was flushed, or not): the
 * timers and the TLS bridge, whose connections carried the goodbye. */
static void close_timers(phx_redis_t *r)
{
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    uv_close((uv_handle_t *)&r->batch_timer, on_timer_closed);
    if (phx_redis_tls_close(r->tls, on_tls_closed, r))
        r->is_tls_open = true;
}

static void on_linger_timeout(uv_timer_t *t)
{
    phx_redis_t *r = t->data;
    redisAsyncContext *ac = r->linger;
    r->linger = NULL;
    if (ac) {
        PHX_LOG_WARN("event=redis_goodbye_unconfirmed node=%s", r->node);
        redisAsyncFree(ac);
    }
    close_timers(r);
}

bool phx_redis_close(phx_redis_t *r, void (*done)(void *arg), void *arg)
{
    if (r == NULL || r->is_closing)
        return false;
    /* The Phoenix layer says goodbye while the link still works (its
     * presences leave the other nodes at once, not after the timeout). */
    if (r->is_link_up) {
        r->is_link_up = false;
        phx_pubsub_node_link(r->ps, PHX_NODE_LINK_CLOSING);
    }
    r->is_closing = true;
    r->is_up = false;
    phx_pubsub_set_backend(r->ps, NULL, NULL);
    /* What is queued on the publish connection (the goodbye) is flushed:
     * hiredis disconnects once every reply is in, within a bound. */
    redisAsyncContext *linger = r->pending_cmds > 0 && r->pub_ok ? r->pub : NULL;
    if (linger)
        r->pub = NULL;
    drop_contexts(r);
    pend_clear(r);
    if (linger) {
        r->linger = linger;
        redisAsyncDisconnect(linger); /* may finish (and call on_disconnect) at once */
    }
    if (!r->timer_init)
        return false;
    phx_loop_remove_hook(r->loop, r);
    r->done = done;
    r->done_arg = arg;
    if (r->linger)
        uv_timer_start(&r->timer, on_linger_timeout, PHX_REDIS_LINGER_MS, 0);
    else
        close_timers(r);
    return true;
}

void phx_redis_free(phx_redis_t *r)
{
    if (r == NULL)
        return;
    pend_clear(r);
    phx_free(r->pend);
    phx_free(r->idx);
    phx_buf_dispose(&r->chan);
    phx_buf_dispose(&r->node_chan);
    phx_buf_dispose(&r->msg);
    phx_buf_dispose(&r->pps_chan);
    phx_buf_dispose(&r->pps_out);
    phx_free(r->prefix);
    phx_redis_tls_free(r->tls);
    phx_redis_url_dispose(&r->url);
    phx_free(r);
}

bool phx_redis_is_connected(const phx_redis_t *r)
{
    return r->is_up;
}

const char *phx_redis_node(const phx_redis_t *r)
{
    return r->node;
}

const phx_redis_stats_t *phx_redis_stats(const phx_redis_t *r)
{
    return &r->st;
}
