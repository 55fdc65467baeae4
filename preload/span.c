/*
 * Spans: the public span API. A span is built in a slot of its thread's
 * pool, in the record format, so that ending it is one reservation in the
 * ring and a few copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "rulesmap.h"
#include "state.h"

#include "../common/attrs.h"
#include "../common/record.h"
#include "../common/ring.h"
#include "../common/sampler.h"

#define SPAN_LIVE 0x5350414eu /* "SPAN" */

static int live(const dynobs_span *s)
{
    return s && __atomic_load_n(&s->live, __ATOMIC_ACQUIRE) == SPAN_LIVE;
}

/* The span pool of a thread. Its owner allocates and frees with single
 * non-locked read-modify-write instructions: atomic against a signal
 * handler on the same thread (signals arrive between instructions), and
 * free of the bus lock that costs as much as the rest of a span on some
 * machines. Other threads never touch pool_used: a span ended elsewhere
 * is handed back through pool_freed with a locked OR, and the owner takes
 * those back when its pool looks full. */
#if defined(__x86_64__)
static inline int bit_test_set(uint64_t *w, unsigned i)
{
    unsigned char old;
    __asm__ __volatile__("btsq %2, %0\n\tsetc %1" : "+m"(*w), "=q"(old) : "r"((uint64_t)i) : "cc");
    return old;
}
static inline void bits_clear(uint64_t *w, uint64_t mask)
{
    __asm__ __volatile__("andq %1, %0" : "+m"(*w) : "r"(~mask) : "cc");
}
#else
static inline int bit_test_set(uint64_t *w, unsigned i)
{
    return (int)((__atomic_fetch_or(w, 1ull << i, __ATOMIC_RELAXED) >> i) & 1);
}
static inline void bits_clear(uint64_t *w, uint64_t mask)
{
    __atomic_fetch_and(w, ~mask, __ATOMIC_RELAXED);
}
#endif

#define POOL_ALL ((DYNOBS_SPAN_POOL >= 64) ? ~0ull : ((1ull << DYNOBS_SPAN_POOL) - 1))

static struct dynobs_span *pool_get(struct dynobs_thread *t)
{
    for (int tries = 0; tries < 2 * DYNOBS_SPAN_POOL + 2; tries++) {
        uint64_t free_ = ~__atomic_load_n(&t->pool_used, __ATOMIC_RELAXED) & POOL_ALL;
        if (!free_) {
            uint64_t back = __atomic_exchange_n(&t->pool_freed, 0, __ATOMIC_ACQUIRE);
            if (!back)
                return NULL;
            bits_clear(&t->pool_used, back);
            continue;
        }
        unsigned i = (unsigned)__builtin_ctzll(free_);
        if (!bit_test_set(&t->pool_used, i)) {
            struct dynobs_span *s = &t->spans[i];
            s->pool_idx = (uint8_t)i;
            return s;
        }
        /* A signal handler took slot i between our load and our set. */
    }
    return NULL;
}

static void pool_put(struct dynobs_span *s, const struct dynobs_thread *self)
{
    uint64_t bit = 1ull << s->pool_idx;
    if (s->owner == self)
        bits_clear(&s->owner->pool_used, bit);
    else
        __atomic_fetch_or(&s->owner->pool_freed, bit, __ATOMIC_RELEASE);
}

/* How much of string str a span keeps: at most max bytes, cut on a UTF-8
 * boundary (the span is then flagged truncated). */
static size_t kept_len(struct dynobs_span *s, const char *str, size_t max)
{
    size_t n = strnlen(str, max + 1);
    if (n > max) {
        n = dynobs__utf8_cut(str, n, max);
        s->truncated = 1;
    }
    return n;
}

/* The process's default policy (span.h): NULL, or a policy that stays
 * valid forever once published. */
static const struct dynobs_span_policy *default_policy DYNOBS_HOT_DATA;

void dynobs__span_default_policy_set(const struct dynobs_span_policy *p)
{
    __atomic_store_n(&default_policy, p, __ATOMIC_RELEASE);
}

const struct dynobs_span_policy *dynobs__span_default_policy(void)
{
    return __atomic_load_n(&default_policy, __ATOMIC_ACQUIRE);
}

static inline const struct dynobs_span_policy *policy_or_default(const struct dynobs_span_policy *p)
{
    return p ? p : __atomic_load_n(&default_policy, __ATOMIC_ACQUIRE);
}

