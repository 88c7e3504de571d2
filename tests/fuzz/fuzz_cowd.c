/* COWD extents (vmfsSparse redo logs): the input is the -delta file, behind
 * a fixed descriptor whose parent is the base disk of every store.  Read,
 * then written, discarded and repaired. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the descriptor claims what the header does (u32 sectors at 12) */
    uint64_t sectors = 0;
    for (int i = 0; i < 4 && size >= 16; i++)
        sectors |= (uint64_t)data[12 + i] << (8 * i);
    fuzz_redo_log(data, size, "VMFSSPARSE", "vmfsSparse", sectors);
    return 0;
}
