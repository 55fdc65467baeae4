#include "metrics.h"
#include "metric_meta.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "dynobs/dynobs.h"

/* The OpenTelemetry SDK's default explicit bucket boundaries. */
const double dynobs__default_bounds[15] = {0,   5,   10,   25,   50,   75,   100, 250,
                                           500, 750, 1000, 2500, 5000, 7500, 10000};

#define HASH_SEED 0x64796e6f62730001ull

/* Instrument names per the OpenTelemetry API: a letter, then letters,
 * digits, '_', '.', '-' or '/', at most 255 characters. */
int dynobs__metric_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 255)
        return 0;
    unsigned char c = (unsigned char)s[0];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        return 0;
    for (size_t i = 1; i < n; i++) {
        c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || c == '/'))
            return 0;
    }
    return 1;
}

/* "k=v,k=v": keys are non-empty [A-Za-z0-9_.-]; values are printable
 * ASCII or UTF-8 bytes other than ','; no control characters. */
int dynobs__metric_labels_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return 1;
    while (i < n) {
        size_t k = i;
        while (i < n && s[i] != '=') {
            unsigned char c = (unsigned char)s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-'))
                return 0;
            i++;
        }
        if (i == k || i == n)
            return 0;
        i++; /* '=' */
        while (i < n && s[i] != ',') {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f || c == '=')
                return 0;
            i++;
        }
        if (i < n && ++i == n)
            return 0; /* trailing ',' */
    }
    return 1;
}

static int bounds_ok(const double *b, size_t n)
{
    if (n > DYNOBS_HISTOGRAM_MAX_BOUNDS)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]) || (i && !(b[i] > b[i - 1])))
            return 0;
    }
    return 1;
}

/* Fills a slot this thread has just claimed, then publishes it. */
static void fill(struct dynobs_metric_table *t, struct dynobs_metric_slot *s,
                 const struct dynobs_metric_def *d, uint64_t h, const char *labels, size_t nl,
                 size_t ll)
{
    s->kind = (uint8_t)d->kind;
    s->hash = h;
    s->name_len = (uint8_t)nl;
    s->labels_len = (uint8_t)ll;
    memset(s->unit, 0, sizeof s->unit);
    if (d->unit)
        strncpy(s->unit, d->unit, sizeof s->unit - 1);
    memcpy(s->key, d->name, nl);
    s->key[nl] = '\0';
    memcpy(s->key + nl + 1, labels, ll);
    s->key[nl + 1 + ll] = '\0';
    s->value = 0;
    s->min = dynobs__d2u(INFINITY);
    s->max = dynobs__d2u(-INFINITY);
    s->start_ns = dynobs__now_ns();
    s->nbounds = 0;
    if (d->kind == DYNOBS_METRIC_HISTOGRAM) {
        const double *b = d->bounds ? d->bounds : dynobs__default_bounds;
        size_t n = d->bounds ? d->nbounds : 15;
        memcpy(s->bounds, b, n * sizeof *b);
        s->nbounds = (uint8_t)n;
    }
    for (unsigned i = 0; i < DYNOBS_METRIC_MAX_BUCKETS; i++)
        s->buckets[i] = 0;
    dynobs__window_init(s, t->windows ? &t->windows[s - t->slots] : NULL, t->window_slice_ms,
                        t->window_slices);
    __atomic_store_n(&s->state, DYNOBS_SLOT_READY, __ATOMIC_RELEASE);
}

static int key_matches(const struct dynobs_metric_slot *s, uint64_t h, const char *name,
                       size_t nl, const char *labels, size_t ll)
{
    return s->hash == h && s->name_len == nl && s->labels_len == ll &&
           memcmp(s->key, name, nl) == 0 && memcmp(s->key + nl + 1, labels, ll) == 0;
}

static uint32_t cardinality_limit; /* 0: DYNOBS_METRIC_CARDINALITY_DEFAULT */

void dynobs__metric_cardinality_set(uint32_t limit)
{
    __atomic_store_n(&cardinality_limit, limit, __ATOMIC_RELAXED);
}

uint32_t dynobs__metric_cap(const struct dynobs_metric_table *t)
{
    uint32_t lim = __atomic_load_n(&cardinality_limit, __ATOMIC_RELAXED);
    uint32_t share = t->nslots / DYNOBS_METRIC_SHARE;
    if (!lim)
        lim = DYNOBS_METRIC_CARDINALITY_DEFAULT;
    if (!share)
        share = 1;
    return lim < share ? lim : share;
}

