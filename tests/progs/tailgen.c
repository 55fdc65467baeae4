/*
 * Traces for the tail sampling test (integration/test_tail_sampling.py):
 * N traces of a root span and one child; every ERR_EVERY-th trace ends
 * with ERROR status on its child or, every other time, on its root; every
 * SLOW_EVERY-th child lasts SLOW_MS (0: none). Prints one line per trace:
 * its id, whether the head sampler kept it, the error (0 none, 1 on the
 * child, 2 on the root) and whether it was slow, for the test to compare
 * with what the receiver got. Links the no-op API; the test preloads the
 * real library.
 *
 * usage: dynobs-tailgen N ERR_EVERY [SLOW_EVERY SLOW_MS]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynobs/dynobs.h"

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int n = atoi(argv[1]), err_every = atoi(argv[2]);
    int slow_every = argc > 3 ? atoi(argv[3]) : 0, slow_ms = argc > 4 ? atoi(argv[4]) : 0;
    for (int i = 0; i < n; i++) {
        dynobs_span *root = dynobs_span_start("GET /work", DYNOBS_SPAN_KIND_SERVER);
        dynobs_span *child = dynobs_span_start("step", DYNOBS_SPAN_KIND_INTERNAL);
        char tp[64] = "";
        if (!root || !child || dynobs_span_traceparent(root, tp, sizeof tp) <= 0) {
            fprintf(stderr, "span %d not started\n", i);
            return 1;
        }
        dynobs_span_set_int(child, "i", i);
        int err = err_every > 0 && i % err_every == err_every - 1;
        int slow = slow_every > 0 && i % slow_every == slow_every - 1;
        if (slow) {
            struct timespec ts = {slow_ms / 1000, (long)(slow_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0)
                ;
        }
        /* Every other error is the root's: the child, which ends first,
         * must then wait in the exporter for the root's verdict. */
        if (err && (i / err_every) % 2)
            err = 2;
        if (err)
            dynobs_span_set_status(err == 1 ? child : root, DYNOBS_STATUS_ERROR, "failed");
        dynobs_span_end(child);
        dynobs_span_end(root);
        /* 00-<trace id>-<span id>-<flags> */
        printf("%.32s %d %d %d\n", tp + 3, (int)strtol(tp + 53, NULL, 16) & 1, err, slow);
        /* A little pacing, so that the application's ring never fills. */
        if (i % 100 == 99) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}
