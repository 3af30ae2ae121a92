// Command imagebin is the one static binary inside the look-alike images
// that critest pulls (see ../images_test.go). It picks its job from the name
// it was run as, as busybox does:
//
//	nginx [-p PORT]  answers HTTP 200 on PORT (default 80) and writes its pid
//	                 to /var/run/nginx.pid, as the nginx images critest's
//	                 networking, port-forward and namespace specs use
//	nnp              prints "Effective uid: N", as the e2e nonewprivs image;
//	                 installed setuid root, so the uid shows whether
//	                 no_new_privs held
//	pause            waits for SIGTERM or SIGINT, as registry.k8s.io/pause
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	name := filepath.Base(os.Args[0])
	switch {
	case name == "nginx":
		// As nginx, PID 1 shows "master process" in its command line
		// (critest's ContainerPID spec reads /proc/1/cmdline for it).
		args := append([]string{masterTitle}, os.Args[1:]...)
		err := syscall.Exec("/proc/self/exe", args, os.Environ())
		fmt.Fprintln(os.Stderr, "nginx: re-exec:", err)
		os.Exit(1)
	case name == masterTitle:
		nginx()
	case name == "nnp":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	case name == "pause":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	default:
		fmt.Fprintf(os.Stderr, "imagebin: run as nginx, nnp or pause, not %q\n", os.Args[0])
		os.Exit(2)
	}
}

const masterTitle = "nginx: master process nginx"

func nginx() {
	fs := flag.NewFlagSet("nginx", flag.ExitOnError)
	port := fs.Int("p", 80, "port to listen on")
	fs.String("g", "", "ignored: nginx's global directives (\"daemon off;\")")
	_ = fs.Parse(os.Args[1:])
	// critest's namespace specs wait for the pid file, then look for the pid
	// from other containers.
	if err := os.WriteFile("/var/run/nginx.pid", []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "nginx:", err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "<html><body><h1>Welcome to nginx!</h1></body></html>")
	})
	if err := http.ListenAndServe(fmt.Sprintf(":%d", *port), nil); err != nil {
		fmt.Fprintln(os.Stderr, "nginx:", err)
		os.Exit(1)
	}
}
