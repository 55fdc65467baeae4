/* Rules: compiling YAML into the table (rules_compile.c) and reading it
 * back (rules_table.c): every key, every kind of refusal with its place
 * and key path, the validation of untrusted tables, globs, matching and
 * binding to a process. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "rules.h"
#include "rules_default.h"
#include "sampler.h"

/* A compiled and opened table; the bytes stay allocated for the test. */
struct compiled {
    void *buf;
    size_t len;
    struct dynobs_rules r;
};

static struct compiled compile_ok(const char *yaml)
{
    struct compiled c = {0};
    struct dynobs_rules_error e;
    int rc = dynobs__rules_compile(yaml, strlen(yaml), "t.yaml", &c.buf, &c.len, &e);
    if (rc != 0) {
        char msg[1024];
        dynobs__rules_error_format(&e, msg, sizeof msg);
        cr_assert_fail("refused: %s\n%s", msg, yaml);
    }
    cr_assert_eq(dynobs__rules_open(&c.r, c.buf, c.len), 0);
    return c;
}

static void compile_err(const char *yaml, unsigned line, unsigned col, const char *path,
                        const char *msg_part)
{
    void *buf = (void *)1;
    size_t len = 1;
    struct dynobs_rules_error e;
    int rc = dynobs__rules_compile(yaml, strlen(yaml), "bad.yaml", &buf, &len, &e);
    cr_assert_eq(rc, -EINVAL, "accepted:\n%s", yaml);
    cr_assert_null(buf);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(e.file, "bad.yaml");
    cr_expect_eq(e.line, line, "line %u, want %u (%s: %s)", e.line, line, e.path, e.message);
    cr_expect_eq(e.column, col, "column %u, want %u (%s: %s)", e.column, col, e.path,
                 e.message);
    cr_expect_str_eq(e.path, path);
    cr_expect(strstr(e.message, msg_part), "message '%s' lacks '%s'", e.message, msg_part);
}

#define HEAD "file_format: \"1.0\"\ndynobs:\n  version: 1\n"

static const char *S(const struct compiled *c, uint32_t ref)
{
    return dynobs__rules_str(&c->r, ref);
}

static const struct dynobs_rule_match *M(const struct compiled *c, uint32_t m)
{
    cr_assert_lt(m, c->r.nmatches);
    return &c->r.matches[m];
}

/* ---- what each key compiles to ---- */

Test(rules, default_yaml_compiles_and_opens)
{
    void *buf;
    size_t len;
    struct dynobs_rules_error e;
    cr_assert_eq(dynobs__rules_compile_file(DYNOBS_SOURCE_DIR "/rules/default.yaml", &buf, &len,
                                            &e),
                 0, "%s:%u:%u: %s: %s", e.file, e.line, e.column, e.path, e.message);
    struct dynobs_rules r;
    cr_assert_eq(dynobs__rules_open(&r, buf, len), 0);
    cr_assert_eq(r.hdr->generation, 0);
    cr_assert_eq(r.nroutes, 1);
    cr_assert_eq(r.routes[0].match, DYNOBS_RULES_NONE);
    cr_assert_eq(r.routes[0].unmatched, DYNOBS_ROUTE_HEURISTIC);
    cr_assert_eq(r.routes[0].max_segment_values, 10);
    cr_assert_eq(r.hdr->tail_decision_wait_ms, 5000);
    cr_assert_eq(r.hdr->tail_num_traces, 10000);
    cr_assert_eq(r.nsamplers, 0);
    cr_assert_eq(r.nfilters, 4);
    const char *paths[] = {"/healthz", "/readyz", "/livez", "/metrics"};
    for (int i = 0; i < 4; i++) {
        const struct dynobs_rule_match *m = &r.matches[r.filters[i].match];
        cr_assert_eq(r.filters[i].drop, DYNOBS_DROP_TRACES);
        cr_assert_eq(m->kinds, 1u << DYNOBS_SPAN_KIND_SERVER);
        cr_assert_str_eq(dynobs__rules_str(&r, m->url_path), paths[i]);
    }
    cr_assert(strstr(r.hdr->source, "default.yaml"));

    /* The shim's built-in copy is the same table. */
    struct dynobs_rules d;
    cr_assert_eq(dynobs__rules_open(&d, dynobs__rules_default, dynobs__rules_default_len), 0);
    cr_assert_eq(d.nroutes, r.nroutes);
    cr_assert_eq(d.nfilters, r.nfilters);
    cr_assert_eq(d.nmatches, r.nmatches);
    cr_assert_str_eq(d.hdr->source, "default.yaml (built in)");
    free(buf);
}

Test(rules, file_wide_settings)
{
    struct compiled c = compile_ok("file_format: \"0.3\"\n"
                                   "disabled: false\n"
                                   "attribute_limits:\n"
                                   "  attribute_value_length_limit: 4096\n"
                                   "  attribute_count_limit: 64\n"
                                   "meter_provider:\n"
                                   "  readers:\n"
                                   "    - pull:\n"
                                   "        exporter: {prometheus/development: {port: 9464}}\n"
                                   "        cardinality_limits: {default: 500}\n"
                                   "    - periodic:\n"
                                   "        interval: 60000\n"
                                   "        cardinality_limits: {default: 300}\n"
                                   "dynobs:\n"
                                   "  version: 1\n"
                                   "  cardinality: {span_names: 200}\n"
                                   "  tail_sampling: {decision_wait: 2m, num_traces: 500}\n");
    const struct dynobs_rules_hdr *h = c.r.hdr;
    cr_assert_eq(h->attr_value_limit, 4096);
    cr_assert_eq(h->attr_count_limit, 64);
    cr_assert_eq(h->cardinality_limit, 300); /* the smallest of the readers' */
    cr_assert_eq(h->span_name_limit, 200);
    cr_assert_eq(h->tail_decision_wait_ms, 120000);
    cr_assert_eq(h->tail_num_traces, 500);
    cr_assert_str_eq(h->source, "t.yaml");
    cr_assert_eq(h->total_bytes, c.len);
    free(c.buf);
}

