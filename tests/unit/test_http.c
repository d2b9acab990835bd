/* Unit tests for http.c's request-head codec and routing: every chunking
 * down to one byte, the header caps, pipelined bytes after the head, the
 * pause after the head (phx_http_pause_on_head), the body caps and the
 * body budget shared among parsers. */
#include "http.h"

#include "phx.h"
#include "runner.h"

static const char upgrade_req[] = "GET /socket/websocket?token=abc&vsn=2.0.0 HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:4000\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "X-Custom:  padded value  \r\n"
                                  "\r\n";

/* Feeds `len` bytes in chunks of `chunk` bytes from an exact-size copy. */
static int feed_chunked(phx_http_t *h, const char *req, size_t len, size_t chunk, size_t *total)
{
    uint8_t *copy = malloc(len);
    memcpy(copy, req, len);
    size_t off = 0;
    int status = 0;
    *total = 0;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        status = phx_http_feed(h, copy + off, n, &used);
        *total += used;
        off += n;
        if (status != 0)
            break;
    }
    free(copy);
    return status;
}

static void parses_upgrade_in_every_chunking(void)
{
    size_t len = sizeof(upgrade_req) - 1;
    for (size_t chunk = 1; chunk <= len; chunk++) {
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        size_t used;
        ASSERT_EQ(feed_chunked(h, upgrade_req, len, chunk, &used), 200);
        ASSERT_EQ(used, len);
        ASSERT_STR_EQ(phx_http_header(h, "host"), "127.0.0.1:4000");
        ASSERT_STR_EQ(phx_http_header(h, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
        ASSERT_STR_EQ(phx_http_header(h, "x-custom"), "padded value");
        ASSERT(phx_http_header(h, "origin") == NULL);
        const char *path, *query;
        size_t plen, qlen;
        phx_http_target(h, &path, &plen, &query, &qlen);
        ASSERT_MEM_EQ(path, plen, "/socket/websocket", 17);
        ASSERT_MEM_EQ(query, qlen, "token=abc&vsn=2.0.0", 19);
        ASSERT(phx_http_is_11(h));
        ASSERT_EQ(phx_http_method(h), HTTP_GET);
        phx_http_free(h);
    }
}

static void pipelined_frame_is_left_for_the_next_layer(void)
{
    char buf[512];
    size_t len = sizeof(upgrade_req) - 1;
    memcpy(buf, upgrade_req, len);
    memcpy(buf + len, "\x81\x85XXXXY", 7);
    phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
    size_t used;
    ASSERT_EQ(phx_http_feed(h, (uint8_t *)buf, len + 7, &used), 200);
    ASSERT_EQ(used, len);
    phx_http_free(h);
}

static void header_bytes_over_cap_is_431(void)
{
    phx_buf_t b = {0};
    phx_buf_append_str(&b, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 300; i++)
        phx_buf_append_str(&b, "a");
    phx_buf_append_str(&b, "\r\n\r\n");
    phx_http_t *h = phx_http_new(256, 100, 1 << 20);
    size_t used;
    ASSERT_EQ(feed_chunked(h, (char *)b.data, b.len, 7, &used), 431);
    phx_http_free(h);
    /* Exactly at the cap is fine: URL "/" + "host" + "x" = 6 bytes. */
    h = phx_http_new(6, 100, 1 << 20);
    ASSERT_EQ(feed_chunked(h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 1, &used), 200);
    phx_http_free(h);
    h = phx_http_new(5, 100, 1 << 20);
    ASSERT_EQ(feed_chunked(h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, 1, &used), 431);
    phx_http_free(h);
    phx_buf_dispose(&b);
}

static void url_over_cap_is_414(void)
{
    phx_buf_t b = {0};
    phx_buf_append_str(&b, "GET /");
    for (int i = 0; i < 300; i++)
        phx_buf_append_str(&b, "a");
    phx_buf_append_str(&b, " HTTP/1.1\r\n\r\n");
    phx_http_t *h = phx_http_new(256, 100, 1 << 20);
    size_t used;
    ASSERT_EQ(feed_chunked(h, (char *)b.data, b.len, 1, &used), 414);
    phx_http_free(h);
    phx_buf_dispose(&b);
}

static void header_count_over_cap_is_431(void)
{
    phx_buf_t b = {0};
    phx_buf_append_str(&b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 5; i++)
        phx_buf_printf(&b, "X-H%d: v\r\n", i);
    phx_buf_append_str(&b, "\r\n");
    size_t used;
    phx_http_t *h = phx_http_new(8192, 5, 1 << 20);
    ASSERT_EQ(feed_chunked(h, (char *)b.data, b.len, 3, &used), 200);
    phx_http_free(h);
    h = phx_http_new(8192, 4, 1 << 20);
    ASSERT_EQ(feed_chunked(h, (char *)b.data, b.len, 3, &used), 431);
    phx_http_free(h);
    phx_buf_dispose(&b);
}

static void malformed_requests_are_400(void)
{
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET / HTTP/1.1\r\nHost x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "\x01\x02\x03\x04",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        size_t used;
        ASSERT_EQ(feed_chunked(h, bad[i], strlen(bad[i]), 1, &used), 400);
        phx_http_free(h);
    }
}

static void incomplete_head_needs_more(void)
{
    phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
    size_t used;
    ASSERT_EQ(phx_http_feed(h, (const uint8_t *)"GET / HTTP/1.1\r\nHost: x\r\n", 25, &used), 0);
    ASSERT_EQ(phx_http_feed(h, (const uint8_t *)"\r\n", 2, &used), 200);
    phx_http_free(h);
}

static void routes_socket_paths(void)
{
    static int ws_tag, lp_tag, pre_tag, exact_tag;
    phx_router_t r = {0};
    phx_http_route_t ws = {.path = "/socket/websocket", .match = PHX_MATCH_SLASH, .user = &ws_tag};
    phx_http_route_t lp = {.path = "/socket/longpoll", .match = PHX_MATCH_SLASH, .user = &lp_tag};
    phx_http_route_t live = {.path = "/live/websocket", .match = PHX_MATCH_SLASH, .user = &ws_tag};
    phx_http_route_t pre = {.path = "/api/", .match = PHX_MATCH_PREFIX, .user = &pre_tag};
    phx_http_route_t exact = {.path = "/healthz", .match = PHX_MATCH_EXACT, .user = &exact_tag};
    phx_http_route_t shadow = {.path = "/socket/longpoll", .match = PHX_MATCH_EXACT};
    ASSERT_EQ(phx_router_add(&r, &ws), 0);
    ASSERT_EQ(phx_router_add(&r, &lp), 0);
    ASSERT_EQ(phx_router_add(&r, &live), 0);
    ASSERT_EQ(phx_router_add(&r, &pre), 0);
    ASSERT_EQ(phx_router_add(&r, &exact), 0);
    ASSERT_EQ(phx_router_add(&r, &shadow), 0); /* the first declared wins */
#define FIND(p) phx_router_find(&r, (p), strlen(p))
#define USER_OF(p) (FIND(p) ? FIND(p)->user : NULL)
    ASSERT(USER_OF("/socket/websocket") == &ws_tag);
    ASSERT(USER_OF("/socket/websocket/") == &ws_tag);
    ASSERT(USER_OF("/socket/longpoll") == &lp_tag);
    ASSERT(USER_OF("/socket/longpoll/") == &lp_tag);
    ASSERT(FIND("/socket/websocketx") == NULL);
    ASSERT(FIND("/socket/websocket//") == NULL);
    ASSERT(FIND("/socket") == NULL);
    ASSERT(FIND("/") == NULL);
    ASSERT(USER_OF("/live/websocket") == &ws_tag);
    ASSERT(FIND("/sock/websocket") == NULL);
    ASSERT(USER_OF("/api/broadcast") == &pre_tag);
    ASSERT(USER_OF("/api/") == &pre_tag);
    ASSERT(FIND("/api") == NULL);
    ASSERT(USER_OF("/healthz") == &exact_tag);
    ASSERT(FIND("/healthz/") == NULL);
    ASSERT(phx_router_find(NULL, "/", 1) == NULL);
#undef USER_OF
#undef FIND
    /* Paths are copied: the router owns them. */
    ASSERT(r.routes[0].path != ws.path);
    phx_router_free(&r);
    ASSERT(r.routes == NULL && r.count == 0);
}

static void header_token_lists(void)
{
    ASSERT(phx_http_header_has_token("keep-alive, Upgrade", "upgrade"));
    ASSERT(phx_http_header_has_token("Upgrade", "upgrade"));
    ASSERT(phx_http_header_has_token(" websocket ", "websocket"));
    ASSERT(!phx_http_header_has_token("upgrades", "upgrade"));
    ASSERT(!phx_http_header_has_token("", "upgrade"));
    ASSERT(!phx_http_header_has_token(NULL, "upgrade"));
}

/* ---- bodies, the pause after the head, the shared budget ---- */

static const char post_req[] = "POST /socket/longpoll?token=t HTTP/1.1\r\n"
                               "Host: x\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 11\r\n"
                               "\r\n"
                               "hello world";
#define POST_HEAD_LEN (sizeof(post_req) - 1 - 11)

static const char chunked_req[] = "POST /socket/longpoll HTTP/1.1\r\n"
                                  "Host: x\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "\r\n"
                                  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
#define CHUNKED_HEAD_LEN 71

/* Feeds `len` bytes in chunks of `chunk` bytes (from an exact-size copy) to
 * a parser that pauses after the head: on 100 it checks that nothing of the
 * body was stored, notes where the head ended (*head_at, the offset of the
 * body's first byte in `req`; SIZE_MAX when no 100 came), then continues
 * with the bytes after *used, as http.c does. *total is the bytes that
 * belonged to the request. Returns the final answer (0 when incomplete). */
static int feed_pausing(phx_http_t *h, const char *req, size_t len, size_t chunk, size_t *total,
                        size_t *head_at)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, req, len);
    size_t off = 0;
    int status = 0;
    *total = 0;
    *head_at = SIZE_MAX;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        const uint8_t *p = copy + off;
        size_t left = n;
        for (;;) {
            size_t used = 0;
            status = phx_http_feed(h, p, left, &used);
            ASSERT(used <= left);
            if (status != 100) {
                *total += status == 0 ? left : used;
                break;
            }
            ASSERT(*head_at == SIZE_MAX); /* one pause per request */
            *total += used;
            *head_at = *total;
            ASSERT_EQ(h->body.len, 0);
            phx_http_continue(h);
            p += used;
            left -= used; /* possibly 0: the rest comes in the next chunk */
        }
        off += n;
        if (status != 0)
            break;
    }
    free(copy);
    return status;
}

