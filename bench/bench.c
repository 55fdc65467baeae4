/*
 * dynobs micro-benchmarks. Prints a table of median nanoseconds per
 * operation (over batches), with a consumer thread draining the ring as
 * the exporter would, so that spans take the real write path.
 *
 *   build/bench/dynobs-bench [--quick]
 *   build/bench/dynobs-bench --span-cost N
 *
 * --span-cost runs N spans of the table's span row and nothing else, no
 * consumer, for instruction counts: with a ring that holds them all
 * (DYNOBS_RING_BYTES=64M), every span takes the write path, and
 *   valgrind --tool=callgrind --toggle-collect=op_span_cost ...
 * divided by N is the cost of one span. It prints the ring's counters so
 * that the run can be checked for drops.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "reader.h"
#include "segment.h"
#include "tracecontext.h"

#include "benchutil.h"

static int quick;
static volatile int stop_consumer;
static uint64_t consumed;

struct result {
    double median, p90;
};

/* Runs fn(batch) `batches` times; each call does `batch` operations,
 * followed by a pause of pause_us (not timed) when it is not 0. */
static struct result measure_paced(void (*fn)(int), int batch, int batches, unsigned pause_us)
{
    double *v = malloc(sizeof(double) * (size_t)batches);
    fn(batch); /* warm-up */
    for (int i = 0; i < batches; i++) {
        uint64_t t0 = bench_now_ns();
        fn(batch);
        v[i] = (double)(bench_now_ns() - t0) / batch;
        if (pause_us)
            usleep(pause_us);
    }
    qsort(v, (size_t)batches, sizeof *v, bench_cmp_double);
    struct result r = {v[batches / 2], v[batches * 9 / 10]};
    free(v);
    return r;
}

static struct result measure(void (*fn)(int), int batch, int batches)
{
    return measure_paced(fn, batch, batches, 0);
}

/* The span rows pause 1 ms after each batch of 1000 (about 200 KB of
 * records): the consumer, draining every 1 ms while there are records,
 * then keeps up with the 4 MiB shard of a thread, so that every span is
 * written (the rows print the drops, which should be 0) and none takes the
 * cheaper path of a full ring. */
#define SPAN_PAUSE_US 1000
static void op_span(int n)
{
    for (int i = 0; i < n; i++) {
        dynobs_span *s = dynobs_span_start("GET /api/items", DYNOBS_SPAN_KIND_SERVER);
        dynobs_span_set_str(s, "http.request.method", "GET");
        dynobs_span_set_int(s, "http.response.status_code", 200);
        dynobs_span_set_str(s, "url.path", "/api/items");
        dynobs_span_end(s);
    }
}

/* The same as op_span, under its own name for callgrind's toggle. */
static __attribute__((noinline)) void op_span_cost(int n)
{
    op_span(n);
}

