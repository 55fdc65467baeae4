#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segments.h"

#include "diag.h"
#include "guard.h"
#include "process_resource.h"
#include "queue.h"
#include "reader.h"
#include "segment.h"
#include "stats.h"
#include "store.h"
#include "tail.h"
#include "ui_store.h"
#include "util.h"

/* One attached segment. */
struct dx_segment {
    struct dx_segment *next;
    char path[1024];
    struct dx_store_source src; /* its reader, resource and slot cache */
    int broken; /* its mapping faulted (file truncated): drop and refuse it */
};

/* Set by dx_segments_init, read-only afterwards. */
static char dir[512];
static char host[256];

static int ino_fd = -1;

/* See segments.h for who takes the lock and what it guards. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct dx_segment *segments;
static int nsegments;
static uint64_t list_gen; /* bumped when the list changes, under the lock */
static uint64_t folded_ring_dropped, folded_ring_written; /* of reaped processes */
static uint64_t rules_generation; /* main thread only */
static double fullest; /* main thread only: dx_segments_fullest */

/* A segment's broken flag is set by whichever thread's access faulted
 * (the drain loop, or a metric snapshot) and read by the others. */
static int seg_broken(const struct dx_segment *s)
{
    return __atomic_load_n(&s->broken, __ATOMIC_RELAXED);
}

static void seg_set_broken(struct dx_segment *s)
{
    __atomic_store_n(&s->broken, 1, __ATOMIC_RELAXED);
}

/* Names we refused, so that a bad file is reported once, not every scan.
 * Keyed by name and inode: a new file under an old name is looked at. */
struct rejected {
    struct rejected *next;
    char name[256];
    ino_t ino;
};
static struct rejected *rejected;

static int is_rejected(const char *name, ino_t ino)
{
    for (struct rejected *r = rejected; r; r = r->next)
        if (r->ino == ino && !strcmp(r->name, name))
            return 1;
    return 0;
}

static void reject(const char *name, ino_t ino, const char *why)
{
    struct rejected *r = calloc(1, sizeof *r);
    if (r) {
        snprintf(r->name, sizeof r->name, "%s", name);
        r->ino = ino;
        r->next = rejected;
        rejected = r;
    }
    dx_stats_add(DX_SEGMENTS_REJECTED, 1);
    dx_log(DX_WARN, "segment %s/%s refused: %s", dir, name, why);
}

int dx_segments_init(const char *shm_dir, const char *host_name)
{
    snprintf(dir, sizeof dir, "%s", shm_dir);
    snprintf(host, sizeof host, "%s", host_name);
    /* The directory may not exist yet: create it as the shim would, so
     * that inotify can watch it from the start. */
    if (mkdir(dir, 01777) == 0)
        chmod(dir, 01777);
    ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino_fd >= 0 &&
        /* Segments appear by rename once complete (IN_MOVED_TO); IN_CREATE
         * covers other writers. Not IN_CLOSE_WRITE: our own read-write
         * open of a segment would trigger it. */
        inotify_add_watch(ino_fd, dir, IN_MOVED_TO | IN_CREATE) < 0) {
        dx_log(DX_WARN, "inotify on %s: %s; relying on rescans", dir, strerror(errno));
        close(ino_fd);
        ino_fd = -1;
    }
    return 0;
}

int dx_segments_inotify_fd(void)
{
    return ino_fd;
}

static int attached(const char *path)
{
    for (struct dx_segment *s = segments; s; s = s->next)
        if (!strcmp(s->path, path))
            return 1;
    return 0;
}

/* "<pid>-<ticks>.seg", and nothing else. */
static int parse_name(const char *name, int *pid, uint64_t *ticks)
{
    char *end;
    errno = 0;
    long p = strtol(name, &end, 10);
    if (errno || end == name || *end != '-' || p <= 0 || p > INT_MAX)
        return -1;
    const char *t = end + 1;
    unsigned long long tk = strtoull(t, &end, 10);
    if (errno || end == t || strcmp(end, ".seg"))
        return -1;
    *pid = (int)p;
    *ticks = tk;
    return 0;
}

/* The owner of /proc/PID, or -1 when the process is gone. */
static long proc_owner(int pid)
{
    char p[64];
    struct stat st;
    snprintf(p, sizeof p, "/proc/%d", pid);
    return stat(p, &st) == 0 ? (long)st.st_uid : -1;
}

