/*
 * http.c - the HTTPS transport of the remote store.
 *
 * A pool of libcurl easy handles, each keeping its connection to the one
 * server alive between requests.  TLS trust is decided in an OpenSSL
 * certificate-verify callback installed from CURLOPT_SSL_CTX_FUNCTION, which
 * also remembers the leaf's thumbprint so that failures can name it.
 *
 * Extra CAs (opts.cafile) are read once in rhttp_new and added to each new
 * connection's store in that callback; curl fills the same store with the
 * system bundle (after the callback, in 7.88), so both are trusted, where
 * CURLOPT_CAINFO would have replaced the system bundle.
 *
 * Requests are HTTP/1.1 (what ESXi and vCenter speak; one connection per
 * handle keeps the pool's meaning simple).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http.h"

#define SOAP_MAX         ((size_t)64 << 20)
#define BACKOFF_FIRST_MS 100L
#define BACKOFF_MAX_MS   2000L
#define POOL_MAX         64u
#define COOKIE_MAX       4096
#define DIGEST_MAX       32               /* SHA-256 */
#define THUMB_TEXT       (DIGEST_MAX * 3) /* "AA:" per byte, the last ':' is the NUL */
#define WHY_MAX          512

/* One pooled handle and what the certificate check of its last handshake
 * saw (reset before every request; a reused connection leaves it clear). */
struct conn {
    struct rhttp *h;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    int pin_bad;           /* the leaf did not match the pin */
    int vfy_err;           /* X509_V_ERR_* of a failed CA check */
    char seen[THUMB_TEXT]; /* the leaf's thumbprint: the pin's hash, else SHA-1 */
};

struct rhttp {
    char *base;
    const char *hostport; /* inside base, past the scheme */
    unsigned char pin[DIGEST_MAX];
    unsigned pin_len; /* 0 (no pin), 20 (SHA-1) or 32 (SHA-256) */
    char pin_text[THUMB_TEXT];
    STACK_OF(X509) * cas; /* from opts.cafile, or NULL */
    long connect_ms, read_ms, write_ms, request_ms;
    unsigned retries;
    int log_level;
    void (*log)(const char *line);

    pthread_mutex_t lock; /* the idle stack and both cookies */
    pthread_cond_t idle_cv;
    struct conn *conns;
    unsigned nconns;
    unsigned *idle;
    unsigned nidle;
    char *cookie_out; /* sent with every request */
    char *cookie_in;  /* the last one a reply set */
};

/* One call (all its attempts): what the callbacks fill in. */
struct req {
    struct rhttp *h;
    struct conn *c;
    const char *method;
    const char *path;
    char *url;
    char range[48]; /* GET: "first-last" */
    char note[64];  /* after the path in the log line */
    long status;
    long stall_ms, moved_ms; /* the stall watchdog */
    curl_off_t moved;
    int armed, stalled;
    char *set_cookie;
    int has_cr;
    uint64_t cr_start;
    /* GET */
    unsigned char *buf;
    size_t len, got;
    uint64_t off, want, skip;
    int checked, copy, full, bad_start;
    /* HEAD */
    uint64_t length;
    int has_length;
    int64_t mtime;
    /* SOAP */
    const char *action, *post;
    char *body;
    size_t body_len, body_cap;
    int too_big;
    /* PUT */
    uint64_t size, sent, shown;
    rhttp_source src;
    void *src_arg;
    rhttp_progress prog;
    void *prog_arg;
    int src_err, src_short;
};

typedef int (*attempt_fn)(struct req *r, int *again, char *why, size_t wl);

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- small helpers ---------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!buf || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void logf_h(const struct rhttp *h, const char *fmt,
                                                         ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (h->log)
        h->log(line);
    else
        fprintf(stderr, "%s\n", line);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void backoff(unsigned n)
{
    long ms = BACKOFF_FIRST_MS;
    while (n-- && ms < BACKOFF_MAX_MS)
        ms *= 2;
    sleep_ms(ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS);
}

/* "AA:BB:..." of n digest bytes. */
static void thumb_text(const unsigned char *d, unsigned n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned i = 0; i < n; i++) {
        out[3 * i] = hex[d[i] >> 4];
        out[3 * i + 1] = hex[d[i] & 15];
        out[3 * i + 2] = i + 1 < n ? ':' : '\0';
    }
    if (!n)
        out[0] = '\0';
}

static const char *hash_name(unsigned n)
{
    return n == 20 ? "SHA-1" : "SHA-256";
}

/* ---- public helpers --------------------------------------------------- */

int rhttp_thumb_norm(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    if (!in)
        return -EINVAL;
    for (const char *p = in; *p; p++) {
        if (*p == ':')
            continue;
        if (!strchr("0123456789abcdefABCDEF", *p))
            return -EINVAL;
        if (n + 1 < outlen)
            out[n] = (char)(*p | 0x20); /* hex digits: | 0x20 is tolower */
        n++;
    }
    if ((n != 40 && n != 64) || n + 1 > outlen)
        return -EINVAL;
    out[n] = '\0';
    return 0;
}

