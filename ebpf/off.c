/* The eBPF source when it was not built (ebpf/CMakeLists.txt says why). */
#include <stdio.h>
#include <string.h>

#include "ebpf.h"

int dynobs__ebpf_start(const struct dynobs_ebpf_opts *o, char *why, size_t len)
{
    (void)o;
    snprintf(why, len, "this dynobs-exporter was built without eBPF (%s)", DYNOBS_EBPF_WHY);
    return -1;
}

void dynobs__ebpf_stop(void)
{
}

void dynobs__ebpf_stats(struct dynobs_ebpf_stats *s)
{
    memset(s, 0, sizeof *s);
}
