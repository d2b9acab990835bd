/* fuzz_longpoll_pipeline: pipelined HTTP requests on connections that share
 * one LongPoll session, through a real phx_server_t over loopback (20 ms
 * poll window, 1 KiB bodies, 1.5 KiB of bodies in total).
 *
 * Each run opens a session (GET answered {"status":410,"token":...}), then
 * reads the rest of the input as a script for two or three raw client
 * connections (first byte: bit 0 set = three). Every operation starts with
 * one byte: bits 0-3 the operation, bits 4-5 the client, bit 6 "hold" (the
 * request is only queued: several requests then leave in ONE write, which
 * is how pipelining is made), bit 7 a variant. Operations:
 *    0 poll     GET of the session (variant: token in the header)
 *    1 post     [mode] [len] [len bytes]: POST of the input's bytes
 *    2 canned   [mode] [sel]: POST of 1-8 prepared messages (join, push,
 *               heartbeat, leave, a crashing line, a binary line...)
 *    3 raw      [len] [len bytes] queued as they are
 *    4 health   GET /healthz (variant: HEAD)
 *    5 misc     [sel]: OPTIONS, HEAD on the LongPoll path, bodies on routes
 *               that take none, HTTP/1.0, another session, /metrics...
 *    6 flush    [how]: write what is queued, whole or in part, in chunks
 *    7 run      [ms]: run the loop (at most 80 ms in a run)
 *    8 bcast    phx_broadcast to room:lobby (variant: a binary payload)
 *    9 close    close the client (it reconnects at its next operation)
 *   10 end      end the oldest LongPoll session (phx_longpoll_drain)
 *   11-15       poll, run, flush, poll (hold), canned (hold)
 * [mode] of a POST: bit 0 ndjson (else application/json), bit 1 chunked,
 * bit 2 "Expect: 100-continue", bit 3 the token in a header, bits 4-7 pad
 * the body with that many 128-byte runs of spaces (past the 1 KiB cap).
 *
 * Invariants: no crash, no sanitizer report; every client's bytes are a
 * sequence of complete HTTP/1.1 responses (status line, headers with one
 * content-length, that many body bytes; none for HEAD; "100 Continue" only
 * for a request that asked for it) with nothing after a "connection:
 * close" answer; on a connection that only carried the harness's own
 * requests, responses come one per request in order, every request
 * written whole is answered unless a poll is parked before it, and the
 * server never hangs up without saying so; the shared body budget never
 * passes its total and is back to 0, with no connection left, once the
 * clients are gone. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "longpoll.h"
#include "phx.h"
#include "policy.h"
#include "rawclient.h"
#include "server.h"
#include "testtoken.h"
#include "fuzz.h"

#define MAX_OPS 64
#define MAX_RUN_MS 80
#define MAX_REQS 256
#define MAX_BODY 1024
#define MAX_BODY_TOTAL 1536

static const char secret[] = "fuzz-secret-key-base-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF";
static uv_loop_t loop;
static phx_server_t *srv;
static char user_token[512];
static char session[512];

/* What the harness knows of a request it wrote. */
enum {
    K_NORMAL = 0,
    K_HEAD = 1,   /* HEAD: the answer has no body */
    K_POLL = 2,   /* may be parked until the session has messages */
    K_EXPECT = 4, /* Expect: 100-continue: may get a 100 first */
};

typedef struct {
    uint8_t kind;
    size_t head_end; /* stream offsets (bytes queued since connecting) */
    size_t end;
} req_t;

typedef struct {
    rawclient_t rc;
    bool is_open;
    bool is_raw;     /* raw bytes went out: requests are not known */
    phx_buf_t queue; /* bytes not written yet */
    size_t queued;   /* bytes queued since connecting (stream offset) */
    size_t written;  /* bytes written since connecting */
    req_t reqs[MAX_REQS];
    size_t nreqs;
} client_t;

