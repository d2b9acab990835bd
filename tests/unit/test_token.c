/* Unit tests for token.c and token_cli.c against docs/protocol.md §9:
 * the PBKDF2 table, tokens V1-V20 (verify and byte-exact sign), the
 * negative and behavioural vectors, expiry edges, MAC-before-decode, key
 * caching, allocation failure, and the `phxd token` subcommand. */
#include "token.h"

#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#include "etf.h"
#include "mem.h"
#include "phx.h"
#include "guard.h"
#include "runner.h"
#include "token_cli.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define KB1 "kjoy3o1zeidquwy1398juxzldjlksahdk3"
#define KB2 "abcdefghijklmnopqrstuvwxyz012345abcdefghijklmnopqrstuvwxyz012345"
#define SIGNED_MS INT64_C(1700000000000)

static const phx_max_age_t AGE_TOKEN = {PHX_MAX_AGE_TOKEN, 0, false};
static const phx_max_age_t AGE_INF = {PHX_MAX_AGE_INFINITY, 0, false};

static phx_max_age_t age_s(double s)
{
    phx_max_age_t a = {PHX_MAX_AGE_SECONDS, s, false};
    return a;
}

/* ---- helpers ---- */

static phx_token_t *token_new(const char *secret, const char *salt)
{
    phx_token_config_t cfg = {
        .secret_key_base = (const uint8_t *)secret,
        .secret_key_base_len = strlen(secret),
        .salt = (const uint8_t *)salt,
        .salt_len = strlen(salt),
    };
    phx_token_t *t = NULL;
    ASSERT_EQ(phx_token_new(&t, &cfg), 0);
    return t;
}

/* Verifies `tok` from a guarded copy (input right before an unreadable
 * page) and from an exact-size heap copy; both must agree. Returns the
 * result and, on success, the data as JSON in *json (phx_free). */
static int verify_json(phx_token_t *t, const char *tok, int64_t now, phx_max_age_t age, char **json)
{
    size_t len = strlen(tok);
    guard_t g;
    phx_term_t *d1 = NULL, *d2 = NULL;
    int rv1 = phx_token_verify(t, (const char *)guard_copy(&g, tok, len), len, now, age, &d1);
    guard_free(&g);
    char *h = malloc(len ? len : 1);
    memcpy(h, tok, len);
    int rv2 = phx_token_verify(t, h, len, now, age, &d2);
    free(h);
    ASSERT_EQ(rv1, rv2);
    if (rv1 == 0) {
        ASSERT_EQ(phx_term_compare(d1, d2), 0);
        phx_buf_t b = {0};
        ASSERT_EQ(phx_term_to_json(d1, &b), 0);
        ASSERT_EQ(phx_buf_append_byte(&b, 0), 0);
        if (json)
            *json = (char *)b.data;
        else
            phx_buf_dispose(&b);
    }
    phx_term_free(d1);
    phx_term_free(d2);
    return rv1;
}

static void expect_ok(phx_token_t *t, const char *tok, int64_t now, phx_max_age_t age,
                      const char *want_json)
{
    char *json = NULL;
    int rv = verify_json(t, tok, now, age, &json);
    if (rv != 0)
        phx_test_fail(__FILE__, __LINE__, "%s: %s", tok, phx_err_name(rv));
    if (strcmp(json, want_json) != 0)
        phx_test_fail(__FILE__, __LINE__, "%s: data %s want %s", tok, json, want_json);
    phx_free(json);
}

static void expect_rv(phx_token_t *t, const char *tok, int64_t now, phx_max_age_t age, int want)
{
    int rv = verify_json(t, tok, now, age, NULL);
    if (rv != want)
        phx_test_fail(__FILE__, __LINE__, "%s: %s want %s", tok, phx_err_name(rv),
                      phx_err_name(want));
}

static phx_term_t *json_term(const char *json)
{
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_json_to_term(json, strlen(json), NULL, &t), 0);
    return t;
}

static char *sign_json(phx_token_t *t, const char *json, int64_t signed_ms, phx_max_age_t age)
{
    phx_term_t *d = json_term(json);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_token_sign(t, d, signed_ms, age, &out), 0);
    phx_term_free(d);
    return (char *)out.data;
}

static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ASSERT(sscanf(hex + 2 * i, "%2x", &v) == 1);
        b[i] = (uint8_t)v;
    }
    *len = n;
    return b;
}

static char *sign_payload_hex(phx_token_t *t, const char *hex)
{
    size_t len;
    uint8_t *p = unhex(hex, &len);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_token_sign_payload(t, p, len, &out), 0);
    free(p);
    return (char *)out.data;
}

/* ---- docs/protocol.md §9 vectors ---- */

