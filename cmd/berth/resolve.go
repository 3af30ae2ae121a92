package main

import (
	"context"
	"fmt"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// candidate is an object an ID argument may name.
type candidate struct {
	ID   string
	Name string
}

// resolveID picks the one candidate arg means: an exact ID, then an exact
// name, then a unique ID prefix. kind ("container", "pod") goes into errors.
func resolveID(kind, arg string, cands []candidate) (string, error) {
	if arg == "" {
		return "", fmt.Errorf("empty %s ID", kind)
	}
	for _, c := range cands {
		if c.ID == arg {
			return c.ID, nil
		}
	}
	var byName, byPrefix []candidate
	// One object may appear under several names (a pod as name and as
	// namespace/name); count it once among the prefix matches.
	seen := map[string]bool{}
	for _, c := range cands {
		if c.Name == arg {
			byName = append(byName, c)
		}
		if strings.HasPrefix(c.ID, arg) && !seen[c.ID] {
			seen[c.ID] = true
			byPrefix = append(byPrefix, c)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0].ID, nil
	case len(byName) > 1:
		return "", ambiguous(kind, arg, "name", byName)
	case len(byPrefix) == 1:
		return byPrefix[0].ID, nil
	case len(byPrefix) > 1:
		return "", ambiguous(kind, arg, "ID prefix", byPrefix)
	}
	return "", &noMatchError{kind: kind, arg: arg}
}

// noMatchError says that no object answers to an argument.
type noMatchError struct{ kind, arg string }

func (e *noMatchError) Error() string { return fmt.Sprintf("no %s matches %q", e.kind, e.arg) }

func ambiguous(kind, arg, what string, cands []candidate) error {
	names := make([]string, 0, len(cands))
	for _, c := range cands {
		names = append(names, fmt.Sprintf("%s (%s)", shortID(c.ID), c.Name))
	}
	return fmt.Errorf("%s %q matches %d %ss: %s; give more of the ID",
		what, arg, len(cands), kind, strings.Join(names, ", "))
}

// resolveContainers maps each argument to a container ID with one list call.
func (a *app) resolveContainers(ctx context.Context, args []string) ([]string, error) {
	resp, err := a.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	cands := make([]candidate, 0, len(resp.GetContainers()))
	for _, c := range resp.GetContainers() {
		cands = append(cands, candidate{ID: c.GetId(), Name: c.GetMetadata().GetName()})
	}
	return resolveAll("container", args, cands)
}

// resolvePods maps each argument to a pod sandbox ID with one list call.
// Pods are also found as namespace/name.
func (a *app) resolvePods(ctx context.Context, args []string) ([]string, error) {
	resp, err := a.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var cands []candidate
	for _, p := range resp.GetItems() {
		md := p.GetMetadata()
		cands = append(cands,
			candidate{ID: p.GetId(), Name: md.GetName()},
			candidate{ID: p.GetId(), Name: md.GetNamespace() + "/" + md.GetName()})
	}
	return resolveAll("pod", args, cands)
}

func resolveAll(kind string, args []string, cands []candidate) ([]string, error) {
	ids := make([]string, 0, len(args))
	for _, arg := range args {
		id, err := resolveID(kind, arg, cands)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
