/* soap.c - vim25 SOAP calls: envelopes, faults, the session and its
 * re-login, the PropertyCollector and task waits. */
#include "soap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xml.h"

void rbuf_add(struct rbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        /* Not realloc: the old buffer may hold a password, and is wiped. */
        char *p = malloc(cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        if (b->p) {
            memcpy(p, b->p, b->len + 1);
            explicit_bzero(b->p, b->cap);
            free(b->p);
        }
        b->p = p;
        b->cap = cap;
    }
}

static void rbuf_escaped(struct rbuf *b, const char *value)
{
    size_t need = strlen(value) * 6 + 1;
    char *e = malloc(need);
    if (!e || rxml_escape(value, e, need) < 0)
        b->failed = 1;
    else
        rbuf_add(b, "%s", e);
    if (e)
        explicit_bzero(e, need);
    free(e);
}

void rbuf_elem(struct rbuf *b, const char *tag, const char *value)
{
    rbuf_add(b, "<%s>", tag);
    rbuf_escaped(b, value);
    rbuf_add(b, "</%s>", tag);
}

void rbuf_moref(struct rbuf *b, const char *tag, const char *type, const char *moref)
{
    rbuf_add(b, "<%s type=\"", tag);
    rbuf_escaped(b, type);
    rbuf_add(b, "\">");
    rbuf_escaped(b, moref);
    rbuf_add(b, "</%s>", tag);
}

void rbuf_free(struct rbuf *b)
{
    if (b->p)
        explicit_bzero(b->p, b->cap);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* The fault's type: detail's xsi:type, else its element name minus "Fault"
 * (<InvalidLoginFault>). */
static void fault_type(xmlNodePtr fault, char *type, size_t len)
{
    type[0] = '\0';
    xmlNodePtr detail = rxml_child(rxml_child(fault, "detail"), NULL);
    if (!detail)
        return;
    rxml_attr(detail, "type", type, len);
    if (type[0])
        return;
    snprintf(type, len, "%s", (const char *)detail->name);
    size_t k = strlen(type);
    if (k > 5 && !strcmp(type + k - 5, "Fault"))
        type[k - 5] = '\0';
}

/* "METHOD: faultstring (FaultType)" from a soapenv:Fault. */
static void fault_message(xmlNodePtr fault, const char *type, const char *method, char *err,
                          size_t errlen)
{
    char msg[400];
    rxml_ptext(fault, "faultstring", msg, sizeof(msg));
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    snprintf(err, errlen, "%s: %s%s%s%s", method, msg[0] ? msg : "fault without a message",
             type[0] ? " (" : "", type, type[0] ? ")" : "");
}

static int fault_errno(const char *type)
{
    if (!strcmp(type, "NotAuthenticated"))
        return -EACCES;
    if (!strcmp(type, "InvalidLogin") || !strcmp(type, "NoPermission"))
        return -EACCES;
    if (!strcmp(type, "ManagedObjectNotFound") || !strcmp(type, "FileNotFound"))
        return -ENOENT;
    if (!strcmp(type, "InvalidArgument") || !strcmp(type, "InvalidRequest"))
        return -EINVAL;
    if (!strcmp(type, "NotSupported") || !strcmp(type, "NotImplemented") ||
        !strcmp(type, "MethodNotFound"))
        return -EOPNOTSUPP;
    return -EIO;
}

static int post(struct rvim *v, const char *method, const char *args, xmlDocPtr *doc,
                xmlNodePtr *ret, char *ftype, size_t ftlen, char *err, size_t errlen)
{
    struct rbuf b = {0};
    rbuf_add(&b,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" "
             "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" "
             "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
             "<soapenv:Body><%s xmlns=\"urn:vim25\">%s</%s></soapenv:Body></soapenv:Envelope>",
             method, args, method);
    if (b.failed) {
        rbuf_free(&b);
        snprintf(err, errlen, "%s: out of memory", method);
        return -ENOMEM;
    }
    char action[64];
    snprintf(action, sizeof(action), "urn:vim25/%s", v->api_version[0] ? v->api_version : "6.5");
    struct rhttp_reply r = {0};
    char herr[400];
    /* VDK_SOAP_TRACE=1 shows the conversation on stderr, except Login's
     * request (it holds the password). */
    int trace = getenv("VDK_SOAP_TRACE") != NULL;
    if (trace && strcmp(method, "Login"))
        fprintf(stderr, "soap> %s\n", b.p);
    int rc = rhttp_soap(v->http, "/sdk", action, b.p, &r, herr, sizeof(herr));
    if (!strcmp(method, "Login"))
        explicit_bzero(b.p, b.cap); /* it held the password */
    rbuf_free(&b);
    if (trace && rc == 0)
        fprintf(stderr, "soap< %s\n", r.body ? r.body : "");
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", method, herr);
        return rc;
    }
    char perr[256];
    int had_body = r.body && r.body_len;
    *doc = had_body ? rxml_parse(r.body, r.body_len, perr, sizeof(perr)) : NULL;
    long status = r.status;
    rhttp_reply_free(&r);
    if (!*doc) {
        snprintf(err, errlen, "%s: HTTP %ld, %s", method, status, had_body ? perr : "empty reply");
        return -EIO;
    }
    xmlNodePtr body = rxml_child(xmlDocGetRootElement(*doc), "Body");
    xmlNodePtr first = rxml_child(body, NULL);
    if (first && !strcmp((const char *)first->name, "Fault")) {
        fault_type(first, ftype, ftlen);
        fault_message(first, ftype, method, err, errlen);
        xmlFreeDoc(*doc);
        *doc = NULL;
        return fault_errno(ftype);
    }
    char want[96];
    snprintf(want, sizeof(want), "%sResponse", method);
    if (!first || strcmp((const char *)first->name, want)) {
        snprintf(err, errlen, "%s: HTTP %ld without a %s element", method, status, want);
        xmlFreeDoc(*doc);
        *doc = NULL;
        return -EIO;
    }
    *ret = first;
    return 0;
}

