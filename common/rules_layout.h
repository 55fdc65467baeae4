/*
 * The compiled rules table: what the exporter makes of a rules file
 * (rules/README.md) and publishes as DIR/.rules.<generation>, and what
 * every shim maps read-only. Only fixed-width types and offsets, so that
 * the same bytes mean the same thing in every process; the reader
 * (rules_table.c) validates every offset, count and string reference
 * before anything is used, as for a segment.
 *
 *   offset 0        struct dynobs_rules_hdr
 *   strings_off     the string pool: NUL-terminated strings. A string
 *                   reference is an offset into the pool; 0 means "none"
 *                   (the pool starts with a NUL byte).
 *   lists_off       uint32_t string references; a list is (first, count)
 *   matches_off     struct dynobs_rule_match[nmatches]
 *   conds_off       struct dynobs_rule_cond[nconds]
 *   routes_off      struct dynobs_rule_routes[nroutes]        (section)
 *   samplers_off    struct dynobs_rule_sampler[nsamplers]     (section)
 *   filters_off     struct dynobs_rule_filter[nfilters]       (section)
 *   redacts_off     struct dynobs_rule_redact[nredacts]       (section)
 *   replaces_off    struct dynobs_rule_replace[nreplaces]
 *
 * Each section is an ordered list; for a span (or metric, or log) the
 * first entry of a section whose match holds decides that section's
 * action. Sections are independent: a span can take its route from one
 * entry, its sampler from another and be redacted by a third.
 */
#ifndef DYNOBS_COMMON_RULES_LAYOUT_H
#define DYNOBS_COMMON_RULES_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define DYNOBS_RULES_MAGIC 0x31454c55524f4e59ULL /* "YNORULE1" read as LE */
#define DYNOBS_RULES_VERSION 1u
#define DYNOBS_RULES_MAX_BYTES (4u << 20)
/* Entries per section, and attribute conditions per match. */
#define DYNOBS_RULES_MAX_ENTRIES 256u
#define DYNOBS_RULES_MAX_CONDS 16u
#define DYNOBS_RULES_MAX_LIST 64u   /* strings in one list */
#define DYNOBS_RULES_MAX_STRING 1024u /* bytes of one string, NUL excluded */

#define DYNOBS_RULES_NONE UINT32_MAX /* "no match": an entry that always applies */

struct dynobs_rules_hdr {
    uint64_t magic;                 /*   0: written last */
    uint32_t version;               /*   8 */
    uint32_t total_bytes;           /*  12 */
    uint64_t generation;            /*  16: the exporter's count of published tables */
    uint32_t strings_off, strings_bytes; /*  24 */
    uint32_t lists_off, nlists;     /*  32: nlists counts uint32_t references */
    uint32_t matches_off, nmatches; /*  40 */
    uint32_t conds_off, nconds;     /*  48 */
    uint32_t routes_off, nroutes;   /*  56 */
    uint32_t samplers_off, nsamplers; /* 64 */
    uint32_t filters_off, nfilters; /*  72 */
    uint32_t redacts_off, nredacts; /*  80 */
    uint32_t replaces_off, nreplaces; /* 88 */
    /* Settings of the whole file; 0 means "the built-in default or the
     * environment's value". */
    uint32_t cardinality_limit;     /*  96: attribute sets per metric and service */
    uint32_t span_name_limit;       /* 100: distinct span names per service in metrics */
    uint32_t attr_value_limit;      /* 104: attribute_limits.attribute_value_length_limit */
    uint32_t attr_count_limit;      /* 108: attribute_limits.attribute_count_limit */
    uint32_t tail_decision_wait_ms; /* 112: how long the exporter holds a trace */
    uint32_t tail_num_traces;       /* 116: traces the exporter holds at most */
    uint32_t source_hash;           /* 120: of the rules file's bytes (informational) */
    uint32_t reserved0;             /* 124 */
    char source[256];               /* 128: the rules file's path, NUL-terminated */
};                                  /* 384 */

/* A match: every field that is set must hold; an unset one (0) matches
 * anything. Globs have '*' (any run of bytes, '/' included) and '?' (one
 * byte); everything else is literal. */
struct dynobs_rule_match {
    uint32_t service;        /*  0: glob on service.name */
    uint32_t exe;            /*  4: glob on process.executable.path */
    uint32_t method;         /*  8: glob on http.request.method */
    uint32_t server_address; /* 12: glob on server.address */
    uint32_t url_path;       /* 16: glob on url.path */
    uint32_t db_operation;   /* 20: glob on db.operation.name */
    uint32_t span_name;      /* 24: glob on the span's name */
    uint32_t metric_name;    /* 28: glob on a metric's name (filters of metrics) */
    uint32_t cond_first;     /* 32: attribute conditions, all of which must hold */
    uint32_t cond_count;     /* 36 */
    uint8_t kinds;           /* 40: bits (1 << DYNOBS_SPAN_KIND_*); 0 = any kind */
    uint8_t reserved[7];     /* 41 */
};                           /* 48 */

#define DYNOBS_COND_EQ 1u   /* the attribute's value equals `value` */
#define DYNOBS_COND_GLOB 2u /* the attribute's value matches the glob `value` */

struct dynobs_rule_cond {
    uint32_t key;   /* attribute key, exact */
    uint32_t value; /* string compared or glob */
    uint8_t op;     /* DYNOBS_COND_* */
    uint8_t reserved[3];
};                  /* 12 */

