/*
 * What the kernel side (the *.bpf.c programs) tells the exporter, through
 * one BPF ring buffer: process events (a process of a traced executable
 * started, forked or exited), data events (bytes a traced process read or
 * wrote on a socket, or on the plain side of TLS) and libpq events (a
 * statement began, a result came back). Shared by both sides, so only
 * fixed-width types; the user side includes <linux/types.h> first.
 */
#ifndef DYNOBS_EBPF_EVENTS_H
#define DYNOBS_EBPF_EVENTS_H

/* Bytes of one read or write copied to user space: enough for the
 * request and response heads the HTTP/1 readers look at; the rest of a
 * call is counted (len), not copied. A power of two. */
#define DYNOBS_EBPF_DATA_MAX 4096u

/* Bytes of a libpq statement's text copied (longer ones are cut, and
 * say so). */
#define DYNOBS_EBPF_QUERY_MAX 2048u

enum dynobs_ebpf_ev_type {
    DYNOBS_EV_EXEC = 1, /* a process of a traced executable started */
    DYNOBS_EV_FORK,     /* a traced process forked a new process (pid: the child) */
    DYNOBS_EV_EXIT,     /* a traced process ended, or ran another program */
    DYNOBS_EV_DATA,     /* bytes moved on a connection */
    DYNOBS_EV_CLOSE,    /* a connection was closed (socket close, SSL_free) */
    DYNOBS_EV_PQ_BEGIN, /* a libpq call that sends a statement */
    DYNOBS_EV_PQ_END,   /* a synchronous call returned its result */
    DYNOBS_EV_PQ_RESULT, /* PQgetResult returned (status -1: NULL, the end) */
    DYNOBS_EV_MUX        /* a thread waits in epoll: it multiplexes requests */
};

/* Where a data event's bytes were seen. */
enum dynobs_ebpf_src {
    DYNOBS_SRC_SOCK = 1, /* read/write system calls on a stream socket */
    DYNOBS_SRC_TLS,      /* SSL_read/SSL_write: the plain side of TLS */
};

/* The libpq call of a PQ_BEGIN event. */
enum dynobs_ebpf_pq_op {
    DYNOBS_PQ_EXEC = 1,       /* PQexec, PQexecParams: data is the statement */
    DYNOBS_PQ_PREPARE,        /* PQprepare: data is "name\0statement" */
    DYNOBS_PQ_EXEC_PREPARED,  /* PQexecPrepared: data is the name */
    DYNOBS_PQ_SEND,           /* PQsendQuery, PQsendQueryParams */
    DYNOBS_PQ_SEND_PREPARE,   /* PQsendPrepare: "name\0statement" */
    DYNOBS_PQ_SEND_PREPARED,  /* PQsendQueryPrepared: the name */
};

#define DYNOBS_EVF_CUT 0x1u   /* the copied bytes stop before the call's end */
#define DYNOBS_EVF_INET 0x2u  /* addr holds IPv4 or IPv6 addresses and ports */
#define DYNOBS_EVF_INET6 0x4u /* they are IPv6 */

/* Counters the kernel side keeps (an array map, one slot each). */
enum dynobs_ebpf_counter {
    DYNOBS_EBPF_LOST_RINGBUF = 0, /* events dropped: the ring buffer was full */
    DYNOBS_EBPF_LOST_ARGS,        /* a call's arguments could not be kept */
    DYNOBS_EBPF_COUNTERS
};

struct dynobs_ebpf_ev {
    __u32 type;   /* enum dynobs_ebpf_ev_type */
    __u32 pid;    /* process (thread group) id */
    __u32 tid;    /* thread id */
    __u32 flags;  /* DYNOBS_EVF_* */
    __u64 ts;     /* CLOCK_MONOTONIC, ns */
    __u64 conn;   /* socket fd, SSL *, or PGconn * */
    __s64 len;    /* DATA: bytes the call moved; PQ_END/RESULT: ExecStatusType or -1 */
    __u64 aux;    /* PQ_BEGIN: its op; PQ_END/RESULT: rows (ntups) */
    __u32 cap;    /* bytes copied into data */
    __u8 dir;     /* DATA: 0 read, 1 written */
    __u8 src;     /* DATA, CLOSE: enum dynobs_ebpf_src */
    __u16 family;
    __u16 lport, rport; /* host byte order */
    __u32 pad;
    __u8 laddr[16], raddr[16]; /* IPv4 in the first 4 bytes */
    char data[DYNOBS_EBPF_DATA_MAX];
};

/* Both sides compile this struct (clang for BPF, the host compiler for
 * the exporter): its layout is pinned here. */
_Static_assert(__builtin_offsetof(struct dynobs_ebpf_ev, ts) == 16, "event ts");
_Static_assert(__builtin_offsetof(struct dynobs_ebpf_ev, cap) == 48, "event cap");
_Static_assert(__builtin_offsetof(struct dynobs_ebpf_ev, laddr) == 64, "event laddr");
_Static_assert(__builtin_offsetof(struct dynobs_ebpf_ev, data) == 96, "event data");

/* An executable traced by --exe, by its inode. */
struct dynobs_ebpf_exe {
    __u64 dev;
    __u64 ino;
};

#endif
