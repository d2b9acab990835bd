/* stats.c: latency histogram, percentiles and /proc sampling for
 * phxd-bench. Recording a latency is a few arithmetic operations on a
 * preallocated array: no allocation on the hot path. */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mem.h"
#include "phx.h"

/* ---- histogram ---- */

static unsigned hist_index(uint64_t v)
{
    if (v < 2 * PHX_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - PHX_HIST_SUB_BITS;
    return shift * PHX_HIST_SUB + (unsigned)(v >> shift);
}

/* Highest value that maps to bucket `i`. */
static uint64_t hist_upper(unsigned i)
{
    if (i < 2 * PHX_HIST_SUB)
        return i;
    unsigned shift = i / PHX_HIST_SUB - 1;
    uint64_t top = i - shift * PHX_HIST_SUB;
    return ((top + 1) << shift) - 1;
}

int phx_hist_init(phx_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->counts = phx_calloc(PHX_HIST_BUCKETS, sizeof(*h->counts));
    if (h->counts == NULL)
        return PHX_ERR_NOMEM;
    h->min = UINT64_MAX;
    return 0;
}

void phx_hist_dispose(phx_hist_t *h)
{
    phx_free(h->counts);
    h->counts = NULL;
}

void phx_hist_record(phx_hist_t *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

uint64_t phx_hist_percentile(const phx_hist_t *h, double pct)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(pct / 100.0 * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank >= h->total)
        return h->max;
    uint64_t seen = 0;
    for (unsigned i = 0; i < PHX_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_upper(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

uint64_t phx_percentile_sorted(const uint64_t *v, size_t n, double pct)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void phx_sort_u64(uint64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_u64);
}

/* ---- processes ---- */

static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            close(fd);
            return err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

int phx_proc_sample(int pid, phx_proc_sample_t *out)
{
    char path[64];
    char buf[4096];
    memset(out, 0, sizeof(*out));

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    ssize_t n = read_small(path, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    /* The command name may hold spaces and parentheses: fields are counted
     * from the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -EINVAL;
    p++;
    unsigned long long utime = 0, stime = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field != 15)
        return -EINVAL;
    long hz = sysconf(_SC_CLK_TCK);
    out->cpu_s = (double)(utime + stime) / (double)(hz > 0 ? hz : 100);

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((n = read_small(path, buf, sizeof(buf))) < 0)
        return (int)n;
    char *rss = strstr(buf, "\nVmRSS:");
    if (rss == NULL)
        return -EINVAL;
    out->rss_bytes = strtoull(rss + 7, NULL, 10) * 1024u;
    out->is_ok = true;
    return 0;
}

int phx_host_sample(phx_host_sample_t *out)
{
    char buf[16384];
    memset(out, 0, sizeof(*out));
    ssize_t n = read_small("/proc/stat", buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "cpu", 3) != 0)
            break;
        unsigned slot;
        char *p = line + 3;
        if (*p == ' ') {
            slot = 0;
        } else {
            unsigned long id = strtoul(p, &p, 10);
            if (id >= PHX_HOST_MAX_CPUS)
                continue;
            slot = (unsigned)id + 1;
            if (slot > out->n_cpus)
                out->n_cpus = slot;
        }
        /* user nice system idle iowait irq softirq steal */
        unsigned long long v[8] = {0};
        for (int i = 0; i < 8; i++)
            v[i] = strtoull(p, &p, 10);
        uint64_t total = 0;
        for (int i = 0; i < 8; i++)
            total += v[i];
        out->total[slot] = total;
        out->busy[slot] = total - v[3] - v[4];
        if (slot == 0)
            out->softirq = v[6];
    }
    out->is_ok = out->total[0] > 0;
    return out->is_ok ? 0 : -EINVAL;
}

double phx_self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