Test(rules, absent_settings_are_zero_and_tail_defaults_written)
{
    struct compiled c = compile_ok("file_format: \"1.0\"\n");
    const struct dynobs_rules_hdr *h = c.r.hdr;
    cr_assert_eq(h->attr_value_limit, 0);
    cr_assert_eq(h->attr_count_limit, 0);
    cr_assert_eq(h->cardinality_limit, 0);
    cr_assert_eq(h->span_name_limit, 0);
    cr_assert_eq(h->tail_decision_wait_ms, 5000);
    cr_assert_eq(h->tail_num_traces, 10000);
    cr_assert_eq(c.r.nroutes + c.r.nsamplers + c.r.nfilters + c.r.nredacts, 0);
    free(c.buf);
}

Test(rules, durations)
{
    const char *in[] = {"500ms", "5s", "2m", "10m", "750"};
    const uint32_t want[] = {500, 5000, 120000, 600000, 750};
    for (int i = 0; i < 5; i++) {
        char y[256];
        snprintf(y, sizeof y, HEAD "  tail_sampling: {decision_wait: %s}\n", in[i]);
        struct compiled c = compile_ok(y);
        cr_assert_eq(c.r.hdr->tail_decision_wait_ms, want[i], "%s", in[i]);
        free(c.buf);
    }
    compile_err(HEAD "  tail_sampling: {decision_wait: 5x}\n", 4, 34,
                "dynobs.tail_sampling.decision_wait", "expected a duration");
    compile_err(HEAD "  tail_sampling: {decision_wait: \"500\"}\n", 4, 34,
                "dynobs.tail_sampling.decision_wait", "expected a duration");
    compile_err(HEAD "  tail_sampling: {decision_wait: 0}\n", 4, 34,
                "dynobs.tail_sampling.decision_wait", "out of range");
}

Test(rules, routes)
{
    struct compiled c = compile_ok(HEAD "  routes:\n"
                                        "    - match: {service.name: shop}\n"
                                        "      patterns: [\"/users/{id}\", \"/orders/:id/items\", "
                                        "/static/*, /]\n"
                                        "      ignored_patterns: [/ping]\n"
                                        "      unmatched: low-cardinality\n"
                                        "      max_path_segment_cardinality: 50\n"
                                        "    - unmatched: wildcard\n"
                                        "    - unmatched: path\n");
    cr_assert_eq(c.r.nroutes, 3);
    const struct dynobs_rule_routes *e = &c.r.routes[0];
    cr_assert_str_eq(S(&c, M(&c, e->match)->service), "shop");
    cr_assert_eq(e->patterns_count, 4);
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->patterns_first, 0), "/users/{id}");
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->patterns_first, 1), "/orders/:id/items");
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->patterns_first, 2), "/static/*");
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->patterns_first, 3), "/");
    cr_assert_eq(e->ignored_count, 1);
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->ignored_first, 0), "/ping");
    cr_assert_eq(e->unmatched, DYNOBS_ROUTE_LOW_CARDINALITY);
    cr_assert_eq(e->max_segment_values, 50);
    cr_assert_eq(c.r.routes[1].match, DYNOBS_RULES_NONE);
    cr_assert_eq(c.r.routes[1].unmatched, DYNOBS_ROUTE_WILDCARD);
    cr_assert_eq(c.r.routes[1].max_segment_values, 10);
    cr_assert_eq(c.r.routes[1].patterns_count, 0);
    cr_assert_eq(c.r.routes[2].unmatched, DYNOBS_ROUTE_PATH);
    free(c.buf);
}

Test(rules, samplers_of_every_kind_and_the_default_last)
{
    struct compiled c = compile_ok(
        "file_format: \"1.0\"\n"
        "tracer_provider:\n"
        "  sampler: {parent_based: {root: {trace_id_ratio_based: {ratio: 0.1}}}}\n"
        "dynobs:\n"
        "  version: 1\n"
        "  sampling:\n"
        "    - match: {span.kind: server}\n"
        "      sampler: {always_on: {}}\n"
        "    - sampler: {always_off: }\n"
        "    - sampler: {trace_id_ratio_based: {ratio: 0.25}}\n"
        "      keep: {errors: true, slower_than: 500ms}\n"
        "    - sampler:\n"
        "        parent_based:\n"
        "          root: {always_off: {}}\n"
        "          remote_parent_sampled: {always_on: {}}\n"
        "          local_parent_not_sampled: {always_off: {}}\n"
        "    - sampler: {parent_based: {}}\n"
        "    - sampler: {trace_id_ratio_based: }\n");
    cr_assert_eq(c.r.nsamplers, 7);
    const struct dynobs_rule_sampler *s = c.r.samplers;
    cr_assert_eq(s[0].kind, DYNOBS_SAMPLER_ALWAYS_ON);
    cr_assert_eq(M(&c, s[0].match)->kinds, 1u << DYNOBS_SPAN_KIND_SERVER);
    cr_assert_eq(s[1].kind, DYNOBS_SAMPLER_ALWAYS_OFF);
    cr_assert_eq(s[1].threshold, dynobs__sampler_threshold(0.0));
    cr_assert_eq(s[2].kind, DYNOBS_SAMPLER_RATIO);
    cr_assert_eq(s[2].ratio, 0.25);
    cr_assert_eq(s[2].threshold, dynobs__sampler_threshold(0.25));
    cr_assert_eq(s[2].keep, DYNOBS_KEEP_ERRORS | DYNOBS_KEEP_SLOW);
    cr_assert_eq(s[2].keep_slower_ms, 500);
    cr_assert_eq(s[3].kind, DYNOBS_SAMPLER_PARENT_ALWAYS_OFF);
    cr_assert_eq(s[4].kind, DYNOBS_SAMPLER_PARENT_ALWAYS_ON);
    cr_assert_eq(s[5].kind, DYNOBS_SAMPLER_RATIO);
    cr_assert_eq(s[5].ratio, 1.0);
    /* tracer_provider's sampler: the last entry, for everything. */
    cr_assert_eq(s[6].kind, DYNOBS_SAMPLER_PARENT_RATIO);
    cr_assert_eq(s[6].match, DYNOBS_RULES_NONE);
    cr_assert_eq(s[6].ratio, 0.1);
    cr_assert_eq(s[6].threshold, dynobs__sampler_threshold(0.1));
    cr_assert_eq(s[6].keep, 0);
    /* The threshold is the one the environment's sampler would use. */
    struct dynobs_sampler env;
    cr_assert_eq(dynobs__sampler_init(&env, "parentbased_traceidratio", "0.1"), 0);
    cr_assert_eq(s[6].threshold, env.threshold);
    free(c.buf);
}

