/*
 * Uprobes per traced process: the files it has mapped executable that may
 * carry OpenSSL (libssl*, or its executable, as node does) or libpq
 * (libpq*, or its executable), each attached once with the process as
 * the probes' filter, at its functions' offsets (found once per file). A file
 * without a symbol is simply not probed for it. Looked at again every
 * half second (dynobs__eproc_tick): a library loaded late (Python's ssl
 * module) is attached then, and calls before that are not seen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "internal.h"

struct dynobs_ebpf_progs dynobs__ebpf_progs;

struct probe {
    struct bpf_program **prog;
    const char *func;
    int ret;
};

/* The probed functions' file offsets in one file, found in one pass over
 * its symbol tables (libbpf would read the file again for every probe:
 * half a second for node's 100 MB). */
#define NFUNCS 16
struct funcs {
    const char *name[NFUNCS];
    uint64_t off[NFUNCS]; /* 0: not in this file */
    int n;
};

static void funcs_add(struct funcs *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], name))
            return;
    if (f->n < NFUNCS)
        f->name[f->n++] = name;
}

/* A symbol's address to its offset in the file, through the loadable
 * segment that holds it. */
static uint64_t file_offset(Elf *e, uint64_t addr)
{
    size_t n;
    if (elf_getphdrnum(e, &n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X) &&
            addr >= ph.p_vaddr && addr < ph.p_vaddr + ph.p_memsz)
            return addr - ph.p_vaddr + ph.p_offset;
    }
    return 0;
}

static void funcs_find(struct funcs *f, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || elf_version(EV_CURRENT) == EV_NONE) {
        if (fd >= 0)
            close(fd);
        return;
    }
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    for (Elf_Scn *scn = NULL; e && (scn = elf_nextscn(e, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) ||
            !sh.sh_entsize)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t count = sh.sh_size / sh.sh_entsize;
        for (size_t i = 0; d && i < count; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(d, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
                !sym.st_value || sym.st_shndx == SHN_UNDEF)
                continue;
            const char *name = elf_strptr(e, sh.sh_link, sym.st_name);
            for (int k = 0; name && k < f->n; k++)
                if (!f->off[k] && !strcmp(name, f->name[k]))
                    f->off[k] = file_offset(e, sym.st_value);
        }
    }
    if (e)
        elf_end(e);
    close(fd);
}

static uint64_t funcs_off(const struct funcs *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], name))
            return f->off[i];
    return 0;
}

static const struct funcs *cur_funcs;

static int attach_one(struct eproc *p, const char *path, const struct probe *pr)
{
    if (!*pr->prog)
        return -ENOENT;
    if (p->nlinks >= EPROC_MAX_LINKS)
        return -ENOSPC;
    uint64_t off = funcs_off(cur_funcs, pr->func);
    if (!off)
        return -ENOENT;
    struct bpf_uprobe_opts o = {.sz = sizeof o, .retprobe = pr->ret != 0};
    struct bpf_link *l = bpf_program__attach_uprobe_opts(*pr->prog, p->pid, path, off, &o);
    if (!l)
        return -errno;
    p->links[p->nlinks++] = l;
    return 0;
}

/* Attaches a family of probes: its first (the entry of its main call)
 * decides whether the file has it at all. Returns how many attached. */
static int attach_family(struct eproc *p, const char *path, const struct probe *pr, int n)
{
    int done = 0;
    for (int i = 0; i < n; i++) {
        int rc = attach_one(p, path, &pr[i]);
        if (rc == 0) {
            done++;
        } else if (rc != -ENOENT && rc != -ESRCH) {
            EBPF_COUNT(attach_failed, 1);
            dynobs__ebpf_log(DYNOBS_EBPF_WARN, "pid %d: %s in %s: %s", p->pid, pr[i].func, path,
                             strerror(-rc));
        }
        if (i == 0 && rc)
            return 0;
    }
    return done;
}

