#include "metric_meta.h"
#include "reader.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define META_SEED 0x64796e6f62730003ull
/* How long a declaration waits for another thread writing the entry of
 * the same name (a few hundred bytes of copying): half of the rounds spin,
 * the other half sleep 0.5 ms each. */
#define CLAIM_SPINS 4096

static int text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int bounds_ok(const double *b, size_t n)
{
    if (n > DYNOBS_HISTOGRAM_MAX_BOUNDS)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(b[i]) || (i && !(b[i] > b[i - 1])))
            return 0;
    return 1;
}

/* What a declaration says, in the form an entry keeps it. */
struct decl {
    int kind;
    size_t nl, ul, dl, nbounds;
    const char *name, *unit, *desc;
    const double *bounds;
};

static int decl_make(const struct dynobs_metric_def *d, const char *desc, struct decl *x)
{
    if (!d || !d->name || d->kind < DYNOBS_METRIC_COUNTER || d->kind > DYNOBS_METRIC_HISTOGRAM)
        return -EINVAL;
    x->kind = d->kind;
    x->name = d->name;
    x->unit = d->unit ? d->unit : "";
    x->desc = desc ? desc : "";
    x->nl = strlen(x->name);
    x->ul = strlen(x->unit);
    x->dl = strlen(x->desc);
    if (x->nl >= DYNOBS_META_NAME_BYTES || !dynobs__metric_name_ok(x->name, x->nl) ||
        x->ul >= DYNOBS_METRIC_UNIT_BYTES || !text_ok(x->unit, x->ul) ||
        x->dl >= DYNOBS_META_DESC_BYTES || !text_ok(x->desc, x->dl))
        return -EINVAL;
    x->bounds = NULL;
    x->nbounds = 0;
    if (d->kind == DYNOBS_METRIC_HISTOGRAM) {
        int dflt = !d->bounds || !d->nbounds;
        x->bounds = dflt ? dynobs__default_bounds : d->bounds;
        x->nbounds = dflt ? 15 : d->nbounds;
        if (!bounds_ok(x->bounds, x->nbounds))
            return -EINVAL;
    }
    return 0;
}

static int same(const struct dynobs_metric_meta *m, const struct decl *x)
{
    return m->kind == x->kind && strncmp(m->unit, x->unit, sizeof m->unit) == 0 &&
           m->description_len == x->dl && memcmp(m->description, x->desc, x->dl) == 0 &&
           m->nbounds == x->nbounds &&
           (x->nbounds == 0 || memcmp(m->bounds, x->bounds, x->nbounds * sizeof(double)) == 0);
}

static void fill(struct dynobs_metric_meta *m, const struct decl *x, uint64_t h)
{
    m->kind = (uint8_t)x->kind;
    m->name_len = (uint8_t)x->nl;
    m->hash = h;
    memset(m->unit, 0, sizeof m->unit);
    memcpy(m->unit, x->unit, x->ul);
    memset(m->name, 0, sizeof m->name);
    memcpy(m->name, x->name, x->nl);
    memset(m->description, 0, sizeof m->description);
    memcpy(m->description, x->desc, x->dl);
    m->description_len = (uint16_t)x->dl;
    m->nbounds = (uint8_t)x->nbounds;
    memset(m->bounds, 0, sizeof m->bounds);
    if (x->nbounds)
        memcpy(m->bounds, x->bounds, x->nbounds * sizeof(double));
    __atomic_store_n(&m->state, DYNOBS_SLOT_READY, __ATOMIC_RELEASE);
}

