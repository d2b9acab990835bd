/* token_cli.c: `phxd token sign|verify`, a thin shell over token.c and the
 * JSON conversions of etf.h. Runs before (and instead of) the server, so it
 * may read the environment and the wall clock. Owns nothing past return. */
#include "token_cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etf.h"
#include "mem.h"
#include "phx.h"
#include "token.h"

static const char usage_text[] =
    "usage: phxd token sign --secret-key-base K [--salt S] [--max-age SEC|infinity]\n"
    "                       [--signed-at UNIX_SECONDS] [KEY OPTIONS] JSON_DATA\n"
    "       phxd token verify --secret-key-base K [--salt S] [--max-age SEC|infinity]\n"
    "                       [KEY OPTIONS] TOKEN\n"
    "KEY OPTIONS: --key-iterations N (1000), --key-length N (32),\n"
    "             --key-digest sha256|sha384|sha512 (sha256)\n"
    "The secret defaults to $PHXD_SECRET_KEY_BASE, then $SECRET_KEY_BASE; the salt to\n"
    "\"user socket\". sign prints the token (HS256, max_age 86400 unless given).\n"
    "verify prints the token's data as JSON (data with no JSON form, such as an\n"
    "improper list or a pid, in an Elixir-like text form: [1 | 2], #PID<node.1.0>),\n"
    "or `invalid`, `expired` or `missing` on stderr with exit status 1. --max-age on\n"
    "verify overrides the token's own.\n";

typedef struct {
    bool is_sign;
    const char *secret;
    const char *salt;
    const char *max_age;
    const char *signed_at;
    const char *iterations;
    const char *key_length;
    const char *digest;
    const char *now_ms; /* hidden: fixes the verify clock (tests) */
    bool latin1_atoms;  /* hidden: write atoms as OTP 25 does */
    const char *positional;
    bool has_positional;
} cli_opts_t;

#define HELP_REQUESTED (-1)

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("phxd token: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see phxd token --help)\n", stderr);
    return 2;
}

/* ---- value parsers ---- */

static bool parse_i64(const char *s, int64_t *out)
{
    if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool is_integer_text(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* A finite decimal number: [-]digits[.digits][e[+-]digits]. */
static bool parse_decimal(const char *s, double *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v))
        return false;
    for (p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
              *p == 'E'))
            return false;
    *out = v;
    return true;
}

static bool parse_max_age(const char *s, phx_max_age_t *out)
{
    if (strcmp(s, "infinity") == 0) {
        out->kind = PHX_MAX_AGE_INFINITY;
        return true;
    }
    int64_t v;
    if (is_integer_text(s)) {
        /* Integers stay integers (written as ETF integers) while a double
         * holds them exactly. */
        if (!parse_i64(s, &v) || v > (INT64_C(1) << 53) || v < -(INT64_C(1) << 53))
            return false;
        out->kind = PHX_MAX_AGE_SECONDS;
        out->seconds = (double)v;
        out->is_float = false;
        return true;
    }
    double d;
    if (!parse_decimal(s, &d))
        return false;
    out->kind = PHX_MAX_AGE_SECONDS;
    out->seconds = d;
    out->is_float = true;
    return true;
}

