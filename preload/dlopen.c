/*
 * Libraries loaded with RTLD_DEEPBIND: their references still reach the
 * shim's interposers.
 *
 * RTLD_DEEPBIND puts the loaded object's own dependency scope (itself,
 * then its DT_NEEDED libraries breadth first) ahead of the global scope,
 * for that object and for every dependency loaded with it. PHP loads its
 * extensions so: curl.so's curl_easy_perform then binds inside libcurl,
 * and libcurl's send and SSL_write inside libc and libssl, past us.
 *
 * Dropping the flag would also change which of the application's other
 * symbols those objects bind to (that is what PHP keeps it for), and there
 * is no public way to add an object to another one's scope. So the load
 * happens exactly as asked, and afterwards the GOT slots (JUMP_SLOT and
 * GLOB_DAT relocations) of the objects it loaded are rewritten for the
 * symbols this library interposes, and for no other symbol, and only
 * where the rewrite is exactly what a load without the flag would have
 * given the shim:
 *
 *   - without the flag the reference would have bound to our interposer
 *     (it is the first definition in the global scope), and
 *   - with the flag it bound (or, for a slot still lazy, would bind) to the
 *     very function our interposer forwards to, and
 *   - the object does not define the symbol itself.
 *
 * A library's own definitions, and anything in its scope that is not what
 * we wrap, keep winning. When anything cannot be established (the file is
 * found by a path search, which depends on the caller; another namespace;
 * an unknown relocation format; mprotect refused), the slot is left as the
 * loader made it: the library works as before, untraced.
 *
 * Limits: calls made by the library's constructors, during dlopen itself,
 * are not seen; a name without a '/' (a search that depends on the
 * caller's RPATH/RUNPATH) or with '$' (expanded from the caller's origin),
 * and dlmopen into other namespaces, are passed through untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "real.h"
#include "state.h"

/* Both targets are 64-bit ELF with RELA relocations (the Elf64_ types
 * below are what ElfW() names there). */
#if defined(__x86_64__)
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT R_AARCH64_GLOB_DAT
#endif

/* The loader's functions, looked up at first use. dladdr1 and dlinfo
 * (GLIBC_2.3.3) and ld.so's _r_debug are among them rather than bound: a
 * symbol version the library needs is checked at every process start
 * (common/glibc_symver.h). */
static struct {
    void *(*open)(const char *, int);
    void *(*mopen)(Lmid_t, const char *, int);
    int (*addr1)(const void *, Dl_info *, void **, int);
    int (*info)(void *, int, void *);
    struct r_debug *debug;
} loader;

#define LOADER(field, name)                                                                \
    ((__typeof__(loader.field))dynobs__lookup((void **)&loader.field, name, NULL))

/* The pass-through must be a tail call: glibc takes the caller of dlopen
 * from its return address (for the RPATH/RUNPATH search and $ORIGIN), and
 * the caller has to stay the application's code, not ours. GCC drops
 * sibling calls at -O0, so this one function is always optimised. */
#if defined(__clang__)
#define TAIL __attribute__((musttail))
#define PASS_THROUGH_FN
#else
#define TAIL
#define PASS_THROUGH_FN __attribute__((optimize("O2", "optimize-sibling-calls")))
#endif

#ifdef R_JUMP_SLOT

/* At most this many objects loaded by one dlopen, and this many slots of
 * interposed symbols among them, are looked at; past either cap the rest
 * stay untouched (untraced, never broken). */
#define MAX_OBJECTS 256
#define MAX_SLOTS 1024

struct slot {
    Elf64_Addr *at;
    const char *name;
    uint16_t obj; /* index into work.objs */
};

struct object {
    const struct link_map *lm;
    uintptr_t lo, hi;             /* its mapping (PT_LOAD) */
    uintptr_t relro_lo, relro_hi; /* pages made read-only after relocation */
};

struct work {
    const struct link_map *tail; /* the last object before the load */
    const struct link_map *top;  /* the object the handle names */
    int new_load;                /* top was loaded by this call */
    size_t nobjs, nslots;
    struct object objs[MAX_OBJECTS];
    struct slot slots[MAX_SLOTS];
};