int rhttp_escape(const char *s, int query, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                   (*p >= '0' && *p <= '9') || strchr("-._~", *p) || (*p == '/' && !query);
        if (n + (keep ? 1 : 3) >= outlen)
            return -ENAMETOOLONG;
        if (keep) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (n >= outlen)
        return -ENAMETOOLONG;
    out[n] = '\0';
    return (int)n;
}

void rhttp_reply_free(struct rhttp_reply *r)
{
    if (!r)
        return;
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ---- cookies ---------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void rhttp_set_cookie(struct rhttp *h, const char *cookie)
{
    char *copy = dup_or_null(cookie);
    pthread_mutex_lock(&h->lock);
    free(h->cookie_out);
    h->cookie_out = copy;
    pthread_mutex_unlock(&h->lock);
}

void rhttp_get_cookie(struct rhttp *h, char *buf, size_t len)
{
    if (!len)
        return;
    pthread_mutex_lock(&h->lock);
    snprintf(buf, len, "%s", h->cookie_in ? h->cookie_in : "");
    pthread_mutex_unlock(&h->lock);
}

/* Hand a cookie the reply set to the rhttp, replacing the older one. */
static void keep_cookie(struct req *r)
{
    /* Only the SOAP session's cookie counts: a datastore reply that sets
     * some cookie of its own (load balancers do) must not replace it. */
    if (!r->set_cookie || strcmp(r->method, "POST"))
        return;
    pthread_mutex_lock(&r->h->lock);
    free(r->h->cookie_in);
    r->h->cookie_in = r->set_cookie;
    pthread_mutex_unlock(&r->h->lock);
    r->set_cookie = NULL;
}

/* ---- TLS -------------------------------------------------------------- */

static int leaf_digest(X509 *leaf, unsigned want, unsigned char *d)
{
    unsigned n = 0;
    const EVP_MD *md = want == 20 ? EVP_sha1() : EVP_sha256();
    if (!leaf || !X509_digest(leaf, md, d, &n) || n != want)
        return 0;
    return 1;
}

/* Replaces OpenSSL's chain verification: with a pin only the leaf's digest
 * counts; without one the normal check runs, but the leaf's SHA-1 is noted
 * first so that an untrusted server can be named by its thumbprint. */
static int verify_cb(X509_STORE_CTX *sctx, void *arg)
{
    struct conn *c = arg;
    const struct rhttp *h = c->h;
    X509 *leaf = X509_STORE_CTX_get0_cert(sctx);
    unsigned char d[DIGEST_MAX];
    unsigned n = h->pin_len ? h->pin_len : 20;

    if (leaf_digest(leaf, n, d))
        thumb_text(d, n, c->seen);
    if (h->pin_len) {
        if (c->seen[0] && CRYPTO_memcmp(d, h->pin, n) == 0)
            return 1;
        c->pin_bad = 1;
        X509_STORE_CTX_set_error(sctx, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    if (X509_verify_cert(sctx) > 0)
        return 1;
    c->vfy_err = X509_STORE_CTX_get_error(sctx);
    if (!c->vfy_err)
        c->vfy_err = X509_V_ERR_UNSPECIFIED;
    return 0;
}

/* Called by curl for every new connection's SSL_CTX, after it set up its
 * own store and verify mode. */
static CURLcode ssl_ctx_cb(CURL *e, void *ctx, void *arg)
{
    struct conn *c = arg;
    SSL_CTX *sc = ctx;
    (void)e;
    if (c->h->pin_len) {
        /* curl set SSL_VERIFY_NONE (peer verification is off), under which a
         * failed callback would not stop the handshake. */
        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
    } else if (c->h->cas) {
        X509_STORE *st = SSL_CTX_get_cert_store(sc);
        for (int i = 0; i < sk_X509_num(c->h->cas); i++)
            X509_STORE_add_cert(st, sk_X509_value(c->h->cas, i));
    }
    SSL_CTX_set_cert_verify_callback(sc, verify_cb, c);
    return CURLE_OK;
}

static int tls_error(struct req *r, char *why, size_t wl)
{
    const struct conn *c = r->c;
    const struct rhttp *h = r->h;
    if (c->pin_bad)
        say(why, wl, "certificate thumbprint mismatch: server presents %s %s, expected %s",
            hash_name(h->pin_len), c->seen[0] ? c->seen : "(unreadable)", h->pin_text);
    else if (c->vfy_err && c->seen[0])
        say(why, wl,
            "the certificate of %s is not trusted (%s); if this is the right server, "
            "pass --thumbprint %s (its SHA-1 thumbprint)",
            h->hostport, X509_verify_cert_error_string(c->vfy_err), c->seen);
    else
        say(why, wl, "TLS verification of %s failed: %s", h->hostport,
            c->errbuf[0] ? c->errbuf : "certificate rejected");
    return -EPERM;
}

/* ---- callbacks -------------------------------------------------------- */

/* The value of header 'name' in a raw header line, trimmed; NULL if the
 * line is another header. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    if (len < nl || strncasecmp(line, name, nl) != 0)
        return NULL;
    line += nl;
    len -= nl;
    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    while (len && strchr(" \t\r\n", line[len - 1]))
        len--;
    *vlen = len;
    return line;
}

static void take_set_cookie(struct req *r, const char *v, size_t vl)
{
    const char *semi = memchr(v, ';', vl);
    size_t n = semi ? (size_t)(semi - v) : vl;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (!n || n > COOKIE_MAX)
        return;
    char *s = strndup(v, n);
    if (!s)
        return;
    free(r->set_cookie);
    r->set_cookie = s;
}

/* "bytes 100-199/1000": only the start matters, the length comes from
 * what actually arrives. */
static void take_content_range(struct req *r, const char *v, size_t vl)
{
    char tmp[64];
    char *end;
    if (vl < 6 || vl >= sizeof tmp || strncasecmp(v, "bytes ", 6) != 0)
        return;
    memcpy(tmp, v + 6, vl - 6);
    tmp[vl - 6] = '\0';
    errno = 0;
    unsigned long long start = strtoull(tmp, &end, 10);
    if (errno || end == tmp || *end != '-')
        return;
    r->cr_start = start;
    r->has_cr = 1;
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct req *r = arg;
    size_t len = size * n, vl;
    const char *v;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0)
        r->has_cr = 0; /* a new reply (e.g. after 100 Continue) */
    else if ((v = header_value(data, len, "Set-Cookie:", &vl)))
        take_set_cookie(r, v, vl);
    else if ((v = header_value(data, len, "Content-Range:", &vl)))
        take_content_range(r, v, vl);
    return len;
}

/* Decide, at the first body byte, whether this reply's body is the data. */
static int get_check(struct req *r)
{
    long st = 0;
    r->checked = 1;
    curl_easy_getinfo(r->c->curl, CURLINFO_RESPONSE_CODE, &st);
    if (st == 206) {
        if (!r->has_cr || r->cr_start != r->want) {
            r->bad_start = 1;
            return 0;
        }
        r->copy = 1;
        r->skip = 0;
    } else if (st == 200) {
        r->copy = 1;
        r->skip = r->want; /* Range ignored: the body starts at byte 0 */
    }
    return 1;
}

static size_t get_write(char *data, size_t size, size_t n, void *arg)
{
    struct req *r = arg;
    size_t len = size * n;
    if (!r->checked && !get_check(r))
        return 0;
    if (!r->copy)
        return len; /* an error page */
    size_t s = r->skip < len ? (size_t)r->skip : len;
    r->skip -= s;
    size_t room = r->len - r->got, take = len - s < room ? len - s : room;
    memcpy(r->buf + r->got, data + s, take);
    r->got += take;
    if (s + take < len) {
        r->full = 1; /* more than asked for: stop the transfer here */
        return 0;
    }
    return len;
}

static size_t body_write(char *data, size_t size, size_t n, void *arg)
{
    struct req *r = arg;
    size_t len = size * n;
    if (len > SOAP_MAX - r->body_len) {
        r->too_big = 1;
        return 0;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 16384;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return 0;
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

static size_t discard_write(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

static size_t put_read(char *buf, size_t size, size_t n, void *arg)
{
    struct req *r = arg;
    size_t want = size * n;
    if (r->size - r->sent < want)
        want = (size_t)(r->size - r->sent);
    if (!want)
        return 0;
    int64_t got = r->src(r->src_arg, buf, want, r->sent);
    if (got < 0) {
        r->src_err = (int)got;
        return CURL_READFUNC_ABORT;
    }
    if (got == 0 || (uint64_t)got > want) {
        /* The server waits for Content-Length bytes: stop rather than stall. */
        r->src_short = 1;
        return CURL_READFUNC_ABORT;
    }
    r->sent += (uint64_t)got;
    return (size_t)got;
}

/* curl rewinds the body when it resends on a fresh connection. */
static int put_seek(void *arg, curl_off_t offset, int origin)
{
    struct req *r = arg;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->size)
        return CURL_SEEKFUNC_CANTSEEK;
    r->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* libcurl's low-speed check averages over its last ~5 seconds, so after a
 * burst a stall would only be noticed up to 5 s late; this watchdog, run
 * from the progress callback (about once a second even when idle), fails
 * the transfer once nothing moved for stall_ms.  It starts when the
 * connection is ready, as connecting has its own timeout. */
static int stalled(struct req *r, curl_off_t moved)
{
    long t = now_ms();
    if (!r->armed) {
        curl_off_t ready_us = 0;
        curl_easy_getinfo(r->c->curl, CURLINFO_PRETRANSFER_TIME_T, &ready_us);
        if (!ready_us)
            return 0;
        r->armed = 1;
        r->moved = moved;
        r->moved_ms = t;
    }
    if (moved != r->moved) {
        r->moved = moved;
        r->moved_ms = t;
    } else if (t - r->moved_ms >= r->stall_ms) {
        r->stalled = 1;
    }
    return r->stalled;
}

static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct req *r = arg;
    (void)dltotal;
    (void)ultotal;
    if (r->prog && ulnow >= 0 && (uint64_t)ulnow != r->shown) {
        r->shown = (uint64_t)ulnow;
        r->prog(r->prog_arg, r->shown, r->size);
    }
    return stalled(r, dlnow + ulnow);
}

/* Verbose curl output, minus the session secret. */
static void debug_line(const struct rhttp *h, char mark, const char *s, size_t n)
{
    static const char *const secret[] = {
        "cookie:", "set-cookie:", "authorization:", "proxy-authorization:"};
    int w = n > 900 ? 900 : (int)n;
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++) {
        size_t sl = strlen(secret[i]);
        if (n >= sl && strncasecmp(s, secret[i], sl) == 0) {
            logf_h(h, "http: %c %.*s <hidden>", mark, (int)sl, s);
            return;
        }
    }
    logf_h(h, "http: %c %.*s", mark, w, s);
}

static int debug_cb(CURL *e, curl_infotype type, char *data, size_t size, void *arg)
{
    const struct rhttp *h = arg;
    char mark;
    (void)e;
    if (type == CURLINFO_TEXT)
        mark = '*';
    else if (type == CURLINFO_HEADER_IN)
        mark = '<';
    else if (type == CURLINFO_HEADER_OUT)
        mark = '>';
    else
        return 0;
    while (size) {
        const char *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t)(nl - data) + 1 : size, l = n;
        while (l && (data[l - 1] == '\n' || data[l - 1] == '\r'))
            l--;
        if (l)
            debug_line(h, mark, data, l);
        data += n;
        size -= n;
    }
    return 0;
}

/* ---- the pool --------------------------------------------------------- */

static struct conn *pool_get(struct rhttp *h)
{
    pthread_mutex_lock(&h->lock);
    while (!h->nidle)
        pthread_cond_wait(&h->idle_cv, &h->lock);
    struct conn *c = &h->conns[h->idle[--h->nidle]];
    pthread_mutex_unlock(&h->lock);
    return c;
}

static void pool_put(struct rhttp *h, struct conn *c)
{
    pthread_mutex_lock(&h->lock);
    h->idle[h->nidle++] = (unsigned)(c - h->conns);
    pthread_cond_signal(&h->idle_cv);
    pthread_mutex_unlock(&h->lock);
}

/* ---- one request ------------------------------------------------------ */

static void set_tls(struct req *r)
{
    CURL *e = r->c->curl;
    if (r->h->pin_len) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (r->h->cas) {
        /* A cached store would be shared by later connections, which add
         * the extra CAs again; keep each connection's store its own. */
        curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L);
    }
    curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, r->c);
}

