/*
 * The HPACK decoder and literal encoder (hpack.h).
 *
 * The dynamic table keeps its strings in a byte ring. Entries leave it
 * oldest first, so the live bytes are one run from the oldest entry to
 * head, and since an entry counts 32 units more than its strings, the
 * strings of a table of at most DYNOBS_HPACK_TABLE_MAX units never fill
 * the ring: a new entry never overwrites a live one.
 */
#include "hpack.h"

#include <errno.h>
#include <string.h>

/* A field cut by the end of the input: not an error, the rest may come. */
#define NEED_MORE 1
#define RING DYNOBS_HPACK_TABLE_MAX
#define SLOT_MASK (DYNOBS_HPACK_ENTRIES_MAX - 1u)

_Static_assert((DYNOBS_HPACK_ENTRIES_MAX & SLOT_MASK) == 0, "slots: a power of two");
_Static_assert(DYNOBS_HPACK_TABLE_MAX <= UINT16_MAX, "entry lengths are 16 bits");

void dynobs__hpack_init(struct dynobs_hpack *t)
{
    t->max_size = DYNOBS_HPACK_DEFAULT_SIZE;
    t->size = 0;
    t->count = 0;
    t->newest = 0;
    t->head = 0;
}

/* An integer with an N-bit prefix (RFC 7541 section 5.1). Values past
 * 2^28 are refused: no length or table size we can follow is that big,
 * and the cap keeps the sum from overflowing. */
static int read_int(const uint8_t **pp, const uint8_t *end, unsigned bits, uint32_t *out)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return NEED_MORE;
    uint32_t mask = (1u << bits) - 1u, v = *p++ & mask;
    if (v == mask) {
        for (unsigned shift = 0;; shift += 7) {
            if (p >= end)
                return NEED_MORE;
            if (shift > 21)
                return -EPROTO;
            uint8_t b = *p++;
            v += (uint32_t)(b & 0x7fu) << shift;
            if (!(b & 0x80u))
                break;
        }
    }
    *pp = p;
    *out = v;
    return 0;
}

struct str {
    const uint8_t *raw;
    uint32_t len;
    uint8_t huffman;
};

/* A string literal (section 5.2), wholly inside the input or NEED_MORE. */
static int read_str(const uint8_t **pp, const uint8_t *end, struct str *s)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return NEED_MORE;
    s->huffman = *p >> 7;
    int r = read_int(&p, end, 7, &s->len);
    if (r)
        return r;
    if ((size_t)(end - p) < s->len)
        return NEED_MORE;
    s->raw = p;
    *pp = p + s->len;
    return 0;
}

/* Decodes a Huffman-coded string into out (at most cap bytes written);
 * returns its whole decoded length, or -EPROTO for an end-of-string
 * symbol inside it or padding that is longer than 7 bits or not all
 * ones. The code is canonical (hpack_static.c): the codes of length L
 * are the consecutive numbers from first[L], whose symbols follow those
 * of the shorter codes in dynobs__hpack_huff_sym. */
static long huffman(const uint8_t *p, uint32_t n, char *out, size_t cap)
{
    const uint8_t *end = p + n;
    uint64_t acc = 0;
    unsigned nbits = 0;
    size_t o = 0;
    for (;;) {
        while (nbits <= 56 && p < end) {
            acc = acc << 8 | *p++;
            nbits += 8;
        }
        if (!nbits)
            break;
        uint32_t first = 0, idx = 0;
        unsigned len = 1;
        int sym = -1;
        for (; len <= 30 && len <= nbits; len++) {
            uint32_t code = (uint32_t)(acc >> (nbits - len)) & ((1u << len) - 1u);
            uint32_t c = dynobs__hpack_huff_count[len];
            if (code - first < c) {
                sym = dynobs__hpack_huff_sym[idx + code - first];
                break;
            }
            idx += c;
            first = (first + c) << 1;
        }
        if (sym < 0) {
            /* Every 30 bits start a code, so this is the end of the
             * input: what is left must be a short run of ones. */
            if (nbits > 7 || (acc & ((1u << nbits) - 1u)) != (1u << nbits) - 1u)
                return -EPROTO;
            break;
        }
        if (sym == 256)
            return -EPROTO;
        if (o < cap)
            out[o] = (char)sym;
        o++;
        nbits -= len;
    }
    return (long)o;
}

