/* token.h: Phoenix.Token sign and verify, byte-compatible with Plug.Crypto
 * 2.x MessageVerifier (docs/protocol.md §7). A phx_token_t holds one
 * (secret_key_base, salt, key options) configuration and its PBKDF2-derived
 * key, computed once in phx_token_new: verifying costs one HMAC. Use one
 * object per salt (the user socket salt, the LongPoll session salt). Leaf
 * module: called by socket.c on connect; includes no stage. Not thread-safe:
 * an object belongs to one loop. */
#ifndef PHX_TOKEN_H
#define PHX_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etf.h"
#include "mem.h"
#include "phx.h"

typedef enum {
    PHX_DIGEST_SHA256 = 0, /* the default */
    PHX_DIGEST_SHA384,
    PHX_DIGEST_SHA512,
    PHX_DIGEST_SHA1,   /* key derivation only (Plug's KeyGenerator tests) */
    PHX_DIGEST_SHA224, /* key derivation only */
} phx_digest_t;

#define PHX_TOKEN_DEFAULT_ITERATIONS 1000
#define PHX_TOKEN_DEFAULT_KEY_LENGTH 32
#define PHX_TOKEN_DEFAULT_MAX_BYTES 4096
#define PHX_TOKEN_DEFAULT_MAX_AGE 86400 /* seconds, written by sign by default */
#define PHX_TOKEN_MAX_KEY_LENGTH 1024
#define PHX_TOKEN_MAX_ITERATIONS 100000000u

typedef struct phx_token_config {
    const uint8_t *secret_key_base; /* raw bytes, copied */
    size_t secret_key_base_len;
    const uint8_t *salt; /* raw bytes, copied; may be empty */
    size_t salt_len;
    uint32_t key_iterations; /* 0 = 1000 */
    uint32_t key_length;     /* 0 = 32 bytes */
    phx_digest_t key_digest; /* PBKDF2 digest: sha256 (default), sha384, sha512 */
    size_t max_token_bytes;  /* longer tokens are invalid before any HMAC; 0 = 4096 */
    /* Plug.Crypto <= 2.1.1 behaviour: accept tokens signed in the future
     * (docs/protocol.md §7.4 step 8). Off: such tokens are invalid, as in 2.2. */
    bool allow_future_signed;
    /* Sign atoms (max_age infinity, atoms in data) as OTP <= 25 does ('d')
     * instead of the OTP >= 26 form ('w'); reproduces vectors minted on
     * OTP 25. Verification accepts both forms regardless. */
    bool latin1_atoms;
    phx_etf_limits_t limits; /* for payloads; zero fields = defaults */
} phx_token_config_t;

typedef struct phx_token phx_token_t;

/* max_age as sign writes it and as a verify option: phx_max_age_t of phx.h
 * (PHX_MAX_AGE_TOKEN: verify uses the token's own, sign writes 86400). */

/* Counters for tests and metrics. */
typedef struct phx_token_stats {
    uint64_t pbkdf2_runs; /* key derivations (1 per object) */
    uint64_t hmac_runs;   /* MACs computed by sign and verify */
    uint64_t etf_decodes; /* payloads handed to the ETF decoder */
} phx_token_stats_t;

/* Parses "sha256", "sha384", "sha512" (and "sha", "sha1", "sha224").
 * Returns 0 or PHX_ERR_INVALID. */
int phx_digest_parse(const char *name, phx_digest_t *out);

/* PBKDF2-HMAC (RFC 8018) as Plug.Crypto.KeyGenerator. Borrows the inputs;
 * writes `out_len` bytes. Returns 0, PHX_ERR_INVALID (bad parameters) or
 * PHX_ERR_NOMEM. */
int phx_token_derive_key(phx_digest_t digest, const void *secret, size_t secret_len,
                         const void *salt, size_t salt_len, uint32_t iterations, uint8_t *out,
                         size_t out_len);

/* Fills `tc` from a server configuration: its secret_key_base (must be
 * set), salt, key iterations, length and digest, and token size limit;
 * the rest zero. Borrows the strings. Returns 0 or PHX_ERR_INVALID (an
 * unknown digest). */
int phx_token_config_from(phx_token_config_t *tc, const phx_config_t *cfg);

/* Creates a token object: copies the configuration and derives the key
 * (the one PBKDF2 run; do this at startup, not on the loop's hot path).
 * Borrows `cfg`. Returns 0 with an owned object in *out (phx_token_free),
 * PHX_ERR_INVALID for an out-of-range option or digest, or PHX_ERR_NOMEM. */
int phx_token_new(phx_token_t **out, const phx_token_config_t *cfg);
/* Wipes the key and frees. NULL is a no-op. */
void phx_token_free(phx_token_t *t);

/* Verifies `len` bytes of `token` (no NUL needed; NULL = absent) at time
 * `now_ms` (Unix ms, from the caller's clock). `max_age` PHX_MAX_AGE_TOKEN
 * uses the token's own max_age; anything else overrides it in both
 * directions. Checks in order: absent -> MISSING; longer than
 * max_token_bytes, not exactly three '.'-separated parts, unknown header
 * (SFMyNTY/SFMzODQ/SFM1MTI), bad base64url, wrong signature length or MAC
 * -> INVALID; only then the payload is decoded: not an accepted shape
 * ({data, signed, max_age}, {data, signed}, %{data:, signed:}) or a
 * malformed or over-limit term -> INVALID; max_age infinity -> OK;
 * max_age <= 0 -> EXPIRED; signed > now -> INVALID; signed +
 * trunc(max_age * 1000) < now -> EXPIRED. Borrows `token`.
 * Returns 0 with the data term in *data_out (returns owned: phx_term_free;
 * may be NULL to discard), PHX_ERR_MISSING, PHX_ERR_INVALID,
 * PHX_ERR_EXPIRED or PHX_ERR_NOMEM. */
int phx_token_verify(phx_token_t *t, const char *token, size_t len, int64_t now_ms,
                     phx_max_age_t max_age, phx_term_t **data_out);

/* phx_token_verify, and on success the time the token stops being valid
 * under the same rules (signed_at + max_age, the verify-time max_age
 * when given), in unix milliseconds: INT64_MAX for max_age infinity.
 * `expires_ms` may be NULL. */
int phx_token_verify_until(phx_token_t *t, const char *token, size_t len, int64_t now_ms,
                           phx_max_age_t max_age, phx_term_t **data_out, int64_t *expires_ms);

/* Signs `data` as Phoenix.Token.sign does: HS256 over the ETF of
 * {data, signed_at_ms, max_age} (PHX_MAX_AGE_TOKEN writes 86400). Appends
 * the token text to `out` (NUL-terminated). Borrows `data`. Returns 0,
 * PHX_ERR_INVALID (a non-finite max_age) or PHX_ERR_NOMEM (`out` then keeps
 * its previous length). */
int phx_token_sign(phx_token_t *t, const phx_term_t *data, int64_t signed_at_ms,
                   phx_max_age_t max_age, phx_buf_t *out);

/* Signs pre-encoded ETF payload bytes (starting with 131) as they are.
 * For tests and fuzzing: lets a harness reach the decoder through the real
 * MAC path. Same results as phx_token_sign. */
int phx_token_sign_payload(phx_token_t *t, const uint8_t *payload, size_t len, phx_buf_t *out);

/* Compares two MACs of `len` bytes in time independent of their contents
 * (CRYPTO_memcmp). */
bool phx_token_mac_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Copies the counters. */
void phx_token_get_stats(const phx_token_t *t, phx_token_stats_t *out);

#endif /* PHX_TOKEN_H */
