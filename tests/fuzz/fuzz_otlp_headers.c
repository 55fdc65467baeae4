/* OTEL_EXPORTER_OTLP_HEADERS parsing on arbitrary text. Properties: no
 * crash or over-read; every call moves the cursor forward (so the loop
 * ends) and never past the text; a header line fits its buffer, has a
 * non-empty key followed by ": ", and holds no CR or LF (which would end
 * the header); there are never more entries than commas plus one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "otlp_headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The variable is a C string: cut at the first NUL. */
    char *spec = malloc(size + 1);
    if (!spec)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';
    size_t len = strlen(spec), commas = 0;
    for (size_t i = 0; i < len; i++)
        commas += spec[i] == ',';
    char line[DX_HEADER_LINE_MAX];
    const char *cursor = spec;
    size_t entries = 0;
    int rc;
    while ((rc = dx_otlp_header_next(&cursor, line)) != 0) {
        CHECK(cursor > spec && cursor <= spec + len);
        size_t n = strlen(line);
        CHECK(n < DX_HEADER_LINE_MAX);
        if (rc > 0) {
            /* The key may itself hold ": ", so look past its first byte. */
            CHECK(n >= 3 && strstr(line + 1, ": "));
            CHECK(!memchr(line, '\r', n) && !memchr(line, '\n', n));
        }
        CHECK(++entries <= commas + 1);
    }
    CHECK(cursor == spec + len);
    free(spec);
    return 0;
}
