package config

import (
	"encoding"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WriteExample writes the default configuration as YAML, every key preceded
// by its doc comment. It is generated from the typed Config, so it cannot
// drift from what Load accepts.
func WriteExample(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# mailbrake configuration. Every key is optional; these are the defaults.\n")
	b.WriteString("# Check a file with: mailbrake config check FILE\n\n")
	writeStruct(&b, reflect.ValueOf(*Default()), 0)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeStruct(b *strings.Builder, v reflect.Value, indent int) {
	t := v.Type()
	pad := strings.Repeat("  ", indent)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		if doc := f.Tag.Get("doc"); doc != "" {
			for _, line := range wrap(doc, 76-len(pad)) {
				fmt.Fprintf(b, "%s# %s\n", pad, line)
			}
		}
		fv := v.Field(i)
		switch {
		case fv.Type() == durationType:
			fmt.Fprintf(b, "%s%s: %s\n", pad, name, Duration(fv.Int()))
		case fv.Kind() == reflect.Struct:
			fmt.Fprintf(b, "%s%s:\n", pad, name)
			writeStruct(b, fv, indent+1)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			// Lists of structs (rules) are written by the YAML encoder,
			// with the element doc comments once, above the list.
			fmt.Fprintf(b, "%s%s:\n", pad, name)
			writeFieldDocs(b, fv.Type().Elem(), pad+"  ")
			out, _ := yaml.Marshal(fv.Interface())
			for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
				fmt.Fprintf(b, "%s  %s\n", pad, line)
			}
		case fv.Kind() == reflect.Slice:
			if fv.Len() == 0 {
				fmt.Fprintf(b, "%s%s: []\n", pad, name)
				continue
			}
			fmt.Fprintf(b, "%s%s:\n", pad, name)
			for j := 0; j < fv.Len(); j++ {
				fmt.Fprintf(b, "%s  - %s\n", pad, scalar(fv.Index(j)))
			}
		default:
			fmt.Fprintf(b, "%s%s: %s\n", pad, name, scalar(fv))
		}
		if indent == 0 {
			b.WriteByte('\n')
		}
	}
}

// writeFieldDocs documents the keys of a list element type.
func writeFieldDocs(b *strings.Builder, t reflect.Type, pad string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		doc := f.Tag.Get("doc")
		if doc == "" {
			continue
		}
		lines := wrap(doc, 70-len(pad))
		fmt.Fprintf(b, "%s# %s: %s\n", pad, name, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(b, "%s#   %s\n", pad, l)
		}
		if ft := f.Type; ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			writeFieldDocs(b, ft.Elem(), pad+"  ")
		}
	}
}

func scalar(v reflect.Value) string {
	if tm, ok := v.Interface().(encoding.TextMarshaler); ok && v.Kind() != reflect.String {
		if out, err := tm.MarshalText(); err == nil {
			if len(out) == 0 { // an empty setting (notify.syslog.network)
				return `""`
			}
			return string(out)
		}
	}
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if s == "" {
			return `""`
		}
		out, _ := yaml.Marshal(s)
		return strings.TrimSpace(string(out))
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return fmt.Sprint(v.Interface())
}

func wrap(s string, width int) []string {
	if width < 20 {
		width = 20
	}
	var lines []string
	var cur strings.Builder
	for _, w := range strings.Fields(s) {
		if cur.Len() > 0 && cur.Len()+1+len(w) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(w)
	}
	if cur.Len() > 0 || len(lines) == 0 {
		lines = append(lines, cur.String())
	}
	return lines
}
