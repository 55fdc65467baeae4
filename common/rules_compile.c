/*
 * Compiling a rules file (rules/README.md) into the table of
 * rules_layout.h. libyaml loads the file into a node tree; each part of
 * the schema is one function below that checks its node strictly (every
 * key known, every type and range right) and appends what it means to
 * growable arrays, which are laid out into one block at the end. Any
 * refusal names the node's line and column and its key path. Runs in the
 * exporter and the tools only: it allocates, and is not part of the shim.
 */
#define _GNU_SOURCE
#include "rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "rules_yaml.h"
#include "sampler.h"

/* A growable array of fixed-size elements. */
struct vec {
    char *p;
    size_t n, cap, size;
};

struct cx {
    struct dynobs_ry y; /* the YAML tree, the key path, the error */
    struct vec strings, lists, matches, conds, routes, samplers, filters, redacts, replaces;
    struct dynobs_rules_hdr hdr;
    /* instrumentation/development.general.sanitization.url */
    yaml_node_t *sensitive;
};

/* The YAML reader's functions (rules_yaml.h) under short names, on this
 * compiler's state. */
#define fail(c, ...) dynobs__ry_fail(&(c)->y, __VA_ARGS__)
#define push_key(c, k) dynobs__ry_push_key(&(c)->y, (k))
#define push_index(c, i) dynobs__ry_push_index(&(c)->y, (i))
#define pop(c, at) dynobs__ry_pop(&(c)->y, (at))
#define node(c, i) dynobs__ry_node(&(c)->y, (i))
#define item(c, seq, i) dynobs__ry_item(&(c)->y, (seq), (i))
#define get(c, map, key) dynobs__ry_get(&(c)->y, (map), (key))
#define check_map(c, n, keys) dynobs__ry_check_map(&(c)->y, (n), (keys))
#define check_seq(c, n, max) dynobs__ry_check_seq(&(c)->y, (n), (max))
#define get_str(c, n, s, l) dynobs__ry_get_str(&(c)->y, (n), (s), (l))
#define get_u32(c, n, lo, hi, out) dynobs__ry_get_u32(&(c)->y, (n), (lo), (hi), (out))
#define get_bool(c, n, out) dynobs__ry_get_bool(&(c)->y, (n), (out))
#define get_ratio(c, n, out) dynobs__ry_get_ratio(&(c)->y, (n), (out))
#define get_duration(c, n, lo, hi, ms) dynobs__ry_get_duration(&(c)->y, (n), (lo), (hi), (ms))
#define is_null dynobs__ry_is_null
#define scalar_is dynobs__ry_scalar_is
#define seq_len dynobs__ry_seq_len

static int oom(struct cx *c)
{
    fail(c, NULL, "out of memory");
    return -ENOMEM;
}

/* ---- growable arrays and the string pool ---- */

static void *vec_push(struct vec *v, uint32_t *index)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char *p = realloc(v->p, cap * v->size);
        if (!p)
            return NULL;
        v->p = p;
        v->cap = cap;
    }
    void *e = v->p + v->n * v->size;
    memset(e, 0, v->size);
    if (index)
        *index = (uint32_t)v->n;
    v->n++;
    return e;
}

/* Appends a string to the pool; returns its reference (0 for ""), or 0
 * with *rc set when memory runs out. */
static uint32_t intern(struct cx *c, const char *s, size_t n, int *rc)
{
    if (n == 0)
        return 0;
    if (c->strings.n + n + 1 > DYNOBS_RULES_MAX_BYTES) {
        *rc = fail(c, NULL, "the compiled rules exceed %u bytes", DYNOBS_RULES_MAX_BYTES);
        return 0;
    }
    uint32_t ref = (uint32_t)c->strings.n;
    for (size_t i = 0; i <= n; i++) {
        char *p = vec_push(&c->strings, NULL);
        if (!p) {
            *rc = oom(c);
            return 0;
        }
        *p = i < n ? s[i] : '\0';
    }
    return ref;
}

static int get_ref(struct cx *c, yaml_node_t *n, uint32_t *ref)
{
    const char *s;
    size_t l;
    int rc = 0;
    TRY(get_str(c, n, &s, &l));
    if (l == 0)
        return fail(c, n, "empty string");
    *ref = intern(c, s, l, &rc);
    return rc;
}

/* Runs a call on a child node, with its key on the path meanwhile. */
#define AT(c, key, call)                   \
    do {                                   \
        size_t at_ = push_key((c), (key)); \
        TRY(call);                         \
        pop((c), at_);                     \
    } while (0)

/* A list of strings, appended to lists as (first, count); `lower`
 * lower-cases them (header names); `check` refuses an item (< 0) or
 * leaves it out (> 0). */
typedef int (*str_check_fn)(struct cx *c, yaml_node_t *n, const char *s, size_t l);

static int str_list(struct cx *c, yaml_node_t *n, str_check_fn check, int lower, uint32_t *first,
                    uint32_t *count)
{
    TRY(check_seq(c, n, DYNOBS_RULES_MAX_LIST));
    *first = (uint32_t)c->lists.n;
    *count = 0;
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *v = item(c, n, i);
        size_t at = push_index(c, i);
        const char *s;
        size_t l;
        TRY(get_str(c, v, &s, &l));
        if (l == 0)
            return fail(c, v, "empty string");
        char low[DYNOBS_RULES_MAX_STRING + 1];
        if (lower) {
            for (size_t k = 0; k < l; k++)
                low[k] = (s[k] >= 'A' && s[k] <= 'Z') ? (char)(s[k] - 'A' + 'a') : s[k];
            low[l] = '\0';
            s = low;
        }
        int skip = 0;
        if (check) {
            int rc = check(c, v, s, l);
            TRY(rc);
            skip = rc > 0;
        }
        pop(c, at);
        if (skip)
            continue;
        int rc = 0;
        uint32_t ref = intern(c, s, l, &rc);
        TRY(rc);
        uint32_t *slot = vec_push(&c->lists, NULL);
        if (!slot)
            return oom(c);
        *slot = ref;
        (*count)++;
    }
    return 0;
}

/* ---- MATCH ---- */

enum { F_SERVICE, F_EXE, F_METHOD, F_SERVER, F_URL, F_DB, F_SPAN, F_METRIC, F_COUNT };
static const char *const field_keys[F_COUNT] = {
    "service.name", "process.executable.path", "http.request.method", "server.address",
    "url.path",     "db.operation.name",       "span.name",           "metric.name"};

