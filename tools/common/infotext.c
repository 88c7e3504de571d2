/* The text of 'vdk info'. */
#include "infotext.h"

#include <stdio.h>
#include <stdlib.h>

const char *human_size(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)b;
    unsigned u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)b);
    else
        snprintf(buf, len, "%.4g %s", v, units[u]);
    return buf;
}

char *info_text(vdk_disk *d, int *status)
{
    uint64_t allocated = 0;
    int r = vdk_allocated_bytes(d, &allocated);
    if (r < 0) {
        *status = r;
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        *status = -VDK_E_NOMEM;
        return NULL;
    }
    vdk_info in;
    vdk_get_info(d, &in);
    char h[32];
    fprintf(f, "disk:           %s\n", in.name);
    fprintf(f, "create type:    %s\n", in.create_type);
    fprintf(f, "capacity:       %llu bytes (%s)\n", (unsigned long long)in.capacity,
            human_size(in.capacity, h, sizeof(h)));
    fprintf(f, "allocated:      %llu bytes in this link (%s)\n", (unsigned long long)allocated,
            human_size(allocated, h, sizeof(h)));
    if (in.adapter[0])
        fprintf(f, "adapter:        %s\n", in.adapter);
    if (in.hw_version)
        fprintf(f, "hw version:     %d\n", in.hw_version);
    if (in.heads)
        fprintf(f, "geometry:       %u/%u/%u (C/H/S)\n", in.cylinders, in.heads, in.sectors);
    if (in.uuid[0])
        fprintf(f, "uuid:           %s\n", in.uuid);
    fprintf(f, "CID:            %08x\n", in.cid);
    if (in.parent_hint[0]) {
        fprintf(f, "parent CID:     %08x\n", in.parent_cid);
        fprintf(f, "parent:         %s\n", in.parent_hint);
    }
    fprintf(f, "change tracking: %s\n", in.change_tracking ? "on" : "off");
    if (in.unclean)
        fprintf(f, "state:          unclean (not closed cleanly)\n");
    fprintf(f, "extents:\n");
    for (unsigned i = 0; i < in.extent_count; i++) {
        vdk_extent_info x;
        vdk_get_extent(d, i, &x);
        fprintf(f, "  %-8s %12llu %-10s %s", x.access, (unsigned long long)x.sectors, x.type,
                x.file[0] ? x.file : "-");
        if (x.offset)
            fprintf(f, " @%llu", (unsigned long long)x.offset);
        fprintf(f, " (%s)\n", x.format);
    }
    if (in.chain_depth > 1) {
        fprintf(f, "chain (%u links, top first):\n", in.chain_depth);
        for (vdk_disk *l = d; l; l = vdk_parent(l)) {
            vdk_info li;
            vdk_get_info(l, &li);
            fprintf(f, "  %s  %s  CID %08x\n", li.name, li.create_type, li.cid);
        }
    }
    if (fclose(f) != 0) {
        free(text);
        *status = -VDK_E_NOMEM;
        return NULL;
    }
    /* Names and values come from the disk's descriptor: an escape sequence
     * or a CR there must not reach the terminal (or vdkfs's info file) raw.
     * Descriptor values never hold '\n', so the line breaks are ours. */
    for (unsigned char *p = (unsigned char *)text; *p; p++)
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f)
            *p = '?';
    return text;
}
