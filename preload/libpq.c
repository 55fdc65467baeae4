/*
 * libpq: a database CLIENT span for every PostgreSQL call (sync and async
 * queries, prepares, connection establishment), the
 * db.client.operation.duration metric, and, with DYNOBS_SQLCOMMENTER=1, a
 * sqlcommenter comment carrying the span's traceparent into the server.
 *
 * libpq is never linked: its functions are found at run time, also when
 * psycopg2 loads it privately. The few ABI constants used are libpq's
 * stable public values. Pipeline mode is passed through untraced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_memo.h"
#include "lazymap.h"
#include "policy.h"
#include "ptrtab.h"
#include "redact.h"
#include "state.h"

#include "../common/sql.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;

#define CONNECTION_BAD 1
#define PGRES_TUPLES_OK 2
#define PGRES_FATAL_ERROR 7
#define PGRES_POLLING_FAILED 0
#define PGRES_POLLING_OK 3
#define PG_DIAG_SQLSTATE 'C'

static struct {
    PGconn *(*connectdb)(const char *);
    PGconn *(*connectdb_params)(const char *const *, const char *const *, int);
    PGconn *(*setdb_login)(const char *, const char *, const char *, const char *, const char *,
                           const char *, const char *);
    PGconn *(*connect_start)(const char *);
    PGconn *(*connect_start_params)(const char *const *, const char *const *, int);
    int (*connect_poll)(PGconn *);
    void (*finish)(PGconn *);
    PGresult *(*exec)(PGconn *, const char *);
    PGresult *(*exec_params)(PGconn *, const char *, int, const Oid *, const char *const *,
                             const int *, const int *, int);
    PGresult *(*prepare)(PGconn *, const char *, const char *, int, const Oid *);
    PGresult *(*exec_prepared)(PGconn *, const char *, int, const char *const *, const int *,
                               const int *, int);
    PGresult *(*describe_prepared)(PGconn *, const char *);
    int (*send_query)(PGconn *, const char *);
    int (*send_query_params)(PGconn *, const char *, int, const Oid *, const char *const *,
                             const int *, const int *, int);
    int (*send_prepare)(PGconn *, const char *, const char *, int, const Oid *);
    int (*send_query_prepared)(PGconn *, const char *, int, const char *const *, const int *,
                               const int *, int);
    PGresult *(*get_result)(PGconn *);
    int (*status)(const PGconn *);
    int (*result_status)(const PGresult *);
    char *(*error_field)(const PGresult *, int);
    int (*ntuples)(const PGresult *);
    char *(*host)(const PGconn *);
    char *(*port)(const PGconn *);
    char *(*db)(const PGconn *);
    int (*pipeline_status)(const PGconn *);
} pq;

/* libpq's function, bound at its first use (inline once bound: libpq
 * calls some of them several times per operation). */
#define PQ(field, name)                                                                    \
    ((__typeof__(pq.field))(__atomic_load_n((void **)&pq.field, __ATOMIC_ACQUIRE)           \
                                ?: dynobs__lookup((void **)&pq.field, name, dynobs__libpq)))

/* libpq calls some of its own exported functions (PQconnectdb calls
 * PQconnectStart and PQconnectPoll, PQexecParams calls PQsendQueryParams
 * and PQgetResult): while one of our wrappers runs the real call, the
 * inner calls pass through, so one operation is one span. */
static inline int active(void)
{
    return dynobs__layer_on(DYNOBS_LAYER_LIBPQ);
}

#define INNER(call)                                                                        \
    (dynobs__enter(DYNOBS_INSIDE_LIBPQ), __extension__({                                   \
         __typeof__(call) r__ = (call);                                                    \
         dynobs__leave(DYNOBS_INSIDE_LIBPQ);                                               \
         r__;                                                                              \
     }))

/* DYNOBS_SQLCOMMENTER=1 and DYNOBS_DB_QUERY_RAW=1, read once. */
static int setting(int *cache, const char *name)
{
    int v = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *e = getenv(name);
        v = e && (!strcmp(e, "1") || !strcasecmp(e, "true"));
        __atomic_store_n(cache, v, __ATOMIC_RELAXED);
    }
    return v;
}