static void pause_on_head_in_every_chunking(void)
{
    size_t len = sizeof(post_req) - 1;
    for (size_t chunk = 1; chunk <= len; chunk++) {
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        phx_http_pause_on_head(h, true);
        size_t used, head_at;
        ASSERT_EQ(feed_pausing(h, post_req, len, chunk, &used, &head_at), 200);
        ASSERT_EQ(head_at, POST_HEAD_LEN);
        ASSERT_EQ(used, len);
        ASSERT_MEM_EQ(h->body.data, h->body.len, "hello world", 11);
        ASSERT_STR_EQ(phx_http_header(h, "content-type"), "application/json");
        ASSERT_EQ(phx_http_method(h), HTTP_POST);
        phx_http_free(h);
    }
}

static void pause_on_head_at_the_head_then_body_later(void)
{
    /* The whole head in one feed: 100 with *used at the body's start, the
     * head readable, the body not stored; then the body alone. */
    phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
    phx_http_pause_on_head(h, true);
    size_t len = sizeof(post_req) - 1, used = 0;
    const uint8_t *req = (const uint8_t *)post_req;
    ASSERT_EQ(phx_http_feed(h, req, len, &used), 100);
    ASSERT_EQ(used, POST_HEAD_LEN);
    ASSERT(phx_http_has_body(h));
    ASSERT_STR_EQ(phx_http_header(h, "content-length"), "11");
    const char *path, *query;
    size_t plen, qlen;
    phx_http_target(h, &path, &plen, &query, &qlen);
    ASSERT_MEM_EQ(path, plen, "/socket/longpoll", 16);
    ASSERT_EQ(h->body.len, 0);
    phx_http_continue(h);
    ASSERT_EQ(phx_http_feed(h, req + used, len - used, &used), 200);
    ASSERT_EQ(used, 11);
    ASSERT_MEM_EQ(h->body.data, h->body.len, "hello world", 11);
    /* Continuing a parser that is not paused changes nothing. */
    phx_http_continue(h);
    phx_http_free(h);
}

