#include "tail.h"

#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "stats.h"

/* One held span: its record, copied out of the ring. */
struct held {
    struct held *next;
    struct dx_resource *res; /* one reference held */
    uint32_t len;
    uint8_t rec[];
};

/* An undecided trace: its held spans in arrival order, in a hash chain
 * and in the list of traces from oldest to newest first arrival. */
struct trace {
    uint8_t id[16];
    struct trace *hnext;
    struct trace *older, *newer;
    struct held *first, **last;
    uint64_t first_ns;
    size_t bytes;
    uint32_t nspans;
};

/* A recent decision. The set is a ring of dec_cap entries, the oldest
 * overwritten first, with a hash index of entry numbers (-1 ends a chain). */
struct decision {
    uint8_t id[16];
    int32_t next;
    uint8_t used;
    uint8_t keep;    /* 1: keep, 0: dropped */
    uint8_t counted; /* counted in `kept` once an unsampled span went out */
};

static uint64_t wait_ns = DX_TAIL_WAIT_MS_DEFAULT * 1000000ull;
static uint32_t max_traces = DX_TAIL_TRACES_DEFAULT;
static size_t max_bytes = DX_TAIL_BYTES_DEFAULT;

static struct trace **buckets;
static uint32_t bucket_mask;
static struct trace *oldest, *newest;
static uint32_t ntraces;

static struct decision *dec;
static int32_t *dec_bucket;
static uint32_t dec_cap, dec_mask, dec_pos;

/* Counters and gauges: written by the main thread, read by /metrics. */
static struct dx_tail_stats st;

static void add(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void sub(uint64_t *c, uint64_t n)
{
    __atomic_fetch_sub(c, n, __ATOMIC_RELAXED);
}

/* Trace ids are random (or at least unique) in every byte that matters;
 * both halves are mixed in, for the ids of other tracers. */
static uint32_t hash(const uint8_t id[16])
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    return (uint32_t)(((a ^ b) * 0x9e3779b97f4a7c15ull) >> 32);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 64;
    while (p < n && p < (1u << 30))
        p <<= 1;
    return p;
}

/* ---- held traces ---- */

static struct trace *find(const uint8_t id[16])
{
    if (!buckets)
        return NULL;
    for (struct trace *t = buckets[hash(id) & bucket_mask]; t; t = t->hnext)
        if (!memcmp(t->id, id, 16))
            return t;
    return NULL;
}

static void unlink_trace(struct trace *t)
{
    struct trace **pp = &buckets[hash(t->id) & bucket_mask];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    if (t->older)
        t->older->newer = t->newer;
    else
        oldest = t->newer;
    if (t->newer)
        t->newer->older = t->older;
    else
        newest = t->older;
    ntraces--;
    sub(&st.held_traces, 1);
    sub(&st.held_spans, t->nspans);
    sub(&st.held_bytes, t->bytes);
}

/* Removes t and frees it; its spans go to the queue when `release`.
 * They may take the queue past its bound by one trace: that memory was
 * already spent, and counted in the byte budget. */
static void finish_trace(struct trace *t, int release)
{
    unlink_trace(t);
    for (struct held *h = t->first, *next; h; h = next) {
        next = h->next;
        if (release && dx_queue_put(DX_TRACES, h->res, h->rec, h->len) < 0)
            dx_stats_add_signal(DX_EXPORT_DROPPED, DX_TRACES, 1);
        dx_resource_unref(h->res);
        free(h);
    }
    if (!release)
        add(&st.spans_dropped, t->nspans);
    free(t);
}

/* (Re)builds the hash index for the current bound; the traces held stay. */
static int index_traces(void)
{
    uint32_t n = pow2_at_least(2ull * max_traces);
    if (buckets && n == bucket_mask + 1)
        return 0;
    struct trace **b = calloc(n, sizeof *b);
    if (!b)
        return buckets ? 0 : -1; /* keep the old index: longer chains, still right */
    for (struct trace *t = oldest; t; t = t->newer) {
        uint32_t i = hash(t->id) & (n - 1);
        t->hnext = b[i];
        b[i] = t;
    }
    free(buckets);
    buckets = b;
    bucket_mask = n - 1;
    return 0;
}