static int commenter = -1, raw_text = -1;

/* ---- per connection state: keyed by PGconn*, like curl handles ---- */

#define STATEMENTS 32u

/* What an operation's span is made of besides its connection: the
 * statement's text (as its analysis knows it: hash and length) and the
 * operation name given instead of the statement's own (a literal). Equal
 * ids give the same span name, operation and collection. */
struct stmt_id {
    uint64_t hash;
    size_t len;
    const char *override;
    int query; /* 0: no text (hash and len 0) */
};

static int same_id(const struct stmt_id *a, const struct stmt_id *b)
{
    return a->hash == b->hash && a->len == b->len && a->override == b->override &&
           a->query == b->query;
}

struct pgstate {
    int have_target;
    char host[256], port[16], db[128];
    int pending;      /* an async query waits for PQgetResult(NULL) */
    int err_seen;
    char sqlstate[8];
    long rows;
    const char *op; /* the operation in flight's: a literal, or last_op */
    uint64_t start_ns;
    struct {
        char name[64];
        char query[512]; /* for the spans of PQexecPrepared */
    } stmts[STATEMENTS];
    unsigned next_stmt;
    /* The analysis of the last statement text: services repeat theirs, and
     * scrubbing and naming cost more than the rest of a span. last_op is
     * the operation ("QUERY" when the text names none), last_name the span
     * name, of which the operation is the first last_ol bytes. */
    uint64_t last_hash;
    size_t last_len;
    char last_op[32], last_coll[128], last_text[2048], last_name[200];
    size_t last_ol, last_nl;
    /* What the last operations gave, for the next ones with the same ids
     * (client_memo.h): the rules' decision (its facts: the operation, the
     * span name and the connection's host), the attributes added at the
     * start of a query's span, and the metric's labels when the operation
     * succeeded (with its series). All of them are the connection's too:
     * emptied when its target is read again. */
    struct stmt_id id; /* the operation in flight's */
    struct stmt_id decision_id, attrs_id, labels_id;
    struct dynobs_client_decision decision;
    struct dynobs_attr_block attrs;
    uint8_t labels_ok; /* labels holds labels_id's */
    long rows_kept;    /* the row count rows_attr was encoded for */
    struct dynobs_attr_block rows_attr; /* db.response.returned_rows */
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct dynobs_series_memo series;
    /* What the rules decided for the operation in flight (policy.h). */
    int uncounted;
    const struct dynobs_rules *rules;
    const struct dynobs_rule_redact *redact;
    struct dynobs_span span;
};

/* Connections: PGconn pointer -> state. Mapped when the first one is
 * traced (lazymap.h): a process that never uses libpq has none. */
static void *conns;
#define TABLE_BYTES (DYNOBS_PTRTAB_SIZE * sizeof(struct dynobs_ptrslot))

/* The state of a connection; the slot's value is kept for reuse. */
static struct pgstate *state_of(PGconn *c, int create)
{
    struct dynobs_ptrslot *tab = dynobs__lazymap_peek(&conns);
    /* Only a new connection maps the table; a lookup in none finds nothing. */
    if (DYNOBS_UNLIKELY(!tab) && (!create || !(tab = dynobs__lazymap_map(&conns, TABLE_BYTES))))
        return NULL;
    int fresh;
    struct pgstate *s = dynobs__ptrtab_state(tab, c, sizeof *s, create, &fresh);
    if (s && fresh)
        memset(s, 0, offsetof(struct pgstate, span));
    return s;
}

static void forget(PGconn *c)
{
    struct dynobs_ptrslot *tab = dynobs__lazymap_peek(&conns);
    struct dynobs_ptrslot *e = tab ? dynobs__ptrtab_find(tab, c) : NULL;
    if (e)
        dynobs__ptrtab_release(e);
}

static void copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* Empties what was kept for the connection's last operations. */
static void forget_memos(struct pgstate *s)
{
    dynobs__client_decision_clear(&s->decision);
    s->attrs.len = 0;
    s->labels_ok = 0;
    s->series.slot = NULL;
}

