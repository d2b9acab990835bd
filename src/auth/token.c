/* token.c: Phoenix.Token (Plug.Crypto MessageVerifier) sign and verify.
 * A leaf called by socket.c on connect and by the LongPoll session code.
 * Owns the PBKDF2-derived key (derived once per object) and three keyed
 * HMAC contexts (SHA-256/384/512) that are re-initialised per use, so a
 * verification costs one HMAC and no key derivation. The MAC is compared
 * in constant time before any byte of the payload is decoded. No memcmp or
 * strcmp in this file: secrets and MACs are compared with CRYPTO_memcmp. */
#include "token.h"

#include <math.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "base64.h"
#include "log.h"
#include "phx.h"

#define MAC_MAX 64

/* The protected header selects the HMAC digest (docs/protocol.md §7.1). */
static const struct {
    char text[8];
    const char *md_name;
    size_t mac_len;
} headers[3] = {
    {"SFMyNTY", "SHA256", 32},
    {"SFMzODQ", "SHA384", 48},
    {"SFM1MTI", "SHA512", 64},
};
#define HEADER_LEN 7

struct phx_token {
    uint8_t *key;
    size_t key_len;
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx[3]; /* keyed, one per header */
    size_t max_token_bytes;
    bool allow_future_signed;
    bool latin1_atoms;
    phx_etf_limits_t limits;
    phx_token_stats_t stats;
};

/* ---- key derivation ---- */

static bool text_eq(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b)
        a++, b++;
    return *a == *b;
}

int phx_digest_parse(const char *name, phx_digest_t *out)
{
    static const struct {
        const char *name;
        phx_digest_t digest;
    } names[] = {
        {"sha256", PHX_DIGEST_SHA256}, {"sha384", PHX_DIGEST_SHA384}, {"sha512", PHX_DIGEST_SHA512},
        {"sha", PHX_DIGEST_SHA1},      {"sha1", PHX_DIGEST_SHA1},     {"sha224", PHX_DIGEST_SHA224},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (text_eq(name, names[i].name)) {
            *out = names[i].digest;
            return 0;
        }
    }
    return PHX_ERR_INVALID;
}

static const EVP_MD *digest_md(phx_digest_t d)
{
    switch (d) {
    case PHX_DIGEST_SHA256:
        return EVP_sha256();
    case PHX_DIGEST_SHA384:
        return EVP_sha384();
    case PHX_DIGEST_SHA512:
        return EVP_sha512();
    case PHX_DIGEST_SHA1:
        return EVP_sha1();
    case PHX_DIGEST_SHA224:
        return EVP_sha224();
    }
    return NULL;
}

int phx_token_derive_key(phx_digest_t digest, const void *secret, size_t secret_len,
                         const void *salt, size_t salt_len, uint32_t iterations, uint8_t *out,
                         size_t out_len)
{
    const EVP_MD *md = digest_md(digest);
    if (md == NULL || iterations == 0 || iterations > PHX_TOKEN_MAX_ITERATIONS || out_len == 0 ||
        out_len > PHX_TOKEN_MAX_KEY_LENGTH || secret_len > INT32_MAX || salt_len > INT32_MAX)
        return PHX_ERR_INVALID;
    /* OpenSSL reads nothing through a NULL pointer of length 0, but give it
     * a valid address anyway. */
    static const uint8_t empty[1];
    if (!PKCS5_PBKDF2_HMAC(secret_len ? secret : (const void *)empty, (int)secret_len,
                           salt_len ? salt : empty, (int)salt_len, (int)iterations, md,
                           (int)out_len, out))
        return PHX_ERR_NOMEM;
    return 0;
}

/* ---- lifecycle ---- */

void phx_token_free(phx_token_t *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < 3; i++)
        EVP_MAC_CTX_free(t->ctx[i]);
    EVP_MAC_free(t->mac);
    if (t->key != NULL) {
        OPENSSL_cleanse(t->key, t->key_len);
        phx_free(t->key);
    }
    phx_free(t);
}

int phx_token_config_from(phx_token_config_t *tc, const phx_config_t *cfg)
{
    memset(tc, 0, sizeof(*tc));
    tc->secret_key_base = (const uint8_t *)cfg->secret_key_base;
    tc->secret_key_base_len = strlen(cfg->secret_key_base);
    tc->salt = (const uint8_t *)cfg->salt;
    tc->salt_len = cfg->salt ? strlen(cfg->salt) : 0;
    tc->key_iterations = (uint32_t)cfg->key_iterations;
    tc->key_length = (uint32_t)cfg->key_length;
    tc->max_token_bytes = cfg->max_token_bytes;
    return phx_digest_parse(cfg->key_digest, &tc->key_digest);
}