struct pmatch {
    /* Each field's globs: one, or several meaning any of them. */
    uint32_t refs[F_COUNT][DYNOBS_RULES_MAX_LIST];
    size_t n[F_COUNT];
    uint8_t kinds;
    uint32_t cond_first, cond_count;
    int any; /* something is set */
};

static int parse_kinds(struct cx *c, yaml_node_t *n, uint8_t *kinds)
{
    static const char *const names[] = {NULL, "internal", "server", "client", "producer",
                                        "consumer"};
    int one = n->type == YAML_SCALAR_NODE;
    if (!one)
        TRY(check_seq(c, n, DYNOBS_RULES_MAX_LIST));
    size_t count = one ? 1 : seq_len(n);
    if (count == 0)
        return fail(c, n, "empty list");
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *v = one ? n : item(c, n, i);
        size_t at = one ? c->y.plen : push_index(c, i);
        const char *s;
        size_t l;
        TRY(get_str(c, v, &s, &l));
        int k;
        for (k = 1; k <= 5; k++)
            if (!strcmp(s, names[k]))
                break;
        if (k > 5)
            return fail(c, v, "unknown span kind '%s' (server, client, internal, producer, "
                              "consumer)", s);
        *kinds |= (uint8_t)(1u << k);
        pop(c, at);
    }
    return 0;
}

static int parse_conds(struct cx *c, yaml_node_t *n, struct pmatch *m)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "expected a mapping of attribute keys to values");
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count > DYNOBS_RULES_MAX_CONDS)
        return fail(c, n, "more than %u attribute conditions", DYNOBS_RULES_MAX_CONDS);
    m->cond_first = (uint32_t)c->conds.n;
    for (size_t i = 0; i < count; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        const char *ks, *vs;
        size_t kl, vl;
        TRY(get_str(c, k, &ks, &kl));
        if (kl == 0)
            return fail(c, k, "empty attribute key");
        size_t at = push_key(c, ks);
        for (size_t j = 0; j < i; j++)
            if (scalar_is(node(c, n->data.mapping.pairs.start[j].key), ks))
                return fail(c, k, "key '%s' given twice", ks);
        TRY(get_str(c, v, &vs, &vl));
        int rc = 0;
        uint32_t key = intern(c, ks, kl, &rc);
        TRY(rc);
        uint32_t val = intern(c, vs, vl, &rc);
        TRY(rc);
        struct dynobs_rule_cond *cd = vec_push(&c->conds, NULL);
        if (!cd)
            return oom(c);
        cd->key = key;
        cd->value = val;
        cd->op = (uint8_t)(strpbrk(vs, "*?") ? DYNOBS_COND_GLOB : DYNOBS_COND_EQ);
        pop(c, at);
    }
    m->cond_count = (uint32_t)count;
    m->any |= count > 0;
    return 0;
}

static int parse_match(struct cx *c, yaml_node_t *n, struct pmatch *m)
{
    static const char *const keys[] = {"service.name", "process.executable.path", "span.kind",
                                       "http.request.method", "server.address", "url.path",
                                       "db.operation.name", "span.name", "metric.name",
                                       "attributes", NULL};
    memset(m, 0, sizeof *m);
    TRY(check_map(c, n, keys));
    for (int f = 0; f < F_COUNT; f++) {
        yaml_node_t *v = get(c, n, field_keys[f]);
        if (!v)
            continue;
        size_t at = push_key(c, field_keys[f]);
        int one = v->type == YAML_SCALAR_NODE;
        if (!one)
            TRY(check_seq(c, v, DYNOBS_RULES_MAX_LIST));
        size_t count = one ? 1 : seq_len(v);
        if (count == 0)
            return fail(c, v, "empty list");
        for (size_t i = 0; i < count; i++) {
            size_t at2 = one ? c->y.plen : push_index(c, i);
            TRY(get_ref(c, one ? v : item(c, v, i), &m->refs[f][i]));
            pop(c, at2);
        }
        m->n[f] = count;
        m->any = 1;
        pop(c, at);
    }
    yaml_node_t *v;
    if ((v = get(c, n, "span.kind")))
        AT(c, "span.kind", parse_kinds(c, v, &m->kinds));
    m->any |= m->kinds != 0;
    if ((v = get(c, n, "attributes")))
        AT(c, "attributes", parse_conds(c, v, m));
    return 0;
}

/* Writes the matches a parsed MATCH expands to (one per combination of
 * its lists) into idx; *count is how many. A rule without a match, or
 * with an empty one, applies always (DYNOBS_RULES_NONE). */
static int expand_match(struct cx *c, yaml_node_t *at, const struct pmatch *m, uint32_t *idx,
                        size_t *count)
{
    if (!m || !m->any) {
        idx[0] = DYNOBS_RULES_NONE;
        *count = 1;
        return 0;
    }
    size_t total = 1;
    for (int f = 0; f < F_COUNT; f++) {
        total *= m->n[f] ? m->n[f] : 1;
        if (total > DYNOBS_RULES_MAX_ENTRIES)
            return fail(c, at, "the lists of this match expand to more than %u entries",
                        DYNOBS_RULES_MAX_ENTRIES);
    }
    for (size_t k = 0; k < total; k++) {
        struct dynobs_rule_match *x = vec_push(&c->matches, &idx[k]);
        if (!x)
            return oom(c);
        uint32_t *fields[F_COUNT] = {&x->service,        &x->exe,      &x->method,
                                     &x->server_address, &x->url_path, &x->db_operation,
                                     &x->span_name,      &x->metric_name};
        size_t rest = k;
        for (int f = 0; f < F_COUNT; f++) {
            if (!m->n[f])
                continue;
            *fields[f] = m->refs[f][rest % m->n[f]];
            rest /= m->n[f];
        }
        x->cond_first = m->cond_first;
        x->cond_count = m->cond_count;
        x->kinds = m->kinds;
    }
    *count = total;
    return 0;
}

static int parse_opt_match(struct cx *c, yaml_node_t *rule, struct pmatch *m, int required,
                           int *have)
{
    yaml_node_t *v = get(c, rule, "match");
    *have = v != NULL;
    if (!v)
        return required ? fail(c, rule, "'match' is required") : 0;
    AT(c, "match", parse_match(c, v, m));
    return 0;
}

