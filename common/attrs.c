#include "attrs.h"

#include <string.h>

#include "record.h"

size_t dynobs__utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t i = max;
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    return i;
}

int dynobs__attrs_put(uint8_t *buf, size_t cap, uint8_t tag, const dynobs_attr *attrs,
                      size_t nattrs, uint32_t limit, uint32_t value_limit,
                      struct dynobs_attrs_out *out)
{
    int rc = 0;
    for (size_t i = 0; i < nattrs; i++) {
        const dynobs_attr *a = &attrs[i];
        size_t kl = a->key ? strnlen(a->key, 256) : 0;
        const void *val = &a->v;
        size_t vl = 8;
        int64_t b;
        uint8_t fl = 0;
        if (kl == 0 || kl > 255) {
            rc = DYNOBS_EINVAL;
            continue;
        }
        switch (a->type) {
        case DYNOBS_ATTR_STRING:
            if (!a->v.s) {
                rc = DYNOBS_EINVAL;
                continue;
            }
            val = a->v.s;
            /* strnlen bounds the scan of a value that may be huge or
             * unterminated beyond what could be kept anyway. */
            vl = strnlen(a->v.s, (size_t)value_limit + 1);
            if (vl > value_limit) {
                vl = dynobs__utf8_cut(a->v.s, vl, value_limit);
                fl = DYNOBS_ITEMF_TRUNCATED;
                out->truncated = 1;
            }
            break;
        case DYNOBS_ATTR_BOOL:
            b = a->v.b != 0;
            val = &b;
            break;
        case DYNOBS_ATTR_INT:
        case DYNOBS_ATTR_DOUBLE:
            break;
        default:
            rc = DYNOBS_EINVAL;
            continue;
        }
        size_t m = 0;
        if (out->kept < limit)
            m = dynobs__item_put_attr(buf + out->used, cap - out->used, tag, a->key, kl, a->type,
                                      val, vl, fl);
        if (!m) {
            out->dropped++;
            out->truncated = 1;
            continue;
        }
        out->used += m;
        out->kept++;
    }
    return rc;
}