/* Options every request has; curl_easy_reset keeps the live connection,
 * the TLS session cache and the DNS cache. */
static void set_common(struct req *r, long stall_ms)
{
    struct rhttp *h = r->h;
    CURL *e = r->c->curl;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
    /* Less than a byte a second for the whole window is a stall. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (stall_ms + 999) / 1000);
    r->stall_ms = stall_ms;
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->c->errbuf);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vdk");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_write);
    pthread_mutex_lock(&h->lock);
    curl_easy_setopt(e, CURLOPT_COOKIE, h->cookie_out); /* curl copies it */
    pthread_mutex_unlock(&h->lock);
    set_tls(r);
    if (h->log_level >= 3) {
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
        curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, debug_cb);
        curl_easy_setopt(e, CURLOPT_DEBUGDATA, h);
    }
}

static void log_request(const struct req *r, CURLcode cc, long ms)
{
    const char *sp = r->note[0] ? " " : "";
    if (cc == CURLE_OK || r->full)
        logf_h(r->h, "http: %s %s%s%s -> %ld (%ld ms)", r->method, r->path, sp, r->note, r->status,
               ms);
    else if (r->stalled)
        logf_h(r->h, "http: %s %s%s%s -> %ld, stalled (%ld ms)", r->method, r->path, sp, r->note,
               r->status, ms);
    else
        logf_h(r->h, "http: %s %s%s%s -> %ld, %s (%ld ms)", r->method, r->path, sp, r->note,
               r->status, r->c->errbuf[0] ? r->c->errbuf : curl_easy_strerror(cc), ms);
}

