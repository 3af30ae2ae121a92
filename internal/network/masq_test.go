package network

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fakeTables is an in-memory nat table: chains of rules, each rule its
// arguments joined by spaces.
type fakeTables struct {
	chains  map[string][]string
	changes int   // appends, deletes and new chains
	fail    error // returned by every call while set
}

func newFakeTables() *fakeTables {
	return &fakeTables{chains: map[string][]string{"POSTROUTING": {"-j SOMEONE-ELSE"}}}
}

func (f *fakeTables) Exists(table, chain string, r ...string) (bool, error) {
	if f.fail != nil {
		return false, f.fail
	}
	return slices.Contains(f.chains[chain], strings.Join(r, " ")), nil
}

func (f *fakeTables) Append(table, chain string, r ...string) error {
	if f.fail != nil {
		return f.fail
	}
	if _, ok := f.chains[chain]; !ok {
		return errors.New("no chain " + chain)
	}
	f.changes++
	f.chains[chain] = append(f.chains[chain], strings.Join(r, " "))
	return nil
}

func (f *fakeTables) AppendUnique(table, chain string, r ...string) error {
	if ok, err := f.Exists(table, chain, r...); ok || err != nil {
		return err
	}
	return f.Append(table, chain, r...)
}

func (f *fakeTables) DeleteIfExists(table, chain string, r ...string) error {
	if f.fail != nil {
		return f.fail
	}
	rule := strings.Join(r, " ")
	if i := slices.Index(f.chains[chain], rule); i >= 0 {
		f.changes++
		f.chains[chain] = slices.Delete(f.chains[chain], i, i+1)
	}
	return nil
}

func (f *fakeTables) ChainExists(table, chain string) (bool, error) {
	_, ok := f.chains[chain]
	return ok, f.fail
}

func (f *fakeTables) NewChain(table, chain string) error {
	if f.fail != nil {
		return f.fail
	}
	f.changes++
	f.chains[chain] = []string{}
	return nil
}

func (f *fakeTables) DeleteChain(table, chain string) error {
	if len(f.chains[chain]) > 0 {
		return errors.New("chain not empty")
	}
	f.changes++
	delete(f.chains, chain)
	return nil
}

func (f *fakeTables) List(table, chain string) ([]string, error) {
	out := []string{"-N " + chain}
	for _, r := range f.chains[chain] {
		out = append(out, "-A "+chain+" "+r)
	}
	return out, f.fail
}

// useFakeTables routes EnsureMasquerade and RemoveMasquerade to f for t,
// recording the subnets iptables was opened for.
func useFakeTables(t *testing.T, f *fakeTables) *[]netip.Prefix {
	t.Helper()
	var opened []netip.Prefix
	old := newIPTables
	newIPTables = func(p netip.Prefix) (ipTables, error) {
		opened = append(opened, p)
		return f, nil
	}
	t.Cleanup(func() { newIPTables = old })
	return &opened
}

const jump = "-m comment --comment berth pod masquerade -j BERTH-POSTROUTING"

