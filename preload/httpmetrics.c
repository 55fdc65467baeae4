#include "httpmetrics.h"

#include "state.h"
#include "strbuf.h"

#include "../common/metrics.h"

const double dynobs__http_duration_bounds[DYNOBS_HTTP_DURATION_NBOUNDS] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10};

void dynobs__http_client_metric(const char *method, const char *server, long port, long code,
                                const char *error_type, double seconds)
{
    struct dynobs_segment *seg = dynobs__segment();
    if (!seg)
        return;
    char labels[DYNOBS_METRIC_KEY_BYTES];
    struct dynobs_sb b = {labels, 0, sizeof labels};
    labels[0] = '\0';
    dynobs__sb_str(&b, "http.request.method=");
    dynobs__sb_str(&b, method);
    if (server && *server) {
        dynobs__sb_str(&b, ",server.address=");
        dynobs__sb_str(&b, server);
    }
    if (port > 0) {
        dynobs__sb_str(&b, ",server.port=");
        dynobs__sb_int(&b, port);
    }
    if (code > 0) {
        dynobs__sb_str(&b, ",http.response.status_code=");
        dynobs__sb_int(&b, code);
    }
    if (error_type) {
        dynobs__sb_str(&b, ",error.type=");
        dynobs__sb_str(&b, error_type);
    }
    dynobs__duration_record(seg, "http.client.request.duration", dynobs__http_duration_bounds,
                            DYNOBS_HTTP_DURATION_NBOUNDS, seconds, labels);
}

void dynobs__http_server_metric(struct dynobs_segment *seg, const char *labels, double seconds)
{
    dynobs__duration_record(seg, "http.server.request.duration", dynobs__http_duration_bounds,
                            DYNOBS_HTTP_DURATION_NBOUNDS, seconds, labels);
}

void dynobs__status_text(int code, char *out)
{
    out[0] = (char)('0' + code / 100 % 10);
    out[1] = (char)('0' + code / 10 % 10);
    out[2] = (char)('0' + code % 10);
    out[3] = '\0';
}

