/*
 * Spans being built. A span lives in a slot of its thread's pool (API
 * spans) or in storage its caller owns (detached spans: a connection's
 * request, a curl transfer, a libpq operation), in the record format, so
 * that ending it is one reservation in the ring and a few copies.
 */
#ifndef DYNOBS_PRELOAD_SPAN_H
#define DYNOBS_PRELOAD_SPAN_H

#include <stddef.h>
#include <stdint.h>

#include "dynobs/dynobs.h"

#include "../common/layout.h"
#include "../common/rules_layout.h"
#include "../common/util.h"

#define DYNOBS_NAME_MAX 512u
#define DYNOBS_STATUS_MSG_MAX 512u

/* struct dynobs_span.end_check: what its end looks at. */
#define DYNOBS_SPAN_KEEP_ERR 0x1u   /* an ERROR status would be a reason to keep */
#define DYNOBS_SPAN_KEEP_SLOW 0x2u  /* so would lasting slow_ns */
#define DYNOBS_SPAN_KEEP_NOW 0x4u   /* its status is ERROR and KEEP_ERR holds */
#define DYNOBS_SPAN_UNSAMPLED 0x8u  /* recorded for tail sampling only */

struct dynobs_ctx;
struct dynobs_sampler;
struct dynobs_thread;
struct dynobs_segment;

/* What the rules ask of one span, given when it begins. The head decision
 * (the W3C sampled flag, which is what goes downstream) always comes from
 * the sampler. A span the sampler did not keep is still recorded when
 * keep is set, or when its parent in this process was recorded that way:
 * it is written flagged DYNOBS_RECF_UNSAMPLED, and the exporter holds it
 * until its trace turns out to have a reason to be kept (exporter/tail.h).
 * Unsampled spans without keep cost what they always did: nothing is
 * recorded or written. */
struct dynobs_span_policy {
    const struct dynobs_sampler *sampler; /* NULL: the configured one (dynobs__config.sampler) */
    uint8_t keep;            /* DYNOBS_KEEP_ERRORS | DYNOBS_KEEP_SLOW (rules_layout.h) */
    uint32_t keep_slower_ms; /* with DYNOBS_KEEP_SLOW: a span this long is a reason to keep */
    uint8_t drop;            /* 1: the span is not written at all (filters), but stays a
                              * valid context: its ids and flags still propagate */
};

struct dynobs_span {
    uint32_t live;   /* SPAN_LIVE while started and not ended */
    uint32_t gen;    /* bumped per use of this pool slot */
    uint8_t recording;
    uint8_t status_final;
    uint8_t truncated;
    uint8_t pool_idx;
    uint8_t tail;      /* tail sampling: see slow_ns */
    uint8_t end_check;
    int16_t stack_idx; /* -1 when not on the context stack */
    uint16_t attrs;    /* span attributes present */
    uint16_t events;
    uint16_t status_len;
    uint32_t used;      /* bytes used in body: name, tracestate, items */
    uint32_t items_off; /* where the items start in body */
    uint32_t last_event_off;
    /* Tail sampling (struct dynobs_span_policy). tail: the DYNOBS_KEEP_*
     * bits an unsampled span is recorded for, 0 otherwise; its context
     * passes them to the spans started under it. end_check: the
     * DYNOBS_SPAN_* bits above, so that a span without any costs its end
     * one test (slow_ns is set only with DYNOBS_SPAN_KEEP_SLOW). */
    uint64_t slow_ns;
    /* One bit per key hash (span.c key_bit) of the span attributes it may
     * have, so that setting a new key skips the scan for one to replace;
     * all ones once items came in a block (dynobs__span_add_items). */
    uint64_t keys;
    struct dynobs_thread *owner; /* NULL for a detached span */
    /* rec and body are adjacent (asserted below), in the record's order,
     * so that a span without a status message is one copy into the ring;
     * rec follows the header, so that a span's start and end touch one
     * run of lines (body is written only as far as used). */
    struct dynobs_span_rec rec;
    uint8_t body[DYNOBS_MAX_RECORD_BYTES - sizeof(struct dynobs_rec_hdr) -
                 sizeof(struct dynobs_span_rec)];
    char status_msg[DYNOBS_STATUS_MSG_MAX];
};
_Static_assert(offsetof(struct dynobs_span, body) ==
                   offsetof(struct dynobs_span, rec) + sizeof(struct dynobs_span_rec),
               "a span's body follows its record");

/* Detached spans: the caller owns the storage, the span is not on any
 * thread's context stack, and its parent and start time are given.
 * parent NULL starts a new trace. pol NULL: the process's default policy
 * (below), which dynobs__span_begin always takes. */
int dynobs__span_begin_ex(struct dynobs_span *s, const char *name, int kind,
                          const struct dynobs_ctx *parent, uint64_t start_ns,
                          const struct dynobs_span_policy *pol) DYNOBS_INTERNAL;
int dynobs__span_begin(struct dynobs_span *s, const char *name, int kind,
                       const struct dynobs_ctx *parent, uint64_t start_ns) DYNOBS_INTERNAL;

/* The policy of spans begun without one (every API span, and detached
 * spans begun with pol NULL); NULL for none. Published with one atomic
 * store, read without a lock: the pointee must stay valid and unchanged
 * forever once published (a rules reload publishes a new one). */
void dynobs__span_default_policy_set(const struct dynobs_span_policy *p) DYNOBS_INTERNAL;
const struct dynobs_span_policy *dynobs__span_default_policy(void) DYNOBS_INTERNAL;
/* DYNOBS_TAIL_KEEP, read at start-up: "errors", "slow:500ms" (or "slow:2s",
 * a bare number is milliseconds), both joined by a comma, or "none" / empty.
 * Parses into *out (sampler NULL); returns 0, or -EINVAL (then *out keeps
 * nothing). */
