package main

// The simulator lacks VirtualMachine.QueryChangedDiskAreas (changed block
// tracking); this answers like vCenter does.
//
// The changes come from a sidecar that tests upload next to the disk: for
// a disk backed by "[ds] dir/disk.vmdk", the file dir/disk.vmdk.cbt.json in
// that datastore's folder:
//
//	{"changes": {"*": [[start, length], ...], "52 de ad/4": [[start, length]]}}
//
// changeId "*" means all allocated areas. Like vCenter, one answer covers
// at most -cbt-chunk bytes from startOffset (DiskChangeInfo.StartOffset and
// Length; Length never passes the disk's capacity) and clips the areas to
// that window, so a client loops with start = StartOffset + Length until
// the capacity. Faults:
//   - no sidecar: FileFault "change tracking is not enabled for disk KEY"
//   - unknown deviceKey or changeId, snapshot not of this VM, startOffset
//     negative or not below the capacity: InvalidArgument (invalidProperty
//     names the argument)
//   - unknown VM or snapshot: ManagedObjectNotFound.

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type cbtSidecar struct {
	Changes map[string][][2]int64 `json:"changes"`
}

func invalidArg(prop, msg string) *soap.Fault {
	return fault(msg, &types.InvalidArgument{InvalidProperty: prop})
}

func (x *extensions) queryChangedDiskAreas(body []byte) (interface{}, *soap.Fault) {
	m, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		return nil, fault(err.Error(), &types.InvalidRequest{})
	}
	req := m.Body.(*types.QueryChangedDiskAreas)

	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return nil, fault(fmt.Sprintf("managed object not found: %s", req.This), &types.ManagedObjectNotFound{Obj: req.This})
	}

	// The disk as the VM has it now, or as the snapshot has it.
	var disk *types.VirtualDisk
	var snapFault *soap.Fault
	simulator.Map.WithLock(vm, func() {
		devices := vm.Config.Hardware.Device
		if req.Snapshot != nil {
			snap, ok := simulator.Map.Get(*req.Snapshot).(*simulator.VirtualMachineSnapshot)
			if !ok {
				snapFault = fault(fmt.Sprintf("managed object not found: %s", *req.Snapshot), &types.ManagedObjectNotFound{Obj: *req.Snapshot})
				return
			}
			if snap.Vm != vm.Self {
				snapFault = invalidArg("snapshot", fmt.Sprintf("snapshot %s is not a snapshot of %s", snap.Self.Value, vm.Self.Value))
				return
			}
			devices = snap.Config.Hardware.Device
		}
		for _, d := range vmDisks(devices) {
			if d.Key == req.DeviceKey {
				c := *d
				disk = &c
			}
		}
	})
	if snapFault != nil {
		return nil, snapFault
	}
	if disk == nil {
		return nil, invalidArg("deviceKey", fmt.Sprintf("no virtual disk with device key %d", req.DeviceKey))
	}

	capacity := diskCapacity(disk)
	if req.StartOffset < 0 || req.StartOffset >= capacity {
		return nil, invalidArg("startOffset", fmt.Sprintf("startOffset %d is outside the disk (capacity %d)", req.StartOffset, capacity))
	}

	sidecarDS := diskFileName(disk) + ".cbt.json"
	data, err := os.ReadFile(localPath(diskFileName(disk)) + ".cbt.json")
	if err != nil {
		return nil, fault(fmt.Sprintf("change tracking is not enabled for disk %d", req.DeviceKey), &types.FileFault{File: sidecarDS})
	}
	var sc cbtSidecar
	if err := json.Unmarshal(data, &sc); err != nil {
		return nil, fault(fmt.Sprintf("%s: %v", sidecarDS, err), &types.FileFault{File: sidecarDS})
	}
	areas, ok := sc.Changes[req.ChangeId]
	if !ok {
		return nil, invalidArg("changeId", fmt.Sprintf("unknown changeId %s for disk %d", req.ChangeId, req.DeviceKey))
	}

	end := req.StartOffset + x.cbtChunk
	if end > capacity || end < req.StartOffset {
		end = capacity
	}
	info := types.DiskChangeInfo{StartOffset: req.StartOffset, Length: end - req.StartOffset}
	for _, a := range mergeAreas(areas) {
		s, e := a[0], a[0]+a[1]
		if s < req.StartOffset {
			s = req.StartOffset
		}
		if e > end {
			e = end
		}
		if e > s {
			info.ChangedArea = append(info.ChangedArea, types.DiskChangeExtent{Start: s, Length: e - s})
		}
	}
	return &types.QueryChangedDiskAreasResponse{Returnval: info}, nil
}

// mergeAreas sorts the areas and joins the ones that overlap or touch.
func mergeAreas(in [][2]int64) [][2]int64 {
	var areas [][2]int64
	for _, a := range in {
		if a[0] >= 0 && a[1] > 0 {
			areas = append(areas, a)
		}
	}
	sort.Slice(areas, func(i, j int) bool { return areas[i][0] < areas[j][0] })
	var out [][2]int64
	for _, a := range areas {
		if n := len(out); n > 0 && a[0] <= out[n-1][0]+out[n-1][1] {
			if e := a[0] + a[1]; e > out[n-1][0]+out[n-1][1] {
				out[n-1][1] = e - out[n-1][0]
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
