package critest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"

	"github.com/berth-project/berth/test/e2e/framework"
	"github.com/berth-project/berth/test/testimage"
)

// DynamicBusybox is Debian's dynamically linked busybox, unpacked (not
// installed: it conflicts with busybox-static) by hack/install.sh. Its sh
// execs applets through PATH instead of running them in-process, which
// critest's MaskedPaths spec needs (it masks /bin/ls and expects sh to fail
// to exec it).
const DynamicBusybox = "/var/cache/berth/busybox-dynamic/bin/busybox"

// upstreams are the registries critest names; berthd mirrors each of them to
// the loopback registry, path for path.
var upstreams = []string{"registry.k8s.io", "gcr.io", "k8s.gcr.io", "public.ecr.aws"}

// image is one look-alike: the repository path (without the upstream host:
// all upstreams share one loopback registry) and how to build it.
type image struct {
	repoTag string
	opts    testimage.Options
}

// passwd and group follow busybox's official image, plus the users critest's
// user images add.
const (
	passwd = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nbin:x:2:2:bin:/bin:/bin/false\n" +
		"sys:x:3:3:sys:/dev:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
	group = "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nwheel:x:10:root\nmail:x:12:\n" +
		"www-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n"
)

// pgrep stands in for the applet Debian's busybox lacks (critest runs
// "pgrep sleep"): the pids whose command name is $1.
const pgrep = `#!/bin/sh
found=1
for d in /proc/[0-9]*; do
	if [ "$(cat "$d/comm" 2>/dev/null)" = "$1" ]; then echo "${d#/proc/}"; found=0; fi
done
exit $found
`

// ipcs stands in for the applet Debian's busybox lacks (critest runs
// "ipcs -m" to see whether a host segment is visible): the shared memory
// segments of the IPC namespace, from /proc/sysvipc/shm.
const ipcs = `#!/bin/sh
echo "------ Shared Memory Segments --------"
echo "key        shmid      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm | while read key shmid perms size cpid lpid nattch rest; do
	echo "$key $shmid $perms $size $nattch"
done
`

// httpdForeground starts busybox's httpd as the httpd image's
// httpd-foreground does Apache, with a first log line naming httpd (critest
// reads the container log for it).
const httpdForeground = `#!/bin/sh
echo "httpd: serving /usr/local/apache2/htdocs on port 80"
exec httpd -f -p 80 -h /usr/local/apache2/htdocs
`

// baseImage is busybox as critest expects it: the dynamic busybox with its
// libraries and an applet symlink per command in /bin.
func baseImage() (v1.Image, error) {
	bin, err := os.ReadFile(DynamicBusybox)
	if err != nil {
		return nil, fmt.Errorf("read %s (run hack/install.sh, which unpacks Debian's busybox there): %w", DynamicBusybox, err)
	}
	out, err := exec.Command(DynamicBusybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", DynamicBusybox, err)
	}
	l := testimage.Layer{
		Files: map[string]string{"/bin/busybox": string(bin), "/etc/passwd": passwd, "/etc/group": group,
			"/bin/pgrep": pgrep, "/bin/ipcs": ipcs},
		Modes: map[string]os.FileMode{"/bin/busybox": 0o755, "/bin/pgrep": 0o755, "/bin/ipcs": 0o755, "/tmp": 0o1777, "/root": 0o700},
		Dirs:  []string{"/tmp", "/root", "/home", "/var/www", "/var/run", "/proc", "/sys", "/dev", "/etc"},
		// Hard links, as in the official image: critest masks /bin/ls, and
		// a symlink would mask busybox itself.
		Hardlinks: map[string]string{},
	}
	libs, err := sharedLibs(DynamicBusybox)
	if err != nil {
		return nil, err
	}
	for _, lib := range libs {
		b, err := os.ReadFile(lib)
		if err != nil {
			return nil, err
		}
		l.Files[lib] = string(b)
		l.Modes[lib] = 0o755
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			l.Hardlinks["/bin/"+applet] = "/bin/busybox"
		}
	}
	return testimage.Build(testimage.Options{Base: empty.Image, Layers: []testimage.Layer{l},
		Env: []string{testimage.DefaultPath}, Cmd: []string{"sh"}})
}

// sharedLibs lists the libraries (and the loader) a binary needs, from ldd.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs, nil
}

// buildImageBin builds ./imagebin statically into dir.
func buildImageBin(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "imagebin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./imagebin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./imagebin: %v\n%s", err, b)
	}
	return out
}

