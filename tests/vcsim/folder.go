package main

// Datastore file access, /folder/PATH?dcPath=DC&dsName=DS.
//
// What the simulator's handler (simulator.go ServeDatastore) does: it finds
// the datastore from dcPath/dsName (either may be left out: the default
// datacenter/datastore; an unknown one is 404 with no body), then
//   - GET and HEAD go through http.FileServer on the datastore's folder:
//     Range (single and multiple ranges, 206 + Content-Range, 416 outside
//     the file), If-Range, If-Modified-Since, Last-Modified, Content-Length
//     and Accept-Ranges: bytes all work, HEAD has the headers and no body;
//     a folder answers an HTML listing, a missing file 404;
//   - PUT (and POST to a new file; POST to an existing one is 409) creates
//     the parent folders and writes the body, answering 200 with no body;
//   - it checks no session at all.
//
// The simulator lacks what vCenter adds on top; this answers like vCenter
// does:
//   - authentication (-folder-auth, default on): a valid
//     vmware_soap_session cookie from a SOAP login, or HTTP Basic with the
//     -user/-password credentials; else 401 with
//     WWW-Authenticate: Basic realm="VMware HTTP server";
//   - PUT answers 201 Created for a new file, 200 OK for a replaced one.
//
// And the test controls: counters (/vdktest/stats), the next N GETs
// stalled (/vdktest/stall) or cut after some body bytes
// (/vdktest/drop: status line, headers with the full Content-Length or
// Content-Range, BYTES of the body, then the TCP connection is closed with
// no TLS close_notify).

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

var errDropped = errors.New("vdktest: connection dropped")

// dropWriter passes the headers and the first `left` body bytes, then
// closes the connection under the handler.
type dropWriter struct {
	http.ResponseWriter
	left int64
	done bool
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if d.done {
		return 0, errDropped
	}
	if int64(len(p)) < d.left {
		n, err := d.ResponseWriter.Write(p)
		d.left -= int64(n)
		return n, err
	}
	n, _ := d.ResponseWriter.Write(p[:d.left])
	d.left = 0
	d.cut()
	return n, errDropped
}

func (d *dropWriter) cut() {
	if d.done {
		return
	}
	d.done = true
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	hj, ok := d.ResponseWriter.(http.Hijacker)
	if !ok {
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	closeAbruptly(conn, buf)
}

func closeAbruptly(conn net.Conn, buf *bufio.ReadWriter) {
	buf.Flush()
	if tc, ok := conn.(*tls.Conn); ok {
		// Close the TCP connection under TLS: no close_notify alert.
		tc.NetConn().Close()
		return
	}
	conn.Close()
}

// putWriter answers 201 for a new file when the simulator sets no status.
type putWriter struct {
	http.ResponseWriter
	created bool
	wrote   bool
}

func (p *putWriter) WriteHeader(code int) {
	p.wrote = true
	p.ResponseWriter.WriteHeader(code)
}

func (p *putWriter) Write(b []byte) (int, error) {
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	return p.ResponseWriter.Write(b)
}

func (p *putWriter) finish() {
	if !p.wrote {
		if p.created {
			p.WriteHeader(http.StatusCreated)
		} else {
			p.WriteHeader(http.StatusOK)
		}
	}
}

func (x *extensions) folderAuthorized(r *http.Request) bool {
	if !x.folderAuth || x.sessionOK(r) {
		return true
	}
	u, p, ok := r.BasicAuth()
	return ok && u == x.user && p == x.pass
}

func (x *extensions) serveFolder(w http.ResponseWriter, r *http.Request, next http.Handler) {
	var drop, stall bool
	var after int64
	var seconds float64
	x.mu.Lock()
	switch r.Method {
	case http.MethodGet:
		x.stats.FolderGet++
	case http.MethodHead:
		x.stats.FolderHead++
	case http.MethodPut, http.MethodPost:
		x.stats.FolderPut++
	}
	x.mu.Unlock()

	if !x.folderAuthorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="VMware HTTP server"`)
		http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
		return
	}

	if r.Method == http.MethodGet {
		x.mu.Lock()
		if x.stall.count > 0 {
			x.stall.count--
			stall, seconds = true, x.stall.seconds
		}
		if x.drop.count > 0 {
			x.drop.count--
			drop, after = true, x.drop.after
		}
		x.mu.Unlock()
	}

	if stall {
		t := time.NewTimer(time.Duration(seconds * float64(time.Second)))
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-x.done:
			t.Stop()
			return
		}
	}

	switch {
	case drop:
		d := &dropWriter{ResponseWriter: w, left: after}
		next.ServeHTTP(d, r)
		d.cut()
	case r.Method == http.MethodPut:
		p := &putWriter{ResponseWriter: w}
		if local := folderLocal(r); local != "" {
			_, err := os.Stat(local)
			p.created = os.IsNotExist(err)
		}
		next.ServeHTTP(p, r)
		p.finish()
	default:
		next.ServeHTTP(w, r)
	}
}

// folderLocal is the local file a /folder/ URL names ("" when the
// datastore is unknown).
func folderLocal(r *http.Request) string {
	q := r.URL.Query()
	ds := datastoreByName(q.Get("dsName"))
	if ds == nil {
		return ""
	}
	return path.Join(ds.Info.GetDatastoreInfo().Url, strings.TrimPrefix(r.URL.Path, "/folder/"))
}