/* The result of parsing what a client received. */
typedef struct {
    size_t nfinal; /* final responses */
    bool partial;  /* an incomplete response at the end */
    bool closed;   /* a "connection: close" response was seen */
    bool upgraded; /* a 101: what follows is not HTTP */
} parsed_t;

static void setup(void)
{
    uv_loop_init(&loop);
    if (getenv("PHX_FUZZ_TRACE"))
        phx_log_level = PHX_LOG_LEVEL_DEBUG;
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0;
    cfg.secret_key_base = secret;
    cfg.longpoll_window_ms = 20;
    cfg.close_timeout_ms = 200;
    cfg.max_body_bytes = MAX_BODY;
    cfg.max_body_bytes_total = MAX_BODY_TOTAL;
    char err[PHX_ERR_LEN];
    CHECK(phx_server_new(&srv, &loop, &cfg, err) == 0);
    CHECK(phx_policy_install(srv) == 0);
    CHECK(phx_server_start(srv, err) == 0);
    phx_term_t *data;
    CHECK(phx_term_new_int(&data, 7) == 0);
    phx_max_age_t age = {PHX_MAX_AGE_INFINITY, 0, false};
    CHECK(test_token_sign(user_token, sizeof(user_token), secret, data, age) == 0);
}

/* ---- the loop ---- */

/* Runs the loop for `ms` (0: a few turns without waiting). The timer
 * stops the loop: a timer that comes due at the start of a UV_RUN_ONCE
 * turn would otherwise leave that turn's poll waiting for the next event. */
static bool run_expired;

static void on_run_timer(uv_timer_t *t)
{
    run_expired = true;
    uv_stop(t->loop);
}

static void run_for(int ms)
{
    if (ms <= 0) {
        for (int i = 0; i < 4; i++)
            uv_run(&loop, UV_RUN_NOWAIT);
        return;
    }
    static uv_timer_t timer;
    static bool timer_ready;
    if (!timer_ready) {
        uv_timer_init(&loop, &timer);
        timer_ready = true;
    }
    run_expired = false;
    uv_update_time(&loop);
    uv_timer_start(&timer, on_run_timer, (uint64_t)ms, 0);
    while (!run_expired)
        uv_run(&loop, UV_RUN_ONCE);
}

/* ---- what the clients received ---- */

static bool is_prefix_of(const uint8_t *p, size_t n, const char *s)
{
    size_t sl = strlen(s);
    return memcmp(p, s, n < sl ? n : sl) == 0;
}

static const uint8_t *find_crlf2(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return p + i;
    return NULL;
}

static size_t reqs_with(const client_t *cl, bool whole)
{
    size_t n = 0;
    for (size_t i = 0; i < cl->nreqs; i++)
        if ((whole ? cl->reqs[i].end : cl->reqs[i].head_end) <= cl->written)
            n++;
    return n;
}

/* Parses everything `cl` received; aborts on bytes that can never become
 * a valid sequence of responses. */
