package critest

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/test/e2e/framework"
)

// CritestVersion is the cri-tools release whose critest runs here: the one
// place it is pinned.
const CritestVersion = "v1.37.0"

const goarch = runtime.GOARCH

var (
	focus     = flag.String("critest.focus", "", "run only the critest specs matching this regexp")
	benchmark = flag.Bool("critest.benchmark", false, "run critest's benchmarks instead of its conformance specs")
	benchDir  = flag.String("critest.benchmark-dir", "", "where -critest.benchmark writes its JSON figures")
	handler   = flag.String("critest.runtime-handler", "", "run every pod under this RuntimeClass handler (runsc: gVisor, with skip-runsc.txt)")
)

// skipFiles are the skip lists for the handler critest runs under:
// skip.txt (the host's limits, and berth's open issues) for every handler,
// and skip-<handler>.txt for the limits of a handler other than runc.
func skipFiles(handler string) []string {
	if handler == "" || handler == "runc" {
		return []string{"skip.txt"}
	}
	return []string{"skip.txt", "skip-" + handler + ".txt"}
}

func TestCritest(t *testing.T) {
	bin := critestBinary(t)
	work := t.TempDir()

	reg := framework.StartRegistry(t, framework.RegistryOptions{})
	pushImages(t, reg, work)
	mirrors := filepath.Join(work, "registries.d")
	writeMirrors(t, mirrors, reg)

	// NRI on a socket of the run's own, which critest's NRI specs
	// connect their plugins to (-nri-socket); no pre-registered plugins.
	// The request timeout is above the default 2s: the synchronisation
	// specs hold a plugin's Synchronize open for 2s on purpose (to create
	// containers meanwhile), and NRI cuts a plugin off at the request
	// timeout, synchronisation included; at 2s the plugin is dropped and
	// the specs skip themselves as if berth lost the containers.
	nriSocket := filepath.Join(work, "nri.sock")
	d := framework.StartDaemon(t, framework.Options{
		NoImage: true,
		Config: fmt.Sprintf("[images]\nregistry_config_dir = %q\n\n[nri]\nenable = true\nsocket_path = %q\nplugin_path = \"\"\nplugin_request_timeout = \"10s\"\n"+
			// berthd's default, which the e2e framework turns off.
			"\n[network]\nprepare_ahead = true\n",
			mirrors, nriSocket),
	})

	var skips []string
	for _, f := range skipFiles(*handler) {
		s, err := loadSkips(f)
		if err != nil {
			t.Fatal(err)
		}
		skips = append(skips, s...)
	}
	// critest's HostIpc specs make host shared memory segments (ipcmk -M
	// 1048576) and leave them: remove those that appear during the run.
	shmBefore := shmSegments()
	t.Cleanup(func() { removeNewShm(t, shmBefore) })

	report := filepath.Join(work, "junit.xml")
	args := []string{
		"-runtime-endpoint", "unix://" + d.Socket,
		"-image-endpoint", "unix://" + d.Socket,
		"-nri-socket", nriSocket,
		"-ginkgo.no-color",
		"-ginkgo.junit-report", report,
		"-ginkgo.timeout", "50m",
	}
	if *handler != "" {
		args = append(args, "-runtime-handler", *handler)
	}
	if *benchmark {
		params, err := filepath.Abs("benchmark.yaml")
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-benchmark", "-benchmarking-params-file", params)
		dir := *benchDir
		if dir == "" {
			dir = filepath.Join(work, "benchmark")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-benchmarking-output-dir", dir)
		defer summarizeBenchmarks(t, dir)
	} else {
		args = append(args, "-ginkgo.skip", strings.Join(skips, "|"))
	}
	if *focus != "" {
		args = append(args, "-ginkgo.focus", *focus)
	}
	out := filepath.Join(work, "critest.log")
	logf, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = work
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	runErr := cmd.Run()
	logf.Close()
	t.Logf("critest %s ran in %v (log kept at %s if the test fails)", CritestVersion, time.Since(start).Round(time.Second), out)

	if *benchmark {
		// The start-a-container benchmark reports only in critest's log.
		if b, err := os.ReadFile(out); err == nil {
			t.Logf("critest benchmark output:\n%s", b)
		}
	}
	res, perr := readJUnit(report)
	if perr != nil {
		t.Errorf("read critest's report: %v", perr)
	}
	// The counts go to stdout so they show in CI output even without -v.
	fmt.Printf("critest %s (handler %q): %d passed, %d failed, %d skipped\n", CritestVersion, *handler, len(res["passed"]), len(res["failed"]), len(res["skipped"]))
	// Specs critest skipped by itself (a feature the runtime does not
	// advertise, a host without something) rather than through skip.txt.
	listed := regexp.MustCompile(strings.Join(skips, "|"))
	for _, name := range res["skipped"] {
		// critest itself skips its benchmarks outside -benchmark.
		if *focus == "" && !*benchmark && !listed.MatchString(name) && !strings.Contains(name, " benchmark about ") {
			t.Logf("skipped by critest itself: %s", name)
		}
	}
	for _, name := range res["failed"] {
		t.Errorf("critest spec failed: %s", name)
	}
	if runErr != nil || len(res["failed"]) > 0 || perr != nil {
		keepLog(t, out)
		if runErr != nil && len(res["failed"]) == 0 {
			t.Errorf("critest: %v", runErr)
		}
	}
}

// summarizeBenchmarks prints p50 and p99 of each operation in critest's
// benchmark JSON files.
func summarizeBenchmarks(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		var r struct {
			OperationsNames []string `json:"operationsNames"`
			NumParallel     int      `json:"numParallel"`
			Datapoints      []struct {
				OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
			} `json:"datapoints"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for i, op := range r.OperationsNames {
			var ms []float64
			for _, dp := range r.Datapoints {
				if i < len(dp.OperationsDurationsNs) {
					ms = append(ms, float64(dp.OperationsDurationsNs[i])/1e6)
				}
			}
			if len(ms) == 0 {
				continue
			}
			sort.Float64s(ms)
			p := func(q float64) float64 { return ms[int(q*float64(len(ms)-1)+0.5)] }
			fmt.Printf("critest benchmark %-40s %-16s n=%-3d p50 %7.1f ms  p99 %7.1f ms\n",
				strings.TrimSuffix(filepath.Base(f), ".json"), op, len(ms), p(0.5), p(0.99))
		}
	}
}

// shmSegments returns the host's shared memory segments: shmid → "size nattch".
func shmSegments() map[string]string {
	b, _ := os.ReadFile("/proc/sysvipc/shm")
	segs := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 7 {
			continue
		}
		segs[f[1]] = f[3] + " " + f[6]
	}
	return segs
}

// removeNewShm removes the unattached 1 MiB segments made since before:
// the ones critest's ipcmk left.
func removeNewShm(t *testing.T, before map[string]string) {
	for id, sizeAttach := range shmSegments() {
		if _, ok := before[id]; ok || sizeAttach != "1048576 0" {
			continue
		}
		if out, err := exec.Command("ipcrm", "-m", id).CombinedOutput(); err != nil {
			t.Errorf("remove critest's shared memory segment %s: %v %s", id, err, out)
		}
	}
}

// keepLog copies critest's log where it outlives the test's temp dir and
// prints its failure summary.
func keepLog(t *testing.T, p string) {
	dst := filepath.Join(os.TempDir(), fmt.Sprintf("berth-critest-%d.log", time.Now().Unix()))
	if b, err := os.ReadFile(p); err == nil {
		_ = os.WriteFile(dst, b, 0o644)
		t.Logf("critest log: %s", dst)
		if i := strings.LastIndex(string(b), "Summarizing"); i >= 0 {
			t.Logf("%s", b[i:])
		}
	}
}

// loadSkips reads the skip list: each regexp line must follow at least one
// comment line, its reason.
func loadSkips(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var skips []string
	reason := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			reason = false
		case strings.HasPrefix(line, "#"):
			reason = true
		case !reason:
			return nil, fmt.Errorf("%s:%d: skip %q has no comment saying why", p, n, line)
		default:
			if _, err := regexp.Compile(line); err != nil {
				return nil, fmt.Errorf("%s:%d: %v", p, n, err)
			}
			skips = append(skips, line)
		}
	}
	return skips, sc.Err()
}

// readJUnit returns the spec names in ginkgo's JUnit report by status
// (passed, failed, skipped, …; errors count as failed).
func readJUnit(p string) (map[string][]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return map[string][]string{}, err
	}
	var r struct {
		Suites []struct {
			Cases []struct {
				Name   string `xml:"name,attr"`
				Status string `xml:"status,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		return map[string][]string{}, err
	}
	res := map[string][]string{}
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			st := c.Status
			switch st {
			case "panicked", "interrupted", "aborted", "timedout":
				st = "failed"
			case "pending":
				st = "skipped"
			}
			// Suite-level nodes ([BeforeSuite] …) are not specs.
			if strings.HasPrefix(c.Name, "[") && !strings.HasPrefix(c.Name, "[It]") && st != "failed" {
				continue
			}
			res[st] = append(res[st], c.Name)
		}
	}
	for _, v := range res {
		sort.Strings(v)
	}
	return res, nil
}

// critestBinary builds critest CritestVersion (a Go test binary in
// cri-tools' cmd/critest) from the Go module proxy, once per version: it is
// kept in the user cache dir.
func critestBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(cache, "berth", "critest-"+CritestVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	dl := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/cri-tools@"+CritestVersion)
	dl.Dir = os.TempDir() // outside berth's module: a plain download
	b, err := dl.Output()
	if err != nil {
		t.Fatalf("go mod download sigs.k8s.io/cri-tools@%s: %v\n%s", CritestVersion, err, b)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(b, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download sigs.k8s.io/cri-tools@%s: %v %s", CritestVersion, err, mod.Error)
	}
	// The module cache is read-only; go test -c wants a writable module.
	src := filepath.Join(t.TempDir(), "cri-tools")
	if out, err := exec.Command("cp", "-r", mod.Dir, src).CombinedOutput(); err != nil {
		t.Fatalf("copy cri-tools: %v\n%s", err, out)
	}
	if out, err := exec.Command("chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		t.Fatalf("chmod cri-tools: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "test", "-c", "-o", bin+".tmp", "./cmd/critest")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build critest %s: %v\n%s", CritestVersion, err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built critest %s in %v", CritestVersion, time.Since(start).Round(time.Second))
	return bin
}