Test(rules, filters)
{
    struct compiled c = compile_ok(HEAD "  filters:\n"
                                        "    - match: {url.path: /healthz, service.name: keep}\n"
                                        "      drop: []\n"
                                        "    - match: {url.path: /healthz}\n"
                                        "      drop: [traces, logs]\n"
                                        "    - match: {metric.name: \"db.*\"}\n"
                                        "      drop: all\n"
                                        "    - match: {span.name: x}\n"
                                        "      drop: [metrics]\n");
    cr_assert_eq(c.r.nfilters, 4);
    cr_assert_eq(c.r.filters[0].drop, 0);
    cr_assert_eq(c.r.filters[1].drop, DYNOBS_DROP_TRACES | DYNOBS_DROP_LOGS);
    cr_assert_eq(c.r.filters[2].drop,
                 DYNOBS_DROP_TRACES | DYNOBS_DROP_METRICS | DYNOBS_DROP_LOGS);
    cr_assert_str_eq(S(&c, M(&c, c.r.filters[2].match)->metric_name), "db.*");
    cr_assert_eq(c.r.filters[3].drop, DYNOBS_DROP_METRICS);
    cr_assert_str_eq(S(&c, M(&c, c.r.filters[3].match)->span_name), "x");
    free(c.buf);
}

Test(rules, redaction_and_opentelemetry_instrumentation_fallbacks)
{
    struct compiled c = compile_ok(
        "file_format: \"1.0\"\n"
        "instrumentation/development:\n"
        "  general:\n"
        "    http:\n"
        "      server: {request_captured_headers: [X-Request-Id]}\n"
        "      client: {request_captured_headers: [Accept]}\n"
        "    sanitization:\n"
        "      url: {sensitive_query_parameters: [token]}\n"
        "  java: {anything: {goes: here}}\n"
        "dynobs:\n"
        "  version: 1\n"
        "  redaction:\n"
        "    - match: {service.name: billing}\n"
        "      headers: [User-Agent, X-Tenant]\n"
        "      query: {record: true, allowed: [page, token, sort]}\n"
        "      sql: raw\n"
        "      attributes:\n"
        "        - {key: \"user.*\"}\n"
        "        - {key: card, value: \"4*\", with: \"****\"}\n"
        "    - query: {record: true}\n"
        "    - sql: scrub\n");
    cr_assert_eq(c.r.nredacts, 5);
    const struct dynobs_rule_redact *e = &c.r.redacts[0];
    cr_assert_eq(e->headers_set, 1);
    cr_assert_eq(e->headers_count, 2);
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->headers_first, 0), "user-agent");
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->headers_first, 1), "x-tenant");
    cr_assert_eq(e->query, DYNOBS_QUERY_REDACT);
    /* token is sensitive for OpenTelemetry: never allowed. */
    cr_assert_eq(e->query_count, 2);
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->query_first, 0), "page");
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->query_first, 1), "sort");
    cr_assert_eq(e->sql, DYNOBS_SQL_RAW);
    cr_assert_eq(e->replace_count, 2);
    const struct dynobs_rule_replace *x = &c.r.replaces[e->replace_first];
    cr_assert_str_eq(S(&c, x[0].key), "user.*");
    cr_assert_eq(x[0].value, 0);
    cr_assert_str_eq(S(&c, x[0].with), "REDACTED");
    cr_assert_str_eq(S(&c, x[1].key), "card");
    cr_assert_str_eq(S(&c, x[1].value), "4*");
    cr_assert_str_eq(S(&c, x[1].with), "****");
    cr_assert_eq(c.r.redacts[1].match, DYNOBS_RULES_NONE);
    cr_assert_eq(c.r.redacts[1].query, DYNOBS_QUERY_REDACT);
    cr_assert_eq(c.r.redacts[1].query_count, 0);
    cr_assert_eq(c.r.redacts[1].headers_set, 0);
    cr_assert_eq(c.r.redacts[1].sql, DYNOBS_SQL_SCRUB);
    cr_assert_eq(c.r.redacts[2].query, DYNOBS_QUERY_OMIT);
    /* The OpenTelemetry header lists come after the dynobs entries. */
    e = &c.r.redacts[3];
    cr_assert_eq(M(&c, e->match)->kinds, 1u << DYNOBS_SPAN_KIND_SERVER);
    cr_assert_eq(e->headers_set, 1);
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->headers_first, 0), "x-request-id");
    e = &c.r.redacts[4];
    cr_assert_eq(M(&c, e->match)->kinds, 1u << DYNOBS_SPAN_KIND_CLIENT);
    cr_assert_str_eq(dynobs__rules_list(&c.r, e->headers_first, 0), "accept");
    free(c.buf);
}