/* A pointer of the dynamic section: glibc rebases most of them in place,
 * some targets do not. */
static uintptr_t dyn_ptr(const struct link_map *l, Elf64_Addr v)
{
    return v < l->l_addr ? (uintptr_t)l->l_addr + v : (uintptr_t)v;
}

struct dyn {
    const Elf64_Sym *symtab;
    const char *strtab;
    size_t strsz;
    const Elf64_Rela *rela, *jmprel;
    size_t relasz, jmprelsz;
    int pltrel_is_rela;
    const uint32_t *gnu_hash;
    const char *soname;
};

static void dyn_read(const struct link_map *l, struct dyn *d)
{
    memset(d, 0, sizeof *d);
    size_t soname = (size_t)-1;
    for (const Elf64_Dyn *e = l->l_ld; e && e->d_tag != DT_NULL; e++) {
        switch (e->d_tag) {
        case DT_SYMTAB: d->symtab = (const void *)dyn_ptr(l, e->d_un.d_ptr); break;
        case DT_STRTAB: d->strtab = (const void *)dyn_ptr(l, e->d_un.d_ptr); break;
        case DT_STRSZ: d->strsz = e->d_un.d_val; break;
        case DT_RELA: d->rela = (const void *)dyn_ptr(l, e->d_un.d_ptr); break;
        case DT_RELASZ: d->relasz = e->d_un.d_val; break;
        case DT_JMPREL: d->jmprel = (const void *)dyn_ptr(l, e->d_un.d_ptr); break;
        case DT_PLTRELSZ: d->jmprelsz = e->d_un.d_val; break;
        case DT_PLTREL: d->pltrel_is_rela = e->d_un.d_val == DT_RELA; break;
        case DT_GNU_HASH: d->gnu_hash = (const void *)dyn_ptr(l, e->d_un.d_ptr); break;
        case DT_SONAME: soname = e->d_un.d_val; break;
        default: break;
        }
    }
    if (!d->symtab || !d->strtab)
        d->strsz = 0;
    if (soname < d->strsz)
        d->soname = d->strtab + soname;
}

/* This library's own dynamic symbols, to tell in a few loads whether a
 * name is one we export (the GNU hash table: no lock, no allocation, so
 * it may run while the loader's list lock is held). */
static struct {
    const struct link_map *lm;
    struct dyn d;
} self;

static const Elf64_Sym *self_sym(const char *name)
{
    const uint32_t *h = self.d.gnu_hash;
    if (!h || !self.d.strsz)
        return NULL;
    uint32_t nbuckets = h[0], symoffset = h[1], bloom_size = h[2], shift = h[3];
    if (!nbuckets || !bloom_size)
        return NULL;
    const Elf64_Addr *bloom = (const void *)(h + 4);
    const uint32_t *buckets = (const void *)(bloom + bloom_size);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t hash = 5381;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        hash = hash * 33 + *c;
    const unsigned bits = sizeof(Elf64_Addr) * 8;
    Elf64_Addr word = bloom[(hash / bits) % bloom_size];
    Elf64_Addr mask = ((Elf64_Addr)1 << (hash % bits)) | ((Elf64_Addr)1 << ((hash >> shift) % bits));
    if ((word & mask) != mask)
        return NULL;
    uint32_t i = buckets[hash % nbuckets];
    if (i < symoffset)
        return NULL;
    for (;; i++) {
        uint32_t h2 = chain[i - symoffset];
        const Elf64_Sym *s = &self.d.symtab[i];
        if ((hash | 1) == (h2 | 1) && s->st_name < self.d.strsz &&
            !strcmp(name, self.d.strtab + s->st_name))
            return s->st_shndx != SHN_UNDEF && ELF64_ST_TYPE(s->st_info) == STT_FUNC ? s : NULL;
        if (h2 & 1)
            return NULL;
    }
}

/* One of our interposers (not the public API, whose users bind to it by
 * their own choice). */
