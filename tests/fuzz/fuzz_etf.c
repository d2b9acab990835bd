/* fuzz_etf: etf.c's decoder and everything that runs on its output.
 * Invariants: errors are only INVALID, LIMIT or NOMEM; a decoded term
 * renders as JSON that is UTF-8 and that phx_json_to_term reads back; its
 * id string renders; encode -> decode gives an equal term, and encoding
 * that again gives the same bytes (the encoding is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etf.h"
#include "mem.h"
#include "phx.h"
#include "utf8.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    phx_term_t *t = NULL;
    int rv = phx_etf_decode(data, size, NULL, &t);
    if (rv != 0) {
        CHECK(rv == PHX_ERR_INVALID || rv == PHX_ERR_DATA || rv == PHX_ERR_LIMIT ||
              rv == PHX_ERR_NOMEM);
        return 0;
    }
    CHECK(size >= 2 && data[0] == 131);

    phx_buf_t json = {0};
    CHECK(phx_term_to_json(t, &json) == 0);
    CHECK(phx_utf8_valid(json.data, json.len));
    /* A charlist is one ETF node but one JSON node per element. */
    phx_etf_limits_t wide = {.max_nodes = 1u << 24};
    phx_term_t *from_json = NULL;
    CHECK(phx_json_to_term((const char *)json.data, json.len, &wide, &from_json) == 0);
    phx_term_free(from_json);
    phx_buf_dispose(&json);

    phx_buf_t id = {0};
    CHECK(phx_term_id_string(t, &id) == 0);
    phx_buf_dispose(&id);

    phx_buf_t a = {0}, b = {0};
    CHECK(phx_etf_encode(t, 0, &a) == 0);
    phx_term_t *u = NULL;
    CHECK(phx_etf_decode(a.data, a.len, NULL, &u) == 0);
    CHECK(phx_term_compare(t, u) == 0);
    CHECK(phx_etf_encode(u, 0, &b) == 0);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    phx_buf_dispose(&b);
    /* The OTP 25 atom form decodes to the same term as well. */
    CHECK(phx_etf_encode(t, PHX_ETF_LATIN1_ATOMS, &b) == 0);
    phx_term_t *w = NULL;
    CHECK(phx_etf_decode(b.data, b.len, NULL, &w) == 0);
    CHECK(phx_term_compare(t, w) == 0);
    phx_term_free(w);
    phx_buf_dispose(&a);
    phx_buf_dispose(&b);
    phx_term_free(u);
    phx_term_free(t);
    return 0;
}
