/*
 * The rules in force (rulesmap.h). A table is copied out of its file into
 * memory of our own before it is validated, so that nothing the exporter
 * (or anyone else) does to the file later can change or fault what
 * threads read. Tables once in force are never freed: a thread may still
 * be reading the one before; each reload keeps a few kilobytes.
 */
#define _GNU_SOURCE
#include "rulesmap.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "policy.h"
#include "state.h"

#include "../common/metrics.h"
#include "../common/rules_default.h"
#include "../common/segment.h"

struct holder {
    struct dynobs_rules r;
    struct dynobs_rules_proc p;
    /* The policy of spans begun without facts for the rules (API spans):
     * the first sampling entry that names no span field, if any. */
    struct dynobs_sampler def_sampler;
    struct dynobs_span_policy def_pol;
    _Alignas(16) uint8_t bytes[]; /* the table, when it came from a file */
};

static const uint64_t no_generation; /* until the segment exists */
const uint64_t *dynobs__rules_gen_word DYNOBS_HOT_DATA = &no_generation;
uint64_t dynobs__rules_seen DYNOBS_HOT_DATA;
const struct dynobs_rules_proc *dynobs__rules_cur DYNOBS_HOT_DATA;

static int busy;
/* A generation that could not be loaded is tried again a second later
 * (its file may not be there yet), not on every call in between. */
static uint64_t failed_gen, retry_at;
static struct dynobs_segment *segment;

/* DIR "/.rules." suffix, formatted by hand (no stdio in the shim);
 * suffix NULL: the generation's digits. */
static void rules_path(char *path, uint64_t gen, const char *suffix)
{
    char digits[24];
    size_t dl = 0, dn = strnlen(dynobs__config.shm_dir, DYNOBS_PATH_MAX);
    if (suffix) {
        dl = strlen(suffix);
        memcpy(digits, suffix, dl);
    } else {
        char rev[24];
        size_t n = 0;
        do
            rev[n++] = (char)('0' + gen % 10);
        while ((gen /= 10) && n < sizeof rev);
        while (dl < n) {
            digits[dl] = rev[n - 1 - dl];
            dl++;
        }
    }
    memcpy(path, dynobs__config.shm_dir, dn);
    memcpy(path + dn, "/.rules.", 8);
    memcpy(path + dn + 8, digits, dl);
    path[dn + 8 + dl] = '\0';
}

/* Opens a file of the exporter's: a regular file of root's or ours. */
static int open_ours(const char *path, struct stat *st)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    if (syscall(SYS_fstat, fd, st) < 0 || !S_ISREG(st->st_mode) ||
        (st->st_uid != 0 && st->st_uid != geteuid())) {
        syscall(SYS_close, fd);
        return -1;
    }
    return fd;
}

/* The generation DIR/.rules.current names (the exporter's latest), or 0. */
static uint64_t current_generation(void)
{
    char path[DYNOBS_PATH_MAX + 32], text[32];
    rules_path(path, 0, "current");
    struct stat st;
    int fd = open_ours(path, &st);
    if (fd < 0)
        return 0;
    long n = syscall(SYS_read, fd, text, sizeof text - 1);
    syscall(SYS_close, fd);
    uint64_t g = 0;
    for (long i = 0; i < n && text[i] >= '0' && text[i] <= '9' && g < UINT64_MAX / 10; i++)
        g = g * 10 + (uint64_t)(text[i] - '0');
    return g;
}

void dynobs__rules_attach(struct dynobs_segment *seg)
{
    __atomic_store_n(&segment, seg, __ATOMIC_RELEASE);
    struct dynobs_seg_consumer *c =
        (struct dynobs_seg_consumer *)(seg->base + seg->hdr->consumer_offset);
    /* A process that starts while an exporter runs takes its rules from
     * its first span, not from the exporter's first drain: the page is
     * the exporter's to write, so only a generation not written yet is
     * filled in (the exporter's next drain sets it right in any case). */
    uint64_t zero = 0, g = current_generation();
    if (g)
        __atomic_compare_exchange_n(&c->rules_generation, &zero, g, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED);
    __atomic_store_n(&dynobs__rules_gen_word, &c->rules_generation, __ATOMIC_RELEASE);
    /* Bound again now that the service's name is known. */
    __atomic_store_n(&dynobs__rules_seen, UINT64_MAX, __ATOMIC_RELEASE);
}

void dynobs__rules_detach(void)
{
    __atomic_store_n(&segment, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&dynobs__rules_gen_word, &no_generation, __ATOMIC_RELEASE);
    /* The bound table stays in force until the child's segment names one. */
    __atomic_store_n(&dynobs__rules_seen, 0, __ATOMIC_RELEASE);
    /* A thread of the parent may have held it: it is not in the child. */
    __atomic_store_n(&busy, 0, __ATOMIC_RELAXED);
}

