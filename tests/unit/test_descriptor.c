/* Descriptor parsing: lenient where real files vary, strict where it must be. */
#include <criterion/criterion.h>
#include <string.h>

#include "descriptor.h"

static struct descriptor *parse_ok(const char *text)
{
    struct descriptor *d = NULL;
    vdk_error err = {0};
    int r = desc_parse(text, strlen(text), "t.vmdk", &d, &err);
    cr_assert_eq(r, 0, "parse failed: %s", err.message);
    return d;
}

static const char *parse_err(const char *text, size_t len, int code)
{
    static vdk_error err;
    struct descriptor *d = NULL;
    err = (vdk_error){0};
    int r = desc_parse(text, len, "t.vmdk", &d, &err);
    cr_assert_eq(r, -code, "expected %d got %d (%s)", -code, r, err.message);
    cr_assert_null(d);
    cr_assert(strstr(err.message, "t.vmdk"), "message names the file: %s", err.message);
    return err.message;
}

Test(descriptor, vmware_style)
{
    struct descriptor *d =
        parse_ok("# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\n"
                 "parentCID=ffffffff\nisNativeSnapshot=\"no\"\ncreateType=\"vmfs\"\n\n"
                 "# Extent description\nRW 41943040 VMFS \"disk-flat.vmdk\"\n\n"
                 "# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n"
                 "ddb.geometry.cylinders = \"2610\"\nddb.uuid = \"60 00 C2 9a\"\n");
    cr_assert_eq(d->version, 1);
    cr_assert_eq(d->cid, 0xfffffffe);
    cr_assert_eq(d->parent_cid, 0xffffffff);
    cr_assert_str_eq(d->create_type, "vmfs");
    cr_assert_null(d->parent_hint);
    cr_assert_eq(d->n_ext, 1);
    cr_assert_eq(d->ext[0].type, ET_VMFS);
    cr_assert_eq(d->ext[0].sectors, 41943040);
    cr_assert_str_eq(d->ext[0].file, "disk-flat.vmdk");
    cr_assert_str_eq(desc_get(d, "ddb.adapterType"), "lsilogic");
    cr_assert_str_eq(desc_get(d, "ddb.uuid"), "60 00 C2 9a");
    desc_free(d);
}

Test(descriptor, crlf_trailing_spaces_no_comments)
{
    struct descriptor *d = parse_ok(
        "version=1\r\nCID=12ab  \r\nparentCID=ffffffff\r\ncreateType = \"monolithicFlat\"   \r\n"
        "RW 2048 FLAT \"a b.raw\" 0  \r\n  RDONLY 100 ZERO\r\nNOACCESS 8 FLAT \"c.raw\" 7\r\n"
        "ddb.adapterType=ide\r\nddb.empty = \"\"\r\n");
    cr_assert_eq(d->cid, 0x12ab);
    cr_assert_str_eq(d->create_type, "monolithicFlat");
    cr_assert_eq(d->n_ext, 3);
    cr_assert_str_eq(d->ext[0].file, "a b.raw");
    cr_assert_eq(d->ext[1].type, ET_ZERO);
    cr_assert_eq(d->ext[1].access, EA_RDONLY);
    cr_assert_null(d->ext[1].file);
    cr_assert_eq(d->ext[2].access, EA_NOACCESS);
    cr_assert_eq(d->ext[2].offset, 7);
    cr_assert_str_eq(desc_get(d, "ddb.adapterType"), "ide");
    cr_assert_str_eq(desc_get(d, "ddb.empty"), "");
    desc_free(d);
}

Test(descriptor, every_extent_type_and_aliases)
{
    struct descriptor *d = parse_ok(
        "createType=\"2GbMaxExtentSparse\"\nparentFileNameHint=\"base.vmdk\"\n"
        "RW 1 FLAT \"a\" 0\nRW 1 SPARSE \"b\"\nRW 1 ZERO\nRW 1 VMFS \"c\"\n"
        "RW 1 VMFSSPARSE \"d\"\nRW 1 VMFSRDM \"e\"\nRW 1 VMFSRAW \"f\"\nrw 1 sesparse \"g\"\n");
    cr_assert_eq(d->n_ext, 8);
    for (unsigned i = 0; i < 8; i++)
        cr_assert_eq(d->ext[i].type, (int)i);
    cr_assert_str_eq(desc_canonical_create_type(d->create_type), "twoGbMaxExtentSparse");
    cr_assert_str_eq(d->parent_hint, "base.vmdk");
    desc_free(d);
}

Test(descriptor, stops_at_nul_padding)
{
    char text[600] = "createType=\"monolithicFlat\"\nRW 8 FLAT \"x\" 0\n";
    strcpy(text + 100, "RW 8 FLAT \"junk\" 0\n");
    struct descriptor *d = NULL;
    cr_assert_eq(desc_parse(text, sizeof(text), "t.vmdk", &d, NULL), 0);
    cr_assert_eq(d->n_ext, 1);
    desc_free(d);
}

Test(descriptor, rejects_bad_input)
{
    const char *m;
    m = parse_err("createType=\"vmfs\"\n# nothing else\n", 31, VDK_E_CORRUPT);
    cr_assert(strstr(m, "no extent"), "%s", m);
    parse_err("RW 12x FLAT \"a\" 0\n", 18, VDK_E_CORRUPT);
    parse_err("RW 0 FLAT \"a\" 0\n", 16, VDK_E_CORRUPT);
    parse_err("RW 99999999999999999999 FLAT \"a\" 0\n", 35, VDK_E_CORRUPT);
    parse_err("RW 10 BOGUS \"a\" 0\n", 18, VDK_E_UNSUPPORTED);
    parse_err("RW 10 FLAT \"a\n", 14, VDK_E_CORRUPT);
    parse_err("RW 10 FLAT\n", 11, VDK_E_CORRUPT);
    parse_err("RW 10 FLAT \"a\" -5\n", 18, VDK_E_CORRUPT);
    parse_err("CID=xyz\nRW 10 FLAT \"a\" 0\n", 26, VDK_E_CORRUPT);
    parse_err("CID=123456789\nRW 10 FLAT \"a\" 0\n", 32, VDK_E_CORRUPT);
    parse_err("version=7\nRW 10 FLAT \"a\" 0\n", 28, VDK_E_UNSUPPORTED);
    /* extents adding up past the sanity limit */
    parse_err("RW 140737488355328 FLAT \"a\" 0\nRW 140737488355328 FLAT \"b\" 0\n", 62,
              VDK_E_CORRUPT);
}

Test(descriptor, too_large)
{
    size_t n = DESC_MAX_BYTES + 10;
    char *big = malloc(n);
    memset(big, '#', n);
    parse_err(big, n, VDK_E_CORRUPT);
    free(big);
}

Test(descriptor, last_definition_wins_and_quotes_inside)
{
    struct descriptor *d = parse_ok("ddb.k = \"one\"\nddb.k = \"say \"hi\"\"\nRW 1 ZERO\n");
    cr_assert_str_eq(desc_get(d, "ddb.k"), "say \"hi\"");
    desc_free(d);
}
