/*
 * Added latency per request through the libcurl path: one easy handle
 * reused on a keep-alive loopback connection to an in-process server
 * (which uses libc directly, so only the client pays for dynobs). Runs
 * itself alternately with dynobs on and with OTEL_SDK_DISABLED=true and
 * prints the medians.
 *
 *   build/bench/dynobs-curl-bench [--quick]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

static ssize_t (*libc_read)(int, void *, size_t);
static ssize_t (*libc_write)(int, const void *, size_t);

static void *server(void *arg)
{
    int l = *(int *)arg;
    for (;;) {
        int fd = accept(l, NULL, NULL);
        if (fd < 0)
            return NULL;
        bench_answer(fd, libc_read, libc_write);
        close(fd);
    }
}

static size_t sink(char *p, size_t s, size_t n, void *a)
{
    (void)p, (void)a;
    return s * n;
}

/* One measurement: median per-request ns over batches. */
static double measure(int batches)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 4);
    getsockname(l, (struct sockaddr *)&a, &al);
    pthread_t th;
    pthread_create(&th, NULL, server, &l);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/items?id=1", ntohs(a.sin_port));
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    for (int i = 0; i < 50; i++)
        curl_easy_perform(h);
    double *v = malloc(sizeof(double) * (size_t)batches);
    for (int b = 0; b < batches; b++) {
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < 20; i++)
            curl_easy_perform(h);
        v[b] = (double)(bench_now_ns() - t0) / 20;
    }
    double m = bench_median(v, batches);
    curl_easy_cleanup(h);
    return m;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    libc_read = (ssize_t(*)(int, void *, size_t))dlsym(libc, "read");
    libc_write = (ssize_t(*)(int, const void *, size_t))dlsym(libc, "write");
    if (getenv("DYNOBS_CURL_BENCH_CHILD")) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        printf("%.1f\n", measure(quick ? 30 : 150));
        return 0;
    }
    char dir[] = "/tmp/dynobs-curlbench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    setenv("DYNOBS_SHM_DIR", dir, 1);
    setenv("DYNOBS_RING_BYTES", "8M", 1);
    setenv("DYNOBS_CURL_BENCH_CHILD", "1", 1);
    double on[3] = {0}, off[3] = {0};
    for (int r = 0; r < 3; r++) {
        for (int mode = 0; mode < 2; mode++) {
            char cmd[512];
            snprintf(cmd, sizeof cmd, "%s /proc/%d/exe %s", mode ? "OTEL_SDK_DISABLED=true" : "",
                     getpid(), quick ? "--quick" : "");
            FILE *p = popen(cmd, "r");
            double v = 0;
            if (!p || fscanf(p, "%lf", &v) != 1)
                return 1;
            pclose(p);
            (mode ? off : on)[r] = v;
        }
    }
    bench_median(on, 3);
    bench_median(off, 3); /* sorted: [1] is the median */
    printf("%-58s %10s %10s %10s\n", "operation (median ns)", "disabled", "dynobs", "added");
    printf("%-58s %10.1f %10.1f %10.1f\n", "libcurl request, keep-alive loopback (curl path)",
           off[1], on[1], on[1] - off[1]);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) != 0;
}