/* Room for n more entries in a section. */
static int section_room(struct cx *c, yaml_node_t *at, const struct vec *v, size_t n,
                        const char *what)
{
    if (v->n + n > DYNOBS_RULES_MAX_ENTRIES)
        return fail(c, at, "more than %u %s entries (each item of a list in a match counts)",
                    DYNOBS_RULES_MAX_ENTRIES, what);
    return 0;
}

/* A section's entry, once per match its MATCH expands to (the entry's
 * first field is its match index in every section). */
static int add_entries(struct cx *c, yaml_node_t *at, const struct pmatch *m, struct vec *v,
                       const char *what, const void *entry)
{
    _Static_assert(offsetof(struct dynobs_rule_routes, match) == 0 &&
                       offsetof(struct dynobs_rule_filter, match) == 0 &&
                       offsetof(struct dynobs_rule_redact, match) == 0,
                   "entries start with their match");
    uint32_t idx[DYNOBS_RULES_MAX_ENTRIES];
    size_t count;
    TRY(expand_match(c, at, m, idx, &count));
    TRY(section_room(c, at, v, count, what));
    for (size_t k = 0; k < count; k++) {
        char *x = vec_push(v, NULL);
        if (!x)
            return oom(c);
        memcpy(x, entry, v->size);
        memcpy(x, &idx[k], sizeof idx[k]);
    }
    return 0;
}

/* ---- SAMPLER ---- */

struct psampler {
    uint8_t kind;
    double ratio;
};

static int empty_object(struct cx *c, yaml_node_t *n)
{
    if (is_null(n) ||
        (n->type == YAML_MAPPING_NODE && n->data.mapping.pairs.top == n->data.mapping.pairs.start))
        return 0;
    return fail(c, n, "expected {} or nothing");
}

static int parse_sampler(struct cx *c, yaml_node_t *n, int allow_parent, struct psampler *s);

static int parse_parent_based(struct cx *c, yaml_node_t *n, struct psampler *s)
{
    static const char *const keys[] = {"root", "remote_parent_sampled",
                                       "remote_parent_not_sampled", "local_parent_sampled",
                                       "local_parent_not_sampled", NULL};
    if (is_null(n))
        goto root_default;
    TRY(check_map(c, n, keys));
    /* dynobs follows the parent's sampled flag, which is what these four
     * are by default; any other choice is refused rather than ignored. */
    for (int i = 1; i <= 4; i++) {
        yaml_node_t *v = get(c, n, keys[i]);
        if (!v)
            continue;
        size_t at = push_key(c, keys[i]);
        struct psampler p;
        TRY(parse_sampler(c, v, 0, &p));
        uint8_t want = (i % 2) ? DYNOBS_SAMPLER_ALWAYS_ON : DYNOBS_SAMPLER_ALWAYS_OFF;
        if (p.kind != want)
            return fail(c, v, "not supported: dynobs follows the parent's sampled flag "
                              "(only %s here)", want == DYNOBS_SAMPLER_ALWAYS_ON ? "always_on"
                                                                                 : "always_off");
        pop(c, at);
    }
    yaml_node_t *root = get(c, n, "root");
    if (root) {
        struct psampler r;
        AT(c, "root", parse_sampler(c, root, 0, &r));
        s->ratio = r.ratio;
        s->kind = r.kind == DYNOBS_SAMPLER_ALWAYS_ON    ? DYNOBS_SAMPLER_PARENT_ALWAYS_ON
                  : r.kind == DYNOBS_SAMPLER_ALWAYS_OFF ? DYNOBS_SAMPLER_PARENT_ALWAYS_OFF
                                                        : DYNOBS_SAMPLER_PARENT_RATIO;
        return 0;
    }
root_default:
    s->kind = DYNOBS_SAMPLER_PARENT_ALWAYS_ON; /* OpenTelemetry's default root */
    s->ratio = 1.0;
    return 0;
}

static int parse_sampler(struct cx *c, yaml_node_t *n, int allow_parent, struct psampler *s)
{
    static const char *const keys[] = {"always_on", "always_off", "trace_id_ratio_based",
                                       "parent_based", NULL};
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "expected a sampler (always_on, always_off, trace_id_ratio_based, "
                          "parent_based)");
    TRY(check_map(c, n, keys));
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count != 1)
        return fail(c, n, "expected exactly one sampler");
    yaml_node_t *v;
    if ((v = get(c, n, "always_on"))) {
        AT(c, "always_on", empty_object(c, v));
        s->kind = DYNOBS_SAMPLER_ALWAYS_ON;
        s->ratio = 1.0;
    } else if ((v = get(c, n, "always_off"))) {
        AT(c, "always_off", empty_object(c, v));
        s->kind = DYNOBS_SAMPLER_ALWAYS_OFF;
        s->ratio = 0.0;
    } else if ((v = get(c, n, "trace_id_ratio_based"))) {
        static const char *const rkeys[] = {"ratio", NULL};
        size_t at = push_key(c, "trace_id_ratio_based");
        s->kind = DYNOBS_SAMPLER_RATIO;
        s->ratio = 1.0; /* OpenTelemetry's default */
        if (!is_null(v)) {
            TRY(check_map(c, v, rkeys));
            yaml_node_t *r = get(c, v, "ratio");
            if (r)
                AT(c, "ratio", get_ratio(c, r, &s->ratio));
        }
        pop(c, at);
    } else {
        v = get(c, n, "parent_based");
        if (!allow_parent)
            return fail(c, node(c, n->data.mapping.pairs.start->key),
                        "parent_based cannot be nested in parent_based");
        AT(c, "parent_based", parse_parent_based(c, v, s));
    }
    return 0;
}

static int add_sampler(struct cx *c, uint32_t match, const struct psampler *s, uint8_t keep,
                       uint32_t slower_ms)
{
    struct dynobs_rule_sampler *e = vec_push(&c->samplers, NULL);
    if (!e)
        return oom(c);
    e->match = match;
    e->kind = s->kind;
    e->keep = keep;
    e->keep_slower_ms = slower_ms;
    e->ratio = s->ratio;
    e->threshold = dynobs__sampler_threshold(s->ratio);
    return 0;
}

/* ---- dynobs.routes ---- */

