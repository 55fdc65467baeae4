/*
 * Protection against segments that shrink under us. A segment belongs to
 * the user who runs the service; if that user truncates the file after
 * we mapped it, touching the lost pages raises SIGBUS. Every access to a
 * mapping runs between DX_GUARD_BEGIN and DX_GUARD_END: a SIGBUS there
 * jumps back, the segment is marked broken (then dropped and refused),
 * and the exporter goes on.
 */
#ifndef DYNOBS_EXPORTER_GUARD_H
#define DYNOBS_EXPORTER_GUARD_H

#include <setjmp.h>

extern __thread sigjmp_buf *dx_guard_jb;

/* Installs the SIGBUS handler (once, at start-up). */
void dx_guard_install(void);

/* `broken` is evaluated when a SIGBUS arrived inside the guarded block. */
#define DX_GUARD_BEGIN(jb) (dx_guard_jb = &(jb), sigsetjmp(jb, 1) == 0)
#define DX_GUARD_END() (dx_guard_jb = NULL)

#endif