static void attach(const char *name)
{
    char path[1024];
    int pid;
    uint64_t ticks;
    if (parse_name(name, &pid, &ticks) < 0)
        return; /* not a segment (temporary files start with '.') */
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
        attached(path))
        return;
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    if (is_rejected(name, st.st_ino))
        return;
    if (S_ISLNK(st.st_mode)) {
        reject(name, st.st_ino, "a symbolic link");
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        reject(name, st.st_ino, "not a regular file");
        return;
    }
    /* A segment must belong to the user who runs the process it names;
     * only root may drain other users' segments. The exporter's own (its
     * eBPF source writes one per process it traces) are its own user's. */
    long owner = proc_owner(pid);
    if (geteuid() != 0 && owner >= 0 && (uid_t)owner != st.st_uid && st.st_uid != geteuid()) {
        reject(name, st.st_ino, "owned by a user other than the process's");
        return;
    }
    struct dynobs_reader *rd = malloc(sizeof *rd);
    if (!rd)
        return;
    int rc = dynobs__reader_open(rd, path, DYNOBS_READER_CONSUME);
    if (rc < 0) {
        /* No magic (-EAGAIN) is corrupt too: the shim renames a segment
         * into place only once its header is complete. */
        free(rd);
        reject(name, st.st_ino,
               rc == -EPROTO    ? "unknown layout version"
               : rc == -EAGAIN ? "no segment header"
                                : strerror(-rc));
        return;
    }
    if (rd->hdr.pid != pid || rd->hdr.start_ticks != ticks) {
        dynobs__reader_close(rd);
        free(rd);
        reject(name, st.st_ino, "its header names another process");
        return;
    }
    struct dx_segment *s = calloc(1, sizeof *s);
    struct dx_resource *res = dx_resource_new(rd, host);
    struct dx_series **cache = calloc(rd->hdr.metric_slots, sizeof *cache);
    if (!s || !res || !cache) {
        free(s);
        free(cache);
        dx_resource_unref(res);
        dynobs__reader_close(rd);
        free(rd);
        return;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    s->src.rd = rd;
    s->src.res = res;
    s->src.slot_series = cache;
    pthread_mutex_lock(&lock);
    s->next = segments;
    segments = s;
    nsegments++;
    list_gen++;
    pthread_mutex_unlock(&lock);
    dx_log(DX_DEBUG, "attached %s (service %s, pid %d)", path, res->service, pid);
}

void dx_segments_publish_rules(uint64_t generation)
{
    rules_generation = generation;
}

void dx_segments_scan(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            attach(e->d_name);
    closedir(d);
}

void dx_segments_inotify_drain(void)
{
    if (ino_fd < 0)
        return;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    /* Bounded: the rescan catches anything left for the next round. */
    for (int rounds = 0; rounds < 8 && (n = read(ino_fd, buf, sizeof buf)) > 0; rounds++) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len && ev->name[0] != '.')
                attach(ev->name);
            if (ev->mask & IN_Q_OVERFLOW)
                dx_segments_scan();
            p += sizeof *ev + ev->len;
        }
    }
}