static parsed_t parse(const client_t *cl)
{
    parsed_t r = {0};
    const uint8_t *p = cl->rc.in.data;
    size_t len = cl->rc.in.len, pos = 0;
    bool strict = !cl->is_raw;
    size_t nhead = reqs_with(cl, false);
    size_t interim_for = SIZE_MAX;
    while (pos < len) {
        CHECK(!r.closed); /* nothing after "connection: close" */
        const uint8_t *at = p + pos;
        size_t rem = len - pos;
        if (rem < 9) {
            CHECK(is_prefix_of(at, rem, "HTTP/1.1 "));
            r.partial = true;
            break;
        }
        CHECK(memcmp(at, "HTTP/1.1 ", 9) == 0);
        const uint8_t *end = find_crlf2(at, rem);
        if (end == NULL) {
            CHECK(rem < 16384);
            r.partial = true;
            break;
        }
        size_t head_len = (size_t)(end - at) + 4;
        char *head = phx_strndup((const char *)at, head_len - 2);
        CHECK(head != NULL);
        /* Status line: three digits, a space, a known reason. */
        CHECK(head[9] >= '1' && head[9] <= '5' && head[10] >= '0' && head[10] <= '9' &&
              head[11] >= '0' && head[11] <= '9' && head[12] == ' ');
        int status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
        char *line_end = strstr(head, "\r\n");
        CHECK(line_end != NULL && line_end > head + 13);
        CHECK(strncmp(head + 13, "Unknown", 7) != 0);
        /* Headers: "name: value" lines, one content-length. */
        int ncl = 0;
        unsigned long long cl_value = 0;
        bool close = false;
        for (char *l = line_end + 2; *l;) {
            char *e = strstr(l, "\r\n");
            CHECK(e != NULL);
            *e = '\0';
            char *colon = strchr(l, ':');
            CHECK(colon != NULL && colon > l);
            if (strncasecmp(l, "content-length:", 15) == 0) {
                ncl++;
                char *q;
                cl_value = strtoull(l + 15, &q, 10);
                CHECK(*q == '\0');
            }
            if (strcasecmp(l, "connection: close") == 0)
                close = true;
            l = e + 2;
        }
        phx_free(head);
        const uint8_t *body = at + head_len;
        size_t avail = rem - head_len;
        if (status < 200) {
            if (status == 101) { /* a WebSocket: not HTTP any more */
                r.upgraded = true;
                break;
            }
            CHECK(status == 100 && ncl == 0);
            if (strict) {
                CHECK(r.nfinal < nhead && (cl->reqs[r.nfinal].kind & K_EXPECT));
                CHECK(interim_for != r.nfinal); /* one per request */
                interim_for = r.nfinal;
            }
            pos += head_len;
            continue;
        }
        CHECK(ncl == 1);
        bool no_body;
        if (strict) {
            CHECK(r.nfinal < nhead); /* never an answer to an unsent request */
            no_body = (cl->reqs[r.nfinal].kind & K_HEAD) != 0;
        } else if (cl_value == 0) {
            no_body = false;
        } else if (avail >= 9 ? memcmp(body, "HTTP/1.1 ", 9) == 0 : avail == 0) {
            no_body = true; /* the answer to a HEAD we did not see */
        } else if (avail < cl_value) {
            r.partial = true;
            break;
        } else {
            no_body = false;
        }
        if (!no_body && avail < cl_value) {
            r.partial = true;
            break;
        }
        if (strict && !no_body && status == 200 && (cl->reqs[r.nfinal].kind & K_POLL)) {
            /* A poll's answer is a LongPoll JSON body. */
            CHECK(cl_value >= 11 && body[0] == '{');
            char *b = phx_strndup((const char *)body, (size_t)cl_value);
            CHECK(b != NULL && strstr(b, "\"status\":") != NULL);
            phx_free(b);
        }
        pos += head_len + (no_body ? 0 : (size_t)cl_value);
        r.nfinal++;
        if (close)
            r.closed = true;
    }
    return r;
}

/* Whether what `cl` received has come to rest: no response half-way, and
 * (for known requests) every request written whole answered but those
 * behind a parked poll. */
static bool settled(const client_t *cl)
{
    if (!cl->is_open || cl->rc.is_eof)
        return true;
    parsed_t r = parse(cl);
    if (r.partial)
        return false;
    if (cl->is_raw || r.upgraded || r.closed)
        return true;
    size_t nwhole = reqs_with(cl, true);
    return r.nfinal >= nwhole || (cl->reqs[r.nfinal].kind & K_POLL);
}

static client_t clients[3];
static int nclients;

static bool all_settled(rawclient_t *probe, void *arg)
{
    for (int i = 0; i < nclients; i++)
        if (!settled(&clients[i]))
            return false;
    return true;
}

static void settle(void)
{
    run_for(0);
    rawclient_t probe = {.loop = &loop};
    rawclient_wait(&probe, all_settled, NULL, 300);
}

