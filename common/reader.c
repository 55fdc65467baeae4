#define _GNU_SOURCE
#include "reader.h"
#include "segment.h"
#include "sys.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* Checks the copied header against the layout's rules and the file size. */
static int check_header(const struct dynobs_seg_header *h, uint64_t file_size)
{
    if (h->magic != DYNOBS_SEG_MAGIC)
        return -EAGAIN;
    if (h->layout_version < DYNOBS_LAYOUT_VERSION_MIN || h->layout_version > DYNOBS_LAYOUT_VERSION)
        return -EPROTO;
    if (h->header_bytes != sizeof *h || h->total_bytes != file_size ||
        h->metric_slot_bytes != sizeof(struct dynobs_metric_slot))
        return -EBADMSG;
    if (!pow2(h->ring_bytes) || h->ring_bytes < DYNOBS_RING_BYTES_MIN ||
        h->ring_bytes > DYNOBS_RING_BYTES_MAX || !pow2(h->metric_slots) ||
        h->metric_slots < DYNOBS_METRIC_SLOTS_MIN || h->metric_slots > DYNOBS_METRIC_SLOTS_MAX)
        return -EBADMSG;
    if (!pow2(h->ring_shards) || h->ring_shards > DYNOBS_MAX_SHARDS ||
        (uint64_t)h->shard_bytes * h->ring_shards != h->ring_bytes ||
        h->shard_bytes < DYNOBS_SHARD_BYTES_MIN)
        return -EBADMSG;
    if (!pow2(h->meta_slots) || h->meta_slots < DYNOBS_META_SLOTS_MIN ||
        h->meta_slots > DYNOBS_META_SLOTS_MAX || h->window_slice_ms < DYNOBS_WINDOW_SLICE_MS_MIN ||
        h->window_slice_ms > DYNOBS_WINDOW_SLICE_MS_MAX ||
        !pow2(h->window_slices) || h->window_slices < DYNOBS_WINDOW_SLICES_MIN ||
        h->window_slices > DYNOBS_WINDOW_SLICES_MAX)
        return -EBADMSG;
    struct dynobs_geometry g;
    dynobs__geometry(h->ring_bytes, h->ring_shards, h->metric_slots, h->meta_slots, &g);
    if (h->consumer_offset != g.consumer_offset || h->ring_offset != g.ring_offset ||
        h->metric_offset != g.metric_offset || h->meta_offset != g.meta_offset ||
        h->window_offset != g.window_offset)
        return -EBADMSG;
    /* Layout 3 ends where the template table begins. */
    if (h->layout_version == 3 ? h->tmpl_offset || h->tmpl_slots || h->tmpl_slot_bytes ||
                                     h->total_bytes != g.window_end
                               : h->tmpl_offset != g.tmpl_offset ||
                                     h->tmpl_slots != DYNOBS_TMPL_SLOTS ||
                                     h->tmpl_slot_bytes != sizeof(struct dynobs_tmpl_slot) ||
                                     h->total_bytes != g.total_bytes)
        return -EBADMSG;
    if (h->service_name_len > DYNOBS_SERVICE_NAME_MAX || h->resource_len > DYNOBS_RESOURCE_BYTES ||
        h->max_record_bytes > DYNOBS_MAX_RECORD_BYTES || h->max_record_bytes < 64)
        return -EBADMSG;
    return dynobs__items_all(h->resource, h->resource_len, DYNOBS_ITEM_RESOURCE_ATTR,
                             h->resource_count);
}

