/*
 * The dynobs block of a rules file (rules/README.md): its version,
 * cardinality and tail_sampling, and the sections routes, sampling,
 * filters and redaction, lists of rules whose MATCH (rules_compile.c)
 * expands into entries of the section. Part of the rules compiler
 * (rules_compiler.h), never of the shim.
 */
#include "rules_compiler.h"

#include <string.h>

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

int dynobs__rc_check_header(struct cx *c, yaml_node_t *n, const char *s, size_t l)
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

int dynobs__rc_parse_dynobs(struct cx *c, yaml_node_t *n)
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

