/*
 * The real functions behind every interposer, in one table, bound once
 * with dlsym(RTLD_NEXT, ...).
 */
#ifndef DYNOBS_PRELOAD_REAL_H
#define DYNOBS_PRELOAD_REAL_H

#include "../common/util.h"

struct dynobs_real_fns {
    int (*close)(int fd);
};

extern struct dynobs_real_fns dynobs__real DYNOBS_INTERNAL;

/* Binds every entry. Safe to call more than once and from an interposer
 * that runs before the constructor; see real.c for recursion. */
void dynobs__real_bind(void) DYNOBS_INTERNAL;

#endif
