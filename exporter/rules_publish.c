#define _GNU_SOURCE
#include "rules_publish.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diag.h"
#include "prometheus.h"
#include "rules_default.h"
#include "segments.h"
#include "util.h"

#define MAX_LISTENERS 8
#define POLL_NS 1000000000ull /* the file is looked at once a second */

static dx_rules_listener listeners[MAX_LISTENERS];
static int nlisteners;

static char dir[512];
static char path[1024];
static uint64_t last_poll;
/* What the file was when last looked at: a change in any of these makes
 * it read again. */
static struct {
    int present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} seen;

/* Read by /metrics on the server's thread, written by the main thread. */
static uint64_t generation;
static uint64_t reloads_ok, reloads_failed;
static int last_ok = 1;

int dx_rules_listen(dx_rules_listener fn)
{
    if (nlisteners == MAX_LISTENERS)
        return -1;
    listeners[nlisteners++] = fn;
    return 0;
}

uint64_t dx_rules_generation(void)
{
    return __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
}

/* Tables in force are never freed: a listener may keep pointers into the
 * one it was given (a reload is rare and a table a few KB). */
static void bring_into_force(const void *bytes, size_t len)
{
    struct dynobs_rules *r = malloc(sizeof *r);
    if (!r || dynobs__rules_open(r, bytes, len) < 0) {
        /* The compiler's output that the reader refuses is a bug of ours:
         * say so, and keep what is in force. */
        dx_log(DX_ERROR, "rules: the compiled table does not validate; not applied");
        free(r);
        return;
    }
    for (int i = 0; i < nlisteners; i++)
        listeners[i](r);
}

/* DIR/.rules.<gen>: written under a temporary name, renamed into place,
 * readable by every user (shims of other users served by a root
 * exporter), never writable but by us. Shims accept it only from root or
 * their own user. */
static int write_file(const char *name, const void *bytes, size_t len)
{
    char tmp[1200], final[1200];
    snprintf(tmp, sizeof tmp, "%s/.rules.tmp.%d", dir, (int)getpid());
    snprintf(final, sizeof final, "%s/%s", dir, name);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    /* The umask must not make the file unreadable to other users' shims. */
    if (fchmod(fd, 0644) < 0) {
        int e = -errno;
        close(fd);
        unlink(tmp);
        return e;
    }
    const uint8_t *p = bytes;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? -errno : -EIO;
            close(fd);
            unlink(tmp);
            return e;
        }
        done += (size_t)n;
    }
    if (close(fd) < 0 || rename(tmp, final) < 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

static int write_table(uint64_t gen, const void *bytes, size_t len)
{
    char name[64];
    snprintf(name, sizeof name, ".rules.%" PRIu64, gen);
    return write_file(name, bytes, len);
}

/* DIR/.rules.current names the latest generation, for processes that
 * start before the exporter's first drain of their segment. */
static void write_current(uint64_t gen)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%" PRIu64 "\n", gen);
    int rc = write_file(".rules.current", text, (size_t)n);
    if (rc < 0)
        dx_log(DX_WARN, "rules: cannot write %s/.rules.current: %s (new processes take the "
               "rules at their first drain)", dir, strerror(-rc));
}

static void remove_current(void)
{
    char current[1200];
    struct stat st;
    snprintf(current, sizeof current, "%s/.rules.current", dir);
    if (lstat(current, &st) == 0 && st.st_uid == geteuid())
        unlink(current);
}

/* Removes published tables older than `keep_from` (ours only: the
 * directory is shared). The one before the current stays, for a shim that
 * noticed it a moment before the switch. */
static void remove_old(uint64_t keep_from)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, ".rules.", 7) != 0 || !e->d_name[7])
            continue;
        errno = 0;
        unsigned long long g = strtoull(e->d_name + 7, &end, 10);
        if (*end || errno || g >= keep_from)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            st.st_uid == geteuid())
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

/* A generation is the wall clock in milliseconds, or one more than the
 * last: a restarted exporter never reuses a number that a running shim
 * may still hold for another table. */
static uint64_t next_generation(void)
{
    uint64_t now = dynobs__now_ns() / 1000000u, cur = dx_rules_generation();
    return now > cur ? now : cur + 1;
}

