/* config.c: the option table and its parser (see config.h): defaults,
 * the config file (conffile.c), the environment and flags, in that order of
 * precedence, with the source of every value kept for check-config. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conffile.h"
#include "log.h"
#include "origin.h"
#include "rules.h"

const char phxd_demo_secret[] = "phxd-demo-secret-key-base-0123456789-do-not-use-in-production-xx";

typedef enum {
    OPT_STRING,
    OPT_INT,
    OPT_SIZE,
    OPT_MAX_AGE,
    OPT_DIGEST,
    OPT_LOG_LEVEL,
    OPT_BOOL,
    OPT_REFUSE_MODE, /* status | close, into a bool (close) */
    OPT_CONNECT,     /* token | backend, into a bool (backend) */
    OPT_CONFIG,      /* the config file's path: flag or environment only */
    OPT_RULES,       /* repeatable: channel rules */
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
    {"config", "PHXD_CONFIG", NULL, OPT_CONFIG, offsetof(phxd_options_t, config_path), "(none)", 0,
     0, false,
     "config file of `name = value` lines (names as the flags here, # comments), read at "
     "startup; flags and environment override it"},
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
    {"user-id-field", "PHXD_USER_ID_FIELD", NULL, OPT_STRING, CFG(user_id_field),
     "(the token's data as a whole)", 0, 0, false,
     "when a token's data is a map (%{user_id: 42}), the user id is this field of it; a map "
     "without it is refused"},
    {"channel", "PHXD_CHANNEL", NULL, OPT_RULES, 0, "(built-in: user:* and room:*)", 0, 0, false,
     "channel rule, repeatable: PATTERN join=any|user|none|backend events=broadcast|"
     "broadcast_from|reply|refuse|backend [event:NAME=ACTION] [max-payload-bytes=N] "
     "[max-subscribers=N] [user-segment=N] [presence=user|none] [presence-max=N] "
     "[backend=URL]; backend: the application's backend decides (docs/backend.md); "
     "presence=user tracks each join in "
     "Phoenix.Presence under the user id (presence_state, presence_diff), at most presence-max "
     "users per topic; rules replace the built-in policy "
     "(environment: rules separated by ';')"},
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
    {"tls-cert", "PHXD_TLS_CERT", NULL, OPT_STRING, CFG(tls_cert), "(none: plain TCP)", 0, 0, false,
     "PEM certificate chain: serve https:// and wss:// (TLS 1.2+) on the same port"},
    {"tls-key", "PHXD_TLS_KEY", NULL, OPT_STRING, CFG(tls_key), "(none)", 0, 0, false,
     "PEM private key of --tls-cert"},
    {"backend-url", "PHXD_BACKEND_URL", NULL, OPT_STRING, CFG(backend_url), "(none)", 0, 0, false,
     "the application's HTTP endpoint for backend callbacks (http:// or https://): rules with "
     "join=backend or events=backend, and --connect backend, POST their calls there"},
    {"backend-secret", "PHXD_BACKEND_SECRET", NULL, OPT_STRING, CFG(backend_secret),
     "(none: calls unsigned)", 0, 0, true,
     "signs every backend call: x-phxd-signature: sha256=<hex HMAC-SHA256 of the body>"},
    {"connect", "PHXD_CONNECT", NULL, OPT_CONNECT, CFG(backend_connect), "token", 0, 0, false,
     "token (verify params.token as a Phoenix.Token) or backend (a connect call to "
     "--backend-url, after the token check when a secret is set)"},
    {"backend-timeout-ms", "PHXD_BACKEND_TIMEOUT_MS", NULL, OPT_INT, CFG(backend_timeout_ms),
     "5000", 1, 600000, false, "a backend call without its whole answer by then fails"},
    {"backend-max-inflight", "PHXD_BACKEND_MAX_INFLIGHT", NULL, OPT_INT, CFG(backend_max_inflight),
     "256", 1, 100000, false, "backend calls in flight (keep-alive connections) per backend URL"},
    {"backend-max-queue", "PHXD_BACKEND_MAX_QUEUE", NULL, OPT_INT, CFG(backend_max_queue), "4096",
     0, 10000000, false,
     "backend calls waiting for a connection; beyond, a call fails at once (unavailable)"},
    {"backend-max-answer-bytes", "PHXD_BACKEND_MAX_ANSWER_BYTES", NULL, OPT_SIZE,
     CFG(backend_max_answer_bytes), "1048576", 1024, 1LL << 30, false,
     "largest backend answer (head and body); a larger one is a failed call"},
    {"backend-breaker-calls", "PHXD_BACKEND_BREAKER_CALLS", NULL, OPT_INT,
     CFG(backend_breaker_calls), "20", 1, 64, false,
     "the circuit breaker looks at this many recent calls of a backend URL"},
    {"backend-breaker-percent", "PHXD_BACKEND_BREAKER_PERCENT", NULL, OPT_INT,
     CFG(backend_breaker_percent), "50", 1, 100, false,
     "failed share of those calls (percent) that opens the breaker"},
    {"backend-breaker-open-ms", "PHXD_BACKEND_BREAKER_OPEN_MS", NULL, OPT_INT,
     CFG(backend_breaker_open_ms), "5000", 0, 3600000, false,
     "an open breaker fails calls at once this long, then one probe call decides (0: no "
     "breaker)"},
    {"backend-ca-file", "PHXD_BACKEND_CA_FILE", NULL, OPT_STRING, CFG(backend_ca_file),
     "(the system's CA certificates)", 0, 0, false, "CA bundle (PEM) for https:// backends"},
    {"max-waiting-msgs", "PHXD_MAX_WAITING_MSGS", NULL, OPT_INT, CFG(max_waiting_msgs), "1024", 1,
     1000000, false,
     "client messages of one channel that wait for its backend answer; beyond, error "
     "unavailable"},
    {"max-waiting-bytes", "PHXD_MAX_WAITING_BYTES", NULL, OPT_SIZE, CFG(max_waiting_bytes),
     "16777216", 1024, 1LL << 40, false,
     "bytes of client messages waiting for backend answers on the whole server"},
    {"api-listen", "PHXD_API_LISTEN", NULL, OPT_STRING, CFG(api_listen), "(the main listener)", 0,
     0, false, "HOST:PORT for the API, /healthz and /metrics (then not served on the main port)"},
    {"redis", "PHXD_REDIS_URL", NULL, OPT_STRING, CFG(redis_url), "(none: a single node)", 0, 0,
     true,
     "cluster over Redis: redis://[user:password@]host:port[/db], rediss://... (TLS), "
     "unix:///path or /path.sock; every phxd on the same Redis and prefix shares broadcasts and "
     "disconnects"},
    {"redis-ca-file", "PHXD_REDIS_CA_FILE", NULL, OPT_STRING, CFG(redis_ca_file),
     "(OpenSSL's default CA file)", 0, 0, false,
     "with a rediss:// --redis: CA bundle (PEM) Redis's certificate must chain to, read at "
     "startup; the certificate must also name the URL's host"},
    {"redis-tls-insecure", "PHXD_REDIS_TLS_INSECURE", NULL, OPT_BOOL, CFG(redis_tls_insecure),
     "false", 0, 0, false,
     "with a rediss:// --redis: accept any certificate (tests and development only: encrypted, "
     "but Redis is not authenticated)"},
    {"node-name", "PHXD_NODE_NAME", NULL, OPT_STRING, CFG(node_name), "(host name-pid)", 0, 0,
     false, "this node's name in the cluster (unique per process; /metrics shows it)"},
    {"redis-prefix", "PHXD_REDIS_PREFIX", NULL, OPT_STRING, CFG(redis_prefix), "phxd", 0, 0, false,
     "prefix of the Redis channels (<prefix>:t:<topic>); clusters apart use different ones"},
    {"phoenix-pubsub", "PHXD_PHOENIX_PUBSUB", NULL, OPT_STRING, CFG(phoenix_pubsub), "(none)", 0, 0,
     false,
     "with --redis: the Elixir app's Phoenix.PubSub name (MyApp.PubSub) using its Redis adapter "
     "on the same Redis; its Endpoint.broadcast reaches phxd's sockets and phxd's broadcasts "
     "reach its sockets"},
    {"reuse-port", "PHXD_REUSE_PORT", NULL, OPT_BOOL, CFG(reuse_port), "false", 0, 0, false,
     "SO_REUSEPORT on the listeners: several phxd processes share one port (a bare flag means "
     "true)"},
    {"presence-diff-ms", "PHXD_PRESENCE_DIFF_MS", NULL, OPT_INT, CFG(presence_diff_ms), "20", 0,
     60000, false,
     "a topic's presence joins and leaves within this window go out as one presence_diff (a "
     "join and its own leave cancel); 0: one diff per loop turn"},
    {"presence-max-keys", "PHXD_PRESENCE_MAX_KEYS", NULL, OPT_INT, CFG(presence_max_keys), "10000",
     0, INT_MAX, false,
     "presence keys (users) per topic; beyond, a join succeeds untracked (0: no cap)"},
    {"presence-max-metas", "PHXD_PRESENCE_MAX_METAS", NULL, OPT_INT, CFG(presence_max_metas), "32",
     0, INT_MAX, false,
     "presence metas per key (the same user's sockets); beyond, a join succeeds untracked (0: no "
     "cap)"},
    {"presence-max-meta-bytes", "PHXD_PRESENCE_MAX_META_BYTES", NULL, OPT_SIZE,
     CFG(presence_max_meta_bytes), "1024", 16, 1 << 20, false, "largest presence meta (JSON)"},
    {"presence-max-remote", "PHXD_PRESENCE_MAX_REMOTE", NULL, OPT_INT, CFG(presence_max_remote),
     "1000000", 0, INT_MAX, false,
     "with --redis: other nodes' presence metas held here, in all; beyond, their joins are "
     "dropped and counted (0: no cap)"},
    {"echo-path", "PHXD_ECHO_PATH", NULL, OPT_STRING, CFG(echo_path), "(none)", 0, 0, false,
     "serve a raw WebSocket echo at this path (a testing aid for RFC 6455 conformance runs)"},
    {"api-key", "PHXD_API_KEY", NULL, OPT_STRING, CFG(api_key), "(none: the API is off)", 0, 0,
     true, "bearer key of the HTTP API (POST /api/broadcast, /api/disconnect, GET /api/presence)"},
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
    {"longpoll-max-sessions-per-user", "PHXD_LONGPOLL_MAX_SESSIONS_PER_USER", NULL, OPT_INT,
     CFG(longpoll_max_sessions_per_user), "32", 1, 10000000, false,
     "LongPoll sessions of one user id at once (503 beyond)"},
    {"max-body-bytes", "PHXD_MAX_BODY_BYTES", NULL, OPT_SIZE, CFG(max_body_bytes), "8000000", 64,
     1LL << 31, false, "largest request body (LongPoll POST, API; 413 beyond)"},
    {"max-body-bytes-total", "PHXD_MAX_BODY_BYTES_TOTAL", NULL, OPT_SIZE, CFG(max_body_bytes_total),
     "67108864", 64, 1LL << 40, false,
     "request body bytes held by all connections together (503 beyond)"},
    {"max-connections", "PHXD_MAX_CONNECTIONS", NULL, OPT_INT, CFG(max_connections),
     "(file descriptor limit - 64)", 0, INT_MAX, false,
     "open connections at most; beyond, new ones get 503 before any upgrade"},
    {"expire-sockets", "PHXD_EXPIRE_SOCKETS", NULL, OPT_BOOL, CFG(expire_sockets), "false", 0, 0,
     false,
     "close a socket with 4001 when its token expires (signed_at + max_age), after a "
     "phx_token_expiring push; the client may push access_token to extend it (a bare flag "
     "means true)"},
    {"expiry-warning-s", "PHXD_EXPIRY_WARNING_S", NULL, OPT_INT, CFG(expiry_warning_s), "30", 0,
     INT_MAX, false, "seconds before a token's expiry that phx_token_expiring is pushed"},
    {"refresh-interval-s", "PHXD_REFRESH_INTERVAL_S", NULL, OPT_INT, CFG(refresh_interval_s), "5",
     0, INT_MAX, false, "an access_token push is looked at once per this many seconds per socket"},
    {"refuse-mode", "PHXD_REFUSE_MODE", NULL, OPT_REFUSE_MODE, CFG(refuse_close), "status", 0, 0,
     false,
     "a refused WebSocket connect: status (HTTP 403, as Phoenix) or close (upgrade, then close "
     "4003 with the reason: invalid token, expired token, missing token, unauthorized)"},
    {"drain-batch", "PHXD_DRAIN_BATCH", NULL, OPT_INT, offsetof(phxd_options_t, drain_batch),
     "10000", 1, INT_MAX, false, "sockets closed (code 1012) per drain step on SIGTERM"},
    {"drain-interval-ms", "PHXD_DRAIN_INTERVAL_MS", NULL, OPT_INT,
     offsetof(phxd_options_t, drain_interval_ms), "2000", 0, INT_MAX, false,
     "pause between drain steps (SIGINT drains in one step)"},
    {"drain-timeout-ms", "PHXD_DRAIN_TIMEOUT_MS", NULL, OPT_INT,
     offsetof(phxd_options_t, drain_timeout_ms), "30000", 0, INT_MAX, false,
     "whatever is still open then is closed and phxd exits"},
    {"demo-page", "PHXD_DEMO_PAGE", NULL, OPT_BOOL, offsetof(phxd_options_t, demo_page),
     "(true with the demo secret, else false)", 0, 0, false,
     "serve the demo chat page at / and phoenix.js at /phoenix.js; off, both are 404 (a bare "
     "flag means true)"},
    {"phoenix-js", "PHXD_PHOENIX_JS", NULL, OPT_STRING, offsetof(phxd_options_t, phoenix_js),
     "(DATADIR/phxd/phoenix.min.js, installed with phxd)", 0, 0, false,
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
    case OPT_REFUSE_MODE:
        if (strcmp(value, "status") == 0 || strcmp(value, "close") == 0) {
            *(bool *)(base + opt->offset) = strcmp(value, "close") == 0;
            return 0;
        }
        snprintf(err, PHX_ERR_LEN, "%s: refuse-mode must be status or close, got \"%s\"", source,
                 value);
        return PHX_ERR_INVALID;
    case OPT_CONNECT:
        if (strcmp(value, "token") == 0 || strcmp(value, "backend") == 0) {
            *(bool *)(base + opt->offset) = strcmp(value, "backend") == 0;
            return 0;
        }
        snprintf(err, PHX_ERR_LEN, "%s: connect must be token or backend, got \"%s\"", source,
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
    case OPT_CONFIG:
    case OPT_RULES:
        break; /* set_option handles them */
    }
    return PHX_ERR_INVALID;
}

