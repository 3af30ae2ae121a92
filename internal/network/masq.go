package network

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/coreos/go-iptables/iptables"
)

// The built-in network masquerades at node level: one rule set per subnet
// in the nat table, installed when berthd loads the network, instead of the
// bridge plugin's ipMasq, which makes a chain and three rules per pod on
// ADD and deletes them on DEL (several iptables execs under the xtables
// lock each time; about 100 ms of ADD and 60 ms of DEL on the development
// machine, see docs/networking.md).
//
//	-A POSTROUTING -m comment --comment "berth pod masquerade" -j BERTH-POSTROUTING
//	-A BERTH-POSTROUTING -s S -d S            -m comment --comment "berth S" -j RETURN
//	-A BERTH-POSTROUTING -s S -d 224.0.0.0/4  -m comment --comment "berth S" -j RETURN
//	-A BERTH-POSTROUTING -s S                 -m comment --comment "berth S" -j MASQUERADE
//
// which is what the plugin's per-pod chain does (traffic within the subnet
// and multicast untouched, the rest masqueraded), for every pod of S at
// once. RETURN rather than the plugin's ACCEPT leaves later POSTROUTING
// rules of others in effect. The chain and the jump stay, as CNI's shared
// chains do; RemoveMasquerade takes a subnet's rules out (and the chain
// once empty).

// MasqChain is the nat chain holding berth's masquerade rules.
const MasqChain = "BERTH-POSTROUTING"

const (
	natTable    = "nat"
	jumpComment = "berth pod masquerade"
)

// ipTables is the part of go-iptables' *IPTables used here (a fake in tests).
type ipTables interface {
	Exists(table, chain string, rulespec ...string) (bool, error)
	Append(table, chain string, rulespec ...string) error
	AppendUnique(table, chain string, rulespec ...string) error
	DeleteIfExists(table, chain string, rulespec ...string) error
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	DeleteChain(table, chain string) error
	List(table, chain string) ([]string, error)
}

// newIPTables opens iptables or ip6tables for subnet's family. It execs the
// binaries on PATH with the xtables lock (-w), as the CNI plugins do.
var newIPTables = func(subnet netip.Prefix) (ipTables, error) {
	proto := iptables.ProtocolIPv4
	if subnet.Addr().Is6() {
		proto = iptables.ProtocolIPv6
	}
	return iptables.NewWithProtocol(proto)
}

// masqRules are the rules of subnet in MasqChain, in order.
func masqRules(subnet netip.Prefix) [][]string {
	s := subnet.Masked().String()
	multicast := "224.0.0.0/4"
	if subnet.Addr().Is6() {
		multicast = "ff00::/8"
	}
	comment := []string{"-m", "comment", "--comment", "berth " + s}
	return [][]string{
		append([]string{"-s", s, "-d", s}, append(comment, "-j", "RETURN")...),
		append([]string{"-s", s, "-d", multicast}, append(comment, "-j", "RETURN")...),
		append([]string{"-s", s}, append(comment, "-j", "MASQUERADE")...),
	}
}

var jumpRule = []string{"-m", "comment", "--comment", jumpComment, "-j", MasqChain}

// masqMu serialises this process's changes to MasqChain (iptables' own
// lock covers single commands only).
var masqMu sync.Mutex

// EnsureMasquerade installs the masquerade of subnet's traffic leaving it.
// It is idempotent: with the rules in place it only checks them (three
// iptables -C); a rule set found incomplete is replaced whole, so that the
// order holds.
func EnsureMasquerade(subnet netip.Prefix) error {
	ipt, err := newIPTables(subnet)
	if err != nil {
		return fmt.Errorf("masquerade %s: %w", subnet, err)
	}
	masqMu.Lock()
	defer masqMu.Unlock()
	if err := ensureChain(ipt); err != nil {
		return fmt.Errorf("masquerade %s: %w", subnet, err)
	}
	rules := masqRules(subnet)
	complete := true
	for _, r := range rules {
		ok, err := ipt.Exists(natTable, MasqChain, r...)
		if err != nil {
			return fmt.Errorf("masquerade %s: %w", subnet, err)
		}
		complete = complete && ok
	}
	if complete {
		return nil
	}
	for _, r := range rules {
		if err := ipt.DeleteIfExists(natTable, MasqChain, r...); err != nil {
			return fmt.Errorf("masquerade %s: %w", subnet, err)
		}
	}
	for _, r := range rules {
		if err := ipt.Append(natTable, MasqChain, r...); err != nil {
			return fmt.Errorf("masquerade %s: %w", subnet, err)
		}
	}
	return nil
}

// ensureChain makes MasqChain and the jump to it from POSTROUTING.
func ensureChain(ipt ipTables) error {
	ok, err := ipt.ChainExists(natTable, MasqChain)
	if err != nil {
		return err
	}
	if !ok {
		if err := ipt.NewChain(natTable, MasqChain); err != nil {
			// Another berthd may have made it meanwhile.
			if ok, _ := ipt.ChainExists(natTable, MasqChain); !ok {
				return err
			}
		}
	}
	return ipt.AppendUnique(natTable, "POSTROUTING", jumpRule...)
}

// RemoveMasquerade deletes subnet's masquerade rules, and MasqChain with
// its jump once no subnet has rules in it. Nothing there is no error.
func RemoveMasquerade(subnet netip.Prefix) error {
	ipt, err := newIPTables(subnet)
	if err != nil {
		return fmt.Errorf("remove masquerade %s: %w", subnet, err)
	}
	masqMu.Lock()
	defer masqMu.Unlock()
	ok, err := ipt.ChainExists(natTable, MasqChain)
	if err != nil || !ok {
		return err
	}
	var errs []error
	for _, r := range masqRules(subnet) {
		errs = append(errs, ipt.DeleteIfExists(natTable, MasqChain, r...))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove masquerade %s: %w", subnet, err)
	}
	left, err := ipt.List(natTable, MasqChain)
	if err != nil {
		return fmt.Errorf("remove masquerade %s: %w", subnet, err)
	}
	// List gives "-N BERTH-POSTROUTING" and then the rules.
	if slices.ContainsFunc(left, func(r string) bool { return len(r) > 3 && r[:3] == "-A " }) {
		return nil
	}
	if err := ipt.DeleteIfExists(natTable, "POSTROUTING", jumpRule...); err != nil {
		return fmt.Errorf("remove masquerade %s: %w", subnet, err)
	}
	if err := ipt.DeleteChain(natTable, MasqChain); err != nil {
		return fmt.Errorf("remove masquerade %s: %w", subnet, err)
	}
	return nil
}