Test(rules, match_fields_and_conditions)
{
    struct compiled c = compile_ok(HEAD "  filters:\n"
                                        "    - match:\n"
                                        "        service.name: \"shop-*\"\n"
                                        "        process.executable.path: /usr/bin/python3*\n"
                                        "        span.kind: [client, producer]\n"
                                        "        http.request.method: POST\n"
                                        "        server.address: \"*.internal\"\n"
                                        "        url.path: /api/*\n"
                                        "        db.operation.name: SELECT\n"
                                        "        span.name: \"GET *\"\n"
                                        "        attributes: {tenant: acme, region: \"eu-*\"}\n"
                                        "      drop: [traces]\n");
    const struct dynobs_rule_match *m = M(&c, c.r.filters[0].match);
    cr_assert_str_eq(S(&c, m->service), "shop-*");
    cr_assert_str_eq(S(&c, m->exe), "/usr/bin/python3*");
    cr_assert_eq(m->kinds, (1u << DYNOBS_SPAN_KIND_CLIENT) | (1u << DYNOBS_SPAN_KIND_PRODUCER));
    cr_assert_str_eq(S(&c, m->method), "POST");
    cr_assert_str_eq(S(&c, m->server_address), "*.internal");
    cr_assert_str_eq(S(&c, m->url_path), "/api/*");
    cr_assert_str_eq(S(&c, m->db_operation), "SELECT");
    cr_assert_str_eq(S(&c, m->span_name), "GET *");
    cr_assert_eq(m->metric_name, 0);
    cr_assert_eq(m->cond_count, 2);
    const struct dynobs_rule_cond *k = &c.r.conds[m->cond_first];
    cr_assert_str_eq(S(&c, k[0].key), "tenant");
    cr_assert_str_eq(S(&c, k[0].value), "acme");
    cr_assert_eq(k[0].op, DYNOBS_COND_EQ);
    cr_assert_str_eq(S(&c, k[1].key), "region");
    cr_assert_eq(k[1].op, DYNOBS_COND_GLOB);
    free(c.buf);
}

Test(rules, lists_in_a_match_expand_into_entries)
{
    struct compiled c = compile_ok(HEAD "  sampling:\n"
                                        "    - match:\n"
                                        "        service.name: [a, b]\n"
                                        "        url.path: [/x, /y, /z]\n"
                                        "      sampler: {always_off: {}}\n"
                                        "    - sampler: {always_on: {}}\n");
    cr_assert_eq(c.r.nsamplers, 7);
    int seen[2][3] = {{0}};
    for (int i = 0; i < 6; i++) {
        const struct dynobs_rule_match *m = M(&c, c.r.samplers[i].match);
        cr_assert_eq(c.r.samplers[i].kind, DYNOBS_SAMPLER_ALWAYS_OFF);
        int s = S(&c, m->service)[0] - 'a', p = S(&c, m->url_path)[1] - 'x';
        cr_assert(s >= 0 && s < 2 && p >= 0 && p < 3);
        seen[s][p]++;
    }
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 3; p++)
            cr_assert_eq(seen[s][p], 1);
    cr_assert_eq(c.r.samplers[6].match, DYNOBS_RULES_NONE);
    free(c.buf);
}

/* ---- refusals: place, key path, message ---- */

