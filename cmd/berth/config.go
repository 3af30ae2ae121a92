package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"
)

// decodeConfig fills v (a CRI config message) from a JSON or YAML document
// written the way crictl's config files are: snake_case field names, enums
// as numbers. Unknown fields are errors, so a misspelt field is not silently
// dropped.
func decodeConfig(data []byte, v any) error {
	// JSON is YAML, so one conversion covers both.
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one document")
	}
	return nil
}

// loadConfig reads path ("-" for stdin) into v.
func loadConfig(path string, stdin io.Reader, v any) error {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if err := decodeConfig(data, v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}
