/* stats.h: phxd-bench's measurements. A log-linear latency histogram (HDR
 * style: exact below 256 ns, then 128 sub-buckets per power of two, so any
 * percentile is within 0.8% of the recorded value; min, max and mean are
 * exact), nearest-rank percentiles of a sample array, and process figures:
 * a server's RSS and CPU time from /proc, the bench's own CPU time. */
#ifndef PHX_BENCH_STATS_H
#define PHX_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PHX_HIST_SUB_BITS 7
#define PHX_HIST_SUB (1u << PHX_HIST_SUB_BITS)
/* values < 2 * SUB are exact; each higher power of two gets SUB buckets */
#define PHX_HIST_BUCKETS ((64 - PHX_HIST_SUB_BITS + 1) * PHX_HIST_SUB)

typedef struct phx_hist {
    uint64_t *counts; /* PHX_HIST_BUCKETS counters */
    uint64_t total;
    uint64_t min;
    uint64_t max;
    double sum;
} phx_hist_t;

/* Allocates the counters. Returns 0 or PHX_ERR_NOMEM. */
int phx_hist_init(phx_hist_t *h);
void phx_hist_dispose(phx_hist_t *h);
void phx_hist_record(phx_hist_t *h, uint64_t v);
/* Nearest-rank percentile `pct` (0 < pct <= 100): the highest value of the
 * bucket holding that rank, clamped to [min, max]. 0 when empty. */
uint64_t phx_hist_percentile(const phx_hist_t *h, double pct);

/* Nearest-rank percentile of `n` values that are already sorted ascending.
 * 0 when n is 0. */
uint64_t phx_percentile_sorted(const uint64_t *v, size_t n, double pct);
/* Sorts `n` values ascending in place. */
void phx_sort_u64(uint64_t *v, size_t n);

/* ---- processes ---- */

typedef struct phx_proc_sample {
    bool is_ok;         /* false when /proc could not be read (process gone) */
    uint64_t rss_bytes; /* VmRSS of /proc/PID/status */
    double cpu_s;       /* utime + stime of /proc/PID/stat */
} phx_proc_sample_t;

/* Reads the process's RSS and CPU time. Blocking file reads of a few
 * hundred bytes; call at phase boundaries and once a second, not per
 * message. Returns 0 or a negative errno (then out->is_ok is false). */
int phx_proc_sample(int pid, phx_proc_sample_t *out);

/* Busy and total jiffies of the whole host and of each CPU, from
 * /proc/stat. Kernel work such as loopback TCP processing in softirq is
 * charged to no process, so per-process CPU time alone hides a saturated
 * core. */
#define PHX_HOST_MAX_CPUS 64
typedef struct phx_host_sample {
    bool is_ok;
    unsigned n_cpus;
    uint64_t busy[PHX_HOST_MAX_CPUS + 1]; /* [0] all CPUs, [1 + i] cpu i */
    uint64_t total[PHX_HOST_MAX_CPUS + 1];
    uint64_t softirq; /* all CPUs */
} phx_host_sample_t;

/* Reads /proc/stat into *out. Returns 0 or a negative errno. */
int phx_host_sample(phx_host_sample_t *out);

/* User plus system CPU seconds of this process (getrusage). */
double phx_self_cpu_s(void);

#endif /* PHX_BENCH_STATS_H */