Test(rules, errors_name_line_column_and_key_path)
{
    /* A bad ratio: line 7, column 16 (the value). */
    compile_err("file_format: \"1.0\"\n"
                "dynobs:\n"
                "  version: 1\n"
                "  sampling:\n"
                "  - sampler:\n"
                "      trace_id_ratio_based:\n"
                "        ratio: 1.5\n",
                7, 16, "dynobs.sampling[0].sampler.trace_id_ratio_based.ratio", "from 0 to 1");
    compile_err(HEAD "  sampling:\n"
                     "    - sampler: {parent_based: {root: {trace_id_ratio_based: "
                     "{ratio: -1}}}}\n",
                5, 69, "dynobs.sampling[0].sampler.parent_based.root.trace_id_ratio_based.ratio",
                "from 0 to 1");
    compile_err(HEAD "  routes:\n    - unmatched: clever\n", 5, 18, "dynobs.routes[0].unmatched",
                "unknown value 'clever'");
    compile_err(HEAD "  routes:\n    - max_path_segment_cardinality: 0\n", 5, 37,
                "dynobs.routes[0].max_path_segment_cardinality", "out of range 1..1000");
    compile_err(HEAD "  routes:\n    - max_path_segment_cardinality: \"10\"\n", 5, 37,
                "dynobs.routes[0].max_path_segment_cardinality", "expected an integer");
    compile_err(HEAD "  routes:\n    - patterns: [/a, b/c]\n", 5, 22,
                "dynobs.routes[0].patterns[1]", "starts with '/'");
    compile_err(HEAD "  routes:\n    - patterns: [\"/a/*/b\"]\n", 5, 18,
                "dynobs.routes[0].patterns[0]", "last segment");
    compile_err(HEAD "  routes:\n    - patterns: [\"/a/{id\"]\n", 5, 18,
                "dynobs.routes[0].patterns[0]", "{name}");
    compile_err(HEAD "  routes:\n    - colour: red\n", 5, 7, "dynobs.routes[0].colour",
                "unknown key 'colour'");
    compile_err(HEAD "  filters:\n    - match: {span.kind: sideways}\n      drop: all\n", 5, 26,
                "dynobs.filters[0].match.span.kind", "unknown span kind 'sideways'");
    compile_err(HEAD "  filters:\n    - drop: all\n", 5, 7, "dynobs.filters[0]",
                "'match' is required");
    compile_err(HEAD "  filters:\n    - match: {url.path: /x}\n      drop: [spans]\n", 6, 14,
                "dynobs.filters[0].drop[0]", "unknown signal 'spans'");
    compile_err(HEAD "  redaction:\n    - headers: [Accept, Authorization]\n", 5, 25,
                "dynobs.redaction[0].headers[1]", "never recorded");
    compile_err(HEAD "  redaction:\n    - headers: [Set-Cookie]\n", 5, 17,
                "dynobs.redaction[0].headers[0]", "never recorded");
    compile_err(HEAD "  redaction:\n    - sql: clean\n", 5, 12, "dynobs.redaction[0].sql",
                "scrub or raw");
    compile_err(HEAD "  redaction:\n    - query: {allowed: [a]}\n", 5, 24,
                "dynobs.redaction[0].query", "record: true");
    compile_err(HEAD "  redaction:\n    - attributes: [{value: x}]\n", 5, 20,
                "dynobs.redaction[0].attributes[0]", "'key' is required");
    compile_err(HEAD "  version: 1\n", 4, 3, "dynobs.version", "given twice");
    compile_err("file_format: \"1.0\"\ndynobs:\n  version: 2\n", 3, 12, "dynobs.version",
                "out of range 1..1");
    compile_err("file_format: \"1.0\"\ndynobs: {routes: []}\n", 2, 9, "dynobs",
                "'version' is required");
    compile_err("dynobs: {version: 1}\n", 1, 1, "", "'file_format' is required");
    compile_err("file_format: \"0.1\"\n", 1, 14, "file_format", "unsupported file_format");
    compile_err("file_format: \"1.0\"\nresource: {}\n", 2, 1, "resource", "unknown key");
    compile_err("file_format: \"1.0\"\ndisabled: maybe\n", 2, 11, "disabled", "true or false");
    compile_err("file_format: \"1.0\"\n"
                "tracer_provider:\n"
                "  sampler: {parent_based: {root: {parent_based: {}}}}\n",
                3, 35, "tracer_provider.sampler.parent_based.root", "cannot be nested");
    compile_err("file_format: \"1.0\"\n"
                "tracer_provider:\n"
                "  sampler:\n"
                "    parent_based:\n"
                "      remote_parent_not_sampled: {always_on: {}}\n",
                5, 34, "tracer_provider.sampler.parent_based.remote_parent_not_sampled",
                "not supported");
    compile_err("file_format: \"1.0\"\n"
                "tracer_provider:\n"
                "  sampler: {jaeger_remote: {}}\n",
                3, 13, "tracer_provider.sampler.jaeger_remote", "unknown key");
    compile_err("file_format: \"1.0\"\n"
                "tracer_provider:\n"
                "  sampler: {always_on: {}, always_off: {}}\n",
                3, 12, "tracer_provider.sampler", "exactly one sampler");
    compile_err("file_format: \"1.0\"\n"
                "meter_provider:\n"
                "  readers:\n"
                "    - periodic: {cardinality_limits: {histogram: 10}}\n",
                4, 50, "meter_provider.readers[0].periodic.cardinality_limits.histogram",
                "not supported");
    compile_err("file_format: \"1.0\"\n"
                "meter_provider:\n"
                "  readers:\n"
                "    - pull: {interval: 10}\n",
                4, 14, "meter_provider.readers[0].pull.interval", "unknown key");
    compile_err("file_format: \"1.0\"\n"
                "instrumentation/development:\n"
                "  general:\n"
                "    http:\n"
                "      server: {request_captured_headers: [cookie]}\n",
                5, 43,
                "instrumentation/development.general.http.server.request_captured_headers[0]",
                "never recorded");
    compile_err("file_format: \"1.0\"\nattribute_limits: {attribute_count_limit: 1.5}\n", 2,
                43, "attribute_limits.attribute_count_limit", "expected an integer");
}

Test(rules, errors_of_yaml_itself_and_of_limits)
{
    compile_err("file_format: \"1.0\"\ndynobs: [\n", 3, 1, "", "YAML:");
    compile_err("file_format: \"1.0\"\n---\nfile_format: \"1.0\"\n", 3, 1, "",
                "more than one YAML document");
    compile_err("", 0, 0, "", "empty file");
    /* 17 x 16 = 272 entries from one rule's lists. */
    char y[4096];
    size_t n = (size_t)snprintf(y, sizeof y, HEAD "  filters:\n    - match:\n"
                                                  "        service.name: [");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(y + n, sizeof y - n, "%ss%d", i ? ", " : "", i);
    n += (size_t)snprintf(y + n, sizeof y - n, "]\n        url.path: [");
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(y + n, sizeof y - n, "%s/p%d", i ? ", " : "", i);
    snprintf(y + n, sizeof y - n, "]\n      drop: all\n");
    compile_err(y, 5, 7, "dynobs.filters[0]", "more than 256");
    /* 257 entries over several rules. */
    n = (size_t)snprintf(y, sizeof y, HEAD "  filters:\n");
    for (int i = 0; i < 2; i++) {
        n += (size_t)snprintf(y + n, sizeof y - n, "    - match:\n        service.name: [");
        for (int k = 0; k < (i ? 2 : 64); k++)
            n += (size_t)snprintf(y + n, sizeof y - n, "%ss%d", k ? ", " : "", k);
        n += (size_t)snprintf(y + n, sizeof y - n, "]\n        url.path: [/a, /b, /c, /d]\n"
                                                   "      drop: all\n");
    }
    compile_err(y, 9, 7, "dynobs.filters[1]", "more than 256 filters entries");
}