static struct dynobs_hpack_entry *entry(struct dynobs_hpack *t, uint32_t i)
{
    return &t->ent[(t->newest - (i - 1u)) & SLOT_MASK];
}

/* Drops the oldest entries until room more units fit (all of them when
 * they cannot). */
static void evict(struct dynobs_hpack *t, uint32_t room)
{
    while (t->count && t->size + room > t->max_size) {
        const struct dynobs_hpack_entry *e = entry(t, t->count);
        t->size -= (uint32_t)e->name_len + e->value_len + 32u;
        t->count--;
    }
}

static void ring_put(struct dynobs_hpack *t, uint32_t off, const char *s, uint32_t n)
{
    uint32_t first = n < RING - off ? n : RING - off;
    memcpy(t->ring + off, s, first);
    memcpy(t->ring, s + first, n - first);
}

static void ring_get(const struct dynobs_hpack *t, uint32_t off, char *out, uint32_t n)
{
    uint32_t first = n < RING - off ? n : RING - off;
    memcpy(out, t->ring + off, first);
    memcpy(out + first, t->ring, n - first);
}

/* Section 4.4: an entry larger than the table empties it and is not
 * added. name and value must not point into the ring. */
static void insert(struct dynobs_hpack *t, const char *name, uint32_t nl, const char *value,
                   uint32_t vl)
{
    uint32_t need = nl + vl + 32u;
    evict(t, need);
    if (need > t->max_size)
        return;
    uint32_t off = t->head;
    ring_put(t, off, name, nl);
    ring_put(t, (off + nl) % RING, value, vl);
    t->head = (off + nl + vl) % RING;
    t->newest = (t->newest + 1u) & SLOT_MASK;
    t->ent[t->newest] = (struct dynobs_hpack_entry){off, (uint16_t)nl, (uint16_t)vl};
    t->count++;
    t->size += need;
}

/* The name (and, with value set, the value) of table index i into f.
 * Dynamic entries are copied into scratch from *used on when they wrap,
 * and names always: a name reused by a field that is added to the table
 * may belong to an entry that the addition evicts. */
static int lookup(struct dynobs_hpack *t, uint32_t i, int value, struct dynobs_hpack_field *f,
                  size_t *used)
{
    if (!i || i > DYNOBS_HPACK_STATIC_COUNT + t->count)
        return -EPROTO;
    if (i <= DYNOBS_HPACK_STATIC_COUNT) {
        const struct dynobs_hpack_static *s = &dynobs__hpack_static[i - 1u];
        f->name = s->name;
        f->name_len = s->name_len;
        f->value = s->value;
        f->value_len = value ? s->value_len : 0;
        return 0;
    }
    const struct dynobs_hpack_entry *e = entry(t, i - DYNOBS_HPACK_STATIC_COUNT);
    uint32_t n = e->name_len + (value ? e->value_len : 0u);
    if (value && e->off + n <= RING) {
        f->name = t->ring + e->off;
        f->value = f->name + e->name_len;
    } else {
        char *s = t->scratch + *used;
        ring_get(t, e->off, s, n);
        *used += n;
        f->name = s;
        f->value = s + e->name_len;
    }
    f->name_len = e->name_len;
    f->value_len = value ? e->value_len : 0;
    return 0;
}

/* A literal's string: where it lies in the input, or Huffman-decoded
 * into scratch from *used on (cut at the scratch's end). */
static int string(struct dynobs_hpack *t, const struct str *s, const char **out, uint32_t *len,
                  size_t *used, uint8_t *truncated)
{
    if (!s->huffman) {
        *out = (const char *)s->raw;
        *len = s->len;
        return 0;
    }
    size_t cap = sizeof t->scratch - *used;
    long n = huffman(s->raw, s->len, t->scratch + *used, cap);
    if (n < 0)
        return (int)n;
    *out = t->scratch + *used;
    *len = (uint32_t)((size_t)n < cap ? (size_t)n : cap);
    *truncated |= (size_t)n > cap;
    *used += *len;
    return 0;
}

