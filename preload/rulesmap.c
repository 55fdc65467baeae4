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
const uint64_t *dynobs__rules_gen_word = &no_generation;
uint64_t dynobs__rules_seen;
const struct dynobs_rules_proc *dynobs__rules_cur;

static int busy;
static uint64_t failures;
static struct dynobs_segment *segment;

uint64_t dynobs__rules_failures(void)
{
    return __atomic_load_n(&failures, __ATOMIC_RELAXED);
}

void dynobs__rules_attach(struct dynobs_segment *seg)
{
    segment = seg;
    const struct dynobs_seg_consumer *c =
        (const struct dynobs_seg_consumer *)(seg->base + seg->hdr->consumer_offset);
    __atomic_store_n(&dynobs__rules_gen_word, &c->rules_generation, __ATOMIC_RELEASE);
    /* Bound again now that the service's name is known. */
    __atomic_store_n(&dynobs__rules_seen, UINT64_MAX, __ATOMIC_RELEASE);
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
    if (segment) {
        size_t n = segment->hdr->service_name_len;
        if (n > DYNOBS_SERVICE_NAME_MAX)
            n = DYNOBS_SERVICE_NAME_MAX;
        memcpy(service, segment->hdr->service_name, n);
        service[n] = '\0';
    }
    dynobs__rules_bind(&h->p, &h->r, service, exe);
}

/* DIR/.rules.<gen>, copied into a new holder and validated; NULL when it
 * cannot be read, is not ours or root's, or does not validate. Raw
 * system calls: our own read and close interposers stay out of it. */
static struct holder *load(uint64_t want)
{
    uint64_t gen = want;
    /* DIR "/.rules." digits, formatted by hand: no stdio in the shim. */
    char path[DYNOBS_PATH_MAX + 32], digits[24];
    size_t dl = 0, dn = strnlen(dynobs__config.shm_dir, DYNOBS_PATH_MAX);
    do
        digits[dl++] = (char)('0' + gen % 10);
    while ((gen /= 10) && dl < sizeof digits);
    memcpy(path, dynobs__config.shm_dir, dn);
    memcpy(path + dn, "/.rules.", 8);
    for (size_t i = 0; i < dl; i++)
        path[dn + 8 + i] = digits[dl - 1 - i];
    path[dn + 8 + dl] = '\0';
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    struct holder *h = NULL;
    struct stat st;
    size_t size = 0;
    if (syscall(SYS_fstat, fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (st.st_uid != 0 && st.st_uid != geteuid()) || st.st_size <= 0 ||
        (uint64_t)st.st_size > DYNOBS_RULES_MAX_BYTES)
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

const struct dynobs_rules_proc *dynobs__rules_refresh(uint64_t gen)
{
    const struct dynobs_rules_proc *cur = __atomic_load_n(&dynobs__rules_cur, __ATOMIC_ACQUIRE);
    /* One thread does the work; the others go on with the rules in force
     * (the defaults' first setting up included: they see NULL then). */
    if (__atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE))
        return cur;
    dynobs__guard++;
    struct holder *h = gen == 0 ? defaults() : load(gen);
    if (h) {
        bind(h);
        apply(h);
        cur = &h->p;
        __atomic_store_n(&dynobs__rules_cur, cur, __ATOMIC_RELEASE);
    } else {
        __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
    }
    /* Also after a failure: the rules in force stay until the exporter
     * publishes another generation, rather than every call trying again. */
    __atomic_store_n(&dynobs__rules_seen, gen, __ATOMIC_RELEASE);
    dynobs__guard--;
    __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
    return cur;
}
