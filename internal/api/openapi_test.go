package api

import (
	"os"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDocumentsEveryRoute keeps docs/openapi.yaml and the handler
// in step: every route is documented and every documented operation is a
// route.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	var missing, extra []string
	routes := map[string]bool{}
	for _, rt := range Routes() {
		r := rt.Pattern()
		routes[r] = true
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !routes[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("undocumented routes: %v\ndocumented but not served: %v", missing, extra)
	}
}
