/*
 * A libpq program for the tests: sync, parameterised, prepared and async
 * calls, and one syntax error, all inside a span of the C API. Prints the
 * results, so runs with and without the shim can be compared.
 *
 *   dynobs-pgclient CONNINFO
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "dynobs/dynobs.h"

static void print(PGresult *r)
{
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r); i++)
            for (int j = 0; j < PQnfields(r); j++)
                printf("%s%s", PQgetvalue(r, i, j), j + 1 < PQnfields(r) ? "|" : "\n");
    else
        printf("status %s %s\n", PQresStatus(PQresultStatus(r)),
               PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE)
                                                       : "");
    PQclear(r);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    dynobs_span *job = dynobs_span_start("handle-job", DYNOBS_SPAN_KIND_INTERNAL);
    char tp[64];
    if (dynobs_span_traceparent(job, tp, sizeof tp) > 0)
        fprintf(stderr, "job %s\n", tp);
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(c));
        return 3;
    }
    print(PQexec(c, "CREATE TEMP TABLE items (id int, name text)"));
    print(PQexec(c, "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');"));
    const char *vals[1] = {"2"};
    print(PQexecParams(c, "SELECT name FROM items WHERE id = $1", 1, NULL, vals, NULL, NULL, 0));
    print(PQprepare(c, "byname", "SELECT id FROM items WHERE name = $1", 1, NULL));
    const char *name[1] = {"three"};
    print(PQexecPrepared(c, "byname", 1, name, NULL, NULL, 0));
    if (!PQsendQuery(c, "SELECT count(*) FROM items; SELECT 'done'"))
        return 4;
    PGresult *r;
    while ((r = PQgetResult(c)))
        print(r);
    print(PQexec(c, "SELEC 1"));

    /* COPY FROM STDIN: must keep working unchanged under the shim. */
    print(PQexec(c, "COPY items FROM STDIN"));
    const char rows[] = "4\tfour\n5\tfive\n";
    if (PQputCopyData(c, rows, (int)sizeof rows - 1) != 1 || PQputCopyEnd(c, NULL) != 1)
        return 5;
    while ((r = PQgetResult(c)))
        print(r);
    print(PQexec(c, "SELECT count(*) FROM items"));

    /* Pipeline mode: passed through untraced, results unchanged. */
    if (!PQenterPipelineMode(c))
        return 6;
    const char *v1[1] = {"4"}, *v2[1] = {"5"};
    PQsendQueryParams(c, "SELECT name FROM items WHERE id = $1", 1, NULL, v1, NULL, NULL, 0);
    PQsendQueryParams(c, "SELECT name FROM items WHERE id = $1", 1, NULL, v2, NULL, NULL, 0);
    PQpipelineSync(c);
    for (int i = 0; i < 2; i++) {
        while ((r = PQgetResult(c)))
            print(r);
    }
    r = PQgetResult(c); /* the sync */
    printf("sync %s\n", PQresStatus(PQresultStatus(r)));
    PQclear(r);
    PQexitPipelineMode(c);
    PQfinish(c);
    dynobs_span_end(job);
    return 0;
}
