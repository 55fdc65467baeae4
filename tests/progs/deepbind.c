/*
 * Loads libdynobs-deepbind-peer.so as PHP loads its extensions, with
 * RTLD_DEEPBIND, and reports what the library's calls reached (the test
 * of preload/dlopen.c, integration/test_deepbind.py).
 *
 *   dynobs-deepbind now|lazy LIBRARY-PATH PORT
 *       dlopen(LIBRARY-PATH, RTLD_NOW or RTLD_LAZY | RTLD_DEEPBIND), then
 *       one GET /now or /lazy to 127.0.0.1:PORT through the library;
 *       prints "status=... whoami=... own_writes=... dlerror=..."
 *   dynobs-deepbind search SONAME
 *       dlopen(SONAME) without a path, found through this program's
 *       RUNPATH (which only works when the caller glibc sees is this
 *       program), with and without RTLD_DEEPBIND; prints "search=ok"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The program's own definition, exported (ENABLE_EXPORTS): without
 * RTLD_DEEPBIND the library's reference would bind here. */
__attribute__((visibility("default"))) const char *deepbind_whoami(void)
{
    return "program";
}

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "dlsym %s: %s\n", name, dlerror());
        exit(1);
    }
    return p;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "search")) {
        void *a = dlopen(argv[2], RTLD_NOW);
        if (!a) {
            fprintf(stderr, "dlopen %s: %s\n", argv[2], dlerror());
            return 1;
        }
        void *b = dlopen(argv[2], RTLD_NOW | RTLD_DEEPBIND);
        if (!b) {
            fprintf(stderr, "dlopen %s (deepbind): %s\n", argv[2], dlerror());
            return 1;
        }
        printf("search=ok\n");
        return 0;
    }
    if (argc != 4 || (strcmp(argv[1], "now") && strcmp(argv[1], "lazy"))) {
        fprintf(stderr, "usage: %s now|lazy LIBRARY-PATH PORT | search SONAME\n", argv[0]);
        return 2;
    }
    int mode = (!strcmp(argv[1], "now") ? RTLD_NOW : RTLD_LAZY) | RTLD_DEEPBIND;
    (void)dlerror();
    void *h = dlopen(argv[2], mode);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", argv[2], dlerror());
        return 1;
    }
    /* A successful dlopen leaves no error behind, shim or not. */
    const char *err = dlerror();
    int (*request)(int, const char *) = (int (*)(int, const char *))sym(h, "peer_request");
    int (*writes)(int) = (int (*)(int))sym(h, "peer_write");
    const char *(*whoami)(void) = (const char *(*)(void))sym(h, "peer_whoami");

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
    }
    char path[16];
    snprintf(path, sizeof path, "/%s", argv[1]);
    int status = request(fd, path);
    close(fd);
    int p[2];
    if (pipe(p) != 0)
        return 1;
    int own = writes(p[1]);
    printf("status=%d whoami=%s own_writes=%d dlerror=%s\n", status, whoami(), own,
           err ? "set" : "clean");
    return 0;
}
