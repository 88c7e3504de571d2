/*
 * soap.h - a vSphere API (vim25) session over SOAP (internal).
 *
 * One rvim is one logged-in session with an ESXi host or vCenter: the
 * ServiceContent's managed objects, the session cookie (held by the HTTP
 * layer) and the credentials needed to log in again when the session
 * expires.  Calls return 0 or a negative errno with a one-line message; a
 * SOAP fault becomes "METHOD: <faultstring> (<fault type>)".
 */
#ifndef VDK_REMOTE_SOAP_H
#define VDK_REMOTE_SOAP_H

#include <libxml/tree.h>
#include <pthread.h>
#include <stddef.h>

#include "http.h"

/* A growing string for request bodies; a failed allocation or a value XML
 * cannot carry sets 'failed' and later appends do nothing. */
struct rbuf {
    char *p;
    size_t len, cap;
    int failed;
};
void rbuf_add(struct rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* <tag>value escaped</tag> */
void rbuf_elem(struct rbuf *b, const char *tag, const char *value);
/* <tag type="TYPE">moref</tag> */
void rbuf_moref(struct rbuf *b, const char *tag, const char *type, const char *moref);
void rbuf_free(struct rbuf *b);

struct rvim {
    struct rhttp *http;
    char api_version[16];
    char api_type[32]; /* "VirtualCenter" or "HostAgent" */
    char about[128];   /* fullName, for messages */
    char root_folder[128], property_collector[128], session_manager[128];
    char search_index[128], view_manager[128], auth_manager[128];
    char user[256];
    char *password;
    pthread_mutex_t relogin;
    unsigned generation; /* bumped by every login (under relogin) */
    long task_timeout_s; /* rvim_wait_task gives up after this (0: 6 h) */
};

/* Fetch the ServiceContent and log in. */
int rvim_login(struct rvim *v, const char *user, const char *password, char *err, size_t errlen);
/* The session generation a caller saw before a request failed with
 * NotAuthenticated or HTTP 401; rvim_relogin logs in again unless another
 * thread already did since. */
unsigned rvim_generation(struct rvim *v);
int rvim_relogin(struct rvim *v, unsigned seen, char *err, size_t errlen);

/* Log out (best effort) and free everything but the rhttp. */
void rvim_logout(struct rvim *v);

/* Call METHOD with the given argument elements (the _this and the rest,
 * already XML).  On success *doc holds the reply and *ret its
 * METHODResponse element; free *doc with xmlFreeDoc. */
int rvim_call(struct rvim *v, const char *method, const char *args, xmlDocPtr *doc, xmlNodePtr *ret,
              char *err, size_t errlen);

/* rvim_call with the arguments in b (freed here); a value XML cannot carry
 * (control characters) fails with -EINVAL and a message. */
int rvim_call_buf(struct rvim *v, const char *method, struct rbuf *b, xmlDocPtr *doc,
                  xmlNodePtr *ret, char *err, size_t errlen);

/* One object's properties: *obj is its ObjectContent (returnval). */
int rvim_props(struct rvim *v, const char *type, const char *moref, const char *const *paths,
               xmlDocPtr *doc, xmlNodePtr *obj, char *err, size_t errlen);
/* The <val> of property 'path' in an ObjectContent, or NULL. */
xmlNodePtr rvim_prop(xmlNodePtr obj, const char *path);

/* Every object of 'type' below the root folder with properties 'paths':
 * cb is called with each ObjectContent; non-zero stops and is returned. */
typedef int (*rvim_obj_cb)(void *arg, xmlNodePtr obj);
int rvim_each(struct rvim *v, const char *type, const char *const *paths, rvim_obj_cb cb, void *arg,
              char *err, size_t errlen);

/* Progress of a task in percent (-1 if unknown). */
typedef void (*rvim_task_cb)(void *arg, int percent);
/* Wait for task 'moref' to end; on success copy its result's text (a moref
 * for most tasks) into result.  An error task gives -EIO with its message. */
int rvim_wait_task(struct rvim *v, const char *moref, rvim_task_cb cb, void *arg, char *result,
                   size_t rlen, xmlDocPtr *rdoc, xmlNodePtr *rnode, char *err, size_t errlen);

#endif