static int interposed(const char *name)
{
    return strncmp(name, "dynobs_", 7) != 0 && self_sym(name) != NULL;
}

/* (also the loader's parts the walks use, looked up here: walk_list runs
 * under the loader's lock, where nothing may call into the loader) */
static void self_bind(void)
{
    if (!dynobs__lookup((void **)&loader.addr1, "dladdr1", NULL) ||
        !dynobs__lookup((void **)&loader.info, "dlinfo", NULL) ||
        !dynobs__lookup((void **)&loader.debug, "_r_debug", NULL)) {
        (void)dlerror(); /* our look-ups' failures are not the application's */
        return;
    }
    Dl_info info;
    struct link_map *lm = NULL;
    if (!loader.addr1((void *)&self_bind, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return;
    dyn_read(lm, &self.d);
    self.lm = lm;
}

/* Read once: another thread must never see the table half filled in.
 * 0 when it was, and the loader's parts were found. */
static int self_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (pthread_once(&once, self_bind) != 0)
        return -1;
    return self.lm && self.d.gnu_hash && self.d.symtab ? 0 : -1;
}

/* Does any object of the run need l (by a DT_NEEDED naming its file or
 * its soname)? The objects one dlopen loads follow their top object in
 * the list; objects that other threads loaded meanwhile are not needed
 * by this run (else this load would have reused them). */
static int needed_by_run(const struct work *w, const struct link_map *l)
{
    const char *base = l->l_name ? strrchr(l->l_name, '/') : NULL;
    base = base ? base + 1 : l->l_name;
    struct dyn dl_;
    dyn_read(l, &dl_);
    for (size_t i = 0; i < w->nobjs; i++) {
        struct dyn d;
        dyn_read(w->objs[i].lm, &d);
        for (const Elf64_Dyn *e = w->objs[i].lm->l_ld; e && e->d_tag != DT_NULL; e++) {
            if (e->d_tag != DT_NEEDED || e->d_un.d_val >= d.strsz)
                continue;
            const char *n = d.strtab + e->d_un.d_val;
            if ((base && !strcmp(n, base)) || (dl_.soname && !strcmp(n, dl_.soname)))
                return 1;
        }
    }
    return 0;
}

static void collect_slots(struct work *w, size_t obj, const Elf64_Rela *r, size_t size)
{
    const struct link_map *l = w->objs[obj].lm;
    struct dyn d;
    dyn_read(l, &d);
    for (size_t i = 0; r && i < size / sizeof *r && w->nslots < MAX_SLOTS; i++) {
        unsigned long type = ELF64_R_TYPE(r[i].r_info);
        if (type != R_JUMP_SLOT && type != R_GLOB_DAT)
            continue;
        const Elf64_Sym *s = &d.symtab[ELF64_R_SYM(r[i].r_info)];
        /* A symbol the object defines itself stays its own. */
        if (s->st_shndx != SHN_UNDEF || s->st_name >= d.strsz)
            continue;
        const char *name = d.strtab + s->st_name;
        if (!interposed(name))
            continue;
        w->slots[w->nslots++] = (struct slot){
            (Elf64_Addr *)((uintptr_t)l->l_addr + r[i].r_offset), name, (uint16_t)obj};
    }
}

/* Runs with the loader's list lock held (inside dl_iterate_phdr): the
 * list cannot change under the walk. Nothing here may call into the
 * loader. */
static int walk_list(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)info;
    (void)size;
    struct work *w = arg;
    const struct link_map *l = loader.debug->r_map;
    if (!w->top) { /* before the load: remember the tail */
        while (l && l->l_next)
            l = l->l_next;
        w->tail = l;
        return 1;
    }
    while (l && l != w->tail)
        l = l->l_next;
    if (!l)
        return 1; /* the old tail went away: give up */
    for (l = l->l_next; l && l != w->top; l = l->l_next)
        ;
    if (!l)
        return 1; /* the object was already loaded: its scope is not ours to judge */
    w->new_load = 1;
    w->objs[w->nobjs++].lm = l;
    for (l = l->l_next; l && w->nobjs < MAX_OBJECTS; l = l->l_next)
        if (needed_by_run(w, l))
            w->objs[w->nobjs++].lm = l;
    for (size_t i = 0; i < w->nobjs; i++) {
        struct dyn d;
        dyn_read(w->objs[i].lm, &d);
        if (d.pltrel_is_rela)
            collect_slots(w, i, d.jmprel, d.jmprelsz);
        collect_slots(w, i, d.rela, d.relasz);
    }
    return 1;
}