static char tp_buf[64];
static const uint8_t tid[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t sid[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};

static void op_tp_format(int n)
{
    for (int i = 0; i < n; i++) {
        dynobs__traceparent_format(tid, sid, (uint8_t)(i & 1), tp_buf, sizeof tp_buf);
        __asm__ __volatile__("" ::: "memory");
    }
}

static void op_tp_parse(int n)
{
    static const char *in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    struct dynobs_traceparent p;
    for (int i = 0; i < n; i++) {
        if (dynobs__traceparent_parse(in, 55, &p) != 0)
            abort();
        __asm__ __volatile__("" ::: "memory");
    }
}

/* Reference costs of this machine, measured in the same run, so that the
 * table can be read on a noisy or slow host: a span needs two timestamps
 * and at least two locked instructions. */
static volatile uint64_t ref_word;

static void op_ref_clock(int n)
{
    for (int i = 0; i < n; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        __asm__ __volatile__("" ::"r"(ts.tv_nsec) : "memory");
    }
}

static void op_ref_atomic(int n)
{
    for (int i = 0; i < n; i++)
        __atomic_fetch_add(&ref_word, 1, __ATOMIC_RELAXED);
}

static void op_counter(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_counter_add("http.server.requests", 1, "method=GET,code=200");
}

static void op_histogram(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_histogram_record("http.server.duration", (double)(i & 1023), "method=GET");
}

/* The same series through handles, found once. */
static dynobs_metric *counter_h, *histogram_h;

static void op_counter_h(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_counter_add_h(counter_h, 1);
}

static void op_histogram_h(int n)
{
    for (int i = 0; i < n; i++)
        dynobs_histogram_record_h(histogram_h, (double)(i & 1023));
}

/* The consumer: drains this process's segment like the exporter. */
static void *consumer(void *arg)
{
    const char *dir = arg;
    char path[1024];
    snprintf(path, sizeof path, "%s/%d-%llu.seg", dir, getpid(),
             (unsigned long long)dynobs__proc_start_ticks(0));
    struct dynobs_reader *r = malloc(sizeof *r);
    while (!stop_consumer && dynobs__reader_open(r, path, DYNOBS_READER_CONSUME) < 0)
        usleep(1000);
    const struct dynobs_rec_hdr *h;
    while (!stop_consumer) {
        int got = 0;
        while (dynobs__reader_next(r, &h) == 1)
            got++, consumed++;
        /* Like the exporter: drain, then sleep (1 ms after a drain that
         * found records, 2 ms otherwise); polling the head without pause
         * would bounce its cache line on every record. */
        usleep(got ? 1000 : 2000);
    }
    dynobs__reader_close(r);
    free(r);
    return NULL;
}

struct two {
    struct result r;
};

static void *span_thread(void *arg)
{
    struct two *t = arg;
    t->r = measure_paced(op_span, 1000, quick ? 200 : 2000, SPAN_PAUSE_US);
    return NULL;
}

static uint64_t counter(const char *dir, int c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%d-%llu.seg", dir, getpid(),
             (unsigned long long)dynobs__proc_start_ticks(0));
    struct dynobs_reader *r = malloc(sizeof *r);
    uint64_t v = 0;
    if (dynobs__reader_open(r, path, 0) == 0) {
        v = dynobs__reader_counter(r, (unsigned)c);
        dynobs__reader_close(r);
    }
    free(r);
    return v;
}

static int remove_dir(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) != 0;
}

/* --span-cost N: see the comment at the top. */
static int span_cost(const char *dir, long n)
{
    op_span(100); /* the segment, the thread block, the clock's first sample */
    usleep(120000); /* the clock's first TSC calibration */
    uint64_t w0 = counter(dir, DYNOBS_CTR_RECORDS_WRITTEN);
    uint64_t d0 = counter(dir, DYNOBS_CTR_RECORDS_DROPPED);
    for (long i = 0; i < n; i += 1000)
        op_span_cost(n - i < 1000 ? (int)(n - i) : 1000);
    printf("spans %ld written %llu dropped %llu\n", n,
           (unsigned long long)(counter(dir, DYNOBS_CTR_RECORDS_WRITTEN) - w0),
           (unsigned long long)(counter(dir, DYNOBS_CTR_RECORDS_DROPPED) - d0));
    return remove_dir(dir);
}