int dynobs__reader_open(struct dynobs_reader *r, const char *path, int flags)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (!path)
        return -EINVAL;
    int consume = flags & DYNOBS_READER_CONSUME;
    int fd = open(path, (consume ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc;
    if (dynobs__fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < 2 * DYNOBS_PAGE ||
        (uint64_t)st.st_size >
            2 * DYNOBS_PAGE + DYNOBS_RING_BYTES_MAX +
                (uint64_t)DYNOBS_METRIC_SLOTS_MAX * (sizeof(struct dynobs_metric_slot) +
                                                     sizeof(struct dynobs_metric_window)) +
                (uint64_t)DYNOBS_META_SLOTS_MAX * sizeof(struct dynobs_metric_meta) +
                (uint64_t)DYNOBS_TMPL_SLOTS * sizeof(struct dynobs_tmpl_slot)) {
        rc = -EBADMSG;
        goto fail;
    }
    r->size = (size_t)st.st_size;
    r->map = mmap(NULL, r->size, PROT_READ, MAP_SHARED, fd, 0);
    if (r->map == MAP_FAILED) {
        r->map = NULL;
        rc = -errno;
        goto fail;
    }
    r->live = (const struct dynobs_seg_header *)r->map;
    memcpy(&r->hdr, r->map, sizeof r->hdr);
    r->hdr.magic = __atomic_load_n(&r->live->magic, __ATOMIC_ACQUIRE);
    if (r->hdr.magic == DYNOBS_SEG_MAGIC) /* fields were published before the magic */
        memcpy((uint8_t *)&r->hdr + 8, r->map + 8, sizeof r->hdr - 8);
    if ((rc = check_header(&r->hdr, r->size)) < 0)
        goto fail;
    if (consume) {
        void *c = mmap(NULL, DYNOBS_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                       (off_t)r->hdr.consumer_offset);
        if (c == MAP_FAILED) {
            rc = -errno;
            goto fail;
        }
        r->consumer = c;
        r->consumer->consumer_pid = getpid();
    }
    r->fd = fd;
    r->flags = flags;
    const struct dynobs_seg_consumer *cp =
        (const struct dynobs_seg_consumer *)(r->map + r->hdr.consumer_offset);
    r->nshards = r->hdr.ring_shards;
    for (uint32_t i = 0; i < r->nshards; i++) {
        struct dynobs_reader_shard *sh = &r->shards[i];
        sh->ring.head = &r->live->shards[i].head;
        sh->ring.data = r->map + r->hdr.ring_offset + (uint64_t)i * r->hdr.shard_bytes;
        sh->ring.cap = r->hdr.shard_bytes;
        sh->ring.max_record = r->hdr.max_record_bytes;
        sh->tail = __atomic_load_n(&cp->shards[i].tail, __ATOMIC_ACQUIRE);
    }
    r->slots = (const struct dynobs_metric_slot *)(r->map + r->hdr.metric_offset);
    r->metas = (const struct dynobs_metric_meta *)(r->map + r->hdr.meta_offset);
    r->windows = (const struct dynobs_metric_window *)(r->map + r->hdr.window_offset);
    r->tmpl = r->hdr.tmpl_slots ? (const struct dynobs_tmpl_slot *)(r->map + r->hdr.tmpl_offset)
                                : NULL;
    r->stall_timeout_ns = DYNOBS_STALL_TIMEOUT_NS;
    memcpy(r->service_name, r->hdr.service_name, r->hdr.service_name_len);
    r->service_name[r->hdr.service_name_len] = '\0';
    return 0;

fail:
    if (r->map)
        munmap(r->map, r->size);
    r->map = NULL;
    close(fd);
    return rc;
}

void dynobs__reader_close(struct dynobs_reader *r)
{
    if (r->consumer)
        munmap(r->consumer, DYNOBS_PAGE);
    if (r->map)
        munmap(r->map, r->size);
    if (r->fd >= 0)
        close(r->fd);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

int dynobs__reader_producer_alive(const struct dynobs_reader *r)
{
    int pid = r->hdr.pid;
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 0;
    /* The pid may have been reused: the start time tells. */
    uint64_t t = dynobs__proc_start_ticks(pid);
    return t != 0 && t == r->hdr.start_ticks;
}

static void publish_tail(struct dynobs_reader *r, uint32_t i)
{
    if (r->consumer)
        __atomic_store_n(&r->consumer->shards[i].tail, r->shards[i].tail, __ATOMIC_RELEASE);
}

/* One shard: 1 with a record in r->buf, 0 when it has none ready. */
/* The record just copied into r->buf as consumers see it: 1, or 0 when
 * it is skipped (a template reference whose slot has moved on, counted;
 * layout.h, struct dynobs_tmpl_slot). A reference comes out as the whole
 * span record it stands for. */
static int resolve(struct dynobs_reader *r)
{
    struct dynobs_rec_hdr *h = (struct dynobs_rec_hdr *)r->buf;
    if (h->type != DYNOBS_REC_SPAN_REF)
        return 1;
    struct dynobs_span_rec f;
    if (h->len < sizeof *h + sizeof f) {
        r->corrupt++;
        return 0;
    }
    memcpy(&f, h + 1, sizeof f);
    if (!r->tmpl || f.template_slot >= r->hdr.tmpl_slots || f.template_id == DYNOBS_TMPL_EMPTY ||
        f.template_id == DYNOBS_TMPL_WRITING || f.body_len > DYNOBS_TMPL_BODY_MAX) {
        r->unresolved++;
        return 0;
    }
    const struct dynobs_tmpl_slot *t = &r->tmpl[f.template_slot];
    uint8_t *body = r->buf + sizeof *h + sizeof f;
    _Static_assert(sizeof(struct dynobs_rec_hdr) + sizeof(struct dynobs_span_rec) +
                           DYNOBS_TMPL_BODY_MAX + DYNOBS_REC_ALIGN <= DYNOBS_MAX_RECORD_BYTES,
                   "a resolved reference fits the reader's buffer");
    if (__atomic_load_n(&t->id, __ATOMIC_ACQUIRE) != f.template_id ||
        __atomic_load_n(&t->len, __ATOMIC_RELAXED) != f.body_len) {
        r->unresolved++;
        return 0;
    }
    memcpy(body, t->body, f.body_len);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&t->id, __ATOMIC_RELAXED) != f.template_id) {
        r->unresolved++;
        return 0;
    }
    size_t len = sizeof *h + sizeof f + f.body_len;
    size_t padded = (len + DYNOBS_REC_ALIGN - 1) & ~(size_t)(DYNOBS_REC_ALIGN - 1);
    memset(r->buf + len, 0, padded - len);
    /* Written out as any span record: no trace of the template. */
    f.template_slot = 0;
    f.template_id = 0;
    memcpy(h + 1, &f, sizeof f);
    h->type = DYNOBS_REC_SPAN;
    h->len = (uint32_t)padded;
    return 1;
}

