#include "config.h"
#include "layout.h"

#include <errno.h>
#include <stddef.h>

/*
 * The shim loads the configuration in every process it is preloaded in,
 * before main: a libc string function called here is bound by the loader
 * at its first call (the library is linked -z lazy), some 700
 * instructions each and pages of the loader and of libc touched, for
 * calls that compare a few bytes. So the comparisons and copies below
 * are byte loops of their own. (GCC turns a plain loop that zeroes or
 * copies a counted run of bytes back into a memset or memcpy call; the
 * loops here stop at a terminator, which it leaves alone.)
 */

/* 1 when a and b are the same string. */
DYNOBS_START_TEXT
static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* The same, ASCII letters in either case (strcasecmp's "C" locale). */
DYNOBS_START_TEXT
static int same_ci(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
        if (!x)
            return 1;
    }
}

DYNOBS_START_TEXT
size_t dynobs__len_upto(const char *v, size_t cap)
{
    size_t n = 0;
    while (n < cap && v[n])
        n++;
    return n;
}

DYNOBS_START_TEXT
size_t dynobs__copy_upto(char *dst, const char *src, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap && src[n]) {
        dst[n] = src[n];
        n++;
    }
    dst[n] = '\0';
    return n + 1 == cap && src[n] ? cap : n;
}

/* The scalars of *c zeroed (struct dynobs_config: the name arrays after
 * them are written name by name), four words at a time; the empty asm
 * keeps the compiler from making a memset call of the loop (it does of an
 * assignment of {0}). */
DYNOBS_START_TEXT
static void zero_scalars(struct dynobs_config *c)
{
    uint64_t *w = (uint64_t *)(void *)c;
    size_t end = offsetof(struct dynobs_config, shm_dir), n = end / sizeof *w, i = 0;
    for (; i + 4 <= n; i += 4) {
        w[i] = w[i + 1] = w[i + 2] = w[i + 3] = 0;
        __asm__ volatile("" : : "r"(w) : "memory");
    }
    for (; i < n; i++)
        w[i] = 0;
    for (i = n * sizeof *w; i < end; i++)
        ((unsigned char *)c)[i] = 0;
}

DYNOBS_START_TEXT
int dynobs__parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p == s)
        return -EINVAL;
    unsigned shift = 0;
    switch (*p) {
    case '\0':
        break;
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    default:
        return -EINVAL;
    }
    if (shift && (*p == 'i' || *p == 'I'))
        p++; /* accept "Ki", "Mi", "Gi" */
    if (shift && (*p == 'b' || *p == 'B'))
        p++;
    if (*p)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = v << shift;
    return 0;
}

DYNOBS_START_TEXT
static uint64_t floor_pow2(uint64_t v)
{
    uint64_t p = 1;
    while (p <= v / 2)
        p <<= 1;
    return p;
}

DYNOBS_START_TEXT
static void bad(struct dynobs_config *c, const char *name)
{
    if (!c->bad_setting) {
        c->bad_setting = 1;
        c->bad_name = name;
    }
}

/* A size variable (dynobs__parse_size's suffixes) within [min, max],
 * rounded down to a power of two; def when unset or empty, and when
 * invalid (then reported). */
DYNOBS_START_TEXT
static uint64_t pow2_size(struct dynobs_config *c, dynobs_getenv_fn get, const char *name,
                          uint64_t def, uint64_t min, uint64_t max)
{
    const char *v = get(name);
    uint64_t n;
    if (!v || !*v)
        return def;
    if (dynobs__parse_size(v, &n) < 0 || n < min || n > max) {
        bad(c, name);
        return def;
    }
    return floor_pow2(n);
}

DYNOBS_START_TEXT
static uint32_t limit(struct dynobs_config *c, dynobs_getenv_fn get, const char *name,
                      uint32_t def, uint32_t cap)
{
    const char *v = get(name);
    uint64_t n;
    if (!v || !*v)
        return def;
    if (dynobs__parse_size(v, &n) < 0) {
        bad(c, name);
        return def;
    }
    return n > cap ? cap : (uint32_t)n;
}

/* 1 for the marks RFC 9110 allows in a token besides letters and digits. */
DYNOBS_START_TEXT
static int tchar_mark(char ch)
{
    static const char marks[] = "!#$%&'*+-.^_`|~";
    for (const char *m = marks; *m; m++)
        if (ch == *m)
            return 1;
    return 0;
}

/* A token as RFC 9110 defines it (header names, baggage keys), into out,
 * lower-cased for a header name, which must not be one of the headers
 * dynobs handles itself, nor a credential: correlation headers are sent
 * on with every outbound call, to whatever destination, so naming one
 * would hand the caller's credentials to third parties. Returns its
 * length or -1. */
DYNOBS_START_TEXT
static int token(const char *s, size_t n, char *out, size_t cap, int header)
{
    static const char own[][20] = {"traceparent", "tracestate",    "baggage",
                                   "host",        "user-agent",    "authorization",
                                   "cookie",      "set-cookie",    "proxy-authorization"};
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (header && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              tchar_mark(ch)))
            return -1;
        out[i] = ch;
    }
    out[n] = '\0';
    for (size_t i = 0; header && i < sizeof own / sizeof own[0]; i++)
        if (same(out, own[i]))
            return -1;
    return (int)n;
}