static void target_of(PGconn *c, struct pgstate *s)
{
    if (s->have_target)
        return;
    forget_memos(s);
    char *(*host)(const PGconn *) = PQ(host, "PQhost");
    char *(*port)(const PGconn *) = PQ(port, "PQport");
    char *(*db)(const PGconn *) = PQ(db, "PQdb");
    copy(s->host, sizeof s->host, host ? host(c) : NULL);
    copy(s->port, sizeof s->port, port ? port(c) : NULL);
    copy(s->db, sizeof s->db, db ? db(c) : NULL);
    s->have_target = 1;
}

/* Each attribute of a database span is set once: no replacement scan. */
static void put_str(struct dynobs_span *sp, const char *k, size_t kl, const char *v)
{
    if (v && *v)
        dynobs__span_add(sp, k, kl, DYNOBS_ATTR_STRING, v, strlen(v));
}

static void put_int(struct dynobs_span *sp, const char *k, size_t kl, int64_t v)
{
    dynobs__span_add(sp, k, kl, DYNOBS_ATTR_INT, &v, 8);
}

#define set_str(sp, k, v) put_str(sp, k, sizeof k - 1, v)
#define set_int(sp, k, v) put_int(sp, k, sizeof k - 1, v)

/* The operation and span name of a statement text, kept with its
 * analysis. */
static void analyse(struct pgstate *s, const char *query, int raw)
{
    dynobs__sql_operation(query, s->last_op, sizeof s->last_op);
    dynobs__sql_collection(query, s->last_coll, sizeof s->last_coll);
    if (!raw)
        dynobs__sql_scrub(query, s->last_text, sizeof s->last_text);
    if (!*s->last_op)
        copy(s->last_op, sizeof s->last_op, "QUERY");
    size_t ol = strlen(s->last_op), cl = strlen(s->last_coll), nl = ol;
    memcpy(s->last_name, s->last_op, ol + 1);
    if (cl && ol + 1 + cl < sizeof s->last_name) {
        s->last_name[ol] = ' ';
        memcpy(s->last_name + ol + 1, s->last_coll, cl + 1);
        nl += 1 + cl;
    }
    s->last_ol = ol;
    s->last_nl = nl;
}

/* Starts the span of one operation. query may be NULL (connect). */
static int begin(PGconn *c, struct pgstate *s, const char *query, const char *op_override)
{
    struct dynobs_thread *t = dynobs__thread();
    if (!t)
        return -1;
    target_of(c, s);
    int raw = query && setting(&raw_text, "DYNOBS_DB_QUERY_RAW");
    struct stmt_id id = {0, 0, op_override, query != NULL};
    if (query) {
        size_t ql = strlen(query);
        uint64_t h = dynobs__hash(query, ql, 0x7067);
        if (h != s->last_hash || ql != s->last_len) {
            analyse(s, query, raw);
            s->last_hash = h;
            s->last_len = ql;
        }
        id.hash = h;
        id.len = ql;
    }
    /* A statement's own operation and collection name its span; a given
     * operation (or none) names it alone. */
    const char *op = s->last_op, *name = s->last_name, *coll = s->last_coll;
    size_t ol = s->last_ol, nl = s->last_nl;
    if (!query || op_override) {
        op = name = op_override ? op_override : "QUERY";
        ol = nl = strlen(op);
        coll = "";
    }
    s->start_ns = dynobs__thread_now();
    s->id = id;
    struct dynobs_decision d;
    const struct dynobs_span_policy *pol;
    if (!same_id(&s->decision_id, &id) ||
        !dynobs__client_decision_recall(&s->decision, &d, &pol)) {
        struct dynobs_rule_facts f = {.kind = DYNOBS_SPAN_KIND_CLIENT,
                                      .db_operation = {op, ol},
                                      .server_address = {s->host, strlen(s->host)},
                                      .span_name = {name, nl}};
        pol = dynobs__decide(&d, &f, 0);
        dynobs__client_decision_keep(&s->decision, &d, pol);
        s->decision_id = id;
    }
    s->uncounted = (d.drop & DYNOBS_DROP_METRICS) != 0;
    s->rules = d.r;
    s->redact = d.redact;
    /* A rule may let a service's statements be recorded as sent. */
    if (query && !raw && d.redact && d.redact->sql == DYNOBS_SQL_RAW)
        raw = 1;
    if (dynobs__span_begin_ex(&s->span, name, DYNOBS_SPAN_KIND_CLIENT, dynobs__ctx_outbound(t),
                              s->start_ns, pol) < 0)
        return -1;
    s->op = op;
    s->err_seen = 0;
    s->sqlstate[0] = '\0';
    s->rows = -1;
    struct dynobs_span *sp = &s->span;
    /* A statement's attributes are the same while its analysis is: raw
     * text is the statement's own, and is not kept. */
    int reuse = query && !raw;
    if (sp->recording && reuse && same_id(&s->attrs_id, &id) &&
        !dynobs__attr_block_put(&s->attrs, sp))
        return 0;
    if (sp->recording) {
        struct dynobs_attr_mark k = dynobs__attr_mark(sp);
        set_str(sp, "db.system.name", "postgresql");
        set_str(sp, "db.namespace", s->db);
        set_str(sp, "server.address", s->host);
        long port = strtol(s->port, NULL, 10);
        if (port > 0)
            set_int(sp, "server.port", port);
        if (!op_override || query)
            set_str(sp, "db.operation.name", op);
        set_str(sp, "db.collection.name", coll);
        if (query)
            set_str(sp, "db.query.text", raw ? query : s->last_text);
        s->attrs.len = 0;
        if (reuse) {
            dynobs__attr_block_keep(&s->attrs, sp, k);
            s->attrs_id = id;
        }
    }
    return 0;
}