// critestImages are the images critest v1.37 pulls (pkg/validate/consts*.go,
// pkg/framework), by repository path. The digest-pinned
// test-image-digest@sha256:9700f9… cannot be rebuilt and is on the skip list.
func critestImages(imagebin []byte) []image {
	bin := string(imagebin)
	withBin := func(path string, mode os.FileMode) testimage.Layer {
		return testimage.Layer{Files: map[string]string{path: bin}, Modes: map[string]os.FileMode{path: mode}}
	}
	// Distinct content per image: critest checks that different tags give
	// different image ids and the same image under three tags gives one.
	marked := func(s string) testimage.Options {
		return testimage.Options{Layers: []testimage.Layer{{Files: map[string]string{"/" + s: s + "\n"}}}}
	}
	nginx := func(port int) testimage.Options {
		o := testimage.Options{Layers: []testimage.Layer{withBin("/usr/sbin/nginx", 0o755)},
			Cmd: []string{"nginx", "-g", "daemon off;"}}
		if port != 80 {
			o.Cmd = []string{"nginx", "-p", fmt.Sprint(port)}
		}
		return o
	}
	user := func(u string) testimage.Options { return testimage.Options{User: u} }
	pause := testimage.Options{Base: empty.Image, Layers: []testimage.Layer{withBin("/pause", 0o755)},
		Entrypoint: []string{"/pause"}}
	imgs := []image{
		{"e2e-test-images/busybox:1.29-2", testimage.Options{}},
		{"e2e-test-images/nginx:1.14-2", nginx(80)},
		{"e2e-test-images/httpd:2.4.39-4", testimage.Options{
			Layers: []testimage.Layer{{Files: map[string]string{
				"/usr/local/apache2/htdocs/index.html": "<html><body><h1>It works!</h1></body></html>\n",
				"/usr/local/bin/httpd-foreground":      httpdForeground,
			}, Modes: map[string]os.FileMode{"/usr/local/bin/httpd-foreground": 0o755}}},
			Cmd: []string{"httpd-foreground"}}},
		{"e2e-test-images/nonewprivs:1.3", testimage.Options{Layers: []testimage.Layer{withBin("/nnp", os.ModeSetuid|0o755)},
			Entrypoint: []string{"/nnp"}, ClearCmd: true}},
		{"pause:3.9", pause},
		{"pause:3.10", pause},
		{"pause:3.10.1", pause},
		{"k8s-staging-cri-tools/hostnet-nginx-" + goarch, nginx(12003)},
		{"k8s-staging-cri-tools/test-image-latest:latest", marked("latest")},
		{"k8s-staging-cri-tools/test-image-tag:test", marked("tag-test")},
		{"k8s-staging-cri-tools/test-image-tag:all", marked("tag-all")},
		{"k8s-staging-cri-tools/test-image-user-uid:latest", user("1002")},
		{"k8s-staging-cri-tools/test-image-user-username:latest", user("www-data")},
		{"k8s-staging-cri-tools/test-image-user-uid-group:latest", user("1003:users")},
		{"k8s-staging-cri-tools/test-image-user-username-group:latest", user("www-data:users")},
		{"k8s-staging-cri-tools/test-image-predefined-group:latest", testimage.Options{
			Layers: []testimage.Layer{{Files: map[string]string{
				"/etc/passwd": passwd + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n",
				"/etc/group":  group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n",
			}, Dirs: []string{"/home/default-user"}}},
			User: "1000"}},
	}
	for _, i := range []string{"1", "2", "3"} {
		imgs = append(imgs, image{"k8s-staging-cri-tools/test-image-" + i + ":latest", marked("image-" + i)})
	}
	// critest -benchmark lists and pulls these (pkg/benchmark/image.go).
	for _, tag := range []string{"1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl"} {
		imgs = append(imgs, image{"docker/library/busybox:" + tag, marked("busybox-" + tag)})
	}
	same := marked("tags")
	for _, i := range []string{"1", "2", "3"} {
		imgs = append(imgs, image{"k8s-staging-cri-tools/test-image-tags:" + i, same})
	}
	return imgs
}

// pushImages builds every look-alike on the base and pushes it.
func pushImages(t *testing.T, reg *framework.Registry, workDir string) {
	t.Helper()
	base, err := baseImage()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(buildImageBin(t, workDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range critestImages(bin) {
		if im.opts.Base == nil {
			im.opts.Base = base
		}
		img, err := testimage.Build(im.opts)
		if err != nil {
			t.Fatalf("build %s: %v", im.repoTag, err)
		}
		reg.Push(t, im.repoTag, img)
	}
}

// writeMirrors points each upstream at the loopback registry.
func writeMirrors(t *testing.T, dir string, reg *framework.Registry) {
	t.Helper()
	for _, u := range upstreams {
		p := filepath.Join(dir, u, "hosts.toml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "https://"+u, "http://"+reg.Host)
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
