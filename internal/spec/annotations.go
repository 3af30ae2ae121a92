package spec

import (
	"path"
	"strings"
)

// FilterAnnotations returns the annotations whose keys match one of the
// allowed patterns, for a handler's pod_annotations or
// container_annotations. Patterns are path.Match globs, as containerd's
// are: "*" matches within one "/"-separated part, so "example.com/*"
// allows every key of that prefix and "*" alone only keys without a "/".
//
// Annotations steer OCI runtimes (runc's org.systemd.property.* and
// run.oci.*, runsc's dev.gvisor.*), and any CRI client can set them, so
// none pass unless the operator says so. Keys under io.kubernetes.cri.
// never pass, whatever the patterns: berth sets its own there (runsc
// decides from them which sandbox a container joins), and a key berth
// leaves out of a spec must not come from a client either.
func FilterAnnotations(allowed []string, annotations map[string]string) map[string]string {
	if len(allowed) == 0 || len(annotations) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range annotations {
		if strings.HasPrefix(k, criAnnotationPrefix) {
			continue
		}
		for _, p := range allowed {
			if ok, _ := path.Match(p, k); ok {
				out[k] = v
				break
			}
		}
	}
	return out
}

// BroadAnnotationPattern says why an allow-list pattern lets through more
// than an operator likely means, or "" when it is anchored to a literal
// prefix. "*" alone (every key without a "/") and patterns that start with
// a wildcard match keys of any runtime, org.systemd.property.* included.
func BroadAnnotationPattern(p string) string {
	if p == "*" {
		return `"*" allows every annotation key without a "/", org.systemd.property.* and run.oci.* included`
	}
	if strings.IndexAny(p, "*?[") == 0 {
		return "it starts with a wildcard: it is anchored to no prefix, so keys of any runtime may match it"
	}
	return ""
}