static int check_pattern(struct cx *c, yaml_node_t *n, const char *s, size_t l)
{
    if (s[0] != '/')
        return fail(c, n, "a route pattern starts with '/'");
    if (l == 1)
        return 0;
    /* Segments between slashes: literal, {name}, :name, or a last "*". */
    const char *p = s + 1, *end = s + l;
    while (p <= end) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        size_t sl = (size_t)(q - p);
        if (sl == 0 && q != end)
            return fail(c, n, "empty segment in route pattern");
        if (sl == 1 && *p == '*' && q != end)
            return fail(c, n, "'*' is allowed only as the last segment");
        if (*p == '{' && (sl < 3 || p[sl - 1] != '}' || memchr(p + 1, '{', sl - 2) ||
                          memchr(p + 1, '}', sl - 2)))
            return fail(c, n, "a parameter segment is {name}");
        if (*p == ':' && sl < 2)
            return fail(c, n, "a parameter segment is :name");
        if (*p != '{' && (memchr(p, '{', sl) || memchr(p, '}', sl)))
            return fail(c, n, "'{' or '}' inside a literal segment");
        if (sl > 1 && memchr(p, '*', sl))
            return fail(c, n, "'*' is a whole segment");
        p = q + 1;
    }
    return 0;
}

static int parse_routes(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"match", "patterns", "ignored_patterns", "unmatched",
                                       "max_path_segment_cardinality", NULL};
    static const char *const unmatched[] = {NULL, "heuristic", "low-cardinality", "path",
                                            "wildcard"};
    TRY(check_seq(c, n, DYNOBS_RULES_MAX_ENTRIES));
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *r = item(c, n, i);
        size_t at = push_index(c, i);
        TRY(check_map(c, r, keys));
        struct pmatch m;
        int have;
        TRY(parse_opt_match(c, r, &m, 0, &have));
        struct dynobs_rule_routes e = {.unmatched = DYNOBS_ROUTE_HEURISTIC,
                                       .max_segment_values = 10};
        yaml_node_t *v;
        if ((v = get(c, r, "patterns")))
            AT(c, "patterns", str_list(c, v, check_pattern, 0, &e.patterns_first,
                                       &e.patterns_count));
        if ((v = get(c, r, "ignored_patterns")))
            AT(c, "ignored_patterns", str_list(c, v, check_pattern, 0, &e.ignored_first,
                                               &e.ignored_count));
        if ((v = get(c, r, "unmatched"))) {
            size_t at2 = push_key(c, "unmatched");
            const char *s;
            size_t l;
            TRY(get_str(c, v, &s, &l));
            int k;
            for (k = 1; k <= 4; k++)
                if (!strcmp(s, unmatched[k]))
                    break;
            if (k > 4)
                return fail(c, v, "unknown value '%s' (heuristic, low-cardinality, path, "
                                  "wildcard)", s);
            e.unmatched = (uint8_t)k;
            pop(c, at2);
        }
        if ((v = get(c, r, "max_path_segment_cardinality"))) {
            uint32_t x;
            AT(c, "max_path_segment_cardinality", get_u32(c, v, 1, 1000, &x));
            e.max_segment_values = (uint16_t)x;
        }
        TRY(add_entries(c, r, have ? &m : NULL, &c->routes, "routes", &e));
        pop(c, at);
    }
    return 0;
}

/* ---- dynobs.sampling ---- */

static int parse_sampling(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"match", "sampler", "keep", NULL};
    static const char *const kkeys[] = {"errors", "slower_than", NULL};
    TRY(check_seq(c, n, DYNOBS_RULES_MAX_ENTRIES));
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *r = item(c, n, i);
        size_t at = push_index(c, i);
        TRY(check_map(c, r, keys));
        struct pmatch m;
        int have;
        TRY(parse_opt_match(c, r, &m, 0, &have));
        yaml_node_t *v = get(c, r, "sampler");
        if (!v)
            return fail(c, r, "'sampler' is required");
        struct psampler s;
        AT(c, "sampler", parse_sampler(c, v, 1, &s));
        uint8_t keep = 0;
        uint32_t slower = 0;
        if ((v = get(c, r, "keep"))) {
            size_t at2 = push_key(c, "keep");
            TRY(check_map(c, v, kkeys));
            yaml_node_t *w;
            int errors = 0;
            if ((w = get(c, v, "errors")))
                AT(c, "errors", get_bool(c, w, &errors));
            if (errors)
                keep |= DYNOBS_KEEP_ERRORS;
            if ((w = get(c, v, "slower_than"))) {
                AT(c, "slower_than", get_duration(c, w, 1, 3600000, &slower));
                keep |= DYNOBS_KEEP_SLOW;
            }
            pop(c, at2);
        }
        uint32_t idx[DYNOBS_RULES_MAX_ENTRIES];
        size_t count;
        TRY(expand_match(c, r, have ? &m : NULL, idx, &count));
        TRY(section_room(c, r, &c->samplers, count, "sampling"));
        for (size_t k = 0; k < count; k++)
            TRY(add_sampler(c, idx[k], &s, keep, slower));
        pop(c, at);
    }
    return 0;
}

/* ---- dynobs.filters ---- */

static int parse_drop(struct cx *c, yaml_node_t *v, uint32_t *drop)
{
    static const char *const names[] = {"traces", "metrics", "logs"};
    if (v->type == YAML_SCALAR_NODE && scalar_is(v, "all")) {
        *drop = DYNOBS_DROP_TRACES | DYNOBS_DROP_METRICS | DYNOBS_DROP_LOGS;
        return 0;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, "expected a list of traces, metrics, logs, or \"all\"");
    TRY(check_seq(c, v, 3));
    *drop = 0;
    for (size_t i = 0; i < seq_len(v); i++) {
        yaml_node_t *w = item(c, v, i);
        size_t at = push_index(c, i);
        const char *s;
        size_t l;
        TRY(get_str(c, w, &s, &l));
        size_t k;
        for (k = 0; k < 3; k++)
            if (!strcmp(s, names[k]))
                break;
        if (k == 3)
            return fail(c, w, "unknown signal '%s' (traces, metrics, logs)", s);
        *drop |= 1u << k; /* DYNOBS_DROP_TRACES, _METRICS, _LOGS in this order */
        pop(c, at);
    }
    return 0;
}