int phx_token_new(phx_token_t **out, const phx_token_config_t *cfg)
{
    uint32_t iterations = cfg->key_iterations ? cfg->key_iterations : PHX_TOKEN_DEFAULT_ITERATIONS;
    size_t key_len = cfg->key_length ? cfg->key_length : PHX_TOKEN_DEFAULT_KEY_LENGTH;
    if ((cfg->secret_key_base == NULL && cfg->secret_key_base_len > 0) ||
        (cfg->salt == NULL && cfg->salt_len > 0) || digest_md(cfg->key_digest) == NULL)
        return PHX_ERR_INVALID;
    int rv = PHX_ERR_NOMEM;
    phx_token_t *t = phx_calloc(1, sizeof(*t));
    if (t == NULL)
        goto fail;
    t->max_token_bytes = cfg->max_token_bytes ? cfg->max_token_bytes : PHX_TOKEN_DEFAULT_MAX_BYTES;
    t->allow_future_signed = cfg->allow_future_signed;
    t->latin1_atoms = cfg->latin1_atoms;
    t->limits = cfg->limits;
    if (key_len > PHX_TOKEN_MAX_KEY_LENGTH) {
        rv = PHX_ERR_INVALID;
        goto fail_token;
    }
    if ((t->key = phx_malloc(key_len)) == NULL)
        goto fail_token;
    t->key_len = key_len;
    rv = phx_token_derive_key(cfg->key_digest, cfg->secret_key_base, cfg->secret_key_base_len,
                              cfg->salt, cfg->salt_len, iterations, t->key, key_len);
    if (rv != 0)
        goto fail_token;
    t->stats.pbkdf2_runs++;
    rv = PHX_ERR_NOMEM;
    if ((t->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        goto fail_token;
    for (int i = 0; i < 3; i++) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)headers[i].md_name, 0),
            OSSL_PARAM_construct_end(),
        };
        if ((t->ctx[i] = EVP_MAC_CTX_new(t->mac)) == NULL ||
            !EVP_MAC_init(t->ctx[i], t->key, t->key_len, params))
            goto fail_token;
    }
    *out = t;
    return 0;
fail_token:
    phx_token_free(t);
fail:
    if (rv == PHX_ERR_NOMEM)
        PHX_LOG_WARN("event=token_new error=%s", phx_err_name(rv));
    return rv;
}

void phx_token_get_stats(const phx_token_t *t, phx_token_stats_t *out)
{
    *out = t->stats;
}

/* Computes the HMAC of `len` bytes with the digest of header `h`. */
static int mac_compute(phx_token_t *t, int h, const void *data, size_t len, uint8_t *mac)
{
    size_t mac_len = 0;
    EVP_MAC_CTX *c = t->ctx[h];
    /* A NULL key re-initialises the context with the key it holds. */
    if (!EVP_MAC_init(c, NULL, 0, NULL) || !EVP_MAC_update(c, data, len) ||
        !EVP_MAC_final(c, mac, &mac_len, MAC_MAX) || mac_len != headers[h].mac_len)
        return PHX_ERR_NOMEM;
    t->stats.hmac_runs++;
    return 0;
}

/* ---- verify ---- */

/* An effective max_age in milliseconds. */
typedef struct {
    bool is_infinity;
    bool is_expired; /* max_age <= 0 */
    int64_t ms;      /* trunc(max_age * 1000), saturated at INT64_MAX */
} age_t;

static int age_from_seconds(double s, age_t *a)
{
    if (isnan(s))
        return PHX_ERR_INVALID;
    if (s <= 0) {
        a->is_expired = true;
    } else if (isinf(s)) {
        a->is_infinity = true;
    } else {
        double ms = trunc(s * 1000.0);
        a->ms = ms >= 9223372036854775807.0 ? INT64_MAX : (int64_t)ms;
    }
    return 0;
}

/* The token's own max_age: NULL (legacy shapes) means 86400. */
static int age_from_term(const phx_term_t *m, age_t *a)
{
    int64_t v;
    if (m == NULL) {
        a->ms = (int64_t)PHX_TOKEN_DEFAULT_MAX_AGE * 1000;
        return 0;
    }
    switch (m->type) {
    case PHX_TERM_ATOM:
        if (!phx_term_is_atom(m, "infinity"))
            return PHX_ERR_INVALID;
        a->is_infinity = true;
        return 0;
    case PHX_TERM_INTEGER:
        if (m->u.integer.is_negative || m->u.integer.len == 0)
            a->is_expired = true;
        else if (phx_term_get_int64(m, &v) && v <= INT64_MAX / 1000)
            a->ms = v * 1000;
        else
            a->ms = INT64_MAX;
        return 0;
    case PHX_TERM_FLOAT:
        return age_from_seconds(m->u.f, a);
    default:
        return PHX_ERR_INVALID;
    }
}

