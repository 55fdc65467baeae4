/*
 * The batch queue between the draining main thread and the sender. The
 * main thread fills one batch per kind without locks and hands full (or
 * old enough) batches over under dx.qlock. The number of queued records is
 * bounded by OTEL_BSP_MAX_QUEUE_SIZE: when it is reached the main thread
 * stops draining, records wait in the applications' rings, and if those
 * fill the applications drop and count. The exporter's memory stays
 * bounded however slow the receiver is.
 */
#include <stdlib.h>
#include <string.h>

#include "exporter.h"
#include "util.h"

int dx_queue_room(enum dx_kind k)
{
    uint64_t q = __atomic_load_n(&dx.queued[k], __ATOMIC_ACQUIRE);
    return q >= dx.cfg.bsp_queue ? 0 : (int)(dx.cfg.bsp_queue - q);
}

static void push(struct dx_batch *b)
{
    pthread_mutex_lock(&dx.qlock);
    if (dx.qtail)
        dx.qtail->next = b;
    else
        dx.qhead = b;
    dx.qtail = b;
    pthread_cond_signal(&dx.qcond);
    pthread_mutex_unlock(&dx.qlock);
}

int dx_queue_put(enum dx_kind k, struct dx_resource *res, const void *rec, uint32_t len)
{
    struct dx_batch *b = dx.filling[k];
    size_t need = sizeof(struct dx_entry) + ((len + 7u) & ~7u);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return -1;
        b->kind = k;
        b->cap = 64 * 1024;
        b->data = malloc(b->cap);
        if (!b->data) {
            free(b);
            return -1;
        }
        b->opened_ns = dynobs__mono_ns();
        dx.filling[k] = b;
    }
    if (b->used + need > b->cap) {
        size_t cap = b->cap * 2;
        while (cap < b->used + need)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    struct dx_entry e = {.res = res, .len = len};
    dx_resource_ref(res);
    memcpy(b->data + b->used, &e, sizeof e);
    memcpy(b->data + b->used + sizeof e, rec, len);
    b->used += need;
    b->count++;
    __atomic_fetch_add(&dx.queued[k], 1, __ATOMIC_RELEASE);
    if (b->count >= dx.cfg.bsp_batch) {
        dx.filling[k] = NULL;
        push(b);
    }
    return 0;
}

void dx_queue_flush_due(int force)
{
    uint64_t now = dynobs__mono_ns();
    for (int k = 0; k < DX_KINDS; k++) {
        struct dx_batch *b = dx.filling[k];
        if (b && b->count &&
            (force || now - b->opened_ns >= dx.cfg.bsp_delay_ms * 1000000ull)) {
            dx.filling[k] = NULL;
            push(b);
        }
    }
}

struct dx_batch *dx_queue_take(void)
{
    struct dx_batch *b = dx.qhead;
    if (b) {
        dx.qhead = b->next;
        if (!dx.qhead)
            dx.qtail = NULL;
        b->next = NULL;
    }
    return b;
}

void dx_batch_free(struct dx_batch *b)
{
    if (!b)
        return;
    for (size_t off = 0; off < b->used;) {
        struct dx_entry e;
        memcpy(&e, b->data + off, sizeof e);
        dx_resource_unref(e.res);
        off += sizeof e + ((e.len + 7u) & ~7u);
    }
    __atomic_fetch_sub(&dx.queued[b->kind], b->count, __ATOMIC_RELEASE);
    free(b->data);
    free(b);
}
