/*
 * The exporter's former protobuf-c encoding of span and log batches,
 * kept as a reference for the wire encoder's tests (otlp_ref_pbc.c).
 */
#ifndef DYNOBS_TEST_OTLP_REF_PBC_H
#define DYNOBS_TEST_OTLP_REF_PBC_H

#include <stddef.h>
#include <stdint.h>

#include "queue.h"

/* As dx_encode_batch: the number of items encoded, or -1; *out is
 * malloc'ed. */
long ref_encode_batch(const struct dx_batch *b, uint8_t **out, size_t *len);

#endif