/* Folds one result into the operation's outcome. */
static void note_result(struct pgstate *s, const PGresult *r)
{
    if (!r)
        return;
    int (*rstatus)(const PGresult *) = PQ(result_status, "PQresultStatus");
    int st = rstatus ? rstatus(r) : -1;
    if (st == PGRES_FATAL_ERROR && !s->err_seen) {
        char *(*field)(const PGresult *, int) = PQ(error_field, "PQresultErrorField");
        copy(s->sqlstate, sizeof s->sqlstate, field ? field(r, PG_DIAG_SQLSTATE) : NULL);
        s->err_seen = 1;
    } else if (st == PGRES_TUPLES_OK) {
        int (*ntuples)(const PGresult *) = PQ(ntuples, "PQntuples");
        if (ntuples)
            s->rows = ntuples(r);
    }
}

static const double op_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};

static void finish(struct pgstate *s, const char *error_type)
{
    struct dynobs_span *sp = &s->span;
    struct dynobs_thread *t = dynobs__thread();
    if (s->err_seen && !error_type)
        error_type = *s->sqlstate ? s->sqlstate : "_OTHER";
    if (*s->sqlstate)
        set_str(sp, "db.response.status_code", s->sqlstate);
    /* Statements that repeat return as many rows as the last time, more
     * often than not: its encoded attribute is copied then. */
    if (s->rows >= 0 && (s->rows != s->rows_kept || dynobs__attr_block_put(&s->rows_attr, sp))) {
        struct dynobs_attr_mark k = dynobs__attr_mark(sp);
        set_int(sp, "db.response.returned_rows", s->rows);
        dynobs__attr_block_keep(&s->rows_attr, sp, k);
        s->rows_kept = s->rows;
    }
    if (error_type) {
        set_str(sp, "error.type", error_type);
        dynobs__span_status(sp, DYNOBS_STATUS_ERROR, NULL);
    }
    struct dynobs_segment *seg = s->uncounted ? NULL : dynobs__segment();
    if (seg && t) {
        uint64_t now = dynobs__thread_now();
        double secs = now > s->start_ns ? (double)(now - s->start_ns) / 1e9 : 0;
        /* A success's labels are the operation's and the connection's:
         * made once while the operation repeats, with their series. */
        int ok = !*s->sqlstate && !error_type;
        if (ok && s->labels_ok && same_id(&s->labels_id, &s->id)) {
            dynobs__duration_memo(seg, "db.client.operation.duration", op_bounds,
                                  sizeof op_bounds / sizeof op_bounds[0], secs, s->labels,
                                  &s->series);
        } else {
            char failed[DYNOBS_METRIC_KEY_BYTES];
            char *labels = ok ? s->labels : failed;
            const char *parts[][2] = {{"db.system.name", "postgresql"},
                                      {"db.operation.name", s->op},
                                      {"db.namespace", s->db},
                                      {"server.address", s->host},
                                      {"db.response.status_code", s->sqlstate},
                                      {"error.type", error_type}};
            /* Label values cannot hold ',' or '=': such a value is left out. */
            dynobs__labels_join(labels, DYNOBS_METRIC_KEY_BYTES, parts,
                                sizeof parts / sizeof parts[0]);
            if (labels == s->labels) {
                s->labels_ok = 1;
                s->labels_id = s->id;
                s->series.slot = NULL;
                dynobs__duration_memo(seg, "db.client.operation.duration", op_bounds,
                                      sizeof op_bounds / sizeof op_bounds[0], secs, labels,
                                      &s->series);
            } else {
                dynobs__duration_record(seg, "db.client.operation.duration", op_bounds,
                                        sizeof op_bounds / sizeof op_bounds[0], secs, labels);
            }
        }
    }
    dynobs__redact_span(sp, s->rules, s->redact);
    dynobs__span_finish(sp);
}

