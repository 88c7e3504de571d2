package main

// The HTTP wrapper in front of the simulator's handler. Everything vdk's
// tests need beyond the simulator is answered here, at the HTTP layer, and
// not by wrapping model objects with simulator.Map.Put as in govmomi's
// example_extend_test.go: the simulator asserts Map.Get(ref).(*VirtualMachine)
// in 15 places (CreateSnapshot_Task among them), so a wrapped VM would make
// those panic.
//
// For /sdk (and /sdk/vimService) the wrapper reads the body, peeks at the
// method name and _this, restores the body for the simulator, and:
//   - counts requests, logins and logouts (/vdktest/stats);
//   - answers injected faults (/vdktest/fault);
//   - answers our own methods (QueryChangedDiskAreas, DisableMethods,
//     EnableMethods) for requests with a valid session;
//   - fails any method disabled on its _this entity with MethodDisabled;
//   - tracks the sessions the simulator hands out (the vmware_soap_session
//     cookie of Login/CloneSession/LoginByToken answers, dropped by Logout),
//     since the simulator offers no exported way to check one.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"io/ioutil"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	vxml "github.com/vmware/govmomi/vim25/xml"
)

type counters struct {
	FolderGet  int64 `json:"folder_get"`
	FolderHead int64 `json:"folder_head"`
	FolderPut  int64 `json:"folder_put"`
	SOAP       int64 `json:"soap"`
	Logins     int64 `json:"logins"`
	Logouts    int64 `json:"logouts"`
}

type dropPlan struct {
	after int64
	count int
}

type stallPlan struct {
	seconds float64
	count   int
}

type extensions struct {
	esx        bool
	user, pass string
	cbtChunk   int64
	folderAuth bool

	mu       sync.Mutex
	stats    counters
	sessions map[string]bool
	expired  map[string]bool // sessions /vdktest/expire ended
	faults   map[string]int  // method name -> remaining injected faults
	drop     dropPlan
	stall    stallPlan
	disabled *disabledSet

	done chan struct{}
}

func newExtensions(esx bool, user, pass string, cbtChunk int64, folderAuth bool) *extensions {
	return &extensions{
		esx:        esx,
		user:       user,
		pass:       pass,
		cbtChunk:   cbtChunk,
		folderAuth: folderAuth,
		sessions:   map[string]bool{},
		expired:    map[string]bool{},
		faults:     map[string]int{},
		disabled:   newDisabledSet(),
		done:       make(chan struct{}),
	}
}

// shutdown wakes stalled requests so that the server can close.
func (x *extensions) shutdown() { close(x.done) }

func (x *extensions) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/sdk" || r.URL.Path == "/sdk/vimService":
			x.serveSOAP(w, r, next)
		case strings.HasPrefix(r.URL.Path, "/folder/"):
			x.serveFolder(w, r, next)
		case strings.HasPrefix(r.URL.Path, "/vdktest/"):
			x.serveControl(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// call is what the wrapper learns from a request body without decoding it
// into vim25 types.
type call struct {
	Method string
	This   types.ManagedObjectReference
}

// peekCall finds the first element inside soapenv:Body and its _this.
func peekCall(body []byte) call {
	var c call
	d := xml.NewDecoder(bytes.NewReader(body))
	depth, bodyDepth, methodDepth := 0, -1, -1
	inThis := false
	for {
		tok, err := d.Token()
		if err != nil {
			return c
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case bodyDepth < 0 && t.Name.Local == "Body":
				bodyDepth = depth
			case bodyDepth > 0 && methodDepth < 0 && depth == bodyDepth+1:
				methodDepth = depth
				c.Method = t.Name.Local
			case methodDepth > 0 && depth == methodDepth+1 && t.Name.Local == "_this":
				inThis = true
				for _, a := range t.Attr {
					if a.Name.Local == "type" {
						c.This.Type = a.Value
					}
				}
			}
		case xml.CharData:
			if inThis {
				c.This.Value += strings.TrimSpace(string(t))
			}
		case xml.EndElement:
			if inThis {
				return c
			}
			if depth == methodDepth {
				return c
			}
			depth--
		}
	}
}

// statusRecorder remembers the status the simulator answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

func (x *extensions) sessionOK(r *http.Request) bool {
	c, err := r.Cookie(soap.SessionCookieName)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.sessions[strings.Trim(c.Value, `"`)]
}

func (x *extensions) sessionExpired(r *http.Request) bool {
	c, err := r.Cookie(soap.SessionCookieName)
	if err != nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.expired[strings.Trim(c.Value, `"`)]
}

// expireSessions ends every session handed out so far.
func (x *extensions) expireSessions() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k := range x.sessions {
		x.expired[k] = true
		delete(x.sessions, k)
	}
}

