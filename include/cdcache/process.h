/* This process: which build it is (cdcache_build_info) and what it uses (the standard process_*
 * figures every Prometheus client exports), read from /proc/self when /metrics renders.
 *
 * Arrows point one way: this module includes metrics.h to render itself; /metrics (http.c) calls
 * process_metrics_render(). Nothing here is cached or shared, so every function is thread-safe. */
#ifndef CDCACHE_PROCESS_H
#define CDCACHE_PROCESS_H

#include <stdint.h>

/* What the process uses. A figure that could not be read is -1 and is left off the page. */
struct process_stats {
    double cpu_seconds;        /* user + system time */
    double start_time_seconds; /* since the Unix epoch */
    int64_t resident_bytes;
    int64_t virtual_bytes;
    int64_t threads;
    int64_t open_fds;
    int64_t max_fds; /* the soft RLIMIT_NOFILE; -1 when unlimited */
};

/* Parses the text of /proc/<pid>/stat (proc(5)) into the figures it holds: cpu_seconds,
 * resident_bytes, virtual_bytes, threads and start_time_seconds (with boot_time, the epoch second
 * the system booted: /proc/stat's btime). clk_tck and page_size are sysconf's. The command name
 * may hold spaces and parentheses; fields are read after its last ')'. Writes only those fields
 * of out, and only on success. Returns 0, or CDC_EINVAL when the text is not a stat line. */
int process_parse_stat(const char *text, int64_t boot_time, long clk_tck, long page_size,
                       struct process_stats *out);

/* Fills out with this process's figures; those that cannot be read are -1. */
void process_stats(struct process_stats *out);

struct metrics_page;
/* Appends cdcache_build_info{version=CDCACHE_VERSION} 1 and the process_* families whose figures
 * are known. */
void process_metrics_render(struct metrics_page *p);

#endif
