/*
 * The glibc symbol versions the shim binds to (x86-64), included before
 * everything else in each of its files (CMakeLists.txt, -include).
 *
 * At every process start the loader checks each symbol version a library
 * needs against the object that defines it: a walk of that object's
 * version definitions and a string compare per version, whether the
 * process ever records or not (BENCHMARKS.md, process start). The libc
 * functions below also exist at the x86-64 base version, GLIBC_2.2.5,
 * as the same code; binding to that version, the shim needs four
 * versions of libc (GLIBC_2.2.5; GLIBC_2.3.2 for __register_atfork,
 * preload/init.c; GLIBC_2.14 for memcpy; GLIBC_2.16 for getauxval)
 * instead of twelve of libc and ld.so. tests/versions_test.sh checks the
 * library's list.
 *
 * Not memcpy: its GLIBC_2.2.5 version is a slower routine than the one
 * GLIBC_2.14's selects for the CPU (callgrind: 32 instructions more per
 * span, in its two copies), and the hot paths copy with it.
 *
 * The functions that have no such version are called otherwise: the
 * file system calls of a segment's creation, fstat and getrandom as
 * system calls (common/sys.h); pthread_setname_np (preload/metric_watch.c)
 * and the loader's dladdr1, dlinfo and _r_debug (preload/dlopen.c) looked
 * up at their first use (dynobs__lookup), all off the start-up path.
 *
 * Not with the sanitizers, whose runtimes intercept these functions at
 * their default versions, nor on other architectures (their base
 * version is another).
 */
#ifndef DYNOBS_COMMON_GLIBC_SYMVER_H
#define DYNOBS_COMMON_GLIBC_SYMVER_H

/* (No header here: included first, before a file's _GNU_SOURCE, whose
 * effect <features.h> would then miss. CMake includes this file only for
 * glibc.) */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define DYNOBS_SYMVER_(fn) __asm__(".symver " #fn "," #fn "@GLIBC_2.2.5")
DYNOBS_SYMVER_(clock_gettime);
DYNOBS_SYMVER_(dlsym);
DYNOBS_SYMVER_(dlerror);
DYNOBS_SYMVER_(dlclose);
DYNOBS_SYMVER_(dladdr);
DYNOBS_SYMVER_(pthread_create);
DYNOBS_SYMVER_(pthread_key_create);
DYNOBS_SYMVER_(pthread_once);
DYNOBS_SYMVER_(pthread_setspecific);
DYNOBS_SYMVER_(pthread_sigmask);
#undef DYNOBS_SYMVER_
#endif

#endif