static CURLcode perform(struct req *r)
{
    struct conn *c = r->c;
    c->errbuf[0] = '\0';
    c->pin_bad = 0;
    c->vfy_err = 0;
    c->seen[0] = '\0';
    r->status = 0;
    r->armed = r->stalled = 0;
    long t0 = now_ms();
    CURLcode cc = curl_easy_perform(c->curl);
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
    keep_cookie(r);
    if (r->h->log_level >= 2)
        log_request(r, cc, now_ms() - t0);
    return cc;
}

static int connect_error(struct req *r, int *again, char *why, size_t wl)
{
    long os = 0;
    curl_easy_getinfo(r->c->curl, CURLINFO_OS_ERRNO, &os);
    if (os == ECONNREFUSED) {
        say(why, wl, "connection refused by %s (is the server up, the port right?)",
            r->h->hostport);
        return -ECONNREFUSED;
    }
    if (os == EHOSTUNREACH || os == ENETUNREACH) {
        say(why, wl, "no route to %s", r->h->hostport);
        return -EHOSTUNREACH;
    }
    if (os == ETIMEDOUT) {
        *again = 1;
        say(why, wl, "connecting to %s timed out", r->h->hostport);
        return -ETIMEDOUT;
    }
    say(why, wl, "cannot connect to %s: %s", r->h->hostport, r->c->errbuf);
    return -EIO;
}

