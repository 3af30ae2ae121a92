package config

import (
	"bytes"
	"encoding"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// WriteDefault writes Default() as TOML with a one-line comment above every
// setting (`berthd config default`); Load reads it back unchanged.
func WriteDefault(w io.Writer) error {
	return Write(w, Default())
}

// Write writes c as commented TOML: plain settings first, then one table per
// group, so the output reads like a hand-written file.
func Write(w io.Writer, c *Config) error {
	var b bytes.Buffer
	b.WriteString("# berthd configuration. Every setting is shown with a comment above it.\n")
	b.WriteString("# Drop-ins in " + DefaultDropInDir + "/*.toml override single keys, in file-name order.\n")
	if err := writeTable(&b, nil, reflect.ValueOf(c).Elem()); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	bareKey       = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// isTable says whether a field becomes a TOML table rather than a value.
func isTable(t reflect.Type) bool {
	if t.Implements(textMarshaler) {
		return false
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Map
}

func writeTable(b *bytes.Buffer, path []string, v reflect.Value) error {
	t := v.Type()
	// Values first: in TOML, keys after a [table] header belong to it.
	for i := range t.NumField() {
		f := t.Field(i)
		if isTable(f.Type) {
			continue
		}
		val, err := tomlValue(v.Field(i).Interface())
		if err != nil {
			return fmt.Errorf("write %s: %w", strings.Join(append(path, tomlKey(f)), "."), err)
		}
		fmt.Fprintf(b, "\n# %s\n%s = %s\n", f.Tag.Get("doc"), quoteKey(tomlKey(f)), val)
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !isTable(f.Type) {
			continue
		}
		sub := append(slices.Clone(path), quoteKey(tomlKey(f)))
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Map {
			fmt.Fprintf(b, "\n# %s\n", f.Tag.Get("doc"))
			keys := make([]string, 0, fv.Len())
			for _, k := range fv.MapKeys() {
				keys = append(keys, k.String())
			}
			slices.Sort(keys)
			for _, k := range keys {
				p := append(slices.Clone(sub), quoteKey(k))
				fmt.Fprintf(b, "[%s]\n", strings.Join(p, "."))
				if err := writeTable(b, p, fv.MapIndex(reflect.ValueOf(k))); err != nil {
					return err
				}
			}
			continue
		}
		fmt.Fprintf(b, "\n# %s\n[%s]\n", f.Tag.Get("doc"), strings.Join(sub, "."))
		if err := writeTable(b, sub, fv); err != nil {
			return err
		}
	}
	return nil
}

func tomlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

func quoteKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	v, _ := tomlValue(k)
	return v
}

// tomlValue renders one value with the TOML encoder, so string escaping and
// arrays follow the spec rather than Go's quoting rules.
func tomlValue(v any) (string, error) {
	// The encoder writes nothing for an empty slice (a runtime added by a
	// drop-in without args has a nil one), which would leave "key = ".
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() == 0 {
		return "[]", nil
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(map[string]any{"v": v}); err != nil {
		return "", err
	}
	s, ok := strings.CutPrefix(strings.TrimSuffix(b.String(), "\n"), "v = ")
	if !ok {
		return "", fmt.Errorf("unexpected TOML encoding %q", b.String())
	}
	return s, nil
}
