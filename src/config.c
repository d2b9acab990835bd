/* config.c: the option table and its parser (see config.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

const char phxd_demo_secret[] = "phxd-demo-secret-key-base-0123456789-do-not-use-in-production-xx";

typedef enum {
    OPT_STRING,
    OPT_INT,
    OPT_SIZE,
    OPT_MAX_AGE,
    OPT_DIGEST,
    OPT_LOG_LEVEL,
    OPT_BOOL,
} opt_type_t;

typedef struct opt {
    const char *name; /* flag without "--", kebab-case */
    const char *env;  /* PHXD_... */
    const char *env2; /* an extra variable Phoenix apps use, or NULL */
    opt_type_t type;
    size_t offset;   /* into phxd_options_t */
    const char *def; /* default as shown in --help */
    long long min, max;
    bool is_secret;
    const char *help;
} opt_t;

#define CFG(field) offsetof(phxd_options_t, cfg.field)

static const opt_t options[] = {
    {"host", "PHXD_HOST", NULL, OPT_STRING, CFG(host), "127.0.0.1", 0, 0, false,
     "address to listen on (0.0.0.0 or :: for every interface)"},
    {"port", "PHXD_PORT", "PORT", OPT_INT, CFG(port), "4000", 0, 65535, false,
     "TCP port; 0 picks a free port (the banner shows it)"},
    {"socket-path", "PHXD_SOCKET_PATH", NULL, OPT_STRING, CFG(socket_path), "/socket", 0, 0, false,
     "mount prefix of the socket: <path>/websocket"},
    {"check-origin", "PHXD_CHECK_ORIGIN", NULL, OPT_STRING, CFG(check_origin), "true", 0, 0, false,
     "true (the Origin's host must be --url-host, or the Host the request was sent to), false, "
     "conn, or a list like https://app.example.com,//*.example.com"},
    {"url-host", "PHXD_URL_HOST", NULL, OPT_STRING, CFG(url_host), "(the request's Host)", 0, 0,
     false, "the public host name that check-origin true compares the Origin with"},
    {"secret-key-base", "PHXD_SECRET_KEY_BASE", "SECRET_KEY_BASE", OPT_STRING, CFG(secret_key_base),
     "(demo secret)", 0, 0, true, "the Phoenix app's secret_key_base that signs user tokens"},
    {"salt", "PHXD_SALT", NULL, OPT_STRING, CFG(salt), "user socket", 0, 0, false,
     "Phoenix.Token salt (the namespace given to Phoenix.Token.sign)"},
    {"max-age", "PHXD_MAX_AGE", NULL, OPT_MAX_AGE, CFG(max_age), "(the token's own)", 0, 0, false,
     "token max age in seconds or 'infinity'; overrides the token's own"},
    {"key-iterations", "PHXD_KEY_ITERATIONS", NULL, OPT_INT, CFG(key_iterations), "1000", 1,
     10000000, false, "PBKDF2 iterations of the key derivation"},
    {"key-length", "PHXD_KEY_LENGTH", NULL, OPT_INT, CFG(key_length), "32", 1, 1024, false,
     "derived key length in bytes"},
    {"key-digest", "PHXD_KEY_DIGEST", NULL, OPT_DIGEST, CFG(key_digest), "sha256", 0, 0, false,
     "PBKDF2 digest: sha256, sha384 or sha512"},
    {"idle-timeout-ms", "PHXD_IDLE_TIMEOUT_MS", NULL, OPT_INT, CFG(idle_timeout_ms), "60000", 100,
     INT_MAX, false, "close a WebSocket that sent nothing for this long"},
    {"handshake-timeout-ms", "PHXD_HANDSHAKE_TIMEOUT_MS", NULL, OPT_INT, CFG(handshake_timeout_ms),
     "10000", 100, INT_MAX, false, "deadline for the whole HTTP request head"},
    {"close-timeout-ms", "PHXD_CLOSE_TIMEOUT_MS", NULL, OPT_INT, CFG(close_timeout_ms), "5000", 10,
     INT_MAX, false, "how long to wait for the peer after sending a Close"},
    {"max-message-bytes", "PHXD_MAX_MESSAGE_BYTES", NULL, OPT_SIZE, CFG(max_message_bytes),
     "1048576", 64, 1LL << 31, false, "largest WebSocket message accepted (close 1009 beyond)"},
    {"max-fragments", "PHXD_MAX_FRAGMENTS", NULL, OPT_INT, CFG(max_fragments), "1024", 1, 1000000,
     false, "frames per fragmented message (close 1009 beyond)"},
    {"max-header-bytes", "PHXD_MAX_HEADER_BYTES", NULL, OPT_SIZE, CFG(max_header_bytes), "8192",
     256, 1 << 20, false, "URL plus header bytes of a request (414/431 beyond)"},
    {"max-headers", "PHXD_MAX_HEADERS", NULL, OPT_INT, CFG(max_headers), "100", 4, 10000, false,
     "header fields per request (431 beyond)"},
    {"max-channels", "PHXD_MAX_CHANNELS", NULL, OPT_INT, CFG(max_channels), "100", 1, 65535, false,
     "joined topics per socket"},
    {"max-json-depth", "PHXD_MAX_JSON_DEPTH", NULL, OPT_INT, CFG(max_json_depth), "64", 2, 1000,
     false, "nesting of client JSON messages"},
    {"max-token-bytes", "PHXD_MAX_TOKEN_BYTES", NULL, OPT_SIZE, CFG(max_token_bytes), "4096", 64,
     1 << 20, false, "longest token looked at"},
    {"max-topic-bytes", "PHXD_MAX_TOPIC_BYTES", NULL, OPT_SIZE, CFG(max_topic_bytes), "1024", 16,
     1 << 20, false, "longest topic, event or ref"},
    {"queue-high-bytes", "PHXD_QUEUE_HIGH_BYTES", NULL, OPT_SIZE, CFG(queue_high_bytes), "1048576",
     1024, 1LL << 40, false, "queued output above which reading a socket pauses"},
    {"queue-limit-bytes", "PHXD_QUEUE_LIMIT_BYTES", NULL, OPT_SIZE, CFG(queue_limit_bytes),
     "8388608", 1024, 1LL << 40, false, "queued output above which a socket is closed (1008)"},
    {"tls-cert", "PHXD_TLS_CERT", NULL, OPT_STRING, CFG(tls_cert), "(none: plain TCP)", 0, 0,
     false, "PEM certificate chain: serve https:// and wss:// (TLS 1.2+) on the same port"},
    {"tls-key", "PHXD_TLS_KEY", NULL, OPT_STRING, CFG(tls_key), "(none)", 0, 0, false,
     "PEM private key of --tls-cert"},
    {"echo-path", "PHXD_ECHO_PATH", NULL, OPT_STRING, CFG(echo_path), "(none)", 0, 0, false,
     "serve a raw WebSocket echo at this path (a testing aid for RFC 6455 conformance runs)"},
    {"api-key", "PHXD_API_KEY", NULL, OPT_STRING, CFG(api_key), "(none: the API is off)", 0, 0,
     true, "bearer key of the HTTP API (POST /api/broadcast, /api/disconnect)"},
    {"longpoll", "PHXD_LONGPOLL", NULL, OPT_BOOL, CFG(longpoll), "true", 0, 0, false,
     "serve the LongPoll transport at <socket-path>/longpoll"},
    {"longpoll-window-ms", "PHXD_LONGPOLL_WINDOW_MS", NULL, OPT_INT, CFG(longpoll_window_ms),
     "10000", 100, INT_MAX, false,
     "a parked poll answers 204 after this; a session ends 1.5 windows after its last poll"},
    {"longpoll-max-messages", "PHXD_LONGPOLL_MAX_MESSAGES", NULL, OPT_INT,
     CFG(longpoll_max_messages), "1000", 1, 10000000, false,
     "messages buffered for one session; beyond, the session ends"},
    {"longpoll-max-sessions", "PHXD_LONGPOLL_MAX_SESSIONS", NULL, OPT_INT,
     CFG(longpoll_max_sessions), "10000", 1, 10000000, false, "LongPoll sessions at once"},
    {"max-body-bytes", "PHXD_MAX_BODY_BYTES", NULL, OPT_SIZE, CFG(max_body_bytes), "8000000", 64,
     1LL << 31, false, "largest request body (LongPoll POST; 413 beyond)"},
    {"max-connections", "PHXD_MAX_CONNECTIONS", NULL, OPT_INT, CFG(max_connections),
     "(file descriptor limit - 64)", 0, INT_MAX, false,
     "open connections at most; beyond, new ones get 503 before any upgrade"},
    {"drain-batch", "PHXD_DRAIN_BATCH", NULL, OPT_INT, offsetof(phxd_options_t, drain_batch),
     "10000", 1, INT_MAX, false, "sockets closed (code 1001) per drain step on SIGTERM"},
    {"drain-interval-ms", "PHXD_DRAIN_INTERVAL_MS", NULL, OPT_INT,
     offsetof(phxd_options_t, drain_interval_ms), "2000", 0, INT_MAX, false,
     "pause between drain steps (SIGINT drains in one step)"},
    {"drain-timeout-ms", "PHXD_DRAIN_TIMEOUT_MS", NULL, OPT_INT,
     offsetof(phxd_options_t, drain_timeout_ms), "30000", 0, INT_MAX, false,
     "whatever is still open then is closed and phxd exits"},
    {"phoenix-js", "PHXD_PHOENIX_JS", NULL, OPT_STRING, offsetof(phxd_options_t, phoenix_js),
     "(the phoenix npm package the build installed)", 0, 0, false,
     "phoenix.min.js that the demo page at / loads from /phoenix.js; read once at startup"},
    {"log-level", "PHXD_LOG_LEVEL", NULL, OPT_LOG_LEVEL, offsetof(phxd_options_t, log_level),
     "info", 0, 0, false, "error, warn, info or debug"},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

void phxd_options_init(phxd_options_t *o)
{
    memset(o, 0, sizeof(*o));
    phx_config_init(&o->cfg);
    o->log_level = PHX_LOG_LEVEL_INFO;
    o->drain_batch = 10000;
    o->drain_interval_ms = 2000;
    o->drain_timeout_ms = 30000;
}

static int parse_ll(const char *s, long long *out, bool allow_suffix)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (allow_suffix && *end) {
        long long mul = 1;
        if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0)
            mul = 1024;
        else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0)
            mul = 1024 * 1024;
        else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gib") == 0)
            mul = 1024LL * 1024 * 1024;
        else
            return -1;
        if (v > LLONG_MAX / mul)
            return -1;
        v *= mul;
        end += strlen(end);
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int apply(phxd_options_t *o, const opt_t *opt, const char *value, const char *source,
                 char *err)
{
    char *base = (char *)o;
    long long v;
    switch (opt->type) {
    case OPT_STRING:
        *(const char **)(base + opt->offset) = value;
        return 0;
    case OPT_INT:
    case OPT_SIZE:
        if (parse_ll(value, &v, opt->type == OPT_SIZE) != 0 || v < opt->min || v > opt->max) {
            snprintf(err, PHX_ERR_LEN, "%s: %s must be an integer from %lld to %lld, got \"%s\"",
                     source, opt->name, opt->min, opt->max, value);
            return PHX_ERR_INVALID;
        }
        if (opt->type == OPT_INT)
            *(int *)(base + opt->offset) = (int)v;
        else
            *(size_t *)(base + opt->offset) = (size_t)v;
        return 0;
    case OPT_MAX_AGE: {
        phx_max_age_t *m = (phx_max_age_t *)(base + opt->offset);
        if (strcmp(value, "infinity") == 0) {
            m->kind = PHX_MAX_AGE_INFINITY;
            return 0;
        }
        char *end;
        errno = 0;
        double d = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(d)) {
            snprintf(err, PHX_ERR_LEN, "%s: max-age must be seconds or 'infinity', got \"%s\"",
                     source, value);
            return PHX_ERR_INVALID;
        }
        m->kind = PHX_MAX_AGE_SECONDS;
        m->seconds = d;
        return 0;
    }
    case OPT_DIGEST:
        if (strcmp(value, "sha256") != 0 && strcmp(value, "sha384") != 0 &&
            strcmp(value, "sha512") != 0) {
            snprintf(err, PHX_ERR_LEN,
                     "%s: key-digest must be sha256, sha384 or sha512, got \"%s\"", source, value);
            return PHX_ERR_INVALID;
        }
        *(const char **)(base + opt->offset) = value;
        return 0;
    case OPT_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0) {
            *(bool *)(base + opt->offset) = true;
            return 0;
        }
        if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0) {
            *(bool *)(base + opt->offset) = false;
            return 0;
        }
        snprintf(err, PHX_ERR_LEN, "%s: %s must be true or false, got \"%s\"", source, opt->name,
                 value);
        return PHX_ERR_INVALID;
    case OPT_LOG_LEVEL: {
        int lvl = phx_log_level_parse(value);
        if (lvl < 0) {
            snprintf(err, PHX_ERR_LEN,
                     "%s: log-level must be error, warn, info or debug, got \"%s\"", source, value);
            return PHX_ERR_INVALID;
        }
        *(int *)(base + opt->offset) = lvl;
        return 0;
    }
    }
    return PHX_ERR_INVALID;
}