static void pause_on_head_without_body_and_chunked(void)
{
    /* A GET: 100 at the end of the head, then the (empty) rest completes
     * it, also when the head ends a chunk and the rest has no byte. */
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t glen = sizeof(get) - 1;
    for (size_t chunk = 1; chunk <= glen; chunk++) {
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        phx_http_pause_on_head(h, true);
        size_t used, head_at;
        ASSERT_EQ(feed_pausing(h, get, glen, chunk, &used, &head_at), 200);
        ASSERT_EQ(head_at, glen);
        ASSERT_EQ(used, glen);
        ASSERT(!phx_http_has_body(h));
        phx_http_free(h);
    }
    /* A chunked body: the pause comes before the first chunk's size. */
    size_t clen = sizeof(chunked_req) - 1;
    for (size_t chunk = 1; chunk <= clen; chunk++) {
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        phx_http_pause_on_head(h, true);
        size_t used, head_at;
        ASSERT_EQ(feed_pausing(h, chunked_req, clen, chunk, &used, &head_at), 200);
        ASSERT_EQ(head_at, CHUNKED_HEAD_LEN);
        ASSERT_EQ(used, clen);
        ASSERT_MEM_EQ(h->body.data, h->body.len, "hello world", 11);
        phx_http_free(h);
    }
}

