/* main.c: phxd-bench, the load generator of phxd. Parses the options,
 * raises the descriptor limit, mints one Phoenix.Token per socket with
 * libphx's token module, runs the scenario on one libuv loop and prints the
 * report. Speaks only the Phoenix protocol, so it measures any
 * Phoenix-compatible server. */
#include "bench.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "etf.h"
#include "phx.h"
#include "token.h"

#define READ_BUF_BYTES (64 * 1024)
#define MAX_PAYLOAD_BYTES 65536
#define MAX_WINDOW 1024
#define SPARE_FDS 32 /* stdio, the loop's epoll and signal fds, libuv's spare */

static const char usage_text[] =
    "usage: phxd-bench [options]\n"
    "Opens, authenticates and joins many Phoenix sockets against any Phoenix-compatible server\n"
    "and reports throughput, latency percentiles and the server's memory per socket.\n"
    "A human summary goes to stderr, one JSON object to stdout.\n"
    "\n"
    "  --url URL              socket endpoint, ws://host:port/socket (default "
    "ws://127.0.0.1:4000/socket);\n"
    "                         repeat it to spread the sockets round-robin over several servers\n"
    "                         (socket i goes to URL i mod the number of URLs, at most 16)\n"
    "  --publish-url URL      fanout: the server the publisher joins and pushes to (default:\n"
    "                         the first --url); with several servers, figures also per server\n"
    "  --secret-key-base K    mint one token per socket (user id = --first-id + index);\n"
    "                         env SECRET_KEY_BASE when absent\n"
    "  --salt S               token salt (default \"user socket\")\n"
    "  --token T              use this token for every socket instead (no user:<id> joins)\n"
    "  --params QS            extra query parameters, URL-encoded (a=1&b=2)\n"
    "  --scenario NAME        hold | fanout | echo | churn | presence | backend (default hold)\n"
    "                         presence: every socket joins --topic (a presence topic) and\n"
    "                         keeps the set of users present; measures when every view holds\n"
    "                         all of them and the presence messages each socket received\n"
    "                         backend: every socket joins --topic and pushes --event as echo\n"
    "                         pushes pings, for a channel whose events a backend answers\n"
    "                         (phxd: events=backend); reports callbacks/s, the round trip,\n"
    "                         the backend's own time and the round trip minus it\n"
    "  --sockets N            sockets (churn: concurrent workers) (default 100)\n"
    "  --topic T              the shared room (default room:bench)\n"
    "  --event E              event the fanout publisher and backend sockets push (default bench)\n"
    "  --rate R               fanout: broadcasts/s (default 5; 0 = next when the last arrived)\n"
    "                         echo, backend: pushes/s overall (default 0 = each socket keeps\n"
    "                         --window out)\n"
    "                         churn: cycles/s (default 0 = as fast as the workers go)\n"
    "  --duration S           seconds of the measured phase (default 10; presence: the\n"
    "                         longest wait for every view to complete after the ramp)\n"
    "  --server-pid PID       read the server's RSS and CPU time from /proc\n"
    "  --source-ips RANGE     bind sockets to rotating source addresses, e.g. 127.0.0.2-127.0.0.9\n"
    "  --vsn V                protocol version sent: 2.0.0 (default) or 1.0.0\n"
    "  --concurrency N        handshakes in flight while ramping up (default 500)\n"
    "  --window N             echo, backend: pushes outstanding per socket (default 1)\n"
    "  --inflight N           the same as --window\n"
    "  --backend-listen H:P   backend: run the bench's own minimal backend on HOST:PORT (its\n"
    "                         own thread); point the server's backend URL at it\n"
    "  --backend-delay-us US  the built-in backend answers each call US microseconds after\n"
    "                         its first byte arrived (default 0)\n"
    "  --payload-bytes N      padding added to fanout and echo payloads (default 0)\n"
    "  --timeout-ms MS        limit of one step: connect+join, a reply, a close (default 10000)\n"
    "  --heartbeat-ms MS      Phoenix heartbeat interval per socket (default 30000)\n"
    "  --drain-ms MS          wait for stragglers after the measured phase (default 5000)\n"
    "  --settle-ms MS         pause before sampling the server's memory (default 1000)\n"
    "  --first-id N           user id of the first socket (default 1)\n"
    "  --quiet                no progress lines\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 when every socket joined and nothing failed, 1 when errors were counted,\n"
    "2 for bad options or setup failures.\n";

