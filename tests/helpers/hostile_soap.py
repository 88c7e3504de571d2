#!/usr/bin/env python3
"""A hostile vSphere endpoint for tests/remote.sh: every POST to /sdk gets
the reply named by MODE.  Prints its port, then serves until killed.

  hostile_soap.py MODE PORTFILE
"""
import http.server
import sys
import time

ENV = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
       'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>%s'
       '</soapenv:Body></soapenv:Envelope>')
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
          + ''.join('<!ENTITY %s "%s">' % (chr(98 + i), ('&%s;' % chr(97 + i)) * 10) for i in range(8))
          + ']><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
          '<soapenv:Body><x>&i;</x></soapenv:Body></soapenv:Envelope>')
XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
       + (ENV % '<RetrieveServiceContentResponse xmlns="urn:vim25">&e;'
          '</RetrieveServiceContentResponse>').split('?>', 1)[1])
SC = ENV % ('<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval>'
            '<rootFolder type="Folder">group-d1</rootFolder>'
            '<propertyCollector type="PropertyCollector">pc</propertyCollector>'
            '<viewManager type="ViewManager">vm</viewManager>'
            '<sessionManager type="SessionManager">' + 'S' * 5000 + '</sessionManager>'
            '<about><apiVersion>6.7</apiVersion><apiType>VirtualCenter</apiType></about>'
            '</returnval></RetrieveServiceContentResponse>')


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, status, body, trickle=False):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if trickle:
            for b in data:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.5)
        else:
            self.wfile.write(data)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = sys.argv[1]
        if mode == "notxml":
            self.reply(200, "this is not XML at all <<<")
        elif mode == "empty":
            self.reply(200, "")
        elif mode == "laughs":
            self.reply(200, LAUGHS)
        elif mode == "xxe":
            self.reply(200, XXE)
        elif mode == "huge":
            self.reply(200, ENV % ("<x>" + "A" * (65 << 20) + "</x>"))
        elif mode == "wrong":
            self.reply(200, ENV % "<SomethingElseResponse/>")
        elif mode == "bare-fault":
            self.reply(500, ENV % "<soapenv:Fault><faultcode>x</faultcode></soapenv:Fault>")
        elif mode == "long-moref":
            self.reply(200, SC)
        elif mode == "trickle":
            self.reply(200, ENV % ("<x>" + "A" * 200 + "</x>"), trickle=True)
        else:
            self.reply(500, "unknown mode")


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[2], "w") as f:
    f.write(str(srv.server_address[1]))
srv.serve_forever()