static int literal(struct dynobs_hpack *t, const uint8_t **pp, const uint8_t *end,
                   struct dynobs_hpack_field *f)
{
    const uint8_t *p = *pp;
    unsigned bits = 4;
    if (*p & 0x40u) {
        bits = 6;
        f->kind = DYNOBS_HPACK_INCREMENTAL;
    } else {
        f->kind = *p & 0x10u ? DYNOBS_HPACK_NEVER : DYNOBS_HPACK_WITHOUT;
    }
    uint32_t idx;
    struct str name = {0}, value;
    int r = read_int(&p, end, bits, &idx);
    if (!r && !idx)
        r = read_str(&p, end, &name);
    if (!r)
        r = read_str(&p, end, &value);
    if (r)
        return r;
    /* The whole field is here: only now may the table change. */
    size_t used = 0;
    r = idx ? lookup(t, idx, 0, f, &used)
            : string(t, &name, &f->name, &f->name_len, &used, &f->truncated);
    if (!r)
        r = string(t, &value, &f->value, &f->value_len, &used, &f->truncated);
    if (r)
        return r;
    if (f->kind == DYNOBS_HPACK_INCREMENTAL) {
        /* A cut string did not fit the scratch, hence not the table. */
        if (f->truncated)
            evict(t, UINT32_MAX / 2);
        else
            insert(t, f->name, f->name_len, f->value, f->value_len);
    }
    *pp = p;
    return 0;
}

/* One field representation (section 6); NEED_MORE leaves everything as
 * it was. */
static int field(struct dynobs_hpack *t, const uint8_t **pp, const uint8_t *end,
                 dynobs_hpack_fn *fn, void *arg)
{
    const uint8_t *p = *pp;
    struct dynobs_hpack_field f = {0};
    uint32_t v;
    int r;
    if (*p & 0x80u) {
        r = read_int(&p, end, 7, &v);
        if (r)
            return r;
        size_t used = 0;
        r = lookup(t, v, 1, &f, &used);
        if (r)
            return r;
        f.kind = DYNOBS_HPACK_INDEXED;
    } else if ((*p & 0xe0u) == 0x20u) {
        r = read_int(&p, end, 5, &v);
        if (r)
            return r;
        if (v > DYNOBS_HPACK_TABLE_MAX)
            return -E2BIG;
        t->max_size = v;
        evict(t, 0);
        *pp = p;
        return 0;
    } else {
        r = literal(t, &p, end, &f);
        if (r)
            return r;
    }
    *pp = p;
    if (fn)
        fn(arg, &f);
    return 0;
}

int dynobs__hpack_decode(struct dynobs_hpack *t, const uint8_t *p, size_t n, int end_of_block,
                         size_t *used, dynobs_hpack_fn *fn, void *arg)
{
    const uint8_t *s = p, *end = p + n;
    *used = 0;
    while (s < end) {
        int r = field(t, &s, end, fn, arg);
        if (r == NEED_MORE)
            break;
        if (r < 0)
            return r;
        *used = (size_t)(s - p);
    }
    return s < end && end_of_block ? -EPROTO : 0;
}

static size_t int_size(size_t v, unsigned bits)
{
    size_t n = 1, mask = (1u << bits) - 1u;
    if (v < mask)
        return n;
    for (v -= mask; v >= 0x80u; v >>= 7)
        n++;
    return n + 1;
}

static uint8_t *put_int(uint8_t *o, uint8_t flags, unsigned bits, size_t v)
{
    size_t mask = (1u << bits) - 1u;
    if (v < mask) {
        *o++ = (uint8_t)(flags | v);
        return o;
    }
    *o++ = (uint8_t)(flags | mask);
    for (v -= mask; v >= 0x80u; v >>= 7)
        *o++ = (uint8_t)(0x80u | (v & 0x7fu));
    *o++ = (uint8_t)v;
    return o;
}

size_t dynobs__hpack_literal_size(size_t name_len, size_t value_len)
{
    return 1 + int_size(name_len, 7) + name_len + int_size(value_len, 7) + value_len;
}

size_t dynobs__hpack_literal(uint8_t *out, size_t cap, const char *name, size_t name_len,
                             const char *value, size_t value_len)
{
    size_t need = dynobs__hpack_literal_size(name_len, value_len);
    if (need > cap)
        return 0;
    uint8_t *o = out;
    *o++ = 0x00; /* without indexing, literal name */
    o = put_int(o, 0x00, 7, name_len);
    memcpy(o, name, name_len);
    o += name_len;
    o = put_int(o, 0x00, 7, value_len);
    memcpy(o, value, value_len);
    return need;
}
