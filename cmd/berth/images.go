package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// normalizeRef spells an image reference the way registries store it, so
// that "busybox" matches "docker.io/library/busybox:latest".
func normalizeRef(ref string) string {
	name, digest, hasDigest := strings.Cut(ref, "@")
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	if hasDigest {
		return name + "@" + digest
	}
	// A tag is a colon after the last slash (a colon before it is a port).
	if !strings.Contains(name[strings.LastIndex(name, "/")+1:], ":") {
		name += ":latest"
	}
	return name
}

// splitRepoTag splits "repo:tag" at the tag's colon.
func splitRepoTag(rt string) (repo, tag string) {
	i := strings.LastIndex(rt, ":")
	if i < 0 || strings.Contains(rt[i:], "/") {
		return rt, "<none>"
	}
	return rt[:i], rt[i+1:]
}

// matchImage finds the image arg names among imgs: by ID, unique ID prefix,
// tag or digest reference. It returns "" when nothing matches.
func matchImage(arg string, imgs []*runtimeapi.Image) (string, error) {
	norm := normalizeRef(arg)
	var cands []candidate
	for _, im := range imgs {
		id := im.GetId()
		if id == arg || strings.TrimPrefix(id, "sha256:") == arg {
			return id, nil
		}
		for _, r := range slices.Concat(im.GetRepoTags(), im.GetRepoDigests()) {
			if r == arg || r == norm {
				return id, nil
			}
		}
		name := ""
		if tags := im.GetRepoTags(); len(tags) > 0 {
			name = tags[0]
		}
		cands = append(cands, candidate{ID: strings.TrimPrefix(id, "sha256:"), Name: name})
	}
	// Only hex digests make sensible ID prefixes.
	if strings.Trim(strings.TrimPrefix(arg, "sha256:"), "0123456789abcdef") != "" {
		return "", nil
	}
	id, err := resolveID("image", strings.TrimPrefix(arg, "sha256:"), cands)
	var none *noMatchError
	if errors.As(err, &none) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, im := range imgs {
		if strings.TrimPrefix(im.GetId(), "sha256:") == id {
			return im.GetId(), nil
		}
	}
	return "", nil
}

// resolveImage returns the ID of the local image arg names, asking the
// runtime (ImageStatus) when the list has no match.
func (a *app) resolveImage(ctx context.Context, arg string) (string, error) {
	resp, err := a.img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return "", fmt.Errorf("listing images: %w", err)
	}
	id, err := matchImage(arg, resp.GetImages())
	if err != nil || id != "" {
		return id, err
	}
	st, err := a.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: arg}})
	if err != nil {
		return "", fmt.Errorf("image %s: %w", arg, err)
	}
	if st.GetImage() == nil {
		return "", fmt.Errorf("no image matches %q", arg)
	}
	return st.GetImage().GetId(), nil
}

// ensureImage pulls ref unless the runtime already has it.
func (a *app) ensureImage(ctx context.Context, ref string, pod *runtimeapi.PodSandboxConfig) error {
	return a.getImage(ctx, ref, pod, "missing")
}

// getImage makes ref present as policy says: pull it always, when missing,
// or never (then its absence is an error).
func (a *app) getImage(ctx context.Context, ref string, pod *runtimeapi.PodSandboxConfig, policy pullPolicy) error {
	if ref == "" {
		return fmt.Errorf("no image given")
	}
	if policy != "always" {
		st, err := a.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		if st.GetImage() != nil {
			return nil
		}
		if policy == "never" {
			return fmt.Errorf("image %s is not present, and --pull never forbids pulling it", ref)
		}
	}
	fmt.Fprintf(a.stderr, "Pulling %s ...\n", ref)
	if _, err := a.pullImage(ctx, &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: ref}, SandboxConfig: pod,
	}); err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	return nil
}

func imagesCmd(a *app) *cobra.Command {
	var quiet, digests bool
	cmd := &cobra.Command{
		Use:     "images [REPOSITORY[:TAG]]",
		Short:   "List images",
		Long:    "List images: IMAGE, TAG, IMAGE ID and SIZE, a row per tag (--digests adds DIGEST)",
		Args:    cobra.MaximumNArgs(1),
		Example: "  berth images --digests",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			req := &runtimeapi.ListImagesRequest{}
			if len(args) == 1 {
				req.Filter = &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: args[0]}}
			}
			resp, err := a.img.ListImages(ctx, req)
			if err != nil {
				return fmt.Errorf("listing images: %w", err)
			}
			imgs := resp.GetImages()
			sort.SliceStable(imgs, func(i, j int) bool { return imageSortKey(imgs[i]) < imageSortKey(imgs[j]) })
			if quiet {
				for _, im := range imgs {
					fmt.Fprintln(a.stdout, im.GetId())
				}
				return nil
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, &runtimeapi.ListImagesResponse{Images: imgs})
			}
			t := newTable(a.stdout)
			if digests {
				fmt.Fprintln(t, "IMAGE\tTAG\tDIGEST\tIMAGE ID\tSIZE")
			} else {
				fmt.Fprintln(t, "IMAGE\tTAG\tIMAGE ID\tSIZE")
			}
			for _, im := range imgs {
				digest := "<none>"
				if ds := im.GetRepoDigests(); len(ds) > 0 {
					if _, d, ok := strings.Cut(ds[0], "@"); ok {
						digest = a.tid(d)
					}
				}
				for _, rt := range imageRows(im) {
					repo, tag := splitRepoTag(rt)
					if digests {
						fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", repo, tag, digest, a.tid(im.GetId()), humanSize(im.GetSize()))
					} else {
						fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", repo, tag, a.tid(im.GetId()), humanSize(im.GetSize()))
					}
				}
			}
			return t.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only image IDs")
	cmd.Flags().BoolVar(&digests, "digests", false, "show digests")
	return cmd
}