static const char *real_getenv(const char *name)
{
    return getenv(name);
}

int phxd_options_parse(phxd_options_t *o, int argc, char **argv, int first,
                       const char *(*get_env)(const char *), bool *help, char *err)
{
    if (get_env == NULL)
        get_env = real_getenv;
    *help = false;
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *opt = &options[i];
        /* The phxd-specific variable wins over the generic one. */
        const char *v = get_env(opt->env);
        const char *name = opt->env;
        if ((v == NULL || *v == '\0') && opt->env2) {
            v = get_env(opt->env2);
            name = opt->env2;
        }
        if (v == NULL || *v == '\0')
            continue;
        char source[64];
        snprintf(source, sizeof(source), "environment %s", name);
        int rv = apply(o, opt, v, source, err);
        if (rv)
            return rv;
    }
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = true;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, PHX_ERR_LEN, "unexpected argument \"%s\" (see --help)", arg);
            return PHX_ERR_INVALID;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *opt = NULL;
        for (size_t k = 0; k < NOPTIONS; k++)
            if (strlen(options[k].name) == nlen && strncmp(options[k].name, name, nlen) == 0)
                opt = &options[k];
        if (opt == NULL) {
            snprintf(err, PHX_ERR_LEN, "unknown option --%.*s (see --help)", (int)nlen, name);
            return PHX_ERR_INVALID;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, PHX_ERR_LEN, "option --%s needs a value", opt->name);
                return PHX_ERR_INVALID;
            }
            value = argv[++i];
        }
        char source[80];
        snprintf(source, sizeof(source), "option --%s", opt->name);
        int rv = apply(o, opt, value, source, err);
        if (rv)
            return rv;
    }
    if (o->cfg.secret_key_base == NULL || o->cfg.secret_key_base[0] == '\0') {
        o->cfg.secret_key_base = phxd_demo_secret;
        o->is_demo_secret = true;
    }
    if (o->cfg.queue_high_bytes > o->cfg.queue_limit_bytes) {
        snprintf(err, PHX_ERR_LEN, "queue-high-bytes must not exceed queue-limit-bytes");
        return PHX_ERR_INVALID;
    }
    if (o->cfg.socket_path[0] != '/') {
        snprintf(err, PHX_ERR_LEN, "socket-path must start with '/', got \"%s\"",
                 o->cfg.socket_path);
        return PHX_ERR_INVALID;
    }
    return 0;
}

static void env_names(const opt_t *opt, char *out, size_t len)
{
    if (opt->env2)
        snprintf(out, len, "%s, %s", opt->env, opt->env2);
    else
        snprintf(out, len, "%s", opt->env);
}

void phxd_options_help(FILE *out)
{
    fprintf(out,
            "usage: phxd [options]            run the server\n"
            "       phxd token sign|verify ...  mint or check a Phoenix.Token (phxd token --help)\n"
            "       phxd --version\n\n"
            "options (flag > environment > default):\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *opt = &options[i];
        char env[96];
        env_names(opt, env, sizeof(env));
        fprintf(out, "  --%-22s %s\n  %-24s default %s; env %s\n", opt->name, opt->help, "",
                opt->def, env);
    }
}

void phxd_options_markdown(FILE *out)
{
    fprintf(out, "| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *opt = &options[i];
        char env[96];
        env_names(opt, env, sizeof(env));
        fprintf(out, "| `--%s` | `%s` | `%s` | %s |\n", opt->name, env, opt->def, opt->help);
    }
}
