/* xml.c - safe parsing and small tree helpers over libxml2. */
#include "xml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>

xmlDocPtr rxml_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    if (len > 64u << 20 || len > (size_t)INT32_MAX) {
        snprintf(err, errlen, "reply of %zu bytes is too large", len);
        return NULL;
    }
    /* No XML_PARSE_NOENT (no entity substitution), no DTDLOAD, no network. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
    xmlDocPtr doc = xmlReadMemory(buf, (int)len, "reply.xml", NULL, opts);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        snprintf(err, errlen, "reply is not well-formed XML%s%.200s", e && e->message ? ": " : "",
                 e && e->message ? e->message : "");
        char *nl = strchr(err, '\n');
        if (nl)
            *nl = '\0';
        return NULL;
    }
    if (doc->intSubset || doc->extSubset) {
        xmlFreeDoc(doc);
        snprintf(err, errlen, "reply carries a DTD, which SOAP does not allow");
        return NULL;
    }
    if (!xmlDocGetRootElement(doc)) {
        xmlFreeDoc(doc);
        snprintf(err, errlen, "reply has no root element");
        return NULL;
    }
    return doc;
}

static int named(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && (!name || !strcmp((const char *)n->name, name));
}

xmlNodePtr rxml_child(xmlNodePtr n, const char *name)
{
    if (!n)
        return NULL;
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (named(c, name))
            return c;
    return NULL;
}

xmlNodePtr rxml_next_same(xmlNodePtr n)
{
    if (!n)
        return NULL;
    for (xmlNodePtr c = n->next; c; c = c->next)
        if (named(c, (const char *)n->name))
            return c;
    return NULL;
}

xmlNodePtr rxml_path(xmlNodePtr n, const char *path)
{
    char part[128];
    while (n && *path) {
        const char *slash = strchr(path, '/');
        size_t k = slash ? (size_t)(slash - path) : strlen(path);
        if (k >= sizeof(part))
            return NULL;
        memcpy(part, path, k);
        part[k] = '\0';
        n = rxml_child(n, part);
        path += k + (slash != NULL);
    }
    return n;
}

const char *rxml_text(xmlNodePtr n, char *buf, size_t len)
{
    if (!len)
        return buf;
    buf[0] = '\0';
    if (!n)
        return buf;
    xmlChar *t = xmlNodeGetContent(n);
    /* Text that does not fit reads as absent: a moref or file name cut
     * short would name some other object. */
    if (t && strlen((const char *)t) < len)
        memcpy(buf, t, strlen((const char *)t) + 1);
    if (t)
        xmlFree(t);
    return buf;
}

const char *rxml_ptext(xmlNodePtr n, const char *path, char *buf, size_t len)
{
    return rxml_text(rxml_path(n, path), buf, len);
}

int64_t rxml_pint(xmlNodePtr n, const char *path, int64_t def)
{
    char t[32], *end;
    xmlNodePtr e = rxml_path(n, path);
    if (!e)
        return def;
    rxml_text(e, t, sizeof(t));
    errno = 0;
    long long v = strtoll(t, &end, 10);
    return end == t || *end || errno ? def : (int64_t)v;
}

const char *rxml_attr(xmlNodePtr n, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    for (xmlAttrPtr a = n ? n->properties : NULL; a; a = a->next) {
        if (strcmp((const char *)a->name, name))
            continue;
        xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
        if (v) {
            /* xsi:type="vim25:VirtualDisk": the local part is what matters. */
            const char *colon = strchr((const char *)v, ':');
            snprintf(buf, len, "%s", colon ? colon + 1 : (const char *)v);
            xmlFree(v);
        }
        break;
    }
    return buf;
}

int rxml_escape(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *rep = NULL;
        char one[2] = {(char)*p, 0};
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            /* XML 1.0 cannot carry other control characters at all. */
            if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
                return -1;
            rep = one;
        }
        size_t k = strlen(rep);
        if (o + k >= outlen)
            return -1;
        memcpy(out + o, rep, k);
        o += k;
    }
    out[o] = '\0';
    return (int)o;
}
