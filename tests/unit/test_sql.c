/* SQL text helpers for database spans. */
#include <criterion/criterion.h>
#include <string.h>

#include "sql.h"

static const char *scrub(const char *q)
{
    static char out[512];
    dynobs__sql_scrub(q, out, sizeof out);
    return out;
}

Test(sql, literals_become_question_marks)
{
    cr_assert_str_eq(scrub("SELECT * FROM t WHERE a = 'x''y' AND b = 42 AND c = 1.5e3"),
                     "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?");
    cr_assert_str_eq(scrub("INSERT INTO t2 VALUES (E'a\\'b', $1, $$dollar$$, $q$x$q$)"),
                     "INSERT INTO t2 VALUES (?, $1, ?, ?)");
    cr_assert_str_eq(scrub("SELECT col1 FROM t9 -- trailing\n"), "SELECT col1 FROM t9 \n");
    cr_assert_str_eq(scrub("SELECT /* c */ 1"), "SELECT  ?");
    cr_assert_str_eq(scrub("SELECT 'unterminated"), "SELECT ?");
}

/* A query's operation and collection as the span names them; NULL: not
 * checked for that query. */
static const struct {
    const char *sql, *op, *coll;
} named[] = {
    {"  select * from Users where id = 1", "SELECT", "Users"},
    {"INSERT INTO public.orders (a) VALUES (1)", NULL, "public.orders"},
    {"UPDATE accounts SET x = 'from y'", NULL, "accounts"},
    {"DELETE FROM ONLY logs", NULL, "logs"},
    {"SELECT 'from x'", NULL, ""},
    {"SELECT * FROM (SELECT 1) s", NULL, ""},
    {"/* hi */ -- x\n(with q as (select 1) select * from q)", "WITH", NULL},
    {"", "", NULL},
};

Test(sql, operation_and_collection)
{
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        char op[32], coll[64];
        if (named[i].op) {
            dynobs__sql_operation(named[i].sql, op, sizeof op);
            cr_assert_str_eq(op, named[i].op, "operation of %s", named[i].sql);
        }
        if (named[i].coll) {
            dynobs__sql_collection(named[i].sql, coll, sizeof coll);
            cr_assert_str_eq(coll, named[i].coll, "collection of %s", named[i].sql);
        }
    }
}

Test(sql, comments_and_placement)
{
    cr_assert(dynobs__sql_has_comment("SELECT 1 -- x"));
    cr_assert(dynobs__sql_has_comment("SELECT /*x*/ 1"));
    cr_assert_not(dynobs__sql_has_comment("SELECT '--not a comment', '/*'"));
    cr_assert_not(dynobs__sql_has_comment("SELECT 1"));
    const char *q = "SELECT 1; SELECT 2 ;  \n";
    cr_assert_eq(dynobs__sql_comment_at(q, strlen(q)), strlen("SELECT 1; SELECT 2"));
    q = "SELECT 1";
    cr_assert_eq(dynobs__sql_comment_at(q, strlen(q)), 8);
}

/* Found by fuzzing: an identifier running past a full output buffer used
 * to stop the scan from advancing (a hang inside the traced process). */
Test(sql, long_identifier_past_a_full_buffer_terminates)
{
    char q[3000], out[16];
    memcpy(q, "SELECT ", 7);
    memset(q + 7, 'a', 2000);
    strcpy(q + 2007, " FROM t WHERE x = 'secret'");
    size_t n = dynobs__sql_scrub(q, out, sizeof out);
    cr_assert_eq(n, 15);
    cr_assert_str_eq(out, "SELECT aaaaaaaa");
}
