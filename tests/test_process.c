/* The process figures through their public header: the /proc/<pid>/stat parser on awkward command
 * names and bad lines, this process's own figures, and the families the page gets. */
#include "cdcache/error.h"
#include "cdcache/metrics.h"
#include "cdcache/process.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A real line (from proc(5)'s layout): pid (comm) state ppid ... utime=14 stime=15 ... threads=20
 * ... starttime=22 vsize=23 rss=24 ... */
#define STAT_TAIL                                                                                  \
    "S 1 100 100 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 5000 104857600 2560 "                \
    "18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n"

Test(process, parses_a_stat_line)
{
    struct process_stats st;

    memset(&st, 0, sizeof(st));
    cr_assert_eq(process_parse_stat("1234 (cdcache) " STAT_TAIL, 1700000000, 100, 4096, &st), 0);
    cr_assert_float_eq(st.cpu_seconds, 4.0, 1e-9, "(250 + 150) ticks at 100 Hz");
    cr_assert_float_eq(st.start_time_seconds, 1700000050.0, 1e-6, "boot + 5000 ticks");
    cr_assert_eq(st.threads, 7);
    cr_assert_eq(st.virtual_bytes, 104857600);
    cr_assert_eq(st.resident_bytes, 2560 * 4096);
}

Test(process, command_names_with_spaces_and_parentheses)
{
    struct process_stats st;

    memset(&st, 0, sizeof(st));
    cr_assert_eq(process_parse_stat("1234 (a) b (c) d) " STAT_TAIL, 0, 100, 4096, &st), 0);
    cr_assert_eq(st.threads, 7);
    cr_assert_eq(st.resident_bytes, 2560 * 4096);
}

Test(process, refuses_what_is_not_a_stat_line)
{
    struct process_stats st;

    memset(&st, 0, sizeof(st));
    st.threads = 42;
    cr_assert_eq(process_parse_stat("", 0, 100, 4096, &st), CDC_EINVAL);
    cr_assert_eq(process_parse_stat("1234 cdcache S 1 2", 0, 100, 4096, &st), CDC_EINVAL);
    cr_assert_eq(process_parse_stat("1234 (x) S 1 2 3\n", 0, 100, 4096, &st), CDC_EINVAL,
                 "cut short");
    cr_assert_eq(process_parse_stat("1234 (x) S 1 100 100 0 -1 4194560 1000 0 0 0 25x 150 0 0 20 "
                                    "0 7 0 5000 104857600 2560",
                                    0, 100, 4096, &st),
                 CDC_EINVAL, "a field that is not a number");
    cr_assert_eq(process_parse_stat("1234 (cdcache) " STAT_TAIL, 0, 0, 4096, &st), CDC_EINVAL);
    cr_assert_eq(st.threads, 42, "out is written only on success");
}

static void *idle(void *arg)
{
    pthread_barrier_wait(arg);
    pthread_barrier_wait(arg);
    return NULL;
}

Test(process, reads_this_process)
{
    struct process_stats before, during;
    pthread_barrier_t b;
    pthread_t t[3];

    process_stats(&before);
    cr_assert_geq(before.threads, 1);
    cr_assert_gt(before.resident_bytes, 0);
    cr_assert_geq(before.virtual_bytes, before.resident_bytes);
    cr_assert_geq(before.open_fds, 3, "stdin, stdout and stderr at least");
    cr_assert_geq(before.cpu_seconds, 0);
    cr_assert_leq(before.start_time_seconds, (double)time(NULL) + 1);
    cr_assert_gt(before.start_time_seconds, (double)time(NULL) - 3600, "started within the hour");

    pthread_barrier_init(&b, NULL, 4);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, idle, &b), 0);
    pthread_barrier_wait(&b);
    process_stats(&during);
    cr_assert_eq(during.threads, before.threads + 3);
    pthread_barrier_wait(&b);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&b);

    int fd = dup(0);
    cr_assert_geq(fd, 0);
    process_stats(&during);
    cr_assert_eq(during.open_fds, before.open_fds + 1, "a dup() is one more descriptor");
    close(fd);
}

Test(process, renders_build_info_and_the_process_families)
{
    static const char *const families[] = {
        "# TYPE cdcache_build_info gauge\n",
        "cdcache_build_info{version=\"" CDCACHE_VERSION "\"} 1\n",
        "# TYPE process_cpu_seconds_total counter\n",
        "# TYPE process_resident_memory_bytes gauge\n",
        "# TYPE process_virtual_memory_bytes gauge\n",
        "# TYPE process_start_time_seconds gauge\n",
        "# TYPE process_threads gauge\n",
        "# TYPE process_open_fds gauge\n",
        "# TYPE process_max_fds gauge\n",
    };
    struct metrics_page p;
    struct buf out;

    buf_init(&out, 1 << 16);
    p.out = &out;
    p.rc = 0;
    process_metrics_render(&p);
    cr_assert_eq(p.rc, 0);
    cr_assert_eq(buf_append(&out, "", 1), 0);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        cr_assert(strstr(out.data, families[i]), "no %s in:\n%s", families[i], out.data);
    cr_assert_null(strstr(out.data, " -1\n"), "no sentinel values:\n%s", out.data);
    buf_free(&out);
}