Test(rules, error_format)
{
    struct dynobs_rules_error e = {.file = "r.yaml", .line = 7, .column = 16,
                                   .path = "dynobs.sampling[0].sampler", .message = "bad"};
    char buf[512];
    dynobs__rules_error_format(&e, buf, sizeof buf);
    cr_assert_str_eq(buf, "r.yaml:7:16: dynobs.sampling[0].sampler: bad");
    e.line = 0;
    dynobs__rules_error_format(&e, buf, sizeof buf);
    cr_assert_str_eq(buf, "r.yaml: dynobs.sampling[0].sampler: bad");
    e.path[0] = '\0';
    dynobs__rules_error_format(&e, buf, sizeof buf);
    cr_assert_str_eq(buf, "r.yaml: bad");
    e.file[0] = '\0';
    dynobs__rules_error_format(&e, buf, sizeof buf);
    cr_assert_str_eq(buf, "bad");
    char small[8];
    e.line = 3;
    snprintf(e.file, sizeof e.file, "long-name.yaml");
    dynobs__rules_error_format(&e, small, sizeof small);
    cr_assert_eq(strlen(small), 7);
}

Test(rules, compile_file_reports_unreadable_files)
{
    void *buf;
    size_t len;
    struct dynobs_rules_error e;
    cr_assert_eq(dynobs__rules_compile_file("/nonexistent/rules.yaml", &buf, &len, &e), -ENOENT);
    cr_assert_str_eq(e.file, "/nonexistent/rules.yaml");
    cr_assert(strstr(e.message, "cannot read"));
}

/* ---- open(): untrusted bytes ---- */

static const char *big_yaml = HEAD "  routes:\n"
                                   "    - match: {service.name: a}\n"
                                   "      patterns: [\"/u/{id}\"]\n"
                                   "  sampling:\n"
                                   "    - match: {attributes: {k: v}}\n"
                                   "      sampler: {trace_id_ratio_based: {ratio: 0.5}}\n"
                                   "  filters:\n"
                                   "    - match: {url.path: /h}\n"
                                   "      drop: all\n"
                                   "  redaction:\n"
                                   "    - headers: [accept]\n"
                                   "      query: {record: true, allowed: [q]}\n"
                                   "      attributes: [{key: k}]\n";

Test(rules, open_refuses_cut_tables)
{
    struct compiled c = compile_ok(big_yaml);
    /* Every cut, at a size the header can still be read at or not. */
    for (size_t l = 0; l < c.len; l++) {
        char *cut = malloc(l ? l : 1);
        memcpy(cut, c.buf, l);
        struct dynobs_rules r;
        cr_assert_eq(dynobs__rules_open(&r, cut, l), -EBADMSG, "cut at %zu accepted", l);
        free(cut);
    }
    free(c.buf);
}

/* Copies the table, lets f damage it, and expects open() to refuse it. */
static void refused_after(const struct compiled *c, void (*f)(char *buf, struct dynobs_rules *r),
                          const char *what)
{
    char *b = aligned_alloc(8, (c->len + 7) & ~(size_t)7);
    memcpy(b, c->buf, c->len);
    struct dynobs_rules r;
    cr_assert_eq(dynobs__rules_open(&r, b, c->len), 0);
    f(b, &r);
    cr_assert_eq(dynobs__rules_open(&r, b, c->len), -EBADMSG, "%s accepted", what);
    free(b);
}

#define HDR(b) ((struct dynobs_rules_hdr *)(void *)(b))
#define MUT(r, field) ((void *)(uintptr_t)(r)->field)

static void bad_magic(char *b, struct dynobs_rules *r)
{
    (void)r;
    HDR(b)->magic ^= 1;
}
static void bad_version(char *b, struct dynobs_rules *r)
{
    (void)r;
    HDR(b)->version = 2;
}
static void bad_total(char *b, struct dynobs_rules *r)
{
    (void)r;
    HDR(b)->total_bytes -= 8;
}
static void filter_match_out(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_filter *)MUT(r, filters))[0].match = r->nmatches;
}
static void list_ref_out(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((uint32_t *)MUT(r, lists))[0] = r->strings_bytes;
}
static void string_ref_out(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_match *)MUT(r, matches))[0].service = r->strings_bytes + 5;
}
static void pool_unterminated(char *b, struct dynobs_rules *r)
{
    b[HDR(b)->strings_off + r->strings_bytes - 1] = 'x';
}
static void pool_no_none(char *b, struct dynobs_rules *r)
{
    (void)r;
    b[HDR(b)->strings_off] = 'x';
}
static void cond_range_out(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_match *)MUT(r, matches))[1].cond_first = r->nconds;
}
static void route_list_out(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_routes *)MUT(r, routes))[0].patterns_count = r->nlists + 1;
}
static void replace_range_out(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_redact *)MUT(r, redacts))[0].replace_first = r->nreplaces;
}
static void bad_unmatched(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_routes *)MUT(r, routes))[0].unmatched = 9;
}
static void bad_kind(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_sampler *)MUT(r, samplers))[0].kind = 7;
}
static void bad_ratio(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_sampler *)MUT(r, samplers))[0].ratio = 1.5;
}
static void bad_threshold(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_sampler *)MUT(r, samplers))[0].threshold += 1;
}
static void bad_query(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_redact *)MUT(r, redacts))[0].query = 0;
}
static void bad_op(char *b, struct dynobs_rules *r)
{
    (void)b;
    ((struct dynobs_rule_cond *)MUT(r, conds))[0].op = 3;
}
static void misaligned_section(char *b, struct dynobs_rules *r)
{
    (void)r;
    HDR(b)->samplers_off += 4;
}
static void count_overflow(char *b, struct dynobs_rules *r)
{
    (void)r;
    HDR(b)->nmatches = 0x40000000u; /* x 48 bytes wraps 32 bits */
}
static void section_in_header(char *b, struct dynobs_rules *r)
{
    (void)r;
    HDR(b)->filters_off = 0;
}
static void source_unterminated(char *b, struct dynobs_rules *r)
{
    (void)r;
    memset(HDR(b)->source, 'x', sizeof HDR(b)->source);
}

