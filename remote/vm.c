/* vm.c - virtual machines, their disks and snapshots, changed block
 * tracking and PrepareForAccess, over the vSphere API. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "util.h"
#include "xml.h"

static int fail(vdk_error *err, int r, const char *msg)
{
    return vdk_fail(err, vdk_status_from_errno(r), "%s", msg);
}

static int is_moref(const char *s, const char *prefix)
{
    size_t k = strlen(prefix);
    if (!strncmp(s, prefix, k))
        s += k;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

struct vm_pick {
    const char *want;
    char moref[128];
    unsigned count;
};

static int vm_cb(void *arg, xmlNodePtr obj)
{
    struct vm_pick *p = arg;
    char name[256];
    if (strcmp(rxml_text(rvim_prop(obj, "name"), name, sizeof(name)), p->want))
        return 0;
    if (!p->count++)
        rxml_ptext(obj, "obj", p->moref, sizeof(p->moref));
    return 0;
}

static int find_by_path(vdk_conn *c, const char *spec, char *moref, size_t len, vdk_error *err)
{
    struct rbuf b = {0};
    char msg[512];
    rbuf_moref(&b, "_this", "SearchIndex", c->vim.search_index);
    rbuf_elem(&b, "inventoryPath", spec[0] == '/' ? spec + 1 : spec);
    xmlDocPtr doc;
    xmlNodePtr ret;
    int r = rvim_call_buf(&c->vim, "FindByInventoryPath", &b, &doc, &ret, msg, sizeof(msg));
    if (r < 0)
        return fail(err, r, msg);
    xmlNodePtr v = rxml_child(ret, "returnval");
    char type[64];
    rxml_attr(v, "type", type, sizeof(type));
    rxml_text(v, moref, len);
    xmlFreeDoc(doc);
    if (!moref[0])
        return vdk_fail(err, VDK_E_NOENT, "no virtual machine at inventory path '%s'", spec);
    if (strcmp(type, "VirtualMachine"))
        return vdk_fail(err, VDK_E_INVAL, "'%s' is a %s, not a virtual machine", spec, type);
    return 0;
}

int vdk_vm_find(vdk_conn *c, const char *spec, char *moref, size_t len, vdk_error *err)
{
    static const char *const paths[] = {"name", NULL};
    char msg[512];
    if (is_moref(spec, "vm-")) {
        xmlDocPtr doc;
        xmlNodePtr obj;
        int r = rvim_props(&c->vim, "VirtualMachine", spec, paths, &doc, &obj, msg, sizeof(msg));
        if (r == 0) {
            xmlFreeDoc(doc);
            snprintf(moref, len, "%s", spec);
            return 0;
        }
        if (r != -ENOENT)
            return fail(err, r, msg);
        /* "2024" may be a VM's name rather than an ESXi moref. */
    }
    if (strchr(spec, '/'))
        return find_by_path(c, spec, moref, len, err);
    struct vm_pick p = {.want = spec};
    int r = rvim_each(&c->vim, "VirtualMachine", paths, vm_cb, &p, msg, sizeof(msg));
    if (r < 0)
        return fail(err, r, msg);
    if (!p.count)
        return vdk_fail(err, VDK_E_NOENT, "no virtual machine named '%s'", spec);
    if (p.count > 1)
        return vdk_fail(err, VDK_E_INVAL,
                        "%u virtual machines are named '%s': give an inventory path or moref",
                        p.count, spec);
    snprintf(moref, len, "%s", p.moref);
    return 0;
}

static int add_disk(xmlNodePtr dev, vdk_vm_disk **list, unsigned *n)
{
    vdk_vm_disk *l = realloc(*list, (*n + 1) * sizeof(**list));
    if (!l)
        return -ENOMEM;
    *list = l;
    vdk_vm_disk *d = &l[(*n)++];
    memset(d, 0, sizeof(*d));
    d->key = (int)rxml_pint(dev, "key", 0);
    int64_t bytes = rxml_pint(dev, "capacityInBytes", -1);
    d->capacity = bytes >= 0 ? (uint64_t)bytes : (uint64_t)rxml_pint(dev, "capacityInKB", 0) * 1024;
    rxml_ptext(dev, "backing/fileName", d->file, sizeof(d->file));
    rxml_ptext(dev, "backing/changeId", d->change_id, sizeof(d->change_id));
    rxml_ptext(dev, "deviceInfo/label", d->label, sizeof(d->label));
    return 0;
}

