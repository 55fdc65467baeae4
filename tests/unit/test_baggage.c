/* W3C Baggage lists: grammar, normal form, limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "baggage.h"

static const char *norm(const char *in, char *out, size_t cap)
{
    int n = dynobs__baggage_normalize(in, strlen(in), out, cap);
    if (n < 0)
        return NULL;
    out[n] = '\0';
    return out;
}

Test(baggage, normal_form)
{
    char out[DYNOBS_BAGGAGE_MAX + 1];
    cr_assert_str_eq(norm("a=1", out, sizeof out - 1), "a=1");
    cr_assert_str_eq(norm(" a = 1 ,\tb=2 ", out, sizeof out - 1), "a=1,b=2");
    cr_assert_str_eq(norm("a=1;p;q = x ,, ,b=", out, sizeof out - 1), "a=1;p;q=x,b=");
    cr_assert_str_eq(norm("userId=alice%20b,serverNode=DF%2028", out, sizeof out - 1),
                     "userId=alice%20b,serverNode=DF%2028");
    cr_assert_str_eq(norm("", out, sizeof out - 1), "");
    cr_assert_str_eq(norm(" , ,", out, sizeof out - 1), "");
}

Test(baggage, malformed_lists_are_dropped_whole)
{
    char out[256];
    const char *bad[] = {"a", "=1", "a=1,b", "a b=1", "a=1 2", "a=\"x\"", "a=x\\y",
                         "a=1;=p", "a=1,;", "k(=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_null(norm(bad[i], out, sizeof out - 1), "%s", bad[i]);
}

Test(baggage, limits)
{
    /* 180 members is the grammar's bound; 181 is malformed. */
    static char in[181 * 8];
    size_t n = 0;
    for (int i = 0; i < 181; i++)
        n += (size_t)snprintf(in + n, sizeof in - n, "%sk%d=v", i ? "," : "", i);
    char out[DYNOBS_BAGGAGE_MAX + 1];
    cr_assert_lt(dynobs__baggage_normalize(in, n, out, DYNOBS_BAGGAGE_MAX), 0);
    size_t n180 = (size_t)(strrchr(in, ',') - in);
    cr_assert_eq(dynobs__baggage_normalize(in, n180, out, DYNOBS_BAGGAGE_MAX), (int)n180);
    /* Too long for the room: whole members go from the end, and what
     * stays is whole. */
    int k = dynobs__baggage_normalize("aa=1,bb=2,cc=3", 14, out, 10);
    cr_assert_eq(k, 9);
    out[k] = '\0';
    cr_assert_str_eq(out, "aa=1,bb=2");
    cr_assert_eq(dynobs__baggage_normalize("aaaa=1", 6, out, 3), 0);
    /* ...but a malformed member past the cut still drops the list. */
    cr_assert_lt(dynobs__baggage_normalize("aa=1,bb=2,c c=3", 15, out, 5), 0);
}

Test(baggage, find)
{
    static const char bag[] = "userId=alice,tier=gold;ttl=5,empty=";
    size_t vl;
    const char *v = dynobs__baggage_find(bag, sizeof bag - 1, "tier", 4, &vl);
    cr_assert(v && vl == 4 && !memcmp(v, "gold", 4));
    v = dynobs__baggage_find(bag, sizeof bag - 1, "userId", 6, &vl);
    cr_assert(v && vl == 5 && !memcmp(v, "alice", 5));
    v = dynobs__baggage_find(bag, sizeof bag - 1, "empty", 5, &vl);
    cr_assert(v && vl == 0);
    cr_assert_null(dynobs__baggage_find(bag, sizeof bag - 1, "user", 4, &vl));
    cr_assert_null(dynobs__baggage_find(bag, sizeof bag - 1, "ttl", 3, &vl), "a property");
}
