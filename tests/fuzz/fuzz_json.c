/* fuzz_json: json.c's validator and in-place minifier on arbitrary bytes.
 * Invariants: validate and minify agree; minified output is no longer than
 * the input, validates, and minifies to itself; the elements the iterator
 * yields validate on their own; string spans unescape; escaping any bytes
 * gives a JSON string that validates exactly when the bytes are UTF-8 and
 * that unescapes back to them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"
#include "fuzz.h"

static void check_string_span(const uint8_t *p, size_t len)
{
    uint8_t *out = malloc(len);
    CHECK(out != NULL);
    size_t n;
    bool nul;
    CHECK(phx_json_string_decode(p, len, out, &n, &nul) == 0);
    CHECK(n <= len - 2);
    CHECK(phx_utf8_valid(out, n));
    CHECK(nul == (memchr(out, 0, n) != NULL));
    free(out);
}

static void check_minified(const uint8_t *p, size_t n)
{
    CHECK(phx_json_validate(p, n, NULL) == 0);
    uint8_t *again = malloc(n ? n : 1);
    CHECK(again != NULL);
    memcpy(again, p, n);
    size_t n2;
    CHECK(phx_json_minify(again, n, NULL, &n2) == 0);
    CHECK(n2 == n && memcmp(again, p, n) == 0);
    free(again);

    phx_json_type_t t = phx_json_type(p, n);
    CHECK(t != PHX_JSON_INVALID);
    CHECK(phx_json_is_object(p, n, NULL) == (t == PHX_JSON_OBJECT));
    if (t == PHX_JSON_STRING) {
        check_string_span(p, n);
        return;
    }
    phx_json_iter_t it;
    if (phx_json_iter_init(&it, p, n) != 0) {
        CHECK(t != PHX_JSON_ARRAY && t != PHX_JSON_OBJECT);
        return;
    }
    phx_json_span_t k, v;
    size_t count = 0;
    while (phx_json_iter_next(&it, &k, &v)) {
        CHECK(v.p >= p && v.p + v.len <= p + n);
        CHECK(phx_json_validate(v.p, v.len, NULL) == 0);
        CHECK(v.type == phx_json_type(v.p, v.len));
        if (phx_json_iter_is_object(&it))
            check_string_span(k.p, k.len);
        CHECK(++count <= n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int v = phx_json_validate(data, size, NULL);
    uint8_t *buf = malloc(size ? size : 1);
    CHECK(buf != NULL);
    if (size)
        memcpy(buf, data, size);
    size_t n;
    int m = phx_json_minify(buf, size, NULL, &n);
    CHECK(v == m);
    CHECK(n <= size);
    if (m == 0)
        check_minified(buf, n);
    free(buf);

    /* Escape the raw input as a string. */
    size_t elen = phx_json_escaped_len(data, size);
    uint8_t *esc = malloc(elen);
    CHECK(esc != NULL);
    CHECK((size_t)(phx_json_escape(esc, data, size) - esc) == elen);
    int ev = phx_json_validate(esc, elen, NULL);
    CHECK((ev == 0) == phx_utf8_valid(data, size));
    uint8_t *back = malloc(elen);
    CHECK(back != NULL);
    size_t blen;
    bool nul;
    CHECK(phx_json_string_decode(esc, elen, back, &blen, &nul) == 0);
    CHECK(blen == size && (size == 0 || memcmp(back, data, size) == 0));
    free(back);
    free(esc);
    return 0;
}
