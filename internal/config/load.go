package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxConfigBytes bounds a config file: a real one is a few KiB.
const maxConfigBytes = 4 << 20

// FieldError is one problem in a configuration, located by key path
// ("policy.listen", "rules[2].when[0].gt") and, when known, line.
type FieldError struct {
	Path string
	Line int
	Msg  string
}

func (e FieldError) Error() string {
	p := e.Path
	if p == "" {
		p = "(top level)"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", p, e.Msg, e.Line)
	}
	return fmt.Sprintf("%s: %s", p, e.Msg)
}

// Errors is every problem found in a configuration.
type Errors []FieldError

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Checker is an extra check run after Validate, such as the engine's rule
// compiler; its errors are reported with the others.
type Checker func(*Config) Errors

// LoadFile reads and checks a configuration file. A missing path ("")
// returns the defaults.
func LoadFile(path string, extra ...Checker) (*Config, error) {
	if path == "" {
		return Load(nil, extra...)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("reading config %s: larger than %d bytes", path, maxConfigBytes)
	}
	return Load(data, extra...)
}

// Load parses YAML on top of the defaults. Keys that are present replace the
// default (a present `rules:` list replaces the default rules). It returns
// every error found, as Errors, each with its key path.
func Load(data []byte, extra ...Checker) (*Config, error) {
	c := Default()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) { // io.EOF: an empty file means the defaults
			return nil, Errors{{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
		}
	}
	var errs Errors
	sitePlaybooks := false
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if !(root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			decodeNode(root, reflect.ValueOf(c).Elem(), "", &errs)
		}
		if root.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(root.Content); i += 2 {
				if root.Content[i].Value == "playbooks" {
					sitePlaybooks = true
				}
			}
		}
	}
	// A second document is a mistake worth reporting.
	var second yaml.Node
	if err := dec.Decode(&second); err == nil {
		errs = append(errs, FieldError{Line: second.Line, Msg: "more than one YAML document"})
	}
	// Validate even after decoding errors: a key that failed to decode
	// keeps its default, so the remaining errors are real ones too.
	errs = append(errs, c.Validate()...)
	for _, check := range extra {
		if check != nil {
			errs = append(errs, check(c)...)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	switch {
	case sitePlaybooks && len(c.Playbooks) == 0:
		// An explicit empty list turns every playbook off, as it always
		// did: a site that chose no automatic response keeps none.
		c.notes = append(c.notes, "playbooks: [] — no playbook runs: findings hold messages but open no incident")
	case sitePlaybooks:
		// Validated as written (the key paths are the file's); merged
		// with the defaults after.
		c.Playbooks, c.playbookPaths, c.notes = mergePlaybooks(c.Playbooks)
	}
	if c.Cluster.Redis.Address != "" && c.Cluster.KeyFile == "" {
		c.notes = append(c.notes, "cluster.key_file is not set: account states and learned events shared through Redis are not signed, so whoever can write to the cluster's Redis can restrict or release accounts and teach the detectors (docs/cluster.md)")
	}
	return c, nil
}

var durationType = reflect.TypeOf(Duration(0))

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

// decodeNode sets v from n, appending an error with its key path for every
// problem instead of stopping at the first.
func decodeNode(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind == yaml.AliasNode {
		*errs = append(*errs, FieldError{Path: path, Line: n.Line, Msg: "YAML aliases are not supported"})
		return
	}
	bad := func(format string, args ...any) {
		*errs = append(*errs, FieldError{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
	}
	if v.Kind() == reflect.Pointer {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		nv := reflect.New(v.Type().Elem())
		decodeNode(n, nv.Elem(), path, errs)
		v.Set(nv)
		return
	}
	if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok && v.Kind() != reflect.String {
		// A typed enumeration (verdict.Action): decoded, and checked, once.
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			bad("expected one word, got %s", kindName(n))
			return
		}
		if err := tu.UnmarshalText([]byte(n.Value)); err != nil {
			bad("%v", err)
		}
		return
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode {
			bad("expected a duration such as 30s, got %s", kindName(n))
			return
		}
		d, err := parseDuration(n.Value)
		if err != nil {
			bad("%v", err)
			return
		}
		v.SetInt(int64(d))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("expected a mapping, got %s", kindName(n))
			return
		}
		fields := map[string]int{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if name != "" && name != "-" {
				fields[name] = i
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			if seen[k.Value] {
				*errs = append(*errs, FieldError{Path: kp, Line: k.Line, Msg: "duplicate key"})
				continue
			}
			seen[k.Value] = true
			idx, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, FieldError{Path: kp, Line: k.Line, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			decodeNode(val, v.Field(idx), kp, errs)
		}
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		if n.Kind != yaml.SequenceNode {
			bad("expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			decodeNode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			bad("expected a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			bad("expected true or false, got %s", kindName(n))
			return
		}
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			bad("expected true or false, got %q", n.Value)
		}
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			bad("expected an integer, got %s", kindName(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil {
			bad("expected an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			bad("expected a number, got %s", kindName(n))
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil {
			bad("expected a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		bad("unsupported type %s", v.Type())
	}
}

// suggest names the closest known key, for typos.
func suggest(key string, fields map[string]int) string {
	return DidYouMean(key, maps.Keys(fields), 2)
}

// DidYouMean returns ` (did you mean "x"?)` for the candidate closest to s
// within maxDistance edits (the first in order on a tie), or "".
func DidYouMean(s string, candidates iter.Seq[string], maxDistance int) string {
	best, bestD := "", maxDistance+1
	for c := range candidates {
		if d := distance(s, c); d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
