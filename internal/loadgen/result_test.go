package loadgen

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sampleResults() []*Result {
	started := time.Date(2026, 11, 28, 14, 28, 3, 0, time.UTC)
	return []*Result{
		{
			Kind: KindPolicy, Label: "mailbrake-policy", Addr: "127.0.0.1:10041", State: "RCPT", Conns: 8,
			Users: 1000, Skew: 1.1, Rcpts: 1, Started: started, Elapsed: 15 * time.Second,
			Requests: 958355, PerSecond: 63890.33,
			Latency: Latency{Min: 31 * time.Microsecond, Mean: 120 * time.Microsecond, P50: 114 * time.Microsecond,
				P90: 250 * time.Microsecond, P99: 396 * time.Microsecond, P999: 735 * time.Microsecond, Max: 8383 * time.Microsecond},
			Errors:      map[string]int64{},
			Outcomes:    map[string]int64{"DUNNO": 63253, "DEFER_IF_PERMIT": 895102},
			Connections: 8, Stopped: StopDuration,
		},
		{
			Kind: KindMilter, Label: "mailbrake-milter", Addr: "127.0.0.1:10042", Conns: 8,
			Users: 1000, Skew: 1.1, Rcpts: 60, Started: started, Elapsed: 14500 * time.Millisecond,
			Requests: 25478, PerSecond: 1757.1,
			Latency: Latency{Min: 1100 * time.Microsecond, Mean: 4500 * time.Microsecond, P50: 4310 * time.Microsecond,
				P90: 7 * time.Millisecond, P99: 9210 * time.Microsecond, P999: 11570 * time.Microsecond, Max: 15530 * time.Microsecond},
			Errors:      map[string]int64{"timeout": 2, "eof": 1},
			Outcomes:    map[string]int64{"QUARANTINE": 14230, "ACCEPT": 11244, "TEMPFAIL(451)@eom": 4},
			Connections: 25481, Modifications: 14230, Stopped: StopCount,
		},
	}
}

// TestResultOutput compares the text and Markdown renderings with golden
// files; go test -update rewrites them.
func TestResultOutput(t *testing.T) {
	for _, r := range sampleResults() {
		var text, md bytes.Buffer
		if err := r.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if err := (&Output{Format: "md", MarkdownHeader: true}).Write(&md, r); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(md.String()), "\n")
		if len(lines) != 3 || strings.Count(lines[0], "|") != strings.Count(lines[2], "|") || strings.Count(lines[1], "|") != strings.Count(lines[2], "|") {
			t.Errorf("%s: Markdown header and row do not line up:\n%s", r.Kind, md.String())
		}
		golden(t, "result-"+r.Kind+".txt", text.String()+"\n"+md.String())
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestResultJSON(t *testing.T) {
	for _, r := range sampleResults() {
		var buf bytes.Buffer
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		var flat map[string]any
		if err := json.Unmarshal(buf.Bytes(), &flat); err != nil {
			t.Fatal(err)
		}
		if flat["p50_ms"] != float64(r.Latency.P50)/1e6 || flat["requests"] != float64(r.Requests) || flat["errors"] != float64(r.ErrorCount()) {
			t.Errorf("%s: JSON %v", r.Kind, flat)
		}
		var back Result
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&back, r) {
			t.Errorf("%s: JSON round trip\n%+v\nwant\n%+v", r.Kind, back, *r)
		}
	}
	path := filepath.Join(t.TempDir(), "r.json")
	r := sampleResults()[0]
	if err := (&Output{Format: "text", JSONFile: path}).Write(new(bytes.Buffer), r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Requests != r.Requests {
		t.Fatalf("--json-out file: %v %s", err, b)
	}
}