static int parse_filters(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"match", "drop", NULL};
    TRY(check_seq(c, n, DYNOBS_RULES_MAX_ENTRIES));
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *r = item(c, n, i);
        size_t at = push_index(c, i);
        TRY(check_map(c, r, keys));
        struct pmatch m;
        int have;
        TRY(parse_opt_match(c, r, &m, 1, &have));
        yaml_node_t *v = get(c, r, "drop");
        if (!v)
            return fail(c, r, "'drop' is required (drop: [] keeps)");
        uint32_t drop = 0;
        AT(c, "drop", parse_drop(c, v, &drop));
        struct dynobs_rule_filter f = {0, drop};
        TRY(add_entries(c, r, &m, &c->filters, "filters", &f));
        pop(c, at);
    }
    return 0;
}

/* ---- dynobs.redaction ---- */

static int check_header(struct cx *c, yaml_node_t *n, const char *s, size_t l)
{
    (void)l;
    if (!strcmp(s, "authorization") || !strcmp(s, "cookie") || !strcmp(s, "set-cookie"))
        return fail(c, n, "'%s' is never recorded (it cannot be allowed)", s);
    for (size_t i = 0; i < l; i++)
        if (s[i] <= ' ' || s[i] == ':' || s[i] == 127)
            return fail(c, n, "not a header name");
    return 0;
}

/* A query key that OpenTelemetry's sensitive_query_parameters names is
 * left out of every allowed list: its value is always redacted. */
static int check_query_key(struct cx *c, yaml_node_t *n, const char *s, size_t l)
{
    (void)n;
    (void)l;
    if (!c->sensitive)
        return 0;
    for (size_t i = 0; i < seq_len(c->sensitive); i++)
        if (scalar_is(item(c, c->sensitive, i), s))
            return 1;
    return 0;
}

static int parse_replaces(struct cx *c, yaml_node_t *n, struct dynobs_rule_redact *e)
{
    static const char *const keys[] = {"key", "value", "with", NULL};
    TRY(check_seq(c, n, DYNOBS_RULES_MAX_LIST));
    e->replace_first = (uint32_t)c->replaces.n;
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *r = item(c, n, i);
        size_t at = push_index(c, i);
        TRY(check_map(c, r, keys));
        struct dynobs_rule_replace x = {0};
        yaml_node_t *v = get(c, r, "key");
        if (!v)
            return fail(c, r, "'key' is required");
        AT(c, "key", get_ref(c, v, &x.key));
        if ((v = get(c, r, "value")))
            AT(c, "value", get_ref(c, v, &x.value));
        if ((v = get(c, r, "with"))) {
            const char *s;
            size_t l;
            int rc = 0;
            AT(c, "with", get_str(c, v, &s, &l));
            x.with = intern(c, s, l, &rc);
            TRY(rc);
        }
        if (!x.with) {
            int rc = 0;
            x.with = intern(c, "REDACTED", 8, &rc);
            TRY(rc);
        }
        struct dynobs_rule_replace *p = vec_push(&c->replaces, NULL);
        if (!p)
            return oom(c);
        *p = x;
        pop(c, at);
    }
    e->replace_count = (uint32_t)seq_len(n);
    return 0;
}

static int parse_redaction(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"match", "headers", "query", "sql", "attributes", NULL};
    static const char *const qkeys[] = {"record", "allowed", NULL};
    TRY(check_seq(c, n, DYNOBS_RULES_MAX_ENTRIES));
    for (size_t i = 0; i < seq_len(n); i++) {
        yaml_node_t *r = item(c, n, i);
        size_t at = push_index(c, i);
        TRY(check_map(c, r, keys));
        struct pmatch m;
        int have;
        TRY(parse_opt_match(c, r, &m, 0, &have));
        struct dynobs_rule_redact e = {.query = DYNOBS_QUERY_OMIT, .sql = DYNOBS_SQL_SCRUB};
        yaml_node_t *v;
        if ((v = get(c, r, "headers"))) {
            AT(c, "headers", str_list(c, v, check_header, 1, &e.headers_first, &e.headers_count));
            e.headers_set = 1;
        }
        if ((v = get(c, r, "query"))) {
            size_t at2 = push_key(c, "query");
            TRY(check_map(c, v, qkeys));
            yaml_node_t *w;
            int record = 0;
            if ((w = get(c, v, "record")))
                AT(c, "record", get_bool(c, w, &record));
            if ((w = get(c, v, "allowed"))) {
                if (!record)
                    return fail(c, w, "'allowed' needs record: true");
                AT(c, "allowed", str_list(c, w, check_query_key, 0, &e.query_first,
                                          &e.query_count));
            }
            e.query = record ? DYNOBS_QUERY_REDACT : DYNOBS_QUERY_OMIT;
            pop(c, at2);
        }
        if ((v = get(c, r, "sql"))) {
            size_t at2 = push_key(c, "sql");
            const char *str;
            size_t l;
            TRY(get_str(c, v, &str, &l));
            if (!strcmp(str, "scrub"))
                e.sql = DYNOBS_SQL_SCRUB;
            else if (!strcmp(str, "raw"))
                e.sql = DYNOBS_SQL_RAW;
            else
                return fail(c, v, "expected scrub or raw");
            pop(c, at2);
        }
        if ((v = get(c, r, "attributes")))
            AT(c, "attributes", parse_replaces(c, v, &e));
        TRY(add_entries(c, r, have ? &m : NULL, &c->redacts, "redaction", &e));
        pop(c, at);
    }
    return 0;
}

/* ---- the dynobs block ---- */

