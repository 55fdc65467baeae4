#define _GNU_SOURCE
#include "shed_preload.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void dx_shed_preload(char **argv)
{
    const char *pre = getenv("LD_PRELOAD");
    if (!pre || !strstr(pre, "libdynobs"))
        return;
    char *kept = calloc(1, strlen(pre) + 1), *copy = strdup(pre);
    if (!kept || !copy)
        return;
    for (char *save, *p = strtok_r(copy, ": ", &save); p; p = strtok_r(NULL, ": ", &save)) {
        if (strstr(p, "libdynobs"))
            continue;
        if (*kept)
            strcat(kept, ":");
        strcat(kept, p);
    }
    if (*kept)
        setenv("LD_PRELOAD", kept, 1);
    else
        unsetenv("LD_PRELOAD");
    setenv("OTEL_SDK_DISABLED", "true", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: the shim stays loaded but disabled from here on. */
}
