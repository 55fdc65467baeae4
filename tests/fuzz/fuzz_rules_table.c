/* The compiled-table reader on arbitrary bytes, as a shim meets a table
 * in shared memory. Properties: no crash; a table open() accepts can be
 * bound and looked up with any facts, and every entry found lies inside
 * its section. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "fuzz.h"
#include "rules.h"

static int attr(void *ctx, const char *key, size_t klen, struct dynobs_rule_str *val)
{
    (void)ctx;
    /* Every attribute exists; its value is its key, so that both equal
     * and different values are met. */
    val->p = key;
    val->n = klen;
    return klen % 2;
}

#define INSIDE(p, base, n) ((p) == NULL || ((p) >= (base) && (p) < (base) + (n)))

static void lookups(const struct dynobs_rules_proc *p, const struct dynobs_rule_facts *f)
{
    const struct dynobs_rules *r = p->r;
    CHECK(INSIDE(dynobs__rules_routes(p, f), r->routes, r->nroutes));
    CHECK(INSIDE(dynobs__rules_sampler(p, f), r->samplers, r->nsamplers));
    CHECK(INSIDE(dynobs__rules_filter(p, f), r->filters, r->nfilters));
    CHECK(INSIDE(dynobs__rules_redact(p, f), r->redacts, r->nredacts));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Tables are mapped page-aligned; the copy is aligned likewise. */
    void *buf = aligned_alloc(8, (size + 8) & ~(size_t)7);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct dynobs_rules r;
    if (dynobs__rules_open(&r, buf, size) == 0) {
        static const char *const services[] = {"shop", "", NULL};
        static const char *const exes[] = {"/usr/bin/python3", NULL};
        for (int s = 0; s < 3; s++) {
            for (int e = 0; e < 2; e++) {
                struct dynobs_rules_proc p;
                dynobs__rules_bind(&p, &r, services[s], exes[e]);
                for (int k = 0; k < DYNOBS_RS_COUNT; k++)
                    CHECK(p.n[k] <= DYNOBS_RULES_MAX_ENTRIES);
                struct dynobs_rule_facts f = {0};
                lookups(&p, &f);
                f.kind = DYNOBS_SPAN_KIND_SERVER;
                f.method = (struct dynobs_rule_str){"GET", 3};
                f.url_path = (struct dynobs_rule_str){"/healthz", 8};
                f.server_address = (struct dynobs_rule_str){"db.internal", 11};
                f.span_name = (struct dynobs_rule_str){"GET /users/{id}", 15};
                f.attr = attr;
                lookups(&p, &f);
                f.kind = 7;
                f.db_operation = (struct dynobs_rule_str){"SELECT", 6};
                f.metric_name = (struct dynobs_rule_str){"http.server.request.duration", 28};
                lookups(&p, &f);
            }
        }
        /* Every string a reader can be handed is terminated in the pool. */
        for (uint32_t i = 0; i < r.nlists; i++)
            CHECK(r.lists[i] < r.strings_bytes);
        for (uint32_t i = 0; i < r.nmatches; i++)
            (void)dynobs__rules_match(&r, i, "shop", "/bin/sh", NULL);
    }
    free(buf);
    return 0;
}
