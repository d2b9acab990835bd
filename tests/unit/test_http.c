/* Unit tests for http.c's request-head codec and routing: every chunking
 * down to one byte, the header caps, pipelined bytes after the head. */
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
    ASSERT_EQ(phx_http_route("/socket/websocket", 17, "/socket"), PHX_ROUTE_WEBSOCKET);
    ASSERT_EQ(phx_http_route("/socket/websocket/", 18, "/socket"), PHX_ROUTE_WEBSOCKET);
    ASSERT_EQ(phx_http_route("/socket/longpoll", 16, "/socket"), PHX_ROUTE_LONGPOLL);
    ASSERT_EQ(phx_http_route("/socket/websocketx", 18, "/socket"), PHX_ROUTE_NOT_FOUND);
    ASSERT_EQ(phx_http_route("/socket/websocket//", 19, "/socket"), PHX_ROUTE_NOT_FOUND);
    ASSERT_EQ(phx_http_route("/socket", 7, "/socket"), PHX_ROUTE_NOT_FOUND);
    ASSERT_EQ(phx_http_route("/", 1, "/socket"), PHX_ROUTE_NOT_FOUND);
    ASSERT_EQ(phx_http_route("/live/websocket", 15, "/live"), PHX_ROUTE_WEBSOCKET);
    ASSERT_EQ(phx_http_route("/sock/websocket", 15, "/socket"), PHX_ROUTE_NOT_FOUND);
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
    {NULL, NULL},
};