/* One word of DYNOBS_TAIL_KEEP (n bytes at w) into *p. */
static int policy_word(const char *w, size_t n, struct dynobs_span_policy *p)
{
    while (n && (*w == ' ' || *w == '\t')) {
        w++;
        n--;
    }
    while (n && (w[n - 1] == ' ' || w[n - 1] == '\t'))
        n--;
    if ((n == 6 && !strncmp(w, "errors", 6)) || (n == 5 && !strncmp(w, "error", 5))) {
        p->keep |= DYNOBS_KEEP_ERRORS;
        return 0;
    }
    if (n == 0 || (n == 4 && !strncmp(w, "none", 4)))
        return 0;
    if (n < 6 || strncmp(w, "slow:", 5))
        return -EINVAL;
    size_t i = 5;
    uint64_t v = 0;
    if (w[i] < '0' || w[i] > '9')
        return -EINVAL;
    for (; i < n && w[i] >= '0' && w[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(w[i] - '0');
        if (v > UINT32_MAX)
            return -EINVAL;
    }
    if (n - i == 1 && w[i] == 's')
        v *= 1000;
    else if (!(i == n || (n - i == 2 && !strncmp(w + i, "ms", 2))))
        return -EINVAL;
    if (v > UINT32_MAX)
        return -EINVAL;
    p->keep |= DYNOBS_KEEP_SLOW;
    p->keep_slower_ms = (uint32_t)v;
    return 0;
}

int dynobs__span_policy_parse(const char *value, struct dynobs_span_policy *out)
{
    struct dynobs_span_policy p = {0};
    for (const char *w = value; w && *w;) {
        size_t n = strcspn(w, ",");
        if (policy_word(w, n, &p) < 0) {
            *out = (struct dynobs_span_policy){0};
            return -EINVAL;
        }
        w += n + (w[n] == ',');
    }
    *out = p;
    return 0;
}

int dynobs__span_policy_from_env(const char *value)
{
    /* Published once and never changed: readers hold no lock. */
    static struct dynobs_span_policy from_env;
    struct dynobs_span_policy p;
    int rc = dynobs__span_policy_parse(value, &p);
    if (rc == 0 && p.keep) {
        from_env = p;
        dynobs__span_default_policy_set(&from_env);
    }
    return rc;
}

/* What a policy, and the keep bits inherited from a parent recorded for
 * tail sampling, change in a span whose head decision is made. Out of
 * line: spans without either never come here. */
static __attribute__((noinline)) void apply_policy(struct dynobs_span *s,
                                                   const struct dynobs_span_policy *pol,
                                                   uint8_t inherited, int sampled)
{
    uint8_t keep = inherited;
    if (pol) {
        keep |= pol->keep;
        /* Slowness is judged by the span's own rule: in this process, a
         * slow child makes its ancestors at least as slow. */
        if (pol->keep & DYNOBS_KEEP_SLOW) {
            s->slow_ns = (uint64_t)pol->keep_slower_ms * 1000000u;
            s->end_check |= DYNOBS_SPAN_KEEP_SLOW;
        }
    }
    if (keep & DYNOBS_KEEP_ERRORS)
        s->end_check |= DYNOBS_SPAN_KEEP_ERR;
    if (!sampled && keep) {
        /* Recorded and written, flagged unsampled, for the exporter to
         * hold; the spans started under it inherit the intent, so that
         * the trace's part made here is whole. */
        s->tail = keep;
        s->end_check |= DYNOBS_SPAN_UNSAMPLED;
        s->recording = 1;
    }
    if (pol && pol->drop)
        s->recording = 0;
}

/* Fills a span's record from its parent (a context, or NULL for a new
 * trace) and decides sampling. Used for API spans and detached ones. */
static inline __attribute__((always_inline)) void
span_fill(struct dynobs_span *s, const char *name, int kind,
          const struct dynobs_ctx *parent, const struct dynobs_span_policy *pol,
          const struct dynobs_span_kept *k)
{
    struct dynobs_span_rec *r = &s->rec;
    struct dynobs_tls *me = dynobs__me(); /* (the ids' generator, the thread id) */
    uint8_t flags, inherited = 0;
    size_t ts_len = 0;
    r->span_flags = 0;
    if (parent) {
        memcpy(r->trace_id, parent->trace_id, 16);
        memcpy(r->parent_span_id, parent->span_id, 8);
        r->span_flags = DYNOBS_SPANF_HAS_PARENT | (parent->remote ? DYNOBS_SPANF_PARENT_REMOTE : 0);
        flags = parent->flags & DYNOBS_FLAG_RANDOM;
        ts_len = parent->ts_len;
        inherited = parent->keep;
    } else {
        /* dynobs__rng_id's words, inline; it is left to make the non-zero
         * id in the one case in 2^128 (2^64 for a span id) it needs to. */
        uint64_t a = dynobs__rng_next(&me->rng), b = dynobs__rng_next(&me->rng);
        memcpy(r->trace_id, &a, 8);
        memcpy(r->trace_id + 8, &b, 8);
        if (DYNOBS_UNLIKELY(!(a | b)))
            dynobs__rng_id(&me->rng, r->trace_id, 16);
        memset(r->parent_span_id, 0, 8);
        flags = DYNOBS_FLAG_RANDOM; /* we made every bit of it random */
    }
    uint64_t sid = dynobs__rng_next(&me->rng);
    memcpy(r->span_id, &sid, 8);
    if (DYNOBS_UNLIKELY(!sid))
        dynobs__rng_id(&me->rng, r->span_id, 8);
    const struct dynobs_sampler *sampler = &dynobs__config.sampler;
    if (__builtin_expect(pol != NULL, 0) && pol->sampler)
        sampler = pol->sampler;
    int sampled = dynobs__sampler_decide(sampler, r->trace_id, parent != NULL,
                                         parent ? (parent->flags & DYNOBS_FLAG_SAMPLED) : 0);
    if (sampled)
        flags |= DYNOBS_FLAG_SAMPLED;
    r->trace_flags = flags;
    uint8_t kind8 = (uint8_t)(kind >= DYNOBS_SPAN_KIND_INTERNAL && kind <= DYNOBS_SPAN_KIND_CONSUMER
                                  ? kind
                                  : DYNOBS_SPAN_KIND_INTERNAL);
    /* (Opaque to the compiler: with the kind a constant, GCC's store
     * merging writes kind and status as one word loaded from .rodata, a
     * page touch of its own in a served request's read.) */
    __asm__("" : "+r"(kind8));
    r->kind = kind8;
    r->status = DYNOBS_STATUS_UNSET;
    r->tid = me->tid;
    r->attr_count = r->event_count = r->dropped_attrs = r->dropped_events = 0;
    r->status_msg_len = 0;
    s->recording = (uint8_t)sampled;
    /* A sampled span's error is a reason to keep its trace everywhere:
     * unsampled spans of it held by the exporter (from a process whose
     * rules keep errors) are then exported with it. */
    _Static_assert(DYNOBS_SPAN_KEEP_ERR == 1, "sampled is 0 or 1");
    s->end_check = (uint8_t)sampled;
    s->tail = 0;
    if (__builtin_expect(pol != NULL || inherited, 0))
        apply_policy(s, pol, inherited, sampled);
    s->status_final = 0;
    s->events = 0;
    s->status_len = 0;
    s->last_event_off = UINT32_MAX;
    if (k) {
        /* The body is the one the storage holds (span.h). */
        s->truncated = k->truncated;
        s->attrs = k->attrs;
        r->dropped_attrs = k->dropped_attrs;
        s->keys = k->keys;
        s->items_off = k->items_off;
        s->used = k->used;
        return;
    }
    s->truncated = 0;
    s->attrs = 0;
    s->keys = 0;

    size_t nl = kept_len(s, name, DYNOBS_NAME_MAX);
    /* The body starts with the name and the tracestate; items follow. */
    dynobs__copy_short(s->body, name, nl);
    r->name_len = (uint16_t)nl;
    if (ts_len)
        memcpy(s->body + nl, parent->tracestate, ts_len);
    r->tracestate_len = (uint16_t)ts_len;
    s->items_off = s->used = (uint32_t)(nl + ts_len);
}

/* Both public entry points come here directly: a call from one to the
 * other would go through the global scope, where a program's no-op
 * library may answer first. */
static DYNOBS_HOT dynobs_span *start_span(const char *name, int kind,
                                          const char *parent_traceparent,
                                          const char *parent_tracestate, int flags)
{
    if (!name)
        return NULL;
    struct dynobs_ctx given;
    const struct dynobs_ctx *parent = NULL;
    if (parent_traceparent && !(flags & DYNOBS_SPAN_ROOT)) {
        parent = dynobs__ctx_from_headers(&given, parent_traceparent, strlen(parent_traceparent),
                                          parent_tracestate,
                                          parent_tracestate ? strlen(parent_tracestate) : 0);
        if (!parent)
            return NULL;
        if (flags & DYNOBS_SPAN_LOCAL_PARENT)
            given.remote = 0;
    }
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return NULL;
    struct dynobs_span *s = pool_get(t);
    if (!s) {
        dynobs__count(DYNOBS_CTR_SPANS_REFUSED);
        return NULL;
    }
    if (!parent_traceparent && !(flags & DYNOBS_SPAN_ROOT))
        parent = dynobs__ctx_current(t);
    s->owner = t;
    s->gen++;
    /* Keeps the default policy that of the rules in force (rulesmap.h):
     * API spans take the first sampling entry that names no span field. */
    (void)dynobs__rules_now();
    span_fill(s, name, kind, parent, policy_or_default(NULL), NULL);
    struct dynobs_span_rec *r = &s->rec;
    s->stack_idx = -1;
    if (!(flags & DYNOBS_SPAN_NO_CONTEXT))
        dynobs__ctx_enter_span(t, s, parent);
    /* An unsampled span is never written: it needs no timestamps. */
    r->start_ns = s->recording ? dynobs__thread_now() : 0;
    __atomic_store_n(&s->live, SPAN_LIVE, __ATOMIC_RELEASE);
    return s;
}

DYNOBS_API DYNOBS_HOT dynobs_span *dynobs_span_start(const char *name, int kind)
{
    return start_span(name, kind, NULL, NULL, 0);
}

DYNOBS_API dynobs_span *dynobs_span_start_ex(const char *name, int kind,
                                             const char *parent_traceparent,
                                             const char *parent_tracestate, int flags)
{
    return start_span(name, kind, parent_traceparent, parent_tracestate, flags);
}

/* A detached span begun (span.h): named name, or with the body k says
 * its storage holds. */
static inline __attribute__((always_inline)) int
begin_detached(struct dynobs_span *s, const char *name, const struct dynobs_span_kept *k,
               int kind, const struct dynobs_ctx *parent, uint64_t start_ns,
               const struct dynobs_span_policy *pol)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t || (!name && !k))
        return DYNOBS_ENOMEM;
    s->owner = NULL;
    s->stack_idx = -1;
    s->gen++;
    span_fill(s, name, kind, parent, policy_or_default(pol), k);
    s->rec.start_ns = start_ns;
    __atomic_store_n(&s->live, SPAN_LIVE, __ATOMIC_RELEASE);
    return 0;
}