static void pause_on_head_with_pipelined_requests(void)
{
    /* Two requests in one buffer, every chunking: each pauses once at its
     * head, the first ends where the second begins, and after a reset the
     * parser takes the second from the bytes after *used. */
    static const char second[] = "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[512];
    size_t flen = sizeof(post_req) - 1, slen = sizeof(second) - 1;
    memcpy(buf, post_req, flen);
    memcpy(buf + flen, second, slen);
    for (size_t chunk = 1; chunk <= flen + slen; chunk++) {
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        phx_http_pause_on_head(h, true);
        size_t used, head_at;
        ASSERT_EQ(feed_pausing(h, buf, flen + slen, chunk, &used, &head_at), 200);
        ASSERT_EQ(head_at, POST_HEAD_LEN);
        ASSERT_EQ(used, flen);
        ASSERT_MEM_EQ(h->body.data, h->body.len, "hello world", 11);
        phx_http_reset(h);
        ASSERT_EQ(h->body.len, 0);
        ASSERT_EQ(feed_pausing(h, buf + flen, slen, chunk, &used, &head_at), 200);
        ASSERT_EQ(head_at, slen);
        ASSERT_EQ(used, slen);
        ASSERT_EQ(phx_http_method(h), HTTP_HEAD);
        ASSERT(!phx_http_has_body(h));
        phx_http_free(h);
    }
}