static void pbkdf2_table(void)
{
    static const struct {
        phx_digest_t d;
        const char *pass;
        size_t pass_len;
        const char *salt;
        size_t salt_len;
        uint32_t iter;
        const char *hex;
    } rows[] = {
        {PHX_DIGEST_SHA1, "password", 8, "salt", 4, 1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
        {PHX_DIGEST_SHA1, "password", 8, "salt", 4, 2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
        {PHX_DIGEST_SHA1, "password", 8, "salt", 4, 4096,
         "4b007901b765489abead49d926f721d065a429c1"},
        {PHX_DIGEST_SHA1, "passwordPASSWORDpassword", 24, "saltSALTsaltSALTsaltSALTsaltSALTsalt",
         36, 4096, "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
        {PHX_DIGEST_SHA1, "pass\0word", 9, "sa\0lt", 5, 4096, "56fa6aa75548099dcc37d7f03425e0c3"},
        {PHX_DIGEST_SHA1, "password", 8, "salt", 4, 1000,
         "6e88be8bad7eae9d9e10aa061224034fed48d03fcbad968b56006784539d5214"},
        {PHX_DIGEST_SHA256, "password", 8, "salt", 4, 1000,
         "632c2812e46d4604102ba7618e9d6d7d2f8128f6266b4a03264d2a0460b7dcb3"},
        {PHX_DIGEST_SHA1, "password", 8, "salt", 4, 1000,
         "6e88be8bad7eae9d9e10aa061224034fed48d03fcbad968b56006784539d5214ce970d912ec2049b04231d47c"
         "2eb8"
         "8506945b26b2325e6adfeeba08895ff9587"},
        {PHX_DIGEST_SHA224, "password", 8, "salt", 4, 1, "3c198cbdb9464b7857966bd05b7bc92b"},
        {PHX_DIGEST_SHA256, "password", 8, "salt", 4, 1, "120fb6cffcf8b32c43e7225256c4f837"},
        {PHX_DIGEST_SHA384, "password", 8, "salt", 4, 1, "c0e14f06e49e32d73f9f52ddf1d0c5c7"},
        {PHX_DIGEST_SHA512, "password", 8, "salt", 4, 1, "867f70cf1ade02cff3752599a3a53dc4"},
        /* The two derived keys of docs/protocol.md §9.2. */
        {PHX_DIGEST_SHA256, KB1, sizeof(KB1) - 1, "user auth", 9, 1000,
         "71e6bb9087444023e8313bbb80bf25945ba411c024f266b2954f9ca21db07a01"},
        {PHX_DIGEST_SHA256, KB2, sizeof(KB2) - 1, "user socket", 11, 1000,
         "cfc881aa5a06c22d0943ab591b90dfb1afea1fcc26f4c2da57a47a7b270ae608"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t len;
        uint8_t *want = unhex(rows[i].hex, &len);
        uint8_t got[64];
        ASSERT_EQ(phx_token_derive_key(rows[i].d, rows[i].pass, rows[i].pass_len, rows[i].salt,
                                       rows[i].salt_len, rows[i].iter, got, len),
                  0);
        ASSERT_MEM_EQ(got, len, want, len);
        free(want);
    }
    uint8_t k[8];
    ASSERT_EQ(phx_token_derive_key(PHX_DIGEST_SHA256, "a", 1, "b", 1, 0, k, 8), PHX_ERR_INVALID);
    ASSERT_EQ(phx_token_derive_key(PHX_DIGEST_SHA256, "a", 1, "b", 1, 1, k, 0), PHX_ERR_INVALID);
    ASSERT_EQ(phx_token_derive_key((phx_digest_t)99, "a", 1, "b", 1, 1, k, 8), PHX_ERR_INVALID);
    /* An empty secret and an empty salt are allowed. */
    ASSERT_EQ(phx_token_derive_key(PHX_DIGEST_SHA256, "", 0, "", 0, 1, k, 8), 0);
    phx_digest_t d;
    ASSERT_EQ(phx_digest_parse("sha384", &d), 0);
    ASSERT_EQ(d, PHX_DIGEST_SHA384);
    ASSERT_EQ(phx_digest_parse("sha512", &d), 0);
    ASSERT_EQ(d, PHX_DIGEST_SHA512);
    ASSERT_EQ(phx_digest_parse("sha256", &d), 0);
    ASSERT_EQ(d, PHX_DIGEST_SHA256);
    ASSERT_EQ(phx_digest_parse("md5", &d), PHX_ERR_INVALID);
    ASSERT_EQ(phx_digest_parse("sha2566", &d), PHX_ERR_INVALID);
    ASSERT_EQ(phx_digest_parse("", &d), PHX_ERR_INVALID);
}

typedef struct {
    const char *name;
    const char *kb;
    const char *salt;
    const char *token;
    const char *json;      /* the data as phxd renders it */
    const char *sign_json; /* data to sign, NULL when built by hand */
    int max_age;           /* 0: default; -1: infinity; else seconds */
} vector_t;

static const vector_t vectors[] = {
    {"V1", KB1, "user auth",
     "SFMyNTY.g2gDYQFuBgAAaOXPiwFiAAFRgA.CP3lWYbyZxyNHJ4SdIgS9nnQSWf4JR2nnsXV3EZVbb8", "1", "1", 0},
    {"V2", KB1, "user auth",
     "SFMyNTY.g2gDYWNuBgAAaOXPiwFiAAFRgA.uvJEDHa-IjTolIYW4Crh8PlZJCIGkSHuF4_nhnqPLRk", "99", "99",
     0},
    {"V3", KB2, "user socket",
     "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY", "42", "42",
     0},
    {"V4", KB2, "user socket",
     "SFMyNTY.g2gDbQAAAAVoZWxsb24GAABo5c-LAWIAAVGA.OPygkLmUj4tpdCmrZybkL2Be3YssfvQcc7r2KM_qPtA",
     "\"hello\"", "\"hello\"", 0},
    {"V5", KB2, "user socket",
     "SFMyNTY.g2gDdAAAAAFtAAAAB3VzZXJfaWRhKm4GAABo5c-LAWIAAVGA."
     "DIFO2mIS1lBt7Cj2ivfgSo1MDo4GMYlrR8cw1gKsPHA",
     "{\"user_id\":42}", "{\"user_id\":42}", 0},
    {"V6", KB2, "user socket",
     "SFMyNTY.g2gDZAADbmlsbgYAAGjlz4sBYgABUYA.9KSPF3Etw6zpHGNQvez6NmNy5Z2cq1aAZjIgL5oarMo", "null",
     NULL, 0},
    {"V7", KB2, "user socket",
     "SFMyNTY.g2gDdwNuaWxuBgAAaOXPiwFiAAFRgA.7oSLUaYegHvMydsWlcMGDf1Q0jSBjAtdEY_rrSpFknU", "null",
     NULL, 0},
    {"V8", KB2, "user socket",
     "SFMyNTY.g2gDbg0A0go_Tu7gc8P2D-mOAW4GAABo5c-LAWIAAVGA.yaU9b76lf4qitYvZyWVziZrsrbXeLgq4TNhf3_"
     "CroOY",
     "123456789012345678901234567890", "123456789012345678901234567890", 0},
    {"V9", KB2, "user socket",
     "SFMyNTY.g2gDYv____9uBgAAaOXPiwFiAAFRgA.R1GD9q6kFI6UcsseGHmBDushxH9eKKcJwTBkGhTQoKg", "-1",
     "-1", 0},
    {"V10", KB2, "user socket",
     "SFMyNTY.g2gDawADAQIDbgYAAGjlz4sBYgABUYA.bv45Qh2BLgQJ8FWJdXvmbhuTyP8ZKe3K_AYTC2xkRgk",
     "[1,2,3]", "[1,2,3]", 0},
    {"V11", KB2, "user socket",
     "SFMyNTY.g2gDaAJkAAJva20AAAABeG4GAABo5c-LAWIAAVGA.GFuqTErTRrPfnHqX67r1Hf9WfnA80_BoOG--zloVWcw",
     "[\"ok\",\"x\"]", NULL, 0},
    {"V12", KB2, "user socket",
     "SFMyNTY.g2gDRj_4AAAAAAAAbgYAAGjlz4sBYgABUYA.aWxTrjUHNAd870YIEZrBg1S1BvkE7N2inXjcTYcPJG4",
     "1.5", "1.5", 0},
    {"V13", KB2, "user socket",
     "SFMyNTY.g2gDdAAAAAJkAAVhZG1pbmQABHRydWVkAAJpZGEHbgYAAGjlz4sBYgABUYA."
     "r2cm8KczLyLiRbxKgtaLCdJ1aK5PXjyJOx19fx4XVsc",
     "{\"admin\":true,\"id\":7}", NULL, 0},
    {"V14", KB2, "user socket",
     "SFMyNTY.g2gDdAAAAAF3AmlkYQduBgAAaOXPiwFiAAFRgA.u-Glsw2FDN3iSXWwiCd4MAnHk27zgmf9TENQBbeU2mA",
     "{\"id\":7}", NULL, 0},
    {"V15", KB2, "user socket",
     "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAAOEA.OHeJZAXuc0pcE3oYXe2o3uyiHIgKNs47SIqLdR3BQzA", "42", "42",
     3600},
    {"V16", KB2, "user socket",
     "SFMyNTY.g2gDYSpuBgAAaOXPiwFkAAhpbmZpbml0eQ.H8pqNN5yEt3wj8dDYL7mwbAk5FXNh2XqY1hcoWbgAJE", "42",
     NULL, -1},
    {"V17", KB2, "user socket",
     "SFMzODQ.g2gDYSpuBgAAaOXPiwFiAAFRgA."
     "Spv1DmpITHGQ2seAmcAw6Nlzibt1rC0vZT9AipwLcZDiGKl84cl3zqWUKUkapRRN",
     "42", NULL, 0},
    {"V18", KB2, "user socket",
     "SFM1MTI.g2gDYSpuBgAAaOXPiwFiAAFRgA."
     "bfp5u56q-_xNtWND9sw3bmqGPLUuiOMBf2UfH3Ndpx-R8TjKcsSBgBWlREOlGVudm1E1YzFtSOsNyxRDRFyWHw",
     "42", NULL, 0},
    {"V19", KB2, "user socket",
     "SFMyNTY.g2gCYSpuBgAAaOXPiwE.I89y4nYGZ_m53o8u68rwwG7Pwqe8sZ1GfUvPo6fwBsw", "42", NULL, 0},
    {"V20", KB2, "user socket",
     "SFMyNTY.g3QAAAACZAAEZGF0YWEqZAAGc2lnbmVkbgYAAGjlz4sB.mRIUocOD5RWq7dKlTsNqN2JKX2_"
     "z2Vy6rTbg9jeg7Vs",
     "42", NULL, 0},
};
#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void vectors_verify_with_infinity(void)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        phx_token_t *t = token_new(vectors[i].kb, vectors[i].salt);
        /* Any time at all, even far in the future or the past. */
        expect_ok(t, vectors[i].token, INT64_C(4102444800000), AGE_INF, vectors[i].json);
        expect_ok(t, vectors[i].token, 0, AGE_INF, vectors[i].json);
        phx_token_free(t);
    }
}

static void vectors_verify_near_signing_time(void)
{
    for (size_t i = 0; i < NVECTORS; i++) {
        phx_token_t *t = token_new(vectors[i].kb, vectors[i].salt);
        expect_ok(t, vectors[i].token, SIGNED_MS, AGE_TOKEN, vectors[i].json);
        expect_ok(t, vectors[i].token, SIGNED_MS + 60000, AGE_TOKEN, vectors[i].json);
        /* Today (their signed_at is 2023): expired, except V16 (infinity). */
        expect_rv(t, vectors[i].token, INT64_C(1800000000000), AGE_TOKEN,
                  vectors[i].max_age == -1 ? 0 : PHX_ERR_EXPIRED);
        phx_token_free(t);
    }
}

static phx_term_t *atom(const char *a)
{
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_term_new_atom(&t, a, strlen(a)), 0);
    return t;
}

static phx_term_t *integer(int64_t v)
{
    phx_term_t *t = NULL;
    ASSERT_EQ(phx_term_new_int(&t, v), 0);
    return t;
}

/* Data of the vectors whose data has atoms, built by hand. */
static phx_term_t *hand_data(const char *name)
{
    phx_term_t *t = NULL;
    if (strcmp(name, "V6") == 0 || strcmp(name, "V7") == 0)
        return atom("nil");
    if (strcmp(name, "V11") == 0) {
        phx_term_t *items[2] = {atom("ok"), NULL};
        ASSERT_EQ(phx_term_new_binary(&items[1], "x", 1), 0);
        ASSERT_EQ(phx_term_new_tuple(&t, items, 2), 0);
        return t;
    }
    if (strcmp(name, "V13") == 0) {
        phx_term_pair_t pairs[2] = {{atom("id"), integer(7)}, {atom("admin"), atom("true")}};
        ASSERT_EQ(phx_term_new_map(&t, pairs, 2), 0);
        return t;
    }
    if (strcmp(name, "V14") == 0) {
        phx_term_pair_t pairs[1] = {{atom("id"), integer(7)}};
        ASSERT_EQ(phx_term_new_map(&t, pairs, 1), 0);
        return t;
    }
    return integer(42); /* V16 */
}

static void sign_reproduces_vectors(void)
{
    /* V1-V5, V8-V10, V12, V15 from JSON data with signed_at 1700000000;
     * V6, V11, V13, V16 with OTP 25 atoms and V7, V14 with OTP 26 atoms
     * from hand-built data. (V17-V20 are not produced by sign.) */
    size_t signed_count = 0;
    for (size_t i = 0; i < 16; i++) {
        const vector_t *v = &vectors[i];
        bool latin1 = strcmp(v->name, "V7") != 0 && strcmp(v->name, "V14") != 0;
        phx_token_config_t cfg = {
            .secret_key_base = (const uint8_t *)v->kb,
            .secret_key_base_len = strlen(v->kb),
            .salt = (const uint8_t *)v->salt,
            .salt_len = strlen(v->salt),
            .latin1_atoms = v->sign_json == NULL && latin1,
        };
        phx_token_t *t = NULL;
        ASSERT_EQ(phx_token_new(&t, &cfg), 0);
        phx_term_t *data = v->sign_json ? json_term(v->sign_json) : hand_data(v->name);
        phx_max_age_t age = v->max_age == 0    ? AGE_TOKEN
                            : v->max_age == -1 ? AGE_INF
                                               : age_s(v->max_age);
        phx_buf_t out = {0};
        ASSERT_EQ(phx_token_sign(t, data, SIGNED_MS, age, &out), 0);
        if (strcmp((char *)out.data, v->token) != 0)
            phx_test_fail(__FILE__, __LINE__, "%s: signed %s want %s", v->name, (char *)out.data,
                          v->token);
        phx_buf_dispose(&out);
        phx_term_free(data);
        phx_token_free(t);
        signed_count++;
    }
    ASSERT_EQ(signed_count, 16);
}

/* ---- negative and behavioural vectors ---- */

static const char *V3 =
    "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY";
static const char *V18 = "SFM1MTI.g2gDYSpuBgAAaOXPiwFiAAFRgA."
                         "bfp5u56q-_xNtWND9sw3bmqGPLUuiOMBf2UfH3Ndpx-R8TjKcsSBgBWlREOlGVudm1E1YzFt"
                         "SOsNyxRDRFyWHw";

static void negative_vectors(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    phx_term_t *d = NULL;
    ASSERT_EQ(phx_token_verify(t, NULL, 0, SIGNED_MS, AGE_INF, &d), PHX_ERR_MISSING);
    ASSERT_EQ(phx_token_verify(t, NULL, 5, SIGNED_MS, AGE_TOKEN, &d), PHX_ERR_MISSING);
    static const char *const invalid[] = {
        "",
        "garbage",
        ".",
        "..",
        "...",
        "SFMyNTY",
        "SFMyNTY.",
        "SFMyNTY..",
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA",
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.",
        /* 4 parts */
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY.x",
        /* two '=' on a signature that takes one */
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY==",
        /* standard base64 characters */
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY+",
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMH/",
        /* wrong signature lengths (31 and 33 bytes) */
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMA",
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHYA",
        /* header case and unknown algorithms */
        "sfmyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY",
        "SFMyNTYx.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY",
        "SFMyNT.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY",
        "bm9uZQ.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY",
        /* HS512 header with the HS256 signature, HS256 header with HS512's */
        "SFM1MTI.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY",
        "SFMzODQ.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY",
        ("SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA."
         "bfp5u56q-_xNtWND9sw3bmqGPLUuiOMBf2UfH3Ndpx-R8TjKcsSBgBWlREOlGVudm1E1YzFtSOsNyxRDRFyWHw"),
        /* payload of another token under V3's signature */
        "SFMyNTY.g2gDYWNuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        expect_rv(t, invalid[i], SIGNED_MS, AGE_INF, PHX_ERR_INVALID);
        expect_rv(t, invalid[i], SIGNED_MS, AGE_TOKEN, PHX_ERR_INVALID);
    }
    /* One correct '=' on the signature still verifies; V18 with its own
     * header verifies, V3's payload signed under HS512 only. */
    expect_ok(t, "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY=",
              SIGNED_MS, AGE_TOKEN, "42");
    expect_ok(t, V18, SIGNED_MS, AGE_TOKEN, "42");
    phx_token_free(t);
    /* Wrong salt, wrong secret. */
    t = token_new(KB2, "user auth");
    expect_rv(t, V3, SIGNED_MS, AGE_INF, PHX_ERR_INVALID);
    phx_token_free(t);
    t = token_new(KB1, "user socket");
    expect_rv(t, V3, SIGNED_MS, AGE_INF, PHX_ERR_INVALID);
    phx_token_free(t);
    t = token_new(KB2 "x", "user socket");
    expect_rv(t, V3, SIGNED_MS, AGE_INF, PHX_ERR_INVALID);
    phx_token_free(t);
}

/* Replacing any one character of a valid token by any other character
 * (or flipping one bit of it) never yields a valid token: header, payload
 * and signature are all covered. */
static void every_single_change_is_invalid(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    const char *toks[] = {V3, V18};
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                   "-_.=+/ ";
    for (int k = 0; k < 2; k++) {
        size_t len = strlen(toks[k]);
        char *buf = malloc(len + 1);
        for (size_t i = 0; i < len; i++) {
            for (size_t a = 0; a + 1 < sizeof(alphabet) + 8; a++) {
                memcpy(buf, toks[k], len + 1);
                if (a < sizeof(alphabet) - 1)
                    buf[i] = alphabet[a];
                else
                    buf[i] = (char)(buf[i] ^ (1 << (a - (sizeof(alphabet) - 1))));
                if (buf[i] == toks[k][i])
                    continue;
                int rv = phx_token_verify(t, buf, len, SIGNED_MS, AGE_INF, NULL);
                if (rv != PHX_ERR_INVALID)
                    phx_test_fail(__FILE__, __LINE__, "%s: %s", buf, phx_err_name(rv));
            }
        }
        free(buf);
    }
    phx_token_free(t);
}

static void oversize_token_rejected_before_hmac(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    size_t len = strlen(V3);
    const char *sig = strrchr(V3, '.'); /* ".<43 characters>" */
    phx_token_stats_t before, after;
    phx_token_get_stats(t, &before);
    for (size_t total = 4096; total <= 4097; total++) {
        /* "SFMyNTY." + a long payload + V3's signature: well formed up to
         * the MAC, which fails. */
        char *big = malloc(total + 1);
        memcpy(big, "SFMyNTY.", 8);
        memset(big + 8, 'A', total - 8 - 44);
        memcpy(big + total - 44, sig, 45);
        ASSERT_EQ(strlen(big), total);
        ASSERT_EQ(phx_token_verify(t, big, total, SIGNED_MS, AGE_INF, NULL), PHX_ERR_INVALID);
        free(big);
    }
    /* Only the 4096-byte one reached the HMAC. */
    phx_token_get_stats(t, &after);
    ASSERT_EQ(after.hmac_runs, before.hmac_runs + 1);
    phx_token_free(t);
    /* A configured cap: exactly the token's length passes, one less not. */
    phx_token_config_t cfg = {
        .secret_key_base = (const uint8_t *)KB2,
        .secret_key_base_len = strlen(KB2),
        .salt = (const uint8_t *)"user socket",
        .salt_len = 11,
        .max_token_bytes = len,
    };
    ASSERT_EQ(phx_token_new(&t, &cfg), 0);
    expect_ok(t, V3, SIGNED_MS, AGE_TOKEN, "42");
    phx_token_free(t);
    cfg.max_token_bytes = len - 1;
    ASSERT_EQ(phx_token_new(&t, &cfg), 0);
    expect_rv(t, V3, SIGNED_MS, AGE_TOKEN, PHX_ERR_INVALID);
    phx_token_get_stats(t, &after);
    ASSERT_EQ(after.hmac_runs, 0);
    phx_token_free(t);
}

static void max_age_rules(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    int64_t now = SIGNED_MS + 100000;
    /* Signed 100 s ago with max_age 50: expired by default, ok with an
     * override of 1000 (the option lengthens as well as shortens). */
    char *tok = sign_json(t, "42", SIGNED_MS, age_s(50));
    expect_rv(t, tok, now, AGE_TOKEN, PHX_ERR_EXPIRED);
    expect_ok(t, tok, now, age_s(1000), "42");
    expect_ok(t, tok, now, AGE_INF, "42");
    expect_rv(t, tok, now, age_s(99.999), PHX_ERR_EXPIRED);
    expect_ok(t, tok, now, age_s(100), "42");
    expect_rv(t, tok, now, age_s(0), PHX_ERR_EXPIRED);
    expect_rv(t, tok, now, age_s(-5), PHX_ERR_EXPIRED);
    expect_rv(t, tok, now, age_s(NAN), PHX_ERR_INVALID);
    /* Expiry at exact equality is still valid: signed + 50000 == now. */
    expect_ok(t, tok, SIGNED_MS + 50000, AGE_TOKEN, "42");
    expect_rv(t, tok, SIGNED_MS + 50001, AGE_TOKEN, PHX_ERR_EXPIRED);
    phx_free(tok);
    /* Fractional max_age: 0.1 s is 100 ms; 1.5 s is 1500 ms. */
    tok = sign_json(t, "42", SIGNED_MS, AGE_TOKEN);
    expect_ok(t, tok, SIGNED_MS + 100, age_s(0.1), "42");
    expect_rv(t, tok, SIGNED_MS + 101, age_s(0.1), PHX_ERR_EXPIRED);
    expect_ok(t, tok, SIGNED_MS + 1500, age_s(1.5), "42");
    expect_rv(t, tok, SIGNED_MS + 1501, age_s(1.5), PHX_ERR_EXPIRED);
    /* 0.0001 s truncates to 0 ms: valid only at the signing instant. */
    expect_ok(t, tok, SIGNED_MS, age_s(0.0001), "42");
    expect_rv(t, tok, SIGNED_MS + 1, age_s(0.0001), PHX_ERR_EXPIRED);
    /* The default 86400 s, at equality and one ms after. */
    expect_ok(t, tok, SIGNED_MS + 86400000, AGE_TOKEN, "42");
    expect_rv(t, tok, SIGNED_MS + 86400001, AGE_TOKEN, PHX_ERR_EXPIRED);
    /* A huge override does not overflow. */
    expect_ok(t, tok, SIGNED_MS + 86400001, age_s(1e300), "42");
    phx_free(tok);
    /* Signed 100 s in the future: invalid (Plug.Crypto >= 2.2), ok with
     * infinity; max_age 0 is expired first. */
    tok = sign_json(t, "42", SIGNED_MS + 100000, AGE_TOKEN);
    expect_rv(t, tok, SIGNED_MS, AGE_TOKEN, PHX_ERR_INVALID);
    expect_rv(t, tok, SIGNED_MS, age_s(1000), PHX_ERR_INVALID);
    expect_ok(t, tok, SIGNED_MS, AGE_INF, "42");
    expect_rv(t, tok, SIGNED_MS, age_s(0), PHX_ERR_EXPIRED);
    /* signed == now is not in the future. */
    expect_ok(t, tok, SIGNED_MS + 100000, AGE_TOKEN, "42");
    phx_token_free(t);
    /* Plug.Crypto <= 2.1.1 mode accepts it. */
    phx_token_config_t cfg = {
        .secret_key_base = (const uint8_t *)KB2,
        .secret_key_base_len = strlen(KB2),
        .salt = (const uint8_t *)"user socket",
        .salt_len = 11,
        .allow_future_signed = true,
    };
    ASSERT_EQ(phx_token_new(&t, &cfg), 0);
    expect_ok(t, tok, SIGNED_MS, AGE_TOKEN, "42");
    expect_rv(t, tok, SIGNED_MS, age_s(0), PHX_ERR_EXPIRED);
    phx_free(tok);
    phx_token_free(t);
}

static void stored_max_age_forms(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    /* Stored 0 and negative: expired at once; stored infinity: never, even
     * when signed in the future (no future check). */
    char *tok = sign_json(t, "1", SIGNED_MS, age_s(0));
    expect_rv(t, tok, SIGNED_MS, AGE_TOKEN, PHX_ERR_EXPIRED);
    expect_ok(t, tok, SIGNED_MS, age_s(1), "1");
    phx_free(tok);
    tok = sign_json(t, "1", SIGNED_MS, age_s(-1));
    expect_rv(t, tok, SIGNED_MS, AGE_TOKEN, PHX_ERR_EXPIRED);
    phx_free(tok);
    tok = sign_json(t, "1", SIGNED_MS + 1000000, AGE_INF);
    expect_ok(t, tok, SIGNED_MS, AGE_TOKEN, "1");
    expect_rv(t, tok, SIGNED_MS, age_s(10), PHX_ERR_INVALID); /* override brings it back */
    phx_free(tok);
    /* A float stored max_age (written as NEW_FLOAT_EXT). */
    phx_max_age_t f = {PHX_MAX_AGE_SECONDS, 2.5, false};
    tok = sign_json(t, "1", SIGNED_MS, f);
    ASSERT(strstr(tok, "SFMyNTY.g2gDYQFuBgAAaOXPiwFG") == tok);
    expect_ok(t, tok, SIGNED_MS + 2500, AGE_TOKEN, "1");
    expect_rv(t, tok, SIGNED_MS + 2501, AGE_TOKEN, PHX_ERR_EXPIRED);
    phx_free(tok);
    f.seconds = 3600;
    f.is_float = true;
    tok = sign_json(t, "1", SIGNED_MS, f);
    ASSERT(strstr(tok, "SFMyNTY.g2gDYQFuBgAAaOXPiwFG") == tok);
    expect_ok(t, tok, SIGNED_MS + 3600000, AGE_TOKEN, "1");
    phx_free(tok);
    f.seconds = INFINITY;
    phx_term_t *d = json_term("1");
    phx_buf_t out = {0};
    ASSERT_EQ(phx_token_sign(t, d, SIGNED_MS, f, &out), PHX_ERR_INVALID);
    ASSERT_EQ(out.len, 0);
    phx_buf_dispose(&out);
    phx_term_free(d);
    /* Legacy shapes default to 86400 s (V19 and V20). */
    static const char *const legacy[] = {
        "SFMyNTY.g2gCYSpuBgAAaOXPiwE.I89y4nYGZ_m53o8u68rwwG7Pwqe8sZ1GfUvPo6fwBsw",
        "SFMyNTY.g3QAAAACZAAEZGF0YWEqZAAGc2lnbmVkbgYAAGjlz4sB.mRIUocOD5RWq7dKlTsNqN2JKX2_"
        "z2Vy6rTbg9j"
        "eg7Vs",
    };
    for (int i = 0; i < 2; i++) {
        expect_ok(t, legacy[i], SIGNED_MS + 86400000, AGE_TOKEN, "42");
        expect_rv(t, legacy[i], SIGNED_MS + 86400001, AGE_TOKEN, PHX_ERR_EXPIRED);
        expect_rv(t, legacy[i], SIGNED_MS - 1, AGE_TOKEN, PHX_ERR_INVALID);
    }
    /* V15 (3600 s): an override of 86400 lengthens it, 60 shortens V3. */
    expect_rv(t, "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAAOEA.OHeJZAXuc0pcE3oYXe2o3uyiHIgKNs47SIqLdR3BQzA",
              SIGNED_MS + 7200000, AGE_TOKEN, PHX_ERR_EXPIRED);
    expect_ok(t, "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAAOEA.OHeJZAXuc0pcE3oYXe2o3uyiHIgKNs47SIqLdR3BQzA",
              SIGNED_MS + 7200000, age_s(86400), "42");
    expect_rv(t, V3, SIGNED_MS + 120000, age_s(60), PHX_ERR_EXPIRED);
    phx_token_free(t);
}

static void payload_shapes(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    static const struct {
        const char *hex;
        int rv_token; /* with the token's own max_age */
        int rv_inf;   /* with max_age infinity */
    } cases[] = {
        /* {42, signed, 86400} */
        {"836803612a6e06000068e5cf8b016200015180", 0, 0},
        /* 4-tuple, 1-tuple, a list, an integer */
        {"836804612a6e06000068e5cf8b0162000151806100", PHX_ERR_INVALID, PHX_ERR_INVALID},
        {"836801612a", PHX_ERR_INVALID, PHX_ERR_INVALID},
        {"836c00000002612a6e06000068e5cf8b016a", PHX_ERR_INVALID, PHX_ERR_INVALID},
        {"83612a", PHX_ERR_INVALID, PHX_ERR_INVALID},
        /* map without signed, map with binary keys */
        {"837400000001640004646174616101", PHX_ERR_INVALID, PHX_ERR_INVALID},
        {"8374000000026d0000000464617461612a6d000000067369676e65646e06000068e5cf8b01",
         PHX_ERR_INVALID, PHX_ERR_INVALID},
        /* map with extra keys still matches %{data:, signed:} */
        {"837400000003640004646174616101640006736967 6e65646e06000068e5cf8b01 7701786101", 0, 0},
        /* signed is a binary: invalid unless infinity skips the checks */
        {"836803612a6d00000001786200015180", PHX_ERR_INVALID, 0},
        /* signed is a bignum beyond int64 */
        {"836803612a6e090000000000000000000162000151 80", PHX_ERR_INVALID, 0},
        /* stored max_age is an atom other than infinity: invalid unless
         * the verifier gives its own */
        {"836803612a6e06000068e5cf8b017703666f6f", PHX_ERR_INVALID, 0},
        /* stored max_age is a huge bignum: valid (never expires) */
        {"836803612a6e06000068e5cf8b016e0900000000000000000001", 0, 0},
        /* stored max_age is a negative bignum: expired */
        {"836803612a6e06000068e5cf8b016e0901000000000000000001", PHX_ERR_EXPIRED, 0},
        /* trailing byte after the term; a broken term; a refused tag */
        {"836803612a6e06000068e5cf8b01620001518000", PHX_ERR_INVALID, PHX_ERR_INVALID},
        {"836803612a6e06000068e5cf8b016200", PHX_ERR_INVALID, PHX_ERR_INVALID},
        {"836803580000000000000000000000000000006e06000068e5cf8b016200015180", PHX_ERR_INVALID,
         PHX_ERR_INVALID},
        /* empty payload */
        {"", PHX_ERR_INVALID, PHX_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char hex[256];
        size_t n = 0;
        for (const char *p = cases[i].hex; *p; p++)
            if (*p != ' ')
                hex[n++] = *p;
        hex[n] = '\0';
        char *tok = sign_payload_hex(t, hex);
        expect_rv(t, tok, SIGNED_MS, AGE_TOKEN, cases[i].rv_token);
        expect_rv(t, tok, SIGNED_MS, AGE_INF, cases[i].rv_inf);
        phx_free(tok);
    }
    phx_token_free(t);
}

/* The ETF decoder only ever sees authenticated payloads. */
static void mac_checked_before_decode(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    phx_token_stats_t s;
    /* A payload that would make the decoder fail (a fun) and one that is
     * valid; both with a wrong MAC: no decode happens. */
    static const char *const payloads[] = {
        "837000000010",
        "836803612a6e06000068e5cf8b016200015180",
        "ff",
    };
    for (int i = 0; i < 3; i++) {
        char *tok = sign_payload_hex(t, payloads[i]);
        size_t len = strlen(tok);
        /* Break the MAC: change the first signature character. */
        char *dot = strrchr(tok, '.');
        dot[1] = dot[1] == 'A' ? 'B' : 'A';
        phx_token_get_stats(t, &s);
        uint64_t decodes = s.etf_decodes, macs = s.hmac_runs;
        ASSERT_EQ(phx_token_verify(t, tok, len, SIGNED_MS, AGE_INF, NULL), PHX_ERR_INVALID);
        phx_token_get_stats(t, &s);
        ASSERT_EQ(s.etf_decodes, decodes);
        ASSERT_EQ(s.hmac_runs, macs + 1);
        phx_free(tok);
    }
    /* With a good MAC the same broken payload reaches the decoder once. */
    char *tok = sign_payload_hex(t, "837000000010");
    phx_token_get_stats(t, &s);
    uint64_t decodes = s.etf_decodes;
    ASSERT_EQ(phx_token_verify(t, tok, strlen(tok), SIGNED_MS, AGE_INF, NULL), PHX_ERR_INVALID);
    phx_token_get_stats(t, &s);
    ASSERT_EQ(s.etf_decodes, decodes + 1);
    phx_free(tok);
    /* A token whose payload is not even base64 but whose MAC is wrong
     * fails at the MAC, without the payload being looked at. */
    tok = strdup("SFMyNTY.!!!!.K6UIXyFlmjQPpD3Oci8lEY8U2aDAOKDqG0kQKcbLMHY");
    phx_token_get_stats(t, &s);
    decodes = s.etf_decodes;
    ASSERT_EQ(phx_token_verify(t, tok, strlen(tok), SIGNED_MS, AGE_INF, NULL), PHX_ERR_INVALID);
    phx_token_get_stats(t, &s);
    ASSERT_EQ(s.etf_decodes, decodes);
    free(tok);
    phx_token_free(t);
}

static void key_derived_once(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    for (int i = 0; i < 200; i++)
        ASSERT_EQ(phx_token_verify(t, V3, strlen(V3), SIGNED_MS, AGE_TOKEN, NULL), 0);
    char *tok = sign_json(t, "7", SIGNED_MS, AGE_TOKEN);
    phx_token_stats_t s;
    phx_token_get_stats(t, &s);
    ASSERT_EQ(s.pbkdf2_runs, 1);
    ASSERT_EQ(s.hmac_runs, 201);
    ASSERT_EQ(s.etf_decodes, 200);
    phx_free(tok);
    phx_token_free(t);
    phx_token_free(NULL);
}

static void salts_are_separate(void)
{
    /* The user socket object and a LongPoll session object never accept
     * each other's tokens. */
    phx_token_t *user = token_new(KB2, "user socket");
    phx_token_t *lp = token_new(KB2, "Elixir.MyApp.PubSub");
    char *a = sign_json(user, "\"u\"", SIGNED_MS, AGE_TOKEN);
    char *b = sign_json(lp, "\"s\"", SIGNED_MS, AGE_TOKEN);
    expect_ok(user, a, SIGNED_MS, AGE_TOKEN, "\"u\"");
    expect_ok(lp, b, SIGNED_MS, AGE_TOKEN, "\"s\"");
    expect_rv(user, b, SIGNED_MS, AGE_TOKEN, PHX_ERR_INVALID);
    expect_rv(lp, a, SIGNED_MS, AGE_TOKEN, PHX_ERR_INVALID);
    phx_free(a);
    phx_free(b);
    phx_token_free(user);
    phx_token_free(lp);
}

static void key_options(void)
{
    /* Non-default key options must match on both sides; the HS384/HS512
     * headers use the same derived key. */
    phx_token_config_t cfg = {
        .secret_key_base = (const uint8_t *)KB2,
        .secret_key_base_len = strlen(KB2),
        .salt = (const uint8_t *)"s",
        .salt_len = 1,
        .key_iterations = 2,
        .key_length = 64,
        .key_digest = PHX_DIGEST_SHA384,
    };
    phx_token_t *a = NULL, *b = NULL;
    ASSERT_EQ(phx_token_new(&a, &cfg), 0);
    cfg.key_digest = PHX_DIGEST_SHA512;
    ASSERT_EQ(phx_token_new(&b, &cfg), 0);
    char *tok = sign_json(a, "{\"k\":[1,\"v\"]}", SIGNED_MS, AGE_INF);
    expect_ok(a, tok, 0, AGE_TOKEN, "{\"k\":[1,\"v\"]}");
    expect_rv(b, tok, 0, AGE_TOKEN, PHX_ERR_INVALID);
    phx_free(tok);
    phx_token_free(a);
    phx_token_free(b);
    /* Out-of-range options. */
    cfg.key_length = PHX_TOKEN_MAX_KEY_LENGTH + 1;
    ASSERT_EQ(phx_token_new(&a, &cfg), PHX_ERR_INVALID);
    cfg.key_length = 0;
    cfg.key_digest = (phx_digest_t)42;
    ASSERT_EQ(phx_token_new(&a, &cfg), PHX_ERR_INVALID);
    cfg.key_digest = PHX_DIGEST_SHA256;
    cfg.secret_key_base = NULL;
    ASSERT_EQ(phx_token_new(&a, &cfg), PHX_ERR_INVALID);
}

static void limits_apply_to_payloads(void)
{
    /* Data holding 2^600 (76 magnitude bytes): over the default bignum
     * limit, accepted with a larger one. */
    phx_token_t *t = token_new(KB2, "user socket");
    uint8_t mag[76] = {0};
    mag[75] = 1;
    phx_term_t *d = NULL;
    ASSERT_EQ(phx_term_new_bigint(&d, false, mag, sizeof(mag)), 0);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_token_sign(t, d, SIGNED_MS, AGE_TOKEN, &out), 0);
    expect_rv(t, (char *)out.data, SIGNED_MS, AGE_TOKEN, PHX_ERR_INVALID);
    phx_token_free(t);
    phx_token_config_t cfg = {
        .secret_key_base = (const uint8_t *)KB2,
        .secret_key_base_len = strlen(KB2),
        .salt = (const uint8_t *)"user socket",
        .salt_len = 11,
        .limits = {.max_bignum_bytes = 76},
    };
    ASSERT_EQ(phx_token_new(&t, &cfg), 0);
    phx_term_t *back = NULL;
    ASSERT_EQ(phx_token_verify(t, (char *)out.data, out.len, SIGNED_MS, AGE_TOKEN, &back), 0);
    ASSERT_EQ(phx_term_compare(back, d), 0);
    phx_term_free(back);
    phx_term_free(d);
    phx_buf_dispose(&out);
    phx_token_free(t);
}

static void allocation_failure_is_clean(void)
{
    phx_token_t *t = token_new(KB2, "user socket");
    const char *tok = "SFMyNTY.g2gDdAAAAAFtAAAAB3VzZXJfaWRhKm4GAABo5c-LAWIAAVGA."
                      "DIFO2mIS1lBt7Cj2ivfgSo1MDo4GMYlrR8cw1gKsPHA";
    int rv = PHX_ERR_NOMEM;
    unsigned long n;
    for (n = 1; n < 100 && rv != 0; n++) {
        phx_term_t *d = NULL;
        phx_mem_reset_count();
        phx_mem_fail_at(n);
        rv = phx_token_verify(t, tok, strlen(tok), SIGNED_MS, AGE_TOKEN, &d);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
        phx_term_free(d);
    }
    ASSERT_EQ(rv, 0);
    ASSERT(n > 3);
    phx_term_t *data = json_term("{\"user_id\":[1,\"x\",18446744073709551616]}");
    rv = PHX_ERR_NOMEM;
    for (n = 1; n < 100 && rv != 0; n++) {
        phx_buf_t out = {0};
        phx_mem_reset_count();
        phx_mem_fail_at(n);
        rv = phx_token_sign(t, data, SIGNED_MS, AGE_TOKEN, &out);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
        if (rv != 0)
            ASSERT_EQ(out.len, 0);
        phx_buf_dispose(&out);
    }
    ASSERT_EQ(rv, 0);
    phx_term_free(data);
    /* Creating the object (our allocations; OpenSSL's are not hooked in
     * unit tests). */
    rv = PHX_ERR_NOMEM;
    for (n = 1; n < 10 && rv != 0; n++) {
        phx_token_t *u = NULL;
        phx_token_config_t cfg = {.secret_key_base = (const uint8_t *)"k",
                                  .secret_key_base_len = 1};
        phx_mem_reset_count();
        phx_mem_fail_at(n);
        rv = phx_token_new(&u, &cfg);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
        phx_token_free(u);
    }
    ASSERT_EQ(rv, 0);
    phx_token_free(t);
#ifdef HAVE_LSAN
    ASSERT_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

/* ---- the CLI ---- */

typedef struct {
    int status;
    char out[8192];
    char err[8192];
} cli_result_t;

static void read_all(int fd, char *buf, size_t cap)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* Runs phx_token_cli with stdout and stderr captured (the test runs in its
 * own child process, so redirecting them is safe). */
static void run_cli(cli_result_t *r, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc] != NULL; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    char out_path[] = "/tmp/phx-cli-out-XXXXXX", err_path[] = "/tmp/phx-cli-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    ASSERT(out_fd >= 0 && err_fd >= 0);
    unlink(out_path);
    unlink(err_path);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    r->status = phx_token_cli(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    read_all(out_fd, r->out, sizeof(r->out));
    read_all(err_fd, r->err, sizeof(r->err));
}

#define CLI(r, ...)                                                                                \
    do {                                                                                           \
        const char *const a_[] = {"token", __VA_ARGS__, NULL};                                     \
        run_cli((r), a_);                                                                          \
    } while (0)

static void cli_sign_and_verify(void)
{
    cli_result_t r;
    CLI(&r, "sign", "--secret-key-base", KB1, "--salt", "user auth", "--signed-at", "1700000000",
        "99");
    ASSERT_EQ(r.status, 0);
    ASSERT_STR_EQ(
        r.out, "SFMyNTY.g2gDYWNuBgAAaOXPiwFiAAFRgA.uvJEDHa-IjTolIYW4Crh8PlZJCIGkSHuF4_nhnqPLRk\n");
    ASSERT_STR_EQ(r.err, "");
    /* --salt defaults to "user socket"; --opt=value works; V9's -1 and
     * V15's max_age. */
    CLI(&r, "sign", "--secret-key-base=" KB2, "--signed-at=1700000000", "-1");
    ASSERT_EQ(r.status, 0);
    ASSERT_STR_EQ(
        r.out,
        "SFMyNTY.g2gDYv____9uBgAAaOXPiwFiAAFRgA.R1GD9q6kFI6UcsseGHmBDushxH9eKKcJwTBkGhTQoKg\n");
    CLI(&r, "sign", "--secret-key-base", KB2, "--max-age", "3600", "--signed-at", "1700000000",
        "42");
    ASSERT_STR_EQ(
        r.out, "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAAOEA.OHeJZAXuc0pcE3oYXe2o3uyiHIgKNs47SIqLdR3BQzA\n");
    /* The hidden OTP 25 atom switch reproduces V16. */
    CLI(&r, "sign", "--secret-key-base", KB2, "--max-age", "infinity", "--signed-at", "1700000000",
        "--latin1-atoms", "42");
    ASSERT_STR_EQ(
        r.out,
        "SFMyNTY.g2gDYSpuBgAAaOXPiwFkAAhpbmZpbml0eQ.H8pqNN5yEt3wj8dDYL7mwbAk5FXNh2XqY1hcoWbgAJE\n");
    /* Fractional signed_at: trunc(1700000000.5 * 1000). */
    CLI(&r, "sign", "--secret-key-base", KB2, "--signed-at", "1700000000.5", "--max-age",
        "infinity", "1");
    ASSERT_EQ(r.status, 0);
    r.out[strlen(r.out) - 1] = '\0';
    cli_result_t v;
    CLI(&v, "verify", "--secret-key-base", KB2, "--now-ms", "1700000000500", "--max-age", "10",
        r.out);
    ASSERT_EQ(v.status, 0);
    CLI(&v, "verify", "--secret-key-base", KB2, "--now-ms", "1700000000499", "--max-age", "10",
        r.out);
    ASSERT_EQ(v.status, 1);
    ASSERT_STR_EQ(v.err, "invalid\n");
    /* Verify prints the data as one JSON line. */
    CLI(&v, "verify", "--secret-key-base", KB2, "--max-age", "infinity",
        "SFMyNTY.g2gDdAAAAAFtAAAAB3VzZXJfaWRhKm4GAABo5c-LAWIAAVGA."
        "DIFO2mIS1lBt7Cj2ivfgSo1MDo4GMYlrR8cw1gKsPHA");
    ASSERT_EQ(v.status, 0);
    ASSERT_STR_EQ(v.out, "{\"user_id\":42}\n");
    CLI(&v, "verify", "--secret-key-base", KB2, "--now-ms", "1700000060000", V3);
    ASSERT_EQ(v.status, 0);
    ASSERT_STR_EQ(v.out, "42\n");
    /* A round trip with key options and structured data. */
    CLI(&r, "sign", "--secret-key-base", KB2, "--salt", "s", "--key-iterations", "3",
        "--key-length", "48", "--key-digest", "sha512", "{\"a\":[1,2.5,null,\"\\u00e9\"]}");
    ASSERT_EQ(r.status, 0);
    r.out[strlen(r.out) - 1] = '\0';
    CLI(&v, "verify", "--secret-key-base", KB2, "--salt", "s", "--key-iterations", "3",
        "--key-length", "48", "--key-digest", "sha512", r.out);
    ASSERT_EQ(v.status, 0);
    ASSERT_STR_EQ(v.out, "{\"a\":[1,2.5,null,\"\xc3\xa9\"]}\n");
    CLI(&v, "verify", "--secret-key-base", KB2, "--salt", "s", "--key-iterations", "3",
        "--key-length", "48", r.out);
    ASSERT_EQ(v.status, 1);
    ASSERT_STR_EQ(v.err, "invalid\n");
}

static void cli_failures(void)
{
    cli_result_t r;
    CLI(&r, "verify", "--secret-key-base", KB2);
    ASSERT_EQ(r.status, 1);
    ASSERT_STR_EQ(r.err, "missing\n");
    ASSERT_STR_EQ(r.out, "");
    CLI(&r, "verify", "--secret-key-base", KB2, "");
    ASSERT_EQ(r.status, 1);
    ASSERT_STR_EQ(r.err, "invalid\n");
    CLI(&r, "verify", "--secret-key-base", KB2, "garbage");
    ASSERT_EQ(r.status, 1);
    ASSERT_STR_EQ(r.err, "invalid\n");
    CLI(&r, "verify", "--secret-key-base", KB2, V3);
    ASSERT_EQ(r.status, 1);
    ASSERT_STR_EQ(r.err, "expired\n");
    CLI(&r, "verify", "--secret-key-base", KB2, "--now-ms", "1700000000000", "--max-age", "0", V3);
    ASSERT_EQ(r.status, 1);
    ASSERT_STR_EQ(r.err, "expired\n");
    CLI(&r, "verify", "--secret-key-base", KB2, "--now-ms", "1699999999999", V3);
    ASSERT_STR_EQ(r.err, "invalid\n");
    CLI(&r, "verify", "--secret-key-base", KB2, "--salt", "user auth", "--max-age", "infinity", V3);
    ASSERT_STR_EQ(r.err, "invalid\n");
}

static void cli_usage_errors(void)
{
    const char *const *const cases[] = {
        (const char *const[]){"token", NULL},
        (const char *const[]){"token", "frobnicate", NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "{", NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "1", "2", NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", NULL},
        (const char *const[]){"token", "sign", "--bogus", "1", "1", NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "--now-ms", "1", "1",
                              NULL},
        (const char *const[]){"token", "verify", "--secret-key-base", "k", "--signed-at", "1", "t",
                              NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "--max-age", "soon", "1",
                              NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "--max-age", "nan", "1",
                              NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "--signed-at", "x", "1",
                              NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "--key-digest", "md5", "1",
                              NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "--key-iterations", "0",
                              "1", NULL},
        (const char *const[]){"token", "sign", "--secret-key-base", "k", "--key-length", "2000",
                              "1", NULL},
        (const char *const[]){"token", "verify", "--secret-key-base", "k", "--now-ms", "soon", "t",
                              NULL},
        (const char *const[]){"token", "verify", "t", NULL}, /* no secret anywhere */
        (const char *const[]){"token", "verify", "--secret-key-base", "", "t", NULL},
    };
    unsetenv("PHXD_SECRET_KEY_BASE");
    unsetenv("SECRET_KEY_BASE");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_result_t r;
        run_cli(&r, cases[i]);
        if (r.status != 2)
            phx_test_fail(__FILE__, __LINE__, "case %zu: status %d (%s)", i, r.status, r.err);
        ASSERT_STR_EQ(r.out, "");
        /* One line on stderr. */
        char *nl = strchr(r.err, '\n');
        ASSERT(nl != NULL && nl[1] == '\0');
        ASSERT(strncmp(r.err, "phxd token: ", 12) == 0);
    }
    cli_result_t r;
    CLI(&r, "--help");
    ASSERT_EQ(r.status, 0);
    ASSERT(strstr(r.out, "usage: phxd token sign") != NULL);
    CLI(&r, "verify", "--help");
    ASSERT_EQ(r.status, 0);
}

static void cli_secret_from_environment(void)
{
    cli_result_t r;
    setenv("SECRET_KEY_BASE", KB1, 1);
    CLI(&r, "sign", "--salt", "user auth", "--signed-at", "1700000000", "99");
    ASSERT_STR_EQ(
        r.out, "SFMyNTY.g2gDYWNuBgAAaOXPiwFiAAFRgA.uvJEDHa-IjTolIYW4Crh8PlZJCIGkSHuF4_nhnqPLRk\n");
    /* PHXD_SECRET_KEY_BASE wins over SECRET_KEY_BASE; the flag over both. */
    setenv("PHXD_SECRET_KEY_BASE", KB2, 1);
    CLI(&r, "verify", "--max-age", "infinity", V3);
    ASSERT_EQ(r.status, 0);
    ASSERT_STR_EQ(r.out, "42\n");
    CLI(&r, "verify", "--secret-key-base", KB1, "--max-age", "infinity", V3);
    ASSERT_EQ(r.status, 1);
    unsetenv("PHXD_SECRET_KEY_BASE");
    unsetenv("SECRET_KEY_BASE");
}

const phx_test_t phx_tests_token[] = {
    {"pbkdf2_table", pbkdf2_table},
    {"vectors_verify_with_infinity", vectors_verify_with_infinity},
    {"vectors_verify_near_signing_time", vectors_verify_near_signing_time},
    {"sign_reproduces_vectors", sign_reproduces_vectors},
    {"negative_vectors", negative_vectors},
    {"every_single_change_is_invalid", every_single_change_is_invalid},
    {"oversize_token_rejected_before_hmac", oversize_token_rejected_before_hmac},
    {"max_age_rules", max_age_rules},
    {"stored_max_age_forms", stored_max_age_forms},
    {"payload_shapes", payload_shapes},
    {"mac_checked_before_decode", mac_checked_before_decode},
    {"key_derived_once", key_derived_once},
    {"salts_are_separate", salts_are_separate},
    {"key_options", key_options},
    {"limits_apply_to_payloads", limits_apply_to_payloads},
    {"allocation_failure_is_clean", allocation_failure_is_clean},
    {"cli_sign_and_verify", cli_sign_and_verify},
    {"cli_failures", cli_failures},
    {"cli_usage_errors", cli_usage_errors},
    {"cli_secret_from_environment", cli_secret_from_environment},
    {NULL, NULL},
};
