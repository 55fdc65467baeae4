/*
 * Reading a compiled rules table (rules.h, rules_layout.h): validation of
 * untrusted bytes, binding to one process, matching and the section
 * lookups. Runs on the shim's hot path: no allocation, no locks, no
 * system calls; everything a lookup touches was checked by open() once.
 */
#include "rules.h"

#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <string.h>

#include "sampler.h"

int dynobs__glob(const char *pat, const char *s, size_t n)
{
    /* The classic single-backtrack matcher: on a mismatch, retry from the
     * last '*' with one more byte swallowed. Linear in practice, and never
     * worse than |pat| * n, since only the last star is remembered. */
    const char *star = NULL;
    size_t i = 0, mark = 0;
    while (i < n) {
        if (*pat == '*') {
            star = ++pat;
            mark = i;
        } else if (*pat && (*pat == '?' || *pat == s[i])) {
            pat++;
            i++;
        } else if (star) {
            pat = star;
            i = ++mark;
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

/* ---- validation ---- */

/* A section of count records of size bytes at off, aligned for its type:
 * checked in 64 bits so that no product or sum wraps. */
static int section_ok(size_t len, uint32_t off, uint32_t count, size_t size, size_t align)
{
    if (off % align)
        return 0;
    if (count && off < sizeof(struct dynobs_rules_hdr))
        return 0;
    return (uint64_t)off + (uint64_t)count * size <= len;
}

static int str_ok(const struct dynobs_rules *r, uint32_t ref)
{
    return ref < r->strings_bytes;
}

static int list_ok(const struct dynobs_rules *r, uint32_t first, uint32_t count)
{
    return count <= DYNOBS_RULES_MAX_LIST && (uint64_t)first + count <= r->nlists;
}

static int match_ref_ok(const struct dynobs_rules *r, uint32_t m)
{
    return m == DYNOBS_RULES_NONE || m < r->nmatches;
}

#define KIND_BITS 0x3eu /* DYNOBS_SPAN_KIND_INTERNAL (1) .. CONSUMER (5) */

static int matches_ok(const struct dynobs_rules *r)
{
    for (uint32_t i = 0; i < r->nmatches; i++) {
        const struct dynobs_rule_match *m = &r->matches[i];
        const uint32_t refs[] = {m->service,      m->exe,       m->method,
                                 m->server_address, m->url_path, m->db_operation,
                                 m->span_name,    m->metric_name};
        for (size_t k = 0; k < sizeof refs / sizeof refs[0]; k++)
            if (!str_ok(r, refs[k]))
                return 0;
        if (m->cond_count > DYNOBS_RULES_MAX_CONDS ||
            (uint64_t)m->cond_first + m->cond_count > r->nconds)
            return 0;
        if (m->kinds & ~KIND_BITS)
            return 0;
    }
    for (uint32_t i = 0; i < r->nconds; i++) {
        const struct dynobs_rule_cond *c = &r->conds[i];
        if (!str_ok(r, c->key) || !str_ok(r, c->value) ||
            (c->op != DYNOBS_COND_EQ && c->op != DYNOBS_COND_GLOB))
            return 0;
    }
    return 1;
}

static int sections_ok(const struct dynobs_rules *r)
{
    for (uint32_t i = 0; i < r->nroutes; i++) {
        const struct dynobs_rule_routes *e = &r->routes[i];
        if (!match_ref_ok(r, e->match) || !list_ok(r, e->patterns_first, e->patterns_count) ||
            !list_ok(r, e->ignored_first, e->ignored_count) ||
            e->unmatched < DYNOBS_ROUTE_HEURISTIC || e->unmatched > DYNOBS_ROUTE_WILDCARD ||
            e->max_segment_values < 1 || e->max_segment_values > 1000)
            return 0;
    }
    for (uint32_t i = 0; i < r->nsamplers; i++) {
        const struct dynobs_rule_sampler *e = &r->samplers[i];
        if (!match_ref_ok(r, e->match) || e->kind < DYNOBS_SAMPLER_ALWAYS_ON ||
            e->kind > DYNOBS_SAMPLER_PARENT_RATIO ||
            (e->keep & ~(DYNOBS_KEEP_ERRORS | DYNOBS_KEEP_SLOW)))
            return 0;
        /* The negated test also refuses NaN. */
        if (!(e->ratio >= 0.0 && e->ratio <= 1.0) ||
            e->threshold != dynobs__sampler_threshold(e->ratio))
            return 0;
    }
    for (uint32_t i = 0; i < r->nfilters; i++) {
        const struct dynobs_rule_filter *e = &r->filters[i];
        if (!match_ref_ok(r, e->match) ||
            (e->drop & ~(DYNOBS_DROP_TRACES | DYNOBS_DROP_METRICS | DYNOBS_DROP_LOGS)))
            return 0;
    }
    for (uint32_t i = 0; i < r->nredacts; i++) {
        const struct dynobs_rule_redact *e = &r->redacts[i];
        if (!match_ref_ok(r, e->match) || !list_ok(r, e->headers_first, e->headers_count) ||
            !list_ok(r, e->query_first, e->query_count) || e->headers_set > 1 ||
            (e->query != DYNOBS_QUERY_OMIT && e->query != DYNOBS_QUERY_REDACT) ||
            (e->sql != DYNOBS_SQL_SCRUB && e->sql != DYNOBS_SQL_RAW) ||
            e->replace_count > DYNOBS_RULES_MAX_LIST ||
            (uint64_t)e->replace_first + e->replace_count > r->nreplaces)
            return 0;
    }
    for (uint32_t i = 0; i < r->nreplaces; i++) {
        const struct dynobs_rule_replace *e = &r->replaces[i];
        if (!str_ok(r, e->key) || !str_ok(r, e->value) || !str_ok(r, e->with))
            return 0;
    }
    return 1;
}

int dynobs__rules_open(struct dynobs_rules *r, const void *buf, size_t len)
{
    memset(r, 0, sizeof *r);
    const struct dynobs_rules_hdr *h = buf;
    const char *base = buf;
    if (!buf || (uintptr_t)buf % alignof(struct dynobs_rules_hdr) || len < sizeof *h ||
        len > DYNOBS_RULES_MAX_BYTES)
        return -EBADMSG;
    if (h->magic != DYNOBS_RULES_MAGIC || h->version != DYNOBS_RULES_VERSION ||
        h->total_bytes != len || !memchr(h->source, '\0', sizeof h->source))
        return -EBADMSG;
    /* The string pool starts with the "none" string and ends with a NUL,
     * so that every reference below strings_bytes is a terminated string. */
    if (!section_ok(len, h->strings_off, h->strings_bytes, 1, 1) || h->strings_bytes == 0 ||
        base[h->strings_off] != '\0' || base[h->strings_off + h->strings_bytes - 1] != '\0')
        return -EBADMSG;
#define SECTION(off, n, type) section_ok(len, h->off, h->n, sizeof(type), alignof(type))
    if (!SECTION(lists_off, nlists, uint32_t) ||
        !SECTION(matches_off, nmatches, struct dynobs_rule_match) ||
        !SECTION(conds_off, nconds, struct dynobs_rule_cond) ||
        !SECTION(routes_off, nroutes, struct dynobs_rule_routes) ||
        !SECTION(samplers_off, nsamplers, struct dynobs_rule_sampler) ||
        !SECTION(filters_off, nfilters, struct dynobs_rule_filter) ||
        !SECTION(redacts_off, nredacts, struct dynobs_rule_redact) ||
        !SECTION(replaces_off, nreplaces, struct dynobs_rule_replace))
        return -EBADMSG;
#undef SECTION
    /* A process's view (struct dynobs_rules_proc) holds at most this many
     * entries of a section. */
    if (h->nroutes > DYNOBS_RULES_MAX_ENTRIES || h->nsamplers > DYNOBS_RULES_MAX_ENTRIES ||
        h->nfilters > DYNOBS_RULES_MAX_ENTRIES || h->nredacts > DYNOBS_RULES_MAX_ENTRIES)
        return -EBADMSG;
    struct dynobs_rules t = {
        .hdr = h,
        .strings = base + h->strings_off,
        .strings_bytes = h->strings_bytes,
        .lists = (const uint32_t *)(const void *)(base + h->lists_off),
        .nlists = h->nlists,
        .matches = (const void *)(base + h->matches_off),
        .nmatches = h->nmatches,
        .conds = (const void *)(base + h->conds_off),
        .nconds = h->nconds,
        .routes = (const void *)(base + h->routes_off),
        .nroutes = h->nroutes,
        .samplers = (const void *)(base + h->samplers_off),
        .nsamplers = h->nsamplers,
        .filters = (const void *)(base + h->filters_off),
        .nfilters = h->nfilters,
        .redacts = (const void *)(base + h->redacts_off),
        .nredacts = h->nredacts,
        .replaces = (const void *)(base + h->replaces_off),
        .nreplaces = h->nreplaces,
    };
    for (uint32_t i = 0; i < t.nlists; i++)
        if (!str_ok(&t, t.lists[i]))
            return -EBADMSG;
    if (!matches_ok(&t) || !sections_ok(&t))
        return -EBADMSG;
    *r = t;
    return 0;
}

/* ---- matching ---- */

static int glob_set(const struct dynobs_rules *r, uint32_t ref, struct dynobs_rule_str v)
{
    if (!ref)
        return 1;
    return v.p && dynobs__glob(dynobs__rules_str(r, ref), v.p, v.n);
}

static int glob_cstr(const struct dynobs_rules *r, uint32_t ref, const char *s)
{
    if (!ref)
        return 1;
    return s && dynobs__glob(dynobs__rules_str(r, ref), s, strlen(s));
}

static int cond_holds(const struct dynobs_rules *r, const struct dynobs_rule_cond *c,
                      const struct dynobs_rule_facts *f)
{
    if (!f->attr)
        return 0;
    const char *key = dynobs__rules_str(r, c->key);
    struct dynobs_rule_str v = {0};
    if (f->attr(f->attr_ctx, key, strlen(key), &v) != 1 || !v.p)
        return 0;
    const char *want = dynobs__rules_str(r, c->value);
    if (c->op == DYNOBS_COND_GLOB)
        return dynobs__glob(want, v.p, v.n);
    return strlen(want) == v.n && memcmp(want, v.p, v.n) == 0;
}

int dynobs__rules_match(const struct dynobs_rules *r, uint32_t m, const char *service,
                        const char *exe, const struct dynobs_rule_facts *f)
{
    static const struct dynobs_rule_facts none;
    if (m == DYNOBS_RULES_NONE)
        return 1;
    if (!r || m >= r->nmatches)
        return 0;
    if (!f)
        f = &none;
    const struct dynobs_rule_match *x = &r->matches[m];
    /* NULL service or exe: dynobs__rules_bind already kept only entries
     * whose conditions on them hold for this process. */
    if ((service && !glob_cstr(r, x->service, service)) || (exe && !glob_cstr(r, x->exe, exe)))
        return 0;
    if (x->kinds && (f->kind <= 0 || f->kind > 7 || !(x->kinds & (1u << f->kind))))
        return 0;
    if (!glob_set(r, x->method, f->method) || !glob_set(r, x->server_address, f->server_address) ||
        !glob_set(r, x->url_path, f->url_path) || !glob_set(r, x->db_operation, f->db_operation) ||
        !glob_set(r, x->span_name, f->span_name) || !glob_set(r, x->metric_name, f->metric_name))
        return 0;
    for (uint32_t i = 0; i < x->cond_count; i++)
        if (!cond_holds(r, &r->conds[x->cond_first + i], f))
            return 0;
    return 1;
}

/* Does an entry's match hold for the process? NULL service or exe is an
 * unknown fact: an entry that names it cannot be known to hold, so it is
 * left out (the same rule as for a span's unknown facts). */
static int proc_holds(const struct dynobs_rules *r, uint32_t m, const char *service,
                      const char *exe)
{
    if (m == DYNOBS_RULES_NONE)
        return 1;
    const struct dynobs_rule_match *x = &r->matches[m];
    return glob_cstr(r, x->service, service) && glob_cstr(r, x->exe, exe);
}

void dynobs__rules_bind(struct dynobs_rules_proc *p, const struct dynobs_rules *r,
                        const char *service, const char *exe)
{
    memset(p->n, 0, sizeof p->n);
    p->r = r;
    if (!r || !r->hdr)
        return;
#define BIND(sec, arr, cnt)                                                  \
    for (uint32_t i = 0; i < r->cnt && i < DYNOBS_RULES_MAX_ENTRIES; i++)    \
        if (proc_holds(r, r->arr[i].match, service, exe))                    \
            p->idx[sec][p->n[sec]++] = (uint16_t)i;
    BIND(DYNOBS_RS_ROUTES, routes, nroutes)
    BIND(DYNOBS_RS_SAMPLERS, samplers, nsamplers)
    BIND(DYNOBS_RS_FILTERS, filters, nfilters)
    BIND(DYNOBS_RS_REDACTS, redacts, nredacts)
#undef BIND
}

/* The first bound entry of a section whose match holds, or NULL (no
 * table: generation 0, or none published). */
#define LOOKUP(fn, type, sec, arr)                                                       \
    const type *fn(const struct dynobs_rules_proc *p, const struct dynobs_rule_facts *f) \
    {                                                                                    \
        if (!p || !p->r || !p->r->hdr)                                                   \
            return NULL;                                                                 \
        for (unsigned i = 0; i < p->n[sec]; i++) {                                       \
            const type *e = &p->r->arr[p->idx[sec][i]];                                  \
            if (dynobs__rules_match(p->r, e->match, NULL, NULL, f))                      \
                return e;                                                                \
        }                                                                                \
        return NULL;                                                                     \
    }

LOOKUP(dynobs__rules_routes, struct dynobs_rule_routes, DYNOBS_RS_ROUTES, routes)
LOOKUP(dynobs__rules_sampler, struct dynobs_rule_sampler, DYNOBS_RS_SAMPLERS, samplers)
LOOKUP(dynobs__rules_filter, struct dynobs_rule_filter, DYNOBS_RS_FILTERS, filters)
LOOKUP(dynobs__rules_redact, struct dynobs_rule_redact, DYNOBS_RS_REDACTS, redacts)
