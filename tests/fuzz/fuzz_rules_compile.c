/* The rules compiler on arbitrary YAML. Properties: no crash, no leak;
 * a refusal says why (a message, a place inside the input); a table it
 * makes is one that every reader accepts, with the counts it reports. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *table = NULL;
    size_t len = 0;
    struct dynobs_rules_error e;
    int rc = dynobs__rules_compile((const char *)data, size, "fuzz.yaml", &table, &len, &e);
    if (rc < 0) {
        CHECK(table == NULL && len == 0);
        CHECK(e.message[0] != '\0');
        CHECK(memchr(e.path, '\0', sizeof e.path) && memchr(e.message, '\0', sizeof e.message));
        char msg[1024];
        dynobs__rules_error_format(&e, msg, sizeof msg);
        CHECK(strlen(msg) < sizeof msg);
        return 0;
    }
    struct dynobs_rules r;
    CHECK(dynobs__rules_open(&r, table, len) == 0);
    CHECK(r.hdr->total_bytes == len && r.hdr->generation == 0);
    CHECK(r.nroutes <= DYNOBS_RULES_MAX_ENTRIES && r.nsamplers <= DYNOBS_RULES_MAX_ENTRIES &&
          r.nfilters <= DYNOBS_RULES_MAX_ENTRIES && r.nredacts <= DYNOBS_RULES_MAX_ENTRIES);
    free(table);
    return 0;
}