static int timeout_error(struct req *r, int *again, char *why, size_t wl)
{
    curl_off_t ready_us = 0;
    *again = 1;
    /* Pre-transfer is reached once connected (TLS included) or reused. */
    curl_easy_getinfo(r->c->curl, CURLINFO_PRETRANSFER_TIME_T, &ready_us);
    curl_off_t total_us = 0;
    curl_easy_getinfo(r->c->curl, CURLINFO_TOTAL_TIME_T, &total_us);
    if (!ready_us)
        say(why, wl, "connecting to %s timed out after %ld ms", r->h->hostport, r->h->connect_ms);
    /* curl's clock for the whole call can read a little under the limit
     * that stopped it. */
    else if (r->h->request_ms && total_us / 100 >= r->h->request_ms * 9)
        say(why, wl, "%s took longer than %ld ms: timeout (vixDiskLib.nfc.RequestTimeoutMs)",
            r->h->hostport, r->h->request_ms);
    else
        say(why, wl, "no progress from %s for %ld ms", r->h->hostport, r->stall_ms);
    return -ETIMEDOUT;
}

/* The errno for a failed transfer; *again if another attempt may work. */
static int transport_error(struct req *r, CURLcode cc, int *again, char *why, size_t wl)
{
    const char *msg = r->c->errbuf[0] ? r->c->errbuf : curl_easy_strerror(cc);
    *again = 0;
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        say(why, wl, "cannot resolve %s", r->h->hostport);
        return -EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return connect_error(r, again, why, wl);
    case CURLE_OPERATION_TIMEDOUT:
        return timeout_error(r, again, why, wl);
    case CURLE_ABORTED_BY_CALLBACK:
        if (r->stalled)
            return timeout_error(r, again, why, wl);
        say(why, wl, "%s", msg);
        return -EIO;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
        *again = 1;
        say(why, wl, "connection dropped (%s)", msg);
        return -ECONNRESET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return tls_error(r, why, wl);
    case CURLE_SSL_CONNECT_ERROR:
        if (r->c->pin_bad || r->c->vfy_err)
            return tls_error(r, why, wl);
        say(why, wl, "TLS handshake with %s failed: %s", r->h->hostport, msg);
        return -EIO;
    case CURLE_OUT_OF_MEMORY:
        say(why, wl, "out of memory");
        return -ENOMEM;
    default:
        say(why, wl, "%s", msg);
        return -EIO;
    }
}

static int status_error(long st, int *again, char *why, size_t wl)
{
    *again = 0;
    say(why, wl, "HTTP %ld", st);
    if (st == 404)
        return -ENOENT;
    if (st == 401)
        return -EKEYEXPIRED;
    if (st == 403)
        return -EACCES;
    if (st == 502 || st == 503 || st == 504)
        *again = 1;
    return -EIO;
}

/* ---- the calls -------------------------------------------------------- */

static int req_init(struct req *r, struct rhttp *h, const char *method, const char *path)
{
    memset(r, 0, sizeof *r);
    r->h = h;
    r->method = method;
    r->path = path;
    size_t bl = strlen(h->base), pl = strlen(path);
    r->url = malloc(bl + pl + 2);
    if (!r->url)
        return -ENOMEM;
    memcpy(r->url, h->base, bl);
    if (path[0] != '/')
        r->url[bl++] = '/';
    memcpy(r->url + bl, path, pl + 1);
    return 0;
}

static void req_done(struct req *r)
{
    free(r->url);
    free(r->set_cookie);
    free(r->body);
}