static int parse_dynobs(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"version",  "cardinality", "tail_sampling", "routes",
                                       "sampling", "filters",     "redaction",     NULL};
    TRY(check_map(c, n, keys));
    yaml_node_t *v = get(c, n, "version");
    if (!v)
        return fail(c, n, "'version' is required (version: 1)");
    uint32_t version;
    AT(c, "version", get_u32(c, v, 1, 1, &version));
    if ((v = get(c, n, "cardinality"))) {
        static const char *const ck[] = {"span_names", NULL};
        size_t at = push_key(c, "cardinality");
        TRY(check_map(c, v, ck));
        yaml_node_t *w = get(c, v, "span_names");
        if (w)
            AT(c, "span_names", get_u32(c, w, 1, 1000000, &c->hdr.span_name_limit));
        pop(c, at);
    }
    if ((v = get(c, n, "tail_sampling"))) {
        static const char *const tk[] = {"decision_wait", "num_traces", NULL};
        size_t at = push_key(c, "tail_sampling");
        TRY(check_map(c, v, tk));
        yaml_node_t *w;
        if ((w = get(c, v, "decision_wait")))
            AT(c, "decision_wait", get_duration(c, w, 1, 600000, &c->hdr.tail_decision_wait_ms));
        if ((w = get(c, v, "num_traces")))
            AT(c, "num_traces", get_u32(c, w, 1, 1000000, &c->hdr.tail_num_traces));
        pop(c, at);
    }
    if ((v = get(c, n, "routes")))
        AT(c, "routes", parse_routes(c, v));
    if ((v = get(c, n, "sampling")))
        AT(c, "sampling", parse_sampling(c, v));
    if ((v = get(c, n, "filters")))
        AT(c, "filters", parse_filters(c, v));
    if ((v = get(c, n, "redaction")))
        AT(c, "redaction", parse_redaction(c, v));
    return 0;
}

/* ---- OpenTelemetry's keys ---- */

static int parse_attribute_limits(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"attribute_value_length_limit", "attribute_count_limit",
                                       NULL};
    TRY(check_map(c, n, keys));
    yaml_node_t *v;
    if ((v = get(c, n, "attribute_value_length_limit")))
        AT(c, "attribute_value_length_limit",
           get_u32(c, v, 1, UINT32_MAX, &c->hdr.attr_value_limit));
    if ((v = get(c, n, "attribute_count_limit")))
        AT(c, "attribute_count_limit", get_u32(c, v, 1, UINT32_MAX, &c->hdr.attr_count_limit));
    return 0;
}

static int parse_tracer_provider(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"sampler", NULL};
    TRY(check_map(c, n, keys));
    yaml_node_t *v = get(c, n, "sampler");
    if (!v)
        return 0;
    struct psampler s;
    AT(c, "sampler", parse_sampler(c, v, 1, &s));
    /* The default sampler: the last entry, for what no rule matched. */
    if (c->samplers.n >= DYNOBS_RULES_MAX_ENTRIES)
        return fail(c, v, "more than %u sampling entries", DYNOBS_RULES_MAX_ENTRIES);
    return add_sampler(c, DYNOBS_RULES_NONE, &s, 0, 0);
}

static int parse_reader(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"pull", "periodic", NULL};
    static const char *const rkeys[] = {"exporter", "producers", "cardinality_limits",
                                        "interval", "timeout",   NULL};
    static const char *const pkeys[] = {"exporter", "producers", "cardinality_limits", NULL};
    static const char *const ckeys[] = {"default", "counter", "gauge", "histogram",
                                        "observable_counter", "observable_gauge",
                                        "observable_up_down_counter", "up_down_counter", NULL};
    TRY(check_map(c, n, keys));
    if (n->data.mapping.pairs.top - n->data.mapping.pairs.start != 1)
        return fail(c, n, "expected exactly one of pull or periodic");
    yaml_node_t *k = node(c, n->data.mapping.pairs.start->key);
    yaml_node_t *r = node(c, n->data.mapping.pairs.start->value);
    size_t at = push_key(c, (const char *)k->data.scalar.value);
    /* Only the periodic reader has an interval and a timeout. */
    TRY(check_map(c, r, scalar_is(k, "pull") ? pkeys : rkeys));
    yaml_node_t *cl = get(c, r, "cardinality_limits");
    if (cl) {
        size_t at2 = push_key(c, "cardinality_limits");
        TRY(check_map(c, cl, ckeys));
        for (int i = 1; ckeys[i]; i++) {
            yaml_node_t *w = get(c, cl, ckeys[i]);
            if (w) {
                push_key(c, ckeys[i]);
                return fail(c, w, "not supported: dynobs has one limit for every instrument "
                                  "(use default)");
            }
        }
        yaml_node_t *d = get(c, cl, "default");
        if (d) {
            uint32_t lim;
            AT(c, "default", get_u32(c, d, 1, 1000000, &lim));
            /* Several readers: the smallest limit holds for all. */
            if (!c->hdr.cardinality_limit || lim < c->hdr.cardinality_limit)
                c->hdr.cardinality_limit = lim;
        }
        pop(c, at2);
    }
    pop(c, at);
    return 0;
}

static int parse_meter_provider(struct cx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"readers", NULL};
    TRY(check_map(c, n, keys));
    yaml_node_t *v = get(c, n, "readers");
    if (!v)
        return fail(c, n, "'readers' is required");
    size_t at = push_key(c, "readers");
    TRY(check_seq(c, v, 64));
    for (size_t i = 0; i < seq_len(v); i++) {
        size_t at2 = push_index(c, i);
        TRY(parse_reader(c, item(c, v, i)));
        pop(c, at2);
    }
    pop(c, at);
    return 0;
}

/* The request headers of OpenTelemetry's HTTP instrumentation options,
 * kept until the dynobs block's own redaction entries are in: they
 * become fallback entries after them. */
struct instr {
    yaml_node_t *server_headers, *client_headers;
};

static int parse_http_side(struct cx *c, yaml_node_t *n, yaml_node_t **headers)
{
    static const char *const keys[] = {"request_captured_headers", "response_captured_headers",
                                       NULL};
    TRY(check_map(c, n, keys));
    yaml_node_t *v = get(c, n, "response_captured_headers");
    if (v)
        AT(c, "response_captured_headers",
           fail(c, v, "not supported: dynobs records request headers only"));
    *headers = get(c, n, "request_captured_headers");
    return 0;
}