static void count(uint64_t *c)
{
    if (c)
        __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

int dynobs__meta_declare(struct dynobs_metric_table *t, const struct dynobs_metric_def *d,
                         const char *description)
{
    struct decl x;
    int rc = decl_make(d, description, &x);
    if (rc < 0)
        return rc;
    if (!t || !t->metas || !t->nmetas)
        return -ENOSPC;
    uint64_t h = dynobs__hash(x.name, x.nl, META_SEED);
    for (uint32_t p = 0; p < t->nmetas; p++) {
        struct dynobs_metric_meta *m = &t->metas[(h + p) & (t->nmetas - 1)];
        uint32_t st = __atomic_load_n(&m->state, __ATOMIC_ACQUIRE);
        if (st == DYNOBS_SLOT_EMPTY &&
            __atomic_compare_exchange_n(&m->state, &st, DYNOBS_SLOT_CLAIMED, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
            fill(m, &x, h);
            return 0;
        }
        /* Claimed by another declaration: wait for it, since it may be of
         * this very name and an entry of its own would be a duplicate.
         * Declaring is no hot path: spin, then sleep, up to a second (a
         * declarer that died mid-write is not waited for longer). */
        for (int i = 0; i < CLAIM_SPINS && st == DYNOBS_SLOT_CLAIMED; i++) {
            if (i < CLAIM_SPINS / 2) {
                dynobs__cpu_relax();
            } else {
                struct timespec pause = {0, 500000};
                nanosleep(&pause, NULL);
            }
            st = __atomic_load_n(&m->state, __ATOMIC_ACQUIRE);
        }
        if (st == DYNOBS_SLOT_READY && m->hash == h && m->name_len == x.nl &&
            memcmp(m->name, x.name, x.nl) == 0) {
            if (same(m, &x))
                return 0;
            count(t->declare_conflicts);
            return -EEXIST;
        }
    }
    count(t->declare_refused);
    return -ENOSPC;
}

const struct dynobs_metric_meta *dynobs__meta_find(const struct dynobs_metric_table *t,
                                                   const char *name, size_t nl)
{
    if (!t || !t->metas || !t->nmetas || nl >= DYNOBS_META_NAME_BYTES)
        return NULL;
    uint64_t h = dynobs__hash(name, nl, META_SEED);
    for (uint32_t p = 0; p < t->nmetas; p++) {
        const struct dynobs_metric_meta *m = &t->metas[(h + p) & (t->nmetas - 1)];
        uint32_t st = __atomic_load_n(&m->state, __ATOMIC_ACQUIRE);
        if (st == DYNOBS_SLOT_EMPTY)
            return NULL;
        if (st == DYNOBS_SLOT_READY && m->hash == h && m->name_len == nl &&
            memcmp(m->name, name, nl) == 0)
            return m;
    }
    return NULL;
}

int dynobs__meta_check(const struct dynobs_metric_meta *m)
{
    if (m->state != DYNOBS_SLOT_READY)
        return -ENOENT;
    size_t nl = m->name_len, dl = m->description_len;
    if (m->kind < DYNOBS_METRIC_COUNTER || m->kind > DYNOBS_METRIC_HISTOGRAM ||
        nl >= DYNOBS_META_NAME_BYTES || m->name[nl] != '\0' ||
        !dynobs__metric_name_ok(m->name, nl) || dl >= DYNOBS_META_DESC_BYTES ||
        m->description[dl] != '\0' || !text_ok(m->description, dl))
        return -EBADMSG;
    const char *z = memchr(m->unit, '\0', sizeof m->unit);
    if (!z || !text_ok(m->unit, (size_t)(z - m->unit)))
        return -EBADMSG;
    if (m->kind == DYNOBS_METRIC_HISTOGRAM ? !bounds_ok(m->bounds, m->nbounds) : m->nbounds != 0)
        return -EBADMSG;
    return 0;
}

/* The reader's copy: entries are immutable once READY, but the copy is
 * what is checked and pointed into, so that a producer scribbling on its
 * segment cannot make a view run past what was checked. */
static _Thread_local struct dynobs_metric_meta copy __attribute__((tls_model("initial-exec")));

int dynobs__reader_meta(const struct dynobs_reader *r, uint32_t i,
                        struct dynobs_metric_meta_view *v)
{
    if (!r->metas || i >= r->hdr.meta_slots)
        return -EINVAL;
    const struct dynobs_metric_meta *m = &r->metas[i];
    if (__atomic_load_n(&m->state, __ATOMIC_ACQUIRE) != DYNOBS_SLOT_READY)
        return -ENOENT;
    memcpy(&copy, m, sizeof copy);
    int rc = dynobs__meta_check(&copy);
    if (rc < 0)
        return rc;
    v->kind = copy.kind;
    v->name = copy.name;
    v->name_len = copy.name_len;
    v->unit = copy.unit;
    v->description = copy.description;
    v->description_len = copy.description_len;
    return 0;
}
