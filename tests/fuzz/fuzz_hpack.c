/* The HPACK decoder on arbitrary bytes. The first byte chooses where the
 * block is cut in two. Properties: no crash; the table's accounting holds
 * (its size is the sum of its entries', within its maximum and the cap);
 * and a block decoded whole or in two pieces (the bytes of a cut field
 * carried over, as the HTTP/2 layer does) gives the same fields, the
 * same outcome and the same table. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/hpack.h"
#include "fuzz.h"

/* A running digest of the fields: name, value, kind, truncation. */
static void digest(void *arg, const struct dynobs_hpack_field *f)
{
    uint64_t *h = arg;
    CHECK(f->name_len <= (1u << 28) && f->value_len <= (1u << 28));
    for (uint32_t i = 0; i < f->name_len; i++)
        *h = (*h ^ (uint8_t)f->name[i]) * 1099511628211ull;
    *h = (*h ^ 0x100u) * 1099511628211ull;
    for (uint32_t i = 0; i < f->value_len; i++)
        *h = (*h ^ (uint8_t)f->value[i]) * 1099511628211ull;
    *h = (*h ^ (0x200u + f->kind * 2u + f->truncated)) * 1099511628211ull;
}

static void check_table(const struct dynobs_hpack *t)
{
    uint32_t sum = 0;
    CHECK(t->max_size <= DYNOBS_HPACK_TABLE_MAX && t->size <= t->max_size);
    CHECK(t->count <= DYNOBS_HPACK_ENTRIES_MAX);
    for (uint32_t i = 0; i < t->count; i++) {
        const struct dynobs_hpack_entry *e =
            &t->ent[(t->newest - i) & (DYNOBS_HPACK_ENTRIES_MAX - 1u)];
        CHECK(e->off < DYNOBS_HPACK_TABLE_MAX);
        sum += e->name_len + e->value_len + 32u;
    }
    CHECK(sum == t->size);
}

static struct dynobs_hpack whole, split;
static uint8_t carry[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size || size > sizeof carry)
        return 0;
    size_t cut = data[0] % size;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    cut = cut < n ? cut : n;

    uint64_t h1 = 14695981039346656037ull, h2 = h1;
    size_t used;
    dynobs__hpack_init(&whole);
    int r1 = dynobs__hpack_decode(&whole, p, n, 1, &used, digest, &h1);
    CHECK(used <= n);
    check_table(&whole);

    dynobs__hpack_init(&split);
    size_t used_a, used_b;
    int r2 = dynobs__hpack_decode(&split, p, cut, 0, &used_a, digest, &h2);
    if (!r2) {
        memcpy(carry, p + used_a, n - used_a);
        r2 = dynobs__hpack_decode(&split, carry, n - used_a, 1, &used_b, digest, &h2);
    }
    check_table(&split);
    CHECK(r1 == r2);
    if (!r1) {
        CHECK(h1 == h2);
        CHECK(whole.size == split.size && whole.count == split.count);
    }
    return 0;
}