static int parse_instrumentation(struct cx *c, yaml_node_t *n, struct instr *in)
{
    /* The language keys configure the SDKs of those languages, which may
     * read the same file; dynobs accepts and ignores them. */
    static const char *const keys[] = {"general", "cpp", "dotnet", "erlang", "go",   "java",
                                       "js",      "php", "python", "ruby",   "rust", "swift",
                                       NULL};
    static const char *const gkeys[] = {"http", "sanitization", NULL};
    static const char *const hkeys[] = {"server", "client", NULL};
    TRY(check_map(c, n, keys));
    yaml_node_t *g = get(c, n, "general");
    if (!g)
        return 0;
    size_t at = push_key(c, "general");
    TRY(check_map(c, g, gkeys));
    yaml_node_t *h = get(c, g, "http");
    if (h) {
        size_t at2 = push_key(c, "http");
        TRY(check_map(c, h, hkeys));
        yaml_node_t *v;
        if ((v = get(c, h, "server")))
            AT(c, "server", parse_http_side(c, v, &in->server_headers));
        if ((v = get(c, h, "client")))
            AT(c, "client", parse_http_side(c, v, &in->client_headers));
        pop(c, at2);
    }
    yaml_node_t *s = get(c, g, "sanitization");
    if (s) {
        static const char *const skeys[] = {"url", NULL};
        static const char *const ukeys[] = {"sensitive_query_parameters", NULL};
        size_t at2 = push_key(c, "sanitization");
        TRY(check_map(c, s, skeys));
        yaml_node_t *u = get(c, s, "url");
        if (u) {
            size_t at3 = push_key(c, "url");
            TRY(check_map(c, u, ukeys));
            yaml_node_t *q = get(c, u, "sensitive_query_parameters");
            if (q) {
                size_t at4 = push_key(c, "sensitive_query_parameters");
                TRY(check_seq(c, q, DYNOBS_RULES_MAX_LIST));
                for (size_t i = 0; i < seq_len(q); i++) {
                    const char *str;
                    size_t l;
                    size_t at5 = push_index(c, i);
                    TRY(get_str(c, item(c, q, i), &str, &l));
                    pop(c, at5);
                }
                c->sensitive = q;
                pop(c, at4);
            }
            pop(c, at3);
        }
        pop(c, at2);
    }
    pop(c, at);
    return 0;
}

/* The captured request headers become redaction entries for server or
 * client spans, after the dynobs block's. */
static int add_header_fallback(struct cx *c, yaml_node_t *headers, int kind, const char *path)
{
    if (!headers)
        return 0;
    size_t at = push_key(c, path);
    struct dynobs_rule_redact e = {.query = DYNOBS_QUERY_OMIT, .sql = DYNOBS_SQL_SCRUB,
                                   .headers_set = 1};
    TRY(str_list(c, headers, check_header, 1, &e.headers_first, &e.headers_count));
    pop(c, at);
    TRY(section_room(c, headers, &c->redacts, 1, "redaction"));
    struct dynobs_rule_match *m = vec_push(&c->matches, &e.match);
    if (!m)
        return oom(c);
    m->kinds = (uint8_t)(1u << kind);
    struct dynobs_rule_redact *x = vec_push(&c->redacts, NULL);
    if (!x)
        return oom(c);
    *x = e;
    return 0;
}

/* file_format: the versions of OpenTelemetry's configuration schema whose
 * shapes these keys follow. */
static const char *const formats[] = {"0.3", "0.4", "1.0-rc.1", "1.0-rc.2", "1.0", "1.0.0",
                                      NULL};

static int parse_root(struct cx *c, yaml_node_t *root)
{
    static const char *const keys[] = {"file_format",    "disabled",
                                       "attribute_limits", "tracer_provider",
                                       "meter_provider", "instrumentation/development",
                                       "dynobs",         NULL};
    TRY(check_map(c, root, keys));
    yaml_node_t *v = get(c, root, "file_format");
    if (!v)
        return fail(c, root, "'file_format' is required (file_format: \"1.0\")");
    size_t at = push_key(c, "file_format");
    const char *s;
    size_t l;
    TRY(get_str(c, v, &s, &l));
    size_t i;
    for (i = 0; formats[i]; i++)
        if (!strcmp(s, formats[i]))
            break;
    if (!formats[i])
        return fail(c, v, "unsupported file_format '%s' (dynobs reads 0.3, 0.4, 1.0-rc.1, "
                          "1.0-rc.2, 1.0)", s);
    pop(c, at);
    int disabled;
    if ((v = get(c, root, "disabled")))
        AT(c, "disabled", get_bool(c, v, &disabled));
    if ((v = get(c, root, "attribute_limits")))
        AT(c, "attribute_limits", parse_attribute_limits(c, v));
    if ((v = get(c, root, "meter_provider")))
        AT(c, "meter_provider", parse_meter_provider(c, v));
    struct instr in = {0};
    if ((v = get(c, root, "instrumentation/development")))
        AT(c, "instrumentation/development", parse_instrumentation(c, v, &in));
    if ((v = get(c, root, "dynobs")))
        AT(c, "dynobs", parse_dynobs(c, v));
    if ((v = get(c, root, "tracer_provider")))
        AT(c, "tracer_provider", parse_tracer_provider(c, v));
    TRY(add_header_fallback(c, in.server_headers, DYNOBS_SPAN_KIND_SERVER,
                            "instrumentation/development.general.http.server."
                            "request_captured_headers"));
    TRY(add_header_fallback(c, in.client_headers, DYNOBS_SPAN_KIND_CLIENT,
                            "instrumentation/development.general.http.client."
                            "request_captured_headers"));
    return 0;
}

/* ---- layout ---- */

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

static int lay_out(struct cx *c, const char *file, const char *yaml, size_t len, void **out,
                   size_t *out_len)
{
    struct vec *parts[] = {&c->strings, &c->lists,   &c->matches, &c->conds,   &c->routes,
                           &c->samplers, &c->filters, &c->redacts, &c->replaces};
    uint32_t offs[9];
    size_t at = sizeof(struct dynobs_rules_hdr);
    for (size_t i = 0; i < 9; i++) {
        at = align8(at);
        offs[i] = (uint32_t)at;
        at += parts[i]->n * parts[i]->size;
        if (at > DYNOBS_RULES_MAX_BYTES)
            return fail(c, NULL, "the compiled rules exceed %u bytes", DYNOBS_RULES_MAX_BYTES);
    }
    at = align8(at);
    char *buf = calloc(1, at);
    if (!buf)
        return oom(c);
    struct dynobs_rules_hdr *h = &c->hdr;
    h->version = DYNOBS_RULES_VERSION;
    h->total_bytes = (uint32_t)at;
    h->generation = 0;
    h->strings_off = offs[0];
    h->strings_bytes = (uint32_t)c->strings.n;
    h->lists_off = offs[1];
    h->nlists = (uint32_t)c->lists.n;
    h->matches_off = offs[2];
    h->nmatches = (uint32_t)c->matches.n;
    h->conds_off = offs[3];
    h->nconds = (uint32_t)c->conds.n;
    h->routes_off = offs[4];
    h->nroutes = (uint32_t)c->routes.n;
    h->samplers_off = offs[5];
    h->nsamplers = (uint32_t)c->samplers.n;
    h->filters_off = offs[6];
    h->nfilters = (uint32_t)c->filters.n;
    h->redacts_off = offs[7];
    h->nredacts = (uint32_t)c->redacts.n;
    h->replaces_off = offs[8];
    h->nreplaces = (uint32_t)c->replaces.n;
    h->source_hash = fnv1a(yaml, len);
    snprintf(h->source, sizeof h->source, "%s", file ? file : "");
    for (size_t i = 0; i < 9; i++)
        if (parts[i]->n)
            memcpy(buf + offs[i], parts[i]->p, parts[i]->n * parts[i]->size);
    /* The magic last, as the layout says (readers check it first). */
    h->magic = DYNOBS_RULES_MAGIC;
    memcpy(buf, h, sizeof *h);
    *out = buf;
    *out_len = at;
    return 0;
}

