/* longpoll.c: the LongPoll transport (docs/protocol.md §5). Every answer
 * is HTTP 200 with the outcome in the JSON body; a session is opened by a
 * GET answered 410 with its token, polled by GETs (parked up to the poll
 * window), fed by POSTs (one JSON message, or up to 100 NDJSON lines of
 * JSON or base64 binary), and ends after 1.5 windows without a poll. The
 * session owns its Phoenix socket, which sees this transport through
 * phx_transport_ops_t like any other. */
#include "longpoll.h"

#include <string.h>

#include <openssl/rand.h>

#include "base64.h"
#include "http.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "query.h"
#include "ring.h"
#include "socket.h"
#include "token.h"

#define SESSION_SALT "phxd longpoll session"
#define SESSION_MAX_AGE 1209600 /* two weeks, as Phoenix */
#define MAX_LINES 100

typedef struct lp_session lp_session_t;
typedef struct lp_user lp_user_t;

/* A user id with live sessions: the per-user bound. */
struct lp_user {
    lp_user_t *next; /* hash chain */
    uint32_t sessions;
    char name[];
};

struct lp_session {
    phx_longpoll_t *lp;
    phx_link_t link;     /* in the activity list, oldest poll first */
    lp_session_t *hnext; /* hash chain */
    lp_session_t *dirty_next;
    uint64_t last_poll;
    uint8_t id[16];
    char *token;
    phx_socket_t *sock;
    phx_conn_t *parked; /* the GET waiting for messages */
    phx_ring_t msgs;    /* queued messages */
    size_t mbytes;      /* payload bytes of the queued messages */
    lp_user_t *user;    /* the session's user id, counted; or NULL */
    uint32_t in_dispatch;
    bool is_ending;
    bool is_dirty;
};

struct phx_longpoll {
    phx_endpoint_t *ep;
    phx_token_t *token;
    lp_session_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    phx_list_t active; /* sessions by their last poll, oldest first */
    lp_session_t *dirty;
    lp_user_t *users[256]; /* user ids with sessions, by hash */
    phx_rcbuf_t *comma;    /* "," between the messages of an answer */
};

static int lp_send(void *t, phx_rcbuf_t *msg);
static void lp_close(void *t, int code);

static const phx_transport_ops_t lp_transport = {
    .name = "longpoll",
    .send = lp_send,
    .close = lp_close,
    .supports_binary = false, /* server -> client binary cannot be carried */
};

/* ---- the session table ---- */

static size_t bucket_of(const phx_longpoll_t *lp, const uint8_t id[16])
{
    uint64_t h;
    memcpy(&h, id, sizeof(h)); /* ids are random: their bytes are the hash */
    return (size_t)h & (lp->nbuckets - 1);
}

static lp_session_t *lookup(const phx_longpoll_t *lp, const uint8_t id[16])
{
    for (lp_session_t *s = lp->buckets[bucket_of(lp, id)]; s; s = s->hnext)
        if (memcmp(s->id, id, 16) == 0)
            return s;
    return NULL;
}

static int table_insert(phx_longpoll_t *lp, lp_session_t *s)
{
    if (lp->count + 1 > lp->nbuckets) {
        size_t n = lp->nbuckets * 2;
        lp_session_t **b = phx_calloc(n, sizeof(*b));
        if (b == NULL)
            return PHX_ERR_NOMEM;
        for (size_t i = 0; i < lp->nbuckets; i++) {
            lp_session_t *e = lp->buckets[i];
            while (e) {
                lp_session_t *next = e->hnext;
                uint64_t h;
                memcpy(&h, e->id, sizeof(h));
                e->hnext = b[h & (n - 1)];
                b[h & (n - 1)] = e;
                e = next;
            }
        }
        phx_free(lp->buckets);
        lp->buckets = b;
        lp->nbuckets = n;
    }
    size_t i = bucket_of(lp, s->id);
    s->hnext = lp->buckets[i];
    lp->buckets[i] = s;
    lp->count++;
    return 0;
}

