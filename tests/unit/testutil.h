/*
 * Helpers for the Criterion tests: temporary segment directories, child
 * programs spawned with extra environment, and segments read back through
 * the reader into plain structs that tests can assert on.
 */
#ifndef DYNOBS_TESTUTIL_H
#define DYNOBS_TESTUTIL_H

#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reader.h"
#include "record.h"

extern char **environ;

static inline char *tu_tmpdir(void)
{
    char *d = strdup("/tmp/dynobs-test-XXXXXX");
    if (!mkdtemp(d)) {
        perror("mkdtemp");
        abort();
    }
    return d;
}

static int tu_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static inline void tu_rmtree(const char *d)
{
    nftw(d, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fake environment for configuration loaders that take a getenv-like
 * function: set tu_fake_env to a NULL-terminated list of "K=V" strings (or
 * NULL for an empty environment) and pass tu_getenv. */
static const char *const *tu_fake_env;

static inline const char *tu_getenv(const char *name)
{
    size_t n = strlen(name);
    for (const char *const *p = tu_fake_env; p && *p; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

/* The fixed part of a span record as the ring tests write it: fixed ids
 * (0xab.., 0xcd..), start 1000 and end 2000 ns, the given kind and a name
 * of name_len bytes; the caller sets body_len and writes the body. */
static inline void tu_span_rec(struct dynobs_span_rec *f, const char *name, int kind)
{
    memset(f, 0, sizeof *f);
    memset(f->trace_id, 0xab, 16);
    memset(f->span_id, 0xcd, 8);
    f->start_ns = 1000;
    f->end_ns = 2000;
    f->kind = (uint8_t)kind;
    f->name_len = (uint16_t)strlen(name);
}

/* Asserts that text contains each of the NULL-terminated needles, showing
 * the missing one and the text when one is not there. */
static inline void tu_assert_contains(const char *text, const char *const needles[])
{
    for (size_t i = 0; needles[i]; i++)
        cr_assert(strstr(text, needles[i]), "missing \"%s\" in:\n%s", needles[i], text);
}
#define TU_ASSERT_CONTAINS(text, ...)                                                      \
    tu_assert_contains(text, (const char *const[]){__VA_ARGS__, NULL})

/* Runs argv with the current environment plus `extra` (NULL-terminated
 * "K=V" strings, which win). stdout goes to out_path when given. Returns
 * the exit status (or 128+signal). */
static inline int tu_run(char *const argv[], const char *const extra[], const char *out_path)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    for (size_t i = 0; i < n; i++) {
        int shadowed = 0;
        for (size_t j = 0; j < m; j++) {
            size_t kl = strcspn(extra[j], "=");
            if (strncmp(environ[i], extra[j], kl + 1) == 0)
                shadowed = 1;
        }
        if (!shadowed)
            env[k++] = environ[i];
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out_path)
        posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (rc != 0) {
        fprintf(stderr, "spawn %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Paths of the *.seg files in dir, sorted; returns how many (<= max). */
static inline int tu_segments(const char *dir, char paths[][1024], int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".seg") == 0)
            snprintf(paths[n++], 1024, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(paths[i], paths[j]) > 0) {
                char t[1024];
                memcpy(t, paths[i], 1024);
                memcpy(paths[i], paths[j], 1024);
                memcpy(paths[j], t, 1024);
            }
    return n;
}

struct tu_attr {
    char key[256];
    int type;
    char s[8192];
    size_t slen;
    int64_t i;
    double d;
    int b;
    int truncated;
};

struct tu_event {
    char name[256];
    int nattrs;
    struct tu_attr attrs[4];
    int dropped;
};

struct tu_span {
    uint8_t trace_id[16], span_id[8], parent[8];
    char trace_hex[33], span_hex[17], parent_hex[17];
    char name[600];
    int kind, status;
    char status_msg[600];
    char tracestate[600];
    uint8_t trace_flags, span_flags;
    uint16_t rec_flags;
    uint32_t tid;
    uint64_t start_ns, end_ns;
    int nattrs;
    struct tu_attr attrs[24];
    int nevents;
    struct tu_event events[8];
    int dropped_attrs, dropped_events;
};

static inline void tu_hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static inline void tu_copy_attr(struct tu_attr *a, const struct dynobs_item *it)
{
    memset(a, 0, sizeof *a);
    memcpy(a->key, it->key, it->key_len);
    a->type = it->type;
    a->i = it->i;
    a->d = it->d;
    a->b = it->b;
    a->truncated = !!(it->flags & DYNOBS_ITEMF_TRUNCATED);
    if (it->str) {
        memcpy(a->s, it->str, it->str_len);
        a->slen = it->str_len;
    }
}

/* Decodes a validated span view into a tu_span. */
static inline void tu_span_from_view(struct tu_span *s, const struct dynobs_span_view *v)
{
    memset(s, 0, sizeof *s);
    memcpy(s->trace_id, v->f.trace_id, 16);
    memcpy(s->span_id, v->f.span_id, 8);
    memcpy(s->parent, v->f.parent_span_id, 8);
    tu_hex(s->trace_id, 16, s->trace_hex);
    tu_hex(s->span_id, 8, s->span_hex);
    tu_hex(s->parent, 8, s->parent_hex);
    memcpy(s->name, v->name, v->f.name_len);
    memcpy(s->status_msg, v->status_msg, v->f.status_msg_len);
    memcpy(s->tracestate, v->tracestate, v->f.tracestate_len);
    s->kind = v->f.kind;
    s->status = v->f.status;
    s->trace_flags = v->f.trace_flags;
    s->span_flags = v->f.span_flags;
    s->rec_flags = v->rec_flags;
    s->tid = v->f.tid;
    s->start_ns = v->f.start_ns;
    s->end_ns = v->f.end_ns;
    s->dropped_attrs = v->f.dropped_attrs;
    s->dropped_events = v->f.dropped_events;
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__item_next(v->items, v->items_len, &off, &it) == 1) {
        if (it.tag == DYNOBS_ITEM_SPAN_ATTR && s->nattrs < 24)
            tu_copy_attr(&s->attrs[s->nattrs++], &it);
        else if (it.tag == DYNOBS_ITEM_EVENT && s->nevents < 8) {
            struct tu_event *e = &s->events[s->nevents++];
            memcpy(e->name, it.str, it.str_len);
            e->dropped = it.dropped_attrs;
        } else if (it.tag == DYNOBS_ITEM_EVENT_ATTR && s->nevents > 0) {
            struct tu_event *e = &s->events[s->nevents - 1];
            if (e->nattrs < 4)
                tu_copy_attr(&e->attrs[e->nattrs++], &it);
        }
    }
}

/* Reads every span in the segment at path. Returns the count, or a
 * negative errno from opening it. `out` gets up to max spans. */
static inline int tu_read_spans(const char *path, struct tu_span *out, int max)
{
    struct dynobs_reader *r = malloc(sizeof *r);
    int rc = dynobs__reader_open(r, path, DYNOBS_READER_CONSUME);
    if (rc < 0) {
        free(r);
        return rc;
    }
    int n = 0;
    const struct dynobs_rec_hdr *h;
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_span_view v;
        if (h->type != DYNOBS_REC_SPAN || dynobs__span_decode(h, h->len, &v) < 0) {
            n = -EBADMSG;
            break;
        }
        if (n < max)
            tu_span_from_view(&out[n], &v);
        n++;
    }
    dynobs__reader_close(r);
    free(r);
    return n;
}

static inline const struct tu_span *tu_find(const struct tu_span *s, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0)
            return &s[i];
    return NULL;
}

static inline const struct tu_attr *tu_attr(const struct tu_span *s, const char *key)
{
    for (int i = 0; i < s->nattrs; i++)
        if (strcmp(s->attrs[i].key, key) == 0)
            return &s->attrs[i];
    return NULL;
}

static inline char *tu_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

#endif
