package image

import (
	"fmt"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how berth (like containerd and docker) names Docker Hub in
// references it reports; go-containerregistry calls it index.docker.io.
const dockerHub = "docker.io"

// Reference is a parsed image reference in its normalized form.
type Reference struct {
	// Repo is the repository with its registry, e.g.
	// "docker.io/library/busybox" or "127.0.0.1:5000/x".
	Repo string
	// Tag is the tag, "" when the reference names a digest.
	Tag string
	// Digest is "sha256:<hex>" for a digest reference, else "".
	Digest string
}

// String returns the normalized reference: repo@digest for a digest
// reference (a tag next to a digest is dropped, like containerd does), else
// repo:tag.
func (r Reference) String() string {
	if r.Digest != "" {
		return r.Repo + "@" + r.Digest
	}
	return r.Repo + ":" + r.Tag
}

// ParseReference parses and normalizes an image reference the way docker
// and containerd do: "busybox" -> docker.io/library/busybox:latest,
// "foo/bar:1" -> docker.io/foo/bar:1, a host with a dot, a port or
// "localhost" is kept. A reference that does not parse is an
// errdefs.ErrInvalidArgument error naming it.
func ParseReference(ref string) (Reference, error) {
	if ref == "" {
		return Reference{}, errdefs.Invalid("image reference is empty")
	}
	if strings.TrimSpace(ref) != ref {
		return Reference{}, errdefs.Invalid(fmt.Sprintf("image reference %q has leading or trailing spaces", ref))
	}
	parsed, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return Reference{}, errdefs.Invalid(fmt.Sprintf("image reference %q is not valid: %v", ref, err))
	}
	out := Reference{Repo: repoName(parsed.Context())}
	switch r := parsed.(type) {
	case name.Digest:
		out.Digest = r.DigestStr()
	case name.Tag:
		out.Tag = r.TagStr()
	}
	return out, nil
}

// NormalizeReference returns the normalized form of ref (see ParseReference).
func NormalizeReference(ref string) (string, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

func repoName(repo name.Repository) string {
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = dockerHub
	}
	return reg + "/" + repo.RepositoryStr()
}