int dynobs__span_begin_ex(struct dynobs_span *s, const char *name, int kind,
                          const struct dynobs_ctx *parent, uint64_t start_ns,
                          const struct dynobs_span_policy *pol)
{
    return begin_detached(s, name, NULL, kind, parent, start_ns, pol);
}

DYNOBS_HOT int dynobs__span_begin_kept(struct dynobs_span *s, const struct dynobs_span_kept *k, int kind,
                            const struct dynobs_ctx *parent, uint64_t start_ns,
                            const struct dynobs_span_policy *pol)
{
    return begin_detached(s, NULL, k, kind, parent, start_ns, pol);
}

void dynobs__span_keep(const struct dynobs_span *s, struct dynobs_span_kept *k)
{
    *k = (struct dynobs_span_kept){.used = s->used,
                                   .items_off = s->items_off,
                                   .keys = s->keys,
                                   .attrs = s->attrs,
                                   .dropped_attrs = s->rec.dropped_attrs,
                                   .truncated = s->truncated};
}

int dynobs__span_begin(struct dynobs_span *s, const char *name, int kind,
                       const struct dynobs_ctx *parent, uint64_t start_ns)
{
    return dynobs__span_begin_ex(s, name, kind, parent, start_ns, NULL);
}

/* The size of the attribute item at p: header, key, and the value (a
 * string's length and bytes, or 8 bytes). Inlined: find_attr's walk over
 * a span's items calls it for each. */
