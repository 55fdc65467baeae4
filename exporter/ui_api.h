/*
 * The live view in the browser (/ui/): its page, script and style sheet,
 * and the traces it shows (/ui/api/traces).
 */
#ifndef DYNOBS_EXPORTER_UI_API_H
#define DYNOBS_EXPORTER_UI_API_H

/* Registers the routes (before the HTTP server starts). Returns 0 or -1. */
int dx_ui_register(void);

#endif
