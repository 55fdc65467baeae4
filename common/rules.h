/*
 * Rules: compiled from a YAML file by the exporter (rules_compile.c, which
 * links libyaml and allocates), read by the shim and the exporter from
 * the compiled table (rules_table.c: no allocation, no locks, no system
 * calls, safe on any hot path). The file's syntax and meaning are in
 * rules/README.md; the table's layout in rules_layout.h.
 */
#ifndef DYNOBS_COMMON_RULES_H
#define DYNOBS_COMMON_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "rules_layout.h"

/* ---- compiling (exporter, tools) ---- */

/* Where and why a file was refused: "FILE:LINE:COLUMN: KEY.PATH: MESSAGE". */
struct dynobs_rules_error {
    char file[256];
    unsigned line, column; /* 1-based; 0 when the error is not at a place */
    char path[256];        /* the key path, e.g. "dynobs.routes[1].patterns[0]" */
    char message[256];
};

/* Compiles len bytes of YAML named `file` (for messages) into a table
 * allocated with malloc (*out, *out_len; generation 0, the publisher sets
 * it). Returns 0, or -EINVAL with *err filled (nothing allocated). */
int dynobs__rules_compile(const char *yaml, size_t len, const char *file, void **out,
                          size_t *out_len, struct dynobs_rules_error *err)
    __attribute__((warn_unused_result));
/* The same for a file: -errno when it cannot be read (err says so too). */
int dynobs__rules_compile_file(const char *path, void **out, size_t *out_len,
                               struct dynobs_rules_error *err)
    __attribute__((warn_unused_result));
/* Writes "FILE:LINE:COLUMN: PATH: MESSAGE" (parts that are unset left out). */
void dynobs__rules_error_format(const struct dynobs_rules_error *e, char *buf, size_t cap);

/* ---- reading (shim, exporter) ---- */

/* A validated table: pointers into the caller's bytes. */
struct dynobs_rules {
    const struct dynobs_rules_hdr *hdr;
    const char *strings;
    uint32_t strings_bytes;
    const uint32_t *lists;
    uint32_t nlists;
    const struct dynobs_rule_match *matches;
    uint32_t nmatches;
    const struct dynobs_rule_cond *conds;
    uint32_t nconds;
    const struct dynobs_rule_routes *routes;
    uint32_t nroutes;
    const struct dynobs_rule_sampler *samplers;
    uint32_t nsamplers;
    const struct dynobs_rule_filter *filters;
    uint32_t nfilters;
    const struct dynobs_rule_redact *redacts;
    uint32_t nredacts;
    const struct dynobs_rule_replace *replaces;
    uint32_t nreplaces;
};

/* Validates len bytes (untrusted: every offset, count, string reference,
 * list, enum and ratio is checked) and fills *r. The bytes must stay
 * mapped and unchanged while r is used. Returns 0 or -EBADMSG. */
int dynobs__rules_open(struct dynobs_rules *r, const void *buf, size_t len)
    __attribute__((warn_unused_result));

/* A string reference of a validated table ("" for 0). */
static inline const char *dynobs__rules_str(const struct dynobs_rules *r, uint32_t ref)
{
    return r->strings + ref;
}
/* The i-th string of a list starting at `first`. */
static inline const char *dynobs__rules_list(const struct dynobs_rules *r, uint32_t first,
                                             uint32_t i)
{
    return r->strings + r->lists[first + i];
}

/* What is known of a span (or metric, or log record) when a section is
 * consulted. Strings are (pointer, length), not NUL-terminated; a NULL
 * pointer is "unknown", and a match that names that field fails. */
struct dynobs_rule_str {
    const char *p;
    size_t n;
};
struct dynobs_rule_facts {
    int kind; /* DYNOBS_SPAN_KIND_*, 0 unknown (metrics, logs) */
    struct dynobs_rule_str method, server_address, url_path, db_operation, span_name,
        metric_name;
    /* Attribute conditions look values up here; NULL: every condition
     * fails. Returns 1 with *val set when the attribute is a string. */
    int (*attr)(void *ctx, const char *key, size_t klen, struct dynobs_rule_str *val);
    void *attr_ctx;
};

/* A table seen from one process: the entries of each section whose
 * service and executable conditions hold for it, in file order, so that
 * a request checks only what can still differ. */
enum dynobs_rules_section {
    DYNOBS_RS_ROUTES = 0,
    DYNOBS_RS_SAMPLERS,
    DYNOBS_RS_FILTERS,
    DYNOBS_RS_REDACTS,
    DYNOBS_RS_COUNT
};
struct dynobs_rules_proc {
    const struct dynobs_rules *r;
    uint16_t n[DYNOBS_RS_COUNT];
    uint16_t idx[DYNOBS_RS_COUNT][DYNOBS_RULES_MAX_ENTRIES];
};

void dynobs__rules_bind(struct dynobs_rules_proc *p, const struct dynobs_rules *r,
                        const char *service, const char *exe);

/* Does match m (an index, or DYNOBS_RULES_NONE) hold for these facts?
 * service and exe NULL: those conditions are taken as already checked
 * (dynobs__rules_bind). */
int dynobs__rules_match(const struct dynobs_rules *r, uint32_t m, const char *service,
                        const char *exe, const struct dynobs_rule_facts *f);

/* The first entry of each section that holds for f, or NULL. */
const struct dynobs_rule_routes *dynobs__rules_routes(const struct dynobs_rules_proc *p,
                                                      const struct dynobs_rule_facts *f);
const struct dynobs_rule_sampler *dynobs__rules_sampler(const struct dynobs_rules_proc *p,
                                                        const struct dynobs_rule_facts *f);
const struct dynobs_rule_filter *dynobs__rules_filter(const struct dynobs_rules_proc *p,
                                                      const struct dynobs_rule_facts *f);
const struct dynobs_rule_redact *dynobs__rules_redact(const struct dynobs_rules_proc *p,
                                                      const struct dynobs_rule_facts *f);

/* Glob match of n bytes of s ('*' any run, '?' one byte). */
int dynobs__glob(const char *pat, const char *s, size_t n);

#endif