/* A comma-separated list of tokens into names/lens (at most max, *count
 * set); all or nothing. */
DYNOBS_START_TEXT
static int token_list(const char *v, char (*names)[DYNOBS_CORR_NAME_MAX], uint8_t *lens,
                      int max, int header, int *count)
{
    *count = 0;
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if (e == v)
            break;
        if (*count == max)
            return -1;
        int n = token(v, (size_t)(e - v), names[*count], DYNOBS_CORR_NAME_MAX, header);
        if (n < 0)
            return -1;
        lens[(*count)++] = (uint8_t)n;
        v = e;
    }
    return 0;
}

DYNOBS_START_TEXT
static int correlation_names(struct dynobs_config *c, const char *v)
{
    return token_list(v, c->corr_names, c->corr_lens, DYNOBS_CORR_MAX, 1, &c->ncorr);
}

DYNOBS_START_TEXT
void dynobs__config_load(struct dynobs_config *c, dynobs_getenv_fn get)
{
    zero_scalars(c);
    const char *v = get("OTEL_SDK_DISABLED");
    c->disabled = v && same_ci(v, "true");
    v = get("DYNOBS_CAPTURE_LOGS");
    c->capture_logs = v && (same(v, "1") || same_ci(v, "true"));
    v = get("DYNOBS_SHORT_PATH");
    c->short_path_off = v && same(v, "0");
    if (v && !c->short_path_off && !same(v, "1"))
        bad(c, "DYNOBS_SHORT_PATH");

    v = get("DYNOBS_CORRELATION_HEADERS");
    if (correlation_names(c, v ? v : DYNOBS_CORRELATION_DEFAULT) < 0) {
        bad(c, "DYNOBS_CORRELATION_HEADERS");
        (void)correlation_names(c, DYNOBS_CORRELATION_DEFAULT);
    }

    v = get("DYNOBS_BAGGAGE_ATTRIBUTES");
    if (v && token_list(v, c->bag_keys, c->bag_key_lens, DYNOBS_BAGGAGE_KEYS_MAX, 0,
                        &c->nbag_keys) < 0) {
        bad(c, "DYNOBS_BAGGAGE_ATTRIBUTES");
        c->nbag_keys = 0;
    }

    v = get("DYNOBS_SHM_DIR");
    if (v && dynobs__len_upto(v, sizeof c->shm_dir - 64) == sizeof c->shm_dir - 64) {
        bad(c, "DYNOBS_SHM_DIR"); /* (it leaves room for the file name) */
        v = NULL;
    }
    if (!v || !*v)
        v = DYNOBS_SHM_DIR_DEFAULT;
    size_t n; /* (its length checked above) */
    for (n = 0; v[n]; n++)
        c->shm_dir[n] = v[n];
    c->shm_dir[n] = '\0';

    c->ring_bytes = pow2_size(c, get, "DYNOBS_RING_BYTES", DYNOBS_RING_BYTES_DEFAULT,
                              DYNOBS_RING_BYTES_MIN, DYNOBS_RING_BYTES_MAX);
    c->ring_start_bytes =
        c->ring_bytes < DYNOBS_RING_START_BYTES ? c->ring_bytes : DYNOBS_RING_START_BYTES;
    c->metric_slots =
        (uint32_t)pow2_size(c, get, "DYNOBS_METRIC_SLOTS", DYNOBS_METRIC_SLOTS_DEFAULT,
                            DYNOBS_METRIC_SLOTS_MIN, DYNOBS_METRIC_SLOTS_MAX);

    /* Attribute limits: the OpenTelemetry defaults, with the value length
     * capped by what one record can hold. */
    /* The span-specific variables win over the general ones. */
    c->attr_count_limit = limit(c, get, "OTEL_ATTRIBUTE_COUNT_LIMIT", 128, 1024);
    c->attr_count_limit =
        limit(c, get, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", c->attr_count_limit, 1024);
    c->attr_value_limit = limit(c, get, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                                DYNOBS_ATTR_VALUE_MAX, DYNOBS_ATTR_VALUE_MAX);
    c->attr_value_limit = limit(c, get, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                                c->attr_value_limit, DYNOBS_ATTR_VALUE_MAX);
    c->event_count_limit = limit(c, get, "OTEL_SPAN_EVENT_COUNT_LIMIT", 128, 1024);
    c->event_attr_limit = limit(c, get, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", 128, 1024);
    c->log_attr_limit = limit(c, get, "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", 128, 1024);

    if (dynobs__sampler_init(&c->sampler, get("OTEL_TRACES_SAMPLER"),
                             get("OTEL_TRACES_SAMPLER_ARG")) < 0) {
        bad(c, "OTEL_TRACES_SAMPLER");
        if (c->sampler.kind != DYNOBS_SAMPLER_RATIO &&
            c->sampler.kind != DYNOBS_SAMPLER_PARENT_RATIO)
            dynobs__sampler_init(&c->sampler, NULL, NULL);
    }
}
