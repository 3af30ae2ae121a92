package config

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a Go duration string
// ("5m", "90s").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"90s\" or \"5m\"", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the shortest common form: "5m" rather than "5m0s".
func (d Duration) MarshalText() ([]byte, error) {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return []byte(s), nil
}

// AutoBool is "auto", "true" or "false". TOML booleans are accepted too, so
// `key = true` and `key = "true"` mean the same.
type AutoBool string

// UnmarshalText takes the TOML value as text (the decoder turns booleans
// into "true"/"false"); Validate rejects anything else.
func (a *AutoBool) UnmarshalText(text []byte) error {
	*a = AutoBool(strings.ToLower(string(text)))
	return nil
}

// MarshalText writes the value as a string.
func (a AutoBool) MarshalText() ([]byte, error) { return []byte(a), nil }

// Resolve turns the setting into a decision, calling auto only for "auto".
func (a AutoBool) Resolve(auto func() bool) bool {
	switch a {
	case "true":
		return true
	case "false":
		return false
	default:
		return auto()
	}
}

func (a AutoBool) valid() bool { return a == "auto" || a == "true" || a == "false" }
