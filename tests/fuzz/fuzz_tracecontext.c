/* W3C Trace Context and Baggage parsing on arbitrary bytes. Properties:
 * no crash; a parsed traceparent formats back to a version-00 value that
 * parses to the same ids and flags; a parsed tracestate is its own normal
 * form (parsing the output again gives the same bytes) and fits its
 * buffer; so is a normalised baggage list, at every room given. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "baggage.h"
#include "tracecontext.h"
#include "fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct dynobs_traceparent tp, again;
    if (dynobs__traceparent_parse(s, size, &tp) == 0) {
        char buf[56];
        CHECK(dynobs__traceparent_format(tp.trace_id, tp.parent_id, tp.flags, buf,
                                          sizeof buf) == 55);
        CHECK(dynobs__traceparent_parse(buf, 55, &again) == 0);
        CHECK(!memcmp(&tp, &again, sizeof tp));
        CHECK(!dynobs__id_is_zero(tp.trace_id, 16) && !dynobs__id_is_zero(tp.parent_id, 8));
    }
    char out[600], out2[600];
    for (size_t cap = 1; cap <= sizeof out; cap = cap * 4 + 3) {
        int n = dynobs__tracestate_parse(s, size, out, cap);
        if (n < 0)
            continue;
        CHECK((size_t)n < cap && out[n] == '\0');
        int m = dynobs__tracestate_parse(out, (size_t)n, out2, sizeof out2);
        CHECK(m == n && !memcmp(out, out2, (size_t)n));
    }
    static char bag[DYNOBS_BAGGAGE_MAX], bag2[DYNOBS_BAGGAGE_MAX];
    for (size_t cap = 0; cap <= sizeof bag; cap = cap * 8 + 5) {
        int n = dynobs__baggage_normalize(s, size, bag, cap);
        if (n < 0)
            break; /* malformed at every room */
        CHECK((size_t)n <= cap);
        int m = dynobs__baggage_normalize(bag, (size_t)n, bag2, sizeof bag2);
        CHECK(m == n && !memcmp(bag, bag2, (size_t)n));
    }
    return 0;
}
