#include "otlp_wire.h"

#include <errno.h>
#include <stdlib.h>

int dx_wire_room(struct dx_wire *w, size_t n)
{
    if (w->cap - w->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - w->len)
        return -ENOMEM;
    size_t cap = w->cap ? w->cap : 64 * 1024;
    while (cap - w->len < n)
        cap *= 2;
    uint8_t *p = realloc(w->p, cap);
    if (!p)
        return -ENOMEM;
    w->p = p;
    w->cap = cap;
    return 0;
}

void dx_wire_reset(struct dx_wire *w, size_t keep)
{
    w->len = 0;
    if (w->cap > keep)
        dx_wire_free(w);
}

void dx_wire_free(struct dx_wire *w)
{
    free(w->p);
    w->p = NULL;
    w->len = w->cap = 0;
}
