/*
 * The keys of a rules file that OpenTelemetry's configuration schema
 * defines (file_format, disabled, attribute_limits, tracer_provider's
 * sampler, meter_provider's readers, instrumentation/development), read
 * as far as dynobs acts on them, and SAMPLER, which tracer_provider and
 * dynobs.sampling share. dynobs__rc_parse_root reads the whole file and
 * hands the dynobs block to rules_dynobs.c. Part of the rules compiler
 * (rules_compiler.h), never of the shim.
 */
#include "rules_compiler.h"

#include <string.h>

#include "dynobs/dynobs.h"
#include "sampler.h"

/* ---- SAMPLER ---- */

static int empty_object(struct cx *c, yaml_node_t *n)
{
    if (is_null(n) ||
        (n->type == YAML_MAPPING_NODE && n->data.mapping.pairs.top == n->data.mapping.pairs.start))
        return 0;
    return fail(c, n, "expected {} or nothing");
}

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

int dynobs__rc_parse_sampler(struct cx *c, yaml_node_t *n, int allow_parent, struct psampler *s)
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

int dynobs__rc_add_sampler(struct cx *c, uint32_t match, const struct psampler *s, uint8_t keep,
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

int dynobs__rc_parse_root(struct cx *c, yaml_node_t *root)
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
        AT(c, "dynobs", dynobs__rc_parse_dynobs(c, v));
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

