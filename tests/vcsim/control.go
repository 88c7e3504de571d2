package main

// Test controls, plain HTTP GETs with no authentication (the simulator
// has none of this; vCenter neither):
//
//	/vdktest/drop?after=BYTES&count=N    the next N /folder/ GETs send the
//	                                     headers and BYTES of the body, then
//	                                     the connection is closed
//	/vdktest/stall?count=N&seconds=S     the next N /folder/ GETs wait S
//	                                     seconds (or until the client goes)
//	/vdktest/fault?method=NAME&count=N   the next N SOAP calls of NAME answer
//	                                     HTTP 500 with a SystemError fault
//	                                     "injected fault: NAME"
//	/vdktest/stats[?reset=1]             JSON counters (reset=1: then zero them)
//	/vdktest/disabled?vm=MOREF           JSON list of methods disabled on it
//	/vdktest/cbt?vm=MOREF&key=K[&changeId=ID][&enabled=0|1]
//	                                     set the disk's backing changeId and
//	                                     the VM's config.changeTrackingEnabled
//	/vdktest/expire                      end every session so far (SOAP calls
//	                                     get NotAuthenticated, /folder/ 401)
//	/vdktest/reset                       forget every pending drop, stall
//	                                     and fault
//
// count=0 cancels; the setters answer "ok" (text/plain), bad arguments 400.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func (x *extensions) serveControl(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bad := func(msg string) { http.Error(w, msg, http.StatusBadRequest) }
	count := 1
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			bad("bad count")
			return
		}
		count = n
	}
	ok := func() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	}
	asJSON := func(v interface{}) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}

	switch r.URL.Path {
	case "/vdktest/drop":
		after, err := strconv.ParseInt(q.Get("after"), 10, 64)
		if err != nil || after < 0 {
			bad("bad after")
			return
		}
		x.mu.Lock()
		x.drop = dropPlan{after: after, count: count}
		x.mu.Unlock()
		ok()
	case "/vdktest/stall":
		sec, err := strconv.ParseFloat(q.Get("seconds"), 64)
		if err != nil || sec < 0 {
			bad("bad seconds")
			return
		}
		x.mu.Lock()
		x.stall = stallPlan{seconds: sec, count: count}
		x.mu.Unlock()
		ok()
	case "/vdktest/fault":
		m := q.Get("method")
		if m == "" {
			bad("method missing")
			return
		}
		x.mu.Lock()
		if count == 0 {
			delete(x.faults, m)
		} else {
			x.faults[m] = count
		}
		x.mu.Unlock()
		ok()
	case "/vdktest/stats":
		x.mu.Lock()
		c := x.stats
		if q.Get("reset") != "" && q.Get("reset") != "0" {
			x.stats = counters{}
		}
		x.mu.Unlock()
		asJSON(&c)
	case "/vdktest/expire":
		x.expireSessions()
		ok()
	case "/vdktest/reset":
		x.mu.Lock()
		x.drop, x.stall, x.faults = dropPlan{}, stallPlan{}, map[string]int{}
		x.mu.Unlock()
		ok()
	case "/vdktest/disabled":
		v := q.Get("vm")
		if v == "" {
			bad("vm missing")
			return
		}
		asJSON(x.disabled.list(parseMoref(v)))
	case "/vdktest/cbt":
		ref := parseMoref(q.Get("vm"))
		vm, isVM := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		key, err := strconv.Atoi(q.Get("key"))
		if !isVM || err != nil {
			bad("bad vm or key")
			return
		}
		found := false
		simulator.Map.WithLock(vm, func() {
			for _, d := range vmDisks(vm.Config.Hardware.Device) {
				if d.Key != int32(key) {
					continue
				}
				found = true
				if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && q.Has("changeId") {
					b.ChangeId = q.Get("changeId")
				}
			}
			if found && q.Get("enabled") != "" {
				on := q.Get("enabled") == "1"
				vm.Config.ChangeTrackingEnabled = &on
			}
		})
		if !found {
			bad("no such disk")
			return
		}
		ok()
	default:
		http.NotFound(w, r)
	}
}
