/* fuzz_http: the request-head codec and routing. The first byte picks a
 * chunk size; the rest is fed in chunks of that size (llhttp must not care).
 * Invariants: the answer is 0 (incomplete), 200, or one of the documented
 * error statuses; *used never exceeds the input; a complete request's
 * header lookups and target split stay inside its own storage; the same
 * input fed whole gives the same answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "phx.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int feed(const uint8_t *data, size_t size, size_t chunk, size_t *consumed)
{
    phx_http_t *h = phx_http_new(1024, 16, 4096);
    CHECK(h != NULL);
    size_t off = 0;
    int status = 0;
    *consumed = 0;
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t used = 0;
        status = phx_http_feed(h, data + off, n, &used);
        CHECK(used <= n);
        *consumed += used;
        off += n;
        if (status != 0)
            break;
    }
    if (status == 200) {
        const char *path, *query;
        size_t plen, qlen;
        phx_http_target(h, &path, &plen, &query, &qlen);
        CHECK(plen <= h->url.len && qlen <= h->url.len);
        (void)phx_http_route(path, plen, "/socket");
        const char *v = phx_http_header(h, "host");
        if (v)
            CHECK(v >= (const char *)h->headers.data &&
                  v < (const char *)h->headers.data + h->headers.len);
        (void)phx_http_header_has_token(phx_http_header(h, "connection"), "upgrade");
        (void)phx_http_header_count(h, "origin");
        /* The parser can take the next request after a reset. */
        phx_http_reset(h);
        size_t used;
        (void)phx_http_feed(h, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, &used);
    }
    phx_http_free(h);
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 16) + 1;
    data++;
    size--;
    size_t c1, c2;
    int a = feed(data, size, chunk, &c1);
    int b = feed(data, size, size ? size : 1, &c2);
    CHECK(a == 0 || a == 200 || a == 400 || a == 413 || a == 414 || a == 431 || a == 503);
    /* Chunking does not change the outcome of a complete or failed head. */
    if (a == 200 || b == 200)
        CHECK(a == b && c1 == c2);
    return 0;
}