enum {
    OPT_URL = 256,
    OPT_PUBLISH_URL,
    OPT_SECRET,
    OPT_SALT,
    OPT_TOKEN,
    OPT_PARAMS,
    OPT_SCENARIO,
    OPT_SOCKETS,
    OPT_TOPIC,
    OPT_EVENT,
    OPT_RATE,
    OPT_DURATION,
    OPT_PID,
    OPT_SOURCE_IPS,
    OPT_VSN,
    OPT_CONCURRENCY,
    OPT_WINDOW,
    OPT_BACKEND_LISTEN,
    OPT_BACKEND_DELAY,
    OPT_PAYLOAD,
    OPT_TIMEOUT,
    OPT_HEARTBEAT,
    OPT_DRAIN,
    OPT_SETTLE,
    OPT_FIRST_ID,
    OPT_QUIET,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"publish-url", required_argument, NULL, OPT_PUBLISH_URL},
    {"secret-key-base", required_argument, NULL, OPT_SECRET},
    {"salt", required_argument, NULL, OPT_SALT},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"params", required_argument, NULL, OPT_PARAMS},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"sockets", required_argument, NULL, OPT_SOCKETS},
    {"topic", required_argument, NULL, OPT_TOPIC},
    {"event", required_argument, NULL, OPT_EVENT},
    {"rate", required_argument, NULL, OPT_RATE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"server-pid", required_argument, NULL, OPT_PID},
    {"source-ips", required_argument, NULL, OPT_SOURCE_IPS},
    {"vsn", required_argument, NULL, OPT_VSN},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"inflight", required_argument, NULL, OPT_WINDOW},
    {"backend-listen", required_argument, NULL, OPT_BACKEND_LISTEN},
    {"backend-delay-us", required_argument, NULL, OPT_BACKEND_DELAY},
    {"payload-bytes", required_argument, NULL, OPT_PAYLOAD},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"drain-ms", required_argument, NULL, OPT_DRAIN},
    {"settle-ms", required_argument, NULL, OPT_SETTLE},
    {"first-id", required_argument, NULL, OPT_FIRST_ID},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "phxd-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(phxd-bench --help lists the options)\n");
    va_end(ap);
    return 2;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

