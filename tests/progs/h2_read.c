/*
 * Reads one direction of an HTTP/2 connection with common/http/h2.c for
 * test_h2_reader.py.
 *
 *   dynobs-h2-read client|server STEP < bytes
 *
 * "client": the bytes a client wrote (they start with the preface). The
 * bytes are fed STEP at a time (0: all at once). Output: one line per
 * event ("begin STREAM END_STREAM PROMISED", "field NAME VALUE" in hex,
 * "end STREAM", "data STREAM LEN END_STREAM", "reset STREAM CODE",
 * "goaway LAST CODE", "setting ID VALUE"), and "lost ERRNO" when the
 * reader gave up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2.h"

static void hex(const char *s, uint32_t n)
{
    if (!n)
        fputc('-', stdout);
    for (uint32_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)s[i]);
}

static void on_begin(void *arg, uint32_t stream, int end_stream, int promised)
{
    (void)arg;
    printf("begin %u %d %d\n", stream, end_stream != 0, promised);
}

static void on_field(void *arg, const struct dynobs_hpack_field *f)
{
    (void)arg;
    fputs("field ", stdout);
    hex(f->name, f->name_len);
    fputc(' ', stdout);
    hex(f->value, f->value_len);
    fputc('\n', stdout);
}

static void on_end(void *arg, uint32_t stream)
{
    (void)arg;
    printf("end %u\n", stream);
}

static void on_data(void *arg, uint32_t stream, uint32_t len, int end_stream)
{
    (void)arg;
    printf("data %u %u %d\n", stream, len, end_stream != 0);
}

static void on_reset(void *arg, uint32_t stream, uint32_t code)
{
    (void)arg;
    printf("reset %u %u\n", stream, code);
}

static void on_goaway(void *arg, uint32_t last, uint32_t code)
{
    (void)arg;
    printf("goaway %u %u\n", last, code);
}

static void on_setting(void *arg, uint16_t id, uint32_t value)
{
    (void)arg;
    printf("setting %u %u\n", id, value);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    size_t step = strtoul(argv[2], NULL, 10), n = 0, cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += k;
        if (n == cap) {
            uint8_t *more = realloc(buf, cap *= 2);
            if (!more) {
                free(buf);
                return 2;
            }
            buf = more;
        }
    }
    if (!buf)
        return 2;
    static struct dynobs_h2_reader r;
    static const struct dynobs_h2_events ev = {on_begin, on_field, on_end,   on_data,
                                               on_reset, on_goaway, on_setting};
    dynobs__h2_init(&r, !strcmp(argv[1], "client"));
    for (size_t off = 0; off < n;) {
        size_t len = step && n - off > step ? step : n - off;
        int e = dynobs__h2_feed(&r, buf + off, len, &ev, NULL);
        if (e) {
            printf("lost %d\n", e);
            break;
        }
        off += len;
    }
    free(buf);
    return 0;
}
