/*
 * A service for the eBPF tests, never preloaded there: it serves COUNT
 * HTTP/1 requests on PORT, one at a time on its only thread, and for each
 * runs a statement through libpq (on CONNINFO) and fetches BACKEND with
 * libcurl before it answers. Through eBPF alone each request then makes a
 * server span with a database span and an HTTP client span as its
 * children.
 *
 *   dynobs-ebpf-app PORT CONNINFO BACKEND COUNT
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CONNINFO BACKEND COUNT\n", argv[0]);
        return 2;
    }
    PGconn *db = PQconnectdb(argv[2]);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(db));
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *curl = curl_easy_init();
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0) {
        perror("listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    for (int n = atoi(argv[4]); n > 0; n--) {
        int c = accept(ls, NULL, NULL);
        if (c < 0)
            continue;
        char head[8192];
        size_t got = 0;
        while (got < sizeof head - 1) {
            ssize_t k = read(c, head + got, sizeof head - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
            head[got] = '\0';
            if (strstr(head, "\r\n\r\n"))
                break;
        }
        PGresult *r = PQexec(db, "select count(*) from pg_class where relname = 'pg_type'");
        PQclear(r);
        curl_easy_setopt(curl, CURLOPT_URL, argv[3]);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        CURLcode cc = curl_easy_perform(curl);
        char resp[128];
        int len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 %s\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                           cc == CURLE_OK ? "200 OK" : "502 Bad Gateway");
        if (write(c, resp, (size_t)len) != len)
            perror("write");
        close(c);
    }
    curl_easy_cleanup(curl);
    PQfinish(db);
    return 0;
}