static void evict_oldest(void)
{
    add(&st.evicted, 1);
    finish_trace(oldest, 0);
}

/* ---- decisions ---- */

static struct decision *decided(const uint8_t id[16])
{
    if (!dec)
        return NULL;
    for (int32_t i = dec_bucket[hash(id) & dec_mask]; i >= 0; i = dec[i].next)
        if (!memcmp(dec[i].id, id, 16))
            return &dec[i];
    return NULL;
}

static void dec_unlink(int32_t e)
{
    int32_t *p = &dec_bucket[hash(dec[e].id) & dec_mask];
    while (*p != e)
        p = &dec[*p].next;
    *p = dec[e].next;
    dec[e].used = 0;
}

/* Room for 4 decisions per trace held: a trace's late spans (a root
 * span that ends last, a process that writes late) still find it. */
static int index_decisions(void)
{
    uint32_t cap = pow2_at_least(4ull * max_traces);
    if (dec && cap == dec_cap)
        return 0;
    struct decision *d = calloc(cap, sizeof *d);
    int32_t *b = malloc(cap * sizeof *b);
    if (!d || !b) {
        free(d);
        free(b);
        return dec ? 0 : -1;
    }
    memset(b, 0xff, cap * sizeof *b);
    /* The most recent decisions carry over, oldest first. */
    uint32_t n = 0;
    for (uint32_t k = 0; dec && k < dec_cap; k++) {
        struct decision *o = &dec[(dec_pos + k) & (dec_cap - 1)];
        if (!o->used)
            continue;
        struct decision *e = &d[n & (cap - 1)];
        if (e->used) {
            int32_t *p = &b[hash(e->id) & (cap - 1)];
            while (*p != (int32_t)(e - d))
                p = &d[*p].next;
            *p = e->next;
        }
        *e = *o;
        e->next = b[hash(e->id) & (cap - 1)];
        b[hash(e->id) & (cap - 1)] = (int32_t)(e - d);
        n++;
    }
    free(dec);
    free(dec_bucket);
    dec = d;
    dec_bucket = b;
    dec_cap = cap;
    dec_mask = cap - 1;
    dec_pos = n & (cap - 1);
    return 0;
}

/* Remembers a decision about trace id (an existing one is changed). */
static struct decision *decide(const uint8_t id[16], int keep)
{
    struct decision *e = decided(id);
    if (!e) {
        if (!dec && index_decisions() < 0)
            return NULL;
        int32_t i = (int32_t)dec_pos;
        dec_pos = (dec_pos + 1) & dec_mask;
        if (dec[i].used)
            dec_unlink(i);
        e = &dec[i];
        memcpy(e->id, id, 16);
        e->used = 1;
        e->counted = 0;
        uint32_t bkt = hash(id) & dec_mask;
        e->next = dec_bucket[bkt];
        dec_bucket[bkt] = i;
    }
    e->keep = (uint8_t)keep;
    return e;
}

/* ---- the API ---- */

void dx_tail_configure(uint32_t decision_wait_ms, uint32_t num_traces)
{
    wait_ns = (uint64_t)(decision_wait_ms ? decision_wait_ms : DX_TAIL_WAIT_MS_DEFAULT) * 1000000u;
    max_traces = num_traces ? num_traces : DX_TAIL_TRACES_DEFAULT;
    while (ntraces > max_traces)
        evict_oldest();
    if (buckets)
        (void)index_traces();
    if (dec)
        (void)index_decisions();
}

void dx_tail_set_max_bytes(size_t bytes)
{
    max_bytes = bytes ? bytes : DX_TAIL_BYTES_DEFAULT;
    while (oldest && st.held_bytes > max_bytes)
        evict_oldest();
}

/* A keep decision for trace id: its held spans go out, before the span
 * that made it (the order they arrived in). */
static void keep_trace(const uint8_t id[16], int unsampled)
{
    struct trace *t = find(id);
    struct decision *e = decide(id, 1);
    if ((t || unsampled) && e && !e->counted) {
        e->counted = 1;
        add(&st.kept, 1);
    }
    if (t)
        finish_trace(t, 1);
}

