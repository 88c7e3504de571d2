/* What the fuzz targets share: a memory store with a small parent disk in
 * it, and the bounded walk every target makes over a disk it could open.
 * Every step has a fixed budget so one input costs well under a second,
 * whatever capacity or table sizes the input claims. */
#ifndef VDK_FUZZ_COMMON_H
#define VDK_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "vdk.h"

/* libFuzzer's entry points (also called by the plain replay driver). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise of the library's API: abort, so the fuzzer keeps the
 * input as a crash. */
#define FUZZ_ASSERT(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #c);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The parent every store holds, so inputs that name it open a real chain:
 * "base.vmdk", monolithicFlat, CID below, over "base-flat.vmdk". */
#define FUZZ_BASE_CID     "12345678"
#define FUZZ_BASE_SECTORS 512u

/* A memory store holding the parent (NULL when out of memory). */
vdk_store *fuzz_store(void);

enum {
    FUZZ_WRITE = 1u << 0,      /* also open for writing: write, discard, repair */
    FUZZ_SEQUENTIAL = 1u << 1, /* re-read all the start read in small pieces */
};
/* Open 'name' read-only and walk it; with FUZZ_WRITE, open it again for
 * writing, write, discard, repair and walk the result read-only. */
void fuzz_disk(vdk_store *st, const char *name, unsigned flags);

/* A redo-log extent (COWD or seSparse) behind a fixed descriptor whose
 * parent is the base disk: 'type' is the extent type, 'create' the
 * createType, 'sectors' the capacity the header claims. */
void fuzz_redo_log(const uint8_t *data, size_t size, const char *type, const char *create,
                   uint64_t sectors);

#endif
