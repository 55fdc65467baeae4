/*
 * The traced processes: one entry per process the kernel side follows,
 * made at its first event (or when --pid/--exe names it), with its
 * segment (made at its first span, named and stamped as the process's
 * own, so the exporter reaps it when the process ends) and its route
 * trie. A process that has libdynobs.so mapped is traced by the shim:
 * it is marked and nothing of it is recorded here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "resource.h"

#include <bpf/libbpf.h>
#include <gelf.h>
#include <libelf.h>

#define PROCS_MAX 1024
#define ROUTE_NODES 1024
#define SEG_RING_BYTES (16u << 20) /* grows from SEG_RING_START as needed */
#define SEG_RING_START (512u << 10)
#define SEG_METRIC_SLOTS 256u

static struct eproc *procs[PROCS_MAX];
static char seg_dir[512];

void dynobs__eproc_set_dir(const char *dir)
{
    snprintf(seg_dir, sizeof seg_dir, "%s", dir);
}

static int slot_of(int pid)
{
    for (int i = 0; i < PROCS_MAX; i++) {
        int j = (int)(((unsigned)pid * 2654435761u + (unsigned)i) % PROCS_MAX);
        if (!procs[j] || procs[j]->pid == pid)
            return j;
    }
    return -1;
}

/* 1 when the process maps libdynobs.so (preloaded, or linked). */
static int has_shim(int pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "/libdynobs.so") != NULL;
    fclose(f);
    return found;
}

static void resource_of(int pid, struct dynobs_resource *r);

/* 1 for a Go executable (it has a .go.buildinfo section): its goroutines
 * move between threads, so the thread that read a request says nothing
 * of which request a call belongs to. */
static int is_go(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || elf_version(EV_CURRENT) == EV_NONE) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    int go = 0;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    size_t shstr;
    if (e && elf_getshdrstrndx(e, &shstr) == 0) {
        for (Elf_Scn *s = NULL; !go && (s = elf_nextscn(e, s));) {
            GElf_Shdr sh;
            const char *name;
            if (gelf_getshdr(s, &sh) && (name = elf_strptr(e, shstr, sh.sh_name)))
                go = !strcmp(name, ".go.buildinfo");
        }
    }
    if (e)
        elf_end(e);
    close(fd);
    return go;
}

/* 1 when the process's environment preloads libdynobs.so. */
static int preload_env(int pid)
{
    char path[64], buf[16384];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    for (ssize_t i = 0; i < n;) {
        const char *e = buf + i;
        size_t el = strnlen(e, (size_t)(n - i));
        if (el > 11 && !memcmp(e, "LD_PRELOAD=", 11) && memmem(e, el, "libdynobs", 9))
            return 1;
        i += (ssize_t)el + 1;
    }
    return 0;
}

/* Looks for the shim, then attaches the probes of a traced process. */
static void resolve(struct eproc *p)
{
    p->pending = 0;
    p->state = has_shim(p->pid) == 1 ? EPROC_PRELOADED : EPROC_TRACED;
    if (p->state == EPROC_PRELOADED) {
        EBPF_COUNT(preloaded, 1);
        dynobs__ebpf_log(DYNOBS_EBPF_INFO, "pid %d has libdynobs.so: traced by the shim, not by eBPF",
                         p->pid);
        return;
    }
    EBPF_COUNT(processes, 1);
    /* read now: by its first span the process may be gone */
    resource_of(p->pid, &p->res);
    p->res_ok = 1;
    p->go = is_go(p->pid);
    dynobs__ebpf_log(DYNOBS_EBPF_INFO, "tracing pid %d%s", p->pid,
                     p->go ? " (Go: its outbound calls are not linked to requests)" : "");
    dynobs__attach_process(p);
}