static void fail(struct req *r, const char *why, unsigned retried, char *err, size_t errlen)
{
    char msg[1024];
    if (retried)
        snprintf(msg, sizeof msg, "%s %s: %s (%u %s)", r->method, r->path, why, retried,
                 retried == 1 ? "retry" : "retries");
    else
        snprintf(msg, sizeof msg, "%s %s: %s", r->method, r->path, why);
    say(err, errlen, "%s", msg);
    /* Callers report the failures that matter (a 404 while probing for a
     * file is no error), so they are only logged with the requests. */
    if (r->h->log_level >= 2)
        logf_h(r->h, "http: %s", msg);
}

/* Attempts of one call, with back-off between the transient failures. */
static int run(struct req *r, attempt_fn fn, char *err, size_t errlen)
{
    char why[WHY_MAX];
    unsigned n = 0;
    int rc, again;
    for (;;) {
        again = 0;
        why[0] = '\0';
        r->c = pool_get(r->h);
        rc = fn(r, &again, why, sizeof why);
        pool_put(r->h, r->c);
        r->c = NULL;
        if (rc >= 0 || !again || n >= r->h->retries)
            break;
        backoff(n++);
    }
    if (rc < 0)
        fail(r, why, n, err, errlen);
    return rc;
}

static int get_outcome(struct req *r, CURLcode cc, int *again, char *why, size_t wl)
{
    if (r->bad_start) {
        if (r->has_cr)
            say(why, wl, "server sent bytes from %" PRIu64 ", asked for %" PRIu64, r->cr_start,
                r->want);
        else
            say(why, wl, "206 reply without a Content-Range");
        return -EIO;
    }
    if (cc != CURLE_OK && !r->full) {
        int rc = transport_error(r, cc, again, why, wl);
        if (rc == -ECONNRESET)
            say(why, wl, "connection dropped after %zu of %zu bytes", r->got, r->len);
        return rc;
    }
    if (r->status == 200 || r->status == 206 || r->status == 416)
        return 0;
    return status_error(r->status, again, why, wl);
}

static int get_attempt(struct req *r, int *again, char *why, size_t wl)
{
    CURL *e = r->c->curl;
    r->want = r->off + r->got;
    r->checked = r->copy = r->full = r->bad_start = 0;
    r->skip = 0;
    snprintf(r->range, sizeof r->range, "%" PRIu64 "-%" PRIu64, r->want, r->off + r->len - 1);
    snprintf(r->note, sizeof r->note, "bytes=%s", r->range);
    set_common(r, r->h->read_ms);
    curl_easy_setopt(e, CURLOPT_RANGE, r->range);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, get_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    return get_outcome(r, perform(r), again, why, wl);
}

int64_t rhttp_get_range(struct rhttp *h, const char *path, void *buf, size_t len, uint64_t off,
                        char *err, size_t errlen)
{
    struct req r;
    if (!len)
        return 0;
    if (len > INT64_MAX || off > UINT64_MAX - len) {
        say(err, errlen, "GET %s: range out of bounds", path);
        return -EINVAL;
    }
    int rc = req_init(&r, h, "GET", path);
    if (rc == 0) {
        r.buf = buf;
        r.len = len;
        r.off = off;
        rc = run(&r, get_attempt, err, errlen);
    } else {
        say(err, errlen, "GET %s: out of memory", path);
    }
    int64_t got = rc < 0 ? rc : (int64_t)r.got;
    req_done(&r);
    return got;
}

