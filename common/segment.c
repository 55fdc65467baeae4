#define _GNU_SOURCE
#include "segment.h"
#include "sys.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void dynobs__geometry(uint64_t ring_bytes, uint32_t shards, uint32_t metric_slots,
                      uint32_t meta_slots, struct dynobs_geometry *g)
{
    g->consumer_offset = DYNOBS_PAGE;
    g->ring_offset = 2 * DYNOBS_PAGE;
    g->ring_bytes = ring_bytes;
    g->ring_shards = shards;
    g->shard_bytes = shards ? (uint32_t)(ring_bytes / shards) : 0;
    g->metric_offset = g->ring_offset + ring_bytes;
    g->metric_slots = metric_slots;
    g->meta_offset = g->metric_offset + (uint64_t)metric_slots * sizeof(struct dynobs_metric_slot);
    g->meta_slots = meta_slots;
    g->window_offset = g->meta_offset + (uint64_t)meta_slots * sizeof(struct dynobs_metric_meta);
    g->window_end = g->window_offset + (uint64_t)metric_slots * sizeof(struct dynobs_metric_window);
    /* (on a page of its own: its pages are backed one by one, span.c) */
    g->tmpl_offset = (g->window_end + DYNOBS_PAGE - 1) & ~(uint64_t)(DYNOBS_PAGE - 1);
    g->total_bytes = g->tmpl_offset + (uint64_t)DYNOBS_TMPL_SLOTS * sizeof(struct dynobs_tmpl_slot);
}

uint32_t dynobs__default_shards(uint64_t ring_bytes)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t n = 1;
    while (n < (uint32_t)(cpus > 0 ? cpus : 1) && n < DYNOBS_MAX_SHARDS)
        n <<= 1;
    while (n > 1 && ring_bytes / n < DYNOBS_SHARD_BYTES_MIN)
        n >>= 1;
    return n;
}

/* Small async-signal-safe formatting: no stdio in the producer. */
static size_t put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

int dynobs__segment_name(char *buf, size_t len, int pid, uint64_t ticks)
{
    char tmp[64];
    size_t n = put_u64(tmp, (uint64_t)(pid < 0 ? 0 : pid));
    tmp[n++] = '-';
    n += put_u64(tmp + n, ticks);
    memcpy(tmp + n, ".seg", 4);
    n += 4;
    if (n + 1 > len)
        return -ERANGE;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return (int)n;
}

