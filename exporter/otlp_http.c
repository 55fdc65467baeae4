#define _GNU_SOURCE
#include "otlp_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "diag.h"
#include "otlp_headers.h"
#include "stats.h"
#include "util.h"

/* Used by the sender thread only, after dx_http_init. */
static CURL *curl;
static struct curl_slist *headers_plain, *headers_gzip;
static struct dx_http_cfg cfg;

/* Appends the entries of OTEL_EXPORTER_OTLP_HEADERS to a header list. */
static struct curl_slist *user_headers(struct curl_slist *l, const char *spec)
{
    char line[DX_HEADER_LINE_MAX];
    const char *cursor = spec ? spec : "";
    int rc;
    while ((rc = dx_otlp_header_next(&cursor, line)) != 0) {
        if (rc < 0)
            dx_log(DX_WARN, "OTEL_EXPORTER_OTLP_HEADERS: ignoring '%s' (no key=value)", line);
        else
            l = curl_slist_append(l, line);
    }
    return l;
}

int dx_http_init(const struct dx_http_cfg *c)
{
    cfg = *c;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    curl = curl_easy_init();
    if (!curl)
        return -1;
    headers_plain = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    headers_plain = user_headers(headers_plain, cfg.headers);
    headers_gzip = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    headers_gzip = curl_slist_append(headers_gzip, "Content-Encoding: gzip");
    headers_gzip = user_headers(headers_gzip, cfg.headers);
    return 0;
}

void dx_http_cleanup(void)
{
    curl_slist_free_all(headers_plain);
    curl_slist_free_all(headers_gzip);
    if (curl)
        curl_easy_cleanup(curl);
    curl_global_cleanup();
}

static uint8_t *gzip(const uint8_t *in, size_t len, size_t *out_len)
{
    z_stream z = {0};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, len);
    uint8_t *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (uint8_t *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

struct reply {
    long retry_after_s;
};

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n;
    long s = dx_retry_after_parse(line, len);
    if (s >= 0)
        r->retry_after_s = s;
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n; /* the partial-success body is not needed to decide */
}

static void sleep_ms(uint64_t ms, const int *give_up)
{
    /* In slices, so that shutdown is not held up by a long backoff. */
    while (ms && !__atomic_load_n(give_up, __ATOMIC_RELAXED)) {
        uint64_t step = ms > 50 ? 50 : ms;
        struct timespec ts = {(time_t)(step / 1000), (long)(step % 1000) * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static void bump(enum dx_signal_counter c, enum dx_signal signal)
{
    dx_stats_add_signal(c, signal, 1);
}

enum dx_send_result dx_http_send(enum dx_signal signal, const char *url, const uint8_t *body, size_t len,
                                 const int *give_up)
{
    uint8_t *zipped = NULL;
    size_t zlen = 0;
    if (cfg.gzip && !(zipped = gzip(body, len, &zlen)))
        dx_log(DX_WARN, "gzip failed; sending uncompressed");
    uint64_t start = dynobs__mono_ns(), backoff = cfg.retry_initial_ms;
    unsigned seed = (unsigned)start;
    enum dx_send_result result = DX_GAVE_UP;
    for (int attempt = 1;; attempt++) {
        struct reply rep = {.retry_after_s = -1};
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, zipped ? zipped : body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(zipped ? zlen : len));
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, zipped ? headers_gzip : headers_plain);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)cfg.timeout_ms);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg.timeout_ms);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, &rep);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "dynobs-exporter/" DYNOBS_EXPORTER_VERSION);
        CURLcode cc = curl_easy_perform(curl);
        long status = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (cc == CURLE_OK && status >= 200 && status < 300) {
            bump(DX_REQUESTS_OK, signal);
            result = DX_SENT;
            break;
        }
        int retryable = cc != CURLE_OK || status == 429 || status == 502 || status == 503 ||
                        status == 504;
        if (!retryable) {
            dx_log(DX_WARN, "export to %s rejected with HTTP %ld; dropping %zu bytes", url, status,
                   len);
            bump(DX_REQUESTS_FAILED, signal);
            result = DX_REJECTED;
            break;
        }
        uint64_t wait = backoff / 2 + (backoff > 1 ? (uint64_t)rand_r(&seed) % (backoff / 2 + 1) : 0);
        if (rep.retry_after_s >= 0)
            wait = (uint64_t)rep.retry_after_s * 1000;
        uint64_t elapsed = (dynobs__mono_ns() - start) / 1000000;
        if (__atomic_load_n(give_up, __ATOMIC_RELAXED) ||
            elapsed + wait > cfg.retry_total_ms) {
            dx_log(DX_WARN, "export to %s failed (%s); giving up after %d attempts", url,
                   cc != CURLE_OK ? curl_easy_strerror(cc) : "HTTP error", attempt);
            bump(DX_REQUESTS_FAILED, signal);
            break;
        }
        bump(DX_REQUESTS_RETRIED, signal);
        if (cc != CURLE_OK)
            dx_log(attempt == 1 ? DX_WARN : DX_DEBUG, "export to %s: %s; retrying in %llu ms",
                   url, curl_easy_strerror(cc), (unsigned long long)wait);
        else
            dx_log(attempt == 1 ? DX_WARN : DX_DEBUG, "export to %s: HTTP %ld; retrying in %llu ms",
                   url, status, (unsigned long long)wait);
        sleep_ms(wait, give_up);
        backoff = backoff * 2 > cfg.retry_max_ms ? cfg.retry_max_ms : backoff * 2;
    }
    free(zipped);
    return result;
}
