package daemon

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exportedMetricNames are the names of every metric the daemon registers,
// whether or not it has a sample yet (those of cluster mode included).
func exportedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 256)
	for _, c := range newMetrics().own() {
		c.Describe(ch)
	}
	newStateGauges(&Daemon{}).Describe(ch)
	newDegradedGauge().Describe(ch)
	close(ch)
	fq := regexp.MustCompile(`fqName: "([a-z_0-9]+)"`)
	names := map[string]bool{}
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("only %d metric names found: %v", len(names), names)
	}
	return names
}

// TestContribMetricsExist: the alert rules and the Grafana dashboard in
// contrib/ name only metrics the daemon exports (issue 14), the rules pass
// `promtool check rules` when promtool is installed, and the dashboard is
// valid JSON.
func TestContribMetricsExist(t *testing.T) {
	names := exportedMetricNames(t)
	used := regexp.MustCompile(`mailbrake_[a-z_0-9]+`)
	for _, f := range []string{"../../contrib/prometheus/mailbrake-rules.yml", "../../contrib/grafana/mailbrake-dashboard.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, name := range used.FindAllString(string(b), -1) {
			if strings.HasPrefix(name, "mailbrake_dashboard") {
				continue
			}
			n++
			base := name
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(name, suf) && names[strings.TrimSuffix(name, suf)] {
					base = strings.TrimSuffix(name, suf)
				}
			}
			if !names[base] {
				t.Errorf("%s names %s, which the daemon does not export", f, name)
			}
		}
		if n == 0 {
			t.Errorf("%s names no mailbrake metric", f)
		}
	}
	var dash map[string]any
	b, _ := os.ReadFile("../../contrib/grafana/mailbrake-dashboard.json")
	if err := json.Unmarshal(b, &dash); err != nil || len(dash["panels"].([]any)) == 0 {
		t.Errorf("dashboard: %v", err)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: rule syntax not checked (scripts/install-test-deps.sh installs it)")
		return
	}
	if out, err := exec.Command(promtool, "check", "rules", "../../contrib/prometheus/mailbrake-rules.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