static const char *real_getenv(const char *name)
{
    return getenv(name);
}

/* ---- sources ---- */

_Static_assert(NOPTIONS <= PHXD_MAX_OPTIONS, "raise PHXD_MAX_OPTIONS");

/* "FILE:LINE", "environment VAR" or "option --name" (errors), or with
 * `short_form` "env VAR" and "flag --name" (check-config). */
static void source_text(const phxd_options_t *o, const phxd_source_t *src, bool short_form,
                        char *out, size_t len)
{
    switch (src->kind) {
    case PHXD_SRC_FILE:
        /* A long path is cut so that the message after it still fits. */
        snprintf(out, len, "%.100s:%u", o->conf.path, src->line);
        break;
    case PHXD_SRC_ENV:
        snprintf(out, len, "%s %s", short_form ? "env" : "environment", src->name);
        break;
    case PHXD_SRC_FLAG:
        snprintf(out, len, "%s --%s", short_form ? "flag" : "option", src->name);
        break;
    default:
        snprintf(out, len, "default");
    }
}

/* Writes "where: why" into err (PHX_ERR_LEN bytes), cutting `why` if need
 * be; `where` is short (a source_text). */
static void prefixed_error(char *err, const char *where, const char *why)
{
    snprintf(err, PHX_ERR_LEN, "%s: ", where);
    size_t n = strlen(err), w = strlen(why);
    if (w > PHX_ERR_LEN - 1 - n)
        w = PHX_ERR_LEN - 1 - n;
    memcpy(err + n, why, w);
    err[n + w] = '\0';
}

