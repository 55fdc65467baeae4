/*
 * One libcurl easy handle for every transfer: reads a URL per stdin line,
 * performs it on the same handle and prints the response code (or
 * "error N"), so that a test can change what it asks between transfers.
 *
 *   dynobs-curlreuse < urls
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

int main(void)
{
    CURL *h = curl_easy_init();
    if (!h)
        return 2;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    char line[2048];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, line);
        CURLcode rc = curl_easy_perform(h);
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK)
            printf("error %d\n", (int)rc);
        else
            printf("%ld\n", code);
        fflush(stdout);
    }
    curl_easy_cleanup(h);
    return 0;
}