struct eproc *dynobs__eproc(int pid, int how)
{
    int i = slot_of(pid);
    if (i < 0)
        return NULL;
    if (procs[i] || how == EPROC_FIND) {
        if (procs[i] && procs[i]->pending && how == EPROC_RESOLVED)
            resolve(procs[i]);
        return procs[i];
    }
    uint64_t ticks = dynobs__proc_start_ticks(pid);
    if (!ticks)
        return NULL; /* gone already */
    struct eproc *p = calloc(1, sizeof *p);
    struct dynobs_route_node *nodes = calloc(ROUTE_NODES, sizeof *nodes);
    if (!p || !nodes) {
        free(p);
        free(nodes);
        return NULL;
    }
    p->pid = pid;
    p->ticks = ticks;
    p->nodes = nodes;
    struct dynobs_route_trie t = DYNOBS_ROUTE_TRIE_INIT(nodes, ROUTE_NODES);
    p->trie = t;
    procs[i] = p;
    if (how == EPROC_PENDING) {
        /* just exec'd: the dynamic loader has not mapped its libraries
         * yet, but its environment says whether LD_PRELOAD will bring the
         * shim (read now: a short process may be gone by its first event) */
        if (preload_env(pid)) {
            p->state = EPROC_PRELOADED;
            EBPF_COUNT(preloaded, 1);
            dynobs__ebpf_log(DYNOBS_EBPF_INFO,
                             "pid %d has libdynobs.so: traced by the shim, not by eBPF", pid);
            return p;
        }
        p->pending = 1;
        p->state = EPROC_TRACED;
        p->next_scan_ns = 0;
        return p;
    }
    resolve(p);
    return p;
}

/* Reads NAME=value from /proc/PID/environ into out ("" when absent). */
static void env_of(const char *environ, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        const char *e = environ + i;
        size_t el = strnlen(e, n - i);
        if (el > nl && !memcmp(e, name, nl) && e[nl] == '=') {
            snprintf(out, cap, "%.*s", (int)(el - nl - 1), e + nl + 1);
            return;
        }
        i += el + 1;
    }
}

static void resource_of(int pid, struct dynobs_resource *r)
{
    static char environ[65536];
    char path[64], exe[256] = "", svc[256], attrs[1024], extra[1100];
    size_t n = 0;
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k;
        while (n < sizeof environ && (k = read(fd, environ + n, sizeof environ - n)) > 0)
            n += (size_t)k;
        close(fd);
    }
    env_of(environ, n, "OTEL_SERVICE_NAME", svc, sizeof svc);
    env_of(environ, n, "OTEL_RESOURCE_ATTRIBUTES", attrs, sizeof attrs);
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    char target[512];
    ssize_t l = readlink(path, target, sizeof target - 1);
    if (l > 0) {
        target[l] = '\0';
        const char *b = strrchr(target, '/');
        snprintf(exe, sizeof exe, "%.255s", b ? b + 1 : target);
    }
    /* where these spans came from, for whoever reads them */
    snprintf(extra, sizeof extra, "%s%sdynobs.source=ebpf", attrs, *attrs ? "," : "");
    dynobs__resource_build(r, *svc ? svc : NULL, extra, exe);
}

struct dynobs_segment *dynobs__eproc_segment(struct eproc *p)
{
    if (p->seg_ok)
        return &p->seg;
    if (p->seg_tried)
        return NULL;
    p->seg_tried = 1;
    if (!p->res_ok)
        resource_of(p->pid, &p->res);
    struct dynobs_segment_params sp = {
        .dir = seg_dir,
        .ring_bytes = SEG_RING_BYTES,
        .ring_start_bytes = SEG_RING_START,
        .ring_shards = 1,
        .metric_slots = SEG_METRIC_SLOTS,
        .pid = p->pid,
        .ppid = 0,
        .start_ticks = p->ticks,
        .resource = &p->res,
    };
    int rc = dynobs__segment_create(&p->seg, &sp);
    if (rc < 0) {
        dynobs__ebpf_log(DYNOBS_EBPF_ERROR, "pid %d: cannot create its segment in %s: %s", p->pid,
                         seg_dir, strerror(-rc));
        return NULL;
    }
    p->seg_ok = 1;
    return &p->seg;
}

/* Detaching a uprobe waits for the kernel (RCU grace periods: about
 * 200 ms each here), so links of processes that ended are destroyed on a
 * thread of their own, not on the one reading events. */
static struct bpf_link **dead;
static size_t ndead, capdead;
static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dead_cond = PTHREAD_COND_INITIALIZER;
static pthread_t reaper;
static int reaper_on, reaper_stop;

