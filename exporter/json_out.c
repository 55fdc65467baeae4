#include "json_out.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "http_server.h"
#include "metrics.h"

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

int dx_json_series_args(struct dx_httpd_response *r, const char **name, const char **labels)
{
    *name = dx_httpd_arg(r, "name");
    *labels = dx_httpd_arg(r, "labels");
    if (!*name || !dynobs__metric_name_ok(*name, strlen(*name))) {
        dx_json_error(r, 400, "name: a metric name is required");
        return -1;
    }
    if (*labels && **labels && !dynobs__metric_labels_ok(*labels, strlen(*labels))) {
        dx_json_error(r, 400, "labels: k=v,k=v expected");
        return -1;
    }
    return 0;
}
