/*
 * The compiled table of rules/default.yaml, embedded in the shim at build
 * time (dynobs-rulesc): the rules in force while the exporter has
 * published none.
 */
#ifndef DYNOBS_COMMON_RULES_DEFAULT_H
#define DYNOBS_COMMON_RULES_DEFAULT_H

#include <stddef.h>

extern const unsigned char dynobs__rules_default[];
extern const size_t dynobs__rules_default_len;

#endif
