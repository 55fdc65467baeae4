#include "fcgi.h"

#include <string.h>
#include <strings.h>

enum { BEGIN_REQUEST = 1, END_REQUEST = 3, PARAMS = 4, STDOUT = 6, STDERR = 7 };

/* The CGI variables kept, by enum dynobs_fcgi_param. */
static const char kept[DYNOBS_FCGI_NPARAMS][20] = {
    "REQUEST_METHOD", "REQUEST_URI",     "HTTP_HOST",       "SERVER_PORT",
    "REMOTE_ADDR",    "HTTP_USER_AGENT", "SERVER_PROTOCOL", "REQUEST_SCHEME",
    "HTTP_TRACEPARENT", "HTTP_TRACESTATE",
};

int dynobs__fcgi_maybe_request(const uint8_t *p, size_t n)
{
    /* version 1, BEGIN_REQUEST, a body of 8 bytes (role, flags). */
    return n >= 8 && p[0] == 1 && p[1] == BEGIN_REQUEST && p[4] == 0 && p[5] == 8;
}

/* One byte of record framing: 1 when it completed a record's header (its
 * fields are then set), 0 when it was taken as header, -1 when it is the
 * record's content or padding (the caller's). */
static int frame(struct dynobs_fcgi_rec *f, uint8_t c)
{
    if (f->hlen < 8) {
        f->hdr[f->hlen++] = c;
        if (f->hlen < 8)
            return 0;
        f->type = f->hdr[1];
        f->content_left = (uint32_t)f->hdr[4] << 8 | f->hdr[5];
        f->padding_left = f->hdr[6];
        return 1;
    }
    return -1;
}

/* After a content or padding byte: 1 when the record is over. */
static int record_over(struct dynobs_fcgi_rec *f)
{
    if (f->content_left || f->padding_left)
        return 0;
    f->hlen = 0;
    return 1;
}

void dynobs__fcgi_req_reset(struct dynobs_fcgi_req *r)
{
    memset(r, 0, offsetof(struct dynobs_fcgi_req, val));
    r->field = -1;
}

/* A length of the name-value encoding: one byte, or four with the high
 * bit of the first set. Returns 1 when complete (in *out). */
static int nv_length(struct dynobs_fcgi_req *r, uint8_t c, uint32_t *out)
{
    r->lenbuf[r->lenpos++] = c;
    if (r->lenpos == 1 && !(c & 0x80)) {
        *out = c;
        r->lenpos = 0;
        return 1;
    }
    if (r->lenpos < 4)
        return 0;
    *out = (uint32_t)(r->lenbuf[0] & 0x7f) << 24 | (uint32_t)r->lenbuf[1] << 16 |
           (uint32_t)r->lenbuf[2] << 8 | r->lenbuf[3];
    r->lenpos = 0;
    return 1;
}

/* The name just read: which kept variable it is, or -1. */
static int8_t field_of(const struct dynobs_fcgi_req *r)
{
    if (r->name_len > sizeof r->namebuf)
        return -1;
    for (int i = 0; i < DYNOBS_FCGI_NPARAMS; i++)
        if (strlen(kept[i]) == r->name_len && !memcmp(kept[i], r->namebuf, r->name_len))
            return (int8_t)i;
    return -1;
}

/* One byte of a PARAMS record's content. */
static void nv_byte(struct dynobs_fcgi_req *r, uint8_t c)
{
    switch (r->nv) {
    case 0: /* the name's length */
        if (nv_length(r, c, &r->name_len))
            r->nv = 1;
        break;
    case 1: /* the value's length */
        if (!nv_length(r, c, &r->value_len))
            break;
        r->got = 0;
        r->namebuf_len = 0;
        r->field = -1;
        r->nv = r->name_len ? 2 : 3;
        if (r->nv == 3 && !r->value_len)
            r->nv = 0;
        break;
    case 2: /* the name */
        if (r->namebuf_len < sizeof r->namebuf)
            r->namebuf[r->namebuf_len++] = (char)c;
        if (++r->got < r->name_len)
            break;
        r->field = field_of(r);
        if (r->field >= 0) {
            r->len[r->field] = 0;
            r->cut[r->field] = 0;
        }
        r->got = 0;
        r->nv = r->value_len ? 3 : 0;
        break;
    default: /* the value */
        if (r->field >= 0) {
            if (r->len[r->field] < DYNOBS_FCGI_VAL_MAX - 1)
                r->val[r->field][r->len[r->field]++] = (char)c;
            else
                r->cut[r->field] = 1;
        }
        if (++r->got == r->value_len)
            r->nv = 0;
        break;
    }
}

