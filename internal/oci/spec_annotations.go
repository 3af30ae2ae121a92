package oci

import "path"

// FilterAnnotations returns the annotations whose keys match one of the
// allowed patterns, for a handler's pod_annotations or
// container_annotations. Patterns are path.Match globs, as containerd's
// are: "*" matches within one "/"-separated part, so "example.com/*"
// allows every key of that prefix and "*" alone only keys without a "/".
//
// Annotations steer OCI runtimes (runc's org.systemd.property.* and
// run.oci.*, runsc's dev.gvisor.*), and any CRI client can set them, so
// none pass unless the operator says so.
func FilterAnnotations(allowed []string, annotations map[string]string) map[string]string {
	if len(allowed) == 0 || len(annotations) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range annotations {
		for _, p := range allowed {
			if ok, _ := path.Match(p, k); ok {
				out[k] = v
				break
			}
		}
	}
	return out
}
