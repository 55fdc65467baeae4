/*
 * Host-wide mode (hostwide.h). The selection file is a list of lines:
 *
 *   include GLOB          trace processes whose executable matches
 *   exclude GLOB          but not these (exclude wins)
 *   service GLOB NAME     service.name for processes that match
 *   # comment
 *
 * GLOB matches the path the program was started by (as execve got it:
 * /usr/bin/python3 for a python3 started so, not the python3.11 that link
 * names; the executable's own path when that was relative) with '*' (any
 * run of characters, '/' included) and '?'. Everything is read with
 * raw system calls into fixed buffers, before the program's main() runs:
 * a process that is not selected pays the reads and nothing else. For tests,
 * DYNOBS_HOSTWIDE_PRELOAD_FILE stands for /etc/ld.so.preload (and makes a
 * process preloaded through LD_PRELOAD count as preloaded by it), and
 * DYNOBS_HOSTWIDE_CONF for /etc/dynobs/hostwide.conf;
 * DYNOBS_HOSTWIDE_CGROUP_FILE for /proc/self/cgroup.
 */
#define _GNU_SOURCE
#include "hostwide.h"

#include "../common/config.h" /* dynobs__len_upto, DYNOBS_START_TEXT: all of this runs at start */

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FILE_MAX 4096 /* the selection file's bytes read */
#define LIST_MAX 1024 /* the preload list's */

/* The value of NAME in envp, or NULL (no libc: nothing is bound yet). */
DYNOBS_START_TEXT
static const char *env_of(char **envp, const char *name)
{
    for (char **e = envp; e && *e; e++) {
        const char *v = *e;
        size_t i = 0;
        while (name[i] && v[i] == name[i])
            i++;
        if (!name[i] && v[i] == '=')
            return v + i + 1;
    }
    return NULL;
}

DYNOBS_START_TEXT
static int has(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, needle, k))
            return 1;
    return 0;
}

/* Reads a whole small file (its first cap - 1 bytes); returns its
 * length, or -1. One read: a regular file's read returns all it can. */
DYNOBS_START_TEXT
static long slurp(const char *path, char *buf, size_t cap)
{
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long r = syscall(SYS_read, (int)fd, buf, cap - 1);
    syscall(SYS_close, (int)fd);
    if (r < 0)
        return -1;
    buf[r] = '\0';
    return r;
}

/* The path the program was started by (AT_EXECFN), or NULL. */
DYNOBS_START_TEXT
static const char *exec_path(void)
{
    return (const char *)getauxval(AT_EXECFN);
}


/* Glob over the whole string: '*' any run (slashes too), '?' one byte. */
DYNOBS_START_TEXT
static int glob(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < sn) {
        if (pi < pn && (p[pi] == '?' || p[pi] == s[si])) {
            pi++;
            si++;
        } else if (pi < pn && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        } else {
            return 0;
        }
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

/* The next word of line [*at, end): its start and length. */
DYNOBS_START_TEXT
static size_t word(const char **at, const char *end, const char **w)
{
    const char *p = *at;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    *w = p;
    while (p < end && *p != ' ' && *p != '\t')
        p++;
    *at = p;
    return (size_t)(p - *w);
}

DYNOBS_START_TEXT
int dynobs__hostwide(char **envp, char *service, size_t cap)
{
    char buf[FILE_MAX]; /* on the stack: its pages are there already */
    service[0] = '\0';
    const char *test_preload = env_of(envp, "DYNOBS_HOSTWIDE_PRELOAD_FILE");
    if (!test_preload) {
        const char *lp = env_of(envp, "LD_PRELOAD");
        /* (not strlen: bound lazily at its first call, here) */
        if (lp && has(lp, dynobs__len_upto(lp, (size_t)-1), "libdynobs"))
            return -1; /* asked for: dynobs-run or an explicit preload */
    }
    /* The selection file first: on a host set up for host-wide mode it is
     * all a process reads (three system calls). Where it is missing, the
     * preload list says whether the host wants nothing traced yet or the
     * library was linked or loaded by a program (Python's package). */
    const char *conf = env_of(envp, "DYNOBS_HOSTWIDE_CONF");
    long n = slurp(conf ? conf : "/etc/dynobs/hostwide.conf", buf, sizeof buf);
    if (n < 0) {
        n = slurp(test_preload ? test_preload : "/etc/ld.so.preload", buf, LIST_MAX);
        return n > 0 && has(buf, (size_t)n, "libdynobs") ? 0 : -1;
    }
    char link[512];
    const char *exe = exec_path();
    long en;
    if (exe && exe[0] == '/') {
        en = (long)strlen(exe);
    } else { /* started by a relative path: the executable's own */
        en = syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", link, sizeof link - 1);
        if (en <= 0)
            return 0;
        exe = link;
    }
    int in = 0, out = 0;
    const char *line = buf, *end = buf + n;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        const char *at = line, *verb, *pat, *name;
        size_t vl = word(&at, eol, &verb), pl = word(&at, eol, &pat);
        if (vl && *verb != '#' && pl && glob(pat, pl, exe, (size_t)en)) {
            if (vl == 7 && !memcmp(verb, "include", 7)) {
                in = 1;
            } else if (vl == 7 && !memcmp(verb, "exclude", 7)) {
                out = 1;
            } else if (vl == 7 && !memcmp(verb, "service", 7) && !service[0]) {
                size_t nl = word(&at, eol, &name);
                if (nl && nl < cap) {
                    memcpy(service, name, nl);
                    service[nl] = '\0';
                }
            }
        }
        line = eol + 1;
    }
    return in && !out;
}

void dynobs__hostwide_unit(char *out, size_t cap)
{
    char buf[4096];
    out[0] = '\0';
    const char *path = getenv("DYNOBS_HOSTWIDE_CGROUP_FILE");
    long n = slurp(path ? path : "/proc/self/cgroup", buf, sizeof buf);
    if (n <= 0)
        return;
    /* cgroup v2: "0::/system.slice/nginx.service"; v1 lines name the same
     * path after their controllers. The last ".service" component wins
     * (a unit's own sub-cgroups come after it). */
    const char *best = NULL;
    size_t best_len = 0;
    for (const char *p = buf; (p = strstr(p, ".service")) != NULL; p += 8) {
        const char *s = p;
        while (s > buf && s[-1] != '/' && s[-1] != '\n' && s[-1] != ':')
            s--;
        best = s;
        best_len = (size_t)(p - s);
    }
    if (best && best_len && best_len < cap) {
        memcpy(out, best, best_len);
        out[best_len] = '\0';
    }
}
