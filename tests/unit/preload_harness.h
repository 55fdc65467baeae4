/*
 * Shared set-up of the test_preload_*.c files: libdynobs.so in real
 * processes. The scenario program (linked to the no-op library) is
 * started with and without LD_PRELOAD in a fresh temporary directory,
 * and what it recorded is read back from its segment there.
 *
 * Each test file includes this header once and declares its suite with
 * PRELOAD_SUITE(name), so every suite gets the same directory handling
 * and time limit. The helpers are static inline: a file that does not
 * use one of them must still build under -Werror.
 */
#ifndef DYNOBS_PRELOAD_HARNESS_H
#define DYNOBS_PRELOAD_HARNESS_H

#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dynobs/dynobs.h"
#include "testutil.h"

#ifndef SCENARIO_BIN
#error SCENARIO_BIN must be defined
#endif
#ifndef DYNOBS_LIB
#error DYNOBS_LIB must be defined
#endif

static char *dir;
static char out[600];
static char preload[1024];
static char shm_env[600];
static char seg_dir[600];

static inline void preload_setup(void)
{
    dir = tu_tmpdir();
    snprintf(out, sizeof out, "%s/stdout.txt", dir);
    snprintf(shm_env, sizeof shm_env, "DYNOBS_SHM_DIR=%s/shm", dir);
    /* Under AddressSanitizer its runtime must come first in the list. */
    const char *asan = getenv("DYNOBS_TEST_PRELOAD_FIRST");
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s%s%s", asan ? asan : "", asan ? ":" : "",
             DYNOBS_LIB);
}

static inline void preload_teardown(void)
{
    tu_rmtree(dir);
    free(dir);
}

#define PRELOAD_SUITE(name) \
    TestSuite(name, .init = preload_setup, .fini = preload_teardown, .timeout = 60)

/* Runs the scenario with LD_PRELOAD and extra env; returns exit status. */
static inline int run(const char *scenario, const char *const *env_extra, int with_preload)
{
    const char *env[16];
    int n = 0;
    if (with_preload)
        env[n++] = preload;
    env[n++] = shm_env;
    for (int i = 0; env_extra && env_extra[i]; i++)
        env[n++] = env_extra[i];
    env[n] = NULL;
    char *argv[] = {SCENARIO_BIN, (char *)scenario, NULL};
    return tu_run(argv, env, out);
}

/* The same for a scenario with arguments, always preloaded. */
static inline int run_argv(char *const argv[], const char *const *env_extra)
{
    const char *env[16];
    int n = 0;
    env[n++] = preload;
    env[n++] = shm_env;
    for (int i = 0; env_extra && env_extra[i]; i++)
        env[n++] = env_extra[i];
    env[n] = NULL;
    return tu_run(argv, env, out);
}

/* Lists the segments the scenario left (and remembers their directory in
 * seg_dir, which some tests then check does not exist at all). */
static inline int segments(char paths[][1024], int max)
{
    snprintf(seg_dir, sizeof seg_dir, "%s/shm", dir);
    return tu_segments(seg_dir, paths, max);
}

/* Looks up "label value" lines in the scenario's stdout. */
static inline const char *line(const char *text, const char *label, char *val, size_t cap)
{
    size_t l = strlen(label);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, label, l) && p[l] == ' ') {
            size_t n = strcspn(p + l + 1, "\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(val, p + l + 1, n);
            val[n] = 0;
            return val;
        }
    }
    return NULL;
}

/* Criterion counts a skipped test in none of its summary figures and
 * exits 0, so a skip would read as a pass. Each skip is printed as a
 * "SKIP: suite::test (why)" line, which scripts/test.sh counts and lists
 * after the suite. */
ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
    if (stats->test_status == CR_STATUS_SKIPPED)
        printf("SKIP: %s::%s (%s)\n", stats->test->category, stats->test->name,
               stats->message ? stats->message : "no reason given");
}

#endif
