/* fuzz_token: raw bytes as a token to phx_token_verify with a fixed key.
 * Invariant: a raw input never verifies (that would be a MAC bypass); the
 * only results are INVALID and, for overlong or malformed input, nothing
 * else (no EXPIRED without a valid MAC, no crash, no read past the end). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phx.h"
#include "token.h"
#include "fuzz.h"

static phx_token_t *the_token(void)
{
    static phx_token_t *tok;
    if (tok == NULL) {
        /* A secret no seed was signed with: the seeds are real tokens
         * (docs/protocol.md §9) that must fail here exactly like forgeries. */
        static const char kb[] = "fuzz-token-secret-that-signed-nothing-0123456789abcdef0123456789";
        phx_token_config_t cfg = {
            .secret_key_base = (const uint8_t *)kb,
            .secret_key_base_len = sizeof(kb) - 1,
            .salt = (const uint8_t *)"user socket",
            .salt_len = 11,
        };
        CHECK(phx_token_new(&tok, &cfg) == 0);
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    phx_token_t *tok = the_token();
    static const phx_max_age_t ages[3] = {
        {PHX_MAX_AGE_TOKEN, 0, false},
        {PHX_MAX_AGE_INFINITY, 0, false},
        {PHX_MAX_AGE_SECONDS, 1e9, false},
    };
    for (int i = 0; i < 3; i++) {
        phx_term_t *out = NULL;
        int rv =
            phx_token_verify(tok, (const char *)data, size, INT64_C(1700000000000), ages[i], &out);
        CHECK(rv == PHX_ERR_INVALID);
        CHECK(out == NULL);
    }
    phx_token_stats_t s;
    phx_token_get_stats(tok, &s);
    CHECK(s.etf_decodes == 0);
    return 0;
}
