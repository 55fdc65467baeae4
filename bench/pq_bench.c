/*
 * Median time of a PQexec("SELECT 1") round trip over a unix socket.
 * Links libdynobs.so (so the libpq interposers are in the path); run it
 * with and without OTEL_SDK_DISABLED=true to see what dynobs adds:
 * bench/pq_bench.py does that, against a server it starts.
 *
 *   dynobs-pq-bench CONNINFO [BATCHES]
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

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
        double t0 = now();
        for (int i = 0; i < 20; i++)
            PQclear(PQexec(c, "SELECT 1"));
        v[b] = (now() - t0) / 20;
    }
    qsort(v, (size_t)batches, sizeof *v, cmp);
    printf("%.1f\n", v[batches / 2]);
    PQfinish(c);
    return 0;
}
