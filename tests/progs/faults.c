/*
 * Programs for the fault tests (tests/integration/test_faults.py), run
 * with libdynobs.so preloaded. Linked with the no-op API.
 *
 *   dynobs-faults procs       fork, vfork+exec and posix_spawn of an exec
 *                             chain while four threads make spans
 *   dynobs-faults burst       SCENARIO_N spans (default 3)
 *   dynobs-faults daemon      close every fd above 2, dup2 over stdout
 *   dynobs-faults setuid      (as root) spans, setuid(65534), more spans
 *   dynobs-faults signals-io  SIGALRM every 200 us whose handler send()s
 *                             and uses the API, during HTTP over TCP; then
 *                             a read interrupted without SA_RESTART
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dynobs/dynobs.h"

extern char **environ;

static int burst(void)
{
    const char *v = getenv("SCENARIO_N");
    int n = v ? atoi(v) : 3;
    for (int i = 0; i < n; i++) {
        dynobs_span *s = dynobs_span_start("burst", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_end(s);
    }
    printf("done %d\n", n);
    return 0;
}

static int stop_threads;

static void *spinner(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop_threads, __ATOMIC_RELAXED)) {
        dynobs_span *s = dynobs_span_start("spinner", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_end(s);
        usleep(100);
    }
    return NULL;
}

static int status_of(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int procs(const char *self)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, spinner, NULL);
    usleep(20000);
    pid_t pid = fork();
    if (pid == 0) {
        dynobs_span *c = dynobs_span_start("forked-child", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_end(c);
        _exit(0);
    }
    printf("fork %d\n", status_of(pid));
    char *burst_argv[] = {(char *)self, "burst", NULL};
    pid = vfork();
    if (pid == 0) {
        execve(self, burst_argv, environ);
        _exit(127);
    }
    printf("vfork %d\n", status_of(pid));
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "exec env SCENARIO_N=3 '%s' burst", self);
    char *sh_argv[] = {"sh", "-c", cmd, NULL};
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, sh_argv, environ) != 0)
        return 1;
    printf("spawn %d\n", status_of(pid));
    __atomic_store_n(&stop_threads, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    dynobs_span *s = dynobs_span_start("parent-after", DYNOBS_SPAN_KIND_INTERNAL);
    dynobs_span_end(s);
    return 0;
}

static int daemonish(void)
{
    for (int i = 0; i < 5; i++) {
        dynobs_span *s = dynobs_span_start("before", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_end(s);
    }
    syscall(SYS_close_range, 3, ~0U, 0);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    close(null);
    for (int i = 0; i < 5; i++) {
        dynobs_span *s = dynobs_span_start("after", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_end(s);
    }
    printf("this goes to /dev/null\n");
    fprintf(stderr, "daemon ok\n");
    return 0;
}

static int drop_root(void)
{
    dynobs_span *s = dynobs_span_start("as-root", DYNOBS_SPAN_KIND_INTERNAL);
    dynobs_span_end(s);
    if (setgid(65534) || setuid(65534)) {
        perror("setuid");
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        s = dynobs_span_start("as-nobody", DYNOBS_SPAN_KIND_INTERNAL);
        dynobs_span_end(s);
    }
    printf("uid %d\n", (int)getuid());
    return 0;
}

static int sig_fd;
static volatile sig_atomic_t handler_runs;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    char c = 'x';
    if (send(sig_fd, &c, 1, MSG_DONTWAIT) < 0 && errno != EAGAIN)
        _exit(3);
    dynobs_span *s = dynobs_span_start("in-handler", DYNOBS_SPAN_KIND_INTERNAL);
    dynobs_span_end(s);
    handler_runs++;
    errno = saved;
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* Reads from fd until buf holds `end`; returns the length, -1 on EOF. */
static ssize_t read_until(int fd, char *buf, size_t cap, const char *end)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, end))
            break;
    }
    return (ssize_t)n;
}

static int tcp_loop(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &al))
        return -1;
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*client, (struct sockaddr *)&a, sizeof a))
        return -1;
    *server = accept(l, NULL, NULL);
    close(l);
    return *server < 0 ? -1 : 0;
}

static int signals_io(void)
{
    int sink[2], cli, srv;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sink) || tcp_loop(&cli, &srv))
        return 1;
    sig_fd = sink[0];
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    static const char req[] = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    char buf[2048], junk[4096];
    long bad = 0;
    int requests = 2000;
    for (int i = 0; i < requests; i++) {
        if (write(cli, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
            bad++;
        /* Exactly one traceparent line, whatever else wraps write(). */
        const char *tp = read_until(srv, buf, sizeof buf, "\r\n\r\n") < 0 ? NULL
                                                                           : strstr(buf, "traceparent: 00-");
        if (!tp || strstr(tp + 1, "traceparent"))
            bad++;
        if (write(srv, resp, sizeof resp - 1) != (ssize_t)(sizeof resp - 1))
            bad++;
        if (read_until(cli, buf, sizeof buf, "\r\n\r\nok") < 0)
            bad++;
        if (i % 64 == 0)
            while (recv(sink[1], junk, sizeof junk, MSG_DONTWAIT) > 0)
                ;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    /* SIGUSR1 without SA_RESTART interrupts a blocking read: EINTR, as
     * without the shim. */
    struct sigaction su = {.sa_handler = on_usr1};
    sigemptyset(&su.sa_mask);
    sigaction(SIGUSR1, &su, NULL);
    pid_t me = getpid(), kid = fork();
    if (kid == 0) {
        usleep(100000);
        kill(me, SIGUSR1);
        _exit(0);
    }
    errno = 0;
    ssize_t r = read(srv, buf, sizeof buf);
    int e = errno;
    status_of(kid);
    printf("requests %d, handler ran %s, io errors %ld, interrupted read %zd %s\n", requests,
           handler_runs > 0 ? "yes" : "no", bad, r, e == EINTR ? "EINTR" : strerror(e));
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "procs"))
        return procs(argv[0]);
    if (!strcmp(argv[1], "burst"))
        return burst();
    if (!strcmp(argv[1], "daemon"))
        return daemonish();
    if (!strcmp(argv[1], "setuid"))
        return drop_root();
    if (!strcmp(argv[1], "signals-io"))
        return signals_io();
    return 2;
}