int rvim_call_buf(struct rvim *v, const char *method, struct rbuf *b, xmlDocPtr *doc,
                  xmlNodePtr *ret, char *err, size_t errlen)
{
    int r;
    if (b->failed) {
        snprintf(err, errlen,
                 "%s: an argument holds a character XML cannot carry (or memory ran out)", method);
        r = -EINVAL;
    } else {
        r = rvim_call(v, method, b->p, doc, ret, err, errlen);
    }
    rbuf_free(b);
    return r;
}

static int do_login(struct rvim *v, char *err, size_t errlen)
{
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "SessionManager", v->session_manager);
    rbuf_elem(&b, "userName", v->user);
    rbuf_elem(&b, "password", v->password);
    if (b.failed) {
        rbuf_free(&b);
        snprintf(err, errlen, "Login: user name or password holds a control character");
        return -EINVAL;
    }
    xmlDocPtr doc;
    xmlNodePtr ret;
    char ft[96] = "";
    int rc = post(v, "Login", b.p, &doc, &ret, ft, sizeof(ft), err, errlen);
    /* The request held the password: wipe it before freeing. */
    memset(b.p, 0, b.cap);
    rbuf_free(&b);
    if (rc < 0)
        return rc;
    xmlFreeDoc(doc);
    char cookie[512];
    rhttp_get_cookie(v->http, cookie, sizeof(cookie));
    rhttp_set_cookie(v->http, cookie[0] ? cookie : NULL);
    __atomic_add_fetch(&v->generation, 1, __ATOMIC_RELEASE);
    return 0;
}

unsigned rvim_generation(struct rvim *v)
{
    return __atomic_load_n(&v->generation, __ATOMIC_ACQUIRE);
}

int rvim_relogin(struct rvim *v, unsigned seen, char *err, size_t errlen)
{
    if (!v->password)
        return -EACCES;
    pthread_mutex_lock(&v->relogin);
    int r = 0;
    if (rvim_generation(v) == seen) {
        /* Log in afresh: a server refuses Login on a session it still
         * knows. */
        rhttp_set_cookie(v->http, NULL);
        r = do_login(v, err, errlen);
    }
    pthread_mutex_unlock(&v->relogin);
    return r;
}

int rvim_call(struct rvim *v, const char *method, const char *args, xmlDocPtr *doc, xmlNodePtr *ret,
              char *err, size_t errlen)
{
    char ft[96] = "";
    unsigned gen = rvim_generation(v);
    int rc = post(v, method, args, doc, ret, ft, sizeof(ft), err, errlen);
    if (rc != -EACCES || strcmp(ft, "NotAuthenticated") || !v->password)
        return rc;
    /* The session expired (idle timeout, server restart): log in again
     * once, then repeat the call. */
    char lerr[400];
    int lr = rvim_relogin(v, gen, lerr, sizeof(lerr));
    if (lr < 0) {
        snprintf(err, errlen, "%s: session expired and logging in again failed: %s", method, lerr);
        return lr;
    }
    return post(v, method, args, doc, ret, ft, sizeof(ft), err, errlen);
}