/* Drains one segment while the queue has room; returns records moved. */
static size_t drain_one(struct dx_segment *s)
{
    volatile size_t moved = 0; /* read after a SIGBUS jump */
    uint64_t drained[DX_QUEUED_SIGNALS] = {0};
    const struct dynobs_rec_hdr *h;
    struct dynobs_reader *rd = s->src.rd;
    uint64_t corrupt0 = rd->corrupt, abandoned0 = rd->abandoned, unresolved0 = rd->unresolved;
    const uint64_t now = dynobs__mono_ns();
    sigjmp_buf jb;
    if (seg_broken(s) || !DX_GUARD_BEGIN(jb)) {
        DX_GUARD_END();
        seg_set_broken(s);
        return moved;
    }
    /* How full the shards were, for the drain loop's pace: the bytes of
     * the records read, when the pass read all there was. Not head - tail:
     * a ring that wrapped early (at the end of what it has backed) has a
     * PAD standing for the rest of the shard between the two, and the
     * shard would read as nearly full after every wrap. (All shards'
     * records over one shard's size: never less than the fullest's.) */
    uint64_t bytes = 0;
    while (dx_queue_room(DX_TRACES) > 0 && dx_queue_room(DX_LOGS) > 0 &&
           dynobs__reader_next(rd, &h) == 1) {
        bytes += h->len;
        if (h->type == DYNOBS_REC_SPAN) {
            /* Validated when encoded: one decode per record is enough.
             * Spans of tail sampling go through tail.c. */
            int tail = (h->flags & (DYNOBS_RECF_UNSAMPLED | DYNOBS_RECF_KEEP)) != 0;
            int rc = tail ? dx_tail_span(s->src.res, h, now)
                          : dx_queue_put(DX_TRACES, s->src.res, h, h->len);
            if (rc == 0 && !tail)
                dx_ui_span(s->src.res->service, h, now);
            if (rc == 0) {
                drained[DX_TRACES]++;
                moved++;
            }
        } else if (h->type == DYNOBS_REC_LOG) {
            if (dx_queue_put(DX_LOGS, s->src.res, h, h->len) == 0) {
                dx_ui_log(s->src.res->service, h);
                drained[DX_LOGS]++;
                moved++;
            }
        } else {
            rd->corrupt++;
        }
    }
    double f = (double)bytes / (double)rd->hdr.shard_bytes;
    if (dx_queue_room(DX_TRACES) <= 0 || dx_queue_room(DX_LOGS) <= 0) {
        /* Stopped by the queue: what is left counts as well, PADs and all
         * (too full a reading only brings the next pass sooner). */
        for (uint32_t i = 0; i < rd->nshards; i++) {
            const struct dynobs_reader_shard *sh = &rd->shards[i];
            uint64_t used = __atomic_load_n(sh->ring.head, __ATOMIC_RELAXED) - sh->tail;
            double left = used > sh->ring.cap ? 1.0 : (double)used / (double)sh->ring.cap;
            if (left > f)
                f = left;
        }
    }
    if (f > 1.0)
        f = 1.0;
    if (f > fullest)
        fullest = f;
    dx_stats_add(DX_RECORDS_CORRUPT, rd->corrupt - corrupt0);
    dx_stats_add(DX_RECORDS_ABANDONED, rd->abandoned - abandoned0);
    dx_stats_add(DX_RECORDS_UNRESOLVED, rd->unresolved - unresolved0);
    for (int k = 0; k < DX_QUEUED_SIGNALS; k++)
        dx_stats_add_signal(DX_RECORDS_DRAINED, (enum dx_signal)k, drained[k]);
    if (rd->consumer) {
        __atomic_store_n(&rd->consumer->last_drain_ns, dynobs__now_ns(), __ATOMIC_RELAXED);
        if (__atomic_load_n(&rd->consumer->rules_generation, __ATOMIC_RELAXED) != rules_generation)
            __atomic_store_n(&rd->consumer->rules_generation, rules_generation, __ATOMIC_RELEASE);
    }
    DX_GUARD_END();
    return moved;
}

/* Detaches a segment whose mapping faulted, and refuses it from now on. */
static void drop_broken(struct dx_segment *s)
{
    struct stat st;
    const char *name = strrchr(s->path, '/');
    name = name ? name + 1 : s->path;
    dx_log(DX_WARN, "segment %s shrank while mapped; dropped", s->path);
    if (lstat(s->path, &st) == 0)
        reject(name, st.st_ino, "it shrank while mapped");
}

double dx_segments_fullest(void)
{
    return fullest;
}

size_t dx_segments_drain(void)
{
    size_t moved = 0;
    fullest = 0;
    for (struct dx_segment *s = segments; s; s = s->next)
        moved += drain_one(s);
    return moved;
}

/* Folds an exited process's counters into the totals (under the lock). */
static void fold(struct dx_segment *s)
{
    sigjmp_buf jb;
    if (DX_GUARD_BEGIN(jb)) {
        dx_store_fold(&s->src);
        folded_ring_dropped += dynobs__reader_counter(s->src.rd, DYNOBS_CTR_RECORDS_DROPPED);
        folded_ring_written += dynobs__reader_counter(s->src.rd, DYNOBS_CTR_RECORDS_WRITTEN);
    } else {
        seg_set_broken(s);
    }
    DX_GUARD_END();
}

