/* Helpers shared by the unit tests. */
#ifndef VDK_TEST_COMMON_H
#define VDK_TEST_COMMON_H

#include <stdint.h>
#include <stdlib.h>

#include "imgbuild.h"
#include "vdk.h"

/* Deterministic pseudo-random bytes. */
uint64_t rnd(uint64_t *state);
void fill_random(uint8_t *p, size_t n, uint64_t seed);

/* A raw image of n bytes with random, zero and patterned regions. */
uint8_t *make_raw(size_t n, uint64_t seed);

/* Put a file into a memory store (asserting success). */
void put(vdk_store *s, const char *name, const void *data, size_t n);
void put_buf(vdk_store *s, const char *name, struct buf *b);

/* Open name in s, asserting success (err message in the failure). */
vdk_disk *open_ok(vdk_store *s, const char *name, unsigned flags);
/* Open expecting failure with 'code'; returns the message. */
const char *open_fails(vdk_store *s, const char *name, unsigned flags, int code);

/* Compare the whole disk and many random ranges with the model. */
void check_reads(vdk_disk *d, const uint8_t *model, size_t n, uint64_t seed);

/* A descriptor for one extent. */
char *descriptor(const char *create_type, const char *extent_line, const char *parent, uint32_t cid,
                 uint32_t parent_cid);

#endif