int dynobs__fcgi_req_feed(struct dynobs_fcgi_req *r, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r->phase == DYNOBS_FCGI_OFF)
            return -1;
        if (r->phase == DYNOBS_FCGI_BODY)
            return 0;
        struct dynobs_fcgi_rec *f = &r->rec;
        int h = frame(f, p[i]);
        if (h == 1) {
            if (f->hdr[0] != 1 ||
                (r->phase == DYNOBS_FCGI_IDLE && f->type != BEGIN_REQUEST)) {
                r->phase = DYNOBS_FCGI_OFF;
                return -1;
            }
            /* An empty PARAMS record ends the variables. */
            if (f->type == PARAMS && !f->content_left && r->phase == DYNOBS_FCGI_PARAMS) {
                r->phase = DYNOBS_FCGI_BODY;
                return 1;
            }
            if (record_over(f) && f->type == BEGIN_REQUEST)
                r->phase = DYNOBS_FCGI_PARAMS;
            continue;
        }
        if (h == 0)
            continue;
        if (f->content_left) {
            f->content_left--;
            if (f->type == PARAMS)
                nv_byte(r, p[i]);
        } else {
            f->padding_left--;
        }
        if (record_over(f) && f->type == BEGIN_REQUEST)
            r->phase = DYNOBS_FCGI_PARAMS;
    }
    return 0;
}

void dynobs__fcgi_resp_start(struct dynobs_fcgi_resp *r)
{
    memset(r, 0, sizeof *r);
    r->in_head = 1;
    r->code = 200;
}

/* One byte of the CGI response head (in STDOUT). */
static void head_byte(struct dynobs_fcgi_resp *r, uint8_t c)
{
    if (c != '\n') {
        if (r->line_len < sizeof r->line)
            r->line[r->line_len++] = (char)c;
        else
            r->line_skip = 1;
        return;
    }
    size_t n = r->line_len;
    if (n && r->line[n - 1] == '\r')
        n--;
    if (n == 0 && !r->line_skip) {
        r->in_head = 0; /* the empty line: the body follows */
    } else if (!r->line_skip && n >= 10 && !strncasecmp(r->line, "Status:", 7)) {
        size_t k = 7;
        while (k < n && r->line[k] == ' ')
            k++;
        if (k + 3 <= n && r->line[k] >= '1' && r->line[k] <= '5' && r->line[k + 1] >= '0' &&
            r->line[k + 1] <= '9' && r->line[k + 2] >= '0' && r->line[k + 2] <= '9')
            r->code = (r->line[k] - '0') * 100 + (r->line[k + 1] - '0') * 10 +
                      (r->line[k + 2] - '0');
    }
    r->line_len = 0;
    r->line_skip = 0;
}

int dynobs__fcgi_resp_feed(struct dynobs_fcgi_resp *r, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct dynobs_fcgi_rec *f = &r->rec;
        int h = frame(f, p[i]);
        if (h == 1) {
            if (f->hdr[0] != 1 ||
                (f->type != STDOUT && f->type != STDERR && f->type != END_REQUEST))
                return -1;
            if (record_over(f) && f->type == END_REQUEST)
                return 1;
            continue;
        }
        if (h == 0)
            continue;
        if (f->content_left) {
            f->content_left--;
            if (f->type == STDOUT && r->in_head)
                head_byte(r, p[i]);
        } else {
            f->padding_left--;
        }
        if (record_over(f) && f->type == END_REQUEST)
            return 1;
    }
    return 0;
}