int vdk_vm_disks(vdk_conn *c, const char *vm, const char *snap, vdk_vm_disk **out, unsigned *count,
                 vdk_error *err)
{
    static const char *const paths[] = {"config.hardware.device", NULL};
    char msg[512], type[64];
    xmlDocPtr doc;
    xmlNodePtr obj;
    *out = NULL;
    *count = 0;
    int r = rvim_props(&c->vim, snap ? "VirtualMachineSnapshot" : "VirtualMachine",
                       snap ? snap : vm, paths, &doc, &obj, msg, sizeof(msg));
    if (r < 0)
        return fail(err, r, msg);
    xmlNodePtr devs = rvim_prop(obj, "config.hardware.device");
    for (xmlNodePtr d = rxml_child(devs, NULL); d && r == 0; d = d->next) {
        if (d->type != XML_ELEMENT_NODE ||
            strcmp(rxml_attr(d, "type", type, sizeof(type)), "VirtualDisk"))
            continue;
        r = add_disk(d, out, count);
    }
    xmlFreeDoc(doc);
    if (r < 0) {
        free(*out);
        *out = NULL;
        *count = 0;
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    }
    return 0;
}

static int disk_matches(const vdk_vm_disk *d, unsigned i, const char *spec)
{
    const char *base = strrchr(d->file, '/');
    if (!strcmp(d->label, spec) || !strcmp(d->file, spec) || (base && !strcmp(base + 1, spec)))
        return 1;
    if (!is_moref(spec, ""))
        return 0;
    long n = strtol(spec, NULL, 10);
    return n >= 1000 ? d->key == n : (long)i == n;
}

int vdk_vm_disk_find(vdk_conn *c, const char *vm, const char *snap, const char *spec,
                     vdk_vm_disk *out, vdk_error *err)
{
    vdk_vm_disk *d;
    unsigned n;
    int r = vdk_vm_disks(c, vm, snap, &d, &n, err);
    if (r < 0)
        return r;
    int hit = -1;
    for (unsigned i = 0; i < n && hit < 0; i++)
        if (disk_matches(&d[i], i, spec))
            hit = (int)i;
    if (hit >= 0)
        *out = d[hit];
    free(d);
    if (hit < 0)
        return vdk_fail(err, VDK_E_NOENT, "%s has no disk '%s' (%u disk%s: see 'vdk vms')", vm,
                        spec, n, n == 1 ? "" : "s");
    return 0;
}

struct snap_walk {
    vdk_snapshot *list;
    unsigned n;
    char current[128];
    int failed;
};

static void walk_tree(struct snap_walk *w, xmlNodePtr tree, unsigned depth)
{
    for (xmlNodePtr t = tree; t && !w->failed && depth < 256; t = rxml_next_same(t)) {
        vdk_snapshot *l = realloc(w->list, (w->n + 1) * sizeof(*l));
        if (!l) {
            w->failed = 1;
            return;
        }
        w->list = l;
        vdk_snapshot *s = &l[w->n++];
        memset(s, 0, sizeof(*s));
        rxml_ptext(t, "snapshot", s->moref, sizeof(s->moref));
        rxml_ptext(t, "name", s->name, sizeof(s->name));
        rxml_ptext(t, "description", s->description, sizeof(s->description));
        rxml_ptext(t, "createTime", s->created, sizeof(s->created));
        s->id = (int)rxml_pint(t, "id", 0);
        s->depth = depth;
        s->current = !strcmp(s->moref, w->current);
        char q[8];
        s->quiesced = !strcmp(rxml_ptext(t, "quiesced", q, sizeof(q)), "true");
        walk_tree(w, rxml_child(t, "childSnapshotList"), depth + 1);
    }
}

int vdk_snapshot_list(vdk_conn *c, const char *vm, vdk_snapshot **out, unsigned *count,
                      vdk_error *err)
{
    static const char *const paths[] = {"snapshot", NULL};
    char msg[512];
    xmlDocPtr doc;
    xmlNodePtr obj;
    *out = NULL;
    *count = 0;
    int r = rvim_props(&c->vim, "VirtualMachine", vm, paths, &doc, &obj, msg, sizeof(msg));
    if (r < 0)
        return fail(err, r, msg);
    xmlNodePtr info = rvim_prop(obj, "snapshot");
    struct snap_walk w = {0};
    rxml_ptext(info, "currentSnapshot", w.current, sizeof(w.current));
    walk_tree(&w, rxml_child(info, "rootSnapshotList"), 0);
    xmlFreeDoc(doc);
    if (w.failed) {
        free(w.list);
        return vdk_fail(err, VDK_E_NOMEM, "out of memory");
    }
    *out = w.list;
    *count = w.n;
    return 0;
}

