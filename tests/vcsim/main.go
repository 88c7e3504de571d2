// Command vdk-vcsim is the test peer of vdk's remote side: VMware's vSphere
// simulator (govmomi's simulator package, as packaged by Debian) serving a
// vCenter (default) or ESXi (-esx) model on loopback, with the few
// extensions the remote tests need (see the other files of this folder:
// cbt.go, disable.go, folder.go, control.go, disks.go, soap.go).
//
// It writes a state file (-state) once the listener is up, prints the same
// JSON on stdout, and runs until SIGTERM/SIGINT, when it removes the model's
// temporary folders and the state file and exits 0.
//
// State JSON: {"url": "https://127.0.0.1:PORT", "sdk": URL+"/sdk",
// "sha1"/"sha256": "AA:BB:..." thumbprints of the leaf certificate (empty
// without -tls), "pid", "api_type": "VirtualCenter" or "HostAgent",
// "datacenter": "DC0" (ha-datacenter with -esx), "datastores": {name:
// local folder}, "vms": [{"name", "moref": "vm-57", "path":
// "/DC0/vm/NAME", "disks": [{"key": 2000, "file": "[LocalDS_0] NAME/disk1.vmdk",
// "local": the file in the folder, "capacity": bytes}]}]}.
package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
)

type stateDisk struct {
	Key      int32  `json:"key"`
	File     string `json:"file"`
	Local    string `json:"local"`
	Capacity int64  `json:"capacity"`
}

type stateVM struct {
	Name  string      `json:"name"`
	Moref string      `json:"moref"`
	Path  string      `json:"path"`
	Disks []stateDisk `json:"disks"`
}

type state struct {
	URL        string            `json:"url"`
	SDK        string            `json:"sdk"`
	SHA1       string            `json:"sha1"`
	SHA256     string            `json:"sha256"`
	PID        int               `json:"pid"`
	APIType    string            `json:"api_type"`
	Datacenter string            `json:"datacenter"`
	Datastores map[string]string `json:"datastores"`
	VMs        []stateVM         `json:"vms"`
}

// thumbprint formats a digest the way VDDK takes thumbprints: upper-case
// hex pairs separated by colons.
func thumbprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// inventoryPath walks an entity's parents up to (not including) the root
// folder: /DC0/vm/DC0_H0_VM0.
func inventoryPath(e mo.Entity) string {
	var names []string
	for {
		me := e.Entity()
		if me.Parent == nil {
			break
		}
		names = append([]string{me.Name}, names...)
		p, ok := simulator.Map.Get(*me.Parent).(mo.Entity)
		if !ok {
			break
		}
		e = p
	}
	return "/" + strings.Join(names, "/")
}

func writeAtomic(name string, data []byte, mode os.FileMode) error {
	tmp, err := ioutil.TempFile(filepath.Dir(name), "."+filepath.Base(name)+".")
	if err != nil {
		return err
	}
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks one)")
	useTLS := flag.Bool("tls", false, "serve HTTPS with a self-signed certificate made at start")
	certOut := flag.String("cert-out", "", "write the certificate's PEM to this file (with -tls)")
	esxMode := flag.Bool("esx", false, "model a plain ESXi host instead of vCenter")
	user := flag.String("user", "vdk", "the only accepted user name")
	password := flag.String("password", "vdk-secret", "the only accepted password")
	stateFile := flag.String("state", "", "write the state JSON here (atomically) once listening")
	cbtChunk := flag.Int64("cbt-chunk", 16<<20, "bytes covered by one QueryChangedDiskAreas answer")
	diskSize := flag.Int64("disk-size", 64<<20, "capacity in bytes of every model VM disk (0: keep the model's 1 MiB)")
	folderAuth := flag.Bool("folder-auth", true, "/folder/ requires a session cookie or HTTP Basic credentials, as vCenter does")
	trace := flag.Bool("trace", false, "log SOAP traffic to stderr")
	flag.Parse()

	log.SetPrefix("vdk-vcsim: ")
	if *cbtChunk <= 0 {
		log.Fatal("-cbt-chunk must be positive")
	}
	if *diskSize < 0 || *diskSize%512 != 0 {
		log.Fatal("-disk-size must be a multiple of 512")
	}
	simulator.Trace = *trace

	var model *simulator.Model
	if *esxMode {
		model = simulator.ESX()
	} else {
		model = simulator.VPX()
	}
	if err := model.Create(); err != nil {
		log.Fatalf("model: %v", err)
	}
	cleanup := func() { model.Remove() }

	if err := prepareDisks(*diskSize); err != nil {
		cleanup()
		log.Fatalf("disks: %v", err)
	}

	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *password)}

	var sha1s, sha256s string
	if *useTLS {
		cert, pemData, err := selfSignedCert()
		if err != nil {
			cleanup()
			log.Fatalf("certificate: %v", err)
		}
		model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s1 := sha1.Sum(cert.Certificate[0])
		s2 := sha256.Sum256(cert.Certificate[0])
		sha1s, sha256s = thumbprint(s1[:]), thumbprint(s2[:])
		if *certOut != "" {
			if err := writeAtomic(*certOut, pemData, 0644); err != nil {
				cleanup()
				log.Fatalf("cert-out: %v", err)
			}
		}
	}

	srv := model.Service.NewServer()

	x := newExtensions(*esxMode, *user, *password, *cbtChunk, *folderAuth)
	// NewServer has started serving already, but nobody knows the port
	// before the state file is written, so no request can race with this.
	srv.Config.Handler = x.wrap(srv.Config.Handler)

	st := state{
		URL:        srv.URL.Scheme + "://" + srv.URL.Host,
		SHA1:       sha1s,
		SHA256:     sha256s,
		PID:        os.Getpid(),
		Datastores: map[string]string{},
	}
	st.SDK = st.URL + "/sdk"
	if *esxMode {
		st.APIType = "HostAgent"
	} else {
		st.APIType = "VirtualCenter"
	}
	if dcs := simulator.Map.All("Datacenter"); len(dcs) > 0 {
		st.Datacenter = dcs[0].Entity().Name
	}
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		st.Datastores[ds.Name] = ds.Info.GetDatastoreInfo().Url
	}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		svm := stateVM{Name: vm.Name, Moref: vm.Self.Value, Path: inventoryPath(vm), Disks: []stateDisk{}}
		for _, d := range vmDisks(vm.Config.Hardware.Device) {
			svm.Disks = append(svm.Disks, stateDisk{
				Key:      d.Key,
				File:     diskFileName(d),
				Local:    localPath(diskFileName(d)),
				Capacity: diskCapacity(d),
			})
		}
		st.VMs = append(st.VMs, svm)
	}
	sort.Slice(st.VMs, func(i, j int) bool { return st.VMs[i].Name < st.VMs[j].Name })

	out, _ := json.Marshal(&st)
	if *stateFile != "" {
		if err := writeAtomic(*stateFile, append(out, '\n'), 0644); err != nil {
			srv.Close()
			cleanup()
			log.Fatalf("state: %v", err)
		}
	}
	fmt.Println(string(out))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	x.shutdown()
	srv.Close()
	cleanup()
	if *stateFile != "" {
		os.Remove(*stateFile)
	}
	os.Exit(0)
}
