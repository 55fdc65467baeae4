/*
 * One exporter per segment directory: it holds an exclusive lock on
 * DIR/.exporter.lock (with its pid inside) for as long as it runs, which
 * dynobs-run tests to decide whether to start one.
 */
#ifndef DYNOBS_EXPORTER_DIR_LOCK_H
#define DYNOBS_EXPORTER_DIR_LOCK_H

/* Returns the lock's fd (kept open until exit), or -1 after saying on
 * stderr who holds it (once it has been held for half a second) or why
 * it cannot be opened. */
int dx_dir_lock_take(const char *dir);

#endif