int vdk_snapshot_find(vdk_conn *c, const char *vm, const char *spec, char *moref, size_t len,
                      vdk_error *err)
{
    vdk_snapshot *l;
    unsigned n, hits = 0;
    int r = vdk_snapshot_list(c, vm, &l, &n, err);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(l[i].moref, spec) && strcmp(l[i].name, spec))
            continue;
        if (!hits++)
            snprintf(moref, len, "%s", l[i].moref);
    }
    free(l);
    if (!hits)
        return vdk_fail(err, VDK_E_NOENT, "%s has no snapshot '%s'", vm, spec);
    if (hits > 1)
        return vdk_fail(err, VDK_E_INVAL, "%s has %u snapshots named '%s': give its moref", vm,
                        hits, spec);
    return 0;
}

struct task_progress {
    vdk_progress_cb cb;
    void *arg;
};

static void task_cb(void *arg, int percent)
{
    struct task_progress *p = arg;
    if (p->cb && percent >= 0)
        p->cb(p->arg, (uint64_t)percent, 100);
}

static int refuse_readonly(vdk_conn *c, const char *what, vdk_error *err)
{
    if (c->flags & VDK_CONN_READONLY)
        return vdk_fail(err, VDK_E_RDONLY, "%s: the connection is read-only", what);
    return 0;
}

/* Start METHOD (a *_Task) and wait for it; result receives its result. */
static int run_task(vdk_conn *c, const char *method, struct rbuf *b, vdk_progress_cb cb, void *arg,
                    char *result, size_t rlen, vdk_error *err)
{
    char msg[512], task[128];
    xmlDocPtr doc;
    xmlNodePtr ret;
    int r = rvim_call_buf(&c->vim, method, b, &doc, &ret, msg, sizeof(msg));
    if (r < 0)
        return fail(err, r, msg);
    rxml_ptext(ret, "returnval", task, sizeof(task));
    xmlFreeDoc(doc);
    struct task_progress tp = {cb, arg};
    r = rvim_wait_task(&c->vim, task, task_cb, &tp, result, rlen, NULL, NULL, msg, sizeof(msg));
    return r < 0 ? fail(err, r, msg) : 0;
}

int vdk_snapshot_create(vdk_conn *c, const char *vm, const char *name, const char *desc,
                        unsigned flags, vdk_progress_cb cb, void *arg, char *moref, size_t len,
                        vdk_error *err)
{
    int r = refuse_readonly(c, "snapshot create", err);
    if (r < 0)
        return r;
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "VirtualMachine", vm);
    rbuf_elem(&b, "name", name);
    if (desc)
        rbuf_elem(&b, "description", desc);
    rbuf_add(&b, "<memory>%s</memory><quiesce>%s</quiesce>",
             flags & VDK_SNAP_MEMORY ? "true" : "false",
             flags & VDK_SNAP_QUIESCE ? "true" : "false");
    char result[128] = "";
    r = run_task(c, "CreateSnapshot_Task", &b, cb, arg, result, sizeof(result), err);
    if (r == 0 && moref)
        snprintf(moref, len, "%s", result);
    return r;
}

int vdk_snapshot_remove(vdk_conn *c, const char *snap, int children, vdk_progress_cb cb, void *arg,
                        vdk_error *err)
{
    int r = refuse_readonly(c, "snapshot remove", err);
    if (r < 0)
        return r;
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "VirtualMachineSnapshot", snap);
    rbuf_add(&b, "<removeChildren>%s</removeChildren><consolidate>true</consolidate>",
             children ? "true" : "false");
    return run_task(c, "RemoveSnapshot_Task", &b, cb, arg, NULL, 0, err);
}

/* One QueryChangedDiskAreas call from 'start'; *next is where the answer's
 * window ends. */
static int changed_window(vdk_conn *c, const char *vm, const char *snap, int key, uint64_t start,
                          const char *change_id, uint64_t capacity, vdk_range_cb cb, void *arg,
                          uint64_t *next, vdk_error *err)
{
    struct rbuf b = {0};
    char msg[512];
    rbuf_moref(&b, "_this", "VirtualMachine", vm);
    if (snap)
        rbuf_moref(&b, "snapshot", "VirtualMachineSnapshot", snap);
    rbuf_add(&b, "<deviceKey>%d</deviceKey><startOffset>%llu</startOffset>", key,
             (unsigned long long)start);
    rbuf_elem(&b, "changeId", change_id);
    xmlDocPtr doc;
    xmlNodePtr ret;
    int r = rvim_call_buf(&c->vim, "QueryChangedDiskAreas", &b, &doc, &ret, msg, sizeof(msg));
    if (r < 0)
        return fail(err, r, msg);
    xmlNodePtr info = rxml_child(ret, "returnval");
    int64_t ws = rxml_pint(info, "startOffset", -1), wl = rxml_pint(info, "length", -1);
    r = 0;
    if (ws < 0 || wl <= 0 || wl > INT64_MAX - ws || (uint64_t)ws > start ||
        (uint64_t)(ws + wl) <= start)
        r = vdk_fail(err, VDK_E_IO,
                     "QueryChangedDiskAreas: the server answered a window (%lld+%lld) that does "
                     "not move past offset %llu",
                     (long long)ws, (long long)wl, (unsigned long long)start);
    for (xmlNodePtr a = rxml_child(info, "changedArea"); a && !r; a = rxml_next_same(a)) {
        int64_t s = rxml_pint(a, "start", -1), l = rxml_pint(a, "length", -1);
        if (s < 0 || l < 0 || (uint64_t)s > capacity || (uint64_t)l > capacity - (uint64_t)s) {
            r = vdk_fail(err, VDK_E_IO,
                         "QueryChangedDiskAreas: area %lld+%lld lies outside the disk",
                         (long long)s, (long long)l);
            break;
        }
        vdk_range rg = {.offset = (uint64_t)s, .length = (uint64_t)l, .kind = VDK_RANGE_DATA};
        if (l)
            r = cb(arg, &rg);
    }
    *next = (uint64_t)ws + (uint64_t)wl;
    xmlFreeDoc(doc);
    return r;
}