static inline __attribute__((always_inline)) size_t attr_size(const uint8_t *p)
{
    size_t size = DYNOBS_ITEM_HDR + p[2];
    if (p[1] == DYNOBS_ATTR_STRING) {
        uint16_t vl;
        memcpy(&vl, p + size, 2);
        size += 2 + vl;
    } else {
        size += 8;
    }
    return size;
}

/* Finds the span attribute item with this key; returns its offset in the
 * body or UINT32_MAX. The items were written by us, so a light walk that
 * trusts their lengths is enough here. */
static uint32_t find_attr(const struct dynobs_span *s, const char *key, size_t klen)
{
    uint32_t o = s->items_off;
    while (o < s->used) {
        const uint8_t *p = s->body + o;
        size_t kl = p[2], size;
        if (p[0] == DYNOBS_ITEM_EVENT) {
            size = DYNOBS_ITEM_HDR + DYNOBS_EVENT_FIXED + kl;
        } else {
            size = attr_size(p);
            if (p[0] == DYNOBS_ITEM_SPAN_ATTR && kl == klen &&
                memcmp(p + DYNOBS_ITEM_HDR, key, klen) == 0)
                return o;
        }
        o += (uint32_t)size;
    }
    return UINT32_MAX;
}

static void remove_item(struct dynobs_span *s, uint32_t off)
{
    const uint8_t *p = s->body + off;
    size_t size = attr_size(p);
    memmove(s->body + off, s->body + off + size, s->used - off - size);
    s->used -= (uint32_t)size;
    if (s->last_event_off != UINT32_MAX && s->last_event_off > off)
        s->last_event_off -= (uint32_t)size;
}

/* An item the span cannot keep: counted in *dropped, the span marked
 * truncated. */
static inline int drop(dynobs_span *s, uint16_t *dropped)
{
    (*dropped)++;
    s->truncated = 1;
    return DYNOBS_ENOSPC;
}

/* The body took an item of n bytes, counted in *kept; n == 0: it did not
 * fit, and it is dropped. */
static inline int took(dynobs_span *s, size_t n, uint16_t *kept, uint16_t *dropped)
{
    if (!n)
        return drop(s, dropped);
    s->used += (uint32_t)n;
    (*kept)++;
    return 0;
}

/* The bit of struct dynobs_span.keys that stands for a key (klen >= 1):
 * its length and two of its bytes, mixed. Two keys with the same bit only
 * cost the second one the scan. */
static inline uint64_t key_bit(const char *key, size_t klen)
{
    return 1ull << ((klen * 7u + (uint8_t)key[klen - 1] + (uint8_t)key[klen >> 1] * 3u) & 63u);
}

/* fresh: the caller knows the span has no attribute of this key yet, so
 * the scan for one to replace is skipped; it is skipped too when no key
 * set so far has this key's bit. */
static inline __attribute__((always_inline)) int put_attr(dynobs_span *s, const char *key,
                                                          size_t klen, int type, const void *val,
                                                          size_t vlen, int fresh)
{
    uint8_t flags = 0;
    if (type == DYNOBS_ATTR_STRING && vlen > dynobs__config.attr_value_limit) {
        vlen = dynobs__utf8_cut(val, vlen, dynobs__config.attr_value_limit);
        flags = DYNOBS_ITEMF_TRUNCATED;
        s->truncated = 1;
    }
    uint64_t bit = klen ? key_bit(key, klen) : 0;
    uint32_t old = fresh || !(s->keys & bit) ? UINT32_MAX : find_attr(s, key, klen);
    if (old != UINT32_MAX) {
        remove_item(s, old);
        s->attrs--;
    } else if (s->attrs >= dynobs__config.attr_count_limit) {
        return drop(s, &s->rec.dropped_attrs);
    }
    size_t n = dynobs__item_put_attr(s->body + s->used, sizeof s->body - s->used,
                                     DYNOBS_ITEM_SPAN_ATTR, key, klen, type, val, vlen, flags);
    int rc = took(s, n, &s->attrs, &s->rec.dropped_attrs);
    if (rc < 0)
        return rc;
    s->keys |= bit;
    return flags ? DYNOBS_ETRUNC : 0;
}

static inline __attribute__((always_inline)) int set_attr(dynobs_span *s, const char *key,
                                                          int type, const void *val,
                                                          size_t vlen)
{
    if (!live(s) || !key)
        return DYNOBS_EINVAL;
    if (!s->recording)
        return 0;
    size_t klen = strnlen(key, 256);
    if (klen == 0 || klen > 255)
        return DYNOBS_EINVAL;
    return put_attr(s, key, klen, type, val, vlen, 0);
}