/* The count entry of a metric name, claimed on first use; entries are
 * never freed, so a lookup needs no lock. NULL when every entry holds
 * another name. */
static struct dynobs_metric_name_count *name_entry(struct dynobs_metric_table *t, uint64_t nh)
{
    nh |= 1; /* 0 marks a free entry */
    for (uint32_t i = 0; i < DYNOBS_METRIC_NAMES; i++) {
        struct dynobs_metric_name_count *e = &t->names[(nh + i) & (DYNOBS_METRIC_NAMES - 1)];
        uint64_t cur = __atomic_load_n(&e->hash, __ATOMIC_ACQUIRE);
        if (cur == 0 && __atomic_compare_exchange_n(&e->hash, &cur, nh, 0, __ATOMIC_ACQ_REL,
                                                    __ATOMIC_ACQUIRE))
            return e;
        if (cur == nh)
            return e;
    }
    return NULL;
}

/* Takes one of the name's places under the cap: 1, or 0 when the cap is
 * reached or the name has no count entry. Failing to count falls to the
 * overflow series, not to "no cap": the cap is what keeps one metric
 * from filling the table, and overflow loses no measurement. */
static int reserve(struct dynobs_metric_table *t, struct dynobs_metric_name_count *e)
{
    if (!e)
        return 0;
    uint32_t cap = dynobs__metric_cap(t);
    uint32_t n = __atomic_load_n(&e->series, __ATOMIC_RELAXED);
    while (n < cap)
        if (__atomic_compare_exchange_n(&e->series, &n, n + 1, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return 1;
    return 0;
}

static int resolve(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                   const char *labels, int overflow, struct dynobs_metric_slot **out);

/* A series registered by name alone (no unit, default bounds) of a
 * metric declared with the same kind takes the declared unit and bounds,
 * so that the by-name calls and the handles of a declaration agree. */
static const struct dynobs_metric_def *declared(const struct dynobs_metric_table *t,
                                                const struct dynobs_metric_def *d, size_t nl,
                                                struct dynobs_metric_def *out)
{
    if (!t->metas || d->unit || d->bounds)
        return d;
    const struct dynobs_metric_meta *m = dynobs__meta_find(t, d->name, nl);
    if (!m || m->kind != d->kind)
        return d;
    *out = *d;
    out->unit = m->unit[0] && memchr(m->unit, '\0', sizeof m->unit) ? m->unit : NULL;
    if (d->kind == DYNOBS_METRIC_HISTOGRAM && m->nbounds <= DYNOBS_HISTOGRAM_MAX_BOUNDS) {
        out->bounds = m->bounds;
        out->nbounds = m->nbounds;
    }
    return out;
}

/* A new attribute set past the cap: the update goes to the overflow
 * series of the metric, claimed like any other series. */
static int to_overflow(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                       struct dynobs_metric_slot **out)
{
    int rc = resolve(t, d, DYNOBS_METRIC_OVERFLOW_LABELS, 1, out);
    return rc == 0 ? 1 : rc;
}

/* Finds (or registers) the series of d and labels; overflow: this is
 * the overflow series itself, which the cap lets by. Returns 0 for the
 * series' own slot, 1 for the metric's overflow series, or -errno. */
static int resolve(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                   const char *labels, int overflow, struct dynobs_metric_slot **out)
{
    size_t nl = strlen(d->name), ll = strlen(labels);
    if (nl + ll + 2 > DYNOBS_METRIC_KEY_BYTES)
        return -EINVAL;
    uint64_t nh = dynobs__hash(d->name, nl, HASH_SEED);
    uint64_t h = dynobs__hash(labels, ll, nh);
    const uint32_t mask = t->nslots - 1;
    int checked = 0;
    struct dynobs_metric_def dd;
    struct dynobs_metric_name_count *held = NULL; /* a place taken under the cap */
    int rc = -ENOSPC;
    for (uint32_t probe = 0; probe < DYNOBS_METRIC_PROBES; probe++) {
        struct dynobs_metric_slot *s = &t->slots[(h + probe) & mask];
        uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (st == DYNOBS_SLOT_EMPTY) {
            /* Validate only on the slow path, when a series is new. */
            if (!checked) {
                d = declared(t, d, nl, &dd);
                if (d->kind < DYNOBS_METRIC_COUNTER || d->kind > DYNOBS_METRIC_HISTOGRAM ||
                    !dynobs__metric_name_ok(d->name, nl) ||
                    !dynobs__metric_labels_ok(labels, ll) ||
                    (d->kind == DYNOBS_METRIC_HISTOGRAM && d->bounds &&
                     !bounds_ok(d->bounds, d->nbounds)))
                    return -EINVAL;
                checked = 1;
            }
            if (!overflow && !held) {
                struct dynobs_metric_name_count *e = name_entry(t, nh);
                if (!reserve(t, e))
                    return to_overflow(t, d, out);
                held = e;
            }
            if (__atomic_compare_exchange_n(&s->state, &st, DYNOBS_SLOT_CLAIMED, 0,
                                            __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
                fill(t, s, d, h, labels, nl, ll);
                *out = s;
                return 0;
            }
            /* Lost the race: st now holds the winner's state. */
        }
        if (st == DYNOBS_SLOT_CLAIMED) {
            /* Another thread is writing this slot's key: give it a short,
             * bounded while, then move on (a duplicate series is merged
             * by the consumer, a lost update would not be). */
            for (int i = 0; i < 256 && st == DYNOBS_SLOT_CLAIMED; i++) {
                dynobs__cpu_relax();
                st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
            }
        }
        if (st == DYNOBS_SLOT_READY && key_matches(s, h, d->name, nl, labels, ll)) {
            rc = s->kind == d->kind ? 0 : -EINVAL;
            *out = s;
            break;
        }
    }
    /* The series turned out to exist (another thread registered it) or
     * no slot was free: give the place under the cap back. */
    if (held)
        __atomic_fetch_sub(&held->series, 1, __ATOMIC_RELAXED);
    /* No free slot within reach is a limit too: the update goes to the
     * overflow series rather than being lost; only when that one cannot
     * be had either is it refused (counted once, there). */
    if (rc == -ENOSPC && !overflow)
        return to_overflow(t, d, out);
    if (rc == -ENOSPC)
        __atomic_fetch_add(&t->counters[DYNOBS_CTR_METRIC_SERIES_REFUSED], 1, __ATOMIC_RELAXED);
    return rc;
}

int dynobs__metric_resolve(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                           const char *labels, struct dynobs_metric_slot **slot)
{
    if (!t || !d || !d->name)
        return -EINVAL;
    return resolve(t, d, labels ? labels : "", 0, slot);
}

int dynobs__metric_find(const struct dynobs_metric_table *t, const char *name, const char *labels,
                        struct dynobs_metric_slot **slot)
{
    if (!t || !t->slots || !name)
        return -EINVAL;
    if (!labels)
        labels = "";
    size_t nl = strlen(name), ll = strlen(labels);
    if (nl + ll + 2 > DYNOBS_METRIC_KEY_BYTES)
        return -ENOENT;
    uint64_t h = dynobs__hash(labels, ll, dynobs__hash(name, nl, HASH_SEED));
    for (uint32_t probe = 0; probe < DYNOBS_METRIC_PROBES; probe++) {
        struct dynobs_metric_slot *s = &t->slots[(h + probe) & (t->nslots - 1)];
        uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (st == DYNOBS_SLOT_EMPTY)
            break;
        if (st == DYNOBS_SLOT_READY && key_matches(s, h, name, nl, labels, ll)) {
            *slot = s;
            return 0;
        }
    }
    return -ENOENT;
}

int dynobs__metric_update(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                          double value, const char *labels)
{
    if (!dynobs__metric_value_ok(d ? d->kind : 0, value))
        return -EINVAL;
    struct dynobs_metric_slot *s = NULL;
    int rc = dynobs__metric_resolve(t, d, labels, &s);
    if (rc < 0)
        return rc;
    dynobs__metric_apply(s, value);
    /* Every update sent to an overflow series is counted. */
    if (rc == 1)
        __atomic_fetch_add(&t->counters[DYNOBS_CTR_METRIC_OVERFLOW], 1, __ATOMIC_RELAXED);
    return 0;
}

int dynobs__metric_read(const struct dynobs_metric_slot *shm, struct dynobs_metric_view *v)
{
    if (__atomic_load_n(&shm->state, __ATOMIC_ACQUIRE) != DYNOBS_SLOT_READY)
        return -ENOENT;
    /* The key part is immutable once READY; the values are read with
     * atomic loads because producers keep updating them. */
    struct dynobs_metric_slot s;
    memcpy(&s, shm, offsetof(struct dynobs_metric_slot, value));
    memcpy(s.bounds, shm->bounds, sizeof s.bounds);
    s.value = __atomic_load_n(&shm->value, __ATOMIC_RELAXED);
    s.min = __atomic_load_n(&shm->min, __ATOMIC_RELAXED);
    s.max = __atomic_load_n(&shm->max, __ATOMIC_RELAXED);
    s.start_ns = shm->start_ns;
    for (unsigned i = 0; i < DYNOBS_METRIC_MAX_BUCKETS; i++)
        s.buckets[i] = __atomic_load_n(&shm->buckets[i], __ATOMIC_RELAXED);
    if (s.kind < DYNOBS_METRIC_COUNTER || s.kind > DYNOBS_METRIC_HISTOGRAM)
        return -EBADMSG;
    size_t nl = s.name_len, ll = s.labels_len;
    if (nl + ll + 2 > DYNOBS_METRIC_KEY_BYTES || s.key[nl] != '\0' || s.key[nl + 1 + ll] != '\0')
        return -EBADMSG;
    if (!dynobs__metric_name_ok(s.key, nl) || !dynobs__metric_labels_ok(s.key + nl + 1, ll))
        return -EBADMSG;
    if (memchr(s.unit, '\0', sizeof s.unit) == NULL)
        return -EBADMSG;
    memset(v, 0, sizeof *v);
    v->kind = s.kind;
    memcpy(v->name, s.key, nl + 1);
    memcpy(v->labels, s.key + nl + 1, ll + 1);
    memcpy(v->unit, s.unit, sizeof s.unit);
    v->start_ns = s.start_ns;
    v->value = dynobs__u2d(s.value);
    if (s.kind == DYNOBS_METRIC_HISTOGRAM) {
        if (!bounds_ok(s.bounds, s.nbounds))
            return -EBADMSG;
        v->nbounds = s.nbounds;
        memcpy(v->bounds, s.bounds, s.nbounds * sizeof s.bounds[0]);
        for (unsigned i = 0; i <= s.nbounds; i++) {
            v->buckets[i] = s.buckets[i];
            v->count += s.buckets[i];
        }
        v->min = dynobs__u2d(s.min);
        v->max = dynobs__u2d(s.max);
    }
    return 0;
}

int dynobs__metric_read_values(const struct dynobs_metric_slot *s, int kind, unsigned nbounds,
                               struct dynobs_metric_view *v)
{
    if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != DYNOBS_SLOT_READY ||
        nbounds >= DYNOBS_METRIC_MAX_BUCKETS)
        return -ENOENT;
    v->kind = kind;
    v->nbounds = nbounds;
    v->start_ns = s->start_ns;
    v->value = dynobs__u2d(__atomic_load_n(&s->value, __ATOMIC_RELAXED));
    v->count = 0;
    if (kind == DYNOBS_METRIC_HISTOGRAM) {
        v->min = dynobs__u2d(__atomic_load_n(&s->min, __ATOMIC_RELAXED));
        v->max = dynobs__u2d(__atomic_load_n(&s->max, __ATOMIC_RELAXED));
        for (unsigned i = 0; i <= nbounds; i++) {
            v->buckets[i] = __atomic_load_n(&s->buckets[i], __ATOMIC_RELAXED);
            v->count += v->buckets[i];
        }
    }
    return 0;
}

void dynobs__labels_join(char *out, size_t cap, const char *(*parts)[2], size_t count)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *k = parts[i][0], *v = parts[i][1];
        size_t kl = strlen(k), vl = v ? strlen(v) : 0;
        if (!vl || strpbrk(v, ",=") || n + kl + vl + 3 >= cap)
            continue;
        if (n)
            out[n++] = ',';
        memcpy(out + n, k, kl);
        n += kl;
        out[n++] = '=';
        memcpy(out + n, v, vl);
        n += vl;
        out[n] = '\0';
    }
}

const double dynobs__http_duration_bounds[DYNOBS_HTTP_DURATION_NBOUNDS] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10};
