/* report.c: phxd-bench's results. Computes the figures of a finished run
 * from the counters, histograms and samples of phx_bench_t, prints a human
 * summary on stderr and exactly one JSON object on stdout (figures that
 * were not measured are null). */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "phx.h"

typedef struct json {
    phx_buf_t buf;
    bool has_member;
} json_t;

static void j_key(json_t *j, const char *key)
{
    phx_buf_printf(&j->buf, "%s\n  \"%s\": ", j->has_member ? "," : "", key);
    j->has_member = true;
}

static void j_num(json_t *j, const char *key, double v, int decimals, bool present)
{
    j_key(j, key);
    if (!present || v != v)
        phx_buf_append_str(&j->buf, "null");
    else
        phx_buf_printf(&j->buf, "%.*f", decimals, v);
}

static void j_u64(json_t *j, const char *key, uint64_t v, bool present)
{
    j_key(j, key);
    if (present)
        phx_buf_printf(&j->buf, "%" PRIu64, v);
    else
        phx_buf_append_str(&j->buf, "null");
}

/* Appends `v` as a JSON string (null for NULL). */
static void j_strval(phx_buf_t *buf, const char *v)
{
    if (v == NULL) {
        phx_buf_append_str(buf, "null");
        return;
    }
    phx_buf_append_byte(buf, '"');
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            phx_buf_printf(buf, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            phx_buf_printf(buf, "\\u%04x", (unsigned char)*p);
        else
            phx_buf_append_byte(buf, (uint8_t)*p);
    }
    phx_buf_append_byte(buf, '"');
}