uint64_t dynobs__proc_start_ticks(int pid)
{
    char path[48] = "/proc/self/stat";
    if (pid > 0) {
        size_t n = 6;
        memcpy(path, "/proc/", 6);
        n += put_u64(path + n, (uint64_t)pid);
        memcpy(path + n, "/stat", 6);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may hold spaces and ')': fields resume after the
     * last ')'. starttime is field 22, the 20th after it. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 2; field < 22 && *p; p++)
        if (*p == ' ')
            field++;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

/* Opens (creating when missing) the segment directory without following a
 * symlink at its last component. A directory we create is made sticky and
 * world-writable so that every user's processes can share it, as /tmp. */
static int open_dir(const char *dir)
{
    if (mkdir(dir, 01777) == 0)
        chmod(dir, 01777); /* mkdir's mode is filtered by the umask */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Allocates the file's pages: all but the template table's, or, when each
 * shard starts with `backed` bytes (less than a shard), the header pages,
 * that much of each shard and the metric tables; the rest of the file
 * stays a hole until a producer backs it (ring.h, and span.c for the
 * template table, a page at a time). 0 or an errno. */
static int allocate(int fd, const struct dynobs_geometry *g, uint64_t backed)
{
    if (backed >= g->shard_bytes) {
        if (ftruncate(fd, (off_t)g->total_bytes) < 0)
            return errno;
        return posix_fallocate(fd, 0, (off_t)g->tmpl_offset);
    }
    if (ftruncate(fd, (off_t)g->total_bytes) < 0)
        return errno;
    int rc = posix_fallocate(fd, 0, (off_t)g->ring_offset);
    for (uint32_t i = 0; rc == 0 && i < g->ring_shards; i++)
        rc = posix_fallocate(fd, (off_t)(g->ring_offset + (uint64_t)i * g->shard_bytes),
                             (off_t)backed);
    if (rc == 0)
        rc = posix_fallocate(fd, (off_t)g->metric_offset,
                             (off_t)(g->tmpl_offset - g->metric_offset));
    return rc;
}

int dynobs__segment_create(struct dynobs_segment *s, const struct dynobs_segment_params *p)
{
    struct dynobs_geometry g;
    uint32_t shards = p->ring_shards ? p->ring_shards : dynobs__default_shards(p->ring_bytes);
    if (shards > DYNOBS_MAX_SHARDS || (shards & (shards - 1)) ||
        p->ring_bytes / shards < DYNOBS_SHARD_BYTES_MIN)
        return -EINVAL;
    uint32_t metas = p->meta_slots ? p->meta_slots : DYNOBS_META_SLOTS_DEFAULT;
    uint32_t slice_ms = p->window_slice_ms ? p->window_slice_ms : DYNOBS_WINDOW_SLICE_MS_DEFAULT;
    uint32_t slices = p->window_slices ? p->window_slices : DYNOBS_WINDOW_SLICES_MAX;
    if ((metas & (metas - 1)) || metas < DYNOBS_META_SLOTS_MIN || metas > DYNOBS_META_SLOTS_MAX ||
        slice_ms < DYNOBS_WINDOW_SLICE_MS_MIN || slice_ms > DYNOBS_WINDOW_SLICE_MS_MAX ||
        slices < DYNOBS_WINDOW_SLICES_MIN || slices > DYNOBS_WINDOW_SLICES_MAX ||
        (slices & (slices - 1)))
        return -EINVAL;
    dynobs__geometry(p->ring_bytes, shards, p->metric_slots, metas, &g);
    memset(s, 0, sizeof *s);
    uint64_t backed = g.shard_bytes;
    if (p->ring_start_bytes && p->ring_start_bytes / shards < backed) {
        backed = p->ring_start_bytes / shards;
        if (backed < DYNOBS_SHARD_BYTES_MIN)
            backed = DYNOBS_SHARD_BYTES_MIN;
        backed &= ~(uint64_t)(DYNOBS_PAGE - 1);
    }

    char name[64], tmp[72];
    if (dynobs__segment_name(name, sizeof name, p->pid, p->start_ticks) < 0)
        return -ERANGE;
    tmp[0] = '.';
    memcpy(tmp + 1, name, strlen(name) + 1);
    size_t dl = strlen(p->dir);
    if (dl + 1 + strlen(name) + 1 > sizeof s->path)
        return -ENAMETOOLONG;

    int dfd = open_dir(p->dir);
    if (dfd < 0)
        return dfd;
    int rc = 0;
    int fd = dynobs__openat(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* A leftover of an earlier process with our pid and start time
         * cannot exist, but one of ours from before a failed attempt can. */
        dynobs__unlinkat(dfd, tmp, 0);
        fd = dynobs__openat(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        rc = -errno;
        close(dfd);
        return rc;
    }
    /* fchmod: the umask may have taken bits away, never added; 0600 is
     * what we want either way, and it makes the intent explicit. */
    fchmod(fd, 0600);
    if ((rc = allocate(fd, &g, backed)) != 0) {
        rc = -rc;
        goto fail;
    }
    void *base = mmap(NULL, g.total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    struct dynobs_seg_header *h = base;
    h->layout_version = DYNOBS_LAYOUT_VERSION;
    h->header_bytes = sizeof *h;
    h->total_bytes = g.total_bytes;
    h->consumer_offset = g.consumer_offset;
    h->ring_offset = g.ring_offset;
    h->ring_bytes = g.ring_bytes;
    h->ring_shards = g.ring_shards;
    h->shard_bytes = g.shard_bytes;
    h->metric_offset = g.metric_offset;
    h->metric_slots = g.metric_slots;
    h->metric_slot_bytes = sizeof(struct dynobs_metric_slot);
    h->meta_offset = g.meta_offset;
    h->meta_slots = g.meta_slots;
    h->window_offset = g.window_offset;
    h->window_slice_ms = slice_ms;
    h->window_slices = slices;
    h->tmpl_offset = g.tmpl_offset;
    h->tmpl_slots = DYNOBS_TMPL_SLOTS;
    h->tmpl_slot_bytes = sizeof(struct dynobs_tmpl_slot);
    h->pid = p->pid;
    h->ppid = p->ppid;
    h->start_ticks = p->start_ticks;
    h->start_time_ns = dynobs__now_ns();
    h->max_record_bytes = DYNOBS_MAX_RECORD_BYTES;
    if (p->resource) {
        size_t n = strlen(p->resource->service_name);
        memcpy(h->service_name, p->resource->service_name, n);
        h->service_name_len = (uint16_t)n;
        memcpy(h->resource, p->resource->items, p->resource->items_len);
        h->resource_len = (uint32_t)p->resource->items_len;
        h->resource_count = p->resource->count;
    }
    __atomic_store_n(&h->magic, DYNOBS_SEG_MAGIC, __ATOMIC_RELEASE);
    if (dynobs__renameat(dfd, tmp, dfd, name) < 0) {
        rc = -errno;
        munmap(base, g.total_bytes);
        goto fail;
    }
    close(fd);
    close(dfd);

    s->base = base;
    s->size = g.total_bytes;
    s->hdr = h;
    struct dynobs_seg_consumer *cons = (void *)((uint8_t *)base + g.consumer_offset);
    s->nshards = g.ring_shards;
    for (uint32_t i = 0; i < g.ring_shards; i++) {
        s->rings[i].head = &h->shards[i].head;
        s->rings[i].tail = &cons->shards[i].tail;
        s->rings[i].tail_seen = __atomic_load_n(s->rings[i].tail, __ATOMIC_ACQUIRE);
        s->rings[i].data = (uint8_t *)base + g.ring_offset + (uint64_t)i * g.shard_bytes;
        s->rings[i].cap = g.shard_bytes;
        s->rings[i].counters = h->shards[i].counters;
        s->room[i].backed = backed;
    }
    s->metrics.slots = (struct dynobs_metric_slot *)((uint8_t *)base + g.metric_offset);
    s->metrics.nslots = g.metric_slots;
    s->metrics.counters = h->shards[0].counters;
    s->metrics.windows = (struct dynobs_metric_window *)((uint8_t *)base + g.window_offset);
    s->metrics.window_slice_ms = slice_ms;
    s->metrics.window_slices = slices;
    s->metrics.metas = (struct dynobs_metric_meta *)((uint8_t *)base + g.meta_offset);
    s->metrics.nmetas = g.meta_slots;
    s->metrics.declare_conflicts = &h->declare_conflicts;
    s->metrics.declare_refused = &h->declare_refused;
    s->tmpl = (struct dynobs_tmpl_slot *)((uint8_t *)base + g.tmpl_offset);
    memcpy(s->path, p->dir, dl);
    s->path[dl] = '/';
    memcpy(s->path + dl + 1, name, strlen(name) + 1);
    return 0;

fail:
    dynobs__unlinkat(dfd, tmp, 0);
    close(fd);
    close(dfd);
    return rc;
}

void dynobs__segment_detach(struct dynobs_segment *s)
{
    if (s->base)
        munmap(s->base, s->size);
    memset(s, 0, sizeof *s);
}
