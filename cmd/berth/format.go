package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"
)

// shortIDLen is how much of an ID tables show, as crictl does.
const shortIDLen = 13

// shortID drops a digest algorithm prefix and truncates id for tables.
func shortID(id string) string {
	if _, hex, ok := strings.Cut(id, ":"); ok {
		id = hex
	}
	if len(id) > shortIDLen {
		return id[:shortIDLen]
	}
	return id
}

// humanSize formats bytes with decimal units and three significant digits
// ("4.26MB"), as crictl and docker do.
func humanSize(n uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	i := 0
	// 999.5 rounds to "1e+03" under %.3g, so move up a unit before that.
	for v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + units[i]
}

// humanDuration says how long d is in words ("5 minutes"), rounding like
// docker's units.HumanDuration.
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Hours() + 0.5); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	default:
		return fmt.Sprintf("%d years", h/24/365)
	}
}

// ago formats a CRI timestamp (nanoseconds since the epoch) relative to now.
func ago(nanos int64, now time.Time) string {
	if nanos == 0 {
		return "Unknown"
	}
	return humanDuration(now.Sub(time.Unix(0, nanos))) + " ago"
}

// tid is how tables show an ID: short, or whole with --no-trunc.
func (a *app) tid(id string) string {
	if a.noTrunc {
		return id
	}
	return shortID(id)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0) }

func podState(s runtimeapi.PodSandboxState) string {
	if s == runtimeapi.PodSandboxState_SANDBOX_READY {
		return "Ready"
	}
	return "NotReady"
}

func containerState(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return "Created"
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return "Running"
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return "Exited"
	}
	return "Unknown"
}

// protoJSON renders m as indented JSON with proto field names in
// lowerCamelCase and zero values shown, like crictl's inspect.
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(b), nil
}

// withInfo combines a status message with the verbose info map, whose values
// are JSON documents when the runtime sends them so (crictl shows them
// parsed).
func withInfo(key string, m proto.Message, info map[string]string) (map[string]any, error) {
	out := map[string]any{}
	if m != nil {
		raw, err := protoJSON(m)
		if err != nil {
			return nil, err
		}
		out[key] = raw
	}
	if len(info) > 0 {
		parsed := map[string]any{}
		for k, v := range info {
			if json.Valid([]byte(v)) {
				parsed[k] = json.RawMessage(v)
			} else {
				parsed[k] = v
			}
		}
		out["info"] = parsed
	}
	return out, nil
}

// goTemplatePrefix starts -o go-template=TEMPLATE.
const goTemplatePrefix = "go-template="

// checkFormat validates -o once, before anything is called.
func checkFormat(f string) error {
	switch {
	case f == "", f == "table", f == "json", f == "yaml":
		return nil
	case strings.HasPrefix(f, goTemplatePrefix):
		_, err := parseTemplate(strings.TrimPrefix(f, goTemplatePrefix))
		return err
	}
	return fmt.Errorf("unknown output format %q: use table, json, yaml or go-template=TEMPLATE", f)
}

func parseTemplate(text string) (*template.Template, error) {
	t, err := template.New("output").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"short": shortID,
		"size":  func(v any) string { f, _ := strconv.ParseFloat(fmt.Sprint(v), 64); return humanSize(uint64(f)) },
	}).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("-o go-template: %w", err)
	}
	return t, nil
}

// printDoc writes v (a proto message or any JSON-marshalable value) as
// JSON, YAML, or through a Go template applied to its JSON form (field
// names as in -o json, like crictl's and kubectl's go-template).
func printDoc(w io.Writer, format string, v any) error {
	var b []byte
	var err error
	if m, ok := v.(proto.Message); ok {
		b, err = protoJSON(m)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	if text, ok := strings.CutPrefix(format, goTemplatePrefix); ok {
		t, err := parseTemplate(text)
		if err != nil {
			return err
		}
		var data any
		if err := json.Unmarshal(b, &data); err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		if err := t.Execute(w, data); err != nil {
			return fmt.Errorf("-o go-template: %w", err)
		}
		return nil
	}
	if format == "yaml" {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		_, err = w.Write(y)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}
