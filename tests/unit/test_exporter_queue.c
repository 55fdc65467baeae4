/* The batch queue: the bound on queued records, when batches are handed
 * over (full, old enough, or forced), and the sender's hand-over of
 * metric exports and the stop. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "process_resource.h"
#include "queue.h"

static struct dx_resource *resource(void)
{
    struct dx_resource *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->refs = 1;
    strcpy(r->service, "svc");
    return r;
}

static int put(enum dx_signal k, struct dx_resource *r, const char *text)
{
    return dx_queue_put(k, r, text, (uint32_t)strlen(text) + 1);
}

Test(exporter_queue, room_is_bounded_and_given_back)
{
    struct dx_resource *r = resource();
    dx_queue_configure(2, 5, 60000);
    cr_assert_eq(dx_queue_room(DX_TRACES), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(put(DX_TRACES, r, "span"), 0);
    cr_assert_eq(dx_queue_room(DX_TRACES), 0);
    cr_assert_eq(dx_queue_room(DX_LOGS), 5, "each signal has its own bound");
    cr_assert_eq(r->refs, 6, "each queued record holds its resource");
    /* Two full batches went to the sender; the fifth record is filling. */
    int metrics, stopping;
    struct dx_batch *a = dx_queue_wait(&metrics, &stopping);
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert(a && b);
    cr_assert_eq(a->count, 2);
    cr_assert_eq(b->count, 2);
    cr_assert_eq(dx_queue_queued(DX_TRACES), 5);
    dx_batch_free(a);
    cr_assert_eq(dx_queue_room(DX_TRACES), 2);
    dx_batch_free(b);
    dx_queue_flush_due(1);
    struct dx_batch *c = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(c);
    cr_assert_eq(c->count, 1);
    dx_batch_free(c);
    cr_assert_eq(dx_queue_queued(DX_TRACES), 0);
    cr_assert_eq(r->refs, 1);
    dx_resource_unref(r);
}

Test(exporter_queue, records_keep_their_bytes_and_order)
{
    struct dx_resource *r = resource();
    dx_queue_configure(3, 100, 60000);
    const char *texts[] = {"a", "bcdefghij", "0123456789abcdef0"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(put(DX_LOGS, r, texts[i]), 0);
    int metrics, stopping;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b);
    cr_assert_eq(b->kind, DX_LOGS);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        struct dx_entry e;
        memcpy(&e, b->data + off, sizeof e);
        cr_assert_eq(e.res, r);
        cr_assert_eq(e.len, strlen(texts[i]) + 1);
        cr_assert_str_eq((const char *)b->data + off + sizeof e, texts[i]);
        off += sizeof e + ((e.len + 7u) & ~7u);
    }
    cr_assert_eq(off, b->used);
    dx_batch_free(b);
    dx_resource_unref(r);
}

Test(exporter_queue, young_batches_wait_for_the_delay)
{
    struct dx_resource *r = resource();
    dx_queue_configure(100, 100, 30);
    cr_assert_eq(put(DX_TRACES, r, "span"), 0);
    dx_queue_flush_due(0);
    cr_assert_eq(dx_queue_idle(), 1, "records still filling are not the sender's yet");
    struct timespec ts = {0, 40 * 1000000};
    nanosleep(&ts, NULL);
    dx_queue_flush_due(0);
    int metrics, stopping;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b, "a batch older than OTEL_BSP_SCHEDULE_DELAY is handed over");
    cr_assert_eq(b->count, 1);
    dx_batch_free(b);
    dx_resource_unref(r);
}

Test(exporter_queue, metric_exports_and_the_stop)
{
    dx_queue_configure(10, 100, 60000);
    cr_assert_eq(dx_queue_idle(), 1);
    dx_queue_request_metrics();
    cr_assert_eq(dx_queue_idle(), 0, "a metric export is due");
    int metrics = 0, stopping = 1;
    cr_assert_null(dx_queue_wait(&metrics, &stopping));
    cr_assert_eq(metrics, 1);
    cr_assert_eq(stopping, 0);
    cr_assert_eq(dx_queue_idle(), 0, "the sender is busy until it asks again");
    dx_queue_stop();
    cr_assert_null(dx_queue_wait(&metrics, &stopping));
    cr_assert_eq(metrics, 1, "a stop brings a last metric export");
    cr_assert_eq(stopping, 1);
    cr_assert_null(dx_queue_wait(&metrics, &stopping));
    cr_assert_eq(metrics, 0);
    cr_assert_eq(stopping, 1);
    cr_assert_eq(dx_queue_idle(), 1);
}

static void *late_request(void *arg)
{
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    dx_queue_request_metrics();
    return arg;
}

Test(exporter_queue, the_sender_sleeps_until_there_is_work)
{
    dx_queue_configure(10, 100, 60000);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, late_request, NULL), 0);
    int metrics = 0, stopping = 0;
    cr_assert_null(dx_queue_wait(&metrics, &stopping));
    cr_assert_eq(metrics, 1, "woken by the request, not before");
    pthread_join(th, NULL);
}

/* A released batch's memory comes back for a later one: it must start
 * empty, and count its own records and references only. */
Test(exporter_queue, a_reused_batch_starts_afresh)
{
    struct dx_resource *r = resource(), *q = resource();
    dx_queue_configure(3, 100, 60000);
    int metrics, stopping;
    for (int round = 0; round < 4; round++) {
        cr_assert_eq(put(DX_TRACES, r, "one"), 0);
        cr_assert_eq(put(DX_TRACES, q, "two"), 0);
        cr_assert_eq(put(DX_TRACES, r, round % 2 ? "three" : "3"), 0);
        cr_assert_eq(r->refs, 3);
        cr_assert_eq(q->refs, 2);
        struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
        cr_assert_not_null(b);
        cr_assert_eq(b->count, 3);
        size_t off = 0;
        const char *texts[] = {"one", "two", round % 2 ? "three" : "3"};
        for (int i = 0; i < 3; i++) {
            struct dx_entry e;
            memcpy(&e, b->data + off, sizeof e);
            cr_assert_eq(e.res, i == 1 ? q : r);
            cr_assert_str_eq((const char *)b->data + off + sizeof e, texts[i]);
            off += sizeof e + ((e.len + 7u) & ~7u);
        }
        cr_assert_eq(off, b->used);
        dx_batch_free(b);
        cr_assert_eq(r->refs, 1, "round %d", round);
        cr_assert_eq(q->refs, 1, "round %d", round);
        cr_assert_eq(dx_queue_queued(DX_TRACES), 0);
    }
    dx_resource_unref(r);
    dx_resource_unref(q);
}

/* References held by a run of records of one resource go back at once,
 * and the last one frees the resource (LeakSanitizer would tell). */
Test(exporter_queue, the_last_reference_frees_the_resource)
{
    struct dx_resource *r = resource();
    dx_queue_configure(50, 100, 60000);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(put(DX_LOGS, r, "line"), 0);
    cr_assert_eq(r->refs, 51);
    dx_resource_unref(r); /* the batch holds the only references now */
    int metrics, stopping;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b);
    cr_assert_eq(r->refs, 50);
    dx_batch_free(b);
}