static void table_remove(phx_longpoll_t *lp, lp_session_t *s)
{
    for (lp_session_t **pp = &lp->buckets[bucket_of(lp, s->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            lp->count--;
            return;
        }
    }
}

/* ---- users ---- */

static lp_user_t **user_slot(phx_longpoll_t *lp, const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    lp_user_t **pp = &lp->users[h % (sizeof(lp->users) / sizeof(lp->users[0]))];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* The sessions `name` has now. */
static uint32_t user_sessions(phx_longpoll_t *lp, const char *name)
{
    lp_user_t *u = *user_slot(lp, name);
    return u ? u->sessions : 0;
}

/* Counts one more session of `name`; NULL when out of memory. */
static lp_user_t *user_take(phx_longpoll_t *lp, const char *name)
{
    lp_user_t **pp = user_slot(lp, name);
    if (*pp == NULL) {
        size_t n = strlen(name) + 1;
        lp_user_t *u = phx_calloc(1, sizeof(*u) + n);
        if (u == NULL)
            return NULL;
        memcpy(u->name, name, n);
        *pp = u;
    }
    (*pp)->sessions++;
    return *pp;
}

static void user_release(phx_longpoll_t *lp, lp_user_t *u)
{
    if (u == NULL || --u->sessions > 0)
        return;
    lp_user_t **pp = user_slot(lp, u->name);
    PHX_ASSERT(*pp == u);
    *pp = u->next;
    phx_free(u);
}

/* ---- parking: s->parked == c exactly when c->http->parked == s ---- */

static void unpark(lp_session_t *s)
{
    phx_conn_t *c = s->parked;
    if (c == NULL)
        return;
    PHX_ASSERT(c->http == NULL || phx_http_waiting_for(c) == s);
    s->parked = NULL;
    phx_http_unwait(c);
}

static void answer_poll(lp_session_t *s, phx_conn_t *c, int status);

/* The parked GET's window passed: 204, and the client polls again. */
static void poll_timeout(phx_conn_t *c, void *arg)
{
    answer_poll(arg, c, 204);
}

/* The parked GET's connection is closing (the HTTP layer forgot the wait). */
static void poll_closed(phx_conn_t *c, void *arg)
{
    lp_session_t *s = arg;
    if (s->parked == c)
        s->parked = NULL;
}

static const phx_http_waiter_t poll_waiter = {
    .on_timeout = poll_timeout,
    .on_closed = poll_closed,
};

static void park(lp_session_t *s, phx_conn_t *c)
{
    PHX_ASSERT(s->parked == NULL && phx_http_waiting_for(c) == NULL);
    s->parked = c;
    phx_http_wait(c, &poll_waiter, s);
}

/* ---- activity ---- */

static uint64_t idle_limit(const phx_longpoll_t *lp)
{
    return (uint64_t)lp->ep->cfg->longpoll_window_ms * 3 / 2;
}

static lp_session_t *oldest(const phx_longpoll_t *lp)
{
    return lp->active.head ? PHX_CONTAINER_OF(lp->active.head, lp_session_t, link) : NULL;
}

static void activity_unlink(phx_longpoll_t *lp, lp_session_t *s)
{
    phx_list_unlink(&lp->active, &s->link);
}

static void touch(phx_longpoll_t *lp, lp_session_t *s)
{
    activity_unlink(lp, s);
    s->last_poll = uv_now(lp->ep->loop->uv);
    phx_list_append(&lp->active, &s->link);
    phx_loop_deadline_arm(lp->ep->loop, oldest(lp)->last_poll + idle_limit(lp));
}

/* ---- responses ---- */

static void reply_json(phx_conn_t *c, const void *json, size_t len)
{
    phx_http_write(c, 200, "access-control-allow-origin: *\r\n", "application/json; charset=utf-8",
                   json, len, PHX_HTTP_NO_CACHE);
}

static void reply_status(phx_conn_t *c, int status)
{
    char body[32];
    int n = snprintf(body, sizeof(body), "{\"status\":%d}", status);
    reply_json(c, body, (size_t)n);
}

/* The message as a JSON string, made once per message and kept with it for
 * every other session that receives the same broadcast. */
static phx_rcbuf_t *as_json_string(phx_rcbuf_t *m)
{
    if (m->alt)
        return m->alt;
    phx_buf_t b = {0};
    if (phx_json_append_string(&b, m->data + m->payload_off, m->len - m->payload_off) != 0) {
        phx_buf_dispose(&b);
        return NULL;
    }
    phx_rcbuf_t *alt = phx_rcbuf_new(b.len);
    if (alt) {
        memcpy(alt->data, b.data, b.len);
        alt->len = (uint32_t)b.len;
        m->alt = alt;
    }
    phx_buf_dispose(&b);
    return alt;
}

static void drop_messages(lp_session_t *s)
{
    phx_ring_clear(&s->msgs);
    s->mbytes = 0;
}

/* A small buffer holding `len` bytes. */
static phx_rcbuf_t *small_buf(const void *data, size_t len)
{
    phx_rcbuf_t *b = phx_rcbuf_new(len);
    if (b) {
        memcpy(b->data, data, len);
        b->len = (uint32_t)len;
    }
    return b;
}

/* Answers `c` with the queued messages (possibly none) and `status`:
 * {"messages":[...],"status":N,"token":"..."}, written from the messages'
 * shared buffers (no copy per session). */
static void answer_poll(lp_session_t *s, phx_conn_t *c, int status)
{
    if (s->parked == c)
        unpark(s);
    /* The head, each message with a comma before all but the first, the
     * tail. */
    size_t n = 2 * (size_t)s->msgs.len + 2;
    phx_rcbuf_t **parts = phx_calloc(n, sizeof(*parts));
    phx_buf_t tail = {0};
    size_t np = 0;
    bool ok = parts != NULL && (parts[np] = small_buf("{\"messages\":[", 13)) != NULL;
    if (ok)
        np++;
    for (uint32_t i = 0; i < s->msgs.len && ok; i++) {
        phx_rcbuf_t *str = as_json_string(phx_ring_at(&s->msgs, i));
        if (str == NULL) {
            ok = false;
            break;
        }
        if (i > 0)
            parts[np++] = phx_rcbuf_ref(s->lp->comma);
        parts[np++] = phx_rcbuf_ref(str);
    }
    ok = ok && phx_buf_printf(&tail, "],\"status\":%d,\"token\":", status) == 0 &&
         phx_json_append_string(&tail, (const uint8_t *)s->token, strlen(s->token)) == 0 &&
         phx_buf_append_byte(&tail, '}') == 0;
    phx_rcbuf_t *last = ok ? small_buf(tail.data, tail.len) : NULL;
    phx_buf_dispose(&tail);
    if (last == NULL) {
        for (size_t i = 0; i < np; i++)
            phx_rcbuf_unref(parts[i]);
        phx_free(parts);
        phx_http_respond(c, 500, NULL, NULL, NULL, 0);
        return;
    }
    parts[np++] = last;
    /* Delivered: the buffer empties (at-most-once, as Phoenix). */
    drop_messages(s);
    phx_http_write_parts(c, 200, "access-control-allow-origin: *\r\n",
                         "application/json; charset=utf-8", parts, np, PHX_HTTP_NO_CACHE);
    for (size_t i = 0; i < np; i++)
        phx_rcbuf_unref(parts[i]);
    phx_free(parts);
}

/* ---- session lifecycle ---- */

static void dirty_unlink(phx_longpoll_t *lp, lp_session_t *s)
{
    if (!s->is_dirty)
        return;
    for (lp_session_t **pp = &lp->dirty; *pp; pp = &(*pp)->dirty_next) {
        if (*pp == s) {
            *pp = s->dirty_next;
            break;
        }
    }
    s->is_dirty = false;
}

static void session_free(lp_session_t *s)
{
    phx_longpoll_t *lp = s->lp;
    table_remove(lp, s);
    activity_unlink(lp, s);
    dirty_unlink(lp, s);
    if (s->parked) {
        /* The parked poll ends now; the next one finds no session. */
        phx_conn_t *c = s->parked;
        answer_poll(s, c, 204);
    }
    PHX_ASSERT(s->parked == NULL);
    phx_socket_t *sock = s->sock;
    s->sock = NULL;
    if (sock)
        phx_socket_closed(sock);
    drop_messages(s);
    user_release(lp, s->user);
    phx_free(s->token);
    phx_free(s);
}

/* Ends the session now, or when the code handling one of its messages
 * returns. `code` is the WebSocket close code a WebSocket would have
 * closed with (the socket's close log line). */
static void session_end(lp_session_t *s, const char *why, int code)
{
    if (!s->is_ending)
        PHX_LOG_DEBUG("event=longpoll_session_end reason=%s", why);
    if (s->sock)
        phx_socket_set_close_code(s->sock, code);
    s->is_ending = true;
    if (s->in_dispatch == 0)
        session_free(s);
}

static int lp_send(void *t, phx_rcbuf_t *msg)
{
    lp_session_t *s = t;
    phx_endpoint_t *ep = s->lp->ep;
    if (s->is_ending) {
        phx_rcbuf_unref(msg);
        return PHX_ERR_CLOSED;
    }
    if (msg->is_binary) {
        /* LongPoll cannot carry server -> client binary (docs/protocol.md §5.7). */
        phx_rcbuf_unref(msg);
        return PHX_ERR_INVALID;
    }
    size_t bytes = msg->len - msg->payload_off;
    /* The same bounds as a WebSocket's queue: a count, and the bytes of
     * queue_limit_bytes. The next poll then finds no session (410), which
     * phoenix.js treats as a closed session and reconnects from. */
    if (s->msgs.len >= (uint32_t)ep->cfg->longpoll_max_messages ||
        s->mbytes + bytes > ep->cfg->queue_limit_bytes) {
        phx_rcbuf_unref(msg);
        ep->loop->stats.slow_closes++;
        PHX_LOG_INFO("event=slow_consumer transport=longpoll buffered=%u bytes=%zu", s->msgs.len,
                     s->mbytes);
        session_end(s, "buffer_full", 1008);
        return PHX_ERR_LIMIT;
    }
    if (phx_ring_push(&s->msgs, msg, 8) != 0) {
        phx_rcbuf_unref(msg);
        session_end(s, "out_of_memory", 1011);
        return PHX_ERR_NOMEM;
    }
    s->mbytes += bytes;
    ep->loop->stats.msgs_out++;
    if (s->parked && !s->is_dirty) {
        /* Answer once per loop turn, with everything queued by then. */
        s->is_dirty = true;
        s->dirty_next = s->lp->dirty;
        s->lp->dirty = s;
    }
    return 0;
}

static void lp_close(void *t, int code)
{
    session_end(t, code == 1001 ? "disconnect" : "closed", code);
}

/* ---- requests ---- */

/* The session token of a request: the x-phoenix-longpoll-token header
 * first, else the last `token` query param (docs/protocol.md §5.2, §5.9). */
static lp_session_t *resolve(phx_longpoll_t *lp, phx_http_t *h, const phx_query_t *q)
{
    const char *tok = phx_http_header(h, "x-phoenix-longpoll-token");
    size_t len = tok ? strlen(tok) : 0;
    if (tok == NULL) {
        const uint8_t *v;
        if (q == NULL || phx_query_get(q, "token", 5, &v, &len) != PHX_QUERY_STRING)
            return NULL;
        tok = (const char *)v;
    }
    phx_term_t *data = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    phx_max_age_t age = {PHX_MAX_AGE_TOKEN, 0, false};
    if (phx_token_verify(lp->token, tok, len, now_ms, age, &data) != 0)
        return NULL; /* a user token or a forged one: no session */
    lp_session_t *s = NULL;
    if (data->type == PHX_TERM_BINARY && data->u.bytes.len == 16)
        s = lookup(lp, data->u.bytes.data);
    phx_term_free(data);
    return s && !s->is_ending ? s : NULL;
}

static const char *header_of(void *ctx, const char *name)
{
    return phx_http_header(ctx, name);
}

static void admit(phx_longpoll_t *lp, phx_conn_t *c, phx_connect_t *ci, int status);

/* admit, for a connect step answered later (phx_endpoint_connect_wait). */
static void admit_later(phx_conn_t *c, phx_connect_t *d, int status, uint8_t *rest, size_t rest_len,
                        void *ctx)
{
    admit(ctx, c, d, status);
}

static void open_session(phx_longpoll_t *lp, phx_conn_t *c)
{
    phx_endpoint_t *ep = lp->ep;
    phx_http_t *h = c->http;
    if (lp->count >= (size_t)ep->cfg->longpoll_max_sessions) {
        phx_stats_refused(&ep->loop->stats, PHX_REFUSE_CAPACITY, c->peer, lp_transport.name);
        phx_http_respond(c, 503, "access-control-allow-origin: *\r\n", NULL, NULL, 0);
        return;
    }
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(h, &path, &path_len, &query, &query_len);
    phx_connect_t ci;
    phx_connect_init(&ci, ep, &lp_transport, c->peer, c->peer_port, (const char *)h->url.data,
                     h->url.len, query, query_len, header_of, h);
    ci.http = h;
    const char *auth = phx_http_header(h, "x-phoenix-authtoken");
    int rv = 0;
    if (auth && (ci.auth_token = phx_strdup(auth)) == NULL)
        rv = PHX_ERR_NOMEM;
    int status = rv != 0 ? phx_endpoint_refused(ep, &ci, rv) : phx_endpoint_connect(ep, &ci);
    if (status == PHX_ERR_AGAIN) {
        /* The connect callback answers later: the GET waits. */
        phx_endpoint_connect_wait(ep, &ci, c, NULL, 0, "access-control-allow-origin: *\r\n",
                                  admit_later, lp);
        return;
    }
    admit(lp, c, &ci, status);
}

/* The connect step answered `status` (0: admitted): the refusal, or a new
 * session. Disposes `ci`. */
static void admit(phx_longpoll_t *lp, phx_conn_t *c, phx_connect_t *ci, int status)
{
    phx_endpoint_t *ep = lp->ep;
    if (status == 400) {
        phx_http_write(c, 400, "access-control-allow-origin: *\r\n", NULL, NULL, 0, 0);
        return;
    } else if (status == 503) {
        phx_http_respond(c, 503, "access-control-allow-origin: *\r\n", NULL, NULL, 0);
        return;
    } else if (status != 0) {
        reply_status(c, status); /* LongPoll's 200 with the status in the body */
        return;
    }
    lp_session_t *s = phx_calloc(1, sizeof(*s));
    phx_buf_t tok = {0};
    phx_term_t *data = NULL;
    if (s == NULL || RAND_bytes(s->id, sizeof(s->id)) != 1 ||
        phx_term_new_binary(&data, s->id, sizeof(s->id)) != 0)
        goto fail;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    phx_max_age_t age = {PHX_MAX_AGE_SECONDS, SESSION_MAX_AGE, false};
    if (phx_token_sign(lp->token, data, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, age,
                       &tok) != 0)
        goto fail;
    s->token = (char *)phx_buf_detach(&tok, NULL);
    s->lp = lp;
    if (phx_socket_new(&s->sock, ci, s) != 0)
        goto fail;
    const char *uid = phx_socket_assign(s->sock, "user_id");
    if (uid && user_sessions(lp, uid) >= (uint32_t)ep->cfg->longpoll_max_sessions_per_user) {
        phx_socket_closed(s->sock); /* never opened: no close line */
        s->sock = NULL;
        phx_term_free(data);
        phx_free(s->token);
        phx_free(s);
        phx_connect_dispose(ci);
        phx_stats_refused(&ep->loop->stats, PHX_REFUSE_CAPACITY, c->peer, lp_transport.name);
        phx_http_respond(c, 503, "access-control-allow-origin: *\r\n", NULL, NULL, 0);
        return;
    }
    if (uid && (s->user = user_take(lp, uid)) == NULL) {
        phx_socket_closed(s->sock);
        s->sock = NULL;
        goto fail;
    }
    if (table_insert(lp, s) != 0) {
        user_release(lp, s->user);
        phx_socket_closed(s->sock);
        s->sock = NULL;
        goto fail;
    }
    phx_term_free(data);
    phx_connect_dispose(ci);
    touch(lp, s);
    phx_socket_opened(s->sock, c->peer);
    answer_poll(s, c, 410);
    return;
fail:
    phx_term_free(data);
    phx_buf_dispose(&tok);
    if (s) {
        phx_free(s->token);
        phx_free(s);
    }
    phx_connect_dispose(ci);
    phx_http_respond(c, 503, "access-control-allow-origin: *\r\n", NULL, NULL, 0);
}

static void get(phx_longpoll_t *lp, phx_conn_t *c, lp_session_t *s)
{
    if (s == NULL) {
        open_session(lp, c);
        return;
    }
    touch(lp, s);
    if (s->msgs.len > 0) {
        answer_poll(s, c, 200);
        return;
    }
    if (s->parked) {
        /* One parked poll per session: the newer one replaces the older.
         * Answering it never runs that connection's next request here
         * (phx_http_write defers it), so `s` stays valid. */
        PHX_ASSERT(s->parked != c);
        answer_poll(s, s->parked, 204);
    }
    park(s, c);
}

/* Hands one message to the session's socket as a WebSocket frame would be. */
static void deliver(lp_session_t *s, bool is_binary, uint8_t *data, size_t len)
{
    s->lp->ep->loop->stats.msgs_in++;
    s->in_dispatch++;
    phx_socket_handle(s->sock, is_binary, data, len);
    s->in_dispatch--;
}

static void post(phx_longpoll_t *lp, phx_conn_t *c, lp_session_t *s)
{
    if (s == NULL) {
        reply_status(c, 410);
        return;
    }
    phx_http_t *h = c->http;
    const char *ct = phx_http_header(h, "content-type");
    uint8_t *body = h->body.data;
    size_t len = h->body.len;
    int status = 200;
    s->in_dispatch++; /* the session outlives this request's handling */
    if (ct && strcmp(ct, "application/x-ndjson") == 0) {
        size_t off = 0;
        phx_buf_t bin = {0};
        for (int line = 0; line < MAX_LINES && off <= len && !s->is_ending; line++) {
            uint8_t *start = body ? body + off : NULL;
            uint8_t *nl = body ? memchr(start, '\n', len - off) : NULL;
            size_t llen = nl ? (size_t)(nl - start) : len - off;
            off += llen + 1;
            if (llen > 0 && start[llen - 1] == '\r')
                llen--;
            if (llen > 0 && start[0] == '[') {
                deliver(s, false, start, llen);
            } else {
                /* Standard base64 with padding, as btoa writes it. */
                bin.len = 0;
                if (llen % 4 != 0 || phx_base64_decode(&bin, (const char *)start, llen) != 0) {
                    status = 500;
                    break;
                }
                deliver(s, true, bin.data, bin.len);
            }
            if (nl == NULL)
                break;
        }
        phx_buf_dispose(&bin);
    } else {
        deliver(s, false, body, len);
    }
    s->in_dispatch--;
    if (s->is_ending) {
        /* A message the session could not handle ended it: never
         * acknowledged, as Phoenix answers after its window. */
        session_free(s);
        reply_status(c, 408);
        return;
    }
    if (status == 500) {
        phx_http_write(c, 500, "access-control-allow-origin: *\r\n", NULL, NULL, 0, 0);
        return;
    }
    reply_status(c, 200);
}

static void options(phx_conn_t *c)
{
    phx_buf_t req = {0}, hdr = {0};
    int rv = phx_http_header_join(c->http, "access-control-request-headers", &req);
    if (rv == 0)
        rv = phx_buf_printf(&hdr,
                            "access-control-allow-origin: *\r\n"
                            "access-control-allow-headers: %s\r\n"
                            "access-control-allow-methods: get, post, options\r\n"
                            "access-control-max-age: 3600\r\n",
                            req.data ? (const char *)req.data : "");
    phx_buf_dispose(&req);
    if (rv != 0) {
        phx_buf_dispose(&hdr);
        phx_conn_close(c, false);
        return;
    }
    phx_http_write(c, 200, (const char *)hdr.data, NULL, NULL, 0, PHX_HTTP_NO_CACHE);
    phx_buf_dispose(&hdr);
}

/* The live session named by the request (*out, NULL when none). False
 * after answering 400 (an undecodable query), with `flags` added. */
static bool session_of(phx_longpoll_t *lp, phx_conn_t *c, int flags, lp_session_t **out)
{
    const char *path, *query;
    size_t path_len, query_len;
    phx_http_target(c->http, &path, &path_len, &query, &query_len);
    phx_query_t *q = NULL;
    phx_query_limits_t lim = PHX_QUERY_LIMITS_DEFAULT;
    if (phx_query_parse(&q, query, query_len, &lim) != 0) {
        phx_http_write(c, 400, "access-control-allow-origin: *\r\n", NULL, NULL, 0, flags);
        return false;
    }
    *out = resolve(lp, c->http, q);
    phx_query_free(q);
    return true;
}

void phx_longpoll_request(phx_longpoll_t *lp, phx_conn_t *c)
{
    phx_http_t *h = c->http;
    int method = phx_http_method(h);
    if (phx_endpoint_check_origin(lp->ep, c, lp_transport.name) != 0) {
        /* LongPoll answers 200 with the status in the body, even here. */
        reply_status(c, 403);
        return;
    }
    if (method == HTTP_OPTIONS) {
        options(c);
        return;
    }
    if (method != HTTP_GET && method != HTTP_POST) {
        phx_http_write(c, 400, "access-control-allow-origin: *\r\n", NULL, NULL, 0, 0);
        return;
    }
    lp_session_t *s;
    if (!session_of(lp, c, 0, &s))
        return;
    if (method == HTTP_GET)
        get(lp, c, s);
    else
        post(lp, c, s);
}

/* The head of a request for the LongPoll path: only a POST to a live
 * session takes a body (PHX_HEAD_*). */
static int route_head(phx_conn_t *c, void *user)
{
    phx_longpoll_t *lp = user;
    int method = phx_http_method(c->http);
    if (!phx_http_has_body(c->http))
        return PHX_HEAD_NO_BODY;
    if (method != HTTP_POST) {
        /* Answered as the whole request would be: 400 for a method
         * LongPoll does not take, 413 for a body it does not read. */
        bool known = method == HTTP_GET || method == HTTP_OPTIONS;
        phx_http_write(c, known ? 413 : 400, "access-control-allow-origin: *\r\n", NULL, NULL, 0,
                       PHX_HTTP_CLOSE);
        return PHX_HEAD_ANSWERED;
    }
    if (phx_endpoint_check_origin(lp->ep, c, lp_transport.name) != 0) {
        phx_http_write(c, 200, "access-control-allow-origin: *\r\n",
                       "application/json; charset=utf-8", "{\"status\":403}", 14,
                       PHX_HTTP_NO_CACHE | PHX_HTTP_CLOSE);
        return PHX_HEAD_ANSWERED;
    }
    lp_session_t *s;
    if (!session_of(lp, c, PHX_HTTP_CLOSE, &s))
        return PHX_HEAD_ANSWERED;
    if (s == NULL) {
        /* No session takes this body: answered as the POST itself would
         * be, without reading it. */
        phx_http_write(c, 200, "access-control-allow-origin: *\r\n",
                       "application/json; charset=utf-8", "{\"status\":410}", 14,
                       PHX_HTTP_NO_CACHE | PHX_HTTP_CLOSE);
        return PHX_HEAD_ANSWERED;
    }
    return PHX_HEAD_BODY;
}

static void route_handle(phx_conn_t *c, void *user)
{
    phx_longpoll_request(user, c);
}

int phx_longpoll_add_route(phx_router_t *r, phx_longpoll_t *lp)
{
    phx_http_route_t rt = {
        .is_socket = true,
        .head = route_head,
        .handle = route_handle,
        .user = lp,
    };
    return phx_router_add_transport(r, lp->ep->cfg->socket_path, "longpoll", &rt);
}

void phx_longpoll_flush(phx_longpoll_t *lp)
{
    if (lp == NULL)
        return;
    while (lp->dirty) {
        lp_session_t *s = lp->dirty;
        lp->dirty = s->dirty_next;
        s->is_dirty = false;
        if (s->parked && s->msgs.len > 0)
            answer_poll(s, s->parked, 200);
    }
}

uint64_t phx_longpoll_sweep(phx_longpoll_t *lp, uint64_t now)
{
    if (lp == NULL)
        return 0;
    uint64_t limit = idle_limit(lp);
    lp_session_t *s;
    while ((s = oldest(lp)) != NULL && s->last_poll + limit <= now)
        session_end(s, "inactive", 1000);
    return (s = oldest(lp)) != NULL ? s->last_poll + limit : 0;
}

size_t phx_longpoll_drain(phx_longpoll_t *lp, size_t n)
{
    size_t ended = 0;
    while (lp && oldest(lp) && ended < n) {
        session_end(oldest(lp), "drain", 1012);
        ended++;
    }
    return ended;
}

void phx_longpoll_stop(phx_longpoll_t *lp)
{
    if (lp == NULL)
        return;
    while (oldest(lp))
        session_end(oldest(lp), "shutdown", 1001);
}

size_t phx_longpoll_session_count(const phx_longpoll_t *lp)
{
    return lp ? lp->count : 0;
}

/* The loop's hooks: parked polls with messages are answered before output
 * is flushed, idle sessions end on the deadline timer. */
static void loop_flush(void *arg)
{
    phx_longpoll_flush(arg);
}

static uint64_t loop_sweep(void *arg, uint64_t now)
{
    return phx_longpoll_sweep(arg, now);
}

int phx_longpoll_new(phx_longpoll_t **out, phx_endpoint_t *ep, char *err)
{
    phx_longpoll_t *lp = phx_calloc(1, sizeof(*lp));
    if (lp == NULL)
        return PHX_ERR_NOMEM;
    lp->ep = ep;
    lp->nbuckets = 64;
    lp->buckets = phx_calloc(lp->nbuckets, sizeof(*lp->buckets));
    /* Session tokens are signed with the server secret when there is one
     * (so every node of a deployment shares it), else a random key. */
    uint8_t random_secret[32];
    phx_token_config_t tc = {0};
    if (ep->cfg->secret_key_base) {
        tc.secret_key_base = (const uint8_t *)ep->cfg->secret_key_base;
        tc.secret_key_base_len = strlen(ep->cfg->secret_key_base);
    } else {
        if (RAND_bytes(random_secret, sizeof(random_secret)) != 1) {
            phx_free(lp->buckets);
            phx_free(lp);
            return PHX_ERR_INVALID;
        }
        tc.secret_key_base = random_secret;
        tc.secret_key_base_len = sizeof(random_secret);
    }
    tc.salt = (const uint8_t *)SESSION_SALT;
    tc.salt_len = strlen(SESSION_SALT);
    lp->comma = small_buf(",", 1);
    int rv = lp->buckets && lp->comma ? phx_token_new(&lp->token, &tc) : PHX_ERR_NOMEM;
    if (rv != 0) {
        snprintf(err, PHX_ERR_LEN, "cannot set up LongPoll sessions: %s", phx_strerror(rv));
        phx_rcbuf_unref(lp->comma);
        phx_free(lp->buckets);
        phx_free(lp);
        return rv;
    }
    phx_loop_hook_t hook = {.before_flush = loop_flush, .on_deadline = loop_sweep, .arg = lp};
    phx_loop_add_hook(ep->loop, &hook);
    *out = lp;
    return 0;
}

void phx_longpoll_free(phx_longpoll_t *lp)
{
    if (lp == NULL)
        return;
    while (oldest(lp))
        session_free(oldest(lp));
    phx_loop_remove_hook(lp->ep->loop, lp);
    phx_token_free(lp->token);
    phx_rcbuf_unref(lp->comma);
    phx_free(lp->buckets);
    phx_free(lp);
}