/* Finds the value of an atom key (the legacy %{data:, signed:} shape
 * matches atom keys only). */
static phx_term_t **atom_key_slot(phx_term_t *map, const char *name)
{
    for (size_t i = 0; i < map->u.map.count; i++)
        if (phx_term_is_atom(map->u.map.pairs[i].key, name))
            return &map->u.map.pairs[i].value;
    return NULL;
}

/* Applies docs/protocol.md §7.4 steps 6-8 to a decoded payload. On success
 * *data_slot points at the data inside `term`. */
static int check_payload(phx_token_t *t, phx_term_t *term, int64_t now_ms, phx_max_age_t opt,
                         phx_term_t ***data_slot, int64_t *expires_ms)
{
    *expires_ms = INT64_MAX;
    phx_term_t **data = NULL;
    const phx_term_t *signed_t = NULL, *max_age_t = NULL;
    if (term->type == PHX_TERM_TUPLE && (term->u.seq.count == 3 || term->u.seq.count == 2)) {
        data = &term->u.seq.items[0];
        signed_t = term->u.seq.items[1];
        if (term->u.seq.count == 3)
            max_age_t = term->u.seq.items[2];
    } else if (term->type == PHX_TERM_MAP) {
        phx_term_t **s = atom_key_slot(term, "signed");
        data = atom_key_slot(term, "data");
        if (data == NULL || s == NULL)
            return PHX_ERR_INVALID;
        signed_t = *s;
    } else {
        return PHX_ERR_INVALID;
    }
    age_t age = {0};
    int rv = opt.kind == PHX_MAX_AGE_INFINITY  ? (age.is_infinity = true, 0)
             : opt.kind == PHX_MAX_AGE_SECONDS ? age_from_seconds(opt.seconds, &age)
                                               : age_from_term(max_age_t, &age);
    if (rv != 0)
        return rv;
    *data_slot = data;
    if (age.is_infinity)
        return 0; /* no other check, not even the future one */
    if (age.is_expired)
        return PHX_ERR_EXPIRED;
    int64_t signed_ms;
    if (!phx_term_get_int64(signed_t, &signed_ms))
        return PHX_ERR_INVALID;
    if (signed_ms > now_ms && !t->allow_future_signed)
        return PHX_ERR_INVALID;
    int64_t expires = age.ms > 0 && signed_ms > INT64_MAX - age.ms ? INT64_MAX : signed_ms + age.ms;
    *expires_ms = expires;
    return expires < now_ms ? PHX_ERR_EXPIRED : 0;
}

bool phx_token_mac_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    /* Constant time in the contents (tests/tools/ctgrind_mac.c checks it
     * under valgrind); the lengths were compared by the caller. */
    return CRYPTO_memcmp(a, b, len) == 0;
}

static int header_index(const char *token, size_t len)
{
    if (len != HEADER_LEN)
        return -1;
    for (int i = 0; i < 3; i++)
        if (CRYPTO_memcmp(token, headers[i].text, HEADER_LEN) == 0)
            return i;
    return -1;
}

int phx_token_verify(phx_token_t *t, const char *token, size_t len, int64_t now_ms,
                     phx_max_age_t max_age, phx_term_t **data_out)
{
    return phx_token_verify_until(t, token, len, now_ms, max_age, data_out, NULL);
}

