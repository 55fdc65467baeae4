/*
 * libpq statements from uprobe events, as the shim's libpq.c makes them:
 * a CLIENT span per statement ("SELECT users"), from the call that sends
 * it to its result (a synchronous call's return, or PQgetResult's NULL
 * after an asynchronous send), with the statement scrubbed of literals
 * by common/sql.c, its operation and table, the rows returned, and the
 * error status for a failed result; db.client.operation.duration. What
 * a uprobe cannot see is left out: the database name, server address and
 * SQLSTATE (the shim asks libpq for them; here the connection was made
 * before, or its PGconn is opaque), and error.type is then "_OTHER".
 * Prepared statements are known by name from PQprepare/PQsendPrepare.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "metrics.h"
#include "sql.h"

#define PQ_CONNS 1024
#define PQ_NAMES 32

/* libpq's ExecStatusType values this file looks at */
#define PGRES_TUPLES_OK 2
#define PGRES_BAD_RESPONSE 5
#define PGRES_FATAL_ERROR 7

struct named {
    char name[64];
    char *query;
};

struct pqconn {
    int pid;
    uint64_t conn;
    int open; /* a statement is in flight */
    uint64_t start;
    int tid;
    int failed;
    long rows;
    char op[32];
    char coll[128];
    char *text; /* scrubbed */
    struct named names[PQ_NAMES];
    unsigned next_name;
};

static struct pqconn *pqs[PQ_CONNS];

static const double op_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};

static struct pqconn *conn_of(int pid, uint64_t conn, int create)
{
    int free_at = -1;
    for (int i = 0; i < PQ_CONNS; i++) {
        if (pqs[i] && pqs[i]->pid == pid && pqs[i]->conn == conn)
            return pqs[i];
        if (!pqs[i] && free_at < 0)
            free_at = i;
    }
    if (!create || free_at < 0)
        return NULL;
    struct pqconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->pid = pid;
    c->conn = conn;
    pqs[free_at] = c;
    return c;
}

static void free_conn(int i)
{
    struct pqconn *c = pqs[i];
    for (int k = 0; k < PQ_NAMES; k++)
        free(c->names[k].query);
    free(c->text);
    free(c);
    pqs[i] = NULL;
}

static const char *prepared(struct pqconn *c, const char *name)
{
    for (int k = 0; k < PQ_NAMES; k++)
        if (c->names[k].query && !strcmp(c->names[k].name, name))
            return c->names[k].query;
    return NULL;
}

static void remember(struct pqconn *c, const char *name, const char *query)
{
    struct named *n = NULL;
    for (int k = 0; k < PQ_NAMES && !n; k++)
        if (c->names[k].query && !strcmp(c->names[k].name, name))
            n = &c->names[k];
    if (!n)
        n = &c->names[c->next_name++ % PQ_NAMES];
    free(n->query);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->query = strdup(query);
}

static void finish(struct eproc *p, struct pqconn *c, uint64_t ts)
{
    if (!c->open)
        return;
    c->open = 0;
    char name[200];
    snprintf(name, sizeof name, "%s%s%s", c->op, *c->coll ? " " : "", c->coll);
    struct espan s;
    dynobs__espan_begin(&s, DYNOBS_SPAN_KIND_CLIENT, name, dynobs__ethread_ctx(c->pid, c->tid),
                        c->start, c->tid);
    dynobs__espan_str(&s, "db.system.name", "postgresql", 10);
    dynobs__espan_str(&s, "db.operation.name", c->op, strlen(c->op));
    dynobs__espan_str(&s, "db.collection.name", c->coll, strlen(c->coll));
    if (c->text)
        dynobs__espan_str(&s, "db.query.text", c->text, strlen(c->text));
    if (c->rows >= 0)
        dynobs__espan_int(&s, "db.response.returned_rows", c->rows);
    if (c->failed) {
        dynobs__espan_str(&s, "error.type", "_OTHER", 6);
        dynobs__espan_error(&s);
    }
    dynobs__espan_end(p, &s, ts);
    char labels[DYNOBS_METRIC_KEY_BYTES];
    const char *parts[][2] = {{"db.system.name", "postgresql"},
                              {"db.operation.name", c->op},
                              {"error.type", c->failed ? "_OTHER" : NULL}};
    dynobs__labels_join(labels, sizeof labels, parts, sizeof parts / sizeof parts[0]);
    dynobs__ebpf_histogram(p, "db.client.operation.duration", op_bounds,
                           sizeof op_bounds / sizeof op_bounds[0],
                           ts > c->start ? (double)(ts - c->start) / 1e9 : 0, labels);
}

static void begin(struct eproc *p, struct pqconn *c, const struct dynobs_ebpf_ev *e,
                  const char *query)
{
    finish(p, c, e->ts); /* a statement whose results were never all read */
    c->open = 1;
    c->start = e->ts;
    c->tid = (int)e->tid;
    c->failed = 0;
    c->rows = -1;
    free(c->text);
    c->text = NULL;
    c->op[0] = c->coll[0] = '\0';
    if (query) {
        size_t cap = strlen(query) + 1;
        c->text = malloc(cap);
        if (c->text)
            dynobs__sql_scrub(query, c->text, cap);
        dynobs__sql_operation(query, c->op, sizeof c->op);
        dynobs__sql_collection(query, c->coll, sizeof c->coll);
    }
    if (!*c->op)
        snprintf(c->op, sizeof c->op, "QUERY");
}

static void result(struct pqconn *c, long status, long rows)
{
    if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE || status < 0)
        c->failed = 1;
    else if (status == PGRES_TUPLES_OK)
        c->rows = rows;
}

void dynobs__pq_event(const struct dynobs_ebpf_ev *e, size_t len)
{
    (void)len;
    struct eproc *p = dynobs__eproc((int)e->pid, EPROC_FIND);
    if (!p)
        return;
    struct pqconn *c = conn_of((int)e->pid, e->conn, e->type == DYNOBS_EV_PQ_BEGIN);
    if (!c)
        return;
    /* data: one or two strings, each NUL-terminated within cap */
    char a[DYNOBS_EBPF_DATA_MAX + 1];
    memcpy(a, e->data, e->cap);
    a[e->cap] = '\0';
    size_t al = strnlen(a, e->cap);
    const char *b = al < e->cap ? a + al + 1 : "";
    switch (e->type) {
    case DYNOBS_EV_PQ_BEGIN:
        switch (e->aux) {
        case DYNOBS_PQ_EXEC:
        case DYNOBS_PQ_SEND:
            begin(p, c, e, a);
            break;
        case DYNOBS_PQ_PREPARE:
        case DYNOBS_PQ_SEND_PREPARE:
            remember(c, a, b);
            begin(p, c, e, NULL);
            snprintf(c->op, sizeof c->op, "PREPARE");
            break;
        case DYNOBS_PQ_EXEC_PREPARED:
        case DYNOBS_PQ_SEND_PREPARED:
            begin(p, c, e, prepared(c, a));
            break;
        }
        break;
    case DYNOBS_EV_PQ_END:
        result(c, (long)e->len, (long)e->aux);
        finish(p, c, e->ts);
        break;
    case DYNOBS_EV_PQ_RESULT:
        if (e->len < 0)
            finish(p, c, e->ts);
        else
            result(c, (long)e->len, (long)e->aux);
        break;
    }
}

void dynobs__pq_forget(int pid)
{
    for (int i = 0; i < PQ_CONNS; i++)
        if (pqs[i] && pqs[i]->pid == pid)
            free_conn(i);
}