/* signed_at in seconds to ms as Plug does: trunc(signed_at * 1000). */
static bool parse_signed_at(const char *s, int64_t *ms)
{
    int64_t v;
    if (is_integer_text(s)) {
        if (!parse_i64(s, &v) || v > INT64_MAX / 1000 || v < INT64_MIN / 1000)
            return false;
        *ms = v * 1000;
        return true;
    }
    double d;
    if (!parse_decimal(s, &d))
        return false;
    double x = trunc(d * 1000.0);
    if (!(x > -9.2e18 && x < 9.2e18))
        return false;
    *ms = (int64_t)x;
    return true;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    int64_t v;
    if (!is_integer_text(s) || !parse_i64(s, &v) || v < (int64_t)min || v > (int64_t)max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static int64_t wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- argument parsing ---- */

/* Returns 0, HELP_REQUESTED, or the exit status of a usage error already
 * reported. Options start with "--" (a lone "--" ends them); anything else,
 * "-1.5" included, is the positional argument. */
static int parse_args(int argc, char **argv, cli_opts_t *o)
{
    static const struct {
        const char *name;
        size_t offset;
        int only; /* 0 both, 1 sign, 2 verify */
    } flags[] = {
        {"--secret-key-base", offsetof(cli_opts_t, secret), 0},
        {"--salt", offsetof(cli_opts_t, salt), 0},
        {"--max-age", offsetof(cli_opts_t, max_age), 0},
        {"--signed-at", offsetof(cli_opts_t, signed_at), 1},
        {"--key-iterations", offsetof(cli_opts_t, iterations), 0},
        {"--key-length", offsetof(cli_opts_t, key_length), 0},
        {"--key-digest", offsetof(cli_opts_t, digest), 0},
        {"--now-ms", offsetof(cli_opts_t, now_ms), 2},
    };
    bool options_done = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0))
            return HELP_REQUESTED;
        if (options_done || strncmp(a, "--", 2) != 0) {
            if (o->has_positional)
                return usage_error("unexpected extra argument '%s'", a);
            o->positional = a;
            o->has_positional = true;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "--latin1-atoms") == 0) {
            o->latin1_atoms = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
        size_t k = 0;
        for (; k < sizeof(flags) / sizeof(flags[0]); k++)
            if (strlen(flags[k].name) == name_len && strncmp(a, flags[k].name, name_len) == 0)
                break;
        if (k == sizeof(flags) / sizeof(flags[0]))
            return usage_error("unknown option '%s'", a);
        if ((flags[k].only == 1 && !o->is_sign) || (flags[k].only == 2 && o->is_sign))
            return usage_error("option %s does not apply to this command", flags[k].name);
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL) {
            if (i + 1 >= argc)
                return usage_error("option %s needs a value", flags[k].name);
            value = argv[++i];
        }
        *(const char **)((char *)o + flags[k].offset) = value;
    }
    return 0;
}

/* ---- the commands ---- */

