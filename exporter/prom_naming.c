/*
 * Naming for Prometheus: OpenTelemetry metric names and units become
 * Prometheus metric names, label keys become label names, and label
 * values are escaped, as the OpenTelemetry compatibility specification
 * and the text exposition format (0.0.4) ask.
 */
#define _GNU_SOURCE
#include "prom_naming.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynobs/dynobs.h"

/* OpenTelemetry to Prometheus units, per the compatibility spec. */
static const struct {
    const char *ucum, *prom;
} units[] = {
    {"d", "days"}, {"h", "hours"}, {"min", "minutes"}, {"s", "seconds"},
    {"ms", "milliseconds"}, {"us", "microseconds"}, {"ns", "nanoseconds"},
    {"By", "bytes"}, {"KiBy", "kibibytes"}, {"MiBy", "mebibytes"}, {"GiBy", "gibibytes"},
    {"KBy", "kilobytes"}, {"MBy", "megabytes"}, {"GBy", "gigabytes"},
    {"m", "meters"}, {"V", "volts"}, {"A", "amperes"}, {"J", "joules"}, {"W", "watts"},
    {"g", "grams"}, {"Cel", "celsius"}, {"Hz", "hertz"}, {"%", "percent"},
};

static void sanitize(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < cap; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == ':';
        char w = ok ? c : '_';
        if (w == '_' && o && out[o - 1] == '_')
            continue; /* collapse runs of underscores */
        out[o++] = w;
    }
    out[o] = '\0';
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

void dx_prom_name(const char *name, const char *unit, int kind, char *out, size_t cap)
{
    char base[512];
    sanitize(name, base, sizeof base);
    char suffix[128] = "";
    if (unit && *unit && unit[0] != '{') {
        const char *per = strchr(unit, '/');
        char main_u[32] = "", per_u[32] = "";
        snprintf(main_u, sizeof main_u, "%.*s", per ? (int)(per - unit) : (int)strlen(unit), unit);
        if (per)
            snprintf(per_u, sizeof per_u, "%s", per + 1);
        const char *m = main_u, *q = per_u;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (!strcmp(main_u, units[i].ucum))
                m = units[i].prom;
            if (!strcmp(per_u, units[i].ucum))
                q = units[i].prom;
        }
        if (!strcmp(main_u, "1"))
            m = kind == DYNOBS_METRIC_GAUGE ? "ratio" : "";
        if (per && *q)
            snprintf(suffix, sizeof suffix, "%s%s_per_%s", m, *m ? "" : "", q);
        else
            snprintf(suffix, sizeof suffix, "%s", m);
        char clean[128];
        sanitize(suffix, clean, sizeof clean);
        snprintf(suffix, sizeof suffix, "%s", clean);
    }
    if (*suffix) {
        char with[160];
        snprintf(with, sizeof with, "_%s", suffix);
        if (!ends_with(base, with))
            strncat(base, with, sizeof base - strlen(base) - 1);
    }
    /* A counter's _total is added when printing; one already in the name
     * is taken off here so it is not doubled. */
    if ((kind == DYNOBS_METRIC_COUNTER) && ends_with(base, "_total"))
        base[strlen(base) - 6] = '\0';
    if (base[0] >= '0' && base[0] <= '9')
        snprintf(out, cap, "_%s", base);
    else
        snprintf(out, cap, "%s", base);
}

static void label_name(struct dx_buf *b, const char *k, size_t n)
{
    /* Label names: [a-zA-Z_][a-zA-Z0-9_]*; anything else becomes '_'. */
    if (n && k[0] >= '0' && k[0] <= '9')
        dx_buf_put(b, "key_", 4);
    char tmp[256];
    for (size_t i = 0; i < n; i += sizeof tmp) {
        size_t m = n - i < sizeof tmp ? n - i : sizeof tmp;
        for (size_t j = 0; j < m; j++) {
            char c = k[i + j];
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '_';
            tmp[j] = ok ? c : '_';
        }
        dx_buf_put(b, tmp, m);
    }
}

static void label_value(struct dx_buf *b, const char *v, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = v[i] == '\\' ? "\\\\" : v[i] == '"' ? "\\\"" : v[i] == '\n' ? "\\n" : NULL;
        if (esc) {
            dx_buf_put(b, v + start, i - start);
            dx_buf_str(b, esc);
            start = i + 1;
        }
    }
    dx_buf_put(b, v + start, n - start);
}

void dx_prom_label(struct dx_buf *b, const char *k, size_t kl, const char *v, size_t vl,
                   int first)
{
    if (!first)
        dx_buf_put(b, ",", 1);
    label_name(b, k, kl);
    dx_buf_put(b, "=\"", 2);
    label_value(b, v, vl);
    dx_buf_put(b, "\"", 1);
}

char *dx_prom_labels(const char *service, const char *labels_)
{
    struct dx_buf b;
    dx_buf_init(&b, 1 << 20);
    dx_prom_label(&b, "service_name", 12, service, strlen(service), 1);
    for (const char *p = labels_; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq && !(eq - p == 12 && !memcmp(p, "service_name", 12)))
            dx_prom_label(&b, p, (size_t)(eq - p), eq + 1, n - (size_t)(eq - p) - 1, 0);
        p += n + (comma ? 1 : 0);
    }
    if (!b.p)
        dx_buf_put(&b, "", 0);
    /* The buffer grew in 4 KiB steps: kept as it is, every series would
     * hold 4 KiB for a block of about a hundred bytes (40 MB for 10 000
     * series), and each scrape would read its label blocks from as many
     * pages. */
    char *fit = b.p ? realloc(b.p, b.len + 1) : NULL;
    return fit ? fit : b.p;
}

