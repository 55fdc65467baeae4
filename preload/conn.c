/*
 * Connection states and the fd table. States come from mmap and are never
 * unmapped: a thread that still holds one while another closes its fd
 * reads a recycled state at worst, never unmapped memory. Freed states go
 * on a free list guarded by a lock that is only ever tried, never waited
 * for: a thread that cannot take it at once allocates a new state.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "conn.h"
#include "httpclient.h"

#define FD_CHUNK_BITS DYNOBS_FD_CHUNK_BITS
#define FD_CHUNKS DYNOBS_FD_CHUNKS

struct dynobs_conn **dynobs__fd_chunks[2][DYNOBS_FD_CHUNKS];
#define chunks dynobs__fd_chunks
static struct dynobs_conn *free_list;
static int free_lock;

static int try_lock(void)
{
    int expect = 0;
    return __atomic_compare_exchange_n(&free_lock, &expect, 1, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

static void unlock(void)
{
    __atomic_store_n(&free_lock, 0, __ATOMIC_RELEASE);
}

struct dynobs_conn *dynobs__conn_new(void)
{
    struct dynobs_conn *c = NULL;
    if (try_lock()) {
        c = free_list;
        if (c)
            free_list = c->next_free;
        unlock();
    }
    if (!c) {
        void *m = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        c = m;
    }
    /* Everything up to the span is reset (the span keeps its generation,
     * the TLS scratch buffer its mapping). */
    char *scratch = c->scratch;
    memset(c, 0, offsetof(struct dynobs_conn, span));
    c->scratch = scratch;
    c->refs = 0; /* the fd table (or a session) takes the references */
    c->inj_at = -1;
    return c;
}

void dynobs__conn_ref(struct dynobs_conn *c)
{
    __atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
}

void dynobs__conn_unref(struct dynobs_conn *c)
{
    if (!c || DYNOBS_IS_MARKER(c) || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (c->server)
        dynobs__srv_close(c);
    else if (c->span_open)
        dynobs__http_fail(c, "connection_closed");
    if (try_lock()) {
        c->next_free = free_list;
        free_list = c;
        unlock();
    }
    /* else: leaked to nobody, but still mapped; rare and bounded by
     * contention on closing sockets. */
}

static struct dynobs_conn **slot(enum dynobs_table t, int fd, int create)
{
    if (fd < 0 || fd >= (FD_CHUNKS << FD_CHUNK_BITS))
        return NULL;
    unsigned ci = (unsigned)fd >> FD_CHUNK_BITS;
    struct dynobs_conn **ch = __atomic_load_n(&chunks[t][ci], __ATOMIC_ACQUIRE);
    if (!ch) {
        if (!create)
            return NULL;
        void *m = mmap(NULL, sizeof(void *) << FD_CHUNK_BITS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        struct dynobs_conn **expect = NULL;
        if (!__atomic_compare_exchange_n(&chunks[t][ci], &expect, (struct dynobs_conn **)m, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            munmap(m, sizeof(void *) << FD_CHUNK_BITS);
            ch = expect;
        } else {
            ch = m;
        }
    }
    return &ch[(unsigned)fd & ((1u << FD_CHUNK_BITS) - 1)];
}

void dynobs__tab_set(enum dynobs_table t, int fd, struct dynobs_conn *c)
{
    struct dynobs_conn **s = slot(t, fd, c != NULL);
    if (!s)
        return;
    if (c && !DYNOBS_IS_MARKER(c))
        dynobs__conn_ref(c);
    struct dynobs_conn *old = __atomic_exchange_n(s, c, __ATOMIC_ACQ_REL);
    dynobs__conn_unref(old);
}