static void copy_moref(xmlNodePtr sc, const char *name, char *out, size_t len)
{
    rxml_ptext(sc, name, out, len);
}

int rvim_login(struct rvim *v, const char *user, const char *password, char *err, size_t errlen)
{
    pthread_mutex_init(&v->relogin, NULL);
    xmlDocPtr doc;
    xmlNodePtr ret;
    int rc = rvim_call(v, "RetrieveServiceContent",
                       "<_this type=\"ServiceInstance\">ServiceInstance</_this>", &doc, &ret, err,
                       errlen);
    if (rc < 0)
        return rc;
    xmlNodePtr sc = rxml_child(ret, "returnval");
    copy_moref(sc, "rootFolder", v->root_folder, sizeof(v->root_folder));
    copy_moref(sc, "propertyCollector", v->property_collector, sizeof(v->property_collector));
    copy_moref(sc, "sessionManager", v->session_manager, sizeof(v->session_manager));
    copy_moref(sc, "searchIndex", v->search_index, sizeof(v->search_index));
    copy_moref(sc, "viewManager", v->view_manager, sizeof(v->view_manager));
    copy_moref(sc, "authorizationManager", v->auth_manager, sizeof(v->auth_manager));
    rxml_ptext(sc, "about/apiType", v->api_type, sizeof(v->api_type));
    rxml_ptext(sc, "about/fullName", v->about, sizeof(v->about));
    char ver[16];
    rxml_ptext(sc, "about/apiVersion", ver, sizeof(ver));
    xmlFreeDoc(doc);
    if (!v->session_manager[0] || !v->property_collector[0]) {
        snprintf(err, errlen, "the server at /sdk is not a vSphere API endpoint");
        return -EIO;
    }
    snprintf(v->api_version, sizeof(v->api_version), "%s", ver[0] ? ver : "6.5");
    snprintf(v->user, sizeof(v->user), "%s", user);
    v->password = strdup(password);
    if (!v->password)
        return -ENOMEM;
    return do_login(v, err, errlen);
}

void rvim_logout(struct rvim *v)
{
    if (v->password) {
        char err[256];
        struct rbuf b = {0};
        rbuf_moref(&b, "_this", "SessionManager", v->session_manager);
        xmlDocPtr doc;
        xmlNodePtr ret;
        if (!b.failed && rvim_call(v, "Logout", b.p, &doc, &ret, err, sizeof(err)) == 0)
            xmlFreeDoc(doc);
        rbuf_free(&b);
        memset(v->password, 0, strlen(v->password));
        free(v->password);
        v->password = NULL;
    }
    pthread_mutex_destroy(&v->relogin);
}

static void prop_spec(struct rbuf *b, const char *type, const char *const *paths)
{
    rbuf_add(b, "<propSet>");
    rbuf_elem(b, "type", type);
    for (; paths && *paths; paths++)
        rbuf_elem(b, "pathSet", *paths);
    rbuf_add(b, "</propSet>");
}

int rvim_props(struct rvim *v, const char *type, const char *moref, const char *const *paths,
               xmlDocPtr *doc, xmlNodePtr *obj, char *err, size_t errlen)
{
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "PropertyCollector", v->property_collector);
    rbuf_add(&b, "<specSet>");
    prop_spec(&b, type, paths);
    rbuf_add(&b, "<objectSet>");
    rbuf_moref(&b, "obj", type, moref);
    rbuf_add(&b, "<skip>false</skip></objectSet></specSet>");
    xmlNodePtr ret;
    int rc = rvim_call_buf(v, "RetrieveProperties", &b, doc, &ret, err, errlen);
    if (rc < 0)
        return rc;
    *obj = rxml_child(ret, "returnval");
    if (!*obj) {
        xmlFreeDoc(*doc);
        *doc = NULL;
        snprintf(err, errlen, "%s %s does not exist", type, moref);
        return -ENOENT;
    }
    return 0;
}

xmlNodePtr rvim_prop(xmlNodePtr obj, const char *path)
{
    char name[256];
    for (xmlNodePtr p = rxml_child(obj, "propSet"); p; p = rxml_next_same(p))
        if (!strcmp(rxml_ptext(p, "name", name, sizeof(name)), path))
            return rxml_child(p, "val");
    return NULL;
}

