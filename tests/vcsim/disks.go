package main

// The simulator lacks real disk files: its model VMs get an empty
// disk1.vmdk and disk1-flat.vmdk, a capacity of 1 MiB in capacityInKB only
// (capacityInBytes 0) and device keys picked at random. This answers like
// vCenter does: every disk of a model VM gets key 2000 + 16*bus + unit
// (scsi0:0 is 2000), capacityInBytes (-disk-size, default 64 MiB; 0 keeps
// the 1 MiB), config.changeTrackingEnabled false, and in the datastore folder a VMFS
// descriptor (createType "vmfs", as ESXi writes) next to a sparse
// -flat.vmdk of the full capacity, so GET /folder/... returns a real disk.

import (
	"fmt"
	"math/rand"
	"os"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func vmDisks(devices []types.BaseVirtualDevice) []*types.VirtualDisk {
	var disks []*types.VirtualDisk
	for _, d := range devices {
		if disk, ok := d.(*types.VirtualDisk); ok {
			disks = append(disks, disk)
		}
	}
	return disks
}

func diskFileName(d *types.VirtualDisk) string {
	if b, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
		return b.GetVirtualDeviceFileBackingInfo().FileName
	}
	return ""
}

func diskCapacity(d *types.VirtualDisk) int64 {
	if d.CapacityInBytes > 0 {
		return d.CapacityInBytes
	}
	return d.CapacityInKB * 1024
}

// datastoreByName finds a Datastore entity; an empty name gives the first.
func datastoreByName(name string) *simulator.Datastore {
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		if name == "" || ds.Name == name {
			return ds
		}
	}
	return nil
}

// localPath maps "[ds] dir/file" to the file in the folder behind ds.
func localPath(dsPath string) string {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return ""
	}
	ds := datastoreByName(p.Datastore)
	if ds == nil {
		return ""
	}
	return path.Join(ds.Info.GetDatastoreInfo().Url, p.Path)
}

func descriptor(flatName string, capacity int64) string {
	sectors := capacity / 512
	cyl := sectors / (255 * 63)
	if cyl > 65535 {
		cyl = 65535
	}
	cid := rand.Uint32()
	return fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%08x
parentCID=ffffffff
createType="vmfs"

# Extent description
RW %d VMFS "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "%d"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "%08x%08x%08x%08x"
ddb.thinProvisioned = "1"
ddb.uuid = "%s"
ddb.virtualHWVersion = "13"
`, cid, sectors, flatName, cyl, rand.Uint32(), rand.Uint32(), rand.Uint32(), cid, ddbUUID())
}

// ddbUUID is "60 00 c2 9x xx xx xx xx-xx xx xx xx xx xx xx xx", the form
// ESXi writes.
func ddbUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[0], b[1], b[2], b[3] = 0x60, 0x00, 0xc2, 0x90|b[3]&0x0f
	var parts []string
	for _, c := range b {
		parts = append(parts, fmt.Sprintf("%02x", c))
	}
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " ")
}

// prepareDisks runs before the server starts, so it needs no locks.
func prepareDisks(size int64) error {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		if vm.Config.ChangeTrackingEnabled == nil {
			vm.Config.ChangeTrackingEnabled = types.NewBool(false)
		}
		devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
		rekey := map[int32]int32{}
		used := map[int32]bool{}
		for _, d := range devices {
			used[d.GetVirtualDevice().Key] = true
		}
		for _, disk := range vmDisks(devices) {
			if size > 0 {
				disk.CapacityInBytes = size
				disk.CapacityInKB = size / 1024
			} else {
				disk.CapacityInBytes = disk.CapacityInKB * 1024
			}
			if di := disk.DeviceInfo.GetDescription(); di != nil {
				di.Summary = fmt.Sprintf("%d KB", disk.CapacityInKB)
			}
			key := int32(2000)
			if c, ok := devices.FindByKey(disk.ControllerKey).(types.BaseVirtualSCSIController); ok && disk.UnitNumber != nil {
				key = 2000 + 16*c.GetVirtualSCSIController().BusNumber + *disk.UnitNumber
			}
			for used[key] && key != disk.Key {
				key++
			}
			if key != disk.Key {
				delete(used, disk.Key)
				used[key] = true
				rekey[disk.Key] = key
				disk.Key = key
			}
			if err := placeholder(disk); err != nil {
				return err
			}
		}
		for _, d := range devices {
			if c, ok := d.(types.BaseVirtualController); ok {
				vc := c.GetVirtualController()
				for i, k := range vc.Device {
					if n, ok := rekey[k]; ok {
						vc.Device[i] = n
					}
				}
			}
		}
		if vm.Layout != nil {
			for i := range vm.Layout.Disk {
				if n, ok := rekey[vm.Layout.Disk[i].Key]; ok {
					vm.Layout.Disk[i].Key = n
				}
			}
		}
		if vm.LayoutEx != nil {
			for i := range vm.LayoutEx.Disk {
				if n, ok := rekey[vm.LayoutEx.Disk[i].Key]; ok {
					vm.LayoutEx.Disk[i].Key = n
				}
			}
		}
	}
	return nil
}

// placeholder writes a descriptor and a sparse flat extent for a disk
// whose descriptor is missing or empty.
func placeholder(disk *types.VirtualDisk) error {
	name := localPath(diskFileName(disk))
	if name == "" || !strings.HasSuffix(name, ".vmdk") {
		return nil
	}
	if fi, err := os.Stat(name); err == nil && fi.Size() > 0 {
		return nil
	}
	flat := strings.TrimSuffix(name, ".vmdk") + "-flat.vmdk"
	if err := os.MkdirAll(path.Dir(name), 0755); err != nil {
		return err
	}
	if err := os.WriteFile(name, []byte(descriptor(path.Base(flat), diskCapacity(disk))), 0644); err != nil {
		return err
	}
	f, err := os.OpenFile(flat, os.O_CREATE|os.O_WRONLY, 0644)
	if err != nil {
		return err
	}
	if err = f.Truncate(diskCapacity(disk)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