/* The mapping and the RELRO pages of each object of the run. */
static int find_ranges(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct work *w = arg;
    uintptr_t dyn = 0, lo = UINTPTR_MAX, hi = 0, rlo = 0, rhi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const Elf64_Phdr *p = &info->dlpi_phdr[i];
        uintptr_t a = (uintptr_t)info->dlpi_addr + p->p_vaddr;
        if (p->p_type == PT_DYNAMIC) {
            dyn = a;
        } else if (p->p_type == PT_LOAD) {
            lo = a < lo ? a : lo;
            hi = a + p->p_memsz > hi ? a + p->p_memsz : hi;
        } else if (p->p_type == PT_GNU_RELRO) {
            rlo = a;
            rhi = a + p->p_memsz;
        }
    }
    for (size_t i = 0; i < w->nobjs; i++) {
        struct object *o = &w->objs[i];
        if ((uintptr_t)o->lm->l_ld == dyn && (uintptr_t)o->lm->l_addr == info->dlpi_addr) {
            long pg = sysconf(_SC_PAGESIZE);
            uintptr_t mask = (uintptr_t)(pg > 0 ? pg : 4096) - 1;
            o->lo = lo;
            o->hi = hi;
            /* glibc protects whole pages: the last partial one stays writable */
            o->relro_lo = rlo & ~mask;
            o->relro_hi = (rhi & ~mask) > o->relro_lo ? rhi & ~mask : o->relro_lo;
        }
    }
    return 0;
}

/* One slot to fn; a slot in the RELRO pages is made writable for the
 * store and read-only again. An aligned pointer never spans two pages. */
static int store(const struct object *o, Elf64_Addr *at, void *fn)
{
    uintptr_t a = (uintptr_t)at;
    if (a < o->lo || a + sizeof *at > o->hi || a % sizeof *at)
        return -1;
    if (a >= o->relro_lo && a < o->relro_hi) {
        long pg = sysconf(_SC_PAGESIZE);
        size_t len = (size_t)(pg > 0 ? pg : 4096);
        void *page = (void *)(a & ~((uintptr_t)len - 1));
        if (mprotect(page, len, PROT_READ | PROT_WRITE) != 0)
            return -1;
        __atomic_store_n(at, (Elf64_Addr)fn, __ATOMIC_RELEASE);
        (void)mprotect(page, len, PROT_READ);
        return 0;
    }
    __atomic_store_n(at, (Elf64_Addr)fn, __ATOMIC_RELEASE);
    return 0;
}

/* What our interposer of name forwards to: the next definition in the
 * global scope, else the library's loaded copy (dynobs__lookup). */
static void *next_of(const char *name)
{
    void *slot = NULL;
    return dynobs__lookup(&slot, name, dynobs__sonames_of(name));
}

static void redirect(struct work *w, void *handle)
{
    for (size_t i = 0; i < w->nslots; i++) {
        const struct slot *s = &w->slots[i];
        const struct object *o = &w->objs[s->obj];
        if (!o->hi)
            continue;
        const Elf64_Sym *ours = self_sym(s->name);
        void *mine = ours ? (void *)((uintptr_t)self.lm->l_addr + ours->st_value) : NULL;
        /* Without the flag, the reference would have bound to us. */
        if (!mine || dlsym(RTLD_DEFAULT, s->name) != mine)
            continue;
        void *next = next_of(s->name);
        if (!next || next == mine)
            continue;
        uintptr_t v = __atomic_load_n(s->at, __ATOMIC_ACQUIRE);
        int lazy = v >= o->lo && v < o->hi; /* still the PLT stub */
        /* With the flag, it binds where our interposer would forward. */
        if (lazy ? dlsym(handle, s->name) != next : (void *)v != next)
            continue;
        (void)store(o, s->at, mine);
    }
}

