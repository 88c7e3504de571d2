/* Shared helpers of the vdk command line. */
#ifndef VDK_CLI_H
#define VDK_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "vdk.h"

extern const char *cli_cmd; /* "vdk info" etc., for messages */

/* Print "vdk CMD: message" on stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Options every disk-opening subcommand accepts. */
struct open_opts {
    unsigned flags;
    const char *root; /* --root: the folder parents and extents may come from */
};

/* Handle a shared option; returns 1 if it was one. */
int cli_open_option(int opt, struct open_opts *o);
#define CLI_OPEN_LONGOPTS                                                                          \
    {"ignore-cid", no_argument, NULL, 'C'}, {"single-link", no_argument, NULL, 'L'},               \
        {"root", required_argument, NULL, 'R'},                                                    \
    {                                                                                              \
        "raw-input", no_argument, NULL, 'r'                                                        \
    }
#define CLI_OPEN_HELP                                                                              \
    "  --ignore-cid    open even when a parentCID does not match its parent's CID\n"               \
    "  --single-link   open only this link, not its parents\n"                                     \
    "  --root DIR      let extents and parents come from anywhere beneath DIR (default:\n"         \
    "                  the disk's own folder); nothing outside it is ever opened\n"                \
    "  -r, --raw-input DISK is a raw image, not a VMDK\n"

/* Set in open_opts.flags to open the top link for writing. */
#define CLI_OPEN_WRITE (1u << 30)

/* Open a disk (read-only unless CLI_OPEN_WRITE) or print the error; NULL on
 * failure. */
vdk_disk *cli_open(const char *path, const struct open_opts *o);
/* The store name for a new file at 'path', in the store cli_open made for
 * 'disk_path' (its folder, or --root).  Prints the error; -1 on failure. */
int cli_store_name(const char *path, const struct open_opts *o, const char *disk_path, char *out,
                   size_t outlen);

/* Close what cli_open opened. */
int cli_close(vdk_disk *d);

/* Print a JSON string literal (with quotes). */
void json_str(FILE *f, const char *s);

/* Print the disk's last data-path error (or the status's text); returns 1. */
int cli_disk_error(vdk_disk *d, int status);

/* Progress line on stderr when it is a terminal. */
struct progress {
    int on;
    uint64_t total;
    int last_pct;
};
void progress_init(struct progress *p, uint64_t total, int enabled);
void progress_update(struct progress *p, uint64_t done);
void progress_done(struct progress *p);

int cmd_info(int argc, char **argv);
int cmd_meta(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_child(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_changed(int argc, char **argv);
int cmd_space(int argc, char **argv);
int cmd_grow(int argc, char **argv);
int cmd_rename(int argc, char **argv);
int cmd_shrink(int argc, char **argv);
int cmd_defragment(int argc, char **argv);
int parse_size(const char *s, uint64_t *out);

#endif
