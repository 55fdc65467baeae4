/*
 * Decodes header blocks with common/http/hpack.c for test_hpack.py.
 *
 *   dynobs-hpack-decode STEP < blocks
 *
 * Input: blocks, each a 4-byte big-endian length and its bytes, all of
 * one direction of one connection. Each block is fed STEP bytes at a time
 * (0: whole), keeping the bytes of a cut field for the next piece as a
 * caller must. Output, per block: one line per field, "kind name value"
 * with name and value in hex ("-" when empty), then "end"; or "error N"
 * (a negative errno) and nothing more, since the table is lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/hpack.h"

static void hex(const char *s, uint32_t n)
{
    if (!n)
        fputc('-', stdout);
    for (uint32_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)s[i]);
}

static void print_field(void *arg, const struct dynobs_hpack_field *f)
{
    (void)arg;
    printf("%u%s ", f->kind, f->truncated ? "t" : "");
    hex(f->name, f->name_len);
    fputc(' ', stdout);
    hex(f->value, f->value_len);
    fputc('\n', stdout);
}

/* One block, STEP bytes at a time; the carried bytes go first. */
static int feed(struct dynobs_hpack *t, const uint8_t *b, size_t n, size_t step)
{
    static uint8_t pend[1 << 20];
    size_t pl = 0;
    for (size_t off = 0; off < n || (!n && !off); off += step) {
        size_t len = n - off < step ? n - off : step;
        memcpy(pend + pl, b + off, len);
        pl += len;
        size_t used;
        int last = off + len >= n;
        int r = dynobs__hpack_decode(t, pend, pl, last, &used, print_field, NULL);
        if (r)
            return r;
        memmove(pend, pend + used, pl - used);
        pl -= used;
        if (last)
            break;
    }
    return 0;
}

int main(int argc, char **argv)
{
    size_t step = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    static struct dynobs_hpack t;
    static uint8_t block[1 << 20];
    dynobs__hpack_init(&t);
    unsigned char hdr[4];
    while (fread(hdr, 1, 4, stdin) == 4) {
        size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
        if (n > sizeof block || fread(block, 1, n, stdin) != n)
            return 2;
        int r = feed(&t, block, n, step ? step : (n ? n : 1));
        if (r) {
            printf("error %d\n", r);
            return 0;
        }
        printf("end\n");
    }
    return 0;
}
