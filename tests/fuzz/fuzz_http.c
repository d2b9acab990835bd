/* fuzz_http: the request-head codec and routing. The first byte picks a
 * chunk size (bits 0-3), the pause after the head (bit 4: on 100 the
 * harness checks nothing of the body was stored, calls phx_http_continue
 * and feeds the bytes after *used, as http.c does) and the total of a body
 * budget (bits 5-6); the rest is fed in chunks of that size (llhttp must
 * not care). Invariants: the answer is 0 (incomplete), 200, or one of the
 * documented error statuses; 100 comes only with the pause, once per
 * request and before any body byte is stored (a body comes only when
 * phx_http_has_body said so there); *used never exceeds the
 * input; a complete request's header lookups and target split stay inside
 * its own storage; the budget counts exactly the bytes stored, never goes
 * past its total and is given back by reset and free; the same input fed
 * whole, with or without the pause, gives the same answer; a second parser
 * sharing the budget with one that holds the body gets the same answer
 * when both bodies fit, else 503. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "phx.h"

#define MAX_BODY 4096

typedef struct {
    int status;
    size_t consumed; /* bytes that belonged to the request (when 200) */
    size_t body_len;
} outcome_t;

/* Parses `data` in chunks of `chunk` bytes with a parser on the budget
 * (`*held` of `max`; `base` of it held by others). With `keep`, the parser
 * is handed back as it stands (body held) instead of being freed. */
/* The socket routes of a default server, built once for the process. */
static const phx_router_t *fuzz_router(void)
{
    static phx_router_t r;
    if (r.count == 0) {
        phx_http_route_t ws = {.path = "/socket/websocket", .match = PHX_MATCH_SLASH};
        phx_http_route_t lp = {.path = "/socket/longpoll", .match = PHX_MATCH_SLASH};
        phx_http_route_t api = {.path = "/api/", .match = PHX_MATCH_PREFIX};
        if (phx_router_add(&r, &ws) || phx_router_add(&r, &lp) || phx_router_add(&r, &api))
            abort();
    }
    return &r;
}

static outcome_t feed(const uint8_t *data, size_t size, size_t chunk, bool pause, size_t *held,
                      size_t max, phx_http_t **keep)
{
    size_t base = *held;
    phx_http_t *h = phx_http_new(1024, 16, MAX_BODY);
    CHECK(h != NULL);
    phx_http_set_budget(h, held, max);
    phx_http_pause_on_head(h, pause);
    outcome_t o = {0};
    bool paused = false, has_body = false;
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        const uint8_t *p = data + off;
        size_t left = n;
        for (;;) {
            size_t used = 0;
            o.status = phx_http_feed(h, p, left, &used);
            CHECK(used <= left);
            CHECK(*held == base + h->body.len && *held <= max);
            if (o.status != 100) {
                o.consumed += o.status == 0 ? left : used;
                break;
            }
            CHECK(pause && !paused);
            paused = true;
            CHECK(h->body.len == 0);
            /* Judged here, before the body: llhttp counts a declared
             * length down as the body is read. */
            has_body = phx_http_has_body(h);
            o.consumed += used;
            p += used;
            left -= used;
            phx_http_continue(h);
        }
        off += n;
        if (o.status != 0)
            break;
    }
    o.body_len = h->body.len;
    if (o.status == 200) {
        /* A complete request passed its head (and paused there). */
        CHECK(paused == pause);
        CHECK(!pause || h->body.len == 0 || has_body);
        if (keep) {
            *keep = h;
            return o;
        }
        const char *path, *query;
        size_t plen, qlen;
        phx_http_target(h, &path, &plen, &query, &qlen);
        CHECK(plen <= h->url.len && qlen <= h->url.len);
        (void)phx_router_find(fuzz_router(), path, plen);
        const char *v = phx_http_header(h, "host");
        if (v)
            CHECK(v >= (const char *)h->headers.data &&
                  v < (const char *)h->headers.data + h->headers.len);
        (void)phx_http_header_has_token(phx_http_header(h, "connection"), "upgrade");
        (void)phx_http_header_count(h, "origin");
        /* The parser can take the next request after a reset, which gives
         * the body's bytes back. */
        phx_http_reset(h);
        CHECK(*held == base);
        size_t used;
        int s = phx_http_feed(h, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, &used);
        if (s == 100) {
            CHECK(pause && used == 18);
            phx_http_continue(h);
            s = phx_http_feed(h, (const uint8_t *)"", 0, &used);
        }
        CHECK(s == 200);
    }
    phx_http_free(h);
    CHECK(*held == base);
    return o;
}

static bool same(const outcome_t *a, const outcome_t *b)
{
    return a->status == b->status && a->consumed == b->consumed && a->body_len == b->body_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t totals[4] = {(size_t)1 << 30, MAX_BODY, 300, 20};
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 16) + 1;
    bool pause = (data[0] & 0x10) != 0;
    size_t max = totals[(data[0] >> 5) & 3];
    data++;
    size--;
    size_t held = 0, whole = size ? size : 1;
    outcome_t a = feed(data, size, chunk, pause, &held, max, NULL);
    outcome_t b = feed(data, size, whole, false, &held, max, NULL);
    outcome_t c = feed(data, size, whole, true, &held, max, NULL);
    CHECK(held == 0);
    CHECK(a.status == 0 || a.status == 200 || a.status == 400 || a.status == 413 ||
          a.status == 414 || a.status == 431 || a.status == 503);
    /* Neither chunking nor the pause changes the outcome of a complete or
     * failed head. */
    if (a.status == 200 || b.status == 200)
        CHECK(same(&a, &b));
    if (b.status == 200 || c.status == 200)
        CHECK(same(&b, &c));
    /* Another parser on the same budget while this body is held. */
    if (a.status == 200 && a.body_len > 0) {
        phx_http_t *first = NULL;
        outcome_t k = feed(data, size, whole, pause, &held, max, &first);
        CHECK(k.status == 200 && first != NULL && held == k.body_len);
        outcome_t d = feed(data, size, chunk, pause, &held, max, NULL);
        if (k.body_len + a.body_len <= max)
            CHECK(same(&d, &a));
        else
            CHECK(d.status == 503);
        CHECK(held == k.body_len);
        phx_http_free(first);
        CHECK(held == 0);
    }
    return 0;
}
