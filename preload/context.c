/*
 * The one owner of context (see context.h): the per-thread stacks, remote
 * contexts from W3C headers, requests bound to the thread that serves
 * them, and the public API that reads the current context as W3C headers
 * or makes a remote one current.
 */
#include <stddef.h>
#include <string.h>

#include "lazymap.h"
#include "state.h"

#include "../common/metrics.h"

/* An invalid tracestate is dropped whole; the traceparent stays. */
static void set_tracestate(struct dynobs_ctx *c, const char *ts, size_t len)
{
    int n = dynobs__tracestate_parse(ts, len, c->tracestate, sizeof c->tracestate);
    c->ts_len = (uint16_t)(n > 0 ? n : 0);
}

DYNOBS_API int dynobs_current_traceparent(char *buf, size_t len)
{
    if (!buf)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    if (len < DYNOBS_TRACEPARENT_LEN + 1)
        return DYNOBS_ERANGE;
    struct dynobs_thread *t = dynobs__thread();
    const struct dynobs_ctx *c = t ? dynobs__ctx_current(t) : NULL;
    if (!c)
        return DYNOBS_ENOENT;
    return dynobs__traceparent_format(c->trace_id, c->span_id, c->flags, buf, len);
}

DYNOBS_API int dynobs_current_tracestate(char *buf, size_t len)
{
    if (!buf || len == 0)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_thread *t = dynobs__thread();
    const struct dynobs_ctx *c = t ? dynobs__ctx_current(t) : NULL;
    if (!c)
        return DYNOBS_ENOENT;
    if (len < (size_t)c->ts_len + 1)
        return DYNOBS_ERANGE;
    memcpy(buf, c->tracestate, c->ts_len);
    buf[c->ts_len] = '\0';
    return c->ts_len;
}

DYNOBS_API int dynobs_context_attach(const char *traceparent, const char *tracestate)
{
    if (!traceparent)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_traceparent tp;
    if (dynobs__traceparent_parse(traceparent, strlen(traceparent), &tp) < 0)
        return DYNOBS_EINVAL;
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return DYNOBS_ENOMEM;
    dynobs__ctx_pop_ended(t);
    struct dynobs_ctx *c = dynobs__ctx_push(t);
    if (!c)
        return DYNOBS_ENOSPC;
    dynobs__ctx_remote(c, &tp);
    c->kind = DYNOBS_CTX_ATTACHED;
    if (tracestate)
        set_tracestate(c, tracestate, strlen(tracestate));
    dynobs__ctx_publish(c);
    return 0;
}

/* ---- baggage through the API ---- */

/* A baggage entry's list goes back to its thread's free slots. */
static void baggage_release(struct dynobs_thread *t, const struct dynobs_ctx *c)
{
    for (int i = 0; i < DYNOBS_BAGGAGE_SLOTS; i++) {
        if (c->bag == t->bag_slot[i]) {
            __atomic_add_fetch(&t->bag_slot_gen[i], 1, __ATOMIC_RELEASE);
            t->bag_used &= (uint8_t)~(1u << i);
        }
    }
}

DYNOBS_API int dynobs_baggage_get(const char *key, char *buf, size_t len)
{
    if (!key || !buf)
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_thread *t = dynobs__thread();
    const struct dynobs_ctx *c = t ? dynobs__ctx_current(t) : NULL;
    size_t bl, vl;
    const char *bag = c ? dynobs__ctx_baggage(c, &bl) : NULL;
    const char *v = bag ? dynobs__baggage_find(bag, bl, key, strlen(key), &vl) : NULL;
    if (!v)
        return DYNOBS_ENOENT;
    if (len < vl + 1)
        return DYNOBS_ERANGE;
    memcpy(buf, v, vl);
    buf[vl] = '\0';
    return (int)vl;
}

/* The current list without key's member, then key=value, into out (cap
 * bytes): its length, or -1 when it does not fit. */
static int baggage_with(const char *bag, size_t bl, const char *key, size_t kl,
                        const char *value, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = bag, *end = bag + bl; p < end;) {
        const char *m = memchr(p, ',', (size_t)(end - p));
        const char *me = m ? m : end;
        const char *eq = memchr(p, '=', (size_t)(me - p));
        if (!(eq && (size_t)(eq - p) == kl && !memcmp(p, key, kl))) {
            size_t n = (size_t)(me - p);
            if (o + (o ? 1 : 0) + n > cap)
                return -1;
            if (o)
                out[o++] = ',';
            memcpy(out + o, p, n);
            o += n;
        }
        p = me + 1;
    }
    if (value) {
        size_t vl = strlen(value);
        if (o + (o ? 1 : 0) + kl + 1 + vl > cap)
            return -1;
        if (o)
            out[o++] = ',';
        memcpy(out + o, key, kl);
        out[o + kl] = '=';
        memcpy(out + o + kl + 1, value, vl);
        o += kl + 1 + vl;
    }
    return (int)o;
}