/* Areas the server splits at its window edges come out whole. */
struct merge {
    vdk_range_cb cb;
    void *arg;
    vdk_range pending;
};

static int merge_cb(void *arg, const vdk_range *r)
{
    struct merge *m = arg;
    if (m->pending.length && m->pending.offset + m->pending.length == r->offset) {
        m->pending.length += r->length;
        return 0;
    }
    int rc = m->pending.length ? m->cb(m->arg, &m->pending) : 0;
    m->pending = *r;
    return rc;
}

int vdk_changed_areas(vdk_conn *c, const char *vm, const char *snap, int disk_key,
                      uint64_t capacity, const char *change_id, vdk_range_cb cb, void *arg,
                      vdk_error *err)
{
    struct merge m = {cb, arg, {0}};
    uint64_t start = 0, calls = 0;
    /* vCenter answers in windows of many MiB: a server creeping forward a
     * few bytes per answer is not followed to the end of a big disk. */
    uint64_t max_calls = capacity / 65536 + 16;
    while (start < capacity) {
        uint64_t next;
        if (++calls > max_calls)
            return vdk_fail(err, VDK_E_IO,
                            "QueryChangedDiskAreas: %llu answers have not covered the disk",
                            (unsigned long long)max_calls);
        int r = changed_window(c, vm, snap, disk_key, start, change_id, capacity, merge_cb, &m,
                               &next, err);
        if (r)
            return r;
        start = next;
    }
    return m.pending.length ? cb(arg, &m.pending) : 0;
}

/* The methods a backup must keep vCenter from running on the VM while it
 * reads the disks: the ones that move or delete disk files. */
static const char *const guarded[] = {"RelocateVM_Task", "MigrateVM_Task", NULL};

static int access_call(vdk_conn *c, const char *vm, const char *identity, int disable,
                       vdk_error *err)
{
    const char *op = disable ? "PrepareForAccess" : "EndAccess";
    if (!strcmp(c->vim.api_type, "HostAgent"))
        return vdk_fail(err, VDK_E_UNSUPPORTED,
                        "%s needs vCenter: %s is a standalone ESXi host, which cannot disable "
                        "methods (connect to the vCenter that manages it, or skip this step)",
                        op, c->base);
    if (!c->vim.auth_manager[0])
        return vdk_fail(err, VDK_E_UNSUPPORTED, "%s: the server has no AuthorizationManager", op);
    struct rbuf b = {0};
    rbuf_moref(&b, "_this", "AuthorizationManager", c->vim.auth_manager);
    rbuf_moref(&b, "entity", "VirtualMachine", vm);
    for (const char *const *m = guarded; *m; m++) {
        if (disable) {
            rbuf_add(&b, "<method>");
            rbuf_elem(&b, "method", *m);
            rbuf_add(&b, "</method>");
        } else {
            rbuf_elem(&b, "method", *m);
        }
    }
    rbuf_elem(&b, "sourceId", identity);
    char msg[512];
    xmlDocPtr doc;
    xmlNodePtr ret;
    const char *method = disable ? "DisableMethods" : "EnableMethods";
    int r = rvim_call_buf(&c->vim, method, &b, &doc, &ret, msg, sizeof(msg));
    if (r < 0)
        return vdk_fail(err, vdk_status_from_errno(r), "%s: %s", op, msg);
    xmlFreeDoc(doc);
    return 0;
}

int vdk_prepare_for_access(vdk_conn *c, const char *vm, const char *identity, vdk_error *err)
{
    return access_call(c, vm, identity, 1, err);
}

int vdk_end_access(vdk_conn *c, const char *vm, const char *identity, vdk_error *err)
{
    return access_call(c, vm, identity, 0, err);
}
