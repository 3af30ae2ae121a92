package framework

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-project/berth/test/testimage"
)

// PushArtifact writes an OCI artifact as repoTag and returns its manifest
// digest.
func (r *Registry) PushArtifact(t testing.TB, repoTag string, a testimage.Artifact) string {
	t.Helper()
	ref, err := name.ParseReference(r.Ref(repoTag), name.WeakValidation)
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Push(ref, r.remoteOptions()...)
	if err != nil {
		t.Fatalf("push artifact %s: %v", ref, err)
	}
	return m.Digest().String()
}