static int parse_opts(int argc, char **argv, phx_bench_opts_t *o)
{
    *o = (phx_bench_opts_t){
        .url = "ws://127.0.0.1:4000/socket",
        .salt = "user socket",
        .topic = "room:bench",
        .event = "bench",
        .vsn = "2.0.0",
        .scenario = PHX_BENCH_HOLD,
        .sockets = 100,
        .rate = -1,
        .duration_s = 10,
        .concurrency = 500,
        .window = 1,
        .timeout_ms = 10000,
        .heartbeat_ms = 30000,
        .drain_ms = 5000,
        .settle_ms = 1000,
        .first_id = 1,
    };
    int ch;
    uint64_t u;
    while ((ch = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (ch) {
        case OPT_URL:
            if (o->n_urls == PHX_BENCH_MAX_URLS)
                return usage_error("at most %d --url", PHX_BENCH_MAX_URLS);
            o->urls[o->n_urls++] = optarg;
            break;
        case OPT_PUBLISH_URL:
            o->publish_url = optarg;
            break;
        case OPT_SECRET:
            o->secret_key_base = optarg;
            break;
        case OPT_SALT:
            o->salt = optarg;
            break;
        case OPT_TOKEN:
            o->token = optarg;
            break;
        case OPT_PARAMS:
            o->params = optarg;
            break;
        case OPT_SCENARIO:
            if (strcmp(optarg, "hold") == 0)
                o->scenario = PHX_BENCH_HOLD;
            else if (strcmp(optarg, "fanout") == 0)
                o->scenario = PHX_BENCH_FANOUT;
            else if (strcmp(optarg, "echo") == 0)
                o->scenario = PHX_BENCH_ECHO;
            else if (strcmp(optarg, "churn") == 0)
                o->scenario = PHX_BENCH_CHURN;
            else if (strcmp(optarg, "presence") == 0)
                o->scenario = PHX_BENCH_PRESENCE;
            else if (strcmp(optarg, "backend") == 0)
                o->scenario = PHX_BENCH_BACKEND;
            else
                return usage_error(
                    "bad --scenario '%s' (hold, fanout, echo, churn, presence or backend)", optarg);
            break;
        case OPT_SOCKETS:
            if (!parse_u64(optarg, 1, 10000000, &u))
                return usage_error("bad --sockets '%s'", optarg);
            o->sockets = (uint32_t)u;
            break;
        case OPT_TOPIC:
            o->topic = optarg;
            break;
        case OPT_EVENT:
            o->event = optarg;
            break;
        case OPT_RATE:
            if (!parse_double(optarg, 0, 1e9, &o->rate))
                return usage_error("bad --rate '%s'", optarg);
            break;
        case OPT_DURATION:
            if (!parse_double(optarg, 0, 1e7, &o->duration_s))
                return usage_error("bad --duration '%s' (seconds)", optarg);
            break;
        case OPT_PID:
            if (!parse_u64(optarg, 1, INT32_MAX, &u))
                return usage_error("bad --server-pid '%s'", optarg);
            o->server_pid = (int)u;
            break;
        case OPT_SOURCE_IPS:
            o->source_ips = optarg;
            break;
        case OPT_VSN:
            if (strncmp(optarg, "1.", 2) == 0)
                o->is_v1 = true;
            else if (strncmp(optarg, "2.", 2) == 0)
                o->is_v1 = false;
            else
                return usage_error("bad --vsn '%s' (1.0.0 or 2.0.0)", optarg);
            if (!phx_bench_json_safe(optarg) || strpbrk(optarg, " &#") != NULL)
                return usage_error("bad --vsn '%s'", optarg);
            o->vsn = optarg;
            break;
        case OPT_CONCURRENCY:
            if (!parse_u64(optarg, 1, 1000000, &u))
                return usage_error("bad --concurrency '%s'", optarg);
            o->concurrency = (uint32_t)u;
            break;
        case OPT_WINDOW:
            if (!parse_u64(optarg, 1, MAX_WINDOW, &u))
                return usage_error("bad --window '%s' (1-1024)", optarg);
            o->window = (uint32_t)u;
            break;
        case OPT_BACKEND_LISTEN:
            o->backend_listen = optarg;
            break;
        case OPT_BACKEND_DELAY:
            if (!parse_u64(optarg, 0, 60000000, &u))
                return usage_error("bad --backend-delay-us '%s' (0-60000000)", optarg);
            o->backend_delay_us = (uint32_t)u;
            break;
        case OPT_PAYLOAD:
            if (!parse_u64(optarg, 0, MAX_PAYLOAD_BYTES, &u))
                return usage_error("bad --payload-bytes '%s' (0-65536)", optarg);
            o->payload_bytes = (uint32_t)u;
            break;
        case OPT_TIMEOUT:
            if (!parse_u64(optarg, 1, 3600000, &u))
                return usage_error("bad --timeout-ms '%s'", optarg);
            o->timeout_ms = (uint32_t)u;
            break;
        case OPT_HEARTBEAT:
            if (!parse_u64(optarg, 1000, 3600000, &u))
                return usage_error("bad --heartbeat-ms '%s' (1000 or more)", optarg);
            o->heartbeat_ms = (uint32_t)u;
            break;
        case OPT_DRAIN:
            if (!parse_u64(optarg, 0, 3600000, &u))
                return usage_error("bad --drain-ms '%s'", optarg);
            o->drain_ms = (uint32_t)u;
            break;
        case OPT_SETTLE:
            if (!parse_u64(optarg, 0, 3600000, &u))
                return usage_error("bad --settle-ms '%s'", optarg);
            o->settle_ms = (uint32_t)u;
            break;
        case OPT_FIRST_ID:
            if (!parse_u64(optarg, 0, (uint64_t)INT64_MAX - 20000000, &u))
                return usage_error("bad --first-id '%s'", optarg);
            o->first_id = u;
            break;
        case OPT_QUIET:
            o->is_quiet = true;
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            exit(0);
        case OPT_VERSION:
            printf("phxd-bench %s\n", PHX_VERSION);
            exit(0);
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (o->n_urls == 0)
        o->urls[o->n_urls++] = o->url;
    o->url = o->urls[0];
    if (o->publish_url != NULL && o->scenario != PHX_BENCH_FANOUT)
        return usage_error("%s", "--publish-url is for --scenario fanout");
    if (o->backend_listen != NULL && o->scenario != PHX_BENCH_BACKEND)
        return usage_error("%s", "--backend-listen is for --scenario backend");
    if (o->backend_delay_us > 0 && o->backend_listen == NULL)
        return usage_error("%s", "--backend-delay-us needs --backend-listen");
    if (o->secret_key_base == NULL && o->token == NULL)
        o->secret_key_base = getenv("SECRET_KEY_BASE");
    if (o->secret_key_base == NULL && o->token == NULL)
        return usage_error("%s", "--secret-key-base (or --token) is required");
    if (!phx_bench_json_safe(o->topic) || o->topic[0] == '\0')
        return usage_error("bad --topic '%s'", o->topic);
    if (!phx_bench_json_safe(o->event) || o->event[0] == '\0' || strncmp(o->event, "phx_", 4) == 0)
        return usage_error("bad --event '%s'", o->event);
    if (o->token != NULL && o->scenario == PHX_BENCH_PRESENCE)
        return usage_error("%s",
                           "--scenario presence needs --secret-key-base (one user per socket), "
                           "not --token");
    if (o->token != NULL && strpbrk(o->token, " &#\r\n") != NULL)
        return usage_error("%s", "--token must be URL-safe");
    if (o->params != NULL && strpbrk(o->params, " #\r\n") != NULL)
        return usage_error("%s", "--params must be URL-encoded");
    if (o->rate < 0)
        o->rate = o->scenario == PHX_BENCH_FANOUT ? 5 : 0;
    return 0;
}

/* ---- setup ---- */

static int raise_fd_limit(uint32_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need + SPARE_FDS) {
        fprintf(stderr,
                "phxd-bench: %u sockets need %u descriptors but the limit is %llu "
                "(raise the hard limit: ulimit -Hn)\n",
                need, need + SPARE_FDS, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

static int mint_tokens(phx_bench_t *b)
{
    const phx_bench_opts_t *o = &b->opts;
    b->n_tokens = o->token != NULL ? 1 : b->n_conns;
    b->token_off = phx_calloc(b->n_tokens, sizeof(*b->token_off));
    if (b->token_off == NULL)
        return PHX_ERR_NOMEM;
    if (o->token != NULL)
        return phx_buf_append(&b->tokens, o->token, strlen(o->token) + 1);
    phx_token_config_t cfg = {
        .secret_key_base = (const uint8_t *)o->secret_key_base,
        .secret_key_base_len = strlen(o->secret_key_base),
        .salt = (const uint8_t *)o->salt,
        .salt_len = strlen(o->salt),
    };
    phx_token_t *tok = NULL;
    int rv = phx_token_new(&tok, &cfg);
    if (rv != 0)
        return rv;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t now_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    phx_max_age_t max_age = {.kind = PHX_MAX_AGE_TOKEN};
    for (uint32_t i = 0; i < b->n_tokens && rv == 0; i++) {
        phx_term_t *data = NULL;
        if ((rv = phx_term_new_int(&data, (int64_t)(o->first_id + i))) != 0)
            break;
        b->token_off[i] = (uint32_t)b->tokens.len;
        rv = phx_token_sign(tok, data, now_ms, max_age, &b->tokens);
        phx_term_free(data);
        if (rv == 0)
            rv = phx_buf_append_byte(&b->tokens, 0);
    }
    phx_token_free(tok);
    b->has_user_topic = rv == 0;
    return rv;
}

static int setup(phx_bench_t *b)
{
    const phx_bench_opts_t *o = &b->opts;
    b->n_conns = o->sockets + (o->scenario == PHX_BENCH_FANOUT ? 1 : 0);
    b->conns = phx_calloc(b->n_conns, sizeof(*b->conns));
    b->rbuf_cap = READ_BUF_BYTES;
    b->rbuf = phx_malloc(b->rbuf_cap);
    b->payload_cap = (size_t)o->payload_bytes + 128;
    b->payload_buf = phx_malloc(b->payload_cap);
    if (b->conns == NULL || b->rbuf == NULL || b->payload_buf == NULL)
        return PHX_ERR_NOMEM;
    if (phx_hist_init(&b->connect_hist) || phx_hist_init(&b->delivery_hist) ||
        phx_hist_init(&b->echo_hist) || phx_hist_init(&b->cycle_hist) ||
        phx_hist_init(&b->added_hist))
        return PHX_ERR_NOMEM;
    static const phx_conn_role_t roles[] = {PHX_ROLE_HOLD,  PHX_ROLE_SUBSCRIBER, PHX_ROLE_ECHO,
                                            PHX_ROLE_CHURN, PHX_ROLE_PRESENCE,   PHX_ROLE_ECHO};
    for (uint32_t i = 0; i < b->n_conns; i++) {
        phx_bench_conn_t *c = &b->conns[i];
        c->b = b;
        c->index = i;
        c->role = (uint8_t)roles[o->scenario];
        c->target = i % o->n_urls;
        if (i < o->sockets)
            b->targets[c->target].sockets++;
    }
    if (o->scenario == PHX_BENCH_FANOUT) {
        b->publisher = &b->conns[o->sockets];
        b->publisher->role = PHX_ROLE_PUBLISHER;
        b->publisher->target = b->publish_target;
    }
    if (o->scenario == PHX_BENCH_ECHO || o->scenario == PHX_BENCH_BACKEND) {
        b->echo_ts = phx_calloc((size_t)b->n_conns * o->window, sizeof(*b->echo_ts));
        if (b->echo_ts == NULL)
            return PHX_ERR_NOMEM;
    }
    if (o->scenario == PHX_BENCH_PRESENCE) {
        b->pres_words = ((size_t)o->sockets + 63) / 64;
        b->pres_bits = phx_calloc((size_t)b->n_conns * b->pres_words, sizeof(*b->pres_bits));
        if (b->pres_bits == NULL)
            return PHX_ERR_NOMEM;
    }
    if (o->scenario == PHX_BENCH_CHURN) {
        b->idle = phx_calloc(b->n_conns, sizeof(*b->idle));
        if (b->idle == NULL)
            return PHX_ERR_NOMEM;
    }
    b->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    return mint_tokens(b);
}

static void teardown(phx_bench_t *b)
{
    for (uint32_t i = 0; b->conns != NULL && i < b->n_conns; i++)
        phx_bench_conn_dispose(&b->conns[i]);
    phx_free(b->conns);
    phx_free(b->rbuf);
    phx_free(b->payload_buf);
    phx_free(b->echo_ts);
    phx_free(b->idle);
    phx_free(b->pres_bits);
    phx_free(b->bcasts);
    phx_free(b->bnodes);
    phx_free(b->token_off);
    phx_buf_dispose(&b->tokens);
    phx_buf_dispose(&b->wscratch);
    phx_hist_dispose(&b->connect_hist);
    phx_hist_dispose(&b->delivery_hist);
    phx_hist_dispose(&b->echo_hist);
    phx_hist_dispose(&b->cycle_hist);
    phx_hist_dispose(&b->added_hist);
    phx_bench_backend_free(b->backend);
    b->backend = NULL;
    phx_bench_target_dispose(b);
}

int main(int argc, char **argv)
{
    static phx_bench_t bench; /* large (scratch buffers): not on the stack */
    phx_bench_t *b = &bench;
    int rv = parse_opts(argc, argv, &b->opts);
    if (rv != 0)
        return rv;
    signal(SIGPIPE, SIG_IGN);
    if (raise_fd_limit(b->opts.sockets + 1) != 0)
        return 2;

    char err[256];
    if (phx_bench_target_init(b, err, sizeof(err)) != 0) {
        fprintf(stderr, "phxd-bench: %s\n", err);
        teardown(b);
        return 2;
    }
    if ((rv = setup(b)) != 0) {
        fprintf(stderr, "phxd-bench: setup failed: %s\n", phx_strerror(rv));
        teardown(b);
        return 2;
    }
    static const char *const names[] = {"hold", "fanout", "echo", "churn", "presence", "backend"};
    if (!b->opts.is_quiet) {
        fprintf(stderr, "phxd-bench: %s, %u sockets -> %s", names[b->opts.scenario],
                b->opts.sockets, b->opts.url);
        for (uint32_t i = 1; i < b->opts.n_urls; i++)
            fprintf(stderr, ", %s", b->opts.urls[i]);
        if (b->publisher != NULL && b->n_targets > 1)
            fprintf(stderr, "; publisher -> %s", b->targets[b->publish_target].url);
        fprintf(stderr, " (vsn %s)%s\n", b->opts.vsn,
                b->opts.server_pid ? "" : "; no --server-pid: server figures are null");
    }

    for (uint32_t i = 0; i < b->n_targets; i++) {
        const phx_bench_target_t *t = &b->targets[i];
        if (b->opts.source_ips == NULL && t->sockets > 12000 && t->dst.ss_family == AF_INET) {
            /* Linux looks for a free ephemeral port with a scan that slows
             * down sharply once half of the range is in use for one
             * destination. */
            fprintf(stderr,
                    "phxd-bench: warning: %u sockets from one source address: connect() slows "
                    "down past about 14000; use --source-ips 127.0.0.2-127.0.0.9\n",
                    t->sockets);
        }
    }
    if (b->opts.backend_listen != NULL) {
        rv = phx_bench_backend_start(&b->backend, b->opts.backend_listen, b->opts.backend_delay_us,
                                     err, sizeof(err));
        if (rv != 0) {
            fprintf(stderr, "phxd-bench: %s\n", err);
            teardown(b);
            return 2;
        }
        if (!b->opts.is_quiet)
            fprintf(stderr, "phxd-bench: backend listening on %s (port %d), delay %u us\n",
                    b->opts.backend_listen, phx_bench_backend_port(b->backend),
                    b->opts.backend_delay_us);
    }
    uv_loop_t loop;
    if ((rv = uv_loop_init(&loop)) != 0) {
        fprintf(stderr, "phxd-bench: uv_loop_init: %s\n", uv_strerror(rv));
        teardown(b);
        return 2;
    }
    b->loop = &loop;
    phx_bench_run_start(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* The backend's histogram is read only once its thread has ended. */
    phx_bench_backend_stop(b->backend);
    phx_bench_report(b);
    int close_rv = uv_loop_close(&loop);
    if (close_rv != 0)
        fprintf(stderr, "phxd-bench: uv_loop_close: %s\n", uv_strerror(close_rv));

    bool is_clean = phx_bench_error_total(b) == 0 && b->sockets_final == b->opts.sockets;
    teardown(b);
    return is_clean ? 0 : 1;
}