static void cx_free(struct cx *c)
{
    struct vec *parts[] = {&c->strings, &c->lists,   &c->matches, &c->conds,   &c->routes,
                           &c->samplers, &c->filters, &c->redacts, &c->replaces};
    for (size_t i = 0; i < 9; i++)
        free(parts[i]->p);
}

int dynobs__rules_compile(const char *yaml, size_t len, const char *file, void **out,
                          size_t *out_len, struct dynobs_rules_error *err)
{
    struct dynobs_rules_error scratch;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    *out = NULL;
    *out_len = 0;
    struct cx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return -ENOMEM;
    }
    c->y.err = err;
    c->strings.size = 1;
    c->lists.size = sizeof(uint32_t);
    c->matches.size = sizeof(struct dynobs_rule_match);
    c->conds.size = sizeof(struct dynobs_rule_cond);
    c->routes.size = sizeof(struct dynobs_rule_routes);
    c->samplers.size = sizeof(struct dynobs_rule_sampler);
    c->filters.size = sizeof(struct dynobs_rule_filter);
    c->redacts.size = sizeof(struct dynobs_rule_redact);
    c->replaces.size = sizeof(struct dynobs_rule_replace);
    c->hdr.tail_decision_wait_ms = 5000;
    c->hdr.tail_num_traces = 10000;
    int rc = -EINVAL;
    int have_doc = 0;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        rc = oom(c);
        goto out;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &c->y.doc)) {
        err->line = (unsigned)parser.problem_mark.line + 1;
        err->column = (unsigned)parser.problem_mark.column + 1;
        snprintf(err->message, sizeof err->message, "YAML: %s%s%s",
                 parser.problem ? parser.problem : "cannot parse", parser.context ? " " : "",
                 parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&c->y.doc);
    if (!root) {
        fail(c, NULL, "empty file: file_format is required");
        yaml_parser_delete(&parser);
        goto out;
    }
    /* One document only: a second one would be silently ignored. */
    yaml_document_t next;
    if (yaml_parser_load(&parser, &next)) {
        int more = yaml_document_get_root_node(&next) != NULL;
        yaml_node_t *n = more ? yaml_document_get_root_node(&next) : NULL;
        if (more) {
            err->line = (unsigned)n->start_mark.line + 1;
            err->column = (unsigned)n->start_mark.column + 1;
            snprintf(err->message, sizeof err->message, "more than one YAML document");
        }
        yaml_document_delete(&next);
        if (more) {
            yaml_parser_delete(&parser);
            goto out;
        }
    } else {
        err->line = (unsigned)parser.problem_mark.line + 1;
        err->column = (unsigned)parser.problem_mark.column + 1;
        snprintf(err->message, sizeof err->message, "YAML: %s",
                 parser.problem ? parser.problem : "cannot parse");
        yaml_parser_delete(&parser);
        goto out;
    }
    yaml_parser_delete(&parser);
    /* The pool's first byte is the "none" string. */
    if (!vec_push(&c->strings, NULL)) {
        rc = oom(c);
        goto out;
    }
    rc = parse_root(c, root);
    if (rc == 0)
        rc = lay_out(c, file, yaml, len, out, out_len);
out:
    if (have_doc)
        yaml_document_delete(&c->y.doc);
    cx_free(c);
    free(c);
    return rc;
}

int dynobs__rules_compile_file(const char *path, void **out, size_t *out_len,
                               struct dynobs_rules_error *err)
{
    struct dynobs_rules_error scratch;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    snprintf(err->file, sizeof err->file, "%s", path);
    *out = NULL;
    *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err->message, sizeof err->message, "cannot read: %s", strerror(e));
        return -e;
    }
    /* A rules file is small; one larger than the table's own cap is
     * refused before it is read. */
    size_t cap = DYNOBS_RULES_MAX_BYTES, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        snprintf(err->message, sizeof err->message, "out of memory");
        return -ENOMEM;
    }
    n = fread(buf, 1, cap + 1, f);
    int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (rerr) {
        free(buf);
        snprintf(err->message, sizeof err->message, "cannot read: %s", strerror(rerr));
        return -rerr;
    }
    if (n > cap) {
        free(buf);
        snprintf(err->message, sizeof err->message, "larger than %zu bytes", cap);
        return -EFBIG;
    }
    int rc = dynobs__rules_compile(buf, n, path, out, out_len, err);
    free(buf);
    return rc;
}

void dynobs__rules_error_format(const struct dynobs_rules_error *e, char *buf, size_t cap)
{
    if (!cap)
        return;
    size_t at = 0;
    int w;
#define PUT(...)                                                 \
    do {                                                         \
        w = snprintf(buf + at, cap - at, __VA_ARGS__);           \
        if (w < 0)                                               \
            return;                                              \
        at += (size_t)w;                                         \
        if (at >= cap)                                           \
            return;                                              \
    } while (0)
    buf[0] = '\0';
    if (e->file[0])
        PUT("%s:", e->file);
    if (e->line)
        PUT("%u:%u:", e->line, e->column);
    if (at)
        PUT(" ");
    if (e->path[0])
        PUT("%s: ", e->path);
    PUT("%s", e->message);
#undef PUT
}
