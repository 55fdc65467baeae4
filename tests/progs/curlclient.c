/*
 * A libcurl client for the tests: the easy interface (with a header list
 * of its own, checked unchanged after every transfer) or the multi
 * interface (all URLs at once). Bodies go to stdout in URL order.
 *
 *   dynobs-curlclient easy|multi CAFILE URL...
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct body {
    char *p;
    size_t n;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    b->p = realloc(b->p, b->n + size * n);
    memcpy(b->p + b->n, p, size * n);
    b->n += size * n;
    return size * n;
}

static CURL *handle(const char *url, const char *cafile, struct curl_slist *headers,
                    struct body *b)
{
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, cafile);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    return h;
}

static int list_intact(const struct curl_slist *l)
{
    return l && !strcmp(l->data, "X-App: yes") && !l->next;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct curl_slist *headers = curl_slist_append(NULL, "X-App: yes");
    int n = argc - 3;
    struct body *bodies = calloc((size_t)n, sizeof *bodies);
    CURL **hs = calloc((size_t)n, sizeof *hs);
    int failures = 0;
    if (!strcmp(argv[1], "easy")) {
        for (int i = 0; i < n; i++) {
            hs[i] = handle(argv[3 + i], argv[2], headers, &bodies[i]);
            if (curl_easy_perform(hs[i]) != CURLE_OK)
                failures++;
            if (!list_intact(headers)) {
                fprintf(stderr, "the header list changed\n");
                return 3;
            }
        }
    } else {
        CURLM *m = curl_multi_init();
        for (int i = 0; i < n; i++) {
            hs[i] = handle(argv[3 + i], argv[2], headers, &bodies[i]);
            curl_multi_add_handle(m, hs[i]);
        }
        int running = 1;
        while (running) {
            curl_multi_perform(m, &running);
            if (running)
                curl_multi_poll(m, NULL, 0, 1000, NULL);
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK)
                failures++;
        for (int i = 0; i < n; i++)
            curl_multi_remove_handle(m, hs[i]);
        curl_multi_cleanup(m);
        if (!list_intact(headers)) {
            fprintf(stderr, "the header list changed\n");
            return 3;
        }
    }
    for (int i = 0; i < n; i++) {
        if (bodies[i].n)
            fwrite(bodies[i].p, 1, bodies[i].n, stdout);
        curl_easy_cleanup(hs[i]);
    }
    curl_slist_free_all(headers);
    return failures ? 4 : 0;
}
