#include "record.h"
#include "util.h"

#include <errno.h>
#include <string.h>

#include "dynobs/dynobs.h"
#include "tracecontext.h"

void dynobs__copy_long(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}

size_t dynobs__item_put_event(uint8_t *buf, size_t cap, const char *name, size_t nlen,
                              uint64_t time_ns)
{
    if (nlen > 255)
        nlen = 255;
    size_t need = DYNOBS_ITEM_HDR + DYNOBS_EVENT_FIXED + nlen;
    if (need > cap)
        return 0;
    buf[0] = DYNOBS_ITEM_EVENT;
    buf[1] = 0;
    buf[2] = (uint8_t)nlen;
    buf[3] = 0;
    memcpy(buf + 4, &time_ns, 8);
    memset(buf + 12, 0, 2);
    memcpy(buf + 14, name, nlen);
    return need;
}

int dynobs__item_next(const uint8_t *buf, size_t len, size_t *off, struct dynobs_item *it)
{
    size_t o = *off;
    if (o == len)
        return 0;
    if (o > len || len - o < DYNOBS_ITEM_HDR)
        return -EBADMSG;
    memset(it, 0, sizeof *it);
    it->off = o;
    it->tag = buf[o];
    it->type = buf[o + 1];
    it->flags = buf[o + 3];
    size_t klen = buf[o + 2];
    o += DYNOBS_ITEM_HDR;
    if (it->tag == DYNOBS_ITEM_EVENT) {
        if (it->type != 0 || len - o < DYNOBS_EVENT_FIXED + klen)
            return -EBADMSG;
        memcpy(&it->time_ns, buf + o, 8);
        memcpy(&it->dropped_attrs, buf + o + 8, 2);
        it->str = (const char *)buf + o + DYNOBS_EVENT_FIXED;
        it->str_len = klen;
        o += DYNOBS_EVENT_FIXED + klen;
    } else if (it->tag == DYNOBS_ITEM_SPAN_ATTR || it->tag == DYNOBS_ITEM_EVENT_ATTR ||
               it->tag == DYNOBS_ITEM_RESOURCE_ATTR || it->tag == DYNOBS_ITEM_LOG_ATTR) {
        if (klen == 0 || len - o < klen)
            return -EBADMSG;
        it->key = (const char *)buf + o;
        it->key_len = klen;
        o += klen;
        switch (it->type) {
        case DYNOBS_ATTR_STRING: {
            uint16_t vl;
            if (len - o < 2)
                return -EBADMSG;
            memcpy(&vl, buf + o, 2);
            if (len - o - 2 < vl)
                return -EBADMSG;
            it->str = (const char *)buf + o + 2;
            it->str_len = vl;
            o += 2 + (size_t)vl;
            break;
        }
        case DYNOBS_ATTR_INT:
        case DYNOBS_ATTR_DOUBLE:
        case DYNOBS_ATTR_BOOL: {
            if (len - o < 8)
                return -EBADMSG;
            int64_t raw;
            memcpy(&raw, buf + o, 8);
            it->i = raw;
            memcpy(&it->d, buf + o, 8);
            if (it->type == DYNOBS_ATTR_BOOL) {
                if (raw != 0 && raw != 1)
                    return -EBADMSG;
                it->b = (int)raw;
            }
            o += 8;
            break;
        }
        default:
            return -EBADMSG;
        }
    } else {
        return -EBADMSG;
    }
    it->size = o - it->off;
    *off = o;
    return 1;
}

int dynobs__items_all(const uint8_t *buf, size_t len, int tag, size_t count)
{
    size_t off = 0, n = 0;
    struct dynobs_item it;
    int rc;
    while ((rc = dynobs__item_next(buf, len, &off, &it)) == 1) {
        if (it.tag != tag)
            return -EBADMSG;
        n++;
    }
    return rc < 0 || n != count ? -EBADMSG : 0;
}

/* The checks every record view starts with: the header is of this type
 * and this length, the fixed part of flen bytes fits; h and f get copies
 * of both. 0, or -EBADMSG. */
static int fixed_part(const void *rec, size_t len, int type, struct dynobs_rec_hdr *h, void *f,
                      size_t flen)
{
    if (!rec || len < sizeof *h + flen)
        return -EBADMSG;
    memcpy(h, rec, sizeof *h);
    if (h->type != type || h->len != len)
        return -EBADMSG;
    memcpy(f, (const uint8_t *)rec + sizeof *h, flen);
    return 0;
}

int dynobs__span_decode(const void *rec, size_t len, struct dynobs_span_view *v)
{
    struct dynobs_rec_hdr h;
    if (!v || fixed_part(rec, len, DYNOBS_REC_SPAN, &h, &v->f, sizeof v->f) < 0)
        return -EBADMSG;
    const struct dynobs_span_rec *f = &v->f;
    if (f->kind < DYNOBS_SPAN_KIND_INTERNAL || f->kind > DYNOBS_SPAN_KIND_CONSUMER ||
        f->status > DYNOBS_STATUS_ERROR || f->end_ns < f->start_ns)
        return -EBADMSG;
    if (dynobs__id_is_zero(f->trace_id, 16) || dynobs__id_is_zero(f->span_id, 8))
        return -EBADMSG;
    size_t body_off = sizeof h + sizeof v->f;
    if (f->body_len > len - body_off)
        return -EBADMSG;
    size_t strings = (size_t)f->name_len + f->status_msg_len + f->tracestate_len;
    if (strings > f->body_len)
        return -EBADMSG;
    const char *b = (const char *)rec + body_off;
    v->rec_flags = h.flags;
    v->name = b;
    v->status_msg = b + f->name_len;
    v->tracestate = b + f->name_len + f->status_msg_len;
    v->items = (const uint8_t *)b + strings;
    v->items_len = f->body_len - strings;
    /* Walk the items once so that consumers can iterate without checks
     * failing halfway, and so that the counts in the fixed part hold. */
    size_t off = 0, attrs = 0, events = 0;
    struct dynobs_item it;
    int rc;
    int in_event = 0;
    while ((rc = dynobs__item_next(v->items, v->items_len, &off, &it)) == 1) {
        if (it.tag == DYNOBS_ITEM_SPAN_ATTR)
            attrs++;
        else if (it.tag == DYNOBS_ITEM_EVENT)
            events++, in_event = 1;
        else if (it.tag == DYNOBS_ITEM_EVENT_ATTR && !in_event)
            return -EBADMSG;
        else if (it.tag == DYNOBS_ITEM_RESOURCE_ATTR)
            return -EBADMSG;
    }
    if (rc < 0 || attrs != f->attr_count || events != f->event_count)
        return -EBADMSG;
    return 0;
}

int dynobs__log_decode(const void *rec, size_t len, struct dynobs_log_view *v)
{
    struct dynobs_rec_hdr h;
    if (!v || fixed_part(rec, len, DYNOBS_REC_LOG, &h, &v->f, sizeof v->f) < 0 ||
        v->f.severity > 24)
        return -EBADMSG;
    const struct dynobs_log_rec *f = &v->f;
    size_t off = sizeof h + sizeof v->f;
    uint64_t need = (uint64_t)f->severity_text_len + f->body_len + f->items_len;
    if (need > len - off)
        return -EBADMSG;
    v->severity_text = (const char *)rec + off;
    v->body = v->severity_text + f->severity_text_len;
    v->items = (const uint8_t *)v->body + f->body_len;
    return dynobs__items_all(v->items, f->items_len, DYNOBS_ITEM_LOG_ATTR, f->attr_count);
}