static void load(void)
{
    void *bytes = NULL;
    size_t len = 0;
    struct dynobs_rules_error err;
    int rc = dynobs__rules_compile_file(path, &bytes, &len, &err);
    if (rc < 0) {
        char msg[1024];
        dynobs__rules_error_format(&err, msg, sizeof msg);
        dx_log(DX_ERROR, "rules: %s; the rules in force (generation %" PRIu64 ") stay", msg,
               dx_rules_generation());
        __atomic_add_fetch(&reloads_failed, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&last_ok, 0, __ATOMIC_RELAXED);
        return;
    }
    uint64_t gen = next_generation();
    ((struct dynobs_rules_hdr *)bytes)->generation = gen;
    rc = write_table(gen, bytes, len);
    if (rc < 0) {
        dx_log(DX_ERROR, "rules: cannot publish %s/.rules.%" PRIu64 ": %s; the rules in force stay",
               dir, gen, strerror(-rc));
        free(bytes);
        __atomic_add_fetch(&reloads_failed, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&last_ok, 0, __ATOMIC_RELAXED);
        return;
    }
    uint64_t prev = dx_rules_generation();
    bring_into_force(bytes, len); /* bytes stay allocated: see bring_into_force */
    __atomic_store_n(&generation, gen, __ATOMIC_RELEASE);
    write_current(gen);
    dx_segments_publish_rules(gen);
    if (prev)
        remove_old(prev);
    __atomic_add_fetch(&reloads_ok, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&last_ok, 1, __ATOMIC_RELAXED);
    dx_log(DX_INFO, "rules: %s in force (generation %" PRIu64 ")", path, gen);
}

/* 1 when the file differs from what was seen last (and records it). */
static int changed(void)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (seen.present)
            dx_log(DX_WARN, "rules: %s: %s; the rules in force stay", path, strerror(errno));
        seen.present = 0;
        return 0;
    }
    if (seen.present && seen.dev == st.st_dev && seen.ino == st.st_ino &&
        seen.size == st.st_size && seen.mtime.tv_sec == st.st_mtim.tv_sec &&
        seen.mtime.tv_nsec == st.st_mtim.tv_nsec)
        return 0;
    seen.present = 1;
    seen.dev = st.st_dev;
    seen.ino = st.st_ino;
    seen.size = st.st_size;
    seen.mtime = st.st_mtim;
    return 1;
}

static void self_metrics(struct dx_buf *b)
{
    dx_prom_self_gauge(b, "dynobs_exporter_rules_generation",
                       "Generation of the rules table in force (0: built-in defaults)",
                       dx_rules_generation());
    dx_prom_self_gauge(b, "dynobs_exporter_rules_last_reload_success",
                       "1 when the last attempt to load the rules file succeeded",
                       (uint64_t)__atomic_load_n(&last_ok, __ATOMIC_RELAXED));
    dx_prom_self_counter(b, "dynobs_exporter_rules_reloads_total",
                         "Rules files compiled and published",
                         __atomic_load_n(&reloads_ok, __ATOMIC_RELAXED));
    dx_prom_self_counter(b, "dynobs_exporter_rules_reload_failures_total",
                         "Rules files refused (the rules in force stayed)",
                         __atomic_load_n(&reloads_failed, __ATOMIC_RELAXED));
}

void dx_rules_init(const char *segdir, const char *file)
{
    snprintf(dir, sizeof dir, "%s", segdir);
    snprintf(path, sizeof path, "%s", file ? file : "");
    dx_prometheus_self(self_metrics);
    /* Tables an earlier exporter left are of no use to anyone now: the
     * segments we attach get our generation. */
    remove_old(UINT64_MAX);
    remove_current();
    bring_into_force(dynobs__rules_default, dynobs__rules_default_len);
    last_poll = dynobs__mono_ns();
    if (path[0] && changed())
        load();
    else if (path[0])
        dx_log(DX_ERROR, "rules: %s cannot be read; the built-in defaults apply until it can",
               path);
}

void dx_rules_poll(void)
{
    if (!path[0])
        return;
    uint64_t now = dynobs__mono_ns();
    if (now - last_poll < POLL_NS)
        return;
    last_poll = now;
    if (changed())
        load();
}