int main(int argc, char **argv)
{
    quick = argc > 1 && !strcmp(argv[1], "--quick");
    long cost_spans = argc > 2 && !strcmp(argv[1], "--span-cost") ? atol(argv[2]) : 0;
    /* The library reads its configuration at load time: re-run ourselves
     * with a private segment directory and a ring sized for the load. */
    if (!getenv("DYNOBS_SHM_DIR")) {
        char dir[] = "/tmp/dynobs-bench-XXXXXX";
        if (!mkdtemp(dir))
            return 1;
        setenv("DYNOBS_SHM_DIR", dir, 1);
        setenv("DYNOBS_RING_BYTES", cost_spans ? "64M" : "8M", 0);
        execv("/proc/self/exe", argv);
        return 1;
    }
    const char *dir = getenv("DYNOBS_SHM_DIR");
    if (!dynobs_enabled()) {
        fprintf(stderr, "dynobs is disabled\n");
        return 1;
    }
    dynobs_counter_add("bench.start", 1, NULL); /* creates the segment */
    if (cost_spans > 0)
        return span_cost(dir, cost_spans);
    pthread_t cons;
    pthread_create(&cons, NULL, consumer, (void *)dir);
    int batches = quick ? 200 : 2000;

    /* Let the span clock finish its first TSC calibration (50 ms). */
    usleep(120000);
    op_span(10);
    printf("%-44s %10s %10s %10s\n", "operation", "median ns", "p90 ns", "target ns");
    struct result ref = measure(op_ref_clock, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "(reference) clock_gettime(CLOCK_REALTIME)", ref.median,
           ref.p90, "-");
    ref = measure(op_ref_atomic, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "(reference) one uncontended atomic add", ref.median,
           ref.p90, "-");
    uint64_t sd0 = counter(dir, DYNOBS_CTR_RECORDS_DROPPED);
    uint64_t sw0 = counter(dir, DYNOBS_CTR_RECORDS_WRITTEN);
    struct result r = measure_paced(op_span, 1000, batches, SPAN_PAUSE_US);
    printf("%-44s %10.1f %10.1f %10s\n", "span start + 3 attributes + end, 1 thread", r.median,
           r.p90, "80");
    struct two t[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, span_thread, &t[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++)
        printf("%-41s %d %10.1f %10.1f %10s\n", "span start + 3 attributes + end, 2 threads:", i + 1,
               t[i].r.median, t[i].r.p90, "80");
    printf("%-44s %10llu of %llu\n", "(span rows: records dropped)",
           (unsigned long long)(counter(dir, DYNOBS_CTR_RECORDS_DROPPED) - sd0),
           (unsigned long long)(counter(dir, DYNOBS_CTR_RECORDS_WRITTEN) - sw0 +
                                counter(dir, DYNOBS_CTR_RECORDS_DROPPED) - sd0));
    r = measure(op_tp_format, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "traceparent format", r.median, r.p90, "30");
    r = measure(op_tp_parse, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "traceparent parse", r.median, r.p90, "30");
    r = measure(op_counter, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "counter add (name + 2 labels)", r.median, r.p90, "20");
    r = measure(op_histogram, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "histogram record (default 15 bounds)", r.median, r.p90,
           "30");
    counter_h = dynobs_counter_get("http.server.requests", "method=GET,code=200");
    histogram_h = dynobs_histogram_get("http.server.duration", "method=GET");
    r = measure(op_counter_h, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "counter add through a handle", r.median, r.p90, "10");
    r = measure(op_histogram_h, 1000, batches);
    printf("%-44s %10.1f %10.1f %10s\n", "histogram record through a handle", r.median, r.p90,
           "20");

    /* Ring throughput: one producer thread writing span records as fast
     * as it can for a fixed time, while the consumer drains every 1 ms. */
    uint64_t w0 = counter(dir, DYNOBS_CTR_RECORDS_WRITTEN);
    uint64_t d0 = counter(dir, DYNOBS_CTR_RECORDS_DROPPED);
    uint64_t c0 = consumed, t0 = bench_now_ns(), spans = 0;
    while (bench_now_ns() - t0 < (quick ? 200000000ull : 1000000000ull)) {
        op_span(1000);
        spans += 1000;
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    usleep(100000);
    uint64_t w = counter(dir, DYNOBS_CTR_RECORDS_WRITTEN) - w0;
    uint64_t d = counter(dir, DYNOBS_CTR_RECORDS_DROPPED) - d0;
    printf("%-44s %10.2f M/s\n", "ring: span records offered by 1 thread", spans / secs / 1e6);
    printf("%-44s %10.2f M/s (%.1f%% dropped: the consumer fell behind)\n",
           "ring: records committed", w / secs / 1e6, spans ? 100.0 * (double)d / (double)spans : 0.0);
    printf("%-44s %10.2f M/s\n", "ring: records drained by 1 consumer", (consumed - c0) / secs / 1e6);
    stop_consumer = 1;
    pthread_join(cons, NULL);
    return remove_dir(dir);
}
