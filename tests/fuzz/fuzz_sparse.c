/* Hosted sparse extents (KDMV): header, embedded descriptor, grain
 * directory and tables, compressed grains and stream markers.  The input is
 * one monolithic file, opened from a memory store.  One source, three
 * targets, told apart by FUZZ_FLAGS (the seeds differ too):
 *   fuzz_sparse   monolithicSparse and split-extent files, read only
 *   fuzz_stream   streamOptimized files, all the start read re-read in pieces
 *                 (each grain inflated again, the inflate cache cycled)
 *   fuzz_repair   sparse files opened for writing: writes, discard, repair */
#include "fuzz_common.h"

#ifndef FUZZ_FLAGS
#define FUZZ_FLAGS 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vdk_store *st = fuzz_store();
    if (!st)
        return 0;
    if (vdk_store_mem_put(st, "disk.vmdk", data, size) == 0)
        fuzz_disk(st, "disk.vmdk", FUZZ_FLAGS);
    st->ops->destroy(st);
    return 0;
}
