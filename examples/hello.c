/*
 * A tiny "service" using the dynobs C API: two worker threads each handle
 * a request with nested spans, an error, an event and metrics. It links
 * libdynobs-noop.so, so it runs unchanged without dynobs, and records
 * everything when started with LD_PRELOAD=libdynobs.so (scripts/demo.sh).
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "dynobs/dynobs.h"

static void *handle_request(void *arg)
{
    const char *user = arg;
    dynobs_span *req = dynobs_span_start("GET /checkout", DYNOBS_SPAN_KIND_SERVER);
    dynobs_span_set_str(req, "http.request.method", "GET");
    dynobs_span_set_str(req, "url.path", "/checkout");
    dynobs_span_set_str(req, "enduser.id", user);

    dynobs_span *db = dynobs_span_start("SELECT cart", DYNOBS_SPAN_KIND_CLIENT);
    dynobs_span_set_str(db, "db.system.name", "postgresql");
    usleep(2000);
    dynobs_span_end(db);

    dynobs_span *pay = dynobs_span_start("charge card", DYNOBS_SPAN_KIND_INTERNAL);
    char tp[DYNOBS_TRACEPARENT_LEN + 1];
    if (dynobs_current_traceparent(tp, sizeof tp) > 0)
        printf("%s: would send traceparent %s to the payment service\n", user, tp);
    dynobs_attr why[] = {{.key = "attempt", .type = DYNOBS_ATTR_INT, .v.i = 1}};
    dynobs_span_add_event_attrs(pay, "retry", why, 1);
    dynobs_span_set_status(pay, DYNOBS_STATUS_ERROR, "card declined");
    dynobs_span_end(pay);

    dynobs_span_set_int(req, "http.response.status_code", 402);
    dynobs_span_end(req);
    dynobs_counter_add("checkout.requests", 1, "outcome=declined");
    double b[] = {0.001, 0.005, 0.01, 0.05};
    dynobs_metric_desc d = {.name = "checkout.duration", .unit = "s",
                            .kind = DYNOBS_METRIC_HISTOGRAM, .bounds = b, .nbounds = 4};
    dynobs_metric_record(&d, 0.0031, "outcome=declined");
    return NULL;
}

int main(void)
{
    printf("dynobs %s, recording: %s\n", dynobs_version(), dynobs_enabled() ? "yes" : "no");
    pthread_t a, b;
    pthread_create(&a, NULL, handle_request, "alice");
    pthread_create(&b, NULL, handle_request, "bob");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