DYNOBS_API DYNOBS_HOT int dynobs_span_set_str(dynobs_span *s, const char *key, const char *value)
{
    if (!value)
        return DYNOBS_EINVAL;
    /* strnlen bounds the scan of a value that may be huge or unterminated
     * beyond what we could keep anyway. */
    size_t n = strnlen(value, (size_t)dynobs__config.attr_value_limit + 1);
    return set_attr(s, key, DYNOBS_ATTR_STRING, value, n);
}

DYNOBS_API DYNOBS_HOT int dynobs_span_set_int(dynobs_span *s, const char *key, int64_t value)
{
    return set_attr(s, key, DYNOBS_ATTR_INT, &value, 8);
}

DYNOBS_API DYNOBS_HOT int dynobs_span_set_double(dynobs_span *s, const char *key, double value)
{
    return set_attr(s, key, DYNOBS_ATTR_DOUBLE, &value, 8);
}

DYNOBS_API DYNOBS_HOT int dynobs_span_set_bool(dynobs_span *s, const char *key, int value)
{
    int64_t b = value != 0;
    return set_attr(s, key, DYNOBS_ATTR_BOOL, &b, 8);
}

static int add_event(dynobs_span *s, const char *name, const dynobs_attr *attrs, size_t nattrs)
{
    if (!live(s) || !name || (nattrs && !attrs))
        return DYNOBS_EINVAL;
    if (!s->recording)
        return 0;
    if (s->events >= dynobs__config.event_count_limit)
        return drop(s, &s->rec.dropped_events);
    size_t nl = strnlen(name, 256);
    if (nl > 255)
        s->truncated = 1;
    uint32_t ev = s->used;
    struct dynobs_thread *self = dynobs__thread();
    size_t n = dynobs__item_put_event(s->body + s->used, sizeof s->body - s->used, name, nl,
                                      self ? dynobs__thread_now() : dynobs__now_ns());
    if (took(s, n, &s->events, &s->rec.dropped_events) < 0)
        return DYNOBS_ENOSPC;
    s->last_event_off = ev;
    struct dynobs_attrs_out o = {.used = s->used};
    int rc = dynobs__attrs_put(s->body, sizeof s->body, DYNOBS_ITEM_EVENT_ATTR, attrs, nattrs,
                               dynobs__config.event_attr_limit, dynobs__config.attr_value_limit,
                               &o);
    s->used = (uint32_t)o.used;
    if (o.truncated)
        s->truncated = 1;
    uint16_t dropped = o.dropped;
    memcpy(s->body + ev + 12, &dropped, 2);
    if (rc == 0 && dropped)
        rc = DYNOBS_ENOSPC;
    return rc;
}

DYNOBS_API int dynobs_span_add_event_attrs(dynobs_span *s, const char *name,
                                           const dynobs_attr *attrs, size_t nattrs)
{
    return add_event(s, name, attrs, nattrs);
}

DYNOBS_API int dynobs_span_add_event(dynobs_span *s, const char *name)
{
    return add_event(s, name, NULL, 0);
}

static int set_status(dynobs_span *s, int code, const char *message)
{
    if (!live(s) || code < DYNOBS_STATUS_UNSET || code > DYNOBS_STATUS_ERROR)
        return DYNOBS_EINVAL;
    /* OpenTelemetry: OK is final; UNSET never overrides a status set. */
    if (s->status_final || code == DYNOBS_STATUS_UNSET)
        return 0;
    s->rec.status = (uint8_t)code;
    s->end_check &= (uint8_t)~DYNOBS_SPAN_KEEP_NOW;
    if (code == DYNOBS_STATUS_ERROR && (s->end_check & DYNOBS_SPAN_KEEP_ERR))
        s->end_check |= DYNOBS_SPAN_KEEP_NOW;
    s->status_len = 0;
    if (code == DYNOBS_STATUS_OK) {
        s->status_final = 1;
    } else if (message) {
        size_t n = kept_len(s, message, DYNOBS_STATUS_MSG_MAX);
        memcpy(s->status_msg, message, n);
        s->status_len = (uint16_t)n;
    }
    return 0;
}

/* A span whose thread's shard is full goes to the next shard with room,
 * so that one busy thread can use the whole ring while the threads of the
 * other shards are quiet (the consumer reads every shard; the order of
 * one thread's spans across shards does not matter to it). Sets *h, or
 * counts the drop in the thread's own shard; returns the ring of *h. */
static __attribute__((noinline)) struct dynobs_ring *spill(struct dynobs_segment *seg,
                                                           struct dynobs_ring *own,
                                                           size_t payload, uint16_t rf,
                                                           struct dynobs_rec_hdr **h)
{
    uint32_t i = (uint32_t)(own - seg->rings);
    for (uint32_t k = 1; k < seg->nshards; k++) {
        struct dynobs_ring *r = &seg->rings[(i + k) & (seg->nshards - 1)];
        if ((*h = dynobs__ring_try_reserve_in(r, &seg->room[(i + k) & (seg->nshards - 1)],
                                              payload, DYNOBS_REC_SPAN, rf)))
            return r;
    }
    *h = NULL;
    __atomic_fetch_add(&own->counters[DYNOBS_CTR_RECORDS_DROPPED], 1, __ATOMIC_RELAXED);
    return own;
}

/* Where a span body goes in the template table, and whether it is the
 * body of a series' last span (span.h): a hash that nothing else trusts,
 * as the body itself is compared. */
static uint64_t body_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 29;
    }
    return h;
}

/* Whether template slot t holds id with body b of n bytes (a slot, once
 * given an id, never changes: layout.h). */
