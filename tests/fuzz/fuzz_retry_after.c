/* Retry-After parsing on arbitrary header lines, which are not
 * NUL-terminated (the input is copied into a buffer of exactly its size,
 * so AddressSanitizer sees any over-read). Properties: no crash; the
 * result is -1 or a number of seconds, and a number only for a line that
 * starts with "Retry-After:" in any case and has a value after it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "otlp_headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    long s = dx_retry_after_parse(line, size);
    CHECK(s >= -1);
    if (s >= 0)
        CHECK(size > 12 && !strncasecmp(line, "Retry-After:", 12));
    free(line);
    return 0;
}
