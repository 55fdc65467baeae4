#define _GNU_SOURCE
#include "vdso.h"

#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <sys/auxv.h>

dynobs_clock_gettime_fn dynobs__vdso_cgt DYNOBS_HOT_DATA;

/* (a local caller of libc's, so that taking its address binds nothing at
 * load: the call goes through the PLT, bound at its first use) */
static DYNOBS_PATH(34) int libc_clock_gettime(clockid_t id, struct timespec *ts)
{
    return clock_gettime(id, ts);
}

/* The address of the vDSO's function `name`, or NULL: its dynamic symbol
 * table, walked through the image the kernel maps (AT_SYSINFO_EHDR). */
static void *vdso_function(const char *name)
{
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)getauxval(AT_SYSINFO_EHDR);
    if (!eh || eh->e_ident[EI_MAG0] != ELFMAG0 || eh->e_ident[EI_MAG1] != ELFMAG1 ||
        eh->e_ident[EI_MAG2] != ELFMAG2 || eh->e_ident[EI_MAG3] != ELFMAG3)
        return NULL;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(const void *)((const char *)eh + eh->e_phoff);
    uintptr_t bias = 0;
    int loaded = 0;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !loaded) {
            bias = (uintptr_t)eh + ph[i].p_offset - ph[i].p_vaddr;
            loaded = 1;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const ElfW(Dyn) *)(const void *)((const char *)eh + ph[i].p_offset);
        }
    }
    if (!loaded || !dyn)
        return NULL;
    const ElfW(Sym) *syms = NULL;
    const char *strs = NULL;
    const Elf32_Word *hash = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB)
            syms = (const ElfW(Sym) *)(bias + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_STRTAB)
            strs = (const char *)(bias + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_HASH)
            hash = (const Elf32_Word *)(bias + dyn->d_un.d_ptr);
    }
    if (!syms || !strs || !hash)
        return NULL;
    /* (the SysV hash table's second word: the number of symbols) */
    for (Elf32_Word i = 0; i < hash[1]; i++) {
        const ElfW(Sym) *s = &syms[i];
        if (s->st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s->st_info) != STT_FUNC)
            continue;
        const char *a = strs + s->st_name, *b = name;
        while (*a && *a == *b) {
            a++;
            b++;
        }
        if (*a == *b)
            return (void *)(bias + s->st_value);
    }
    return NULL;
}

dynobs_clock_gettime_fn dynobs__vdso_cgt_find(void)
{
    dynobs_clock_gettime_fn f = (dynobs_clock_gettime_fn)vdso_function("__vdso_clock_gettime");
    if (!f)
        f = libc_clock_gettime;
    __atomic_store_n(&dynobs__vdso_cgt, f, __ATOMIC_RELAXED);
    return f;
}