/* A holder with room for a table of `extra` bytes. */
static struct holder *holder_new(size_t extra)
{
    void *m = mmap(NULL, sizeof(struct holder) + extra, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

/* The built-in defaults, in a holder of their own each time they come
 * into force (another thread may still read the previous binding). */
static struct holder *defaults(void)
{
    struct holder *h = holder_new(0);
    if (h && dynobs__rules_open(&h->r, dynobs__rules_default, dynobs__rules_default_len) < 0) {
        munmap(h, sizeof *h);
        h = NULL;
    }
    return h;
}

/* Binds a table to this process: its service.name (from the segment, once
 * there is one) and executable. */
static void bind(struct holder *h)
{
    static char exe[1024];
    if (!exe[0]) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
    }
    char service[DYNOBS_SERVICE_NAME_MAX + 1] = "";
    const struct dynobs_segment *seg = __atomic_load_n(&segment, __ATOMIC_ACQUIRE);
    if (seg) {
        size_t n = seg->hdr->service_name_len;
        if (n > DYNOBS_SERVICE_NAME_MAX)
            n = DYNOBS_SERVICE_NAME_MAX;
        memcpy(service, seg->hdr->service_name, n);
        service[n] = '\0';
    }
    dynobs__rules_bind(&h->p, &h->r, service, exe);
}

/* DIR/.rules.<gen>, copied into a new holder and validated; NULL when it
 * cannot be read, is not ours or root's, or does not validate. Raw
 * system calls: our own read and close interposers stay out of it. */
static struct holder *load(uint64_t want)
{
    char path[DYNOBS_PATH_MAX + 32];
    rules_path(path, want, NULL);
    struct stat st;
    int fd = open_ours(path, &st);
    if (fd < 0)
        return NULL;
    struct holder *h = NULL;
    size_t size = 0;
    if (st.st_size <= 0 || (uint64_t)st.st_size > DYNOBS_RULES_MAX_BYTES)
        goto out;
    size = sizeof *h + (size_t)st.st_size;
    h = holder_new((size_t)st.st_size);
    if (!h)
        goto out;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        long n = syscall(SYS_read, fd, h->bytes + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got != (size_t)st.st_size || dynobs__rules_open(&h->r, h->bytes, got) < 0 ||
        h->r.hdr->generation != want) {
        munmap(h, size);
        h = NULL;
    }
out:
    syscall(SYS_close, fd);
    return h;
}

static void store_if_changed(uint32_t *word, uint32_t v)
{
    if (__atomic_load_n(word, __ATOMIC_RELAXED) != v)
        __atomic_store_n(word, v, __ATOMIC_RELAXED);
}

/* The settings of the whole file that the shim keeps outside the table;
 * what the file leaves unset goes back to the environment's value. */
static void apply(struct holder *h)
{
    static int saved;
    static uint32_t env_value_limit, env_count_limit;
    static const struct dynobs_span_policy *env_policy;
    if (!saved) {
        env_value_limit = dynobs__config.attr_value_limit;
        env_count_limit = dynobs__config.attr_count_limit;
        env_policy = dynobs__span_default_policy();
        saved = 1;
    }
    const struct dynobs_rules_hdr *hd = h->r.hdr;
    dynobs__metric_cardinality_set(hd->cardinality_limit);
    store_if_changed(&dynobs__config.attr_value_limit,
                     hd->attr_value_limit ? hd->attr_value_limit : env_value_limit);
    store_if_changed(&dynobs__config.attr_count_limit,
                     hd->attr_count_limit ? hd->attr_count_limit : env_count_limit);
    const struct dynobs_rule_facts none = {0};
    const struct dynobs_rule_sampler *e = dynobs__rules_sampler(&h->p, &none);
    if (e) {
        dynobs__rule_sampler(e, &h->def_sampler);
        h->def_pol.sampler = &h->def_sampler;
        h->def_pol.keep = e->keep;
        h->def_pol.keep_slower_ms = e->keep_slower_ms;
        dynobs__span_default_policy_set(&h->def_pol);
    } else {
        dynobs__span_default_policy_set(env_policy);
    }
}

DYNOBS_COLD const struct dynobs_rules_proc *dynobs__rules_refresh(uint64_t gen)
{
    const struct dynobs_rules_proc *cur = __atomic_load_n(&dynobs__rules_cur, __ATOMIC_ACQUIRE);
    if (cur && gen == __atomic_load_n(&failed_gen, __ATOMIC_RELAXED) &&
        dynobs__mono_ns() < __atomic_load_n(&retry_at, __ATOMIC_RELAXED))
        return cur;
    /* One thread does the work; the others go on with the rules in force
     * (the defaults' first setting up included: they see NULL then). */
    if (__atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE))
        return cur;
    /* The segment's consumer page names the generation: a process whose
     * segment does not exist yet makes it now rather than start on the
     * defaults (it is about to record anyway). */
    if (!__atomic_load_n(&segment, __ATOMIC_ACQUIRE) && dynobs__segment())
        gen = __atomic_load_n(__atomic_load_n(&dynobs__rules_gen_word, __ATOMIC_ACQUIRE),
                              __ATOMIC_ACQUIRE);
    dynobs__tls.guard++;
    struct holder *h = gen == 0 ? defaults() : load(gen);
    if (h) {
        bind(h);
        apply(h);
        cur = &h->p;
        __atomic_store_n(&dynobs__rules_cur, cur, __ATOMIC_RELEASE);
        __atomic_store_n(&dynobs__rules_seen, gen, __ATOMIC_RELEASE);
    } else {
        /* The rules in force stay; this generation is tried again later.
         * Counted in the segment, so that /metrics shows it per service. */
        struct dynobs_metric_def def = {.name = "dynobs.rules.load_failures",
                                        .kind = DYNOBS_METRIC_COUNTER};
        struct dynobs_segment *seg = __atomic_load_n(&segment, __ATOMIC_ACQUIRE);
        if (seg && dynobs__metric_update(&seg->metrics, &def, 1, "") < 0)
            dynobs__count(DYNOBS_CTR_METRIC_UPDATES_REFUSED);
        __atomic_store_n(&retry_at, dynobs__mono_ns() + 1000000000ull, __ATOMIC_RELAXED);
        __atomic_store_n(&failed_gen, gen, __ATOMIC_RELAXED);
    }
    dynobs__tls.guard--;
    __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
    return cur;
}