static void j_str(json_t *j, const char *key, const char *v)
{
    j_key(j, key);
    j_strval(&j->buf, v);
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static const char *scenario_name(phx_bench_scenario_t s)
{
    static const char *const names[] = {"hold", "fanout", "echo", "churn", "presence", "backend"};
    return names[s];
}

/* Latency to the last subscriber of one server (several targets only). */
typedef struct target_figures {
    size_t n_complete;
    uint64_t p50, p99, max;
} target_figures_t;

/* The figures, computed once and used by both outputs. */
typedef struct figures {
    double ramp_s, measure_s, run_s;
    double connect_per_s;
    bool has_srv;
    double rss_per_socket;
    bool has_rss_per_socket;
    double srv_cpu_s, srv_cpu_ramp_s, srv_cpu_measure_s, srv_cpu_pct;
    double bench_cpu_s, bench_cpu_ramp_s, bench_cpu_measure_s, bench_cpu_pct;
    /* fanout */
    size_t n_complete;
    uint64_t fan_p50, fan_p99, fan_max;
    double busy_s, deliveries_per_s, deliveries_per_s_wall;
    uint64_t expected_deliveries;
    target_figures_t per[PHX_BENCH_MAX_URLS + 1];
    /* echo, backend */
    double echo_per_s;
    /* backend: the built-in backend's event calls per second and its
     * thread's CPU over the measured phase; server CPU per callback */
    bool has_be;
    double be_calls_per_s, be_cpu_s, srv_us_per_callback;
    /* churn */
    double churn_per_s, rss_return_pct;
    /* presence: per client, times from the last join reply */
    bool has_conv;
    uint64_t conv_p50, conv_p99, conv_max;
    double pres_msgs_mean, pres_bytes_mean, pres_diffs_mean, pres_ratio;
    uint64_t pres_msgs_max, pres_bytes_max, pres_diffs_max, pres_one_per_join;
    bool has_srv_conv;
    double srv_cpu_conv_s;
    uint64_t errors;
} figures_t;

/* Presence: convergence of every client's view, the presence messages
 * each received, against N - 1 diffs (one diff per join of another user). */
static void compute_presence(const phx_bench_t *b, figures_t *f)
{
    uint32_t n = b->opts.sockets;
    uint64_t *conv = phx_calloc(n, sizeof(*conv));
    size_t n_conv = 0;
    uint64_t msgs = 0, bytes = 0, diffs = 0;
    for (uint32_t i = 0; i < n; i++) {
        const phx_bench_conn_t *c = &b->conns[i];
        msgs += c->pres_msgs;
        bytes += c->pres_bytes;
        diffs += c->pres_diffs;
        if (c->pres_msgs > f->pres_msgs_max)
            f->pres_msgs_max = c->pres_msgs;
        if (c->pres_bytes > f->pres_bytes_max)
            f->pres_bytes_max = c->pres_bytes;
        if (c->pres_diffs > f->pres_diffs_max)
            f->pres_diffs_max = c->pres_diffs;
        if (c->pres_full_ns != 0 && conv != NULL)
            conv[n_conv++] =
                c->pres_full_ns > b->last_join_ns ? c->pres_full_ns - b->last_join_ns : 0;
    }
    f->pres_msgs_mean = (double)msgs / n;
    f->pres_bytes_mean = (double)bytes / n;
    f->pres_diffs_mean = (double)diffs / n;
    f->pres_one_per_join = n - 1;
    f->pres_ratio = n > 1 ? f->pres_diffs_mean / (double)(n - 1) : 0;
    if (conv != NULL && n_conv == n) {
        phx_sort_u64(conv, n_conv);
        f->conv_p50 = phx_percentile_sorted(conv, n_conv, 50);
        f->conv_p99 = phx_percentile_sorted(conv, n_conv, 99);
        f->conv_max = conv[n_conv - 1];
        f->has_conv = true;
    }
    phx_free(conv);
    f->has_srv_conv = b->srv_base.is_ok && b->srv_conv.is_ok;
    if (f->has_srv_conv)
        f->srv_cpu_conv_s = b->srv_conv.cpu_s - b->srv_base.cpu_s;
}

static void compute(phx_bench_t *b, figures_t *f)
{
    memset(f, 0, sizeof(*f));
    bool is_churn = b->opts.scenario == PHX_BENCH_CHURN;
    f->run_s = secs(b->end_ns - b->t0_ns);
    if (b->ramp_end_ns)
        f->ramp_s = secs(b->ramp_end_ns - b->t0_ns);
    if (b->measure_end_ns > b->measure_start_ns && b->measure_start_ns)
        f->measure_s = secs(b->measure_end_ns - b->measure_start_ns);
    if (is_churn)
        f->connect_per_s = f->measure_s > 0 ? (double)b->cycle_joins / f->measure_s : 0;
    else if (b->last_join_ns > b->t0_ns)
        f->connect_per_s = (double)b->joined / secs(b->last_join_ns - b->t0_ns);

    f->has_srv = b->srv_base.is_ok && b->srv_end.is_ok;
    if (f->has_srv) {
        /* Hold measures memory after sitting idle; fanout and echo right
         * after the ramp, before traffic grows buffers. */
        const phx_proc_sample_t *s =
            b->opts.scenario == PHX_BENCH_HOLD ? &b->srv_end : &b->srv_ramp;
        uint32_t n = b->opts.scenario == PHX_BENCH_HOLD ? b->sockets_final : b->joined;
        if (!is_churn && s->is_ok && n > 0) {
            f->rss_per_socket = ((double)s->rss_bytes - (double)b->srv_base.rss_bytes) / n;
            f->has_rss_per_socket = true;
        }
        f->srv_cpu_s = b->srv_end.cpu_s - b->srv_base.cpu_s;
        if (b->srv_ramp.is_ok)
            f->srv_cpu_ramp_s = b->srv_ramp.cpu_s - b->srv_base.cpu_s;
        if (b->srv_measure.is_ok && b->srv_measure_end.is_ok)
            f->srv_cpu_measure_s = b->srv_measure_end.cpu_s - b->srv_measure.cpu_s;
        if (f->measure_s > 0)
            f->srv_cpu_pct = 100.0 * f->srv_cpu_measure_s / f->measure_s;
        if (is_churn && b->srv_base.rss_bytes > 0)
            f->rss_return_pct = 100.0 *
                                ((double)b->srv_end.rss_bytes - (double)b->srv_base.rss_bytes) /
                                (double)b->srv_base.rss_bytes;
    }
    f->bench_cpu_s = b->cpu_end - b->cpu_base;
    if (b->ramp_end_ns)
        f->bench_cpu_ramp_s = b->cpu_ramp_end - b->cpu_base;
    f->bench_cpu_measure_s = b->cpu_measure_end - b->cpu_measure_start;
    if (f->measure_s > 0)
        f->bench_cpu_pct = 100.0 * f->bench_cpu_measure_s / f->measure_s;

    if (b->opts.scenario == PHX_BENCH_FANOUT && b->n_bcasts > 0) {
        uint64_t *lat = phx_calloc(b->n_bcasts, sizeof(*lat));
        uint64_t busy_ns = 0, cur_start = 0, cur_end = 0;
        bool has_cur = false;
        for (size_t i = 0; i < b->n_bcasts; i++) {
            const phx_bench_bcast_t *bc = &b->bcasts[i];
            f->expected_deliveries += bc->expected;
            if (bc->count == bc->expected && bc->expected > 0 && lat != NULL)
                lat[f->n_complete++] = bc->last_ns - bc->sent_ns;
            if (bc->count == 0)
                continue;
            /* Union of the [send, last delivery] intervals: the time the
             * server spent fanning out. */
            if (has_cur && bc->sent_ns <= cur_end) {
                if (bc->last_ns > cur_end)
                    cur_end = bc->last_ns;
            } else {
                if (has_cur)
                    busy_ns += cur_end - cur_start;
                cur_start = bc->sent_ns;
                cur_end = bc->last_ns;
                has_cur = true;
            }
        }
        if (has_cur)
            busy_ns += cur_end - cur_start;
        if (lat != NULL) {
            phx_sort_u64(lat, f->n_complete);
            f->fan_p50 = phx_percentile_sorted(lat, f->n_complete, 50);
            f->fan_p99 = phx_percentile_sorted(lat, f->n_complete, 99);
            f->fan_max = f->n_complete ? lat[f->n_complete - 1] : 0;
        }
        for (uint32_t t = 0; b->n_targets > 1 && lat != NULL && t < b->n_targets; t++) {
            target_figures_t *tf = &f->per[t];
            for (size_t i = 0; i < b->n_bcasts; i++) {
                const phx_bench_bnode_t *bn = &b->bnodes[i * b->n_targets + t];
                if (bn->count == bn->expected && bn->expected > 0)
                    lat[tf->n_complete++] = bn->last_ns - b->bcasts[i].sent_ns;
            }
            phx_sort_u64(lat, tf->n_complete);
            tf->p50 = phx_percentile_sorted(lat, tf->n_complete, 50);
            tf->p99 = phx_percentile_sorted(lat, tf->n_complete, 99);
            tf->max = tf->n_complete ? lat[tf->n_complete - 1] : 0;
        }
        phx_free(lat);
        f->busy_s = secs(busy_ns);
        if (f->busy_s > 0)
            f->deliveries_per_s = (double)b->deliveries / f->busy_s;
        if (f->measure_s > 0)
            f->deliveries_per_s_wall = (double)b->deliveries_in_window / f->measure_s;
    }
    bool is_backend = b->opts.scenario == PHX_BENCH_BACKEND;
    if ((b->opts.scenario == PHX_BENCH_ECHO || is_backend) && f->measure_s > 0)
        f->echo_per_s = (double)b->echo_in_window / f->measure_s;
    f->has_be = is_backend && b->backend != NULL;
    if (f->has_be && f->measure_s > 0) {
        f->be_calls_per_s = (double)(b->be_events_end - b->be_events_start) / f->measure_s;
        f->be_cpu_s = b->be_cpu_end - b->be_cpu_start;
    }
    if (is_backend && f->has_srv && b->echo_in_window > 0)
        f->srv_us_per_callback = 1e6 * f->srv_cpu_measure_s / (double)b->echo_in_window;
    if (is_churn && f->measure_s > 0)
        f->churn_per_s = (double)b->cycles_in_window / f->measure_s;
    if (b->opts.scenario == PHX_BENCH_PRESENCE)
        compute_presence(b, f);
    f->errors = phx_bench_error_total(b);
}

static void summary(const phx_bench_t *b, const figures_t *f)
{
    FILE *o = stderr;
    const phx_bench_opts_t *op = &b->opts;
    fprintf(o, "\nphxd-bench %s: %s", scenario_name(op->scenario), op->url);
    for (uint32_t i = 1; i < op->n_urls; i++)
        fprintf(o, ", %s", op->urls[i]);
    if (b->publisher != NULL && b->n_targets > 1)
        fprintf(o, "; publisher on %s", b->targets[b->publish_target].url);
    fprintf(o, ", vsn %s\n", op->vsn);
    if (op->scenario != PHX_BENCH_CHURN) {
        fprintf(o, "  sockets          %u joined and open at the end (%u requested, %u joined)\n",
                b->sockets_final, op->sockets, b->joined);
        fprintf(o,
                "  connect          %.0f sockets/s (ramp %.2f s, %u in flight); connect+join "
                "p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                f->connect_per_s, f->ramp_s, op->concurrency,
                ms(phx_hist_percentile(&b->connect_hist, 50)),
                ms(phx_hist_percentile(&b->connect_hist, 99)), ms(b->connect_hist.max));
    }
    if (f->has_srv) {
        fprintf(o, "  server rss       base %.1f MiB", (double)b->srv_base.rss_bytes / 1048576.0);
        if (b->srv_ramp.is_ok)
            fprintf(o, ", after ramp %.1f MiB", (double)b->srv_ramp.rss_bytes / 1048576.0);
        fprintf(o, ", end %.1f MiB, peak %.1f MiB\n", (double)b->srv_end.rss_bytes / 1048576.0,
                (double)b->srv_rss_peak / 1048576.0);
        if (f->has_rss_per_socket)
            fprintf(o, "  rss per socket   %.0f bytes\n", f->rss_per_socket);
    }
    switch (op->scenario) {
    case PHX_BENCH_HOLD:
        fprintf(o, "  hold             %.1f s, %" PRIu64 " heartbeats answered\n", f->measure_s,
                b->heartbeats);
        break;
    case PHX_BENCH_FANOUT:
        fprintf(o,
                "  fanout           %zu broadcasts to %u subscribers, %zu complete; to the last "
                "subscriber p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                b->n_bcasts, b->subscribers, f->n_complete, ms(f->fan_p50), ms(f->fan_p99),
                ms(f->fan_max));
        fprintf(o,
                "  deliveries       %" PRIu64 "/%" PRIu64 ", %.0f/s while fanning out (%.3f s), "
                "%.0f/s over the phase; each p50 %.2f ms, p99 %.2f ms\n",
                b->deliveries, f->expected_deliveries, f->deliveries_per_s, f->busy_s,
                f->deliveries_per_s_wall, ms(phx_hist_percentile(&b->delivery_hist, 50)),
                ms(phx_hist_percentile(&b->delivery_hist, 99)));
        for (uint32_t t = 0; b->n_targets > 1 && t < b->n_targets; t++) {
            const phx_bench_target_t *tg = &b->targets[t];
            const target_figures_t *tf = &f->per[t];
            fprintf(o, "  on %s%s: %u subscribers", tg->url,
                    t == b->publish_target ? " (the publisher's)" : "", tg->subscribers);
            if (tg->subscribers > 0)
                fprintf(o,
                        ", %zu complete; to the last subscriber p50 %.2f ms, p99 %.2f ms, "
                        "max %.2f ms; %" PRIu64 " deliveries",
                        tf->n_complete, ms(tf->p50), ms(tf->p99), ms(tf->max), tg->deliveries);
            fprintf(o, "\n");
        }
        break;
    case PHX_BENCH_ECHO:
        fprintf(o,
                "  echo             %" PRIu64 " round trips, %.0f/s (window %u); p50 %.3f ms, "
                "p99 %.3f ms, max %.3f ms\n",
                b->echo_replies, f->echo_per_s, op->window,
                ms(phx_hist_percentile(&b->echo_hist, 50)),
                ms(phx_hist_percentile(&b->echo_hist, 99)), ms(b->echo_hist.max));
        if (b->echo_skipped)
            fprintf(o, "  echo skipped     %" PRIu64 " pings (every window full)\n",
                    b->echo_skipped);
        break;
    case PHX_BENCH_BACKEND: {
        const phx_hist_t *rt = &b->echo_hist, *ad = &b->added_hist;
        fprintf(o,
                "  callbacks        %" PRIu64
                " replies, %.0f/s (in flight per socket %u, rate %s); "
                "round trip p50 %.3f ms, p90 %.3f, p99 %.3f, max %.3f\n",
                b->echo_replies, f->echo_per_s, op->window, op->rate > 0 ? "fixed" : "as fast",
                ms(phx_hist_percentile(rt, 50)), ms(phx_hist_percentile(rt, 90)),
                ms(phx_hist_percentile(rt, 99)), ms(rt->max));
        if (f->has_be) {
            const phx_hist_t *own = phx_bench_backend_hist(b->backend);
            fprintf(o,
                    "  backend          %" PRIu64 " event calls, %.0f/s, delay %u us, thread cpu "
                    "%.2f s; its own time p50 %.4f ms, p90 %.4f, p99 %.4f, max %.4f\n",
                    own->total, f->be_calls_per_s, op->backend_delay_us, f->be_cpu_s,
                    ms(phx_hist_percentile(own, 50)), ms(phx_hist_percentile(own, 90)),
                    ms(phx_hist_percentile(own, 99)), ms(own->max));
        }
        if (ad->total)
            fprintf(o,
                    "  added            round trip minus the backend's own time, per reply "
                    "(%" PRIu64 " timed): p50 %.3f ms, p90 %.3f, p99 %.3f, max %.3f\n",
                    b->backend_timed, ms(phx_hist_percentile(ad, 50)),
                    ms(phx_hist_percentile(ad, 90)), ms(phx_hist_percentile(ad, 99)), ms(ad->max));
        else
            fprintf(o, "  added            no reply carried a backend time (\"backend_ns\"): "
                       "the server answered itself, or another backend\n");
        if (f->srv_us_per_callback > 0)
            fprintf(o, "  server per call  %.1f us of server CPU per callback\n",
                    f->srv_us_per_callback);
        if (b->echo_skipped)
            fprintf(o, "  skipped          %" PRIu64 " pushes (every socket's window full)\n",
                    b->echo_skipped);
        break;
    }
    case PHX_BENCH_PRESENCE:
        if (f->has_conv)
            fprintf(o,
                    "  presence         every view held all %u users %.1f ms after the last join "
                    "reply (per view p50 %.1f ms, p99 %.1f ms)\n",
                    op->sockets, ms(f->conv_max), ms(f->conv_p50), ms(f->conv_p99));
        else
            fprintf(o, "  presence         %u/%u views held every user (not converged)\n",
                    b->pres_converged, op->sockets);
        fprintf(o,
                "  presence msgs    per socket mean %.1f, max %" PRIu64 " (state + diffs); "
                "bytes mean %.0f, max %" PRIu64 "\n",
                f->pres_msgs_mean, f->pres_msgs_max, f->pres_bytes_mean, f->pres_bytes_max);
        fprintf(o,
                "  presence diffs   per socket mean %.1f, max %" PRIu64 " vs %" PRIu64
                " for one diff per join: ratio %.4f (1/%.0f)\n",
                f->pres_diffs_mean, f->pres_diffs_max, f->pres_one_per_join, f->pres_ratio,
                f->pres_ratio > 0 ? 1.0 / f->pres_ratio : 0.0);
        if (f->has_srv_conv)
            fprintf(o,
                    "  presence cpu     server %.2f s from the first connect until every view "
                    "was complete\n",
                    f->srv_cpu_conv_s);
        if (b->pres_early)
            fprintf(o, "  presence early   %" PRIu64 " diffs arrived before their state\n",
                    b->pres_early);
        break;
    case PHX_BENCH_CHURN:
        fprintf(o,
                "  churn            %" PRIu64 " cycles, %.0f/s with %u workers (%u cycled); "
                "cycle p50 %.2f ms, p99 %.2f ms\n",
                b->cycles, f->churn_per_s, op->sockets, b->workers_cycled,
                ms(phx_hist_percentile(&b->cycle_hist, 50)),
                ms(phx_hist_percentile(&b->cycle_hist, 99)));
        if (f->has_srv)
            fprintf(o, "  memory return    end rss %+.2f%% of the start\n", f->rss_return_pct);
        if (f->has_srv && b->srv_mid.is_ok)
            fprintf(o,
                    "  memory trend     %.1f MiB after %" PRIu64 " cycles (halfway, sockets open), "
                    "%.1f MiB after %" PRIu64 " (all closed)\n",
                    (double)b->srv_mid.rss_bytes / 1048576.0, b->cycles_mid,
                    (double)b->srv_end.rss_bytes / 1048576.0, b->cycles);
        break;
    }
    if (f->has_srv)
        fprintf(o,
                "  server cpu       %.2f s total, %.2f s in the ramp, %.0f%% of a core while "
                "measuring\n",
                f->srv_cpu_s, f->srv_cpu_ramp_s, f->srv_cpu_pct);
    fprintf(o,
            "  bench cpu        %.2f s total, %.2f s in the ramp, %.0f%% of a core while "
            "measuring%s\n",
            f->bench_cpu_s, f->bench_cpu_ramp_s, f->bench_cpu_pct,
            f->bench_cpu_pct >= 95 && f->measure_s >= 0.5
                ? "  (generator-bound: the figures are the bench's limit)"
                : "");
    const phx_host_sample_t *h0 = &b->host_measure_start, *h1 = &b->host_measure_end;
    if (h0->is_ok && h1->is_ok && h1->total[0] > h0->total[0]) {
        fprintf(o, "  host cpu busy    ");
        for (unsigned i = 1; i <= h1->n_cpus; i++) {
            uint64_t tot = h1->total[i] - h0->total[i];
            fprintf(o, "%scpu%u %.0f%%", i > 1 ? ", " : "", i - 1,
                    tot ? 100.0 * (double)(h1->busy[i] - h0->busy[i]) / (double)tot : 0.0);
        }
        fprintf(o, " while measuring (softirq %.0f%% of all)\n",
                100.0 * (double)(h1->softirq - h0->softirq) /
                    (double)(h1->total[0] - h0->total[0]));
        long hz = sysconf(_SC_CLK_TCK);
        double other = (double)(h1->busy[0] - h0->busy[0]) / (double)(hz > 0 ? hz : 100) -
                       f->srv_cpu_measure_s - f->bench_cpu_measure_s;
        if (f->has_srv && f->measure_s > 0 && other > 0.25 * f->measure_s)
            fprintf(o,
                    "  host other cpu   %.2f s beyond server and bench (softirq, other "
                    "programs): figures may be contended\n",
                    other);
    }
    fprintf(o, "  errors           %" PRIu64, f->errors);
    for (int i = 0; i < PHX_BENCH_ERR_COUNT; i++)
        if (b->errors[i])
            fprintf(o, "  %s %" PRIu64, phx_bench_err_name((phx_bench_err_t)i), b->errors[i]);
    fprintf(o, "\n");
}

void phx_bench_report(phx_bench_t *b)
{
    figures_t f;
    compute(b, &f);
    summary(b, &f);

    const phx_bench_opts_t *op = &b->opts;
    bool fan = op->scenario == PHX_BENCH_FANOUT;
    bool echo = op->scenario == PHX_BENCH_ECHO;
    bool churn = op->scenario == PHX_BENCH_CHURN;
    bool srv = f.has_srv;
    json_t j = {{0}, false};
    phx_buf_append_str(&j.buf, "{");
    j_str(&j, "scenario", scenario_name(op->scenario));
    j_str(&j, "url", op->url);
    j_key(&j, "urls");
    phx_buf_append_str(&j.buf, "[");
    for (uint32_t i = 0; i < op->n_urls; i++) {
        if (i > 0)
            phx_buf_append_str(&j.buf, ", ");
        j_strval(&j.buf, op->urls[i]);
    }
    phx_buf_append_str(&j.buf, "]");
    j_str(&j, "publish_url", fan ? b->targets[b->publish_target].url : NULL);
    j_str(&j, "vsn", op->vsn);
    j_u64(&j, "sockets_requested", op->sockets, true);
    j_u64(&j, "sockets", b->sockets_final, true);
    j_u64(&j, "sockets_joined", churn ? b->cycle_joins : b->joined, true);
    j_num(&j, "duration_s", f.measure_s, 3, true);
    j_num(&j, "ramp_s", f.ramp_s, 3, !churn);
    j_num(&j, "connect_per_s", f.connect_per_s, 1, true);
    j_num(&j, "connect_p50_ms", ms(phx_hist_percentile(&b->connect_hist, 50)), 3, !churn);
    j_num(&j, "connect_p99_ms", ms(phx_hist_percentile(&b->connect_hist, 99)), 3, !churn);
    j_num(&j, "connect_max_ms", ms(b->connect_hist.max), 3, !churn);
    j_u64(&j, "server_rss_base_bytes", b->srv_base.rss_bytes, srv);
    j_u64(&j, "server_rss_ramp_bytes", b->srv_ramp.rss_bytes, srv && b->srv_ramp.is_ok);
    j_u64(&j, "server_rss_mid_bytes", b->srv_mid.rss_bytes, srv && b->srv_mid.is_ok);
    j_u64(&j, "server_rss_end_bytes", b->srv_end.rss_bytes, srv);
    j_u64(&j, "server_rss_peak_bytes", b->srv_rss_peak, srv);
    j_num(&j, "server_rss_per_socket_bytes", f.rss_per_socket, 0, f.has_rss_per_socket);
    j_num(&j, "server_rss_return_pct", f.rss_return_pct, 2, srv && churn);
    j_u64(&j, "broadcasts", b->n_bcasts, fan);
    j_u64(&j, "broadcasts_complete", f.n_complete, fan);
    j_u64(&j, "subscribers", b->subscribers, fan);
    j_num(&j, "fanout_p50_ms", ms(f.fan_p50), 3, fan && f.n_complete);
    j_num(&j, "fanout_p99_ms", ms(f.fan_p99), 3, fan && f.n_complete);
    j_num(&j, "fanout_max_ms", ms(f.fan_max), 3, fan && f.n_complete);
    j_u64(&j, "deliveries", b->deliveries, fan);
    j_u64(&j, "deliveries_expected", f.expected_deliveries, fan);
    j_num(&j, "deliveries_per_s", f.deliveries_per_s, 1, fan && f.busy_s > 0);
    j_num(&j, "deliveries_per_s_wall", f.deliveries_per_s_wall, 1, fan);
    j_num(&j, "delivery_p50_ms", ms(phx_hist_percentile(&b->delivery_hist, 50)), 3,
          fan && b->delivery_hist.total);
    j_num(&j, "delivery_p99_ms", ms(phx_hist_percentile(&b->delivery_hist, 99)), 3,
          fan && b->delivery_hist.total);
    /* Fanout over several servers: the same figures per server. */
    j_key(&j, "per_url");
    if (!fan || b->n_targets < 2) {
        phx_buf_append_str(&j.buf, "null");
    } else {
        phx_buf_append_str(&j.buf, "[\n    ");
        for (uint32_t t = 0; t < b->n_targets; t++) {
            const phx_bench_target_t *tg = &b->targets[t];
            const target_figures_t *tf = &f.per[t];
            bool has = tf->n_complete > 0;
            json_t item = {{0}, false};
            phx_buf_append_str(&item.buf, "{");
            j_str(&item, "url", tg->url);
            j_key(&item, "publisher");
            phx_buf_append_str(&item.buf, t == b->publish_target ? "true" : "false");
            j_u64(&item, "sockets", tg->sockets, true);
            j_u64(&item, "subscribers", tg->subscribers, true);
            j_u64(&item, "broadcasts_complete", tf->n_complete, true);
            j_u64(&item, "deliveries", tg->deliveries, true);
            j_num(&item, "fanout_p50_ms", ms(tf->p50), 3, has);
            j_num(&item, "fanout_p99_ms", ms(tf->p99), 3, has);
            j_num(&item, "fanout_max_ms", ms(tf->max), 3, has);
            phx_buf_append_str(&item.buf, "}");
            if (t > 0)
                phx_buf_append_str(&j.buf, ",\n    ");
            /* One line per server: the members' "\n  " become one space
             * (strings are escaped, so a raw newline is only ever that). */
            for (size_t k = 0; k < item.buf.len; k++) {
                if (item.buf.data[k] != '\n') {
                    phx_buf_append_byte(&j.buf, item.buf.data[k]);
                } else {
                    phx_buf_append_byte(&j.buf, ' ');
                    k += 2;
                }
            }
            phx_buf_dispose(&item.buf);
        }
        phx_buf_append_str(&j.buf, "]");
    }
    j_u64(&j, "echo_round_trips", b->echo_replies, echo);
    j_num(&j, "echo_per_s", f.echo_per_s, 1, echo);
    j_num(&j, "echo_p50_ms", ms(phx_hist_percentile(&b->echo_hist, 50)), 3,
          echo && b->echo_hist.total);
    j_num(&j, "echo_p99_ms", ms(phx_hist_percentile(&b->echo_hist, 99)), 3,
          echo && b->echo_hist.total);
    j_num(&j, "echo_max_ms", ms(b->echo_hist.max), 3, echo && b->echo_hist.total);
    bool be = op->scenario == PHX_BENCH_BACKEND;
    const phx_hist_t *rt = &b->echo_hist, *ad = &b->added_hist;
    const phx_hist_t *own = f.has_be ? phx_bench_backend_hist(b->backend) : NULL;
    bool has_own = own != NULL && own->total > 0;
    j_str(&j, "backend_listen", be ? op->backend_listen : NULL);
    j_u64(&j, "backend_delay_us", op->backend_delay_us, f.has_be);
    j_num(&j, "backend_rate", op->rate, 1, be);
    j_u64(&j, "backend_inflight", op->window, be);
    j_u64(&j, "backend_callbacks", b->echo_replies, be);
    j_num(&j, "backend_callbacks_per_s", f.echo_per_s, 1, be);
    j_u64(&j, "backend_pushes_skipped", b->echo_skipped, be);
    j_num(&j, "backend_rtt_p50_ms", ms(phx_hist_percentile(rt, 50)), 4, be && rt->total);
    j_num(&j, "backend_rtt_p90_ms", ms(phx_hist_percentile(rt, 90)), 4, be && rt->total);
    j_num(&j, "backend_rtt_p99_ms", ms(phx_hist_percentile(rt, 99)), 4, be && rt->total);
    j_num(&j, "backend_rtt_max_ms", ms(rt->max), 4, be && rt->total);
    j_num(&j, "backend_rtt_mean_ms", rt->total ? rt->sum / (double)rt->total / 1e6 : 0, 4,
          be && rt->total);
    j_u64(&j, "backend_calls", has_own ? own->total : 0, f.has_be);
    j_num(&j, "backend_calls_per_s", f.be_calls_per_s, 1, f.has_be);
    j_num(&j, "backend_cpu_s", f.be_cpu_s, 3, f.has_be);
    j_num(&j, "backend_own_p50_ms", has_own ? ms(phx_hist_percentile(own, 50)) : 0, 4, has_own);
    j_num(&j, "backend_own_p90_ms", has_own ? ms(phx_hist_percentile(own, 90)) : 0, 4, has_own);
    j_num(&j, "backend_own_p99_ms", has_own ? ms(phx_hist_percentile(own, 99)) : 0, 4, has_own);
    j_num(&j, "backend_own_max_ms", has_own ? ms(own->max) : 0, 4, has_own);
    j_u64(&j, "backend_timed", b->backend_timed, be);
    j_num(&j, "backend_added_p50_ms", ms(phx_hist_percentile(ad, 50)), 4, be && ad->total);
    j_num(&j, "backend_added_p90_ms", ms(phx_hist_percentile(ad, 90)), 4, be && ad->total);
    j_num(&j, "backend_added_p99_ms", ms(phx_hist_percentile(ad, 99)), 4, be && ad->total);
    j_num(&j, "backend_added_max_ms", ms(ad->max), 4, be && ad->total);
    j_num(&j, "server_cpu_us_per_callback", f.srv_us_per_callback, 2,
          be && f.srv_us_per_callback > 0);
    j_u64(&j, "churn_cycles", b->cycles, churn);
    j_u64(&j, "churn_cycles_mid", b->cycles_mid, churn && b->srv_mid.is_ok);
    j_num(&j, "churn_per_s", f.churn_per_s, 1, churn);
    j_num(&j, "churn_cycle_p50_ms", ms(phx_hist_percentile(&b->cycle_hist, 50)), 3,
          churn && b->cycle_hist.total);
    j_num(&j, "churn_cycle_p99_ms", ms(phx_hist_percentile(&b->cycle_hist, 99)), 3,
          churn && b->cycle_hist.total);
    bool pres = op->scenario == PHX_BENCH_PRESENCE;
    j_u64(&j, "presence_views_complete", b->pres_converged, pres);
    j_num(&j, "presence_converge_ms", ms(f.conv_max), 3, pres && f.has_conv);
    j_num(&j, "presence_converge_p50_ms", ms(f.conv_p50), 3, pres && f.has_conv);
    j_num(&j, "presence_converge_p99_ms", ms(f.conv_p99), 3, pres && f.has_conv);
    j_num(&j, "presence_msgs_mean", f.pres_msgs_mean, 2, pres);
    j_u64(&j, "presence_msgs_max", f.pres_msgs_max, pres);
    j_num(&j, "presence_bytes_mean", f.pres_bytes_mean, 0, pres);
    j_u64(&j, "presence_bytes_max", f.pres_bytes_max, pres);
    j_num(&j, "presence_diffs_mean", f.pres_diffs_mean, 2, pres);
    j_u64(&j, "presence_diffs_max", f.pres_diffs_max, pres);
    j_u64(&j, "presence_diffs_one_per_join", f.pres_one_per_join, pres);
    j_num(&j, "presence_diff_ratio", f.pres_ratio, 5, pres);
    j_u64(&j, "presence_diffs_before_state", b->pres_early, pres);
    j_num(&j, "server_cpu_presence_s", f.srv_cpu_conv_s, 3, pres && f.has_srv_conv);
    j_u64(&j, "heartbeats", b->heartbeats, true);
    j_num(&j, "server_cpu_s", f.srv_cpu_s, 3, srv);
    j_num(&j, "server_cpu_ramp_s", f.srv_cpu_ramp_s, 3, srv && !churn);
    j_num(&j, "server_cpu_measure_s", f.srv_cpu_measure_s, 3, srv);
    j_num(&j, "server_cpu_pct", f.srv_cpu_pct, 1, srv);
    j_num(&j, "bench_cpu_s", f.bench_cpu_s, 3, true);
    j_num(&j, "bench_cpu_ramp_s", f.bench_cpu_ramp_s, 3, !churn);
    j_num(&j, "bench_cpu_measure_s", f.bench_cpu_measure_s, 3, true);
    j_num(&j, "bench_cpu_pct", f.bench_cpu_pct, 1, true);
    const phx_host_sample_t *h0 = &b->host_measure_start, *h1 = &b->host_measure_end;
    bool host = h0->is_ok && h1->is_ok && h1->total[0] > h0->total[0];
    j_num(&j, "host_cpu_busy_pct",
          host ? 100.0 * (double)(h1->busy[0] - h0->busy[0]) / (double)(h1->total[0] - h0->total[0])
               : 0,
          1, host);
    j_num(&j, "host_softirq_pct",
          host ? 100.0 * (double)(h1->softirq - h0->softirq) / (double)(h1->total[0] - h0->total[0])
               : 0,
          1, host);
    /* CPU the host spent beyond the server and the bench: softirq charged to
     * no process and other programs. High values mean contended figures. */
    long hz = sysconf(_SC_CLK_TCK);
    double other = host ? (double)(h1->busy[0] - h0->busy[0]) / (double)(hz > 0 ? hz : 100) -
                              f.srv_cpu_measure_s - f.bench_cpu_measure_s
                        : 0;
    j_num(&j, "host_other_cpu_s", other, 3, host && srv);
    j_key(&j, "host_cpu_busy_pct_per_cpu");
    if (!host) {
        phx_buf_append_str(&j.buf, "null");
    } else {
        phx_buf_append_str(&j.buf, "[");
        for (unsigned i = 1; i <= h1->n_cpus; i++) {
            uint64_t tot = h1->total[i] - h0->total[i];
            phx_buf_printf(&j.buf, "%s%.1f", i > 1 ? ", " : "",
                           tot ? 100.0 * (double)(h1->busy[i] - h0->busy[i]) / (double)tot : 0.0);
        }
        phx_buf_append_str(&j.buf, "]");
    }
    j_u64(&j, "errors", f.errors, true);
    j_key(&j, "error_kinds");
    phx_buf_append_str(&j.buf, "{");
    for (int i = 0; i < PHX_BENCH_ERR_COUNT; i++)
        phx_buf_printf(&j.buf, "%s\"%s\": %" PRIu64, i ? ", " : "",
                       phx_bench_err_name((phx_bench_err_t)i), b->errors[i]);
    phx_buf_append_str(&j.buf, "}");
    j_key(&j, "interrupted");
    phx_buf_append_str(&j.buf, b->is_interrupted ? "true" : "false");
    phx_buf_append_str(&j.buf, "\n}\n");
    if (j.buf.data != NULL)
        fwrite(j.buf.data, 1, j.buf.len, stdout);
    fflush(stdout);
    phx_buf_dispose(&j.buf);
}