static void has_body_by_framing(void)
{
    static const struct {
        const char *req;
        bool has_body;
    } cases[] = {
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", true},
        {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", false},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
        {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Judged at the pause, before any body byte... */
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        phx_http_pause_on_head(h, true);
        size_t used;
        size_t len = strlen(cases[i].req);
        ASSERT_EQ(phx_http_feed(h, (const uint8_t *)cases[i].req, len, &used), 100);
        ASSERT_EQ(used, len);
        ASSERT_EQ(phx_http_has_body(h), cases[i].has_body);
        phx_http_free(h);
        /* ...and the same without the pause, at the end of the head. */
        h = phx_http_new(8192, 100, 1 << 20);
        int status = phx_http_feed(h, (const uint8_t *)cases[i].req, len, &used);
        ASSERT(status == (cases[i].has_body ? 0 : 200));
        ASSERT_EQ(phx_http_has_body(h), cases[i].has_body);
        phx_http_free(h);
    }
}

static void declared_body_over_cap_is_413_at_the_head(void)
{
    char head[128];
    for (int pause = 0; pause <= 1; pause++) {
        /* One byte over: refused from the head alone, in every chunking,
         * with no body byte fed or stored. */
        int n = snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
        for (size_t chunk = 1; chunk <= (size_t)n; chunk++) {
            phx_http_t *h = phx_http_new(8192, 100, 100);
            phx_http_pause_on_head(h, pause);
            size_t used, head_at;
            ASSERT_EQ(feed_pausing(h, head, (size_t)n, chunk, &used, &head_at), 413);
            ASSERT_EQ(head_at, SIZE_MAX);
            ASSERT_EQ(h->body.len, 0);
            phx_http_free(h);
        }
        /* Exactly at the cap is fine. */
        n = snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
        phx_http_t *h = phx_http_new(8192, 100, 100);
        phx_http_pause_on_head(h, pause);
        size_t used;
        ASSERT_EQ(phx_http_feed(h, (const uint8_t *)head, (size_t)n, &used), pause ? 100 : 0);
        phx_http_free(h);
    }
    /* A chunked body has no declared length: it is refused at the byte
     * that passes the cap. */
    phx_http_t *h = phx_http_new(8192, 100, 10);
    size_t used;
    ASSERT_EQ(feed_chunked(h, chunked_req, sizeof(chunked_req) - 1, 1, &used), 413);
    ASSERT(h->body.len <= 10);
    phx_http_free(h);
}

/* A POST head declaring `len` body bytes. */
static size_t post_head(char *out, size_t cap, size_t len)
{
    return (size_t)snprintf(out, cap, "POST / HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", len);
}

static void shared_budget_refuses_past_the_total(void)
{
    for (int pause = 0; pause <= 1; pause++) {
        size_t held = 0;
        phx_http_t *a = phx_http_new(8192, 100, 80);
        phx_http_t *b = phx_http_new(8192, 100, 80);
        phx_http_set_budget(a, &held, 100);
        phx_http_set_budget(b, &held, 100);
        phx_http_pause_on_head(a, pause);
        phx_http_pause_on_head(b, pause);
        char req[256], body[80];
        memset(body, 'x', sizeof(body));
        /* `a` holds 30 bytes of a 60-byte body... */
        size_t n = post_head(req, sizeof(req), 60);
        memcpy(req + n, body, 30);
        size_t used, head_at;
        ASSERT_EQ(feed_pausing(a, req, n + 30, 7, &used, &head_at), 0);
        ASSERT_EQ(held, 30);
        /* ...so `b` may declare 70 but not 71: 503 at its head. */
        n = post_head(req, sizeof(req), 71);
        ASSERT_EQ(feed_pausing(b, req, n, 1, &used, &head_at), 503);
        ASSERT_EQ(head_at, SIZE_MAX);
        ASSERT_EQ(held, 30);
        phx_http_reset(b);
        n = post_head(req, sizeof(req), 70);
        memcpy(req + n, body, 70);
        ASSERT_EQ(feed_pausing(b, req, n + 70, 5, &used, &head_at), 200);
        ASSERT_EQ(held, 100);
        /* `a`'s next byte would pass the total: 503 in the body. */
        ASSERT_EQ(feed_pausing(a, body, 30, 1, &used, &head_at), 503);
        ASSERT_EQ(held, 100);
        /* A reset gives the bytes back, a free too. */
        phx_http_reset(b);
        ASSERT_EQ(held, 30);
        phx_http_free(a);
        ASSERT_EQ(held, 0);
        phx_http_free(b);
        ASSERT_EQ(held, 0);
    }
}

static void shared_budget_counts_chunked_bodies(void)
{
    /* Chunked bodies declare nothing: each byte is counted as it is
     * stored and refused once it would pass the total. */
    size_t held = 0;
    phx_http_t *a = phx_http_new(8192, 100, 1 << 20);
    phx_http_t *b = phx_http_new(8192, 100, 1 << 20);
    phx_http_set_budget(a, &held, 16);
    phx_http_set_budget(b, &held, 16);
    size_t used;
    ASSERT_EQ(feed_chunked(a, chunked_req, sizeof(chunked_req) - 1, 3, &used), 200);
    ASSERT_EQ(held, 11);
    ASSERT_EQ(feed_chunked(b, chunked_req, sizeof(chunked_req) - 1, 3, &used), 503);
    ASSERT(held <= 16);
    phx_http_free(b);
    ASSERT_EQ(held, 11);
    phx_http_reset(a);
    ASSERT_EQ(held, 0);
    /* With the room back, the same body fits. */
    ASSERT_EQ(feed_chunked(a, chunked_req, sizeof(chunked_req) - 1, 3, &used), 200);
    ASSERT_EQ(held, 11);
    phx_http_free(a);
    ASSERT_EQ(held, 0);
}

static void without_pause_bodies_parse_as_before(void)
{
    /* No 100 ever comes without pause_on_head: a POST and the request
     * pipelined after it parse straight to 200 in every chunking, with
     * *used at the end of the first. */
    static const char second[] = "GET / HTTP/1.1\r\n\r\n";
    char buf[512];
    size_t flen = sizeof(post_req) - 1, slen = sizeof(second) - 1;
    memcpy(buf, post_req, flen);
    memcpy(buf + flen, second, slen);
    for (size_t chunk = 1; chunk <= flen + slen; chunk++) {
        phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
        size_t used, head_at;
        ASSERT_EQ(feed_pausing(h, buf, flen + slen, chunk, &used, &head_at), 200);
        ASSERT_EQ(head_at, SIZE_MAX);
        ASSERT_EQ(used, flen);
        ASSERT_MEM_EQ(h->body.data, h->body.len, "hello world", 11);
        phx_http_reset(h);
        ASSERT_EQ(feed_pausing(h, buf + flen, slen, chunk, &used, &head_at), 200);
        ASSERT_EQ(head_at, SIZE_MAX);
        ASSERT_EQ(used, slen);
        phx_http_free(h);
    }
    /* The upgrade request and its caps answer as they always did. */
    size_t len = sizeof(upgrade_req) - 1, used;
    phx_http_t *h = phx_http_new(8192, 100, 1 << 20);
    ASSERT_EQ(feed_chunked(h, upgrade_req, len, len, &used), 200);
    ASSERT_EQ(used, len);
    ASSERT(!phx_http_has_body(h));
    phx_http_free(h);
    /* A parser without a budget counts nothing anywhere. */
    h = phx_http_new(8192, 100, 1 << 20);
    ASSERT_EQ(feed_chunked(h, post_req, flen, 4, &used), 200);
    phx_http_free(h);
}

const phx_test_t phx_tests_http[] = {
    {"parses_upgrade_in_every_chunking", parses_upgrade_in_every_chunking},
    {"pipelined_frame_is_left_for_the_next_layer", pipelined_frame_is_left_for_the_next_layer},
    {"header_bytes_over_cap_is_431", header_bytes_over_cap_is_431},
    {"url_over_cap_is_414", url_over_cap_is_414},
    {"header_count_over_cap_is_431", header_count_over_cap_is_431},
    {"malformed_requests_are_400", malformed_requests_are_400},
    {"incomplete_head_needs_more", incomplete_head_needs_more},
    {"routes_socket_paths", routes_socket_paths},
    {"header_token_lists", header_token_lists},
    {"pause_on_head_in_every_chunking", pause_on_head_in_every_chunking},
    {"pause_on_head_at_the_head_then_body_later", pause_on_head_at_the_head_then_body_later},
    {"pause_on_head_without_body_and_chunked", pause_on_head_without_body_and_chunked},
    {"pause_on_head_with_pipelined_requests", pause_on_head_with_pipelined_requests},
    {"has_body_by_framing", has_body_by_framing},
    {"declared_body_over_cap_is_413_at_the_head", declared_body_over_cap_is_413_at_the_head},
    {"shared_budget_refuses_past_the_total", shared_budget_refuses_past_the_total},
    {"shared_budget_counts_chunked_bodies", shared_budget_counts_chunked_bodies},
    {"without_pause_bodies_parse_as_before", without_pause_bodies_parse_as_before},
    {NULL, NULL},
};