/* The object handle names, just loaded with RTLD_DEEPBIND: its new
 * objects' slots for our symbols point at our interposers. */
static void *deepbind_open(void *(*fn)(const char *, int), void *(*mfn)(Lmid_t, const char *, int),
                           const char *file, int mode)
{
    struct work *w = NULL;
    int saved = errno;
    if (self_init() == 0) {
        void *m = mmap(NULL, sizeof *w, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        w = m == MAP_FAILED ? NULL : m;
    }
    if (w)
        dl_iterate_phdr(walk_list, w);
    errno = saved;
    void *h = fn ? fn(file, mode) : mfn(LM_ID_BASE, file, mode);
    if (!h || !w || !w->tail) {
        if (w)
            munmap(w, sizeof *w);
        return h;
    }
    saved = errno;
    dynobs__tls.guard++;
    struct link_map *top = NULL;
    if (loader.info(h, RTLD_DI_LINKMAP, &top) == 0 && top) {
        w->top = top;
        dl_iterate_phdr(walk_list, w);
        if (w->new_load && w->nslots) {
            dl_iterate_phdr(find_ranges, w);
            redirect(w, h);
        }
    }
    (void)dlerror(); /* our look-ups' failures are not the application's */
    dynobs__tls.guard--;
    munmap(w, sizeof *w);
    errno = saved;
    return h;
}

/* Only a load whose outcome does not depend on who calls dlopen: a path
 * (no search), no $ORIGIN-style token, from the base namespace. */
static int eligible(const char *file, const void *caller)
{
    if (!file || !strchr(file, '/') || strchr(file, '$') || dynobs__tls.guard)
        return 0;
    if (!dynobs__on())
        return 0;
    if (self_init() != 0)
        return 0;
    if (!caller)
        return 1;
    Dl_info info;
    struct link_map *lm = NULL;
    Lmid_t id = LM_ID_BASE;
    if (!loader.addr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return 0;
    /* A link_map is a handle in glibc. */
    return loader.info(lm, RTLD_DI_LMID, &id) == 0 && id == LM_ID_BASE;
}

static __attribute__((noinline)) void *open_deepbind(const char *file, int mode)
{
    void *(*fn)(const char *, int) = LOADER(open, "dlopen");
    return deepbind_open(fn, NULL, file, mode);
}

static __attribute__((noinline)) void *mopen_deepbind(const char *file, int mode)
{
    void *(*fn)(Lmid_t, const char *, int) = LOADER(mopen, "dlmopen");
    return deepbind_open(NULL, fn, file, mode);
}

#define DEEPBIND_CASE(cond) (__builtin_expect((cond), 0))

#else /* no relocation format known here: always pass through */

#define DEEPBIND_CASE(cond) 0
#define eligible(file, caller) 0
#define open_deepbind(file, mode) NULL
#define mopen_deepbind(file, mode) NULL

#endif

DYNOBS_API PASS_THROUGH_FN void *dlopen(const char *file, int mode)
{
    void *(*fn)(const char *, int) = LOADER(open, "dlopen");
    if (DEEPBIND_CASE((mode & RTLD_DEEPBIND) && fn &&
                      eligible(file, __builtin_extract_return_addr(__builtin_return_address(0)))))
        return open_deepbind(file, mode);
    if (!fn)
        return NULL;
    TAIL return fn(file, mode);
}

DYNOBS_API PASS_THROUGH_FN void *dlmopen(Lmid_t lmid, const char *file, int mode)
{
    void *(*fn)(Lmid_t, const char *, int) = LOADER(mopen, "dlmopen");
    if (DEEPBIND_CASE((mode & RTLD_DEEPBIND) && fn && lmid == LM_ID_BASE &&
                      eligible(file, NULL)))
        return mopen_deepbind(file, mode);
    if (!fn)
        return NULL;
    TAIL return fn(lmid, file, mode);
}
