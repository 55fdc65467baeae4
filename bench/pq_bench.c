/*
 * Median time of a PQexec("SELECT 1") round trip over a unix socket.
 * Links libdynobs.so (so the libpq interposers are in the path); run it
 * with and without OTEL_SDK_DISABLED=true to see what dynobs adds:
 * bench/pq_bench.py does that, against a server it starts.
 *
 *   dynobs-pq-bench CONNINFO [BATCHES]
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "benchutil.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int batches = argc > 2 ? atoi(argv[2]) : 200;
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK)
        return 3;
    for (int i = 0; i < 200; i++)
        PQclear(PQexec(c, "SELECT 1"));
    double *v = malloc(sizeof(double) * (size_t)batches);
    for (int b = 0; b < batches; b++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < 20; i++)
            PQclear(PQexec(c, "SELECT 1"));
        v[b] = (double)(bench_now_ns() - t0) / 20;
    }
    printf("%.1f\n", bench_median(v, batches));
    PQfinish(c);
    return 0;
}
