/* vdk check: consistency check and repair (VixDiskLib_CheckRepair). */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "Usage: vdk check [--repair] [OPTIONS] DISK\n\n"
    "Verify DISK's top link: headers, the grain directory and tables (entries\n"
    "outside the file or inside metadata, grains shared by two entries),\n"
    "redundant tables, the uncleanShutdown mark, and the content ids of its\n"
    "chain.  Every finding is printed on its own line.\n\n"
    "With --repair, fix what can be fixed, say exactly what changed, and check\n"
    "again: entries pointing outside the file are cleared (that range then reads\n"
    "from the parent, or as zeros), redundant tables are copied from the primary\n"
    "ones, and the uncleanShutdown mark is cleared.\n\n"
    "Exit status: 0 when the disk is (now) clean, 1 when problems remain.\n\n"
    "Options:\n"
    "  --repair        fix what can be fixed\n" CLI_OPEN_HELP "  -h, --help      this text\n";

static void print_line(void *arg, const char *line)
{
    printf("%s\n", line);
}

static int run(const char *path, struct open_opts *oo, int repair, unsigned *problems)
{
    vdk_disk *d = cli_open(path, oo);
    if (!d)
        return -1;
    unsigned repaired = 0;
    int r = vdk_check(d, repair, print_line, NULL, problems, &repaired);
    if (r < 0)
        cli_disk_error(d, r);
    if (cli_close(d) < 0 && r == 0)
        r = cli_error("%s: closing failed", path) ? -1 : -1;
    if (r == 0 && repair)
        printf("%u change%s made\n", repaired, repaired == 1 ? "" : "s");
    return r;
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"repair", no_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_OPEN_LONGOPTS,
                                         {0}};
    struct open_opts oo = {.flags = VDK_OPEN_IGNORE_CID};
    int repair = 0, c;
    while ((c = getopt_long(argc, argv, "hr", opts, NULL)) != -1) {
        if (cli_open_option(c, &oo))
            continue;
        if (c == 'p')
            repair = 1;
        else if (c == 'h')
            return fputs(help, stdout), 0;
        else
            return fputs(help, stderr), 2;
    }
    if (optind != argc - 1)
        return cli_error("expects one DISK (see --help)"), 2;
    const char *path = argv[optind];
    unsigned problems = 0;
    struct open_opts rw = oo;
    if (repair)
        rw.flags |= CLI_OPEN_WRITE;
    if (run(path, &rw, repair, &problems) < 0)
        return 1;
    if (repair && problems) {
        printf("checking again after the repair:\n");
        if (run(path, &oo, 0, &problems) < 0)
            return 1;
    }
    if (problems) {
        printf("%u problem%s found\n", problems, problems == 1 ? "" : "s");
        /* The CLI contract: a failing command says on stderr, in one line,
         * what failed and in which file (the findings are on stdout). */
        cli_error("%s: %u problem%s found", path, problems, problems == 1 ? "" : "s");
    } else
        printf("no problems found\n");
    return problems ? 1 : 0;
}