/* The checks on a client at rest (before it closes or at the end). */
static void check_client(const client_t *cl)
{
    if (!cl->is_open)
        return;
    parsed_t r = parse(cl);
    CHECK(!r.partial);
    if (cl->is_raw || r.upgraded)
        return;
    CHECK(r.nfinal <= reqs_with(cl, false));
    /* The server never hangs up without saying so. */
    if (cl->rc.is_eof)
        CHECK(r.closed);
    /* No request is dropped: all are answered but those behind a poll
     * that is still parked. */
    if (!r.closed && !cl->rc.is_eof) {
        size_t nwhole = reqs_with(cl, true);
        CHECK(r.nfinal >= nwhole || (cl->reqs[r.nfinal].kind & K_POLL));
    }
}

/* ---- clients ---- */

static void client_close(client_t *cl)
{
    if (!cl->is_open)
        return;
    /* PHX_FUZZ_TRACE=1: what each client received (reading a reproducer). */
    if (getenv("PHX_FUZZ_TRACE"))
        fprintf(stderr, "--- client %d (%s, %zu requests, %zu bytes written%s):\n%.*s\n",
                (int)(cl - clients), cl->is_raw ? "raw" : "known", cl->nreqs, cl->written,
                cl->rc.is_eof ? ", server closed" : "", (int)cl->rc.in.len,
                cl->rc.in.data ? (const char *)cl->rc.in.data : "");
    check_client(cl);
    rawclient_close(&cl->rc);
    phx_buf_dispose(&cl->queue);
    cl->is_open = false;
}

/* The client ready for an operation: connected, and reconnected when the
 * server hung up. */
static client_t *client_get(int i)
{
    client_t *cl = &clients[i % nclients];
    if (cl->is_open && cl->rc.is_eof) {
        settle();
        client_close(cl);
    }
    if (!cl->is_open) {
        memset(cl, 0, sizeof(*cl));
        CHECK(rawclient_connect(&cl->rc, &loop, phx_server_port(srv)) == 0);
        cl->is_open = true;
    }
    return cl;
}

/* Writes `n` queued bytes (all when n is larger) in chunks of `chunk`. */
static void client_write(client_t *cl, size_t n, size_t chunk)
{
    if (n > cl->queue.len)
        n = cl->queue.len;
    if (n == 0)
        return;
    if (chunk > 0 && n / chunk > 256)
        chunk = n / 256 + 1;
    rawclient_write(&cl->rc, cl->queue.data, n, chunk);
    phx_buf_consume(&cl->queue, n);
    cl->written += n;
}

/* Queues a request whose head is the first `head_len` bytes of `bytes`. */
static void client_queue(client_t *cl, uint8_t kind, const void *bytes, size_t len, size_t head_len)
{
    CHECK(phx_buf_append(&cl->queue, bytes, len) == 0);
    if (cl->nreqs < MAX_REQS) {
        cl->reqs[cl->nreqs].kind = kind;
        cl->reqs[cl->nreqs].head_end = cl->queued + head_len;
        cl->reqs[cl->nreqs].end = cl->queued + len;
        cl->nreqs++;
    } else {
        cl->is_raw = true; /* too many to follow */
    }
    cl->queued += len;
}

/* ---- requests ---- */

static void queue_poll(client_t *cl, bool in_header, bool close)
{
    phx_buf_t b = {0};
    if (in_header)
        phx_buf_printf(&b,
                       "GET /socket/longpoll?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n"
                       "X-Phoenix-LongPoll-Token: %s\r\n%s\r\n",
                       session, close ? "Connection: close\r\n" : "");
    else
        phx_buf_printf(&b, "GET /socket/longpoll?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n%s\r\n",
                       session, close ? "Connection: close\r\n" : "");
    client_queue(cl, K_POLL, b.data, b.len, b.len);
    phx_buf_dispose(&b);
}