static int view_create(struct rvim *v, const char *type, char *view, size_t len, char *err,
                       size_t errlen)
{
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "ViewManager", v->view_manager);
    rbuf_moref(&b, "container", "Folder", v->root_folder);
    rbuf_elem(&b, "type", type);
    rbuf_add(&b, "<recursive>true</recursive>");
    xmlDocPtr doc;
    xmlNodePtr ret;
    int rc = rvim_call_buf(v, "CreateContainerView", &b, &doc, &ret, err, errlen);
    if (rc < 0)
        return rc;
    rxml_ptext(ret, "returnval", view, len);
    xmlFreeDoc(doc);
    return 0;
}

static void view_destroy(struct rvim *v, const char *view)
{
    struct rbuf b = {0};
    char err[256];
    rbuf_moref(&b, "_this", "ContainerView", view);
    xmlDocPtr doc;
    xmlNodePtr ret;
    if (!b.failed && rvim_call(v, "DestroyView", b.p, &doc, &ret, err, sizeof(err)) == 0)
        xmlFreeDoc(doc);
    rbuf_free(&b);
}

int rvim_each(struct rvim *v, const char *type, const char *const *paths, rvim_obj_cb cb, void *arg,
              char *err, size_t errlen)
{
    char view[256];
    int rc = view_create(v, type, view, sizeof(view), err, errlen);
    if (rc < 0)
        return rc;
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "PropertyCollector", v->property_collector);
    rbuf_add(&b, "<specSet>");
    prop_spec(&b, type, paths);
    rbuf_add(&b, "<objectSet>");
    rbuf_moref(&b, "obj", "ContainerView", view);
    rbuf_add(&b, "<skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><type>ContainerView</type>"
                 "<path>view</path><skip>false</skip></selectSet></objectSet></specSet>");
    xmlDocPtr doc = NULL;
    xmlNodePtr ret;
    rc = rvim_call_buf(v, "RetrieveProperties", &b, &doc, &ret, err, errlen);
    view_destroy(v, view);
    if (rc < 0)
        return rc;
    for (xmlNodePtr o = rxml_child(ret, "returnval"); o && !rc; o = rxml_next_same(o))
        rc = cb(arg, o);
    xmlFreeDoc(doc);
    return rc;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int rvim_wait_task(struct rvim *v, const char *moref, rvim_task_cb cb, void *arg, char *result,
                   size_t rlen, xmlDocPtr *rdoc, xmlNodePtr *rnode, char *err, size_t errlen)
{
    static const char *const paths[] = {"info", NULL};
    long wait = 100;
    time_t deadline = time(NULL) + (v->task_timeout_s > 0 ? v->task_timeout_s : 6 * 3600);
    unsigned odd = 0;
    for (;;) {
        xmlDocPtr doc;
        xmlNodePtr obj;
        int rc = rvim_props(v, "Task", moref, paths, &doc, &obj, err, errlen);
        if (rc < 0)
            return rc;
        xmlNodePtr info = rvim_prop(obj, "info");
        char state[32], name[96];
        rxml_ptext(info, "state", state, sizeof(state));
        rxml_ptext(info, "descriptionId", name, sizeof(name));
        if (!strcmp(state, "success")) {
            if (result)
                rxml_ptext(info, "result", result, rlen);
            if (rdoc) {
                *rdoc = doc;
                *rnode = rxml_child(info, "result");
            } else {
                xmlFreeDoc(doc);
            }
            if (cb)
                cb(arg, 100);
            return 0;
        }
        if (!strcmp(state, "error")) {
            char msg[400], type[96];
            rxml_ptext(info, "error/localizedMessage", msg, sizeof(msg));
            rxml_attr(rxml_path(info, "error/fault"), "type", type, sizeof(type));
            snprintf(err, errlen, "task %s failed: %s%s%s%s", name[0] ? name : moref,
                     msg[0] ? msg : "no reason given", type[0] ? " (" : "", type,
                     type[0] ? ")" : "");
            xmlFreeDoc(doc);
            return -EIO;
        }
        /* Only queued and running are on the way; anything else, or a task
         * that outlives the deadline, is given up on. */
        int moving = !strcmp(state, "queued") || !strcmp(state, "running");
        odd = moving ? 0 : odd + 1;
        if (odd >= 5 || time(NULL) > deadline) {
            snprintf(err, errlen, "task %s %s", name[0] ? name : moref,
                     odd ? "reports no known state"
                         : "did not end in time (vdk.remote.TaskTimeoutS)");
            xmlFreeDoc(doc);
            return -ETIMEDOUT;
        }
        if (cb)
            cb(arg, (int)rxml_pint(info, "progress", -1));
        xmlFreeDoc(doc);
        nap_ms(wait);
        wait = wait < 1000 ? wait * 2 : 1000;
    }
}
