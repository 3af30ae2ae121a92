package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/admin"
)

// saveCmd is the inverse of load: berthd streams the images from its
// content store as one archive, which berth writes to a file or stdout.
func saveCmd(a *app) *cobra.Command {
	var o struct{ output, format string }
	cmd := &cobra.Command{
		Use:   "save [-o FILE] [--format docker|oci] IMAGE...",
		Short: "Save images to a docker save or OCI layout tar (the inverse of load)",
		Long: "Write IMAGEs, with their layers as berthd stores them, as one tar archive to FILE or to\n" +
			"stdout. --format docker (the default) writes what `docker save` writes; --format oci an\n" +
			"OCI image layout (index.json, blobs/), as containerd exports. `berth load`, `docker load`\n" +
			"and `ctr image import` read both. An IMAGE given by tag is saved under that tag; by ID or\n" +
			"digest, under all of its tags. Here -o is the file, not the output format.",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth save -o busybox.tar busybox\n  berth save --format oci busybox | gzip > busybox-oci.tar.gz",
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.format != admin.FormatDocker && o.format != admin.FormatOCI {
				return fmt.Errorf("save: --format %q: use docker or oci", o.format)
			}
			if o.output == "" && isTerminal(a.stdout) {
				return errors.New("save: refusing to write a tar to a terminal; give -o FILE or redirect stdout")
			}
			// Interrupting removes a half-written file.
			sctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel, err := a.longCtx(sctx, 0)
			if err != nil {
				return err
			}
			defer cancel()
			refs, err := a.saveRefs(ctx, args)
			if err != nil {
				return err
			}
			req := admin.SaveRequest{Images: refs, Format: o.format}
			what := strings.Join(args, ", ")
			if o.output == "" {
				if _, err := a.adm.SaveImages(ctx, req, a.stdout); err != nil {
					return fmt.Errorf("saving %s: %w", what, err)
				}
				return nil
			}
			if err := saveToFile(o.output, func(w io.Writer) error {
				_, err := a.adm.SaveImages(ctx, req, w)
				return err
			}); err != nil {
				return fmt.Errorf("saving %s to %s: %w", what, o.output, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "write to FILE instead of stdout")
	cmd.Flags().StringVar(&o.format, "format", admin.FormatDocker, "archive format: docker or oci")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{admin.FormatDocker, admin.FormatOCI}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// saveRefs checks that each arg names a local image and returns what to
// ask berthd for: the arg itself (a tag keeps its meaning: save that tag),
// or the full ID for an ID prefix, which berthd takes only from 12 digits.
func (a *app) saveRefs(ctx context.Context, args []string) ([]string, error) {
	refs := make([]string, 0, len(args))
	for _, arg := range args {
		id, err := a.resolveImage(ctx, arg)
		if err != nil {
			return nil, err
		}
		if hex := strings.TrimPrefix(arg, "sha256:"); hex != "" && strings.Trim(hex, "0123456789abcdef") == "" {
			arg = id
		}
		refs = append(refs, arg)
	}
	return refs, nil
}

// saveToFile runs write into a new file beside path and renames it to path
// once write succeeded, so that path never holds a cut-short archive; on
// failure the new file is removed.
func saveToFile(path string, write func(io.Writer) error) error {
	// 0666 less the umask, like any file the user creates.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.part-%d", filepath.Base(path), os.Getpid()))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
