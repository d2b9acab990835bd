/* fuzz_token_signed: the fuzz bytes become the ETF payload of a correctly
 * signed token, so the decoder is reached through the real MAC path.
 * Invariants: the harness's own HMAC (OpenSSL, computed here) gives the same
 * token as phx_token_sign_payload; verify agrees with phx_etf_decode on
 * accept/reject; an accepted payload of an accepted shape returns the same
 * data; and the expiry outcome matches a reference written here with
 * 128-bit arithmetic. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.h"
#include "etf.h"
#include "mem.h"
#include "phx.h"
#include "token.h"
#include "fuzz.h"

#define NOW INT64_C(1700000000000)

static const char kb[] = "abcdefghijklmnopqrstuvwxyz012345abcdefghijklmnopqrstuvwxyz012345";
static uint8_t key[32];

static phx_token_t *the_token(void)
{
    static phx_token_t *tok;
    if (tok == NULL) {
        phx_token_config_t cfg = {
            .secret_key_base = (const uint8_t *)kb,
            .secret_key_base_len = sizeof(kb) - 1,
            .salt = (const uint8_t *)"user socket",
            .salt_len = 11,
            .max_token_bytes = 1u << 20,
        };
        CHECK(phx_token_new(&tok, &cfg) == 0);
        CHECK(phx_token_derive_key(PHX_DIGEST_SHA256, kb, sizeof(kb) - 1, "user socket", 11, 1000,
                                   key, sizeof(key)) == 0);
    }
    return tok;
}

/* Finds an atom key's value in a map. */
static const phx_term_t *atom_value(const phx_term_t *m, const char *name)
{
    for (size_t i = 0; i < m->u.map.count; i++)
        if (phx_term_is_atom(m->u.map.pairs[i].key, name))
            return m->u.map.pairs[i].value;
    return NULL;
}

/* The reference age check (docs/protocol.md §7.4 step 8) for the token's own
 * max_age; returns 1 when it cannot decide simply (bignums). */
static int reference_age(const phx_term_t *signed_t, const phx_term_t *max_age)
{
    if (max_age == NULL) {
        static phx_term_t *day;
        if (day == NULL)
            CHECK(phx_term_new_int(&day, 86400) == 0);
        max_age = day;
    }
    if (phx_term_is_atom(max_age, "infinity"))
        return 0;
    int64_t ma_i = 0, s = 0;
    bool is_int = max_age->type == PHX_TERM_INTEGER;
    if (!is_int && max_age->type != PHX_TERM_FLOAT)
        return PHX_ERR_INVALID;
    if (is_int && !phx_term_get_int64(max_age, &ma_i))
        return 1;
    if (is_int ? ma_i <= 0 : max_age->u.f <= 0)
        return PHX_ERR_EXPIRED;
    if (signed_t->type != PHX_TERM_INTEGER)
        return PHX_ERR_INVALID;
    if (!phx_term_get_int64(signed_t, &s))
        return 1;
    if (s > NOW)
        return PHX_ERR_INVALID;
    if (is_int)
        return (__int128)s + (__int128)ma_i * 1000 < NOW ? PHX_ERR_EXPIRED : 0;
    long double ms = truncl((long double)max_age->u.f * 1000.0L);
    double ms_d = trunc(max_age->u.f * 1000.0);
    if (ms != (long double)ms_d || ms_d > 1e18)
        return 1; /* double and long double rounding differ: do not judge */
    return (long double)s + ms < (long double)NOW ? PHX_ERR_EXPIRED : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    phx_token_t *tok = the_token();

    /* Sign with OpenSSL here, and with token.c: same text. */
    phx_buf_t mine = {0}, theirs = {0};
    CHECK(phx_buf_append_str(&mine, "SFMyNTY.") == 0);
    CHECK(phx_base64url_encode(&mine, data, size) == 0);
    uint8_t mac[32];
    unsigned mac_len = 0;
    CHECK(HMAC(EVP_sha256(), key, sizeof(key), mine.data, mine.len, mac, &mac_len) != NULL);
    CHECK(phx_buf_append_byte(&mine, '.') == 0);
    CHECK(phx_base64url_encode(&mine, mac, mac_len) == 0);
    CHECK(phx_token_sign_payload(tok, data, size, &theirs) == 0);
    CHECK(mine.len == theirs.len && memcmp(mine.data, theirs.data, mine.len) == 0);
    phx_buf_dispose(&theirs);

    phx_term_t *ref = NULL;
    int drv = phx_etf_decode(data, size, NULL, &ref);
    const phx_max_age_t inf = {PHX_MAX_AGE_INFINITY, 0, false};
    const phx_max_age_t own = {PHX_MAX_AGE_TOKEN, 0, false};
    phx_term_t *got = NULL;
    int vrv = phx_token_verify(tok, (const char *)mine.data, mine.len, NOW, inf, &got);
    if (drv == PHX_ERR_NOMEM || vrv == PHX_ERR_NOMEM)
        goto done;
    if (drv != 0) {
        /* A term phxd does not hold is told apart from a malformed one. */
        CHECK(drv == PHX_ERR_DATA ? vrv == PHX_ERR_DATA : vrv == PHX_ERR_INVALID);
        goto done;
    }
    /* Which shape, and where the data sits. */
    const phx_term_t *want = NULL, *signed_t = NULL, *max_age = NULL;
    if (ref->type == PHX_TERM_TUPLE && (ref->u.seq.count == 2 || ref->u.seq.count == 3)) {
        want = ref->u.seq.items[0];
        signed_t = ref->u.seq.items[1];
        max_age = ref->u.seq.count == 3 ? ref->u.seq.items[2] : NULL;
    } else if (ref->type == PHX_TERM_MAP) {
        want = atom_value(ref, "data");
        signed_t = atom_value(ref, "signed");
        if (signed_t == NULL)
            want = NULL;
    }
    if (want == NULL) {
        CHECK(vrv == PHX_ERR_INVALID);
        goto done;
    }
    CHECK(vrv == 0);
    CHECK(phx_term_compare(got, want) == 0);
    phx_term_free(got);
    got = NULL;
    /* The token's own max_age against the reference. */
    vrv = phx_token_verify(tok, (const char *)mine.data, mine.len, NOW, own, &got);
    int expect = reference_age(signed_t, max_age);
    if (expect != 1 && vrv != PHX_ERR_NOMEM)
        CHECK(vrv == expect);
done:
    phx_term_free(got);
    phx_term_free(ref);
    phx_buf_dispose(&mine);
    return 0;
}