static int run_sign(phx_token_t *tok, const cli_opts_t *o, phx_max_age_t max_age)
{
    int64_t signed_ms;
    if (o->signed_at != NULL) {
        if (!parse_signed_at(o->signed_at, &signed_ms))
            return usage_error("bad --signed-at '%s' (Unix seconds)", o->signed_at);
    } else {
        signed_ms = wall_clock_ms();
    }
    if (!o->has_positional)
        return usage_error("%s", "sign needs JSON_DATA");
    phx_term_t *data = NULL;
    int rv = phx_json_to_term(o->positional, strlen(o->positional), NULL, &data);
    if (rv == PHX_ERR_NOMEM) {
        fprintf(stderr, "error: %s\n", phx_strerror(rv));
        return 1;
    }
    if (rv != 0)
        return usage_error("JSON_DATA is not valid JSON (or exceeds a limit): %s",
                           phx_strerror(rv));
    phx_buf_t out = {0};
    rv = phx_token_sign(tok, data, signed_ms, max_age, &out);
    phx_term_free(data);
    if (rv != 0) {
        phx_buf_dispose(&out);
        fprintf(stderr, "error: %s\n", phx_strerror(rv));
        return 1;
    }
    fwrite(out.data, 1, out.len, stdout);
    fputc('\n', stdout);
    phx_buf_dispose(&out);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int run_verify(phx_token_t *tok, const cli_opts_t *o, phx_max_age_t max_age)
{
    int64_t now_ms = wall_clock_ms();
    if (o->now_ms != NULL && !parse_i64(o->now_ms, &now_ms))
        return usage_error("bad --now-ms '%s'", o->now_ms);
    const char *token = o->has_positional ? o->positional : NULL;
    phx_term_t *data = NULL;
    int rv = phx_token_verify(tok, token, token ? strlen(token) : 0, now_ms, max_age, &data);
    const char *word = rv == PHX_ERR_INVALID   ? "invalid"
                       : rv == PHX_ERR_EXPIRED ? "expired"
                       : rv == PHX_ERR_MISSING ? "missing"
                                               : NULL;
    if (word != NULL) {
        fprintf(stderr, "%s\n", word);
        return 1;
    }
    phx_buf_t json = {0};
    /* Data with no JSON form (an improper list, a pid, ...) is still a
     * valid token, as Phoenix.Token.verify returns {:ok, data}: its text
     * form is printed instead. */
    if (rv == 0 && (rv = phx_term_to_json(data, &json)) == PHX_ERR_INVALID) {
        phx_buf_dispose(&json);
        rv = phx_term_to_text(data, &json);
    }
    phx_term_free(data);
    if (rv != 0) {
        phx_buf_dispose(&json);
        fprintf(stderr, "error: %s\n", phx_strerror(rv));
        return 1;
    }
    fwrite(json.data, 1, json.len, stdout);
    fputc('\n', stdout);
    phx_buf_dispose(&json);
    return fflush(stdout) == 0 ? 0 : 1;
}

int phx_token_cli(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "missing command: sign or verify");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    cli_opts_t o = {.salt = "user socket"};
    if (strcmp(cmd, "sign") == 0)
        o.is_sign = true;
    else if (strcmp(cmd, "verify") != 0)
        return usage_error("unknown command '%s' (sign or verify)", cmd);
    int rv = parse_args(argc, argv, &o);
    if (rv == HELP_REQUESTED) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (rv != 0)
        return rv;

    if (o.secret == NULL)
        o.secret = getenv("PHXD_SECRET_KEY_BASE");
    if (o.secret == NULL)
        o.secret = getenv("SECRET_KEY_BASE");
    if (o.secret == NULL || o.secret[0] == '\0')
        return usage_error("%s", "no secret: pass --secret-key-base or set PHXD_SECRET_KEY_BASE");
    phx_token_config_t cfg = {
        .secret_key_base = (const uint8_t *)o.secret,
        .secret_key_base_len = strlen(o.secret),
        .salt = (const uint8_t *)o.salt,
        .salt_len = strlen(o.salt),
        .latin1_atoms = o.latin1_atoms,
        /* verify shows data the server cannot use as well (text form). */
        .limits = {.keep_other = true},
    };
    if (o.iterations != NULL &&
        !parse_u32(o.iterations, 1, PHX_TOKEN_MAX_ITERATIONS, &cfg.key_iterations))
        return usage_error("bad --key-iterations '%s'", o.iterations);
    if (o.key_length != NULL &&
        !parse_u32(o.key_length, 1, PHX_TOKEN_MAX_KEY_LENGTH, &cfg.key_length))
        return usage_error("bad --key-length '%s' (1..1024)", o.key_length);
    if (o.digest != NULL && phx_digest_parse(o.digest, &cfg.key_digest) != 0)
        return usage_error("bad --key-digest '%s' (sha256, sha384 or sha512)", o.digest);
    phx_max_age_t max_age = {.kind = PHX_MAX_AGE_TOKEN};
    if (o.max_age != NULL && !parse_max_age(o.max_age, &max_age))
        return usage_error("bad --max-age '%s' (seconds or infinity)", o.max_age);

    phx_token_t *tok = NULL;
    if ((rv = phx_token_new(&tok, &cfg)) != 0) {
        fprintf(stderr, "error: cannot derive the key: %s\n", phx_strerror(rv));
        return 1;
    }
    rv = o.is_sign ? run_sign(tok, &o, max_age) : run_verify(tok, &o, max_age);
    phx_token_free(tok);
    return rv;
}
