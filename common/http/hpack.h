/*
 * HPACK (RFC 7541), the header compression of HTTP/2: a decoder that
 * follows one direction of a connection, and the one encoding the shim
 * writes (a literal field without indexing, which leaves the peer's
 * dynamic table as it was).
 *
 * Header blocks are untrusted input. The decoder never reads past what
 * it is given, keeps its dynamic table in fixed storage, and answers a
 * block it cannot follow (malformed, or a table larger than ours) with a
 * negative errno: from then on the table no longer mirrors the peer's,
 * and the caller stops decoding that direction of the connection.
 *
 * Why not libnghttp2's inflater: it allocates per table entry, and the
 * shim allocates nothing on an application's I/O path; it would also be
 * mapped into every process we are preloaded into.
 */
#ifndef DYNOBS_COMMON_HTTP_HPACK_H
#define DYNOBS_COMMON_HTTP_HPACK_H

#include <stddef.h>
#include <stdint.h>

/* The largest dynamic table followed, in RFC 7541 size units (name +
 * value + 32 per entry). The protocol starts every table at 4096; a peer
 * that lets the encoder grow past this cap is not followed (counted by
 * the caller). */
#define DYNOBS_HPACK_TABLE_MAX 16384u
#define DYNOBS_HPACK_ENTRIES_MAX (DYNOBS_HPACK_TABLE_MAX / 32u)
#define DYNOBS_HPACK_DEFAULT_SIZE 4096u

struct dynobs_hpack_entry {
    uint32_t off; /* where its name starts in ring; the value follows */
    uint16_t name_len;
    uint16_t value_len;
};

/* One direction's dynamic table. Zeroed storage is not a valid table:
 * start it with dynobs__hpack_init. */
struct dynobs_hpack {
    uint32_t max_size; /* the encoder's present maximum */
    uint32_t size;     /* entries' size in RFC units */
    uint32_t count;    /* entries */
    uint32_t newest;   /* ent[] slot of the newest entry */
    uint32_t head;     /* where the next entry's bytes go in ring */
    struct dynobs_hpack_entry ent[DYNOBS_HPACK_ENTRIES_MAX];
    char ring[DYNOBS_HPACK_TABLE_MAX];
    /* A field's name and value when they are not contiguous in the
     * input or the table (Huffman-coded, or an entry that wraps). */
    char scratch[DYNOBS_HPACK_TABLE_MAX];
};

/* How a field was represented (RFC 7541 section 6). */
enum dynobs_hpack_kind {
    DYNOBS_HPACK_INDEXED = 1,
    DYNOBS_HPACK_INCREMENTAL, /* literal, added to the table */
    DYNOBS_HPACK_WITHOUT,     /* literal without indexing */
    DYNOBS_HPACK_NEVER,       /* literal never indexed */
};

/* A decoded field. The strings are valid during the callback only. A
 * value longer than the decoder can hold (a literal that is not added to
 * the table) is delivered cut, with truncated set; the table is right
 * either way. */
struct dynobs_hpack_field {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
    uint8_t kind;
    uint8_t truncated;
};

typedef void dynobs_hpack_fn(void *arg, const struct dynobs_hpack_field *f);

void dynobs__hpack_init(struct dynobs_hpack *t);

/* Decodes the complete fields at the start of p[0..n) (a header block,
 * or the part of one received so far), calling fn for each and updating
 * the table; *used is set to the bytes they took. A field cut by the end
 * of p is left for the next call (its bytes first) unless end_of_block
 * says that none will come. Returns 0, -EPROTO for a malformed block or
 * -E2BIG for a table size beyond DYNOBS_HPACK_TABLE_MAX; after either the
 * table is no longer the peer's. */
int dynobs__hpack_decode(struct dynobs_hpack *t, const uint8_t *p, size_t n, int end_of_block,
                         size_t *used, dynobs_hpack_fn *fn, void *arg)
    __attribute__((warn_unused_result));

/* Writes name: value as a literal field without indexing with a literal
 * name (no Huffman coding) into out; returns the bytes written, or 0
 * when cap is too small. The name must be lower case. */
size_t dynobs__hpack_literal(uint8_t *out, size_t cap, const char *name, size_t name_len,
                             const char *value, size_t value_len);

/* The bytes dynobs__hpack_literal writes for these lengths. */
size_t dynobs__hpack_literal_size(size_t name_len, size_t value_len);

/* RFC 7541 Appendix A and B, in hpack_static.c. */
/* (The strings in place rather than pointed to: 122 pointers were as
 * many relocations for the loader at every process start.) */
struct dynobs_hpack_static {
    char name[28];  /* the longest, access-control-allow-origin, and a NUL */
    char value[14]; /* gzip, deflate */
    uint8_t name_len;
    uint8_t value_len;
};
#define DYNOBS_HPACK_STATIC_COUNT 61u
extern const struct dynobs_hpack_static dynobs__hpack_static[DYNOBS_HPACK_STATIC_COUNT];
/* Codes per length (1..30) of the canonical Huffman code, and the
 * symbols in code order (256 is end-of-string). */
extern const uint8_t dynobs__hpack_huff_count[31];
extern const uint16_t dynobs__hpack_huff_sym[257];

#endif