/* A POST of `body` to the session, shaped by `mode` (see the top). */
static void queue_post(client_t *cl, uint8_t mode, const uint8_t *body, size_t len)
{
    bool ndjson = mode & 1, chunked = mode & 2, expect = mode & 4, in_header = mode & 8;
    size_t pad = (size_t)(mode >> 4) * 128;
    phx_buf_t payload = {0};
    if (len)
        phx_buf_append(&payload, body, len);
    for (size_t i = 0; i < pad; i++)
        phx_buf_append_byte(&payload, ' ');
    phx_buf_t b = {0};
    if (in_header)
        phx_buf_printf(&b,
                       "POST /socket/longpoll?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n"
                       "X-Phoenix-LongPoll-Token: %s\r\n",
                       session);
    else
        phx_buf_printf(&b, "POST /socket/longpoll?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n",
                       session);
    phx_buf_printf(&b, "Content-Type: %s\r\n%s",
                   ndjson ? "application/x-ndjson" : "application/json",
                   expect ? "Expect: 100-continue\r\n" : "");
    if (chunked)
        phx_buf_printf(&b, "Transfer-Encoding: chunked\r\n\r\n");
    else
        phx_buf_printf(&b, "Content-Length: %zu\r\n\r\n", payload.len);
    size_t head_len = b.len;
    if (chunked) {
        if (payload.len)
            phx_buf_printf(&b, "%zx\r\n", payload.len);
        if (payload.len)
            phx_buf_append(&b, payload.data, payload.len);
        phx_buf_printf(&b, "%s0\r\n\r\n", payload.len ? "\r\n" : "");
    } else if (payload.len) {
        phx_buf_append(&b, payload.data, payload.len);
    }
    client_queue(cl, expect ? K_EXPECT : K_NORMAL, b.data, b.len, head_len);
    phx_buf_dispose(&b);
    phx_buf_dispose(&payload);
}

static const char *const canned[] = {
    "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]",
    "[\"1\",\"2\",\"room:lobby\",\"shout\",{\"body\":\"hi\"}]",
    "[null,\"3\",\"phoenix\",\"heartbeat\",{}]",
    "[\"1\",\"4\",\"room:lobby\",\"phx_leave\",{}]",
    "[\"1\",\"5\",\"room:lobby\",\"ping\",{\"x\":1}]",
    /* a heartbeat, then a line that is not JSON: the session ends */
    "[null,\"1\",\"phoenix\",\"heartbeat\",{}]\n[x",
    "[\"2\",\"6\",\"user:7\",\"phx_join\",{}]",
    /* a V2 binary push to room:lobby, base64 ("shout", "hi") */
    "AAEBCgUxOHJvb206bG9iYnlzaG91dGhp",
};

static void queue_canned(client_t *cl, uint8_t mode, uint8_t sel)
{
    size_t lines = (size_t)((sel >> 3) & 7) + 1;
    phx_buf_t body = {0};
    for (size_t i = 0; i < lines; i++) {
        if (i)
            phx_buf_append_byte(&body, '\n');
        phx_buf_append_str(&body, canned[(sel + i) & 7]);
    }
    queue_post(cl, mode, body.data, body.len);
    phx_buf_dispose(&body);
}

static void queue_str(client_t *cl, uint8_t kind, const char *s)
{
    const char *end = strstr(s, "\r\n\r\n");
    size_t len = strlen(s);
    client_queue(cl, kind, s, len, end ? (size_t)(end - s) + 4 : len);
}

