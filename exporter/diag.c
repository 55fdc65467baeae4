#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum dx_level threshold = DX_INFO;

void dx_log_init(const char *level)
{
    static const char *names[] = {"debug", "info", "warn", "error", "none"};
    if (!level || !*level)
        return;
    for (int i = 0; i <= DX_NONE; i++)
        if (!strcasecmp(level, names[i]))
            threshold = (enum dx_level)i;
    if (!strcasecmp(level, "warning"))
        threshold = DX_WARN;
}

int dx_log_enabled(enum dx_level level)
{
    return level >= threshold;
}

void dx_log(enum dx_level level, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info", "warn", "error"};
    if (level < threshold || level >= DX_NONE)
        return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ dynobs-exporter %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
}
