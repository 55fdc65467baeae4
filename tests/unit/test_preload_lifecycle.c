/* The shim's life in a process: nothing without LD_PRELOAD, off with
 * OTEL_SDK_DISABLED, close() passed through exactly, the library loaded
 * by dlopen, and the resource and sampler read from the environment.
 * Shared set-up: preload_harness.h. */
#include "preload_harness.h"

PRELOAD_SUITE(preload_lifecycle);

Test(preload_lifecycle, without_preload_nothing_is_recorded)
{
    cr_assert_eq(run("disabled", NULL, 0), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "span null\n"));
    cr_assert_not_null(strstr(text, "enabled 0\n"));
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 0);
    free(text);
}

Test(preload_lifecycle, sdk_disabled_means_off)
{
    const char *env[] = {"OTEL_SDK_DISABLED=true", NULL};
    cr_assert_eq(run("disabled", env, 1), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "span null\n"), "%s", text);
    cr_assert_not_null(strstr(text, "enabled 0\n"));
    char want[64];
    snprintf(want, sizeof want, "counter %d\n", DYNOBS_EDISABLED);
    cr_assert_not_null(strstr(text, want), "%s", text);
    snprintf(want, sizeof want, "current %d\n", DYNOBS_EDISABLED);
    cr_assert_not_null(strstr(text, want), "%s", text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 0); /* no segment, no file at all */
    struct stat st;
    cr_assert_neq(stat(seg_dir, &st), 0);
    free(text);
    /* The same program with the shim on does record. */
    cr_assert_eq(run("disabled", NULL, 1), 0);
    text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "span yes\n"));
    cr_assert_not_null(strstr(text, "enabled 1\n"));
    cr_assert_eq(segments(paths, 2), 1);
    free(text);
}

Test(preload_lifecycle, close_passes_through_exactly)
{
    for (int pre = 0; pre <= 1; pre++) {
        for (int off = 0; off <= 1; off++) {
            const char *env[] = {off ? "OTEL_SDK_DISABLED=true" : "X_UNUSED=1", NULL};
            cr_assert_eq(run("close", env, pre), 0);
            char *text = tu_slurp(out);
            char want[128];
            snprintf(want, sizeof want, "close-bad -1 %d\nclose-ok 0 0\nclose-again -1 %d\n", EBADF,
                     EBADF);
            cr_assert_str_eq(text, want, "preload=%d off=%d", pre, off);
            free(text);
        }
    }
}

Test(preload_lifecycle, library_can_be_dlopened)
{
    /* Loaded at run time (no LD_PRELOAD), as ctypes does: its small
     * initial-exec TLS must fit, and it must record. */
    char *argv[] = {SCENARIO_BIN, "dlopen", DYNOBS_LIB, NULL};
    const char *env[] = {shm_env, NULL};
    if (getenv("DYNOBS_TEST_PRELOAD_FIRST"))
        cr_skip_test("an instrumented library cannot be dlopened into an ASan process this way");
    cr_assert_eq(tu_run(argv, env, out), 0);
    char *text = tu_slurp(out);
    cr_assert_str_eq(text, "enabled 1 span yes end 0\n");
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[2];
    cr_assert_eq(tu_read_spans(paths[0], sp, 2), 1);
    cr_assert_str_eq(sp[0].name, "from-dlopen");
    free(text);
}

Test(preload_lifecycle, service_name_and_resource_from_env)
{
    const char *env[] = {"OTEL_SERVICE_NAME=checkout",
                         "OTEL_RESOURCE_ATTRIBUTES=service.name=ignored,deployment.environment=prod,bad",
                         NULL};
    cr_assert_eq(run("metrics", env, 1), 0);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], 0), 0);
    cr_assert_str_eq(r->service_name, "checkout");
    size_t off = 0;
    struct dynobs_item it;
    int env_seen = 0, exe_seen = 0;
    while (dynobs__reader_resource_next(r, &off, &it) == 1) {
        if (it.key_len == 22 && !memcmp(it.key, "deployment.environment", 22))
            env_seen = it.str_len == 4 && !memcmp(it.str, "prod", 4);
        if (it.key_len == 23 && !memcmp(it.key, "process.executable.name", 23))
            exe_seen = 1;
        cr_assert(!(it.key_len == 12 && !memcmp(it.key, "service.name", 12)));
    }
    cr_assert(env_seen && exe_seen);
    dynobs__reader_close(r);
    free(r);
}

