/* Replay fuzz inputs without libFuzzer, so the committed crash inputs in
 * regress/ run in the ordinary (gcc) builds, ASan included:
 *
 *   fuzz_regress_TARGET FILE|DIR...
 *
 * In a DIR, names starting with "." or "README" are skipped.  Each input is
 * copied into a buffer of exactly its size, as libFuzzer does, so a read one
 * byte past it is caught. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static unsigned replayed;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) < 0) {
        perror(path);
        if (f)
            fclose(f);
        return 1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *p = malloc(n ? n : 1);
    int bad = !p || fread(p, 1, n, f) != n;
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: unreadable\n", path);
        free(p);
        return 1;
    }
    fprintf(stderr, "replaying %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(p, n);
    free(p);
    replayed++;
    return 0;
}

static int run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    int bad = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !strncmp(e->d_name, "README", 6))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        bad |= run_file(path);
    }
    closedir(d);
    return bad;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            bad |= run_dir(argv[i]);
        else
            bad |= run_file(argv[i]);
    }
    printf("%s: %u inputs replayed without a crash\n", argv[0], replayed);
    return bad;
}
