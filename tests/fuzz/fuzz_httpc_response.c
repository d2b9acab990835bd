/* fuzz_httpc_response: the HTTP client's answer parser (http/client.c).
 * The first byte picks a chunk size (bits 0-3) and the bounds (bits 4-5:
 * 1 MiB, 4096, 300 or 40 bytes); the rest is what a server sent before
 * closing. It is parsed whole (phx_httpc_parse_response) and fed in chunks
 * to a parser object, then the end of the stream. Invariants: the result is
 * an answer or PHX_ERR_PROTO / PHX_ERR_LIMIT; an answer's status is final
 * (200-999) and its body within the bound; *used never passes the chunk,
 * and an answer completes at the same byte and with the same status, body
 * and keep-alive in every chunking (a failure may be named differently: a
 * chunked feed sees the byte bound earlier); a reset parser then takes a
 * well-formed answer, as a keep-alive connection does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "fuzz.h"
#include "mem.h"
#include "phx.h"

static const char good[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t bounds[4] = {(size_t)1 << 20, 4096, 300, 40};
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 16) + 1;
    size_t max = bounds[(data[0] >> 4) & 3];
    data++;
    size--;

    int status = 0;
    phx_buf_t body = {0};
    int whole = phx_httpc_parse_response(data, size, max, &status, &body);
    CHECK(whole == 0 || whole == PHX_ERR_PROTO || whole == PHX_ERR_LIMIT);
    if (whole == 0) {
        CHECK(status >= 200 && status <= 999);
        CHECK(body.len <= max);
    }

    phx_httpc_parser_t ps;
    phx_httpc_parser_init(&ps, max, max);
    size_t off = 0, end = 0;
    int rv = 0;
    while (off < size && rv == 0) {
        size_t n = size - off < chunk ? size - off : chunk;
        /* An exact-size copy, so that a read past the chunk is caught. */
        uint8_t *copy = malloc(n);
        CHECK(copy != NULL);
        memcpy(copy, data + off, n);
        size_t used = n + 1;
        rv = phx_httpc_parser_feed(&ps, copy, n, &used);
        free(copy);
        CHECK(used <= n);
        CHECK(rv == 1 || used == n);
        off += used;
        if (rv == 1)
            end = off;
    }
    if (rv == 0)
        rv = phx_httpc_parser_finish(&ps);
    CHECK(rv == 1 || rv == PHX_ERR_PROTO || rv == PHX_ERR_LIMIT);
    CHECK((rv == 1) == (whole == 0));
    if (rv == 1) {
        CHECK(ps.status == status);
        CHECK(ps.body.len == body.len);
        CHECK(body.len == 0 || memcmp(ps.body.data, body.data, body.len) == 0);
        CHECK(end == 0 || end <= size);
        /* The same answer fed whole ends at the same byte. */
        if (end > 0) {
            phx_httpc_parser_t w;
            phx_httpc_parser_init(&w, max, max);
            size_t used;
            CHECK(phx_httpc_parser_feed(&w, data, size, &used) == 1);
            CHECK(used == end);
            CHECK(w.keep_alive == ps.keep_alive);
            phx_httpc_parser_dispose(&w);
        }
        /* Once complete, it stays so until reset. */
        size_t used;
        CHECK(phx_httpc_parser_feed(&ps, (const uint8_t *)"x", 1, &used) == 1 && used == 0);
    } else {
        size_t used;
        CHECK(phx_httpc_parser_feed(&ps, (const uint8_t *)"x", 1, &used) == rv);
    }
    if (max >= sizeof(good)) {
        phx_httpc_parser_reset(&ps);
        size_t used;
        CHECK(phx_httpc_parser_feed(&ps, (const uint8_t *)good, sizeof(good) - 1, &used) == 1);
        CHECK(used == sizeof(good) - 1 && ps.status == 200 && ps.keep_alive);
        CHECK(ps.body.len == 2 && memcmp(ps.body.data, "ok", 2) == 0);
    }
    phx_httpc_parser_dispose(&ps);
    phx_buf_dispose(&body);
    return 0;
}