static int slot_holds(const struct dynobs_tmpl_slot *t, uint32_t id, const uint8_t *b, uint32_t n)
{
    return id != DYNOBS_TMPL_EMPTY && id != DYNOBS_TMPL_WRITING &&
           __atomic_load_n(&t->id, __ATOMIC_ACQUIRE) == id && t->len == n && !memcmp(t->body, b, n);
}

#define TMPL_PER_PAGE (DYNOBS_PAGE / sizeof(struct dynobs_tmpl_slot))
_Static_assert(DYNOBS_TMPL_SLOTS / TMPL_PER_PAGE <= 32, "a bit per page of the table");

/* Whether this process has backed the page of template slot i: until it
 * has, the page is a hole in the file, and touching it could fault (a
 * full tmpfs); no template can be there either. */
static int slot_backed(const struct dynobs_segment *seg, uint32_t i)
{
    return (__atomic_load_n(&seg->tmpl_backed, __ATOMIC_ACQUIRE) >> (i / TMPL_PER_PAGE)) & 1;
}

/* Backs the page of template slot i: 1, or 0 when the memory could not
 * be had (as a ring's growth, common/ring.c). */
static int back_slot(struct dynobs_segment *seg, uint32_t i)
{
    if (slot_backed(seg, i))
        return 1;
#ifdef MADV_POPULATE_WRITE
    uint32_t page = (uint32_t)(i / TMPL_PER_PAGE);
    if (madvise((uint8_t *)seg->tmpl + (size_t)page * DYNOBS_PAGE, DYNOBS_PAGE,
                MADV_POPULATE_WRITE) != 0)
        return 0;
    __atomic_fetch_or(&seg->tmpl_backed, 1u << page, __ATOMIC_RELEASE);
    return 1;
#else
    return 0;
#endif
}

/* The template of body b (n bytes, hash hv) in the segment's table: found
 * in one of its two candidate slots, or, when define is set, put into the
 * first of them that is free. 1 with *slot and *id, or 0. */
static int template_of(struct dynobs_segment *seg, uint64_t hv, const uint8_t *b, uint32_t n,
                       int define, uint32_t *slot, uint32_t *id)
{
    const uint32_t c[2] = {(uint32_t)(hv >> 57) % DYNOBS_TMPL_SLOTS,
                           (uint32_t)(hv >> 50) % DYNOBS_TMPL_SLOTS};
    for (int k = 0; k < 2; k++) {
        if (!slot_backed(seg, c[k]))
            continue;
        struct dynobs_tmpl_slot *t = &seg->tmpl[c[k]];
        uint32_t v = __atomic_load_n(&t->id, __ATOMIC_ACQUIRE);
        if (slot_holds(t, v, b, n)) {
            *slot = c[k];
            *id = v;
            return 1;
        }
    }
    for (int k = 0; define && k < 2; k++) {
        if (!back_slot(seg, c[k]))
            continue;
        struct dynobs_tmpl_slot *t = &seg->tmpl[c[k]];
        uint32_t v = DYNOBS_TMPL_EMPTY;
        if (!__atomic_compare_exchange_n(&t->id, &v, DYNOBS_TMPL_WRITING, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED))
            continue;
        do
            v = (uint32_t)__atomic_add_fetch(&seg->hdr->tmpl_next, 1, __ATOMIC_RELAXED);
        while (v == DYNOBS_TMPL_EMPTY || v == DYNOBS_TMPL_WRITING);
        t->len = n;
        memcpy(t->body, b, n);
        __atomic_store_n(&t->id, v, __ATOMIC_RELEASE);
        *slot = c[k];
        *id = v;
        return 1;
    }
    return 0;
}

/* Whether span s's body may be written as a template's reference in
 * segment seg: nothing in it that the reference leaves out. */
static inline int tmpl_fits(const struct dynobs_span *s, const struct dynobs_segment *seg)
{
    return seg->tmpl && !s->status_len && !s->rec.tracestate_len &&
           s->used <= DYNOBS_TMPL_BODY_MAX;
}

/* A recorded span's end time: end_ns, or its start when the wall clock
 * stepped back in between. */
static inline void set_end(struct dynobs_span *s, uint64_t end_ns)
{
    s->rec.end_ns = end_ns < s->rec.start_ns ? s->rec.start_ns : end_ns;
}

/* The counts of a span's record, as its body is written. */
static inline __attribute__((always_inline)) void rec_counts(struct dynobs_span *s)
{
    struct dynobs_span_rec *r = &s->rec;
    r->status_msg_len = s->status_len;
    r->attr_count = s->attrs;
    r->event_count = s->events;
    r->body_len = s->used + s->status_len;
}

/* Span s written into ring as a reference to template id in slot: 1, or
 * 0 when the ring has no room for it. */
static inline __attribute__((always_inline)) int write_ref(struct dynobs_span *s,
                                                           struct dynobs_segment *seg,
                                                           struct dynobs_ring *ring, uint16_t rf,
                                                           uint32_t slot, uint32_t id)
{
    struct dynobs_span_rec *r = &s->rec;
    struct dynobs_rec_hdr *h = dynobs__ring_try_reserve_in(ring, dynobs__ring_room(seg, ring),
                                                           sizeof *r, DYNOBS_REC_SPAN_REF, rf);
    if (!h)
        return 0;
    dynobs__ring_count_written(ring);
    r->template_slot = (uint16_t)slot;
    r->template_id = id;
    memcpy(h + 1, r, sizeof *r);
    r->template_slot = 0;
    r->template_id = 0;
    dynobs__ring_publish(h);
    return 1;
}