func (x *extensions) serveSOAP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	x.mu.Lock()
	x.stats.SOAP++
	x.mu.Unlock()
	if r.Method != http.MethodPost {
		next.ServeHTTP(w, r)
		return
	}
	body, err := ioutil.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	c := peekCall(body)

	x.mu.Lock()
	injected := false
	if n := x.faults[c.Method]; n > 0 && c.Method != "" {
		injected = true
		if n == 1 {
			delete(x.faults, c.Method)
		} else {
			x.faults[c.Method] = n - 1
		}
	}
	x.mu.Unlock()
	if injected {
		msg := "injected fault: " + c.Method
		writeFault(w, msg, &types.SystemError{Reason: msg})
		return
	}

	// A session /vdktest/expire ended answers as vCenter does once its idle
	// timeout has passed: NotAuthenticated, until the client logs in again.
	if x.sessionExpired(r) && (c.Method == "Login" || c.Method == "RetrieveServiceContent") {
		// The server has forgotten the session: the call arrives as if
		// without a cookie.
		r.Header.Del("Cookie")
	} else if x.sessionExpired(r) {
		writeFault(w, "The session is not authenticated.", &types.NotAuthenticated{NoPermission: types.NoPermission{Object: c.This, PrivilegeId: "System.View"}})
		return
	}

	if x.serveOwn(w, r, c, body) {
		return
	}

	if x.sessionOK(r) && c.This.Value != "" {
		if src, ok := x.disabled.check(c.This, c.Method); ok {
			writeFault(w, fmt.Sprintf("The method is disabled by '%s'", src), &types.MethodDisabled{Source: src})
			return
		}
	}

	rec := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(rec, r)
	if rec.status != http.StatusOK {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, ck := range (&http.Response{Header: w.Header()}).Cookies() {
		if ck.Name == soap.SessionCookieName {
			x.sessions[ck.Value] = true
		}
	}
	switch c.Method {
	case "Login", "LoginByToken", "LoginExtensionByCertificate", "LoginExtensionBySubjectName", "CloneSession":
		x.stats.Logins++
	case "Logout":
		x.stats.Logouts++
		if ck, err := r.Cookie(soap.SessionCookieName); err == nil {
			delete(x.sessions, strings.Trim(ck.Value, `"`))
		}
	}
}

// serveOwn answers the methods the simulator lacks. It returns false for
// every other method.
func (x *extensions) serveOwn(w http.ResponseWriter, r *http.Request, c call, body []byte) bool {
	var f func(body []byte) (interface{}, *soap.Fault)
	switch c.Method {
	case "QueryChangedDiskAreas":
		f = x.queryChangedDiskAreas
	case "DisableMethods":
		f = x.disableMethods
	case "EnableMethods":
		f = x.enableMethods
	default:
		return false
	}
	if !x.sessionOK(r) {
		writeFault(w, "", &types.NotAuthenticated{NoPermission: types.NoPermission{Object: c.This, PrivilegeId: "System.View"}})
		return true
	}
	res, ferr := f(body)
	if ferr != nil {
		writeFault(w, ferr.String, ferr.Detail.Fault.(types.BaseMethodFault))
		return true
	}
	writeResponse(w, c.Method+"Response", res)
	return true
}

// The envelope is the simulator's own (simulator.go soapEnvelope,
// soapFault, faultDetail), so that our answers look like its answers.
type soapEnvelope struct {
	XMLName vxml.Name   `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type faultDetail struct {
	Fault types.AnyType
}

type soapFault struct {
	XMLName vxml.Name `xml:"soapenv:Fault"`
	Code    string    `xml:"faultcode"`
	String  string    `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

func (d *faultDetail) MarshalXML(e *vxml.Encoder, start vxml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		vxml.Attr{Name: vxml.Name{Local: "xmlns"}, Value: "urn:vim25"},
		vxml.Attr{Name: vxml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

type responseBody struct {
	name string
	val  interface{}
}

func (b *responseBody) MarshalXML(e *vxml.Encoder, start vxml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	res := vxml.StartElement{Name: vxml.Name{Space: "urn:vim25", Local: b.name}}
	if err := e.EncodeElement(b.val, res); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

func writeEnvelope(w http.ResponseWriter, status int, body interface{}) {
	var out bytes.Buffer
	io.WriteString(&out, vxml.Header)
	e := vxml.NewEncoder(&out)
	err := e.Encode(&soapEnvelope{
		Enc:  "http://schemas.xmlsoap.org/soap/encoding/",
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err == nil {
		err = e.Flush()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	w.Write(out.Bytes())
}

func writeFault(w http.ResponseWriter, msg string, fault types.BaseMethodFault) {
	f := &soapFault{Code: "ServerFaultCode", String: msg}
	f.Detail.Fault = &faultDetail{fault}
	writeEnvelope(w, http.StatusInternalServerError, struct{ Fault *soapFault }{f})
}

func writeResponse(w http.ResponseWriter, name string, val interface{}) {
	writeEnvelope(w, http.StatusOK, &responseBody{name: name, val: val})
}

func fault(msg string, f types.BaseMethodFault) *soap.Fault {
	sf := &soap.Fault{Code: "ServerFaultCode", String: msg}
	sf.Detail.Fault = f
	return sf
}
