/* The shim's big tables are mapped at first use (preload/lazymap.h): a
 * process that records but never uses curl, OpenSSL, libpq, routes,
 * watches, metric handles, multiplexed requests or HTTP/2 streams never
 * maps theirs. dynobs-lazytables prints the length of each anonymous
 * mapping the shim asks for. Shared set-up: preload_harness.h. */
#include "preload_harness.h"

/* Given by tests/CMakeLists.txt; the default (a name alone, which the
 * spawn does not look up in PATH) only lets static analysis read the file. */
#ifndef LAZYTABLES_BIN
#define LAZYTABLES_BIN "dynobs-lazytables"
#endif

PRELOAD_SUITE(preload_lazymap);

/* The lengths the program printed; their number. */
static int lengths(const char *mode, size_t *lens, int max)
{
    char *argv[] = {LAZYTABLES_BIN, (char *)mode, NULL};
    cr_assert_eq(run_argv(argv, NULL), 0, "dynobs-lazytables %s failed", mode);
    char *text = tu_slurp(out);
    int n = 0;
    for (char *p = text; n < max && (p = strstr(p, "anon ")); p++)
        lens[n++] = strtoul(p + 5, NULL, 10);
    free(text);
    return n;
}

static int has(const size_t *lens, int n, size_t len)
{
    for (int i = 0; i < n; i++)
        if (lens[i] == len)
            return 1;
    return 0;
}

Test(preload_lazymap, tables_are_mapped_only_by_their_first_use)
{
    size_t rec[64], wat[64];
    int nr = lengths("record", rec, 64);
    /* The sizes of the tables, as preload/ declares them: the pointer
     * tables of OpenSSL sessions, curl handles and libpq connections
     * (4096 slots of 16 bytes), the route trie's pool (4096 nodes of
     * 64), the metric handles' index (8192 four-byte entries) and array
     * (4096 handles), the multiplexed requests (256 of 448 bytes) and
     * the HTTP/2 streams' served requests (256 of 44). */
    static const size_t tables[] = {65536, 262144, 32768, 4096 * 448, 114688, 11264};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        cr_expect_not(has(rec, nr, tables[i]), "a table of %zu bytes was mapped", tables[i]);
    /* The watch table is mapped by the first watch, and only then: the
     * one mapping the watch adds (its thread's stack is libc's). This
     * also shows that the program sees the shim's mappings at all. */
    int nw = lengths("watch", wat, 64);
    cr_assert_eq(nw, nr + 1, "record: %d anonymous mappings, watch: %d", nr, nw);
    size_t added = 0;
    for (int i = 0; i < nw; i++)
        if (!has(rec, nr, wat[i]))
            added = wat[i];
    cr_assert_geq(added, 256u * 300u, "the watch table (256 watches of over 300 bytes)");
}