/* A span of a series with template state st (span.h): 1 when it was
 * written as a reference to a template of its body (layout.h), 0 when it
 * is to be written whole. A body goes into the table when it is the
 * series' last body again; until then only its hash is kept. */
static int by_template(struct dynobs_span *s, struct dynobs_segment *seg, struct dynobs_ring *ring,
                       uint16_t rf, struct dynobs_span_tmpl *st)
{
    const uint8_t *b = s->body;
    uint32_t n = s->used;
    /* (st->id stays that of the series' last body only: st->same may be
     * set for the next span of the series) */
    int same = st->same;
    st->same = 0;
    if (!tmpl_fits(s, seg)) {
        st->id = DYNOBS_TMPL_EMPTY;
        return 0;
    }
    uint32_t epoch = dynobs__segment_epoch();
    uint32_t slot = st->slot, id = st->id;
    if (st->epoch != epoch || id == DYNOBS_TMPL_EMPTY ||
        (!same && !slot_holds(&seg->tmpl[slot % DYNOBS_TMPL_SLOTS], id, b, n))) {
        uint64_t hv = body_hash(b, n);
        int again = st->hash == hv;
        st->hash = hv;
        st->id = DYNOBS_TMPL_EMPTY;
        if (!template_of(seg, hv, b, n, again, &slot, &id))
            return 0;
        st->slot = (uint16_t)slot;
        st->id = id;
        st->epoch = epoch;
    }
    /* (whole, when there is no room: another shard may have some) */
    return write_ref(s, seg, ring, rf, slot, id);
}

/* rf: the record flags of tail sampling (end_flags); t: the template
 * state of the span's series, or NULL. */
static int emit(struct dynobs_span *s, struct dynobs_thread *self, uint16_t rf,
                struct dynobs_span_tmpl *t)
{
    struct dynobs_segment *seg = dynobs__segment();
    if (!seg) {
        dynobs__count_lost();
        if (t) /* its template is no longer that of its last body */
            *t = (struct dynobs_span_tmpl){0};
        return DYNOBS_ENOMEM;
    }
    struct dynobs_span_rec *r = &s->rec;
    const uint32_t nl = r->name_len;
    rec_counts(s);
    size_t payload = sizeof *r + r->body_len;
    if (s->truncated)
        rf |= DYNOBS_RECF_TRUNCATED;
    struct dynobs_ring *ring = dynobs__ring_of(seg, self);
    if (t && by_template(s, seg, ring, rf, t)) {
        if (s->truncated)
            __atomic_fetch_add(&ring->counters[DYNOBS_CTR_RECORDS_TRUNCATED], 1, __ATOMIC_RELAXED);
        return 0;
    }
    struct dynobs_rec_hdr *h = dynobs__ring_try_reserve_in(ring, dynobs__ring_room(seg, ring),
                                                           payload, DYNOBS_REC_SPAN, rf);
    if (DYNOBS_UNLIKELY(!h)) {
        ring = spill(seg, ring, payload, rf, &h);
        if (!h)
            return DYNOBS_ENOSPC;
    }
    dynobs__ring_count_written(ring);
    /* Body order: name, status message, tracestate and items; the fixed
     * part and the name are adjacent in the span (span.h). */
    uint8_t *p = (uint8_t *)(h + 1);
    const uint8_t *fixed = (const uint8_t *)s + offsetof(struct dynobs_span, rec);
    if (DYNOBS_LIKELY(!s->status_len)) {
        memcpy(p, fixed, sizeof *r + s->used);
    } else {
        memcpy(p, fixed, sizeof *r + nl);
        p += sizeof *r + nl;
        memcpy(p, s->status_msg, s->status_len);
        p += s->status_len;
        memcpy(p, s->body + nl, s->used - nl);
    }
    dynobs__ring_publish(h);
    if (s->truncated)
        __atomic_fetch_add(&ring->counters[DYNOBS_CTR_RECORDS_TRUNCATED], 1, __ATOMIC_RELAXED);
    return 0;
}

/* The record flags of tail sampling for a span that ends: written
 * unsampled, and whether it is a reason to keep its trace (an error, or
 * slower than its rule). */
static uint16_t end_flags(const struct dynobs_span *s)
{
    uint16_t rf = (s->end_check & DYNOBS_SPAN_UNSAMPLED) ? DYNOBS_RECF_UNSAMPLED : 0;
    if ((s->end_check & DYNOBS_SPAN_KEEP_NOW) ||
        ((s->end_check & DYNOBS_SPAN_KEEP_SLOW) && s->rec.end_ns - s->rec.start_ns >= s->slow_ns))
        rf |= DYNOBS_RECF_KEEP;
    return rf;
}

static int span_end_at(dynobs_span *s, uint64_t end_ns, struct dynobs_span_tmpl *t);

static int span_end(dynobs_span *s)
{
    return span_end_at(s, 0, NULL);
}

