/*
 * The traces the live view shows (ui_store.h): copies of span and log
 * records as they are drained, grouped by trace, in a bounded pool. New
 * traces are taken at most UI_NEW_PER_SEC a second, so that the view
 * costs a busy exporter a copy per span of a few traces, not of all of
 * them; a trace, once taken, gets all its spans (up to UI_SPANS each).
 * When the pool is full the oldest trace goes, unless it is among the
 * UI_SLOWEST slowest, which stay until slower ones come. Drained on the
 * main thread, read by the HTTP server's: one mutex, held briefly.
 */
#include "ui_store.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "tracecontext.h"
#include "util.h"

#define UI_TRACES 192
#define UI_SPANS 128
#define UI_LOGS 64
#define UI_SLOWEST 16
#define UI_NEW_PER_SEC 100

struct ui_rec {
    uint8_t *rec; /* a copy of the record, header included */
    uint32_t len;
    char service[DYNOBS_SERVICE_NAME_MAX + 1];
};

struct ui_trace {
    int used;
    uint8_t id[16];
    uint64_t seq;      /* when it was last added to: the pool's age order */
    uint64_t start_ns, end_ns;
    int nspans, nlogs, dropped;
    struct ui_rec spans[UI_SPANS];
    struct ui_rec logs[UI_LOGS];
};

static struct ui_trace pool[UI_TRACES];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t seq;
static uint64_t bucket_sec, bucket_left;
static uint64_t dropped_new; /* traces not taken: over the rate */

/* (the fields before the records only: the entries past the counts are
 * never read, and clearing all 52 KiB of them cost a busy exporter more
 * than the rest of the view) */
static void trace_free(struct ui_trace *t)
{
    for (int i = 0; i < t->nspans; i++)
        free(t->spans[i].rec);
    for (int i = 0; i < t->nlogs; i++)
        free(t->logs[i].rec);
    memset(t, 0, offsetof(struct ui_trace, spans));
}

/* Trace id -> pool slot + 1, open addressing; written by the main thread
 * only (the one that changes the pool), so it reads it without the lock.
 * Each entry holds the id's random half too: a span of a trace the view
 * does not keep (most of them) costs a hash and compares within these
 * 8 KiB, not a look at traces in the pool (52 KiB each, mostly out of the
 * cache). */
#define UI_INDEX 512
static struct {
    uint64_t key;  /* bytes 8-15 of the trace id: the random half of a W3C id */
    uint16_t slot; /* pool slot + 1; 0: free */
} index_[UI_INDEX];

static uint64_t id_key(const uint8_t id[16])
{
    uint64_t a;
    memcpy(&a, id + 8, 8);
    return a;
}

static unsigned slot_hash(uint64_t key)
{
    return (unsigned)((key * 0x9e3779b97f4a7c15ull) >> 55) % UI_INDEX;
}

static struct ui_trace *find(const uint8_t id[16])
{
    uint64_t key = id_key(id);
    for (unsigned i = slot_hash(key), n = 0; n < UI_INDEX && index_[i].slot;
         i = (i + 1) % UI_INDEX, n++) {
        if (index_[i].key != key)
            continue;
        struct ui_trace *t = &pool[index_[i].slot - 1];
        if (t->used && !memcmp(t->id, id, 16))
            return t;
    }
    return NULL;
}

/* The index again from the pool (after a trace left it: at most
 * UI_NEW_PER_SEC times a second). */
static void reindex(void)
{
    memset(index_, 0, sizeof index_);
    for (int k = 0; k < UI_TRACES; k++) {
        if (!pool[k].used)
            continue;
        uint64_t key = id_key(pool[k].id);
        unsigned i = slot_hash(key);
        while (index_[i].slot)
            i = (i + 1) % UI_INDEX;
        index_[i].key = key;
        index_[i].slot = (uint16_t)(k + 1);
    }
}

static uint64_t duration(const struct ui_trace *t)
{
    return t->end_ns > t->start_ns ? t->end_ns - t->start_ns : 0;
}

/* A slot for a new trace: a free one, else the oldest not among the
 * UI_SLOWEST slowest. A trace is among them when fewer than UI_SLOWEST
 * others are slower, that is when it is at least as slow as the
 * UI_SLOWEST-th slowest of the pool: one pass finds that duration, a
 * second the oldest trace below it (one look at each trace, not one at
 * every other trace for each). */
static struct ui_trace *take_slot(void)
{
    uint64_t top[UI_SLOWEST] = {0}; /* the slowest durations seen, slowest first */
    int ntop = 0;
    for (int i = 0; i < UI_TRACES; i++) {
        if (!pool[i].used)
            return &pool[i];
        uint64_t d = duration(&pool[i]);
        if (ntop == UI_SLOWEST && d <= top[ntop - 1])
            continue;
        int k = ntop < UI_SLOWEST ? ntop++ : ntop - 1;
        for (; k > 0 && top[k - 1] < d; k--)
            top[k] = top[k - 1];
        top[k] = d;
    }
    _Static_assert(UI_TRACES > UI_SLOWEST, "a full pool has its UI_SLOWEST slowest");
    struct ui_trace *oldest = NULL;
    for (int i = 0; i < UI_TRACES; i++)
        if (duration(&pool[i]) < top[UI_SLOWEST - 1] && (!oldest || pool[i].seq < oldest->seq))
            oldest = &pool[i];
    if (oldest)
        trace_free(oldest);
    return oldest;
}

