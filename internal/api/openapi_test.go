package api

import (
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mailbrake/mailbrake/internal/store"
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

// TestOpenAPIListsAuditActions keeps the AuditEntry schema's action enum
// and the catalogue (store.AuditActions) in step, in its order.
func TestOpenAPIListsAuditActions(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				AuditEntry struct {
					Properties struct {
						Action struct {
							Enum []string `yaml:"enum"`
						} `yaml:"action"`
					} `yaml:"properties"`
				} `yaml:"AuditEntry"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	var want []string
	for _, a := range store.AuditActions() {
		want = append(want, string(a))
	}
	if got := doc.Components.Schemas.AuditEntry.Properties.Action.Enum; !slices.Equal(got, want) {
		t.Fatalf("docs/openapi.yaml AuditEntry.action enum:\n %v\nthe catalogue (store.AuditActions):\n %v", got, want)
	}
}