static DYNOBS_HOT int span_end_at(dynobs_span *s, uint64_t end_ns, struct dynobs_span_tmpl *t)
{
    /* A plain test and store, not a compare-and-swap: ending one span from
     * two threads at once is a caller bug, and what it costs then is a
     * duplicate record, never memory safety (every write stays inside the
     * slot and the ring's reservation). A second end from the same thread
     * is refused. */
    if (!live(s))
        return DYNOBS_EINVAL;
    __atomic_store_n(&s->live, 0, __ATOMIC_RELAXED);
    struct dynobs_thread *self = dynobs__thread();
    int rc = 0;
    if (s->recording) {
        set_end(s, end_ns ? end_ns : self ? dynobs__thread_now() : dynobs__now_ns());
        uint16_t rf = 0;
        if (__builtin_expect(s->end_check & ~DYNOBS_SPAN_KEEP_ERR, 0))
            rf = end_flags(s);
        rc = emit(s, self, rf, t);
    }
    if (!s->owner) /* detached: its storage belongs to the caller */
        return rc;
    dynobs__ctx_leave_span(s, self);
    pool_put(s, self);
    return rc;
}

DYNOBS_HOT int dynobs__span_end_same(struct dynobs_span *s, uint64_t end_ns,
                                     struct dynobs_span_tmpl *st, struct dynobs_segment *seg,
                                     struct dynobs_thread *self)
{
    /* What span_end_at, emit and by_template would find on their way to
     * the reference, all at once; anything else goes their way. */
    if (!st->same || !end_ns || !seg || !self || s->owner || !s->recording || s->truncated ||
        (s->end_check & ~DYNOBS_SPAN_KEEP_ERR) || !tmpl_fits(s, seg) ||
        st->id == DYNOBS_TMPL_EMPTY || st->epoch != dynobs__segment_epoch() || !live(s))
        return 0;
    set_end(s, end_ns);
    rec_counts(s);
    if (!write_ref(s, seg, dynobs__ring_of(seg, self), 0, st->slot, st->id))
        return 0; /* (the general way sets the record's fields again) */
    st->same = 0;
    __atomic_store_n(&s->live, 0, __ATOMIC_RELAXED);
    return 1;
}

DYNOBS_API int dynobs_span_set_status(dynobs_span *s, int code, const char *message)
{
    return set_status(s, code, message);
}

DYNOBS_API DYNOBS_HOT int dynobs_span_end(dynobs_span *s)
{
    return span_end(s);
}

DYNOBS_API int dynobs_span_traceparent(const dynobs_span *s, char *buf, size_t len)
{
    if (!live(s) || !buf)
        return DYNOBS_EINVAL;
    if (len < DYNOBS_TRACEPARENT_LEN + 1)
        return DYNOBS_ERANGE;
    return dynobs__traceparent_format(s->rec.trace_id, s->rec.span_id, s->rec.trace_flags, buf,
                                      len);
}

int dynobs__span_set(struct dynobs_span *s, const char *key, int type, const void *val,
                     size_t vlen)
{
    return set_attr(s, key, type, val, vlen);
}

int dynobs__span_set_int(struct dynobs_span *s, const char *key, int64_t value)
{
    return set_attr(s, key, DYNOBS_ATTR_INT, &value, 8);
}

int dynobs__span_add(struct dynobs_span *s, const char *key, size_t klen, int type,
                     const void *val, size_t vlen)
{
    if (!live(s))
        return DYNOBS_EINVAL;
    if (!s->recording)
        return 0;
    return put_attr(s, key, klen, type, val, vlen, 1);
}

/* count items of n bytes at the end of the body: copied from items, or
 * (items NULL) already there (span.h). */
static inline int add_block(struct dynobs_span *s, const uint8_t *items, size_t n,
                            unsigned count)
{
    if (!live(s))
        return DYNOBS_EINVAL;
    if (!s->recording)
        return 0;
    if (s->attrs + count > dynobs__config.attr_count_limit || n > sizeof s->body - s->used)
        return 1;
    if (items)
        memcpy(s->body + s->used, items, n);
    s->used += (uint32_t)n;
    s->attrs = (uint16_t)(s->attrs + count);
    s->keys = ~0ull; /* their keys are not looked at: every later key scans */
    return 0;
}

int dynobs__span_add_items(struct dynobs_span *s, const uint8_t *items, size_t n,
                           unsigned count)
{
    return add_block(s, items, n, count);
}

int dynobs__span_add_kept(struct dynobs_span *s, size_t n, unsigned count)
{
    return add_block(s, NULL, n, count);
}

int dynobs__span_status(struct dynobs_span *s, int code, const char *message)
{
    return set_status(s, code, message);
}

int dynobs__span_finish(struct dynobs_span *s)
{
    return span_end(s);
}

int dynobs__span_finish_at(struct dynobs_span *s, uint64_t end_ns)
{
    return span_end_at(s, end_ns, NULL);
}

/* (a call, not inlined: the flattened finish comes here only when its
 * span is not the usual one, dynobs__span_end_same) */
__attribute__((noinline)) int dynobs__span_finish_as(struct dynobs_span *s, uint64_t end_ns,
                                                     struct dynobs_span_tmpl *t)
{
    return span_end_at(s, end_ns, t);
}

int dynobs__span_end_crashed(struct dynobs_thread *t, const char *message,
                             const dynobs_attr *attrs, size_t nattrs)
{
    int n = 0;
    /* Innermost first, so that the report reads from the fault outwards. */
    for (int i = DYNOBS_SPAN_POOL - 1; i >= 0; i--) {
        struct dynobs_span *s = &t->spans[i];
        if (!(__atomic_load_n(&t->pool_used, __ATOMIC_RELAXED) & (1ull << i)) || !live(s))
            continue;
        set_status(s, DYNOBS_STATUS_ERROR, message);
        add_event(s, "exception", attrs, nattrs);
        span_end(s);
        n++;
    }
    return n;
}
