/*
 * The rules file (DYNOBS_RULES): compiled when the exporter starts and
 * again whenever the file changes (checked once a second), published as
 * DIR/.rules.<generation> for every shim, and handed to the exporter's own
 * parts that act on rules. A file that does not compile is logged with
 * its file:line:column and key path and changes nothing: the rules in
 * force stay (the built-in defaults when none were ever published). The
 * exporter never exits because of its rules file.
 */
#ifndef DYNOBS_EXPORTER_RULES_PUBLISH_H
#define DYNOBS_EXPORTER_RULES_PUBLISH_H

#include <stdint.h>

#include "rules.h"

/* Called with each table that comes into force (never NULL; the table and
 * its bytes stay valid for the life of the exporter), on the main thread. */
typedef void (*dx_rules_listener)(const struct dynobs_rules *r);

/* Registers a part that acts on rules; call before dx_rules_init. */
int dx_rules_listen(dx_rules_listener fn);

/* dir: the segment directory; path: the rules file, or NULL/"" for none
 * (the shims' built-in defaults then apply, and listeners get those). */
void dx_rules_init(const char *dir, const char *path);

/* Main thread: reloads when the file changed; cheap otherwise. */
void dx_rules_poll(void);

/* The generation in force (0: nothing published) for the segments. */
uint64_t dx_rules_generation(void);

#endif
