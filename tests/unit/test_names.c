/* Store names: joining, normalising and confinement to the store. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "vdk.h"

static void join_ok(const char *base, const char *rel, const char *want)
{
    char out[256];
    int r = vdk_name_join(base, rel, out, sizeof(out));
    cr_assert_eq(r, 0, "join(%s, %s) = %d", base, rel, r);
    cr_assert_str_eq(out, want);
}

static void join_fails(const char *base, const char *rel, int code)
{
    char out[256];
    cr_assert_eq(vdk_name_join(base, rel, out, sizeof(out)), -code, "join(%s, %s)", base, rel);
}

Test(names, join)
{
    join_ok("disk.vmdk", "disk-flat.vmdk", "disk-flat.vmdk");
    join_ok("vm/disk.vmdk", "disk-s001.vmdk", "vm/disk-s001.vmdk");
    join_ok("vm/disk.vmdk", "../base/base.vmdk", "base/base.vmdk");
    join_ok("a/b/c.vmdk", "./x//y.vmdk", "a/b/x/y.vmdk");
    join_fails("disk.vmdk", "../etc/shadow", VDK_E_ESCAPE);
    join_fails("vm/disk.vmdk", "../../x", VDK_E_ESCAPE);
    join_fails("disk.vmdk", "/etc/passwd", VDK_E_ESCAPE);
    join_fails("disk.vmdk", "C:\\vms\\base.vmdk", VDK_E_ESCAPE);
    join_fails("disk.vmdk", "", VDK_E_INVAL);
    join_fails("disk.vmdk", "..", VDK_E_ESCAPE);
    join_fails("disk.vmdk", ".", VDK_E_INVAL);
}

static char dir[] = "/tmp/vdk-names-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(local_store, confines_names, .init = setup, .fini = teardown)
{
    char p[512], secret[512];
    snprintf(p, sizeof(p), "%s/sub", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(secret, sizeof(secret), "%s/secret.raw", dir);
    write_file("secret.raw", "outside");
    write_file("sub/inside.raw", "inside");
    snprintf(p, sizeof(p), "%s/sub/link.raw", dir);
    cr_assert_eq(symlink(secret, p), 0);
    snprintf(p, sizeof(p), "%s/sub/rel.raw", dir);
    cr_assert_eq(symlink("../secret.raw", p), 0);
    snprintf(p, sizeof(p), "%s/sub/ok.raw", dir);
    cr_assert_eq(symlink("inside.raw", p), 0);

    snprintf(p, sizeof(p), "%s/sub", dir);
    vdk_store *s;
    cr_assert_eq(vdk_store_local_new(p, &s), 0);
    vdk_file *f = NULL;
    cr_assert_eq(s->ops->open(s, "inside.raw", VDK_STORE_READ, &f), 0);
    char buf[16] = {0};
    cr_assert_eq(f->ops->pread(f, buf, sizeof(buf), 0), 6);
    cr_assert_str_eq(buf, "inside");
    f->ops->close(f);
    cr_assert_eq(s->ops->open(s, "ok.raw", VDK_STORE_READ, &f), 0, "symlink inside is fine");
    f->ops->close(f);
    cr_assert_eq(s->ops->open(s, "../secret.raw", VDK_STORE_READ, &f), -EXDEV);
    cr_assert_eq(s->ops->open(s, secret, VDK_STORE_READ, &f), -EXDEV);
    cr_assert_eq(s->ops->open(s, "link.raw", VDK_STORE_READ, &f), -EXDEV);
    cr_assert_eq(s->ops->open(s, "rel.raw", VDK_STORE_READ, &f), -EXDEV);
    cr_assert_eq(s->ops->unlink(s, "../secret.raw"), -EXDEV);
    cr_assert_eq(s->ops->rename(s, "inside.raw", "../moved.raw"), -EXDEV);
    cr_assert_eq(access(secret, F_OK), 0, "nothing outside was touched");

    char rel[256];
    snprintf(p, sizeof(p), "%s/sub/x/base.vmdk", dir);
    cr_assert_eq(s->ops->relativize(s, p, rel, sizeof(rel)), 0);
    cr_assert_str_eq(rel, "x/base.vmdk");
    cr_assert_eq(s->ops->relativize(s, secret, rel, sizeof(rel)), -EXDEV);
    s->ops->destroy(s);
}

Test(local_store, extent_escape_is_refused, .init = setup, .fini = teardown)
{
    write_file("../vdk-outside.raw", "");
    write_file("d.vmdk", "createType=\"monolithicFlat\"\nRW 1 FLAT \"../outside.raw\" 0\n");
    write_file("e.vmdk", "createType=\"monolithicFlat\"\nRW 1 FLAT \"/etc/passwd\" 0\n");
    char p[512];
    vdk_disk *d = NULL;
    vdk_error err = {0};
    snprintf(p, sizeof(p), "%s/d.vmdk", dir);
    cr_assert_eq(vdk_open(p, VDK_OPEN_RDONLY, &d, &err), -VDK_E_ESCAPE);
    cr_assert(strstr(err.message, "outside"), "%s", err.message);
    snprintf(p, sizeof(p), "%s/e.vmdk", dir);
    cr_assert_eq(vdk_open(p, VDK_OPEN_RDONLY, &d, &err), -VDK_E_ESCAPE);
    cr_assert(strstr(err.message, "/etc/passwd"), "%s", err.message);
}

Test(mem_store, basics)
{
    vdk_store *s;
    cr_assert_eq(vdk_store_mem_new(&s), 0);
    cr_assert_eq(vdk_store_mem_put(s, "a/b.vmdk", "hello", 5), 0);
    vdk_file *f;
    cr_assert_eq(s->ops->open(s, "a/b.vmdk", VDK_STORE_READ, &f), 0);
    uint64_t size;
    cr_assert_eq(f->ops->size(f, &size), 0);
    cr_assert_eq(size, 5);
    cr_assert_eq(f->ops->pwrite(f, "x", 1, 0), -EBADF, "read-only handle");
    f->ops->close(f);
    cr_assert_eq(s->ops->open(s, "../x", VDK_STORE_READ, &f), -EXDEV);
    cr_assert_eq(s->ops->open(s, "nope", VDK_STORE_READ, &f), -ENOENT);
    cr_assert_eq(s->ops->rename(s, "a/b.vmdk", "c.vmdk"), 0);
    cr_assert_eq(s->ops->unlink(s, "c.vmdk"), 0);
    cr_assert_eq(s->ops->unlink(s, "c.vmdk"), -ENOENT);
    s->ops->destroy(s);
}
