/*
 * The exporter must never trace itself: if the shim was preloaded into
 * it (dynobs-run, or a host-wide LD_PRELOAD), it starts again without it.
 */
#ifndef DYNOBS_EXPORTER_SHED_PRELOAD_H
#define DYNOBS_EXPORTER_SHED_PRELOAD_H

/* Re-executes the program without libdynobs in LD_PRELOAD (and with the
 * SDK disabled, so that nothing inherited can turn it back on). Returns
 * only when there was nothing to shed or the exec failed; the shim then
 * stays loaded but disabled. */
void dx_shed_preload(char **argv);

#endif