/* What a path that no pattern matches becomes (the OpenTelemetry eBPF
 * Instrumentation's `unmatched`). */
enum dynobs_route_unmatched {
    DYNOBS_ROUTE_HEURISTIC = 1,       /* ids become {id}, then the segment trie folds */
    DYNOBS_ROUTE_LOW_CARDINALITY = 2, /* heuristic, first segment kept, the rest one "*" segment */
    DYNOBS_ROUTE_PATH = 3,            /* the path itself (still capped by the trie) */
    DYNOBS_ROUTE_WILDCARD = 4,        /* the route "/" followed by "*" */
};

struct dynobs_rule_routes {
    uint32_t match;              /*  0: index into matches, or DYNOBS_RULES_NONE */
    uint32_t patterns_first;     /*  4: list of route patterns ("/users/{id}", "/users/:id") */
    uint32_t patterns_count;     /*  8 */
    uint32_t ignored_first;      /* 12: list of patterns whose requests get no server span */
    uint32_t ignored_count;      /* 16 */
    uint8_t unmatched;           /* 20: enum dynobs_route_unmatched */
    uint8_t reserved;            /* 21 */
    uint16_t max_segment_values; /* 22: distinct values a segment keeps before {id} */
};                               /* 24 */

#define DYNOBS_KEEP_ERRORS 0x1u /* keep whole traces that hold an error span */
#define DYNOBS_KEEP_SLOW 0x2u   /* ... or a span at least keep_slower_ms long */

struct dynobs_rule_sampler {
    uint32_t match;          /*  0 */
    uint8_t kind;            /*  4: enum dynobs_sampler_kind */
    uint8_t keep;            /*  5: DYNOBS_KEEP_* (tail sampling) */
    uint16_t reserved;       /*  6 */
    uint32_t keep_slower_ms; /*  8 */
    uint32_t reserved1;      /* 12 */
    double ratio;            /* 16: for the ratio kinds, 0..1 */
    uint64_t threshold;      /* 24: 56-bit rejection threshold of ratio (sampler.h) */
};                           /* 32 */

#define DYNOBS_DROP_TRACES 0x1u  /* spans are not exported (metrics still count them) */
#define DYNOBS_DROP_METRICS 0x2u /* the request is not counted in metrics */
#define DYNOBS_DROP_LOGS 0x4u    /* log records are not exported */

struct dynobs_rule_filter {
    uint32_t match; /* 0 */
    uint32_t drop;  /* 4: DYNOBS_DROP_*; 0 keeps (an exception before a broader drop) */
};                  /* 8 */

#define DYNOBS_QUERY_OMIT 1u   /* url.query is not recorded (the default) */
#define DYNOBS_QUERY_REDACT 2u /* recorded, values replaced by REDACTED except allowed keys */

#define DYNOBS_SQL_SCRUB 1u /* literals replaced by '?' (the default) */
#define DYNOBS_SQL_RAW 2u   /* the statement as sent */

struct dynobs_rule_redact {
    uint32_t match;          /*  0 */
    uint32_t headers_first;  /*  4: recorded headers allowed (lower case); */
    uint32_t headers_count;  /*  8:   authorization, cookie, set-cookie never */
    uint32_t query_first;    /* 12: query keys whose values are kept */
    uint32_t query_count;    /* 16 */
    uint32_t replace_first;  /* 20: into replaces */
    uint32_t replace_count;  /* 24 */
    uint8_t headers_set;     /* 28: 1: the list above replaces the default */
    uint8_t query;           /* 29: DYNOBS_QUERY_* */
    uint8_t sql;             /* 30: DYNOBS_SQL_* */
    uint8_t reserved;        /* 31 */
};                           /* 32 */

/* A string attribute whose key matches `key` and value matches `value`
 * (unset: any) is recorded as `with`. */
struct dynobs_rule_replace {
    uint32_t key;   /* glob */
    uint32_t value; /* glob, or 0 */
    uint32_t with;  /* the replacement ("REDACTED" when the file says none) */
};                  /* 12 */

#define DYNOBS_RULES_AT(type, field, off) \
    _Static_assert(offsetof(type, field) == (off), #type "." #field " moved")
_Static_assert(sizeof(struct dynobs_rules_hdr) == 384, "rules header");
DYNOBS_RULES_AT(struct dynobs_rules_hdr, generation, 16);
DYNOBS_RULES_AT(struct dynobs_rules_hdr, replaces_off, 88);
DYNOBS_RULES_AT(struct dynobs_rules_hdr, cardinality_limit, 96);
DYNOBS_RULES_AT(struct dynobs_rules_hdr, source, 128);
_Static_assert(sizeof(struct dynobs_rule_match) == 48, "rule match");
DYNOBS_RULES_AT(struct dynobs_rule_match, kinds, 40);
_Static_assert(sizeof(struct dynobs_rule_cond) == 12, "rule condition");
_Static_assert(sizeof(struct dynobs_rule_routes) == 24, "routes entry");
_Static_assert(sizeof(struct dynobs_rule_sampler) == 32, "sampler entry");
DYNOBS_RULES_AT(struct dynobs_rule_sampler, ratio, 16);
_Static_assert(sizeof(struct dynobs_rule_filter) == 8, "filter entry");
_Static_assert(sizeof(struct dynobs_rule_redact) == 32, "redaction entry");
_Static_assert(sizeof(struct dynobs_rule_replace) == 12, "replacement");
#undef DYNOBS_RULES_AT

#endif
