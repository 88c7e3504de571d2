/*
 * http.h - the HTTPS transport of the remote store (internal).
 *
 * One rhttp talks to one server (scheme://host[:port]).  It keeps a small
 * pool of kept-alive libcurl handles so that many threads can issue ranged
 * reads at once, verifies TLS against the system CAs, an extra CA file or a
 * pinned certificate thumbprint, carries the SOAP session cookie on every
 * request, retries transient failures with back-off and never waits longer
 * than its timeouts.
 *
 * Every function returns 0 (or a byte count) on success and a negative errno
 * on failure, with a one-line reason in 'err' where one is taken:
 *   -ECONNREFUSED / -EHOSTUNREACH  nothing listens / no route
 *   -ETIMEDOUT                     connect, read or write timeout
 *   -EPERM                         TLS verification failed (unknown CA,
 *                                  thumbprint mismatch, name mismatch)
 *   -ENOENT                        HTTP 404
 *   -EKEYEXPIRED                   HTTP 401: the session is not (or no
 *                                  longer) valid; log in and repeat
 *   -EACCES                        HTTP 403
 *   -ECONNRESET                    connection dropped mid-transfer (after
 *                                  the retries)
 *   -EIO                           any other failure (HTTP 5xx, bad reply)
 */
#ifndef VDK_REMOTE_HTTP_H
#define VDK_REMOTE_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct rhttp;

struct rhttp_opts {
    const char *base;              /* "https://host[:port]" or "http://..." (no path) */
    const char *thumbprint;        /* NULL, or SHA-1 / SHA-256 of the server's leaf
                                      certificate as hex, ':' separators optional,
                                      any case; when set it replaces CA checks */
    const char *cafile;            /* NULL, or a PEM file of extra trusted CAs */
    long connect_timeout_ms;       /* 0: 30000 */
    long read_timeout_ms;          /* no byte for this long fails a request; 0: 60000 */
    long write_timeout_ms;         /* same for uploads; 0: 60000 */
    unsigned retries;              /* transient failures retried this often (0: 3) */
    unsigned pool;                 /* kept-alive handles (0: 4) */
    int log_level;                 /* 0 quiet, 1 errors, 2 requests, 3 + headers */
    void (*log)(const char *line); /* where log lines go (NULL: stderr) */
    long request_timeout_ms;       /* a whole SOAP call or HEAD; 0: no limit */
};

/* A reply held in memory (SOAP, HEAD).  Free with rhttp_reply_free. */
struct rhttp_reply {
    long status; /* HTTP status code, 0 if none arrived */
    char *body;  /* NUL-terminated; NULL for HEAD */
    size_t body_len;
    uint64_t length; /* Content-Length, when has_length */
    int has_length;
    int64_t mtime; /* Last-Modified as seconds since the epoch, 0 if absent */
};

int rhttp_new(const struct rhttp_opts *o, struct rhttp **out, char *err, size_t errlen);
void rhttp_free(struct rhttp *h);

/* The Cookie header value sent with every later request (the vmware_soap_
 * session), or NULL to send none.  The value is copied. */
void rhttp_set_cookie(struct rhttp *h, const char *cookie);
/* The session cookie "name=value" of the last reply that set one ("" if
 * none yet); copied into buf. */
void rhttp_get_cookie(struct rhttp *h, char *buf, size_t len);

/* POST a SOAP envelope to path ("/sdk").  A reply with any HTTP status is
 * returned in *out (SOAP faults come with 500); only transport failures are
 * errors.  Never retried after the request body was sent, as the call may
 * have taken effect; connection failures before it are retried. */
int rhttp_soap(struct rhttp *h, const char *path, const char *action, const char *body,
               struct rhttp_reply *out, char *err, size_t errlen);

/* HEAD path (with its query string); 404 gives -ENOENT; a redirect (how
 * datastores answer for a folder) is returned as a reply, status 3xx. */
int rhttp_head(struct rhttp *h, const char *path, struct rhttp_reply *out, char *err,
               size_t errlen);

/* GET "Range: bytes=off-(off+len-1)" of path into buf.  Returns the bytes
 * read (short only at end of file; 0 past it, including a 416 reply).
 * A server that ignores Range and sends 200 is handled by skipping to off.
 * Dropped connections and 5xx are retried with back-off, resuming where the
 * transfer stopped. */
int64_t rhttp_get_range(struct rhttp *h, const char *path, void *buf, size_t len, uint64_t off,
                        char *err, size_t errlen);

/* Source of an upload: fill buf with up to len bytes at off, return the
 * count (0 at end) or -errno. */
typedef int64_t (*rhttp_source)(void *arg, void *buf, size_t len, uint64_t off);
/* Progress of an upload: bytes sent so far of total. */
typedef void (*rhttp_progress)(void *arg, uint64_t done, uint64_t total);

/* PUT size bytes from src to path (Content-Length set, no chunking, as ESXi
 * wants).  2xx is success; the upload is restarted from 0 on a dropped
 * connection (up to the retries). */
int rhttp_put(struct rhttp *h, const char *path, uint64_t size, rhttp_source src, void *src_arg,
              rhttp_progress prog, void *prog_arg, char *err, size_t errlen);

void rhttp_reply_free(struct rhttp_reply *r);

/* Percent-encode s for a URL path (keeping '/') or, with query != 0, for a
 * query value.  Returns the length, or -ENAMETOOLONG if out is too small. */
int rhttp_escape(const char *s, int query, char *out, size_t outlen);

/* Normalise a thumbprint "AA:bb:..." to lower-case hex without separators;
 * -EINVAL unless it is 40 (SHA-1) or 64 (SHA-256) hex digits. */
int rhttp_thumb_norm(const char *in, char *out, size_t outlen);

#endif
