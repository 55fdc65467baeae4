#include "resource.h"
#include "layout.h"
#include "record.h"

#include <string.h>

#include "dynobs/dynobs.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (capacity >= n); -1 on a bad escape. */
static long pct_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (long)o;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static void put(struct dynobs_resource *r, const char *k, size_t kl, const char *v, size_t vl)
{
    size_t n = dynobs__item_put_attr(r->items + r->items_len, sizeof r->items - r->items_len,
                                     DYNOBS_ITEM_RESOURCE_ATTR, k, kl, DYNOBS_ATTR_STRING, v,
                                     vl, 0);
    if (!n) {
        r->truncated = 1;
        return;
    }
    r->items_len += n;
    r->count++;
}

static void set_name(struct dynobs_resource *r, const char *s, size_t n)
{
    if (n >= sizeof r->service_name)
        n = sizeof r->service_name - 1;
    memcpy(r->service_name, s, n);
    r->service_name[n] = '\0';
}

void dynobs__resource_build(struct dynobs_resource *r, const char *service_env,
                            const char *attrs_env, const char *exe)
{
    memset(r, 0, sizeof *r);
    int have_name = 0;
    if (service_env && *service_env) {
        set_name(r, service_env, strlen(service_env));
        have_name = 1;
    }
    const char *s = attrs_env ? attrs_env : "";
    while (*s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        const char *m = s;
        s += n + (end ? 1 : 0);
        trim(&m, &n);
        if (n == 0)
            continue;
        const char *eq = memchr(m, '=', n);
        if (!eq || eq == m) {
            r->malformed = 1;
            continue;
        }
        const char *k = m, *v = eq + 1;
        size_t kl = (size_t)(eq - m), vl = n - kl - 1;
        trim(&k, &kl);
        trim(&v, &vl);
        char kbuf[256], vbuf[1024];
        if (kl == 0 || kl >= sizeof kbuf || vl >= sizeof vbuf) {
            r->malformed = 1;
            continue;
        }
        long kd = pct_decode(k, kl, kbuf), vd = pct_decode(v, vl, vbuf);
        if (kd <= 0 || vd < 0) {
            r->malformed = 1;
            continue;
        }
        if ((size_t)kd == 12 && memcmp(kbuf, "service.name", 12) == 0) {
            if (!have_name)
                set_name(r, vbuf, (size_t)vd);
            continue; /* kept in its own field, not twice */
        }
        put(r, kbuf, (size_t)kd, vbuf, (size_t)vd);
    }
    if (!r->service_name[0]) {
        const char *e = exe && *exe ? exe : "unknown_service";
        set_name(r, e, strlen(e));
    }
    if (exe && *exe)
        put(r, "process.executable.name", 23, exe, strlen(exe));
}
