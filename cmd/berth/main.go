// Command berth is the command-line client for people: it speaks CRI v1 (and
// berth's small admin service) to berthd over its unix socket.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
