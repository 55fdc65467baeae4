/*
 * Compiling a rules file (rules/README.md) into the table of
 * rules_layout.h. libyaml loads the file into a node tree; each part of
 * the schema is one function (rules_otel.c for OpenTelemetry's keys,
 * rules_dynobs.c for the dynobs block) that checks its node strictly
 * (every key known, every type and range right) and appends what it
 * means to growable arrays, which are laid out into one block at the end.
 * This file holds what every part shares (the arrays, the string pool,
 * MATCH), the layout and the entry points of rules.h. Any refusal names
 * the node's line and column and its key path. Runs in the exporter and
 * the tools only: it allocates, and is not part of the shim.
 */
#define _GNU_SOURCE
#include "rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_compiler.h"

int dynobs__rc_oom(struct cx *c)
{
    fail(c, NULL, "out of memory");
    return -ENOMEM;
}

/* ---- growable arrays and the string pool ---- */

void *dynobs__rc_vec_push(struct vec *v, uint32_t *index)
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
uint32_t dynobs__rc_intern(struct cx *c, const char *s, size_t n, int *rc)
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

int dynobs__rc_get_ref(struct cx *c, yaml_node_t *n, uint32_t *ref)
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

/* A list of strings, appended to lists as (first, count); `lower`
 * lower-cases them (header names); `check` refuses an item (< 0) or
 * leaves it out (> 0). */
int dynobs__rc_str_list(struct cx *c, yaml_node_t *n, str_check_fn check, int lower,
                        uint32_t *first, uint32_t *count)
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

static const char *const field_keys[F_COUNT] = {
    "service.name", "process.executable.path", "http.request.method", "server.address",
    "url.path",     "db.operation.name",       "span.name",           "metric.name"};

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
int dynobs__rc_expand_match(struct cx *c, yaml_node_t *at, const struct pmatch *m, uint32_t *idx,
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

int dynobs__rc_parse_opt_match(struct cx *c, yaml_node_t *rule, struct pmatch *m, int required,
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
int dynobs__rc_section_room(struct cx *c, yaml_node_t *at, const struct vec *v, size_t n,
                            const char *what)
{
    if (v->n + n > DYNOBS_RULES_MAX_ENTRIES)
        return fail(c, at, "more than %u %s entries (each item of a list in a match counts)",
                    DYNOBS_RULES_MAX_ENTRIES, what);
    return 0;
}

/* A section's entry, once per match its MATCH expands to (the entry's
 * first field is its match index in every section). */
int dynobs__rc_add_entries(struct cx *c, yaml_node_t *at, const struct pmatch *m, struct vec *v,
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
    rc = dynobs__rc_parse_root(c, root);
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