// imageRows is one row per tag; an untagged image shows its repository
// from a digest reference, or <none>.
func imageRows(im *runtimeapi.Image) []string {
	if tags := im.GetRepoTags(); len(tags) > 0 {
		return tags
	}
	if ds := im.GetRepoDigests(); len(ds) > 0 {
		repo, _, _ := strings.Cut(ds[0], "@")
		return []string{repo}
	}
	return []string{"<none>"}
}

func imageSortKey(im *runtimeapi.Image) string {
	return imageRows(im)[0] + "\x00" + im.GetId()
}

func inspectiCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "inspecti IMAGE...",
		Short:   "Show the status of images",
		Long:    "Show the status of images, each named by tag, digest reference, ID or unique ID prefix",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth inspecti busybox",
		RunE: forEachImage(a, func(ctx context.Context, arg, id string) error {
			resp, err := a.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: id}, Verbose: true})
			if err != nil {
				return fmt.Errorf("image %s: %w", arg, err)
			}
			if resp.GetImage() == nil {
				return fmt.Errorf("no image matches %q", arg)
			}
			return a.printStatus(resp.GetImage(), resp.GetInfo(), func() { printImageSummary(a, resp.GetImage()) })
		}),
	}
}

func printImageSummary(a *app, im *runtimeapi.Image) {
	t := newTable(a.stdout)
	fmt.Fprintf(t, "ID:\t%s\n", im.GetId())
	fmt.Fprintf(t, "Tags:\t%s\n", strings.Join(im.GetRepoTags(), ", "))
	fmt.Fprintf(t, "Digests:\t%s\n", strings.Join(im.GetRepoDigests(), ", "))
	fmt.Fprintf(t, "Size:\t%s\n", humanSize(im.GetSize()))
	t.Flush()
}

func pullCmd(a *app) *cobra.Command {
	var creds string
	cmd := &cobra.Command{
		Use:     "pull IMAGE",
		Short:   "Pull an image from a registry",
		Args:    cobra.ExactArgs(1),
		Example: "  berth pull --creds alice:s3cret registry.example.com/app:1.2",
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: args[0]}}
			if creds != "" {
				user, pass, ok := strings.Cut(creds, ":")
				if !ok || user == "" {
					return fmt.Errorf("--creds: want user:password")
				}
				req.Auth = &runtimeapi.AuthConfig{Username: user, Password: pass}
			}
			ctx, cancel, err := a.longCtx(cmd.Context(), 0)
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := a.pullImage(ctx, req)
			if err != nil {
				return fmt.Errorf("pulling %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "Image is up to date for %s\n", resp.GetImageRef())
			return nil
		},
	}
	cmd.Flags().StringVar(&creds, "creds", "", "registry credentials as user:password")
	return cmd
}

func rmiCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rmi IMAGE...",
		Short:   "Remove images",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth rmi busybox",
		RunE: forEachImage(a, func(ctx context.Context, arg, id string) error {
			if _, err := a.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: id}}); err != nil {
				return fmt.Errorf("removing image %s: %w", arg, err)
			}
			fmt.Fprintf(a.stdout, "Deleted: %s\n", id)
			return nil
		}),
	}
}

func imageCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Image operations that CRI has no verb for",
	}
	imp := importCmd(a)
	imp.Use = "import FILE"
	cmd.AddCommand(imp)
	return cmd
}

// loadCmd is image import under docker's name: `berth load -i FILE`.
func loadCmd(a *app) *cobra.Command {
	var input string
	cmd := importCmd(a)
	cmd.Use = "load [-i] FILE"
	cmd.Short = "Load images from a docker save or OCI layout tar (the same as image import)"
	cmd.Example = "  berth load -i busybox.tar"
	cmd.Args = cobra.MaximumNArgs(1)
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		switch {
		case input != "" && len(args) == 1:
			return errors.New("load: give the file once, as -i FILE or as an argument")
		case input != "":
			args = []string{input}
		case len(args) == 0:
			return errors.New("load: which file? berth load -i FILE (the daemon reads it, so it cannot come from stdin)")
		}
		return run(c, args)
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "the tar to load")
	return cmd
}

func importCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Short:   "Import a docker save or OCI layout tar (a path on the daemon's host)",
		Args:    cobra.ExactArgs(1),
		Example: "  berth image import ./busybox.tar",
		RunE: func(cmd *cobra.Command, args []string) error {
			// The daemon opens the file, so it needs a path that does not
			// depend on our working directory.
			path, err := filepath.Abs(args[0])
			if err != nil {
				return fmt.Errorf("image import: %w", err)
			}
			ctx, cancel, err := a.longCtx(cmd.Context(), 0)
			if err != nil {
				return err
			}
			defer cancel()
			ids, err := a.adm.ImportImage(ctx, path)
			if err != nil {
				return fmt.Errorf("importing %s: %w", path, err)
			}
			for _, id := range ids {
				fmt.Fprintf(a.stdout, "Imported %s\n", id)
			}
			return nil
		},
	}
}
