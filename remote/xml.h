/*
 * xml.h - the little of libxml2 the SOAP client needs (internal).
 *
 * Replies are parsed with the network, DTDs and entity substitution off, and
 * a document that carries a DTD at all is refused (SOAP forbids one), so a
 * hostile server can neither make us fetch anything nor expand entities.
 * Elements are matched by local name: vSphere's namespaces are fixed and
 * prefixes vary between servers.
 */
#ifndef VDK_REMOTE_XML_H
#define VDK_REMOTE_XML_H

#include <libxml/tree.h>
#include <stddef.h>
#include <stdint.h>

/* Parse a reply; NULL with a reason in err when it is not acceptable XML. */
xmlDocPtr rxml_parse(const char *buf, size_t len, char *err, size_t errlen);

/* The first element child of n named 'name' (NULL: any element). */
xmlNodePtr rxml_child(xmlNodePtr n, const char *name);
/* The next element sibling of n with the same local name as n. */
xmlNodePtr rxml_next_same(xmlNodePtr n);
/* The element reached from n by a '/'-separated path of local names. */
xmlNodePtr rxml_path(xmlNodePtr n, const char *path);

/* The text of element n copied into buf ("" if none, or if it does not
 * fit); returns buf. */
const char *rxml_text(xmlNodePtr n, char *buf, size_t len);
/* Text of the element at path below n, or "" when it is absent. */
const char *rxml_ptext(xmlNodePtr n, const char *path, char *buf, size_t len);
/* Integer text of the element at path; def when absent or not a number. */
int64_t rxml_pint(xmlNodePtr n, const char *path, int64_t def);
/* The value of attribute 'name' (any namespace, e.g. xsi:type) or "". */
const char *rxml_attr(xmlNodePtr n, const char *name, char *buf, size_t len);

/* Append s to out escaped for XML text and attributes; returns the length
 * written or -1 if it did not fit. */
int rxml_escape(const char *s, char *out, size_t outlen);

#endif