static const opt_t *find_option(const char *name, size_t len)
{
    for (size_t k = 0; k < NOPTIONS; k++)
        if (strlen(options[k].name) == len && strncmp(options[k].name, name, len) == 0)
            return &options[k];
    return NULL;
}

static const opt_t *option_of_type(opt_type_t type)
{
    for (size_t k = 0; k < NOPTIONS; k++)
        if (options[k].type == type)
            return &options[k];
    return NULL;
}

/* Channel rule texts waiting to be parsed, all from one source: a source of
 * higher precedence replaces what lower ones gave. */
typedef struct rule_texts {
    const char **text;
    phxd_source_t *src;
    size_t count;
} rule_texts_t;

static void rule_text_add(rule_texts_t *rt, const char *text, phxd_source_t src)
{
    if (rt->count > 0 && rt->src[0].kind < src.kind)
        rt->count = 0;
    rt->text[rt->count] = text;
    rt->src[rt->count++] = src;
}

/* Validates `value` for `opt` and stores it, noting where it came from. */
static int set_option(phxd_options_t *o, const opt_t *opt, const char *value, phxd_source_t src,
                      rule_texts_t *rt, char *err)
{
    if (opt->type == OPT_RULES) {
        rule_text_add(rt, value, src);
        return 0;
    }
    char where[128];
    source_text(o, &src, false, where, sizeof(where));
    if (opt->type == OPT_CONFIG) {
        if (src.kind == PHXD_SRC_FILE) {
            snprintf(err, PHX_ERR_LEN, "%s: config cannot be set inside a config file", where);
            return PHX_ERR_INVALID;
        }
        o->config_path = value;
    } else {
        int rv = apply(o, opt, value, where, err);
        if (rv != 0)
            return rv;
    }
    o->sources[opt - options] = src;
    return 0;
}