Test(preload_lifecycle, sampler_from_env)
{
    const char *env[] = {"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.25",
                         "SCENARIO_N=4000", NULL};
    cr_assert_eq(run("ratio", env, 1), 0);
    char *text = tu_slurp(out);
    int k = -1, n = -1;
    cr_assert_eq(sscanf(text, "sampled %d of %d", &k, &n), 2, "%s", text);
    /* 4000 draws at p=0.25: mean 1000, sd 27.4; 5 sd is 137. */
    cr_assert(k > 1000 - 137 && k < 1000 + 137, "sampled %d", k);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[1];
    /* Only sampled spans are written. */
    cr_assert_eq(tu_read_spans(paths[0], sp, 1), k);
    free(text);
    const char *off[] = {"OTEL_TRACES_SAMPLER=always_off", "SCENARIO_N=100", NULL};
    cr_assert_eq(run("ratio", off, 1), 0);
    text = tu_slurp(out);
    cr_assert_str_eq(text, "sampled 0 of 100\n");
    free(text);
}

Test(preload_lifecycle, nothing_is_set_up_before_the_first_record)
{
    /* A process that never records gets no segment (not even its
     * directory) and does not load libunwind, which is what start-up used
     * to spend most of its time on (BENCHMARKS.md, process start). */
    char *argv[] = {SCENARIO_BIN, "lazy", "idle", NULL};
    cr_assert_eq(run_argv(argv, NULL), 0);
    char *text = tu_slurp(out);
    cr_assert_str_eq(text, "unwind-at-start 0\n");
    free(text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 0);
    struct stat st;
    cr_assert_neq(stat(seg_dir, &st), 0, "%s exists", seg_dir);
    /* The first record brings them: the segment, and libunwind for the
     * backtrace of a crash report to come. */
    char *argv2[] = {SCENARIO_BIN, "lazy", "record", NULL};
    cr_assert_eq(run_argv(argv2, NULL), 0);
    text = tu_slurp(out);
    cr_assert_str_eq(text, "unwind-at-start 0\nunwind-after-record 1\n");
    free(text);
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[2];
    cr_assert_eq(tu_read_spans(paths[0], sp, 2), 1);
    cr_assert_str_eq(sp[0].name, "first");
    /* Without crash reports, never. */
    tu_rmtree(dir);
    mkdir(dir, 0700);
    const char *env[] = {"DYNOBS_CRASH_REPORTS=0", NULL};
    cr_assert_eq(run_argv(argv2, env), 0);
    text = tu_slurp(out);
    cr_assert_str_eq(text, "unwind-at-start 0\nunwind-after-record 0\n");
    free(text);
}

Test(preload_lifecycle, resource_is_taken_from_the_environment_at_start)
{
    /* The resource is built at the first record, from the variables as
     * they were at start: a program may have written its process title
     * over the environment meanwhile. */
    char *argv[] = {SCENARIO_BIN, "lazy", "scribble", NULL};
    const char *env[] = {"OTEL_SERVICE_NAME=checkout",
                         "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod", NULL};
    cr_assert_eq(run_argv(argv, env), 0);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], 0), 0);
    cr_assert_str_eq(r->service_name, "checkout");
    size_t off = 0;
    struct dynobs_item it;
    int env_seen = 0;
    while (dynobs__reader_resource_next(r, &off, &it) == 1)
        if (it.key_len == 22 && !memcmp(it.key, "deployment.environment", 22))
            env_seen = it.str_len == 4 && !memcmp(it.str, "prod", 4);
    cr_assert(env_seen);
    dynobs__reader_close(r);
    free(r);
}