/* Holds an unsampled span of a trace not decided yet. */
static int hold(struct dx_resource *res, const struct dynobs_rec_hdr *h, uint32_t len,
                const uint8_t id[16], uint64_t now_ns)
{
    size_t need = sizeof(struct held) + len;
    struct trace *t = find(id);
    if (!t) {
        if (!buckets && index_traces() < 0)
            return -1;
        while (ntraces >= max_traces)
            evict_oldest();
        need += sizeof *t;
    }
    /* Room by evicting older traces; a trace that alone outgrows the
     * budget is evicted itself, with this span. */
    while (st.held_bytes + need > max_bytes && oldest && oldest != t)
        evict_oldest();
    if (st.held_bytes + need > max_bytes) {
        if (t)
            evict_oldest();
        else
            add(&st.evicted, 1);
        add(&st.spans_dropped, 1);
        return 0;
    }
    /* The copy first: a fault on the mapping (segments.c guards it)
     * then leaves the held traces as they were. */
    struct held *s = malloc(sizeof *s + len);
    if (!s)
        return -1;
    s->len = len;
    memcpy(s->rec, h, s->len);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) {
            free(s);
            return -1;
        }
        memcpy(t->id, id, 16);
        t->first_ns = now_ns;
        t->last = &t->first;
        t->bytes = sizeof *t;
        uint32_t b = hash(id) & bucket_mask;
        t->hnext = buckets[b];
        buckets[b] = t;
        t->older = newest;
        if (newest)
            newest->newer = t;
        else
            oldest = t;
        newest = t;
        ntraces++;
        add(&st.held_traces, 1);
        add(&st.held_bytes, sizeof *t);
    }
    s->next = NULL;
    s->res = res;
    dx_resource_ref(res);
    *t->last = s;
    t->last = &s->next;
    t->nspans++;
    t->bytes += sizeof *s + s->len;
    add(&st.held_spans, 1);
    add(&st.held_bytes, sizeof *s + s->len);
    return 0;
}

int dx_tail_span(struct dx_resource *res, const struct dynobs_rec_hdr *h, uint64_t now_ns)
{
    /* Read once: the record is in memory its writer shares. */
    const uint32_t len = h->len;
    const uint16_t flags = h->flags;
    /* A record too short for its trace id is the encoder's to count. */
    if (len < sizeof *h + sizeof(struct dynobs_span_rec) ||
        !(flags & (DYNOBS_RECF_UNSAMPLED | DYNOBS_RECF_KEEP)))
        return dx_queue_put(DX_TRACES, res, h, len);
    uint8_t id[16];
    memcpy(id, ((const struct dynobs_span_rec *)(h + 1))->trace_id, 16);
    int unsampled = (flags & DYNOBS_RECF_UNSAMPLED) != 0;
    if (flags & DYNOBS_RECF_KEEP) {
        keep_trace(id, unsampled);
        return dx_queue_put(DX_TRACES, res, h, len);
    }
    if (!unsampled)
        return dx_queue_put(DX_TRACES, res, h, len);
    struct decision *e = decided(id);
    if (e && e->keep) {
        if (!e->counted) {
            e->counted = 1;
            add(&st.kept, 1);
        }
        return dx_queue_put(DX_TRACES, res, h, len);
    }
    if (e) { /* decided: no reason to keep it came in time */
        add(&st.spans_dropped, 1);
        return 0;
    }
    return hold(res, h, len, id, now_ns);
}

void dx_tail_tick(uint64_t now_ns)
{
    while (oldest && now_ns - oldest->first_ns >= wait_ns) {
        (void)decide(oldest->id, 0);
        add(&st.dropped, 1);
        finish_trace(oldest, 0);
    }
}

void dx_tail_finish(void)
{
    while (oldest) {
        add(&st.dropped, 1);
        finish_trace(oldest, 0);
    }
    free(buckets);
    buckets = NULL;
    free(dec);
    free(dec_bucket);
    dec = NULL;
    dec_bucket = NULL;
    dec_cap = dec_mask = dec_pos = 0;
}

void dx_tail_read(struct dx_tail_stats *out)
{
    const uint64_t *from = (const uint64_t *)&st;
    uint64_t *to = (uint64_t *)out;
    for (size_t i = 0; i < sizeof st / sizeof(uint64_t); i++)
        to[i] = __atomic_load_n(&from[i], __ATOMIC_RELAXED);
}
