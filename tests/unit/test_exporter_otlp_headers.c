/* The header texts of the OTLP transport: OTEL_EXPORTER_OTLP_HEADERS
 * entries and a response's Retry-After. */
#include <criterion/criterion.h>
#include <string.h>

#include "otlp_headers.h"

/* Every result of parsing spec, as "+line" or "-bad entry", joined by '|'. */
static const char *all(const char *spec)
{
    static char out[8192];
    char line[DX_HEADER_LINE_MAX];
    const char *cursor = spec;
    int rc;
    out[0] = '\0';
    while ((rc = dx_otlp_header_next(&cursor, line)) != 0) {
        if (out[0])
            strcat(out, "|");
        strcat(out, rc > 0 ? "+" : "-");
        strcat(out, line);
    }
    return out;
}

Test(exporter_otlp_headers, entries)
{
    cr_assert_str_eq(all(""), "");
    cr_assert_str_eq(all("api-key=secret"), "+api-key: secret");
    cr_assert_str_eq(all("a=1,b=2"), "+a: 1|+b: 2");
    /* Spaces before a key are dropped, empty entries skipped. */
    cr_assert_str_eq(all(" a=1,, b=2,"), "+a: 1|+b: 2");
    /* Only the first '=' separates: the value keeps the others. */
    cr_assert_str_eq(all("Authorization=Basic dXNlcg=="), "+Authorization: Basic dXNlcg==");
    cr_assert_str_eq(all("empty="), "+empty: ");
}

Test(exporter_otlp_headers, values_are_percent_decoded)
{
    cr_assert_str_eq(all("x=a%20b%2Cc"), "+x: a b,c");
    cr_assert_str_eq(all("x=%zz%4"), "+x: %zz%4"); /* not escapes: kept */
    cr_assert_str_eq(all("x=100%"), "+x: 100%");
    /* A decoded CR or LF must not start a header of its own. */
    cr_assert_str_eq(all("x=a%0d%0aInjected: 1"), "+x: aInjected: 1");
}

Test(exporter_otlp_headers, bad_entries_are_reported)
{
    cr_assert_str_eq(all("novalue,a=1"), "-novalue|+a: 1");
    cr_assert_str_eq(all("=v,b=2"), "-=v|+b: 2");
    cr_assert_str_eq(all("   "), "-");
    /* A line break in a key would split the header line (found by
     * fuzz_otlp_headers). */
    cr_assert_str_eq(all("a\nb=1,c=2"), "-a\nb=1|+c: 2");
}

Test(exporter_otlp_headers, long_entries_are_cut_at_the_line)
{
    static char spec[3 * DX_HEADER_LINE_MAX];
    memset(spec, 'k', sizeof spec - 1);
    spec[DX_HEADER_LINE_MAX + 100] = '=';
    char line[DX_HEADER_LINE_MAX];
    const char *cursor = spec;
    cr_assert_eq(dx_otlp_header_next(&cursor, line), 1);
    cr_assert_eq(strlen(line), DX_HEADER_LINE_MAX - 1);
    cr_assert_eq(memcmp(line + DX_HEADER_LINE_MAX - 3, ": ", 2), 0);
    cr_assert_eq(*cursor, '\0');
    cr_assert_eq(dx_otlp_header_next(&cursor, line), 0);
}

static long retry_after(const char *s)
{
    return dx_retry_after_parse(s, strlen(s));
}

Test(exporter_otlp_headers, retry_after)
{
    cr_assert_eq(retry_after("Retry-After: 7\r\n"), 7);
    cr_assert_eq(retry_after("retry-after:120\r\n"), 120);
    cr_assert_eq(retry_after("RETRY-AFTER:   0\r\n"), 0);
    /* A date is not honoured, nor anything that is not seconds. */
    cr_assert_eq(retry_after("Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"), -1);
    cr_assert_eq(retry_after("Retry-After: -5\r\n"), -1);
    cr_assert_eq(retry_after("Retry-After:\r\n"), -1);
    cr_assert_eq(retry_after("Retry-After:"), -1);
    cr_assert_eq(retry_after("Content-Type: text/plain\r\n"), -1);
    cr_assert_eq(retry_after("X-Retry-After: 5\r\n"), -1);
    /* The line is not NUL-terminated: only len bytes count. */
    cr_assert_eq(dx_retry_after_parse("Retry-After: 12345", 14), 1);
}