int phx_token_verify_until(phx_token_t *t, const char *token, size_t len, int64_t now_ms,
                           phx_max_age_t max_age, phx_term_t **data_out, int64_t *expires_ms)
{
    if (token == NULL)
        return PHX_ERR_MISSING;
    /* The length cap comes before any HMAC work. */
    if (len > t->max_token_bytes)
        return PHX_ERR_INVALID;
    size_t dot[2] = {0, 0}, dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (dots < 2)
                dot[dots] = i;
            dots++;
        }
    }
    if (dots != 2)
        return PHX_ERR_INVALID;
    int h = header_index(token, dot[0]);
    if (h < 0)
        return PHX_ERR_INVALID;
    uint8_t sig[MAC_MAX];
    ssize_t sig_len = phx_base64_decode_to(PHX_BASE64_URL, token + dot[1] + 1, len - dot[1] - 1,
                                           sig, sizeof(sig));
    if (sig_len < 0 || (size_t)sig_len != headers[h].mac_len)
        return PHX_ERR_INVALID;
    /* The MAC covers the received text "header.payload64", byte for byte. */
    uint8_t mac[MAC_MAX];
    int rv = mac_compute(t, h, token, dot[1], mac);
    if (rv != 0)
        return rv;
    if (!phx_token_mac_equal(mac, sig, (size_t)sig_len))
        return PHX_ERR_INVALID;

    /* Authenticated: only now look at the payload. */
    const char *p64 = token + dot[0] + 1;
    size_t p64_len = dot[1] - dot[0] - 1, unpadded = p64_len;
    while (unpadded > 0 && p64[unpadded - 1] == '=' && p64_len - unpadded < 2)
        unpadded--;
    size_t cap = phx_base64_decoded_max(unpadded);
    uint8_t *payload = phx_malloc(cap);
    if (payload == NULL)
        return PHX_ERR_NOMEM;
    ssize_t n = phx_base64_decode_to(PHX_BASE64_URL, p64, p64_len, payload, cap);
    if (n < 0) {
        phx_free(payload);
        return PHX_ERR_INVALID;
    }
    phx_term_t *term = NULL;
    t->stats.etf_decodes++;
    rv = phx_etf_decode(payload, (size_t)n, &t->limits, &term);
    phx_free(payload);
    /* PHX_ERR_DATA: the MAC is good and the term well formed, but of a kind
     * phxd does not hold (a pid, an improper list): not a forgery. */
    if (rv != 0)
        return rv == PHX_ERR_NOMEM || rv == PHX_ERR_DATA ? rv : PHX_ERR_INVALID;
    phx_term_t **data = NULL;
    int64_t expires = INT64_MAX;
    rv = check_payload(t, term, now_ms, max_age, &data, &expires);
    if (rv == 0 && expires_ms != NULL)
        *expires_ms = expires;
    if (rv == 0 && data_out != NULL) {
        *data_out = *data;
        *data = NULL; /* detached: freeing the envelope keeps the data */
    }
    phx_term_free(term);
    return rv;
}

/* ---- sign ---- */

int phx_token_sign_payload(phx_token_t *t, const uint8_t *payload, size_t len, phx_buf_t *out)
{
    size_t mark = out->len;
    uint8_t mac[MAC_MAX];
    int rv = phx_buf_append(out, headers[0].text, HEADER_LEN);
    if (rv == 0)
        rv = phx_buf_append_byte(out, '.');
    if (rv == 0)
        rv = phx_base64url_encode(out, payload, len);
    if (rv == 0)
        rv = mac_compute(t, 0, out->data + mark, out->len - mark, mac);
    if (rv == 0)
        rv = phx_buf_append_byte(out, '.');
    if (rv == 0)
        rv = phx_base64url_encode(out, mac, headers[0].mac_len);
    OPENSSL_cleanse(mac, sizeof(mac));
    if (rv != 0 && out->data != NULL) {
        out->len = mark;
        out->data[mark] = '\0';
    }
    return rv;
}

static int encode_max_age(phx_buf_t *b, phx_max_age_t m, unsigned flags)
{
    switch (m.kind) {
    case PHX_MAX_AGE_TOKEN:
        return phx_etf_encode_int64(b, PHX_TOKEN_DEFAULT_MAX_AGE);
    case PHX_MAX_AGE_INFINITY:
        return phx_etf_encode_atom(b, "infinity", 8, flags);
    case PHX_MAX_AGE_SECONDS:
        if (!isfinite(m.seconds))
            return PHX_ERR_INVALID;
        if (!m.is_float && m.seconds == trunc(m.seconds) && fabs(m.seconds) < 9.2e18)
            return phx_etf_encode_int64(b, (int64_t)m.seconds);
        return phx_etf_encode_float(b, m.seconds);
    }
    return PHX_ERR_INVALID;
}

int phx_token_sign(phx_token_t *t, const phx_term_t *data, int64_t signed_at_ms,
                   phx_max_age_t max_age, phx_buf_t *out)
{
    unsigned flags = t->latin1_atoms ? PHX_ETF_LATIN1_ATOMS : 0;
    phx_buf_t payload = {0};
    /* {data, signed_at_ms, max_age} as term_to_binary writes it. */
    static const uint8_t head[3] = {131, 'h', 3};
    int rv = phx_buf_append(&payload, head, sizeof(head));
    if (rv == 0)
        rv = phx_etf_encode_term(data, flags, &payload);
    if (rv == 0)
        rv = phx_etf_encode_int64(&payload, signed_at_ms);
    if (rv == 0)
        rv = encode_max_age(&payload, max_age, flags);
    if (rv == 0)
        rv = phx_token_sign_payload(t, payload.data, payload.len, out);
    phx_buf_dispose(&payload);
    return rv;
}
