package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Interface is one network interface's counters.
type Interface struct {
	Name      string
	RxBytes   uint64
	RxErrors  uint64
	TxBytes   uint64
	TxErrors  uint64
	RxPackets uint64
	RxDropped uint64
	TxPackets uint64
	TxDropped uint64
}

// Network is the counters of every interface in a pod's network namespace.
type Network struct {
	At         time.Time
	Interfaces []Interface
}

// Default returns the interface kubelet treats as the pod's: eth0 when
// present, else the first one that is not loopback.
func (n *Network) Default() *Interface {
	for i := range n.Interfaces {
		if n.Interfaces[i].Name == "eth0" {
			return &n.Interfaces[i]
		}
	}
	for i := range n.Interfaces {
		if n.Interfaces[i].Name != "lo" {
			return &n.Interfaces[i]
		}
	}
	return nil
}

// ReadNetwork reads the interface counters of the network namespace pinned
// at nsPath.
func ReadNetwork(nsPath string) (*Network, error) {
	ns, errs := ReadNetworks([]string{nsPath})
	return ns[0], errs[0]
}

// ReadNetworks reads the interface counters of each network namespace in
// nsPaths (results in the same order). It runs on one goroutine locked to
// its own OS thread, which joins each namespace in turn; the thread is never
// unlocked, so Go discards it when the goroutine ends and no other
// goroutine ever runs in a pod's namespace. One thread per call, not per
// pod: creating a thread costs as much as reading a namespace.
func ReadNetworks(nsPaths []string) ([]*Network, []error) {
	nets := make([]*Network, len(nsPaths))
	errs := make([]error, len(nsPaths))
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		for i, p := range nsPaths {
			data, err := readInNetns(p)
			if err == nil {
				var ifs []Interface
				if ifs, err = parseNetDev(data); err == nil {
					nets[i] = &Network{At: time.Now(), Interfaces: ifs}
				}
			}
			errs[i] = err
		}
	}()
	<-done
	return nets, errs
}

// readInNetns joins the namespace at nsPath with the calling (locked)
// thread and reads its /proc/net/dev.
func readInNetns(nsPath string) ([]byte, error) {
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("join network namespace %s: %w", nsPath, err)
	}
	// thread-self, not self: /proc/self/net is the main thread's netns.
	return os.ReadFile("/proc/thread-self/net/dev")
}

// parseNetDev parses /proc/net/dev: two header lines, then
// "name: rx_bytes rx_packets rx_errs rx_drop ... tx_bytes tx_packets tx_errs tx_drop ...".
func parseNetDev(data []byte) ([]Interface, error) {
	var out []Interface
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 0; sc.Scan(); n++ {
		if n < 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("/proc/net/dev: short line %q", sc.Text())
		}
		var v [8]uint64
		for i, col := range []int{0, 2, 8, 10, 1, 3, 9, 11} {
			x, err := strconv.ParseUint(f[col], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/net/dev: line %q: %w", sc.Text(), err)
			}
			v[i] = x
		}
		out = append(out, Interface{
			Name: strings.TrimSpace(name), RxBytes: v[0], RxErrors: v[1], TxBytes: v[2], TxErrors: v[3],
			RxPackets: v[4], RxDropped: v[5], TxPackets: v[6], TxDropped: v[7],
		})
	}
	return out, sc.Err()
}
