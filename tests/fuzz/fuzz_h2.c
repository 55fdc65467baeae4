/* The HTTP/2 frame reader on arbitrary bytes (the first byte chooses the
 * direction and the size of the pieces). Properties: no crash, and the
 * same events and outcome whether the bytes come whole or in pieces. */
#include <stdint.h>
#include <string.h>

#include "http/h2.h"
#include "fuzz.h"

static void mix(uint64_t *h, uint64_t v)
{
    *h = (*h ^ v) * 1099511628211ull;
}

static void on_begin(void *arg, uint32_t stream, int end_stream, int promised)
{
    mix(arg, 1);
    mix(arg, stream);
    mix(arg, (uint64_t)end_stream * 2 + (uint64_t)promised);
}

static void on_field(void *arg, const struct dynobs_hpack_field *f)
{
    mix(arg, 2);
    for (uint32_t i = 0; i < f->name_len; i++)
        mix(arg, (uint8_t)f->name[i]);
    mix(arg, 0x100);
    for (uint32_t i = 0; i < f->value_len; i++)
        mix(arg, (uint8_t)f->value[i]);
}

static void on_end(void *arg, uint32_t stream)
{
    mix(arg, 3);
    mix(arg, stream);
}

static void on_data(void *arg, uint32_t stream, uint32_t len, int end_stream)
{
    mix(arg, 4);
    mix(arg, stream);
    mix(arg, len);
    mix(arg, (uint64_t)end_stream);
}

static void on_reset(void *arg, uint32_t stream, uint32_t code)
{
    mix(arg, 5);
    mix(arg, stream);
    mix(arg, code);
}

static void on_goaway(void *arg, uint32_t last, uint32_t code)
{
    mix(arg, 6);
    mix(arg, last);
    mix(arg, code);
}

static void on_setting(void *arg, uint16_t id, uint32_t value)
{
    mix(arg, 7);
    mix(arg, id);
    mix(arg, value);
}

static const struct dynobs_h2_events ev = {on_begin, on_field,  on_end,    on_data,
                                           on_reset, on_goaway, on_setting};
static struct dynobs_h2_reader whole, pieces;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    int client = data[0] & 1;
    size_t step = (size_t)(data[0] >> 1) + 1;
    data++;
    size--;
    uint64_t h1 = 14695981039346656037ull, h2 = h1;
    dynobs__h2_init(&whole, client);
    int r1 = dynobs__h2_feed(&whole, data, size, &ev, &h1);
    dynobs__h2_init(&pieces, client);
    int r2 = 0;
    for (size_t off = 0; off < size && !r2; off += step)
        r2 = dynobs__h2_feed(&pieces, data + off, size - off < step ? size - off : step, &ev, &h2);
    CHECK(r1 == r2);
    CHECK(h1 == h2);
    CHECK(whole.lost == (r1 != 0));
    return 0;
}