static int shard_next(struct dynobs_reader *r, uint32_t i)
{
    struct dynobs_reader_shard *sh = &r->shards[i];
    for (int guard = 0; guard < 64; guard++) {
        enum dynobs_peek p = dynobs__ring_peek(&sh->ring, &sh->tail, r->buf, sizeof r->buf);
        if (p == DYNOBS_PEEK_RECORD) {
            sh->stall_since = 0;
            publish_tail(r, i);
            if (resolve(r))
                return 1;
            continue;
        }
        if (p == DYNOBS_PEEK_EMPTY) {
            publish_tail(r, i);
            return 0;
        }
        if (p == DYNOBS_PEEK_CORRUPT) {
            r->corrupt++;
        } else { /* STALLED */
            uint64_t now = dynobs__mono_ns();
            if (!sh->stall_since || sh->stall_pos != sh->tail) {
                sh->stall_since = now;
                sh->stall_pos = sh->tail;
            }
            if (dynobs__reader_producer_alive(r) && now - sh->stall_since < r->stall_timeout_ns) {
                publish_tail(r, i);
                return 0;
            }
            r->abandoned++;
            sh->stall_since = 0;
        }
        sh->tail = dynobs__ring_resync(&sh->ring, sh->tail);
        publish_tail(r, i);
    }
    return 0;
}

int dynobs__reader_next(struct dynobs_reader *r, const struct dynobs_rec_hdr **rec)
{
    /* Round robin over the shards, so no thread's records wait behind a
     * busier thread's. */
    for (uint32_t k = 0; k < r->nshards; k++) {
        uint32_t i = (r->cursor + k) & (r->nshards - 1);
        if (shard_next(r, i)) {
            r->cursor = (i + 1) & (r->nshards - 1);
            *rec = (const struct dynobs_rec_hdr *)r->buf;
            return 1;
        }
    }
    return 0;
}

int dynobs__reader_metric(const struct dynobs_reader *r, uint32_t i,
                          struct dynobs_metric_view *v)
{
    if (i >= r->hdr.metric_slots)
        return -EINVAL;
    return dynobs__metric_read(&r->slots[i], v);
}

int dynobs__reader_resource_next(const struct dynobs_reader *r, size_t *off,
                                 struct dynobs_item *it)
{
    return dynobs__item_next(r->hdr.resource, r->hdr.resource_len, off, it);
}

uint64_t dynobs__reader_counter(const struct dynobs_reader *r, unsigned c)
{
    if (c >= DYNOBS_CTR_COUNT)
        return 0;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < r->nshards; i++)
        sum += __atomic_load_n(&r->live->shards[i].counters[c], __ATOMIC_RELAXED);
    return sum;
}
