#define _GNU_SOURCE
#include "dir_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"

int dx_dir_lock_take(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/.exporter.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "dynobs-exporter: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* dynobs-run tests the lock by taking it for an instant (flock -n ...
     * true), so a failure may be such a probe rather than an exporter: try
     * again for half a second before concluding that another exporter
     * runs. Two exporters started at once still end with one. */
    int locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    for (int i = 0; !locked && errno == EWOULDBLOCK && i < 25; i++) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
    }
    if (!locked) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(stderr, "dynobs-exporter: another exporter (pid %s) already drains %s\n",
                pid[0] ? pid : "?", dir);
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        dx_log(DX_WARN, "cannot write the pid into %s", path);
    return fd;
}