Test(rules, open_refuses_references_out_of_range_and_bad_values)
{
    struct compiled c = compile_ok(big_yaml);
    cr_assert_eq(c.r.nmatches, 3); /* the route's, the sampler's, the filter's */
    cr_assert_eq(c.r.matches[1].cond_count, 1);
    refused_after(&c, bad_magic, "magic");
    refused_after(&c, bad_version, "version");
    refused_after(&c, bad_total, "total_bytes");
    refused_after(&c, filter_match_out, "match index");
    refused_after(&c, list_ref_out, "list reference");
    refused_after(&c, string_ref_out, "string reference");
    refused_after(&c, pool_unterminated, "pool without final NUL");
    refused_after(&c, pool_no_none, "pool without the none string");
    refused_after(&c, cond_range_out, "condition range");
    refused_after(&c, route_list_out, "list range");
    refused_after(&c, replace_range_out, "replacement range");
    refused_after(&c, bad_unmatched, "unmatched");
    refused_after(&c, bad_kind, "sampler kind");
    refused_after(&c, bad_ratio, "ratio");
    refused_after(&c, bad_threshold, "threshold");
    refused_after(&c, bad_query, "query");
    refused_after(&c, bad_op, "condition op");
    refused_after(&c, misaligned_section, "misaligned section");
    refused_after(&c, count_overflow, "count overflow");
    refused_after(&c, section_in_header, "section over the header");
    refused_after(&c, source_unterminated, "source");
    /* A buffer not aligned for the header. */
    char *b = malloc(c.len + 8);
    memcpy(b + 4, c.buf, c.len);
    struct dynobs_rules r;
    cr_assert_eq(dynobs__rules_open(&r, b + 4, c.len), -EBADMSG);
    free(b);
    free(c.buf);
}

/* ---- globs, matching, binding ---- */

static int g(const char *pat, const char *s)
{
    return dynobs__glob(pat, s, strlen(s));
}

Test(rules, glob)
{
    cr_assert(g("", ""));
    cr_assert(!g("", "a"));
    cr_assert(g("*", ""));
    cr_assert(g("*", "/any/thing"));
    cr_assert(g("/api/*", "/api/v1/users"));
    cr_assert(!g("/api/*", "/apx/v1"));
    cr_assert(g("?", "a"));
    cr_assert(!g("?", ""));
    cr_assert(!g("?", "ab"));
    cr_assert(g("a*b*c", "aXXbYYc"));
    cr_assert(g("a*b*c", "abc"));
    cr_assert(!g("a*b*c", "acb"));
    cr_assert(g("*.internal", "db.internal"));
    cr_assert(!g("*.internal", "db.internal.com"));
    cr_assert(g("GET *", "GET /x"));
    cr_assert(g("**a", "bba"));
    cr_assert(g("a*", "a"));
    cr_assert(!g("exact", "exactly"));
    cr_assert(g("x?z*", "xyz123"));
    /* n bytes, not up to a NUL: the fact "/healthzzz" cut at 8 is "/healthz". */
    cr_assert(dynobs__glob("/healthz", "/healthzzz", 8));
    cr_assert(!dynobs__glob("/healthz", "/healthz", 7));
}

struct attrs {
    const char *k[4], *v[4];
};

static int attr_lookup(void *ctx, const char *key, size_t klen, struct dynobs_rule_str *val)
{
    const struct attrs *a = ctx;
    for (int i = 0; i < 4 && a->k[i]; i++)
        if (strlen(a->k[i]) == klen && !memcmp(a->k[i], key, klen)) {
            val->p = a->v[i];
            val->n = strlen(a->v[i]);
            return 1;
        }
    return 0;
}

static struct dynobs_rule_str str(const char *s)
{
    return (struct dynobs_rule_str){s, s ? strlen(s) : 0};
}