/* The flag at argv[*i]: its option and value (*i moves past a separate
 * value). *opt is NULL for --help. */
static int read_flag(int argc, char **argv, int *i, const opt_t **opt, const char **value,
                     char *err)
{
    const char *arg = argv[*i];
    *opt = NULL;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
        return 0;
    if (strncmp(arg, "--", 2) != 0) {
        snprintf(err, PHX_ERR_LEN, "unexpected argument \"%s\" (see --help)", arg);
        return PHX_ERR_INVALID;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    if ((*opt = find_option(name, nlen)) == NULL) {
        snprintf(err, PHX_ERR_LEN, "unknown option --%.*s (see --help)", (int)nlen, name);
        return PHX_ERR_INVALID;
    }
    *value = eq ? eq + 1 : NULL;
    if (*value == NULL && (*opt)->type == OPT_BOOL &&
        (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)) {
        *value = "true"; /* a bare boolean flag: --expire-sockets */
        return 0;
    }
    if (*value == NULL) {
        if (*i + 1 >= argc) {
            snprintf(err, PHX_ERR_LEN, "option --%s needs a value", (*opt)->name);
            return PHX_ERR_INVALID;
        }
        *value = argv[++*i];
    }
    return 0;
}

static int apply_file(phxd_options_t *o, rule_texts_t *rt, char *err)
{
    uint32_t first_line[NOPTIONS] = {0};
    for (size_t i = 0; i < o->conf.count; i++) {
        phx_conf_entry_t *e = &o->conf.entries[i];
        const opt_t *opt = find_option(e->key, strlen(e->key));
        if (opt == NULL) {
            snprintf(err, PHX_ERR_LEN, "%s:%u: unknown key \"%s\" (see phxd --help)", o->conf.path,
                     e->line, e->key);
            return PHX_ERR_INVALID;
        }
        uint32_t *first = &first_line[opt - options];
        if (opt->type != OPT_RULES && *first != 0) {
            snprintf(err, PHX_ERR_LEN, "%s:%u: duplicate key %s (first set on line %u)",
                     o->conf.path, e->line, e->key, *first);
            return PHX_ERR_INVALID;
        }
        *first = e->line;
        /* `name =` with nothing after it keeps the default (what
         * check-config prints for an option that is not set). */
        if (e->value[0] == '\0' && opt->type != OPT_CONFIG)
            continue;
        /* Rules keep their quotes: the rule parser splits words itself. */
        const char *why;
        if (opt->type != OPT_RULES && phx_conf_unquote(e->value, &why) != 0) {
            snprintf(err, PHX_ERR_LEN, "%s:%u: %s", o->conf.path, e->line, why);
            return PHX_ERR_INVALID;
        }
        phxd_source_t src = {PHXD_SRC_FILE, e->line, NULL};
        int rv = set_option(o, opt, e->value, src, rt, err);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int apply_env(phxd_options_t *o, const char *(*get_env)(const char *), rule_texts_t *rt,
                     char *err)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *opt = &options[i];
        if (opt->type == OPT_CONFIG)
            continue; /* already read */
        /* The phxd-specific variable wins over the generic one. */
        const char *v = get_env(opt->env);
        const char *name = opt->env;
        if ((v == NULL || *v == '\0') && opt->env2) {
            v = get_env(opt->env2);
            name = opt->env2;
        }
        if (v == NULL || *v == '\0')
            continue;
        phxd_source_t src = {PHXD_SRC_ENV, 0, name};
        int rv = set_option(o, opt, v, src, rt, err);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int apply_flags(phxd_options_t *o, int argc, char **argv, int first, rule_texts_t *rt,
                       char *err)
{
    for (int i = first; i < argc; i++) {
        const opt_t *opt;
        const char *value;
        int rv = read_flag(argc, argv, &i, &opt, &value, err);
        if (rv != 0)
            return rv;
        if (opt == NULL || opt->type == OPT_CONFIG)
            continue; /* --help never gets here; --config is already read */
        phxd_source_t src = {PHXD_SRC_FLAG, 0, opt->name};
        if ((rv = set_option(o, opt, value, src, rt, err)) != 0)
            return rv;
    }
    return 0;
}

static int build_rules(phxd_options_t *o, const rule_texts_t *rt, char *err)
{
    for (size_t i = 0; i < rt->count; i++) {
        char why[PHX_ERR_LEN], where[128];
        size_t before = o->rules.count;
        int rv = phx_rules_parse(&o->rules, rt->text[i], why);
        if (rv != 0) {
            source_text(o, &rt->src[i], false, where, sizeof(where));
            prefixed_error(err, where, why);
            return rv == PHX_ERR_NOMEM ? rv : PHX_ERR_INVALID;
        }
        phxd_source_t *s = phx_realloc(o->rule_sources, o->rules.count * sizeof(*s));
        if (s == NULL) {
            snprintf(err, PHX_ERR_LEN, "out of memory");
            return PHX_ERR_NOMEM;
        }
        o->rule_sources = s;
        for (size_t k = before; k < o->rules.count; k++)
            s[k] = rt->src[i];
    }
    /* A backend rule needs a URL: its own or --backend-url. */
    bool has_url = o->cfg.backend_url && o->cfg.backend_url[0];
    for (size_t k = 0; k < o->rules.count; k++) {
        const phx_rule_t *r = &o->rules.items[k];
        if (phx_rule_uses_backend(r) && r->backend_url == NULL && !has_url) {
            char where[128];
            source_text(o, &o->rule_sources[k], false, where, sizeof(where));
            prefixed_error(err, where,
                           "a rule with join=backend or events=backend needs "
                           "--backend-url or backend=URL");
            return PHX_ERR_INVALID;
        }
    }
    if (o->cfg.backend_connect && !has_url) {
        snprintf(err, PHX_ERR_LEN, "--connect backend needs --backend-url");
        return PHX_ERR_INVALID;
    }
    return 0;
}

/* phx_server_new parses check-origin too; parsing it here lets the error
 * name where the value came from. */
static int check_origin_syntax(const phxd_options_t *o, char *err)
{
    char why[PHX_ERR_LEN], where[128];
    phx_origin_policy_t *p = phx_origin_parse(o->cfg.check_origin, o->cfg.url_host, why);
    if (p != NULL) {
        phx_origin_free(p);
        return 0;
    }
    const opt_t *opt = find_option("check-origin", 12);
    source_text(o, &o->sources[opt - options], false, where, sizeof(where));
    prefixed_error(err, where, why);
    return PHX_ERR_INVALID;
}

int phxd_options_parse(phxd_options_t *o, int argc, char **argv, int first,
                       const char *(*get_env)(const char *), bool *help, char *err)
{
    if (get_env == NULL)
        get_env = real_getenv;
    *help = false;
    /* A first pass over the flags: --help stops everything, and --config
     * decides which file is read before the environment and the flags. */
    const opt_t *config_opt = option_of_type(OPT_CONFIG);
    const char *config = NULL;
    phxd_source_t config_src = {PHXD_SRC_FLAG, 0, config_opt->name};
    for (int i = first; i < argc; i++) {
        const opt_t *opt;
        const char *value;
        int rv = read_flag(argc, argv, &i, &opt, &value, err);
        if (rv != 0)
            return rv;
        if (opt == NULL) {
            *help = true;
            return 0;
        }
        if (opt->type == OPT_CONFIG)
            config = value;
    }
    if (config == NULL && (config = get_env(config_opt->env)) != NULL && *config != '\0')
        config_src = (phxd_source_t){PHXD_SRC_ENV, 0, config_opt->env};
    if (config != NULL && *config != '\0') {
        int rv = set_option(o, config_opt, config, config_src, NULL, err);
        if (rv == 0 && (rv = phx_conf_load(&o->conf, config, err)) != 0)
            return rv == PHX_ERR_NOMEM ? rv : PHX_ERR_INVALID;
    }
    /* Room for every rule text a source can give. */
    size_t cap = o->conf.count + 1 + (size_t)(argc > first ? argc - first : 0);
    rule_texts_t rt = {phx_malloc(cap * sizeof(char *)), phx_malloc(cap * sizeof(phxd_source_t)),
                       0};
    int rv = PHX_ERR_NOMEM;
    if (rt.text == NULL || rt.src == NULL)
        snprintf(err, PHX_ERR_LEN, "out of memory");
    else if ((rv = apply_file(o, &rt, err)) == 0 && (rv = apply_env(o, get_env, &rt, err)) == 0 &&
             (rv = apply_flags(o, argc, argv, first, &rt, err)) == 0)
        rv = build_rules(o, &rt, err);
    phx_free(rt.text);
    phx_free(rt.src);
    if (rv != 0)
        return rv;
    /* --connect backend without a secret: the backend alone admits
     * sockets (no demo secret, no token check). */
    if ((o->cfg.secret_key_base == NULL || o->cfg.secret_key_base[0] == '\0') &&
        !o->cfg.backend_connect) {
        o->cfg.secret_key_base = phxd_demo_secret;
        o->is_demo_secret = true;
    }
    /* The demo page is on with the demo secret, off with a real one,
     * unless asked for either way. */
    const opt_t *demo_opt = find_option("demo-page", 9);
    if (o->sources[demo_opt - options].kind == PHXD_SRC_DEFAULT)
        o->demo_page = o->is_demo_secret;
    if (o->cfg.queue_high_bytes > o->cfg.queue_limit_bytes) {
        snprintf(err, PHX_ERR_LEN, "queue-high-bytes must not exceed queue-limit-bytes");
        return PHX_ERR_INVALID;
    }
    if (o->cfg.socket_path[0] != '/') {
        snprintf(err, PHX_ERR_LEN, "socket-path must start with '/', got \"%s\"",
                 o->cfg.socket_path);
        return PHX_ERR_INVALID;
    }
    if (o->cfg.phoenix_pubsub && o->cfg.phoenix_pubsub[0] &&
        (o->cfg.redis_url == NULL || o->cfg.redis_url[0] == '\0')) {
        snprintf(err, PHX_ERR_LEN, "phoenix-pubsub needs --redis (the Redis its adapter uses)");
        return PHX_ERR_INVALID;
    }
    bool is_rediss = o->cfg.redis_url && strncmp(o->cfg.redis_url, "rediss://", 9) == 0;
    if (!is_rediss &&
        ((o->cfg.redis_ca_file && o->cfg.redis_ca_file[0]) || o->cfg.redis_tls_insecure)) {
        snprintf(err, PHX_ERR_LEN, "%s applies to TLS only: it needs a rediss:// --redis",
                 o->cfg.redis_tls_insecure ? "redis-tls-insecure" : "redis-ca-file");
        return PHX_ERR_INVALID;
    }
    return check_origin_syntax(o, err);
}

bool phxd_host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

/* Plug refuses a secret_key_base under 64 bytes ("cookie store expects
 * conn.secret_key_base to be at least 64 bytes"); mix phx.gen.secret makes
 * 64. */
#define PHXD_MIN_SECRET_BYTES 64

int phxd_options_check_secret(const phxd_options_t *o, char *err)
{
    if (o->is_demo_secret) {
        if (phxd_host_is_loopback(o->cfg.host))
            return 0;
        snprintf(err, PHX_ERR_LEN,
                 "host %.64s is not loopback and no secret-key-base (or SECRET_KEY_BASE) is "
                 "given: the public demo secret would let anyone sign tokens; pass your app's "
                 "secret or listen on 127.0.0.1 or ::1",
                 o->cfg.host);
        return PHX_ERR_INVALID;
    }
    if (o->cfg.secret_key_base == NULL)
        return 0; /* --connect backend alone: no tokens at all */
    size_t len = strlen(o->cfg.secret_key_base);
    if (len >= PHXD_MIN_SECRET_BYTES)
        return 0;
    const opt_t *opt = find_option("secret-key-base", 15);
    char where[128];
    source_text(o, &o->sources[opt - options], false, where, sizeof(where));
    snprintf(err, PHX_ERR_LEN,
             "%s: secret-key-base must be at least %d bytes, as Phoenix requires (mix "
             "phx.gen.secret makes one), got %zu",
             where, PHXD_MIN_SECRET_BYTES, len);
    return PHX_ERR_INVALID;
}

void phxd_options_dispose(phxd_options_t *o)
{
    phx_conf_dispose(&o->conf);
    phx_rules_dispose(&o->rules);
    phx_free(o->rule_sources);
    o->rule_sources = NULL;
}

const phx_rules_t *phxd_options_rules(const phxd_options_t *o)
{
    return o->rules.count ? &o->rules : phx_rules_default();
}

/* ---- check-config ---- */

/* Appends the effective value of `opt` as the config file would spell it;
 * secrets are masked. Returns 0 or PHX_ERR_NOMEM. */
static int format_value(const phxd_options_t *o, const opt_t *opt, phx_buf_t *b)
{
    const char *base = (const char *)o;
    switch (opt->type) {
    case OPT_STRING:
    case OPT_DIGEST:
    case OPT_CONFIG: {
        const char *v = *(const char *const *)(base + opt->offset);
        if (v == NULL)
            return 0;
        /* The demo secret prints as unset: it is what an unset secret means. */
        if (opt->is_secret)
            return v == phxd_demo_secret ? 0 : phx_buf_append_str(b, "********");
        return phx_conf_append_quoted(b, v);
    }
    case OPT_INT:
        return phx_buf_printf(b, "%d", *(const int *)(base + opt->offset));
    case OPT_SIZE:
        return phx_buf_printf(b, "%zu", *(const size_t *)(base + opt->offset));
    case OPT_MAX_AGE: {
        const phx_max_age_t *m = (const phx_max_age_t *)(base + opt->offset);
        if (m->kind == PHX_MAX_AGE_INFINITY)
            return phx_buf_append_str(b, "infinity");
        return m->kind == PHX_MAX_AGE_SECONDS ? phx_buf_printf(b, "%.17g", m->seconds) : 0;
    }
    case OPT_BOOL:
        return phx_buf_append_str(b, *(const bool *)(base + opt->offset) ? "true" : "false");
    case OPT_REFUSE_MODE:
        return phx_buf_append_str(b, *(const bool *)(base + opt->offset) ? "close" : "status");
    case OPT_CONNECT:
        return phx_buf_append_str(b, *(const bool *)(base + opt->offset) ? "backend" : "token");
    case OPT_LOG_LEVEL:
        return phx_buf_append_str(b, phx_log_level_name(*(const int *)(base + opt->offset)));
    case OPT_RULES:
        break;
    }
    return 0;
}

static void print_line(FILE *out, const char *name, const phx_buf_t *value, const char *comment)
{
    int n = fprintf(out, "%s = %.*s", name, (int)value->len, (const char *)value->data);
    fprintf(out, "%*s# %s\n", n < 38 ? 40 - n : 2, "", comment);
}

void phxd_options_print(const phxd_options_t *o, FILE *out)
{
    phx_buf_t v = {0};
    char where[PHX_ERR_LEN + 80], comment[PHX_ERR_LEN + 200];
    fprintf(out, "# phxd %s: the effective configuration (secrets masked)\n", PHX_VERSION);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const opt_t *opt = &options[i];
        if (opt->type == OPT_CONFIG) {
            /* Not an option a config file may set: a comment. */
            source_text(o, &o->sources[i], true, where, sizeof(where));
            if (o->config_path)
                fprintf(out, "# config file: %s (%s)\n", o->config_path, where);
            continue;
        }
        if (opt->type == OPT_RULES) {
            const phx_rules_t *rules = phxd_options_rules(o);
            for (size_t k = 0; k < rules->count; k++) {
                v.len = 0;
                if (phx_rule_format(&rules->items[k], &v) != 0)
                    break;
                if (rules == &o->rules)
                    source_text(o, &o->rule_sources[k], true, where, sizeof(where));
                else
                    snprintf(where, sizeof(where), "default (the built-in policy)");
                print_line(out, opt->name, &v, where);
            }
            continue;
        }
        v.len = 0;
        if (format_value(o, opt, &v) != 0)
            break;
        source_text(o, &o->sources[i], true, where, sizeof(where));
        if (o->sources[i].kind == PHXD_SRC_DEFAULT && v.len == 0)
            snprintf(comment, sizeof(comment), "%s: %s", where,
                     opt->offset == CFG(secret_key_base) && o->is_demo_secret
                         ? "(the public demo secret)"
                         : opt->def);
        else if (opt->is_secret && v.len)
            snprintf(comment, sizeof(comment), "%s (masked)", where);
        else
            snprintf(comment, sizeof(comment), "%s", where);
        print_line(out, opt->name, &v, comment);
    }
    phx_buf_dispose(&v);
}

/* ---- help ---- */

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
            "usage: phxd [options]                  run the server\n"
            "       phxd check-config [options]     print the effective configuration (secrets\n"
            "                                       masked) and exit 0, or one error line, exit 2\n"
            "       phxd publish [...] TOPIC EVENT [JSON]  broadcast through the HTTP API\n"
            "       phxd publish [...] --disconnect ID     close the sockets with that id\n"
            "                                       (phxd publish --help)\n"
            "       phxd presence [...] TOPIC       who is present on TOPIC, through the API\n"
            "                                       (phxd presence --help)\n"
            "       phxd token sign|verify ...      mint or check a Phoenix.Token\n"
            "                                       (phxd token --help)\n"
            "       phxd --version\n\n"
            "Precedence: flag > environment > config file > default. In the config file\n"
            "(--config FILE or PHXD_CONFIG) each option is a line `name = value` with the names\n"
            "below (`port = 4000`); `#` starts a comment; values may be quoted (\"...\" with \\\"\n"
            "and \\\\ escapes, or '...'); `channel` may repeat, every other name at most once.\n\n"
            "Channel rules (--channel, repeatable; the first matching rule wins; when any is\n"
            "given the built-in policy is replaced and other topics get \"unmatched topic\"):\n"
            "  PATTERN            exact topic, or prefix ending in '*' (\"room:*\")\n"
            "  join=any           any connected socket (default)\n"
            "  join=user          only the socket whose user id is the part matched by '*'\n"
            "                     (or ':'-separated segment N with user-segment=N)\n"
            "  join=none          nobody\n"
            "  join=backend       a join call to the backend decides (docs/backend.md)\n"
            "  events=ACTION      broadcast (default: to all, sender included, reply ok {}),\n"
            "                     broadcast_from (to the others), reply (ok with the payload),\n"
            "                     refuse (error {\"reason\":\"unauthorized\"}), backend (an\n"
            "                     event call to the backend answers)\n"
            "  event:NAME=ACTION  the same for one event (event:ping=reply)\n"
            "  max-payload-bytes=N  error {\"reason\":\"payload too large\"} beyond\n"
            "  max-subscribers=N  joins beyond N subscribers of a topic are refused\n"
            "  user-segment=N     join=user compares with the N-th ':'-separated part\n"
            "  presence=user      track each join in Presence under the user id\n"
            "  presence-max=N     at most N users tracked per topic; beyond, the join\n"
            "                     succeeds untracked (reply {\"presence\":\"not tracked\"})\n"
            "  backend=URL        this rule's backend calls go to URL (not --backend-url)\n"
            "  example: --channel 'private:* join=user events=broadcast_from'\n\n"
            "options:\n");
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

bool phxd_option_doc(size_t i, phxd_option_doc_t *doc)
{
    if (i >= NOPTIONS)
        return false;
    const opt_t *opt = &options[i];
    *doc = (phxd_option_doc_t){opt->name, opt->env, opt->env2, opt->def, opt->help};
    return true;
}
