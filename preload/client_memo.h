/*
 * What an outbound call (an HTTP/1 client request, a libpq operation)
 * keeps from its connection's last call, so that the next one with the
 * same facts (services send the same few requests and statements over one
 * connection) skips the work that would give the same result:
 *   - the rules' decision (policy.h), a pure function of the span's facts
 *     while the same table is in force (tables are never freed, so its
 *     address names it);
 *   - the span's first attributes, encoded once and then copied whole;
 *   - the duration metric's series, found once for its label string.
 * The caller decides when the facts repeat (it knows what they are made
 * of) and empties what it keeps when they change.
 */
#ifndef DYNOBS_PRELOAD_CLIENT_MEMO_H
#define DYNOBS_PRELOAD_CLIENT_MEMO_H

#include <stddef.h>
#include <stdint.h>

#include "httpmetrics.h"
#include "policy.h"

struct dynobs_segment;

/* A decision and what dynobs__decide returned for it. */
struct dynobs_client_decision {
    const struct dynobs_rules_proc *p; /* the table it was decided with; NULL: empty */
    struct dynobs_decision d;
    uint8_t pol; /* see client_memo.c */
};

static inline void dynobs__client_decision_clear(struct dynobs_client_decision *m)
{
    m->p = NULL;
}

/* 1 with *d and *pol as kept, when the rules in force are the ones they
 * were decided with; else 0 (decide anew, then keep). Of *d only what a
 * span's caller reads is filled (p, r, routes, redact, drop); *pol points
 * into m, valid until m is kept or cleared again. */
int dynobs__client_decision_recall(const struct dynobs_client_decision *m,
                                   struct dynobs_decision *d,
                                   const struct dynobs_span_policy **pol) DYNOBS_INTERNAL;

/* Keeps d and pol (what dynobs__decide returned for d), or empties m when
 * pol is not one it can give back. */
void dynobs__client_decision_keep(struct dynobs_client_decision *m,
                                  const struct dynobs_decision *d,
                                  const struct dynobs_span_policy *pol) DYNOBS_INTERNAL;

/* A span's attributes as dynobs__span_add/set encoded them. */
struct dynobs_attr_block {
    uint16_t len;         /* bytes of items; 0: nothing kept */
    uint8_t count;        /* attributes in items */
    uint32_t value_limit; /* the attribute value limit the items were cut to */
    uint8_t items[640];
};

/* What a span looked like before its attributes were added one by one. */
struct dynobs_attr_mark {
    uint32_t used;
    uint16_t attrs;
    uint8_t truncated;
    uint32_t dropped; /* attributes dropped */
};

static inline struct dynobs_attr_mark dynobs__attr_mark(const struct dynobs_span *s)
{
    struct dynobs_attr_mark k = {s->used, s->attrs, s->truncated, s->rec.dropped_attrs};
    return k;
}

/* 0 when b's attributes were added to s whole; else nothing was added and
 * the caller adds them one by one (then dynobs__attr_block_keep). */
int dynobs__attr_block_put(const struct dynobs_attr_block *b, struct dynobs_span *s)
    DYNOBS_INTERNAL;

/* Keeps the attributes added to s since mark k, unless one was cut or
 * dropped (those are added one by one again, so that the loss is counted
 * as usual) or they do not fit; b is emptied then. */
void dynobs__attr_block_keep(struct dynobs_attr_block *b, const struct dynobs_span *s,
                             struct dynobs_attr_mark k) DYNOBS_INTERNAL;

/* http.client.request.duration's label string, as
 * dynobs__http_client_metric makes it: server NULL or "", port <= 0 and
 * code <= 0 leave their labels out; error_type NULL: no error. */
void dynobs__client_http_labels(char *out, size_t cap, const char *method, const char *server,
                                long port, long code, const char *error_type) DYNOBS_INTERNAL;

/* Records a duration histogram (unit s) under labels, as
 * dynobs__duration_record does, through m: the series is looked up at the
 * first update (and in a new segment), then updated directly. The caller
 * empties m (slot NULL) whenever its label string changes. */
void dynobs__duration_memo(struct dynobs_segment *seg, const char *name, const double *bounds,
                           size_t nbounds, double seconds, const char *labels,
                           struct dynobs_series_memo *m) DYNOBS_INTERNAL;

#endif
