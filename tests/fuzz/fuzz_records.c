/* The record decoders the exporter runs on bytes written by other
 * processes: span and log records and their attribute items, on
 * arbitrary bytes. Properties: no crash, no read outside the input
 * (AddressSanitizer), and every decoded length inside the record. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "fuzz.h"


static void items(const uint8_t *buf, size_t len)
{
    size_t off = 0;
    struct dynobs_item it;
    int rc;
    while ((rc = dynobs__item_next(buf, len, &off, &it)) == 1) {
        CHECK(off <= len);
        if (it.str)
            CHECK((const uint8_t *)it.str >= buf &&
                   (const uint8_t *)it.str + it.str_len <= buf + len);
        if (it.key)
            CHECK((const uint8_t *)it.key + it.key_len <= buf + len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so that any over-read is caught. */
    uint8_t *rec = malloc(size ? size : 1);
    memcpy(rec, data, size);
    struct dynobs_span_view v;
    if (dynobs__span_decode(rec, size, &v) == 0) {
        CHECK((const uint8_t *)v.name + v.f.name_len <= rec + size);
        items(v.items, v.items_len);
    }
    struct dynobs_log_view lv;
    if (dynobs__log_decode(rec, size, &lv) == 0) {
        CHECK((const uint8_t *)lv.body + lv.f.body_len <= rec + size);
        items(lv.items, lv.f.items_len);
    }
    items(rec, size);
    free(rec);
    return 0;
}