static void attach_file(struct eproc *p, const char *path, int is_exe)
{
    struct dynobs_ebpf_progs *g = &dynobs__ebpf_progs;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const struct probe ssl[] = {
        {&g->ssl_write, "SSL_write", 0},     {&g->ssl_leave, "SSL_write", 1},
        {&g->ssl_read, "SSL_read", 0},       {&g->ssl_leave, "SSL_read", 1},
        {&g->ssl_write_ex, "SSL_write_ex", 0}, {&g->ssl_leave, "SSL_write_ex", 1},
        {&g->ssl_read_ex, "SSL_read_ex", 0}, {&g->ssl_leave, "SSL_read_ex", 1},
        {&g->ssl_free, "SSL_free", 0},
    };
    const struct probe pq[] = {
        {&g->pq_exec, "PQexec", 0},
        {&g->pq_sync_leave, "PQexec", 1},
        {&g->pq_exec, "PQexecParams", 0},
        {&g->pq_sync_leave, "PQexecParams", 1},
        {&g->pq_prepare, "PQprepare", 0},
        {&g->pq_sync_leave, "PQprepare", 1},
        {&g->pq_exec_prepared, "PQexecPrepared", 0},
        {&g->pq_sync_leave, "PQexecPrepared", 1},
        {&g->pq_send, "PQsendQuery", 0},
        {&g->pq_send, "PQsendQueryParams", 0},
        {&g->pq_send_prepare, "PQsendPrepare", 0},
        {&g->pq_send_prepared, "PQsendQueryPrepared", 0},
        {&g->pq_getresult_enter, "PQgetResult", 0},
        {&g->pq_getresult_leave, "PQgetResult", 1},
    };
    struct funcs f = {.n = 0};
    for (size_t i = 0; i < sizeof ssl / sizeof ssl[0]; i++)
        funcs_add(&f, ssl[i].func);
    for (size_t i = 0; i < sizeof pq / sizeof pq[0]; i++)
        funcs_add(&f, pq[i].func);
    funcs_find(&f, path);
    cur_funcs = &f;
    int n = 0;
    if (is_exe || !strncmp(base, "libssl.so", 9))
        n += attach_family(p, path, ssl, (int)(sizeof ssl / sizeof ssl[0]));
    if (is_exe || !strncmp(base, "libpq.so", 8))
        n += attach_family(p, path, pq, (int)(sizeof pq / sizeof pq[0]));
    cur_funcs = NULL;
    if (n)
        dynobs__ebpf_log(DYNOBS_EBPF_INFO, "pid %d: %d probes on %s", p->pid, n, path);
}

void dynobs__attach_process(struct eproc *p)
{
    char maps[64], exe[512] = "", line[1024];
    snprintf(maps, sizeof maps, "/proc/%d/exe", p->pid);
    ssize_t l = readlink(maps, exe, sizeof exe - 1);
    exe[l > 0 ? l : 0] = '\0';
    snprintf(maps, sizeof maps, "/proc/%d/maps", p->pid);
    FILE *f = fopen(maps, "re");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char perms[8], path[600];
        unsigned long long off, ino;
        unsigned maj, min;
        if (sscanf(line, "%*x-%*x %7s %llx %x:%x %llu %599[^\n]", perms, &off, &maj, &min, &ino,
                   path) != 6 ||
            perms[2] != 'x' || path[0] != '/')
            continue;
        char *sp = path + strspn(path, " ");
        int is_exe = *exe && !strcmp(sp, exe);
        const char *base = strrchr(sp, '/') + 1;
        if (!is_exe && strncmp(base, "libssl.so", 9) && strncmp(base, "libpq.so", 8))
            continue;
        uint64_t dev = ((uint64_t)maj << 32) | min;
        int seen = 0;
        for (int i = 0; i < p->nfiles && !seen; i++)
            seen = p->files[i].dev == dev && p->files[i].ino == ino;
        if (seen || p->nfiles >= EPROC_MAX_FILES)
            continue;
        p->files[p->nfiles].dev = dev;
        p->files[p->nfiles].ino = ino;
        p->nfiles++;
        /* the file as the process sees it, whatever its mount namespace */
        char at[700];
        snprintf(at, sizeof at, "/proc/%d/root%s", p->pid, sp);
        attach_file(p, access(at, R_OK) == 0 ? at : sp, is_exe);
    }
    fclose(f);
}