static int admit(uint64_t now_ns)
{
    uint64_t sec = now_ns / 1000000000ull;
    if (sec != bucket_sec) {
        bucket_sec = sec;
        bucket_left = UI_NEW_PER_SEC;
    }
    if (!bucket_left) {
        __atomic_fetch_add(&dropped_new, 1, __ATOMIC_RELAXED);
        return 0;
    }
    bucket_left--;
    return 1;
}

static int copy(struct ui_rec *r, const struct dynobs_rec_hdr *h, const char *service)
{
    r->rec = malloc(h->len);
    if (!r->rec)
        return -1;
    memcpy(r->rec, h, h->len);
    r->len = h->len;
    size_t n = strnlen(service, DYNOBS_SERVICE_NAME_MAX);
    memcpy(r->service, service, n);
    r->service[n] = '\0';
    return 0;
}

/* DYNOBS_EXPORTER_UI=0 turns the view's collection off. */
static int collecting(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("DYNOBS_EXPORTER_UI");
        on = !(v && !strcmp(v, "0"));
    }
    return on;
}

void dx_ui_span(const char *service, const struct dynobs_rec_hdr *h, uint64_t now_ns)
{
    if (!collecting() || h->len < sizeof *h + sizeof(struct dynobs_span_rec))
        return;
    /* the trace id first, from its fixed place: most spans are of traces
     * the view does not take */
    const uint8_t *id = (const uint8_t *)(h + 1);
    struct ui_trace *t = find(id);
    if (!t && !admit(now_ns))
        return;
    struct dynobs_span_view v;
    if (dynobs__span_decode(h, h->len, &v) < 0)
        return;
    pthread_mutex_lock(&lock);
    if (!t && (t = take_slot()) != NULL) {
        t->used = 1;
        memcpy(t->id, v.f.trace_id, 16);
        t->start_ns = v.f.start_ns;
        t->end_ns = v.f.end_ns;
        reindex();
    }
    if (t) {
        t->seq = ++seq;
        if (t->nspans == UI_SPANS || copy(&t->spans[t->nspans], h, service) < 0) {
            t->dropped++;
        } else {
            t->nspans++;
            if (v.f.start_ns < t->start_ns)
                t->start_ns = v.f.start_ns;
            if (v.f.end_ns > t->end_ns)
                t->end_ns = v.f.end_ns;
        }
    }
    pthread_mutex_unlock(&lock);
}

void dx_ui_log(const char *service, const struct dynobs_rec_hdr *h)
{
    /* a log joins a trace the view holds; it does not bring one in */
    if (!collecting() || h->len < sizeof *h + sizeof(struct dynobs_log_rec))
        return;
    struct ui_trace *t = find((const uint8_t *)(h + 1));
    struct dynobs_log_view v;
    if (!t || dynobs__log_decode(h, h->len, &v) < 0)
        return;
    pthread_mutex_lock(&lock);
    if (t->nlogs < UI_LOGS && copy(&t->logs[t->nlogs], h, service) == 0)
        t->nlogs++;
    pthread_mutex_unlock(&lock);
}

static int by_recent(const void *a, const void *b)
{
    const struct ui_trace *x = *(const struct ui_trace *const *)a,
                          *y = *(const struct ui_trace *const *)b;
    return x->end_ns < y->end_ns ? 1 : x->end_ns > y->end_ns ? -1 : 0;
}

static int by_slowest(const void *a, const void *b)
{
    uint64_t x = duration(*(const struct ui_trace *const *)a),
             y = duration(*(const struct ui_trace *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

void dx_ui_each(int slowest, size_t max, dx_ui_trace_fn fn, void *u)
{
    struct ui_trace *list[UI_TRACES] = {NULL};
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < UI_TRACES; i++)
        if (pool[i].used)
            list[n++] = &pool[i];
    qsort(list, n, sizeof list[0], slowest ? by_slowest : by_recent);
    for (size_t i = 0; i < n && i < max; i++) {
        struct ui_trace *t = list[i];
        const uint8_t *spans[UI_SPANS], *logs[UI_LOGS];
        const char *ssvc[UI_SPANS], *lsvc[UI_LOGS];
        uint32_t slen[UI_SPANS], llen[UI_LOGS];
        for (int k = 0; k < t->nspans; k++) {
            spans[k] = t->spans[k].rec;
            slen[k] = t->spans[k].len;
            ssvc[k] = t->spans[k].service;
        }
        for (int k = 0; k < t->nlogs; k++) {
            logs[k] = t->logs[k].rec;
            llen[k] = t->logs[k].len;
            lsvc[k] = t->logs[k].service;
        }
        struct dx_ui_trace view = {t->id,   t->start_ns, t->end_ns, t->nspans, spans, slen,
                                   ssvc,    t->nlogs,    logs,      llen,      lsvc, t->dropped};
        fn(u, &view);
    }
    pthread_mutex_unlock(&lock);
}

uint64_t dx_ui_dropped_traces(void)
{
    return __atomic_load_n(&dropped_new, __ATOMIC_RELAXED);
}

void dx_ui_clear(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < UI_TRACES; i++)
        if (pool[i].used)
            trace_free(&pool[i]);
    reindex();
    pthread_mutex_unlock(&lock);
}
