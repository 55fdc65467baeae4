#define _GNU_SOURCE
#include "otlp_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "exporter.h"
#include "util.h"
#include "diag.h"

static CURL *curl;
static struct curl_slist *headers_plain, *headers_gzip;
static uint64_t retry_initial_ms = 1000, retry_max_ms = 30000, retry_total_ms = 300000;

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* OTEL_EXPORTER_OTLP_HEADERS: "k=v,k=v", values percent-decoded. */
static struct curl_slist *user_headers(struct curl_slist *l, const char *spec)
{
    char *copy = strdup(spec ? spec : "");
    for (char *save, *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        char *eq = strchr(p, '=');
        if (!eq || eq == p) {
            dx_log(DX_WARN, "OTEL_EXPORTER_OTLP_HEADERS: ignoring '%s' (no key=value)", p);
            continue;
        }
        *eq = '\0';
        char line[2048];
        size_t o = (size_t)snprintf(line, sizeof line, "%s: ", p);
        for (char *v = eq + 1; *v && o + 1 < sizeof line; v++) {
            if (*v == '%' && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                line[o++] = (char)(hexval(v[1]) << 4 | hexval(v[2]));
                v += 2;
            } else if (*v != '\r' && *v != '\n') {
                line[o++] = *v;
            }
        }
        line[o] = '\0';
        l = curl_slist_append(l, line);
    }
    free(copy);
    return l;
}

static uint64_t env_ms(const char *name, uint64_t def)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : def;
}

int dx_http_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    curl = curl_easy_init();
    if (!curl)
        return -1;
    retry_initial_ms = env_ms("DYNOBS_RETRY_INITIAL_MS", 1000);
    retry_max_ms = env_ms("DYNOBS_RETRY_MAX_MS", 30000);
    retry_total_ms = env_ms("DYNOBS_RETRY_TOTAL_MS", 300000);
    headers_plain = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    headers_plain = user_headers(headers_plain, dx.cfg.headers);
    headers_gzip = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    headers_gzip = curl_slist_append(headers_gzip, "Content-Encoding: gzip");
    headers_gzip = user_headers(headers_gzip, dx.cfg.headers);
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
    if (len > 12 && !strncasecmp(line, "Retry-After:", 12)) {
        char tmp[64];
        size_t l = len - 12 < sizeof tmp - 1 ? len - 12 : sizeof tmp - 1;
        memcpy(tmp, line + 12, l);
        tmp[l] = '\0';
        char *end;
        long s = strtol(tmp, &end, 10);
        if (end != tmp && s >= 0)
            r->retry_after_s = s; /* an HTTP date is not honoured: backoff applies */
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n; /* the partial-success body is not needed to decide */
}

static void sleep_ms(uint64_t ms, const volatile int *give_up)
{
    /* In slices, so that shutdown is not held up by a long backoff. */
    while (ms && !*give_up) {
        uint64_t step = ms > 50 ? 50 : ms;
        struct timespec ts = {(time_t)(step / 1000), (long)(step % 1000) * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static void bump(uint64_t *arr, int signal)
{
    pthread_mutex_lock(&dx.lock);
    arr[signal]++;
    pthread_mutex_unlock(&dx.lock);
}

enum dx_send_result dx_http_send(int signal, const char *url, const uint8_t *body, size_t len,
                                 const volatile int *give_up)
{
    uint8_t *zipped = NULL;
    size_t zlen = 0;
    if (dx.cfg.gzip && !(zipped = gzip(body, len, &zlen)))
        dx_log(DX_WARN, "gzip failed; sending uncompressed");
    uint64_t start = dynobs__mono_ns(), backoff = retry_initial_ms;
    unsigned seed = (unsigned)start;
    enum dx_send_result result = DX_GAVE_UP;
    for (int attempt = 1;; attempt++) {
        struct reply rep = {.retry_after_s = -1};
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, zipped ? zipped : body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(zipped ? zlen : len));
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, zipped ? headers_gzip : headers_plain);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)dx.cfg.timeout_ms);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)dx.cfg.timeout_ms);
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
            bump(dx.stats.requests_ok, signal);
            result = DX_SENT;
            break;
        }
        int retryable = cc != CURLE_OK || status == 429 || status == 502 || status == 503 ||
                        status == 504;
        if (!retryable) {
            dx_log(DX_WARN, "export to %s rejected with HTTP %ld; dropping %zu bytes", url, status,
                   len);
            bump(dx.stats.requests_failed, signal);
            result = DX_REJECTED;
            break;
        }
        uint64_t wait = backoff / 2 + (backoff > 1 ? (uint64_t)rand_r(&seed) % (backoff / 2 + 1) : 0);
        if (rep.retry_after_s >= 0)
            wait = (uint64_t)rep.retry_after_s * 1000;
        uint64_t elapsed = (dynobs__mono_ns() - start) / 1000000;
        if (*give_up || elapsed + wait > retry_total_ms) {
            dx_log(DX_WARN, "export to %s failed (%s); giving up after %d attempts", url,
                   cc != CURLE_OK ? curl_easy_strerror(cc) : "HTTP error", attempt);
            bump(dx.stats.requests_failed, signal);
            break;
        }
        bump(dx.stats.requests_retried, signal);
        if (cc != CURLE_OK)
            dx_log(attempt == 1 ? DX_WARN : DX_DEBUG, "export to %s: %s; retrying in %llu ms",
                   url, curl_easy_strerror(cc), (unsigned long long)wait);
        else
            dx_log(attempt == 1 ? DX_WARN : DX_DEBUG, "export to %s: HTTP %ld; retrying in %llu ms",
                   url, status, (unsigned long long)wait);
        sleep_ms(wait, give_up);
        backoff = backoff * 2 > retry_max_ms ? retry_max_ms : backoff * 2;
    }
    free(zipped);
    return result;
}