/* The statement with a sqlcommenter comment carrying the span's context,
 * or NULL to send it as it is. The caller frees the result. */
static char *comment_on(const struct pgstate *s, const char *q)
{
    if (dynobs__sql_has_comment(q))
        return NULL;
    const struct dynobs_span_rec *r = &s->span.rec;
    char tp[DYNOBS_TRACEPARENT_LEN + 1];
    dynobs__traceparent_format(r->trace_id, r->span_id, r->trace_flags, tp, sizeof tp);
    /* tracestate, URL-encoded as sqlcommenter wants its values. */
    char ts[3 * DYNOBS_TRACESTATE_MAX + 1];
    size_t tl = 0;
    const char *raw = (const char *)s->span.body + r->name_len;
    for (size_t i = 0; i < r->tracestate_len && tl + 4 < sizeof ts; i++) {
        unsigned char c = (unsigned char)raw[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            ts[tl++] = (char)c;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            ts[tl++] = '%';
            ts[tl++] = hex[c >> 4];
            ts[tl++] = hex[c & 15];
        }
    }
    ts[tl] = '\0';
    size_t len = strlen(q), at = dynobs__sql_comment_at(q, len);
    char *out = malloc(len + tl + 96);
    if (!out)
        return NULL;
    size_t o = 0;
    memcpy(out, q, at);
    o = at;
    o += (size_t)sprintf(out + o, " /*traceparent='%s'", tp);
    if (tl)
        o += (size_t)sprintf(out + o, ",tracestate='%s'", ts);
    memcpy(out + o, "*/", 2);
    o += 2;
    memcpy(out + o, q + at, len - at + 1);
    return out;
}

static inline char *commented(const struct pgstate *s, const char *q)
{
    return q && setting(&commenter, "DYNOBS_SQLCOMMENTER") ? comment_on(s, q) : NULL;
}

static int pipelined(PGconn *c)
{
    int (*ps)(const PGconn *) = PQ(pipeline_status, "PQpipelineStatus");
    return ps && ps(c) != 0;
}

/* ---- connections ---- */

/* Times a connecting call and gives its result a CONNECT span. */
#define CONNECT_CALL(call, done)                                                           \
    __extension__({                                                                        \
        struct dynobs_thread *t_ = active() ? dynobs__thread() : NULL;                     \
        uint64_t t0_ = t_ ? dynobs__thread_now() : 0;                               \
        PGconn *c_ = INNER(call);                                                          \
        if (t_) {                                                                          \
            int saved_ = errno;                                                            \
            connected(c_, t0_, done);                                                      \
            errno = saved_;                                                                \
        }                                                                                  \
        c_;                                                                                \
    })

