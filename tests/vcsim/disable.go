package main

// The simulator lacks AuthorizationManager.DisableMethods and EnableMethods
// (vCenter's internal API, urn:internalvim25, which VDDK's
// PrepareForAccess/EndAccess call); this answers like vCenter does.
//
//	DisableMethods(_this, entity: MOR[], method: DisabledMethodRequest[]
//	               {method, reasonId}, sourceId)
//	EnableMethods(_this, entity: MOR[], method: string[], sourceId)
//
// A <method> given as plain text is taken too in DisableMethods. Each
// entity keeps a set of (method, sourceId); a method is disabled while any
// source disables it. Calling a disabled method (by its WSDL name, e.g.
// RelocateVM_Task) on that entity fails with MethodDisabled{source} and no
// task, as vCenter does; the entity's disabledMethod property lists the
// methods too. EnableMethods removes the source's entries.
//
// With -esx both methods answer NotSupported: ESXi's hostd offers neither
// (we answer it ourselves because the simulator, knowing no vim25 type
// DisableMethods, would answer an InvalidRequest "no vmomi type" instead of
// a method fault).
//
// GET /vdktest/disabled?vm=MOREF returns the JSON list of methods disabled
// on that entity (MOREF "vm-42", or "Type:value" for other entities).

import (
	"encoding/xml"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type disabledSet struct {
	mu sync.Mutex
	// entity -> method -> sources
	m map[types.ManagedObjectReference]map[string]map[string]bool
}

func newDisabledSet() *disabledSet {
	return &disabledSet{m: map[types.ManagedObjectReference]map[string]map[string]bool{}}
}

// check tells whether method is disabled on ref, and by which source.
func (d *disabledSet) check(ref types.ManagedObjectReference, method string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	srcs := d.m[ref][method]
	if len(srcs) == 0 {
		return "", false
	}
	var names []string
	for s := range srcs {
		names = append(names, s)
	}
	sort.Strings(names)
	return names[0], true
}

func (d *disabledSet) list(ref types.ManagedObjectReference) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := []string{}
	for m, srcs := range d.m[ref] {
		if len(srcs) > 0 {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

func (d *disabledSet) set(ref types.ManagedObjectReference, methods []string, source string, on bool) {
	d.mu.Lock()
	e := d.m[ref]
	if e == nil {
		e = map[string]map[string]bool{}
		d.m[ref] = e
	}
	for _, m := range methods {
		if on {
			if e[m] == nil {
				e[m] = map[string]bool{}
			}
			e[m][source] = true
		} else if e[m] != nil {
			delete(e[m], source)
			if len(e[m]) == 0 {
				delete(e, m)
			}
		}
	}
	d.mu.Unlock()
}

type methodArg struct {
	Text   string `xml:",chardata"`
	Method string `xml:"method"`
}

type methodsRequest struct {
	Entity   []types.ManagedObjectReference `xml:"entity"`
	Method   []methodArg                    `xml:"method"`
	SourceID string                         `xml:"sourceId"`
}

type methodsEnvelope struct {
	Body struct {
		Disable *methodsRequest `xml:"DisableMethods"`
		Enable  *methodsRequest `xml:"EnableMethods"`
	} `xml:"Body"`
}

func (x *extensions) methods(body []byte, disable bool) (interface{}, *soap.Fault) {
	name := "EnableMethods"
	if disable {
		name = "DisableMethods"
	}
	if x.esx {
		return nil, fault(name+" is not supported on ESXi", &types.NotSupported{})
	}
	var env methodsEnvelope
	if err := xml.Unmarshal(body, &env); err != nil {
		return nil, fault(err.Error(), &types.InvalidRequest{})
	}
	req := env.Body.Enable
	if disable {
		req = env.Body.Disable
	}
	if req == nil {
		return nil, fault("no "+name+" element", &types.InvalidRequest{})
	}
	var methods []string
	for _, m := range req.Method {
		s := strings.TrimSpace(m.Method)
		if s == "" {
			s = strings.TrimSpace(m.Text)
		}
		if s == "" {
			return nil, invalidArg("method", "empty method name")
		}
		methods = append(methods, s)
	}
	var entities []mo.Entity
	for _, ref := range req.Entity {
		if ref.Type == "ManagedEntity" || ref.Type == "" {
			// Some callers send the base type; find the object by value.
			for _, kind := range []string{"VirtualMachine", "HostSystem", "Datastore", "Folder", "Datacenter", "ResourcePool", "ClusterComputeResource"} {
				if simulator.Map.Get(types.ManagedObjectReference{Type: kind, Value: ref.Value}) != nil {
					ref.Type = kind
					break
				}
			}
		}
		e, ok := simulator.Map.Get(ref).(mo.Entity)
		if !ok {
			return nil, fault(fmt.Sprintf("managed object not found: %s", ref), &types.ManagedObjectNotFound{Obj: ref})
		}
		entities = append(entities, e)
	}
	for _, e := range entities {
		ref := e.Reference()
		x.disabled.set(ref, methods, req.SourceID, disable)
		ours := x.disabled.list(ref)
		simulator.Map.WithLock(e, func() {
			// Keep the simulator's own entries, then ours.
			keep := []string{}
			for _, m := range e.Entity().DisabledMethod {
				found := false
				for _, n := range methods {
					found = found || m == n
				}
				if !found {
					keep = append(keep, m)
				}
			}
			for _, m := range ours {
				dup := false
				for _, k := range keep {
					dup = dup || k == m
				}
				if !dup {
					keep = append(keep, m)
				}
			}
			simulator.Map.Update(e, []types.PropertyChange{{Name: "disabledMethod", Val: keep}})
		})
	}
	return &struct{}{}, nil
}

func (x *extensions) disableMethods(body []byte) (interface{}, *soap.Fault) {
	return x.methods(body, true)
}

func (x *extensions) enableMethods(body []byte) (interface{}, *soap.Fault) {
	return x.methods(body, false)
}

// parseMoref takes "vm-42" (a VirtualMachine) or "Type:value".
func parseMoref(s string) types.ManagedObjectReference {
	if i := strings.Index(s, ":"); i > 0 {
		return types.ManagedObjectReference{Type: s[:i], Value: s[i+1:]}
	}
	return types.ManagedObjectReference{Type: "VirtualMachine", Value: s}
}