static int head_attempt(struct req *r, int *again, char *why, size_t wl)
{
    set_common(r, r->h->read_ms);
    curl_easy_setopt(r->c->curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(r->c->curl, CURLOPT_FILETIME, 1L);
    /* A server that trickles bytes passes the stall check: bound the call. */
    curl_easy_setopt(r->c->curl, CURLOPT_TIMEOUT_MS, r->h->request_ms);
    CURLcode cc = perform(r);
    if (cc != CURLE_OK)
        return transport_error(r, cc, again, why, wl);
    if (r->status >= 300 && r->status < 400)
        return 0;
    if (r->status < 200 || r->status > 299)
        return status_error(r->status, again, why, wl);
    curl_off_t cl = -1, ft = -1;
    curl_easy_getinfo(r->c->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    curl_easy_getinfo(r->c->curl, CURLINFO_FILETIME_T, &ft);
    r->length = cl >= 0 ? (uint64_t)cl : 0;
    r->has_length = cl >= 0;
    r->mtime = ft > 0 ? (int64_t)ft : 0;
    return 0;
}

int rhttp_head(struct rhttp *h, const char *path, struct rhttp_reply *out, char *err, size_t errlen)
{
    struct req r;
    memset(out, 0, sizeof *out);
    int rc = req_init(&r, h, "HEAD", path);
    if (rc == 0)
        rc = run(&r, head_attempt, err, errlen);
    else
        say(err, errlen, "HEAD %s: out of memory", path);
    out->status = r.status;
    if (rc == 0) {
        out->length = r.length;
        out->has_length = r.has_length;
        out->mtime = r.mtime;
    }
    req_done(&r);
    return rc;
}

/* The SOAP request headers; the empty Expect: stops curl from waiting for
 * a 100 Continue before bodies over 1 KiB. */
static struct curl_slist *append_headers(const char *action)
{
    static const char *const fixed[] = {"Content-Type: text/xml; charset=utf-8", "Expect:"};
    struct curl_slist *hd = curl_slist_append(NULL, action), *t;
    for (size_t i = 0; hd && i < sizeof fixed / sizeof fixed[0]; i++) {
        t = curl_slist_append(hd, fixed[i]);
        if (!t)
            curl_slist_free_all(hd);
        hd = t;
    }
    return hd;
}

static int soap_attempt(struct req *r, int *again, char *why, size_t wl)
{
    CURL *e = r->c->curl;
    struct curl_slist *hd;
    char *action = malloc(strlen(r->action) + sizeof "SOAPAction: ");
    if (!action) {
        say(why, wl, "out of memory");
        return -ENOMEM;
    }
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    r->too_big = 0;
    strcpy(action, "SOAPAction: ");
    strcat(action, r->action);
    hd = append_headers(action);
    free(action);
    if (!hd) {
        say(why, wl, "out of memory");
        return -ENOMEM;
    }
    set_common(r, r->h->read_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->h->request_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    CURLcode cc = perform(r);
    curl_slist_free_all(hd);
    if (r->too_big) {
        say(why, wl, "reply too large (over %zu MiB)", SOAP_MAX >> 20);
        return -EIO;
    }
    if (cc == CURLE_OK)
        return 0;
    int rc = transport_error(r, cc, again, why, wl);
    curl_off_t up = 0;
    curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up);
    if (up > 0)
        *again = 0; /* the server may have acted on it */
    return rc;
}

int rhttp_soap(struct rhttp *h, const char *path, const char *action, const char *body,
               struct rhttp_reply *out, char *err, size_t errlen)
{
    struct req r;
    memset(out, 0, sizeof *out);
    int rc = req_init(&r, h, "POST", path);
    if (rc < 0) {
        say(err, errlen, "POST %s: out of memory", path);
        req_done(&r);
        return rc;
    }
    r.action = action ? action : "";
    r.post = body;
    r.len = strlen(body);
    rc = run(&r, soap_attempt, err, errlen);
    out->status = r.status;
    if (rc == 0) {
        out->body = r.body ? r.body : strdup("");
        out->body_len = r.body_len;
        r.body = NULL;
        if (!out->body) {
            say(err, errlen, "POST %s: out of memory", path);
            rc = -ENOMEM;
        }
    }
    req_done(&r);
    return rc;
}

static int put_outcome(struct req *r, CURLcode cc, int *again, char *why, size_t wl)
{
    if (r->src_err) {
        say(why, wl, "reading the data to upload failed at byte %" PRIu64 " (%s)", r->sent,
            strerror(-r->src_err));
        return r->src_err;
    }
    if (r->src_short) {
        say(why, wl, "the data to upload ended at byte %" PRIu64 " of %" PRIu64, r->sent, r->size);
        return -EIO;
    }
    if (cc != CURLE_OK) {
        int rc = transport_error(r, cc, again, why, wl);
        if (rc == -ECONNRESET)
            say(why, wl, "connection dropped after %" PRIu64 " of %" PRIu64 " bytes sent", r->sent,
                r->size);
        return rc;
    }
    if (r->status >= 200 && r->status <= 299)
        return 0;
    return status_error(r->status, again, why, wl);
}

static int put_attempt(struct req *r, int *again, char *why, size_t wl)
{
    CURL *e = r->c->curl;
    struct curl_slist *hd = curl_slist_append(NULL, "Expect:");
    if (!hd) {
        say(why, wl, "out of memory");
        return -ENOMEM;
    }
    r->sent = r->shown = 0;
    r->src_err = r->src_short = 0;
    set_common(r, r->h->write_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->size);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, put_read);
    curl_easy_setopt(e, CURLOPT_READDATA, r);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, put_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
    CURLcode cc = perform(r);
    curl_slist_free_all(hd);
    return put_outcome(r, cc, again, why, wl);
}

int rhttp_put(struct rhttp *h, const char *path, uint64_t size, rhttp_source src, void *src_arg,
              rhttp_progress prog, void *prog_arg, char *err, size_t errlen)
{
    struct req r;
    int rc = req_init(&r, h, "PUT", path);
    if (rc == 0) {
        r.size = size;
        r.src = src;
        r.src_arg = src_arg;
        r.prog = prog;
        r.prog_arg = prog_arg;
        snprintf(r.note, sizeof r.note, "%" PRIu64 " bytes", size);
        rc = run(&r, put_attempt, err, errlen);
    } else {
        say(err, errlen, "PUT %s: out of memory", path);
    }
    req_done(&r);
    return rc;
}

/* ---- setup ------------------------------------------------------------ */

/* "https://host[:port]", a trailing '/' allowed; hostport points past the
 * scheme. */
static int check_base(struct rhttp *h, const char *base, char *err, size_t errlen)
{
    size_t skip = strncasecmp(base, "https://", 8) == 0  ? 8
                  : strncasecmp(base, "http://", 7) == 0 ? 7
                                                         : 0;
    size_t n = strlen(base);
    if (n > skip && base[n - 1] == '/')
        n--;
    if (!skip || n == skip || memchr(base + skip, '/', n - skip)) {
        say(err, errlen, "bad server address \"%s\": want https://host[:port]", base);
        return -EINVAL;
    }
    h->base = strndup(base, n);
    if (!h->base)
        return -ENOMEM;
    h->hostport = h->base + skip;
    return 0;
}

static int set_pin(struct rhttp *h, const char *thumb, char *err, size_t errlen)
{
    char hex[65];
    if (rhttp_thumb_norm(thumb, hex, sizeof hex) < 0) {
        say(err, errlen, "bad thumbprint \"%s\": want 40 (SHA-1) or 64 (SHA-256) hex digits",
            thumb);
        return -EINVAL;
    }
    h->pin_len = (unsigned)strlen(hex) / 2;
    for (unsigned i = 0; i < h->pin_len; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        h->pin[i] = (unsigned char)v;
    }
    thumb_text(h->pin, h->pin_len, h->pin_text);
    return 0;
}

static int load_cas(struct rhttp *h, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    X509 *x;
    if (!f) {
        int e = errno;
        say(err, errlen, "cannot open CA file %s: %s", file, strerror(e));
        return -e;
    }
    h->cas = sk_X509_new_null();
    while (h->cas && (x = PEM_read_X509(f, NULL, NULL, NULL)))
        if (!sk_X509_push(h->cas, x))
            X509_free(x);
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    fclose(f);
    if (!h->cas)
        return -ENOMEM;
    if (sk_X509_num(h->cas) == 0) {
        say(err, errlen, "CA file %s holds no PEM certificate", file);
        return -EINVAL;
    }
    return 0;
}

static int make_pool(struct rhttp *h, unsigned n, char *err, size_t errlen)
{
    h->conns = calloc(n, sizeof *h->conns);
    h->idle = calloc(n, sizeof *h->idle);
    if (!h->conns || !h->idle)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        h->conns[i].h = h;
        h->conns[i].curl = curl_easy_init();
        if (!h->conns[i].curl)
            return -ENOMEM;
        h->nconns++;
        h->idle[h->nidle++] = i;
    }
    /* The whole TLS policy lives in the SSL_CTX callback; a curl built on
     * another TLS library would silently skip it. */
    if (curl_easy_setopt(h->conns[0].curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb) != CURLE_OK) {
        say(err, errlen, "libcurl is not built with OpenSSL (%s)", curl_version());
        return -ENOTSUP;
    }
    return 0;
}

