/* The SQL helpers on arbitrary text. Properties: no crash; the scrubbed
 * text fits its buffer, is NUL-terminated and holds no quote (no string
 * literal survives); the operation and table names fit their buffers; the comment
 * position is inside the statement. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"
#include "fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = malloc(size + 1);
    memcpy(q, data, size);
    q[size] = '\0';
    size_t len = strlen(q);
    char out[512], op[32], table[128];
    size_t n = dynobs__sql_scrub(q, out, sizeof out);
    CHECK(n < sizeof out && out[n] == '\0' && strlen(out) == n);
    /* No string literal survives, terminated or not (the scrubbed text
     * is not a fixed point: a literal turned into '?' can change how the
     * next token reads, which is fine for a display string). */
    CHECK(!memchr(out, '\'', n));
    dynobs__sql_operation(q, op, sizeof op);
    CHECK(strlen(op) < sizeof op);
    dynobs__sql_collection(q, table, sizeof table);
    CHECK(strlen(table) < sizeof table);
    (void)dynobs__sql_has_comment(q);
    CHECK(dynobs__sql_comment_at(q, len) <= len);
    free(q);
    return 0;
}
