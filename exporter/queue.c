#include "queue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* Set once before the threads start, read-only afterwards. */
static uint32_t batch_max = 512, queue_max = 2048;
static uint64_t delay_ms = 5000;

/* The main thread's batches being filled: touched by it alone. */
static struct dx_batch *filling[DX_QUEUED_SIGNALS];

/* Records queued or filling, per signal: atomic, so that the main thread
 * can test for room and /metrics can read them without the lock. */
static uint64_t queued[DX_QUEUED_SIGNALS];

/* Released batches kept for reuse, under spare_lock: a batch of
 * thousands of records takes megabytes, which fresh from malloc would
 * cost page faults and copies as it grows, for every batch. At most
 * SPARE_MAX are kept, each of at most SPARE_MAX_BYTES. */
#define SPARE_MAX 2
#define SPARE_MAX_BYTES ((size_t)4 << 20)
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dx_batch *spare;
static int nspare;

/* The hand-over to the sender, under qlock. */
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static struct dx_batch *qhead, *qtail; /* full batches waiting for the sender */
static int metrics_due;                /* the sender should export metrics */
static int stopping;
static int sender_busy;

void dx_queue_configure(uint32_t batch, uint32_t queue, uint64_t delay)
{
    batch_max = batch ? batch : 1;
    queue_max = queue ? queue : 1;
    delay_ms = delay;
}

static int discarded[DX_QUEUED_SIGNALS];

void dx_queue_discard(enum dx_signal k)
{
    discarded[k] = 1;
}

int dx_queue_room(enum dx_signal k)
{
    uint64_t q = __atomic_load_n(&queued[k], __ATOMIC_ACQUIRE);
    return q >= queue_max ? 0 : (int)(queue_max - q);
}

uint64_t dx_queue_queued(enum dx_signal k)
{
    return __atomic_load_n(&queued[k], __ATOMIC_RELAXED);
}

static void push(struct dx_batch *b)
{
    pthread_mutex_lock(&qlock);
    if (qtail)
        qtail->next = b;
    else
        qhead = b;
    qtail = b;
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
}

static struct dx_batch *batch_new(enum dx_signal k)
{
    pthread_mutex_lock(&spare_lock);
    struct dx_batch *b = spare;
    if (b) {
        spare = b->next;
        nspare--;
    }
    pthread_mutex_unlock(&spare_lock);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return NULL;
        b->cap = 64 * 1024;
        b->data = malloc(b->cap);
        if (!b->data) {
            free(b);
            return NULL;
        }
    }
    b->next = NULL;
    b->kind = k;
    b->count = 0;
    b->used = 0;
    b->nruns = 0;
    b->opened_ns = dynobs__mono_ns();
    return b;
}

static void batch_release(struct dx_batch *b)
{
    if (b->cap <= SPARE_MAX_BYTES) {
        pthread_mutex_lock(&spare_lock);
        int keep = nspare < SPARE_MAX;
        if (keep) {
            b->next = spare;
            spare = b;
            nspare++;
        }
        pthread_mutex_unlock(&spare_lock);
        if (keep)
            return;
    }
    free(b->runs);
    free(b->data);
    free(b);
}

/* Notes one more reference of the batch on res: 0, or -1 when out of
 * memory. */
static int add_ref(struct dx_batch *b, struct dx_resource *res)
{
    if (b->nruns && b->runs[b->nruns - 1].res == res) {
        b->runs[b->nruns - 1].n++;
        return 0;
    }
    if (b->nruns == b->runs_cap) {
        size_t cap = b->runs_cap ? b->runs_cap * 2 : 8;
        struct dx_run *r = realloc(b->runs, sizeof *r * cap);
        if (!r)
            return -1;
        b->runs = r;
        b->runs_cap = cap;
    }
    b->runs[b->nruns++] = (struct dx_run){.res = res, .n = 1};
    return 0;
}

int dx_queue_put(enum dx_signal k, struct dx_resource *res, const void *rec, uint32_t len)
{
    if (discarded[k])
        return 0; /* (what a batch of them would have come to at the sender) */
    struct dx_batch *b = filling[k];
    size_t need = sizeof(struct dx_entry) + ((len + 7u) & ~7u);
    if (!b) {
        b = batch_new(k);
        if (!b)
            return -1;
        filling[k] = b;
    }
    if (b->used + need > b->cap) {
        size_t cap = b->cap * 2;
        while (cap < b->used + need)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    struct dx_entry e = {.res = res, .len = len};
    if (add_ref(b, res) < 0)
        return -1;
    dx_resource_ref(res);
    memcpy(b->data + b->used, &e, sizeof e);
    memcpy(b->data + b->used + sizeof e, rec, len);
    b->used += need;
    b->count++;
    __atomic_fetch_add(&queued[k], 1, __ATOMIC_RELEASE);
    if (b->count >= batch_max) {
        filling[k] = NULL;
        push(b);
    }
    return 0;
}

void dx_queue_flush_due(int force)
{
    uint64_t now = dynobs__mono_ns();
    for (int k = 0; k < DX_QUEUED_SIGNALS; k++) {
        struct dx_batch *b = filling[k];
        if (b && b->count && (force || now - b->opened_ns >= delay_ms * 1000000ull)) {
            filling[k] = NULL;
            push(b);
        }
    }
}

void dx_queue_request_metrics(void)
{
    pthread_mutex_lock(&qlock);
    metrics_due = 1;
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
}

void dx_queue_stop(void)
{
    pthread_mutex_lock(&qlock);
    metrics_due = 1;
    stopping = 1;
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
}

int dx_queue_idle(void)
{
    pthread_mutex_lock(&qlock);
    int idle = !qhead && !sender_busy && !metrics_due;
    pthread_mutex_unlock(&qlock);
    return idle;
}

static struct dx_batch *take(void)
{
    struct dx_batch *b = qhead;
    if (b) {
        qhead = b->next;
        if (!qhead)
            qtail = NULL;
        b->next = NULL;
    }
    return b;
}

struct dx_batch *dx_queue_wait(int *metrics, int *stop)
{
    pthread_mutex_lock(&qlock);
    sender_busy = 0;
    while (!qhead && !metrics_due && !stopping) {
        /* Timed, as a safety net: a lost wake-up costs 100 ms, not a hang. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&qcond, &qlock, &ts);
    }
    struct dx_batch *b = take();
    *metrics = metrics_due;
    metrics_due = 0;
    *stop = stopping;
    sender_busy = b || *metrics;
    pthread_mutex_unlock(&qlock);
    return b;
}

void dx_batch_free(struct dx_batch *b)
{
    if (!b)
        return;
    /* A run's references but the last go at once: the batch still holds
     * that one, so the count cannot reach zero before dx_resource_unref
     * takes it (and frees the resource if it was the last). */
    for (size_t i = 0; i < b->nruns; i++) {
        struct dx_run *r = &b->runs[i];
        if (r->res && r->n > 1)
            __atomic_fetch_sub(&r->res->refs, (int)(r->n - 1), __ATOMIC_ACQ_REL);
        dx_resource_unref(r->res);
    }
    __atomic_fetch_sub(&queued[b->kind], b->count, __ATOMIC_RELEASE);
    batch_release(b);
}
