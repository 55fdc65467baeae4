#include "json_out.h"

#include <math.h>
#include <stdio.h>

#include "http_server.h"

void dx_json_str(struct dx_buf *b, const char *s)
{
    dx_buf_put(b, "\"", 1);
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        dx_buf_put(b, run, (size_t)(s - run));
        if (!c)
            break;
        char esc[8];
        snprintf(esc, sizeof esc, c == '"' || c == '\\' ? "\\%c" : "\\u%04x", c);
        dx_buf_str(b, esc);
        run = s + 1;
    }
    dx_buf_put(b, "\"", 1);
}

void dx_json_num(struct dx_buf *b, double v)
{
    if (isfinite(v))
        dx_buf_num(b, v);
    else
        dx_buf_str(b, "null");
}

void dx_json_error(struct dx_httpd_response *r, unsigned status, const char *msg)
{
    r->status = status;
    r->content_type = "application/json";
    r->body.len = 0;
    if (r->body.p)
        r->body.p[0] = '\0';
    dx_buf_str(&r->body, "{\"error\":");
    dx_json_str(&r->body, msg);
    dx_buf_str(&r->body, "}\n");
}