static void *reap_links(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&dead_lock);
    for (;;) {
        while (!ndead && !reaper_stop)
            pthread_cond_wait(&dead_cond, &dead_lock);
        if (!ndead && reaper_stop)
            break;
        struct bpf_link *l = dead[--ndead];
        pthread_mutex_unlock(&dead_lock);
        bpf_link__destroy(l);
        pthread_mutex_lock(&dead_lock);
    }
    pthread_mutex_unlock(&dead_lock);
    return NULL;
}

static void link_release(struct bpf_link *l)
{
    pthread_mutex_lock(&dead_lock);
    if (!reaper_on && pthread_create(&reaper, NULL, reap_links, NULL) == 0)
        reaper_on = 1;
    if (ndead == capdead) {
        size_t cap = capdead ? capdead * 2 : 256;
        struct bpf_link **n = realloc(dead, cap * sizeof *n);
        if (n) {
            dead = n;
            capdead = cap;
        }
    }
    if (reaper_on && ndead < capdead) {
        dead[ndead++] = l;
        pthread_cond_signal(&dead_cond);
        l = NULL;
    }
    pthread_mutex_unlock(&dead_lock);
    if (l)
        bpf_link__destroy(l);
}

void dynobs__eproc_reaper_stop(void)
{
    pthread_mutex_lock(&dead_lock);
    reaper_stop = 1;
    pthread_cond_signal(&dead_cond);
    int on = reaper_on;
    pthread_mutex_unlock(&dead_lock);
    if (on)
        pthread_join(reaper, NULL);
    free(dead);
    dead = NULL;
    ndead = capdead = 0;
    reaper_on = reaper_stop = 0;
}

static void drop(int i)
{
    struct eproc *p = procs[i];
    for (int k = 0; k < p->nlinks; k++)
        link_release(p->links[k]);
    if (p->seg_ok)
        dynobs__segment_detach(&p->seg);
    if (p->state == EPROC_TRACED && !p->pending)
        EBPF_COUNT(processes, (uint64_t)-1);
    dynobs__http_forget(p->pid);
    dynobs__pq_forget(p->pid);
    dynobs__ethread_forget(p->pid);
    free(p->nodes);
    free(p);
    procs[i] = NULL;
    /* open addressing: the entries after this one move up if they can */
    for (int j = (i + 1) % PROCS_MAX; procs[j]; j = (j + 1) % PROCS_MAX) {
        struct eproc *q = procs[j];
        procs[j] = NULL;
        procs[slot_of(q->pid)] = q;
    }
}

void dynobs__eproc_gone(int pid)
{
    int i = slot_of(pid);
    if (i >= 0 && procs[i]) {
        dynobs__ebpf_log(DYNOBS_EBPF_INFO, "pid %d ended", pid);
        drop(i);
    }
}

void dynobs__eproc_all_gone(void)
{
    for (int i = 0; i < PROCS_MAX; i++)
        while (procs[i])
            drop(i);
}

void dynobs__eproc_tick(uint64_t now_ns)
{
    for (int i = 0; i < PROCS_MAX; i++) {
        struct eproc *p = procs[i];
        if (!p || now_ns < p->next_scan_ns)
            continue;
        p->next_scan_ns = now_ns + 500000000ull;
        if (dynobs__proc_start_ticks(p->pid) != p->ticks) {
            drop(i);
            i--; /* another entry may have moved here */
            continue;
        }
        if (p->pending) {
            if (!p->pending_since) {
                p->pending_since = now_ns;
                p->next_scan_ns = now_ns + 200000000ull;
                continue;
            }
            resolve(p);
            continue;
        }
        if (p->state != EPROC_TRACED)
            continue;
        if (has_shim(p->pid) == 1) {
            /* it loaded the shim itself (Python's dynobs package, say):
             * from now on its spans are the shim's */
            dynobs__ebpf_log(DYNOBS_EBPF_INFO, "pid %d loaded libdynobs.so: left to the shim",
                             p->pid);
            for (int k = 0; k < p->nlinks; k++)
                link_release(p->links[k]);
            p->nlinks = 0;
            if (p->seg_ok)
                dynobs__segment_detach(&p->seg);
            p->seg_ok = 0;
            p->state = EPROC_PRELOADED;
            EBPF_COUNT(processes, (uint64_t)-1);
            EBPF_COUNT(preloaded, 1);
            dynobs__http_forget(p->pid);
            dynobs__pq_forget(p->pid);
            continue;
        }
        dynobs__attach_process(p); /* libraries loaded since */
    }
}