static void queue_misc(client_t *cl, uint8_t sel)
{
    char buf[1024];
    switch (sel % 14) {
    case 0:
        queue_str(cl, K_NORMAL,
                  "OPTIONS /socket/longpoll HTTP/1.1\r\nHost: x\r\n"
                  "Access-Control-Request-Headers: content-type\r\n\r\n");
        return;
    case 1:
        snprintf(buf, sizeof(buf), "HEAD /socket/longpoll?token=%s HTTP/1.1\r\nHost: x\r\n\r\n",
                 session);
        queue_str(cl, K_HEAD, buf);
        return;
    case 2:
        queue_str(cl, K_NORMAL, "GET /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        return;
    case 3:
        queue_str(cl, K_NORMAL,
                  "POST /socket/longpoll?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n"
                  "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n[]");
        return;
    case 4:
        queue_poll(cl, false, true);
        return;
    case 5:
        queue_str(cl, K_NORMAL, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
        return;
    case 6:
        queue_str(cl, K_NORMAL, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        return;
    case 7:
        snprintf(buf, sizeof(buf),
                 "POST /socket/longpoll?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: 0\r\n\r\n",
                 session);
        queue_str(cl, K_NORMAL, buf);
        return;
    case 8:
        queue_str(cl, K_NORMAL, "GET /socket/longpoll?vsn=2.0.0&token=forged HTTP/1.1\r\n\r\n");
        return;
    case 9:
        snprintf(buf, sizeof(buf),
                 "GET /socket/longpoll?token=%s&vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n\r\n", user_token);
        queue_str(cl, K_NORMAL, buf);
        return;
    case 10:
        queue_str(cl, K_NORMAL, "GET /healthz HTTP/1.0\r\n\r\n");
        return;
    case 11:
        queue_str(cl, K_NORMAL, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        return;
    case 12:
        snprintf(buf, sizeof(buf),
                 "PUT /socket/longpoll?token=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                 session);
        queue_str(cl, K_NORMAL, buf);
        return;
    default:
        snprintf(buf, sizeof(buf),
                 "POST /socket/longpoll?vsn=2.0.0&token=%s HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                 session, strlen(canned[0]), canned[0]);
        queue_str(cl, K_NORMAL, buf);
        return;
    }
}

/* ---- the session ---- */

static void open_session(void)
{
    rawclient_t c;
    CHECK(rawclient_connect(&c, &loop, phx_server_port(srv)) == 0);
    char head[1024];
    snprintf(head, sizeof(head),
             "GET /socket/longpoll?token=%s&vsn=2.0.0 HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n",
             user_token);
    rawclient_write(&c, head, strlen(head), 0);
    CHECK(rawclient_wait_eof(&c, 3000));
    char *resp = phx_strndup((const char *)c.in.data, c.in.len);
    CHECK(strstr(resp, "\"status\":410") != NULL);
    char *t = strstr(resp, "\"token\":\"");
    CHECK(t != NULL);
    t += 9;
    char *end = strchr(t, '"');
    CHECK(end != NULL);
    *end = '\0';
    snprintf(session, sizeof(session), "%s", t);
    phx_free(resp);
    rawclient_close(&c);
}

static bool server_idle(rawclient_t *c, void *arg)
{
    return srv->loop.nconns == 0;
}

/* ---- the script ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} input_t;

static uint8_t next_byte(input_t *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static void step(input_t *in, int *run_ms, int *bcasts)
{
    uint8_t op = next_byte(in);
    int code = op & 15;
    if (getenv("PHX_FUZZ_TRACE"))
        fprintf(stderr, "op 0x%02x (%d) client %d at %llu ms\n", op, code, (op >> 4) & 3,
                (unsigned long long)uv_now(&loop));
    bool hold = (op & 0x40) != 0, variant = (op & 0x80) != 0;
    client_t *cl = NULL;
    if (code != 7 && code != 8 && code != 10 && code != 12)
        cl = client_get((op >> 4) & 3);
    bool queued = true;
    switch (code) {
    case 0:
    case 11:
        queue_poll(cl, variant, false);
        break;
    case 14:
        queue_poll(cl, variant, false);
        hold = true;
        break;
    case 1: {
        uint8_t mode = next_byte(in);
        size_t len = next_byte(in);
        if (len > in->n)
            len = in->n;
        queue_post(cl, mode, in->p, len);
        in->p += len;
        in->n -= len;
        break;
    }
    case 2:
    case 15: {
        uint8_t mode = next_byte(in);
        uint8_t sel = next_byte(in);
        queue_canned(cl, mode, sel);
        if (code == 15)
            hold = true;
        break;
    }
    case 3: {
        size_t len = next_byte(in);
        if (len > in->n)
            len = in->n;
        CHECK(phx_buf_append(&cl->queue, in->p, len) == 0);
        cl->queued += len;
        cl->is_raw = true;
        in->p += len;
        in->n -= len;
        break;
    }
    case 4:
        queue_str(cl, variant ? K_HEAD : K_NORMAL,
                  variant ? "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                          : "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        break;
    case 5:
        queue_misc(cl, next_byte(in));
        break;
    case 6:
    case 13: {
        uint8_t how = next_byte(in);
        size_t n = cl->queue.len;
        switch (how >> 6) {
        case 1:
            n /= 2;
            break;
        case 2: /* up to the end of the first head not written yet */
            for (size_t i = 0; i < cl->nreqs; i++) {
                if (cl->reqs[i].head_end > cl->written) {
                    n = cl->reqs[i].head_end - cl->written;
                    break;
                }
            }
            break;
        case 3:
            n = n ? n - 1 : 0;
            break;
        default:
            break;
        }
        client_write(cl, n, how & 63);
        queued = false;
        break;
    }
    case 7:
    case 12: {
        int ms = next_byte(in) & 31;
        if (*run_ms + ms > MAX_RUN_MS)
            ms = 0;
        *run_ms += ms;
        run_for(ms);
        queued = false;
        break;
    }
    case 8: {
        char json[32];
        int n = snprintf(json, sizeof(json), "{\"n\":%d}", (*bcasts)++);
        phx_payload_t payload = {(const uint8_t *)json, (size_t)n, false};
        if (variant)
            payload = (phx_payload_t){(const uint8_t *)"\x00\x01\xff", 3, true};
        (void)phx_broadcast(srv, "room:lobby", variant ? "bin" : "msg", &payload);
        queued = false;
        break;
    }
    case 9:
        client_write(cl, SIZE_MAX, 0);
        settle();
        client_close(cl);
        queued = false;
        break;
    case 10:
        (void)phx_longpoll_drain(srv->longpoll, 1);
        queued = false;
        break;
    default:
        queued = false;
        break;
    }
    /* Without "hold", the queue (this request and those held before it)
     * leaves in one write. */
    if (queued && !hold)
        client_write(cl, SIZE_MAX, 0);
    CHECK(srv->loop.body_bytes_held <= MAX_BODY_TOTAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (srv == NULL)
        setup();
    if (size < 1)
        return 0;
    nclients = 2 + (data[0] & 1);
    input_t in = {data + 1, size - 1};
    open_session();
    int run_ms = 0, bcasts = 0;
    for (int i = 0; i < MAX_OPS && in.n > 0; i++)
        step(&in, &run_ms, &bcasts);
    /* What is still queued goes out, everything comes to rest, is checked,
     * and the clients leave. */
    for (int i = 0; i < nclients; i++)
        if (clients[i].is_open && !clients[i].rc.is_eof)
            client_write(&clients[i], SIZE_MAX, 0);
    run_for(2);
    settle();
    for (int i = 0; i < nclients; i++)
        client_close(&clients[i]);
    rawclient_t probe = {.loop = &loop};
    CHECK(rawclient_wait(&probe, server_idle, NULL, 5000));
    CHECK(srv->loop.body_bytes_held == 0);
    /* The next run starts without sessions (they would also end on their
     * own after 1.5 windows). */
    (void)phx_longpoll_drain(srv->longpoll, SIZE_MAX);
    run_for(0);
    CHECK(phx_longpoll_session_count(srv->longpoll) == 0);
    return 0;
}