void dx_segments_reap(void)
{
    struct dx_segment **pp = &segments;
    while (*pp) {
        struct dx_segment *s = *pp;
        if (!seg_broken(s) && dynobs__reader_producer_alive(s->src.rd)) {
            pp = &s->next;
            continue;
        }
        /* Gone: what is left in its ring is all there will ever be. */
        drain_one(s);
        struct dynobs_reader *rd = s->src.rd;
        if (!seg_broken(s) && (dx_queue_room(DX_TRACES) == 0 || dx_queue_room(DX_LOGS) == 0)) {
            /* No room now: come back once the sender has caught up. */
            pp = &s->next;
            continue;
        }
        pthread_mutex_lock(&lock);
        if (!seg_broken(s))
            fold(s);
        *pp = s->next;
        nsegments--;
        list_gen++;
        /* Counted under the lock, so that /metrics never sees the
         * segment both attached and reaped. */
        if (!seg_broken(s))
            dx_stats_add(DX_SEGMENTS_REAPED, 1);
        pthread_mutex_unlock(&lock);
        if (seg_broken(s)) {
            drop_broken(s);
        } else {
            if (unlink(s->path) < 0 && errno != ENOENT)
                dx_log(DX_WARN, "cannot remove %s: %s", s->path, strerror(errno));
            dx_log(DX_DEBUG, "reaped %s (service %s, pid %d)", s->path, s->src.res->service,
                   s->src.res->pid);
        }
        dynobs__reader_close(rd);
        free(rd);
        free(s->src.slot_series);
        dx_resource_unref(s->src.res);
        free(s);
    }
}

void dx_segments_close_all(void)
{
    pthread_mutex_lock(&lock);
    while (segments) {
        struct dx_segment *s = segments;
        segments = s->next;
        dynobs__reader_close(s->src.rd);
        free(s->src.rd);
        free(s->src.slot_series);
        dx_resource_unref(s->src.res);
        free(s);
    }
    nsegments = 0;
    list_gen++;
    pthread_mutex_unlock(&lock);
}

int dx_segments_any_broken(void)
{
    for (struct dx_segment *s = segments; s; s = s->next)
        if (seg_broken(s))
            return 1;
    return 0;
}

int dx_segments_count(void)
{
    return nsegments;
}

void dx_segments_lock(void)
{
    pthread_mutex_lock(&lock);
}

void dx_segments_unlock(void)
{
    pthread_mutex_unlock(&lock);
}

void dx_segments_snapshot(void)
{
    dx_store_snapshot_begin();
    for (struct dx_segment *s = segments; s; s = s->next)
        if (!seg_broken(s) && dx_store_snapshot_add(&s->src) < 0)
            seg_set_broken(s); /* the main thread drops it */
    dx_store_snapshot_end();
}

uint64_t dx_segments_generation(void)
{
    return list_gen;
}

void dx_segments_each(int (*fn)(struct dx_store_source *src, void *arg), void *arg)
{
    for (struct dx_segment *s = segments; s; s = s->next)
        if (!seg_broken(s) && fn(&s->src, arg) < 0)
            seg_set_broken(s); /* the main thread drops it */
}

/* Adds a live segment's ring counters; false when its mapping faulted. */
static int add_ring_counters(struct dx_segment *s, uint64_t *written, uint64_t *dropped)
{
    sigjmp_buf jb;
    volatile int ok = 0; /* read after a SIGBUS jump */
    if (DX_GUARD_BEGIN(jb)) {
        *dropped += dynobs__reader_counter(s->src.rd, DYNOBS_CTR_RECORDS_DROPPED);
        *written += dynobs__reader_counter(s->src.rd, DYNOBS_CTR_RECORDS_WRITTEN);
        ok = 1;
    }
    DX_GUARD_END();
    return ok;
}

void dx_segments_ring_totals(uint64_t *written, uint64_t *dropped)
{
    uint64_t w = folded_ring_written, d = folded_ring_dropped;
    for (struct dx_segment *s = segments; s; s = s->next)
        if (seg_broken(s) || !add_ring_counters(s, &w, &d))
            seg_set_broken(s);
    *written = w;
    *dropped = d;
}
