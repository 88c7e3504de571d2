/* Shared helpers of the vdk command line. */
#ifndef VDK_CLI_H
#define VDK_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "vdk.h"

extern const char *cli_cmd; /* "vdk info" etc., for messages */

/* Print "vdk CMD: message" on stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* How to reach a vSphere server (--server ...); server NULL: local disks. */
struct remote_opts {
    const char *server, *user, *password_file, *thumbprint, *cafile, *datacenter, *config;
    const char *transports;
    int readonly;
};

/* Options every disk-opening subcommand accepts. */
struct open_opts {
    unsigned flags;
    const char *root; /* --root: the folder parents and extents may come from */
    struct remote_opts remote;
};

/* Handle a shared option; returns 1 if it was one. */
int cli_open_option(int opt, struct open_opts *o);
/* Option codes of the remote options (beyond every short option). */
enum {
    OPT_SERVER = 0x200,
    OPT_USER,
    OPT_PWFILE,
    OPT_THUMB,
    OPT_CAFILE,
    OPT_DC,
    OPT_CONFIG,
    OPT_REMOTE_RO,
    OPT_TRANSPORTS
};
#define CLI_REMOTE_LONGOPTS                                                                        \
    {"server", required_argument, NULL, OPT_SERVER}, {"user", required_argument, NULL, OPT_USER},  \
        {"password-file", required_argument, NULL, OPT_PWFILE},                                    \
        {"thumbprint", required_argument, NULL, OPT_THUMB},                                        \
        {"cafile", required_argument, NULL, OPT_CAFILE},                                           \
        {"datacenter", required_argument, NULL, OPT_DC},                                           \
        {"config", required_argument, NULL, OPT_CONFIG},                                           \
        {"read-only-connection", no_argument, NULL, OPT_REMOTE_RO},                                \
    {                                                                                              \
        "transports", required_argument, NULL, OPT_TRANSPORTS                                      \
    }
#define CLI_OPEN_LONGOPTS                                                                          \
    {"ignore-cid", no_argument, NULL, 'C'}, {"single-link", no_argument, NULL, 'L'},               \
        {"root", required_argument, NULL, 'R'}, {"raw-input", no_argument, NULL, 'r'},             \
        CLI_REMOTE_LONGOPTS
#define CLI_OPEN_HELP                                                                              \
    "  --ignore-cid    open even when a parentCID does not match its parent's CID\n"               \
    "  --single-link   open only this link, not its parents\n"                                     \
    "  --root DIR      let extents and parents come from anywhere beneath DIR (default:\n"         \
    "                  the disk's own folder); nothing outside it is ever opened\n"                \
    "  -r, --raw-input DISK is a raw image, not a VMDK\n" CLI_REMOTE_HELP
#define CLI_REMOTE_HELP                                                                            \
    "Remote disks (DISK is then \"[datastore] folder/disk.vmdk\"):\n"                              \
    "  --server URL    ESXi host or vCenter: host[:port] or https://host[:port]\n"                 \
    "  --user NAME     user to log in as\n"                                                        \
    "  --password-file FILE  first line is the password (else $VDK_PASSWORD);\n"                   \
    "                  the password is never taken from the command line\n"                        \
    "  --thumbprint HEX  accept the server certificate with this SHA-1 (as VDDK,\n"                \
    "                  AA:BB:...) or SHA-256 fingerprint instead of a CA\n"                        \
    "  --cafile FILE   also trust the CAs in this PEM file\n"                                      \
    "  --datacenter DC the datacenter holding the datastore (default: the only one)\n"             \
    "  --config FILE   InitEx-style config file (timeouts, log level, cache, and\n"                \
    "                  vdk.server/vdk.user/vdk.passwordFile/vdk.thumbprint)\n"                     \
    "  --read-only-connection  refuse anything that would change the server\n"                     \
    "  --transports LIST  accepted modes, ':'-separated (VDDK style); must include\n"              \
    "                  https, the one vdk offers for remote disks (see vdk transports)\n"

/* Set in open_opts.flags to open the top link for writing. */
#define CLI_OPEN_WRITE (1u << 30)

/* Open a disk (read-only unless CLI_OPEN_WRITE) or print the error; NULL on
 * failure. */
vdk_disk *cli_open(const char *path, const struct open_opts *o);
/* The store name for a new file at 'path', in the store cli_open made for
 * 'disk_path' (its folder, or --root).  Prints the error; -1 on failure. */
int cli_store_name(const char *path, const struct open_opts *o, const char *disk_path, char *out,
                   size_t outlen);

/* own[0..n) followed by the remote options, --help (-h) and --quiet (-q),
 * ending in a zero entry: a getopt_long table (static, reused per call). */
struct option;
struct option *cli_with_remote_opts(const struct option *own, size_t n);
/* Handle a remote option; returns 1 if it was one. */
int cli_remote_option(int opt, struct remote_opts *r);
/* Connect (once per process) or print the error; NULL on failure. */
struct vdk_conn *cli_connect(const struct remote_opts *r);
/* Open "[ds] path" on the server (read-only) or print the error. */
vdk_disk *cli_open_remote(const char *dspath, const struct open_opts *o);
/* Log out, if cli_connect logged in. */
void cli_disconnect(void);

/* Clone src into a new VMDK at path out (its folder is the store), with
 * progress unless quiet; an existing out is refused unless force.  Prints
 * the error; returns the exit status. */
int cli_clone_to(vdk_disk *src, const char *out, const vdk_create_params *p, int force, int quiet);

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
int cmd_transports(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_end_access(int argc, char **argv);
int cmd_vms(int argc, char **argv);
int cmd_upload(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_changed_remote(int argc, char **argv);
int parse_size(const char *s, uint64_t *out);

#endif