DYNOBS_API int dynobs_baggage_set(const char *key, const char *value)
{
    if (!key)
        return DYNOBS_EINVAL;
    /* What the grammar allows, checked by the one parser: "key=value". */
    size_t kl = strnlen(key, 256), vl = value ? strnlen(value, DYNOBS_BAGGAGE_MAX) : 0;
    char probe[DYNOBS_BAGGAGE_MAX];
    if (kl == 0 || kl > 255 || strpbrk(key, " \t=,;") || (value && strpbrk(value, " \t,;")) ||
        kl + 1 + vl > sizeof probe)
        return DYNOBS_EINVAL;
    memcpy(probe, key, kl);
    probe[kl] = '=';
    memcpy(probe + kl + 1, value ? value : "", vl);
    char check[DYNOBS_BAGGAGE_MAX];
    if (dynobs__baggage_normalize(probe, kl + 1 + vl, check, sizeof check) != (int)(kl + 1 + vl))
        return DYNOBS_EINVAL;
    if (!dynobs__on())
        return DYNOBS_EDISABLED;
    struct dynobs_thread *t = dynobs__thread();
    const struct dynobs_ctx *cur = t ? dynobs__ctx_current(t) : NULL;
    if (!cur)
        return DYNOBS_ENOENT;
    int slot = __builtin_ffs(~t->bag_used & ((1 << DYNOBS_BAGGAGE_SLOTS) - 1)) - 1;
    if (slot < 0)
        return DYNOBS_ENOSPC;
    size_t bl = 0;
    const char *bag = dynobs__ctx_baggage(cur, &bl);
    int n = baggage_with(bag ? bag : "", bag ? bl : 0, key, kl, value, t->bag_slot[slot],
                         sizeof t->bag_slot[slot]);
    if (n < 0)
        return DYNOBS_ENOSPC;
    struct dynobs_ctx *x = dynobs__ctx_push(t);
    if (!x)
        return DYNOBS_ENOSPC;
    /* The same trace and what else it carries; a list of its own. */
    memcpy(x, cur, sizeof *x);
    x->valid = 0;
    x->ended = 0;
    x->kind = DYNOBS_CTX_BAGGAGE;
    x->span = NULL;
    x->span_gen = 0;
    t->bag_used |= (uint8_t)(1u << slot);
    t->bag_slot_len[slot] = (uint16_t)n;
    x->bag = t->bag_slot[slot];
    x->bag_len = (uint16_t)n;
    x->bag_gen = __atomic_load_n(&t->bag_slot_gen[slot], __ATOMIC_ACQUIRE);
    x->bag_gen_p = &t->bag_slot_gen[slot];
    dynobs__ctx_publish(x);
    return 0;
}

