/* fuzz_query: query.c on arbitrary query strings, with default and with
 * tight limits. Invariants: success gives a params object whose JSON is
 * valid, an object and within the depth the limits allow; lookups agree
 * with the JSON's shape; vsn negotiation accepts whatever string comes out;
 * failures are one of the documented codes and leave *out untouched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "phx.h"
#include "query.h"
#include "serializer.h"
#include "utf8.h"
#include "fuzz.h"

static void run(const char *qs, size_t len, const phx_query_limits_t *lim, uint32_t depth)
{
    phx_query_t *q = NULL;
    int rv = phx_query_parse(&q, qs, len, lim);
    if (rv != 0) {
        CHECK(rv == PHX_ERR_INVALID || rv == PHX_ERR_LIMIT);
        CHECK(q == NULL);
        return;
    }
    phx_buf_t b = {0};
    CHECK(phx_query_to_json(q, &b) == 0);
    /* Top-level map plus one container per bracket level. */
    phx_json_limits_t jl = {.max_depth = depth + 1};
    CHECK(phx_json_is_object(b.data, b.len, &jl));
    CHECK(phx_query_count(q) <= len);

    static const char *keys[] = {"vsn", "token", "a", ""};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const uint8_t *v;
        size_t n;
        phx_query_kind_t k = phx_query_get(q, keys[i], strlen(keys[i]), &v, &n);
        if (k == PHX_QUERY_STRING) {
            CHECK(phx_utf8_valid(v, n));
            CHECK(n <= len);
            phx_fmt_t f;
            int vr = phx_vsn_parse((const char *)v, n, true, &f);
            CHECK(vr == 0 || vr == PHX_ERR_INVALID || vr == PHX_ERR_NOTFOUND);
        } else {
            CHECK(v == NULL && n == 0);
        }
    }
    phx_buf_dispose(&b);
    phx_query_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *qs = (const char *)data;
    run(qs, size, NULL, PHX_QUERY_DEFAULT_MAX_DEPTH);
    phx_query_limits_t tight = {.max_len = 256, .max_params = 4, .max_depth = 2};
    run(qs, size, &tight, 2);
    return 0;
}