Test(rules, match_semantics)
{
    struct compiled c = compile_ok(HEAD "  filters:\n"
                                        "    - match: {span.kind: [server, consumer], "
                                        "url.path: /api/*}\n"
                                        "      drop: [traces]\n"
                                        "    - match: {attributes: {tenant: acme, region: "
                                        "\"eu-*\"}}\n"
                                        "      drop: [logs]\n"
                                        "    - match: {service.name: shop, http.request.method: "
                                        "GET}\n"
                                        "      drop: [metrics]\n");
    uint32_t m0 = c.r.filters[0].match, m1 = c.r.filters[1].match, m2 = c.r.filters[2].match;
    struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_SERVER, .url_path = str("/api/x")};
    cr_assert(dynobs__rules_match(&c.r, m0, NULL, NULL, &f));
    f.kind = DYNOBS_SPAN_KIND_CONSUMER;
    cr_assert(dynobs__rules_match(&c.r, m0, NULL, NULL, &f));
    f.kind = DYNOBS_SPAN_KIND_CLIENT;
    cr_assert(!dynobs__rules_match(&c.r, m0, NULL, NULL, &f));
    f.kind = 0; /* unknown kind fails a kind condition */
    cr_assert(!dynobs__rules_match(&c.r, m0, NULL, NULL, &f));
    f.kind = DYNOBS_SPAN_KIND_SERVER;
    f.url_path = str(NULL); /* unknown path fails a path condition */
    cr_assert(!dynobs__rules_match(&c.r, m0, NULL, NULL, &f));
    f.url_path = str("/web/x");
    cr_assert(!dynobs__rules_match(&c.r, m0, NULL, NULL, &f));

    /* Attribute conditions: equality and glob, all must hold. */
    struct attrs a = {{"tenant", "region"}, {"acme", "eu-west"}};
    struct dynobs_rule_facts fa = {.attr = attr_lookup, .attr_ctx = &a};
    cr_assert(dynobs__rules_match(&c.r, m1, NULL, NULL, &fa));
    a.v[1] = "us-east";
    cr_assert(!dynobs__rules_match(&c.r, m1, NULL, NULL, &fa));
    a.v[1] = "eu-west";
    a.v[0] = "acme-corp"; /* EQ is not a prefix match */
    cr_assert(!dynobs__rules_match(&c.r, m1, NULL, NULL, &fa));
    a.v[0] = "acme";
    a.k[1] = NULL; /* region absent */
    cr_assert(!dynobs__rules_match(&c.r, m1, NULL, NULL, &fa));
    fa.attr = NULL;
    cr_assert(!dynobs__rules_match(&c.r, m1, NULL, NULL, &fa));

    /* service given here is checked; NULL means bind checked it. */
    struct dynobs_rule_facts fm = {.method = str("GET")};
    cr_assert(dynobs__rules_match(&c.r, m2, "shop", "/bin/x", &fm));
    cr_assert(!dynobs__rules_match(&c.r, m2, "cart", "/bin/x", &fm));
    cr_assert(dynobs__rules_match(&c.r, m2, NULL, NULL, &fm));
    fm.method = str("POST");
    cr_assert(!dynobs__rules_match(&c.r, m2, "shop", NULL, &fm));
    /* No match always holds; an index out of range never does. */
    cr_assert(dynobs__rules_match(&c.r, DYNOBS_RULES_NONE, NULL, NULL, NULL));
    cr_assert(!dynobs__rules_match(&c.r, c.r.nmatches, NULL, NULL, &fm));
    free(c.buf);
}

Test(rules, bind_and_first_match_wins_per_section)
{
    struct compiled c = compile_ok(HEAD "  routes:\n"
                                        "    - match: {service.name: shop}\n"
                                        "      unmatched: path\n"
                                        "    - match: {process.executable.path: \"*/python3\"}\n"
                                        "      unmatched: wildcard\n"
                                        "    - unmatched: heuristic\n"
                                        "  sampling:\n"
                                        "    - match: {service.name: \"sh*\", url.path: /slow}\n"
                                        "      sampler: {always_on: {}}\n"
                                        "    - match: {service.name: cart}\n"
                                        "      sampler: {always_off: {}}\n"
                                        "  filters:\n"
                                        "    - match: {url.path: /healthz, service.name: shop}\n"
                                        "      drop: []\n"
                                        "    - match: {url.path: /healthz}\n"
                                        "      drop: [traces]\n"
                                        "  redaction:\n"
                                        "    - match: {span.kind: client}\n"
                                        "      sql: raw\n");
    struct dynobs_rules_proc p;
    dynobs__rules_bind(&p, &c.r, "shop", "/usr/bin/python3");
    cr_assert_eq(p.n[DYNOBS_RS_ROUTES], 3);
    cr_assert_eq(p.n[DYNOBS_RS_SAMPLERS], 1);
    cr_assert_eq(p.n[DYNOBS_RS_FILTERS], 2);
    cr_assert_eq(p.n[DYNOBS_RS_REDACTS], 1);
    struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_SERVER, .url_path = str("/healthz")};
    cr_assert_eq(dynobs__rules_routes(&p, &f), &c.r.routes[0]);
    /* The exception before the broader drop wins for shop. */
    cr_assert_eq(dynobs__rules_filter(&p, &f), &c.r.filters[0]);
    cr_assert_null(dynobs__rules_sampler(&p, &f));
    f.url_path = str("/slow");
    cr_assert_eq(dynobs__rules_sampler(&p, &f), &c.r.samplers[0]);
    cr_assert_null(dynobs__rules_redact(&p, &f));
    f.kind = DYNOBS_SPAN_KIND_CLIENT;
    cr_assert_eq(dynobs__rules_redact(&p, &f), &c.r.redacts[0]);

    /* Another process: the shop entries are gone, python's stays. */
    dynobs__rules_bind(&p, &c.r, "cart", "/usr/bin/python3");
    cr_assert_eq(p.n[DYNOBS_RS_ROUTES], 2);
    f.url_path = str("/healthz");
    cr_assert_eq(dynobs__rules_routes(&p, &f), &c.r.routes[1]);
    cr_assert_eq(dynobs__rules_filter(&p, &f), &c.r.filters[1]);
    cr_assert_eq(dynobs__rules_sampler(&p, &f), &c.r.samplers[1]);

    /* Unknown service and executable: entries naming them are left out. */
    dynobs__rules_bind(&p, &c.r, NULL, NULL);
    cr_assert_eq(p.n[DYNOBS_RS_ROUTES], 1);
    cr_assert_eq(p.n[DYNOBS_RS_SAMPLERS], 0);
    cr_assert_eq(p.n[DYNOBS_RS_FILTERS], 1);
    cr_assert_eq(dynobs__rules_routes(&p, &f), &c.r.routes[2]);

    /* No table (generation 0): every lookup finds nothing. */
    dynobs__rules_bind(&p, NULL, "shop", NULL);
    cr_assert_null(dynobs__rules_routes(&p, &f));
    cr_assert_null(dynobs__rules_filter(&p, &f));
    free(c.buf);
}