DYNOBS_API void dynobs_context_detach(void)
{
    if (!dynobs__on())
        return;
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return;
    /* End the innermost attached context still open; spans started under
     * it and not ended yet stay current until they end. */
    for (int d = t->depth; d > 0; d--) {
        struct dynobs_ctx *c = &t->stack[d - 1];
        if ((c->kind == DYNOBS_CTX_ATTACHED || c->kind == DYNOBS_CTX_BAGGAGE) && c->valid &&
            !c->ended) {
            if (c->kind == DYNOBS_CTX_BAGGAGE)
                baggage_release(t, c);
            __atomic_store_n(&c->ended, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    dynobs__ctx_pop_ended(t);
}

void dynobs__ctx_remote(struct dynobs_ctx *c, const struct dynobs_traceparent *tp)
{
    memset(c, 0, offsetof(struct dynobs_ctx, tracestate));
    memcpy(c->trace_id, tp->trace_id, 16);
    memcpy(c->span_id, tp->parent_id, 8);
    c->flags = tp->flags;
    c->remote = 1;
}

/* ---- the stacks ----
 *
 * A stack is only pushed and popped by its own thread, but a signal
 * handler may interrupt it anywhere: depth is raised before an
 * entry is written, and an entry is marked valid only once complete, so a
 * handler's spans find the nearest complete entry as their parent. */
void dynobs__ctx_pop_ended(struct dynobs_thread *t)
{
    int d = t->depth;
    while (d > 0 && __atomic_load_n(&t->stack[d - 1].ended, __ATOMIC_ACQUIRE))
        d--;
    t->depth = d;
}

/* The innermost live entry of t's stack, or NULL. */
static DYNOBS_HOT const struct dynobs_ctx *stack_top(struct dynobs_thread *t)
{
    dynobs__ctx_pop_ended(t);
    for (int d = t->depth; d > 0; d--) {
        const struct dynobs_ctx *c = &t->stack[d - 1];
        if (c->valid && !__atomic_load_n(&c->ended, __ATOMIC_ACQUIRE))
            return c;
    }
    return NULL;
}

const struct dynobs_ctx *dynobs__ctx_current(struct dynobs_thread *t)
{
    return stack_top(t);
}

const struct dynobs_ctx *dynobs__ctx_outbound(struct dynobs_thread *t)
{
    const struct dynobs_ctx *c = stack_top(t);
    if (!c && DYNOBS_TLS_ON(multiplexing) && __atomic_load_n(&dynobs__mux_inflight, __ATOMIC_RELAXED) > 0)
        dynobs__event_count("dynobs.context.ambiguous");
    return c;
}

struct dynobs_ctx *dynobs__ctx_push(struct dynobs_thread *t)
{
    int d = t->depth;
    if (d >= DYNOBS_STACK_DEPTH)
        return NULL;
    struct dynobs_ctx *c = &t->stack[d];
    c->valid = 0;
    c->ended = 0;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->depth = d + 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    /* Again: a handler that ran before depth was raised may have used
     * this entry and left it ended. */
    c->ended = 0;
    return c;
}

void dynobs__ctx_publish(struct dynobs_ctx *c)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    c->valid = 1;
}

struct dynobs_ctx *dynobs__ctx_from_headers(struct dynobs_ctx *c, const char *tp, size_t tp_len,
                                            const char *ts, size_t ts_len)
{
    struct dynobs_traceparent parsed;
    if (dynobs__traceparent_parse(tp, tp_len, &parsed) < 0)
        return NULL;
    dynobs__ctx_remote(c, &parsed);
    if (ts_len)
        set_tracestate(c, ts, ts_len);
    return c;
}

/* ---- threads that serve many requests at once ---- */

int dynobs__mux_inflight DYNOBS_HOT_DATA;

DYNOBS_COLD void dynobs__ctx_multiplexing(struct dynobs_thread *t)
{
    dynobs__tls.multiplexing = 1;
    if (!t)
        return;
    /* Requests bound from non-blocking sockets while the thread seemed to
     * serve one at a time. A request read from a blocking socket stays:
     * the thread serves it until its response, whatever a library it calls
     * waits with. */
    for (int d = t->depth; d > 0; d--) {
        struct dynobs_ctx *c = &t->stack[d - 1];
        if (c->valid && c->kind == DYNOBS_CTX_BOUND_NB)
            __atomic_store_n(&c->ended, 1, __ATOMIC_RELEASE);
    }
    dynobs__ctx_pop_ended(t);
}

/* Requests served on multiplexing threads that carry more than their ids
 * (a tracestate, correlation ids or baggage), with what their context
 * carries, for the runtime bridge (dynobs__serving_carry). An entry is
 * claimed by compare-and-swap on its span; a full table only means that
 * a bridge-announced parent carries its trace alone. */
#define MUX_REG 256
static void carry_into(struct dynobs_ctx *x, const struct dynobs_ctx_carry *c);
struct mux_entry {
    const struct dynobs_span *span;
    struct dynobs_ctx_carry carry;
    char corr[DYNOBS_CORR_LINES_MAX];
};
/* struct mux_entry[MUX_REG], mapped by the first registration (lazymap.h):
 * most processes never multiplex, and then it is NULL, nothing to find. */
static void *mux_reg;

/* Entry i of the table, mapped once an entry was claimed. */
static inline struct mux_entry *mux_at(int i)
{
    return (struct mux_entry *)dynobs__lazymap_peek(&mux_reg) + i;
}

/* Where the next claim starts looking: past the last entry claimed, or at
 * the last one freed, so a busy event loop (nginx) finds a free entry at
 * once, not after a scan. */
static unsigned mux_next;

static DYNOBS_COLD int16_t mux_register(const struct dynobs_span *s,
                                         const struct dynobs_ctx_carry *carry)
{
    struct mux_entry *tab = dynobs__lazymap(&mux_reg, MUX_REG * sizeof *tab);
    if (!tab)
        return -1; /* as full */
    unsigned start = __atomic_load_n(&mux_next, __ATOMIC_RELAXED);
    for (unsigned k = 0; k < MUX_REG; k++) {
        unsigned i = (start + k) % MUX_REG;
        struct mux_entry *e = &tab[i];
        const struct dynobs_span *none = NULL;
        if (__atomic_load_n(&e->span, __ATOMIC_RELAXED) ||
            !__atomic_compare_exchange_n(&e->span, &none, (const struct dynobs_span *)1, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        e->carry = carry ? *carry : (struct dynobs_ctx_carry){0};
        size_t n = carry && carry->corr_len <= sizeof e->corr ? carry->corr_len : 0;
        if (n)
            memcpy(e->corr, carry->corr, n);
        e->carry.corr = e->corr;
        e->carry.corr_len = (uint16_t)n;
        __atomic_store_n(&e->span, s, __ATOMIC_RELEASE);
        __atomic_store_n(&mux_next, (i + 1) % MUX_REG, __ATOMIC_RELAXED);
        return (int16_t)i;
    }
    return -1;
}

int dynobs__serving_carry(struct dynobs_ctx *c)
{
    if (!__atomic_load_n(&dynobs__mux_inflight, __ATOMIC_RELAXED))
        return 0;
    struct mux_entry *tab = dynobs__lazymap_peek(&mux_reg);
    for (int i = 0; tab && i < MUX_REG; i++) {
        const struct dynobs_span *s = __atomic_load_n(&tab[i].span, __ATOMIC_ACQUIRE);
        if ((uintptr_t)s <= 1 || memcmp(s->rec.span_id, c->span_id, 8) ||
            memcmp(s->rec.trace_id, c->trace_id, 16))
            continue;
        c->ts_len = s->rec.tracestate_len;
        if (c->ts_len)
            memcpy(c->tracestate, dynobs__span_tracestate(s), c->ts_len);
        carry_into(c, &tab[i].carry);
        return 1;
    }
    return 0;
}

/* The requests in flight that the calling thread (block t) read, once its
 * own count reached 2 or more: those that other threads ended since are
 * taken off it (the two counts, tls.h and state.h). */
static DYNOBS_COLD uint32_t serving_now(struct dynobs_thread *t)
{
    uint32_t gone = __atomic_exchange_n(&t->serving_elsewhere, 0, __ATOMIC_RELAXED);
    return DYNOBS_TLS_ON(serving) -= gone;
}

DYNOBS_HOT void dynobs__serving_begin(struct dynobs_thread *t, const struct dynobs_span *s,
                                      int blocking, const struct dynobs_ctx_carry *carry,
                                      struct dynobs_serving *sv)
{
    sv->bound.owner = NULL;
    sv->reader = NULL;
    sv->on_mux = 0;
    sv->reg = -1;
    if (!blocking) {
        /* A second request in flight on the thread that read it: it
         * multiplexes. */
        sv->reader = t;
        if (++DYNOBS_TLS_ON(serving) > 1 && !DYNOBS_TLS_ON(multiplexing) && serving_now(t) > 1)
            dynobs__ctx_multiplexing(t);
        if (DYNOBS_TLS_ON(multiplexing)) {
            sv->on_mux = 1;
            /* Only what a request carries besides its ids is looked up
             * in the table (dynobs__serving_carry): one that carries
             * nothing (most, and every one of the short path) is not
             * put there, and the runtime's announced parent carries its
             * trace alone, as it would with the entry found. */
            if ((carry && (carry->corr_len || carry->bag_len)) || s->rec.tracestate_len)
                sv->reg = mux_register(s, carry);
            __atomic_fetch_add(&dynobs__mux_inflight, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    if (dynobs__ctx_bind(t, s, carry, &sv->bound) == 0 && !blocking)
        sv->bound.entry->kind = DYNOBS_CTX_BOUND_NB;
}

DYNOBS_HOT void dynobs__serving_end(struct dynobs_serving *sv, struct dynobs_thread *self)
{
    /* The serving thread gets its previous context back (lazily, if
     * another thread wrote the response). */
    dynobs__ctx_unbind(&sv->bound, self);
    if (sv->reader) {
        /* (one read by the thread that had the block before, which
         * left it counted there: thread.c, release) */
        if (sv->reader == self && DYNOBS_TLS_ON(serving))
            DYNOBS_TLS_ON(serving)--;
        else
            __atomic_fetch_add(&sv->reader->serving_elsewhere, 1, __ATOMIC_RELAXED);
        sv->reader = NULL;
    }
    if (sv->on_mux) {
        sv->on_mux = 0;
        if (sv->reg >= 0) {
            __atomic_store_n(&mux_at(sv->reg)->span, NULL, __ATOMIC_RELEASE);
            /* The next claim starts at the entry just freed, whose lines
             * are still in this CPU's cache: an event loop that serves
             * one request at a time (nginx) reuses one entry rather than
             * walking the whole table, a cache miss per request. */
            __atomic_store_n(&mux_next, (unsigned)sv->reg, __ATOMIC_RELAXED);
        }
        sv->reg = -1;
        __atomic_fetch_sub(&dynobs__mux_inflight, 1, __ATOMIC_RELAXED);
    }
}

/* ---- spans as the current context ---- */

/* A new innermost entry of t for started span s (owner: the API span that
 * owns the entry, NULL for a bound request), published; NULL when t's
 * stack is full. */

/* Inlined into its two callers: it is on every served request's path. */
static inline __attribute__((always_inline)) struct dynobs_ctx *
push_span(struct dynobs_thread *t, const struct dynobs_span *s, const struct dynobs_span *owner,
          const struct dynobs_ctx_carry *carry)
{
    struct dynobs_ctx *x = dynobs__ctx_push(t);
    if (!x)
        return NULL;
    memcpy(x->trace_id, s->rec.trace_id, 16);
    memcpy(x->span_id, s->rec.span_id, 8);
    x->flags = s->rec.trace_flags;
    x->keep = s->tail;
    x->remote = 0;
    x->span = owner;
    x->span_gen = owner ? owner->gen : 0;
    x->kind = owner ? DYNOBS_CTX_SPAN : DYNOBS_CTX_BOUND;
    x->corr_mask = 0;
    x->corr_len = 0;
    x->ts_len = s->rec.tracestate_len;
    if (x->ts_len)
        memcpy(x->tracestate, dynobs__span_tracestate(s), x->ts_len);
    x->bag = NULL;
    x->bag_len = 0;
    if (carry)
        carry_into(x, carry);
    dynobs__ctx_publish(x);
    return x;
}

/* What a request's context carries, into x before x is published. */
static void carry_into(struct dynobs_ctx *x, const struct dynobs_ctx_carry *c)
{
    if (c->corr_len && c->corr_len <= sizeof x->corr) {
        memcpy(x->corr, c->corr, c->corr_len);
        x->corr_len = c->corr_len;
        x->corr_mask = c->corr_mask;
    }
    x->bag = c->bag;
    x->bag_len = c->bag_len;
    x->bag_gen = c->bag_gen;
    x->bag_gen_p = c->bag_gen_p;
}

void dynobs__ctx_enter_span(struct dynobs_thread *t, struct dynobs_span *s,
                            const struct dynobs_ctx *parent)
{
    struct dynobs_ctx_carry from;
    if (parent) {
        from = (struct dynobs_ctx_carry){parent->corr, parent->corr_len, parent->corr_mask,
                                         parent->bag_len, parent->bag_gen, parent->bag,
                                         parent->bag_gen_p};
    }
    struct dynobs_ctx *x = push_span(t, s, s, parent ? &from : NULL);
    s->stack_idx = (int16_t)(x ? x - t->stack : -1);
}

void dynobs__ctx_leave_span(const struct dynobs_span *s, struct dynobs_thread *self)
{
    struct dynobs_thread *t = s->owner;
    if (s->stack_idx >= 0) {
        struct dynobs_ctx *c = &t->stack[s->stack_idx];
        /* The entry is still this use of the span's slot. */
        if (c->span == s && c->span_gen == s->gen)
            __atomic_store_n(&c->ended, 1, __ATOMIC_RELEASE);
    }
    if (t == self)
        dynobs__ctx_pop_ended(t);
}

/* ---- requests bound to the thread that serves them ---- */

int dynobs__ctx_bind(struct dynobs_thread *t, const struct dynobs_span *s,
                     const struct dynobs_ctx_carry *carry, struct dynobs_ctx_binding *b)
{
    b->owner = NULL;
    struct dynobs_ctx *x = push_span(t, s, NULL, carry);
    if (!x)
        return DYNOBS_ENOSPC;
    b->owner = t;
    b->entry = x;
    memcpy(b->span_id, s->rec.span_id, 8);
    return 0;
}

void dynobs__ctx_unbind(struct dynobs_ctx_binding *b, struct dynobs_thread *self)
{
    struct dynobs_thread *t = b->owner;
    if (!t)
        return;
    b->owner = NULL;
    /* The entry may have been popped and reused by its thread since (the
     * binding then outlived a stack unwound under it): only an entry that
     * still holds this request is ended. */
    struct dynobs_ctx *x = b->entry;
    if (!memcmp(x->span_id, b->span_id, 8))
        __atomic_store_n(&x->ended, 1, __ATOMIC_RELEASE);
    if (t == self)
        dynobs__ctx_pop_ended(t);
}
