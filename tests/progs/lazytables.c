/*
 * Which anonymous mappings the preloaded shim makes, seen from inside a
 * process: the program defines mmap itself (exported, so that the
 * shim's calls reach it first; libc's and the loader's own mappings do
 * not) and prints the length of each anonymous one the shim asked for.
 *
 *   dynobs-lazytables record|watch
 *
 * record: ends one span, a process that uses none of the shim's tables
 * kept for curl, OpenSSL, libpq, routes, watches, metric handles,
 * multiplexed requests or HTTP/2 streams. watch: the same, then makes a
 * metric watch (and removes it), which maps the watch table.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dynobs/dynobs.h"

#define MAX 256
static size_t lens[MAX];
static int n;

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags,
                                                 int fd, off_t off)
{
    if ((flags & MAP_ANONYMOUS) && n < MAX)
        lens[n++] = len;
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static void on_change(const dynobs_watch_event *ev, void *user)
{
    (void)ev, (void)user;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    dynobs_span_end(dynobs_span_start("first", DYNOBS_SPAN_KIND_INTERNAL));
    if (!strcmp(argv[1], "watch")) {
        int id = dynobs_metric_watch("lazytables.value", NULL, DYNOBS_WATCH_CHANGE, 0,
                                     on_change, NULL);
        if (id <= 0 || dynobs_metric_unwatch(id) != 0)
            return 3;
    } else if (strcmp(argv[1], "record")) {
        return 2;
    }
    int k = n; /* printing may map nothing of the shim's, but read once */
    for (int i = 0; i < k; i++)
        printf("anon %zu\n", lens[i]);
    return 0;
}
