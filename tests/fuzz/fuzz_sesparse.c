/* seSparse extents (ESXi snapshots): the input is the -sesparse file,
 * behind a fixed descriptor whose parent is the base disk of every store.
 * Read, then written (tables allocated through the volatile header's
 * count), discarded and repaired. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the descriptor claims what the header does (u64 sectors at 16) */
    uint64_t sectors = 0;
    for (int i = 0; i < 8 && size >= 24; i++)
        sectors |= (uint64_t)data[16 + i] << (8 * i);
    fuzz_redo_log(data, size, "SESPARSE", "seSparse", sectors);
    return 0;
}