static int setup(struct rhttp *h, const struct rhttp_opts *o, char *err, size_t errlen)
{
    int rc = check_base(h, o->base ? o->base : "", err, errlen);
    if (rc == 0 && o->thumbprint)
        rc = set_pin(h, o->thumbprint, err, errlen);
    if (rc == 0 && o->cafile && !o->thumbprint)
        rc = load_cas(h, o->cafile, err, errlen);
    if (rc == 0)
        rc = make_pool(h, o->pool ? (o->pool < POOL_MAX ? o->pool : POOL_MAX) : 4, err, errlen);
    if (rc == -ENOMEM)
        say(err, errlen, "out of memory");
    return rc;
}

int rhttp_new(const struct rhttp_opts *o, struct rhttp **out, char *err, size_t errlen)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        say(err, errlen, "libcurl initialisation failed: %s", curl_easy_strerror(curl_init_rc));
        return -EIO;
    }
    struct rhttp *h = calloc(1, sizeof *h);
    if (!h) {
        say(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->idle_cv, NULL);
    h->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
    h->request_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 0;
    h->read_ms = o->read_timeout_ms > 0 ? o->read_timeout_ms : 60000;
    h->write_ms = o->write_timeout_ms > 0 ? o->write_timeout_ms : 60000;
    h->retries = o->retries ? o->retries : 3;
    h->log_level = o->log_level;
    h->log = o->log;
    int rc = setup(h, o, err, errlen);
    if (rc < 0) {
        rhttp_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void rhttp_free(struct rhttp *h)
{
    if (!h)
        return;
    for (unsigned i = 0; i < h->nconns; i++)
        curl_easy_cleanup(h->conns[i].curl);
    free(h->conns);
    free(h->idle);
    sk_X509_pop_free(h->cas, X509_free);
    free(h->cookie_out);
    free(h->cookie_in);
    free(h->base);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->idle_cv);
    free(h);
}
