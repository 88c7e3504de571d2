/* The text descriptor: parsed, written back and edited as vdk does on every
 * metadata change and first write, then opened as a descriptor-only disk
 * whose extents may or may not exist (the store holds base.vmdk and
 * base-flat.vmdk; anything else it names is missing). */
#include <string.h>

#include "descriptor.h"
#include "fuzz_common.h"

/* What vdk writes back must read back as the same descriptor: a rewrite
 * (CID renewal, vdk meta) that produced an unreadable file would lose the
 * disk. */
static void round_trip(const struct descriptor *d)
{
    vdk_error err;
    char *text = desc_format(d);
    FUZZ_ASSERT(text);
    struct descriptor *again = NULL;
    int r = desc_parse(text, strlen(text), "formatted.vmdk", &again, &err);
    if (r < 0)
        fprintf(stderr, "re-parse failed: %s\n--\n%s--\n", err.message, text);
    FUZZ_ASSERT(r == 0 && again->n_ext == d->n_ext && again->cid == d->cid);
    char *text2 = desc_format(again);
    FUZZ_ASSERT(text2 && !strcmp(text, text2));
    free(text2);
    desc_free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct descriptor *d = NULL;
    vdk_error err;
    if (desc_parse((const char *)data, size, "fuzz.vmdk", &d, &err) == 0) {
        round_trip(d);
        /* The edits vdk makes: a new CID, ddb keys, tracking off, an extent. */
        desc_set(d, "CID", "0badc0de", &err);
        desc_set(d, "ddb.fuzz", "value", &err);
        desc_set(d, "ddb.uuid", "60 00 c2 9a", &err);
        desc_remove(d, "changeTrackPath");
        desc_add_extent(d, &(struct desc_extent){.access = EA_RW, .type = ET_ZERO, .sectors = 1});
        desc_get(d, "ddb.adapterType");
        if (desc_set(d, "version", "1", &err) == 0)
            round_trip(d);
        desc_free(d);
    }
    vdk_store *st = fuzz_store();
    if (!st)
        return 0;
    if (vdk_store_mem_put(st, "disk.vmdk", data, size) == 0)
        fuzz_disk(st, "disk.vmdk", FUZZ_WRITE);
    st->ops->destroy(st);
    return 0;
}
