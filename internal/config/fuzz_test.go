package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: any config file loads into a valid configuration or fails
// with an error; a loaded configuration written back loads to the same.
func FuzzLoad(f *testing.F) {
	var def bytes.Buffer
	if err := WriteDefault(&def); err != nil {
		f.Fatal(err)
	}
	f.Add(def.Bytes())
	f.Add([]byte("root = \"/var/lib/x\"\nlog_level = \"debug\"\n[images]\nmax_layer_unpacked_bytes = 1048576\n"))
	f.Add([]byte("[runtimes.runc]\nargs = [\"--debug\"]\n[runtimes.\"kata-qemu\"]\npath = \"/usr/bin/kata\"\n"))
	f.Add([]byte("uncollected_result_ttl = \"-5m\"\n"))
	f.Add([]byte("[network]\ndefault_subnet = \"10.0.0.0/31\"\n"))
	f.Add([]byte("restrict_oom_score_adj = true\n[streaming]\naddress = \"[::1]:0\"\n"))
	f.Add([]byte("nonsense = 1\n"))
	dir := f.TempDir()
	p := filepath.Join(dir, "berth.toml")
	again := filepath.Join(dir, "again.toml")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, "", true)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load returned a configuration that does not validate: %v", err)
		}
		var out bytes.Buffer
		if err := Write(&out, c); err != nil {
			t.Fatalf("Write of a loaded configuration: %v", err)
		}
		if err := os.WriteFile(again, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		c2, err := Load(again, "", true)
		if err != nil {
			t.Fatalf("written configuration does not load: %v\n%s", err, out.String())
		}
		var out2 bytes.Buffer
		if err := Write(&out2, c2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatalf("round trip changed the configuration:\n%s\n---\n%s", out.String(), out2.String())
		}
	})
}
