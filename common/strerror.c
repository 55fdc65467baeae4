#include "dynobs/dynobs.h"

/* Shared by libdynobs.so and libdynobs-noop.so. */
DYNOBS_API const char *dynobs_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case DYNOBS_EINVAL:
        return "invalid argument";
    case DYNOBS_ENOSPC:
        return "no space left: a bounded table, buffer or ring is full";
    case DYNOBS_ENOENT:
        return "no current context";
    case DYNOBS_ERANGE:
        return "buffer too small";
    case DYNOBS_ENOMEM:
        return "the shared-memory segment could not be created";
    case DYNOBS_EDISABLED:
        return "dynobs is disabled";
    case DYNOBS_EBUSY:
        return "too late: the process's segment already exists";
    case DYNOBS_EEXIST:
        return "declared before with another kind, unit, description or bounds";
    case DYNOBS_ETRUNC:
        return "recorded, but truncated to the configured limits";
    default:
        return "unknown error";
    }
}