int dynobs__span_policy_parse(const char *value, struct dynobs_span_policy *out) DYNOBS_INTERNAL;
/* Parses value (NULL: unset) and, when it keeps anything, publishes it as
 * the default policy. Returns 0 or -EINVAL (nothing published). */
int dynobs__span_policy_from_env(const char *value) DYNOBS_INTERNAL;
int dynobs__span_set(struct dynobs_span *s, const char *key, int type, const void *val,
                     size_t vlen) DYNOBS_INTERNAL;
/* Adds an attribute the span does not have yet (no scan for one to
 * replace); key of klen bytes, 1-255. */
int dynobs__span_add(struct dynobs_span *s, const char *key, size_t klen, int type,
                     const void *val, size_t vlen) DYNOBS_INTERNAL;

/* What a detached span's storage holds after its last use, for a span
 * that begins with the same body (dynobs__span_begin_kept): its name and
 * tracestate, then attrs attributes, used bytes in all. */
struct dynobs_span_kept {
    uint32_t used;
    uint32_t items_off;
    uint64_t keys;
    uint16_t attrs;
    uint16_t dropped_attrs;
    uint8_t truncated;
};

/* dynobs__span_begin_ex for storage whose body the caller knows to be,
 * byte for byte, what this span would be given (its name, tracestate and
 * first attributes: a keep-alive connection's request that repeats the
 * last one): the ids, sampling and times are the span's own, the body is
 * left as it is, described by k. The tracestate's length must be the
 * parent's. */
int dynobs__span_begin_kept(struct dynobs_span *s, const struct dynobs_span_kept *k, int kind,
                            const struct dynobs_ctx *parent, uint64_t start_ns,
                            const struct dynobs_span_policy *pol) DYNOBS_INTERNAL;
/* What a started span's body holds so far, for dynobs__span_begin_kept. */
void dynobs__span_keep(const struct dynobs_span *s, struct dynobs_span_kept *k) DYNOBS_INTERNAL;

/* Takes the n bytes that follow the body, left there by the storage's
 * last use, as count more items (which the caller knows to be those it
 * would add). 0, or 1 (nothing taken) when they would not all be kept. */
int dynobs__span_add_kept(struct dynobs_span *s, size_t n, unsigned count) DYNOBS_INTERNAL;

/* Adds count attributes at once: n bytes of items that dynobs__span_add
 * wrote into another span's body (none of them truncated, none of their
 * keys already on s). Returns 1, adding nothing, when they would not all
 * be kept (the count limit, the body's room): the caller then adds them
 * one by one, so that what is dropped is counted as usual. */
int dynobs__span_add_items(struct dynobs_span *s, const uint8_t *items, size_t n,
                           unsigned count) DYNOBS_INTERNAL;

int dynobs__span_set_int(struct dynobs_span *s, const char *key, int64_t value) DYNOBS_INTERNAL;
int dynobs__span_status(struct dynobs_span *s, int code, const char *message) DYNOBS_INTERNAL;
int dynobs__span_finish(struct dynobs_span *s) DYNOBS_INTERNAL;
/* The same, ending at end_ns (the span clock's time, read by the caller
 * for something else at the same moment: its duration metric), which
 * saves a clock read; 0 reads the clock as dynobs__span_finish does. */
int dynobs__span_finish_at(struct dynobs_span *s, uint64_t end_ns) DYNOBS_INTERNAL;

/* The template state of a series of spans (a keep-alive connection's
 * server spans): a span that ends with a body a template slot holds, byte
 * for byte, is written as a reference to it (layout.h, DYNOBS_REC_SPAN_REF:
 * 96 bytes in the ring instead of the whole record). A body is put into
 * the table when it is the series' last body again. Zeroed: nothing
 * kept. One span of the series at a time. */
struct dynobs_span_tmpl {
    uint64_t hash;  /* of the series' last body */
    uint32_t id;    /* the template of the last body; DYNOBS_TMPL_EMPTY: none */
    uint32_t epoch; /* dynobs__segment_epoch() when it was found */
    uint16_t slot;
    /* Set by the caller for one span: its body is, byte for byte, the
     * last body of the series that ended recorded, so the template is
     * taken without comparing the bodies. */
    uint8_t same;
};

/* dynobs__span_finish_at, with the series' template state t. */
int dynobs__span_finish_as(struct dynobs_span *s, uint64_t end_ns,
                           struct dynobs_span_tmpl *t) DYNOBS_INTERNAL;

/* The end of detached span s at end_ns (non-zero) by the calling thread
 * self, when it is the usual one of a series (span.h): its body is the
 * series' last (t->same, set by the caller), that body's template is
 * still good in segment seg, and the span has nothing else to write (no
 * status message, tracestate or truncation, no tail-sampling flag). Its
 * record is then written as the template's reference straight away: 1.
 * 0, with nothing written and s still live, in every other case or when
 * the ring has no room: dynobs__span_finish_as ends it then. */
int dynobs__span_end_same(struct dynobs_span *s, uint64_t end_ns, struct dynobs_span_tmpl *t,
                          struct dynobs_segment *seg, struct dynobs_thread *self) DYNOBS_INTERNAL;

/* A started span's tracestate (after its name in the body). */
static inline const char *dynobs__span_tracestate(const struct dynobs_span *s)
{
    return (const char *)s->body + s->rec.name_len;
}

/* Crash reports: ends every open API span of thread t with error status
 * and an "exception" event; returns how many. */
int dynobs__span_end_crashed(struct dynobs_thread *t, const char *message,
                             const dynobs_attr *attrs, size_t nattrs) DYNOBS_INTERNAL;

#endif