static void connected(PGconn *c, uint64_t start_ns, int done)
{
    struct pgstate *s = c ? state_of(c, 1) : NULL;
    if (!s)
        return;
    struct dynobs_thread *t = dynobs__thread();
    if (!t || begin(c, s, NULL, "CONNECT") < 0)
        return;
    s->span.rec.start_ns = start_ns;
    s->start_ns = start_ns;
    if (!done) {
        s->pending = 2; /* ends in PQconnectPoll */
        return;
    }
    int (*status)(const PGconn *) = PQ(status, "PQstatus");
    s->have_target = 0;
    target_of(c, s);
    finish(s, status && status(c) == CONNECTION_BAD ? "connection_failed" : NULL);
}

/* PQconnectdb and its siblings: the next definition (NULL when libpq has
 * none), called inside the connection span; done is 0 for the
 * non-blocking starts, whose span ends in PQconnectPoll. */
#define CONNECT(field, name, params, args, done)                                           \
    DYNOBS_API PGconn *name params                                                         \
    {                                                                                      \
        PGconn *(*fn) params = PQ(field, #name);                                           \
        if (!fn)                                                                           \
            return NULL;                                                                   \
        return CONNECT_CALL(fn args, done);                                                \
    }

CONNECT(connectdb, PQconnectdb, (const char *conninfo), (conninfo), 1)
CONNECT(connectdb_params, PQconnectdbParams,
        (const char *const *keys, const char *const *values, int expand), (keys, values, expand),
        1)
CONNECT(setdb_login, PQsetdbLogin,
        (const char *host, const char *port, const char *opt, const char *tty, const char *db,
         const char *login, const char *pwd),
        (host, port, opt, tty, db, login, pwd), 1)
CONNECT(connect_start, PQconnectStart, (const char *conninfo), (conninfo), 0)
CONNECT(connect_start_params, PQconnectStartParams,
        (const char *const *keys, const char *const *values, int expand), (keys, values, expand),
        0)

DYNOBS_API int PQconnectPoll(PGconn *c)
{
    int (*fn)(PGconn *) = PQ(connect_poll, "PQconnectPoll");
    int traced = active();
    int rc = fn ? INNER(fn(c)) : PGRES_POLLING_FAILED;
    struct pgstate *s = traced && c ? state_of(c, 0) : NULL;
    if (s && s->pending == 2 && (rc == PGRES_POLLING_OK || rc == PGRES_POLLING_FAILED)) {
        int saved = errno;
        s->pending = 0;
        s->have_target = 0;
        target_of(c, s);
        finish(s, rc == PGRES_POLLING_FAILED ? "connection_failed" : NULL);
        errno = saved;
    }
    return rc;
}

DYNOBS_API void PQfinish(PGconn *c)
{
    void (*fn)(PGconn *) = PQ(finish, "PQfinish");
    if (c && active()) {
        struct pgstate *s = state_of(c, 0);
        if (s && s->pending) {
            s->pending = 0;
            finish(s, "connection_closed");
        }
        forget(c);
    }
    if (fn)
        fn(c);
}

/* ---- synchronous calls ---- */

/* The end of a synchronous operation's span: q2 (the commented query, or
 * NULL) freed, the result noted, errno as the call left it. */
static PGresult *sync_done(struct pgstate *s, char *q2, PGresult *r)
{
    int saved = errno;
    if (q2)
        free(q2);
    if (!r)
        s->err_seen = 1;
    note_result(s, r);
    finish(s, r ? NULL : "no_result");
    errno = saved;
    return r;
}

/* Runs one synchronous operation: span around it, result noted. */
#define SYNC_OP(conn, query, opname, call)                                                 \
    do {                                                                                   \
        struct pgstate *s_ = active() && (conn) && !pipelined(conn) ? state_of(conn, 1) : NULL; \
        if (!s_ || s_->pending || begin(conn, s_, query, opname) < 0)                      \
            return (call);                                                                 \
        PGresult *r_ = INNER(call);                                                        \
        return sync_done(s_, NULL, r_);                                                    \
    } while (0)

DYNOBS_API PGresult *PQexec(PGconn *c, const char *query)
{
    PGresult *(*fn)(PGconn *, const char *) = PQ(exec, "PQexec");
    if (!fn)
        return NULL;
    struct pgstate *s = active() && c && query && !pipelined(c) ? state_of(c, 1) : NULL;
    if (!s || s->pending || begin(c, s, query, NULL) < 0)
        return fn(c, query);
    char *q2 = commented(s, query);
    PGresult *r = INNER(fn(c, q2 ? q2 : query));
    return sync_done(s, q2, r);
}

DYNOBS_API PGresult *PQexecParams(PGconn *c, const char *cmd, int n, const Oid *types,
                                  const char *const *values, const int *lengths,
                                  const int *formats, int result_format)
{
    PGresult *(*fn)(PGconn *, const char *, int, const Oid *, const char *const *, const int *,
                    const int *, int) = PQ(exec_params, "PQexecParams");
    if (!fn)
        return NULL;
    struct pgstate *s = active() && c && cmd && !pipelined(c) ? state_of(c, 1) : NULL;
    if (!s || s->pending || begin(c, s, cmd, NULL) < 0)
        return fn(c, cmd, n, types, values, lengths, formats, result_format);
    char *q2 = commented(s, cmd);
    PGresult *r = INNER(fn(c, q2 ? q2 : cmd, n, types, values, lengths, formats, result_format));
    return sync_done(s, q2, r);
}

/* Remembers a prepared statement's text for its later executions. */
static void remember(PGconn *c, const char *name, const char *query)
{
    struct pgstate *s = state_of(c, 1);
    if (!s || !query)
        return;
    unsigned i;
    for (i = 0; i < STATEMENTS; i++)
        if (!strcmp(s->stmts[i].name, name ? name : ""))
            break;
    if (i == STATEMENTS)
        i = s->next_stmt++ % STATEMENTS;
    copy(s->stmts[i].name, sizeof s->stmts[i].name, name);
    copy(s->stmts[i].query, sizeof s->stmts[i].query, query);
}

static const char *statement(PGconn *c, const char *name)
{
    struct pgstate *s = state_of(c, 0);
    for (unsigned i = 0; s && i < STATEMENTS; i++)
        if (s->stmts[i].query[0] && !strcmp(s->stmts[i].name, name ? name : ""))
            return s->stmts[i].query;
    return NULL;
}

DYNOBS_API PGresult *PQprepare(PGconn *c, const char *name, const char *query, int n,
                               const Oid *types)
{
    PGresult *(*fn)(PGconn *, const char *, const char *, int, const Oid *) =
        PQ(prepare, "PQprepare");
    if (!fn)
        return NULL;
    if (active() && c) {
        int saved = errno;
        remember(c, name, query);
        errno = saved;
    }
    SYNC_OP(c, query, "PREPARE", fn(c, name, query, n, types));
}

DYNOBS_API PGresult *PQexecPrepared(PGconn *c, const char *name, int n,
                                    const char *const *values, const int *lengths,
                                    const int *formats, int result_format)
{
    PGresult *(*fn)(PGconn *, const char *, int, const char *const *, const int *, const int *,
                    int) = PQ(exec_prepared, "PQexecPrepared");
    if (!fn)
        return NULL;
    const char *q = active() && c ? statement(c, name) : NULL;
    SYNC_OP(c, q, q ? NULL : "EXECUTE", fn(c, name, n, values, lengths, formats, result_format));
}

DYNOBS_API PGresult *PQdescribePrepared(PGconn *c, const char *name)
{
    PGresult *(*fn)(PGconn *, const char *) = PQ(describe_prepared, "PQdescribePrepared");
    if (!fn)
        return NULL;
    SYNC_OP(c, (const char *)NULL, "DESCRIBE", fn(c, name));
}

/* ---- asynchronous calls: the span ends at PQgetResult() == NULL ---- */

static int async_begin(PGconn *c, const char *query, const char *op, struct pgstate **out)
{
    struct pgstate *s = active() && c && !pipelined(c) ? state_of(c, 1) : NULL;
    *out = NULL;
    if (!s || s->pending || begin(c, s, query, op) < 0)
        return -1;
    *out = s;
    return 0;
}

static int async_sent(struct pgstate *s, int ok)
{
    if (!s)
        return ok;
    int saved = errno;
    if (ok) {
        s->pending = 1;
    } else {
        s->err_seen = 1;
        finish(s, "send_failed");
    }
    errno = saved;
    return ok;
}

/* PQsendQuery's traced call (apart, so that the call libpq makes of it
 * inside PQexec passes through without a frame of its own). */
static __attribute__((noinline)) int send_query_traced(int (*fn)(PGconn *, const char *),
                                                       PGconn *c, const char *query)
{
    struct pgstate *s;
    if (async_begin(c, query, NULL, &s) < 0)
        return fn(c, query);
    char *q2 = commented(s, query);
    int ok = INNER(fn(c, q2 ? q2 : query));
    free(q2);
    return async_sent(s, ok);
}

DYNOBS_API int PQsendQuery(PGconn *c, const char *query)
{
    int (*fn)(PGconn *, const char *) = PQ(send_query, "PQsendQuery");
    if (!fn)
        return 0;
    if (!query || !active())
        return fn(c, query);
    return send_query_traced(fn, c, query);
}

DYNOBS_API int PQsendQueryParams(PGconn *c, const char *cmd, int n, const Oid *types,
                                 const char *const *values, const int *lengths,
                                 const int *formats, int result_format)
{
    int (*fn)(PGconn *, const char *, int, const Oid *, const char *const *, const int *,
              const int *, int) = PQ(send_query_params, "PQsendQueryParams");
    if (!fn)
        return 0;
    struct pgstate *s;
    if (!cmd || async_begin(c, cmd, NULL, &s) < 0)
        return fn(c, cmd, n, types, values, lengths, formats, result_format);
    char *q2 = commented(s, cmd);
    int ok = INNER(fn(c, q2 ? q2 : cmd, n, types, values, lengths, formats, result_format));
    free(q2);
    return async_sent(s, ok);
}

DYNOBS_API int PQsendPrepare(PGconn *c, const char *name, const char *query, int n,
                             const Oid *types)
{
    int (*fn)(PGconn *, const char *, const char *, int, const Oid *) =
        PQ(send_prepare, "PQsendPrepare");
    if (!fn)
        return 0;
    struct pgstate *s;
    if (active() && c)
        remember(c, name, query);
    if (async_begin(c, query, "PREPARE", &s) < 0)
        return fn(c, name, query, n, types);
    return async_sent(s, INNER(fn(c, name, query, n, types)));
}

DYNOBS_API int PQsendQueryPrepared(PGconn *c, const char *name, int n, const char *const *values,
                                   const int *lengths, const int *formats, int result_format)
{
    int (*fn)(PGconn *, const char *, int, const char *const *, const int *, const int *, int) =
        PQ(send_query_prepared, "PQsendQueryPrepared");
    if (!fn)
        return 0;
    struct pgstate *s;
    const char *q = active() && c ? statement(c, name) : NULL;
    if (async_begin(c, q, q ? NULL : "EXECUTE", &s) < 0)
        return fn(c, name, n, values, lengths, formats, result_format);
    return async_sent(s, INNER(fn(c, name, n, values, lengths, formats, result_format)));
}

/* PQgetResult's call with a span pending on the connection, or that may
 * have one (apart, as send_query_traced). */
static __attribute__((noinline)) PGresult *get_result_traced(PGresult *(*fn)(PGconn *),
                                                             PGconn *c)
{
    PGresult *r = fn ? INNER(fn(c)) : NULL;
    struct pgstate *s = c ? state_of(c, 0) : NULL;
    if (s && s->pending == 1) {
        int saved = errno;
        if (r) {
            note_result(s, r);
        } else {
            s->pending = 0;
            finish(s, NULL);
        }
        errno = saved;
    }
    return r;
}

DYNOBS_API PGresult *PQgetResult(PGconn *c)
{
    PGresult *(*fn)(PGconn *) = PQ(get_result, "PQgetResult");
    /* Called by libpq itself inside PQexec and its kin: nothing to do,
     * and the calls it makes are not ours either. */
    if (!active())
        return fn ? fn(c) : NULL;
    return get_result_traced(fn, c);
}