func TestEnsureMasquerade(t *testing.T) {
	f := newFakeTables()
	useFakeTables(t, f)
	// A host bit set in the configured subnet: the rules name the network.
	if err := EnsureMasquerade(netip.MustParsePrefix("10.88.0.1/16")); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-s 10.88.0.0/16 -d 10.88.0.0/16 -m comment --comment berth 10.88.0.0/16 -j RETURN",
		"-s 10.88.0.0/16 -d 224.0.0.0/4 -m comment --comment berth 10.88.0.0/16 -j RETURN",
		"-s 10.88.0.0/16 -m comment --comment berth 10.88.0.0/16 -j MASQUERADE",
	}
	if got := f.chains[MasqChain]; !slices.Equal(got, want) {
		t.Errorf("%s = %q\nwant %q", MasqChain, got, want)
	}
	if got := f.chains["POSTROUTING"]; !slices.Equal(got, []string{"-j SOMEONE-ELSE", jump}) {
		t.Errorf("POSTROUTING = %q, want the jump appended once", got)
	}

	// Idempotent: a second start checks and changes nothing.
	changes := f.changes
	if err := EnsureMasquerade(netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if f.changes != changes {
		t.Errorf("a second EnsureMasquerade made %d changes", f.changes-changes)
	}

	// A rule set someone cut short is replaced whole, in order.
	f.chains[MasqChain] = slices.Delete(f.chains[MasqChain], 0, 1)
	if err := EnsureMasquerade(netip.MustParsePrefix("10.88.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if got := f.chains[MasqChain]; !slices.Equal(got, want) {
		t.Errorf("after repair %s = %q\nwant %q", MasqChain, got, want)
	}
}

func TestEnsureMasqueradeIPv6(t *testing.T) {
	f := newFakeTables()
	opened := useFakeTables(t, f)
	if err := EnsureMasquerade(netip.MustParsePrefix("fd00:88::/64")); err != nil {
		t.Fatal(err)
	}
	if len(*opened) != 1 || !(*opened)[0].Addr().Is6() {
		t.Errorf("opened %v, want ip6tables", *opened)
	}
	if got := f.chains[MasqChain]; len(got) != 3 || !strings.Contains(got[1], "-d ff00::/8") {
		t.Errorf("%s = %q, want IPv6 multicast left alone", MasqChain, got)
	}
}

func TestRemoveMasquerade(t *testing.T) {
	f := newFakeTables()
	useFakeTables(t, f)
	a, b := netip.MustParsePrefix("10.88.0.0/16"), netip.MustParsePrefix("10.89.0.0/24")
	// Nothing installed: nothing to do.
	if err := RemoveMasquerade(a); err != nil || f.changes != 0 {
		t.Fatalf("remove from an empty table: err %v, %d changes", err, f.changes)
	}
	for _, p := range []netip.Prefix{a, b} {
		if err := EnsureMasquerade(p); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.chains[MasqChain]); n != 6 {
		t.Fatalf("%d rules for two subnets", n)
	}
	if err := RemoveMasquerade(a); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.chains[MasqChain] {
		if strings.Contains(r, a.String()) {
			t.Errorf("rule of %s left: %s", a, r)
		}
	}
	if !slices.Contains(f.chains["POSTROUTING"], jump) {
		t.Error("jump removed while another subnet still has rules")
	}
	if err := RemoveMasquerade(b); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.chains[MasqChain]; ok {
		t.Errorf("%s left empty", MasqChain)
	}
	if got := f.chains["POSTROUTING"]; !slices.Equal(got, []string{"-j SOMEONE-ELSE"}) {
		t.Errorf("POSTROUTING = %q after the last removal", got)
	}
}

// newBuiltinManager starts a Manager on the built-in network (fake plugin
// binaries, an empty conf dir).
func newBuiltinManager(t *testing.T, b Builtin) *Manager {
	t.Helper()
	b.DataDir = t.TempDir()
	m, err := New(Config{ConfDir: t.TempDir(), BinDirs: []string{fakeBinDir(t, "bridge", "host-local", "portmap")}, CacheDir: t.TempDir(), Builtin: &b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestManagerMasquerade(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		f := newFakeTables()
		useFakeTables(t, f)
		m := newBuiltinManager(t, *testBuiltin)
		if err := m.Status(); err != nil {
			t.Fatal(err)
		}
		if n := len(f.chains[MasqChain]); n != 3 {
			t.Errorf("%d masquerade rules, want 3", n)
		}
		// Installed once per process, not per Status or pod.
		changes := f.changes
		f.chains[MasqChain] = nil
		if err := m.Status(); err != nil || f.changes != changes {
			t.Errorf("Status re-checked iptables: err %v, %d changes", err, f.changes-changes)
		}
	})
	t.Run("off", func(t *testing.T) {
		f := newFakeTables()
		opened := useFakeTables(t, f)
		// Left by an earlier start with masquerade on.
		if err := EnsureMasquerade(netip.MustParsePrefix(testBuiltin.Subnet)); err != nil {
			t.Fatal(err)
		}
		b := *testBuiltin
		b.IPMasq = false
		m := newBuiltinManager(t, b)
		if err := m.Status(); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.chains[MasqChain]; ok || len(f.chains["POSTROUTING"]) != 1 {
			t.Errorf("masquerade left with default_ip_masq off: %v", f.chains)
		}
		if len(*opened) != 2 {
			t.Errorf("iptables opened %d times, want once to install and once to remove", len(*opened))
		}
	})
	t.Run("failure retried", func(t *testing.T) {
		f := newFakeTables()
		f.fail = errors.New("iptables says no")
		useFakeTables(t, f)
		m := newBuiltinManager(t, *testBuiltin)
		if err := m.Status(); err == nil || !strings.Contains(err.Error(), "iptables says no") {
			t.Fatalf("Status = %v, want the iptables error", err)
		}
		f.fail = nil
		if err := m.Status(); err != nil {
			t.Fatalf("Status after iptables recovered: %v", err)
		}
		if n := len(f.chains[MasqChain]); n != 3 {
			t.Errorf("%d masquerade rules, want 3", n)
		}
	})
}
