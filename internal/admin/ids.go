package admin

import "strings"

// Image ids travel newline-separated in one StringValue.
func joinIDs(ids []string) string { return strings.Join(ids, "\n") }

func splitIDs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
