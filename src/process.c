/* This process's build and resources for /metrics, in the names and units of the Prometheus
 * clients' standard process collector, so stock dashboards and alerts work on cdcache as they are.
 *
 * Everything is read from /proc when the page renders (a few small reads per scrape); nothing is
 * kept between calls, so there is no state and no lock. A figure that cannot be read (no /proc in
 * a sandbox, an unlimited fd limit) is left off the page rather than written as a sentinel. */
#include "cdcache/process.h"
#include "cdcache/error.h"
#include "cdcache/metrics.h"
#include "cdcache/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The fields of /proc/<pid>/stat used here, numbered as in proc(5). */
enum {
    STAT_UTIME = 14,
    STAT_STIME = 15,
    STAT_NUM_THREADS = 20,
    STAT_STARTTIME = 22,
    STAT_VSIZE = 23,
    STAT_RSS = 24,
    STAT_LAST = STAT_RSS
};

int process_parse_stat(const char *text, int64_t boot_time, long clk_tck, long page_size,
                       struct process_stats *out)
{
    int64_t f[STAT_LAST + 1];
    const char *p = text ? strrchr(text, ')') : NULL;
    int field = 3; /* the first field after the command name is the state */

    if (!p || clk_tck <= 0 || page_size <= 0)
        return CDC_EINVAL;
    p++;
    while (field <= STAT_LAST) {
        size_t n;
        while (*p == ' ')
            p++;
        n = strcspn(p, " \n");
        if (n == 0)
            return CDC_EINVAL; /* the line ends early */
        if (field == 3)
            f[field] = 0; /* the state is a letter */
        else if (!parse_i64(p, n, &f[field]))
            return CDC_EINVAL; /* some fields are -1 (tpgid); those used here never are */
        p += n;
        field++;
    }
    if (f[STAT_UTIME] < 0 || f[STAT_STIME] < 0 || f[STAT_NUM_THREADS] < 0 ||
        f[STAT_STARTTIME] < 0 || f[STAT_VSIZE] < 0 || f[STAT_RSS] < 0)
        return CDC_EINVAL;
    out->cpu_seconds = (double)(f[STAT_UTIME] + f[STAT_STIME]) / (double)clk_tck;
    out->start_time_seconds = (double)boot_time + (double)f[STAT_STARTTIME] / (double)clk_tck;
    out->virtual_bytes = f[STAT_VSIZE];
    out->resident_bytes = f[STAT_RSS] * (int64_t)page_size;
    out->threads = f[STAT_NUM_THREADS];
    return 0;
}

/* Reads all of a small file into buf[0..cap), NUL-terminated. Returns the length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t len = 0;

    if (fd < 0)
        return -1;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The second since the epoch at which the system booted (/proc/stat's btime), or -1. */
static int64_t boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    bool at_start = true; /* fgets may hand a long line (intr) over in pieces */
    int64_t t = -1;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        bool whole = n > 0 && line[n - 1] == '\n';
        if (at_start && strncmp(line, "btime ", 6) == 0) {
            if (!parse_i64(line + 6, strcspn(line + 6, "\n"), &t))
                t = -1;
            break;
        }
        at_start = whole;
    }
    fclose(f);
    return t;
}

/* Open file descriptors, not counting the one used to count them; -1 if /proc/self/fd is
 * unreadable. */
static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    const struct dirent *e;
    int64_t n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

void process_stats(struct process_stats *out)
{
    char stat[1024];
    struct rlimit rl;
    int64_t boot = boot_time();

    out->cpu_seconds = -1;
    out->start_time_seconds = -1;
    out->resident_bytes = out->virtual_bytes = out->threads = -1;
    if (read_small("/proc/self/stat", stat, sizeof(stat)) > 0 &&
        process_parse_stat(stat, boot < 0 ? 0 : boot, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE),
                           out) == 0 &&
        boot < 0)
        out->start_time_seconds = -1; /* without the boot time, the start is unknown */
    out->open_fds = open_fds();
    out->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (int64_t)rl.rlim_cur
                       : -1;
}

void process_metrics_render(struct metrics_page *p)
{
    struct process_stats st;

    metrics_family(p, "cdcache_build_info", "gauge",
                   "Always 1; the version label says which build of cdcache this is.");
    metrics_sample(p, "cdcache_build_info", "version=\"" CDCACHE_VERSION "\"", 1);
    process_stats(&st);
    if (st.cpu_seconds >= 0)
        metrics_scalar(p, "process_cpu_seconds_total", "counter",
                       "Total user and system CPU time spent in seconds.", st.cpu_seconds);
    if (st.resident_bytes >= 0)
        metrics_scalar(p, "process_resident_memory_bytes", "gauge",
                       "Resident memory size in bytes.", (double)st.resident_bytes);
    if (st.virtual_bytes >= 0)
        metrics_scalar(p, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                       (double)st.virtual_bytes);
    if (st.start_time_seconds >= 0)
        metrics_scalar(p, "process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.",
                       st.start_time_seconds);
    if (st.threads >= 0)
        metrics_scalar(p, "process_threads", "gauge", "Number of OS threads in the process.",
                       (double)st.threads);
    if (st.open_fds >= 0)
        metrics_scalar(p, "process_open_fds", "gauge", "Number of open file descriptors.",
                       (double)st.open_fds);
    if (st.max_fds >= 0)
        metrics_scalar(p, "process_max_fds", "gauge",
                       "Maximum number of open file descriptors (the soft limit).",
                       (double)st.max_fds);
}
