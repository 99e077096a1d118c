/* The consumer's ceiling: the same XREADGROUP + XACK traffic, pipelined the same way, with no
 * decoding or applying, until the stream's backlog is drained. Prints entries per second. usage:
 * xread_ceiling PORT STREAM GROUP COUNT */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    redisContext *c;
    const char *stream, *group, *count;
    long total = 0;
    int acks_owed = 0;
    double t0;

    if (argc < 5)
        return 2;
    c = redisConnect("127.0.0.1", atoi(argv[1]));
    stream = argv[2];
    group = argv[3];
    count = argv[4];
    if (!c || c->err)
        return 1;
    if (getenv("REDISCLI_AUTH")) { /* the stack's Redis has ACL users: the admin's password */
        redisReply *a = redisCommand(c, "AUTH %s", getenv("REDISCLI_AUTH"));
        if (!a || a->type == REDIS_REPLY_ERROR)
            return 1;
        freeReplyObject(a);
    }
    t0 = now();
    /* The consumer's pattern with nothing in between: the next XREADGROUP goes out before the
     * current batch's XACK, so Redis prepares the next batch while this side builds the ack. */
    redisAppendCommand(c, "XREADGROUP GROUP %s bench COUNT %s STREAMS %s >", group, count, stream);
    for (;;) {
        redisReply *r = NULL, *ack = NULL;
        redisReply *entries;
        const char **argv_ack;
        size_t *lens;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            break;
        if (acks_owed && redisGetReply(c, (void **)&ack) == REDIS_OK)
            freeReplyObject(ack);
        acks_owed = 0;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            break;
        }
        redisAppendCommand(c, "XREADGROUP GROUP %s bench COUNT %s STREAMS %s >", group, count,
                           stream);
        entries = r->element[0]->element[1];
        argv_ack = malloc((entries->elements + 3) * sizeof(*argv_ack));
        lens = malloc((entries->elements + 3) * sizeof(*lens));
        argv_ack[0] = "XACK";
        argv_ack[1] = stream;
        argv_ack[2] = group;
        for (int i = 0; i < 3; i++)
            lens[i] = strlen(argv_ack[i]);
        for (size_t i = 0; i < entries->elements; i++) {
            argv_ack[3 + i] = entries->element[i]->element[0]->str;
            lens[3 + i] = entries->element[i]->element[0]->len;
        }
        total += (long)entries->elements;
        redisAppendCommandArgv(c, (int)(3 + entries->elements), argv_ack, lens);
        acks_owed = 1;
        free(argv_ack);
        free(lens);
        freeReplyObject(r);
    }
    printf("%ld entries in %.3f s: %.0f entries/s\n", total, now() - t0,
           (double)total / (now() - t0));
    redisFree(c);
    return 0;
}
