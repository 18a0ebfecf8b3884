package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/config"
)

func replayFile(t *testing.T, path string) (string, *Summary) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	sum, err := Run(context.Background(), config.Default(), f, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), sum
}

func TestReplaySample(t *testing.T) {
	out, sum := replayFile(t, "testdata/sample.jsonl")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d output lines, want 7:\n%s", len(lines), out)
	}
	var o []Output
	for _, l := range lines {
		var x Output
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatal(err)
		}
		o = append(o, x)
	}
	want := []struct{ action, reasons, state string }{
		{"allow", "", "normal"},
		{"hold", "bulk-from-scripted-client", "watch"},
		// 102 recipients in an hour from an account without history is
		// above the baseline floor (100) as well.
		{"hold", "above-baseline-hour,bulk-from-scripted-client", "restricted"},
		{"hold", "account-restricted,above-baseline-hour", "restricted"},
		{"error", "", ""},
		{"allow", "", "normal"},
		{"error", "", ""},
	}
	for i, w := range want {
		if o[i].Line != i+1 || o[i].Action != w.action || strings.Join(o[i].Reasons, ",") != w.reasons || o[i].AccountState != w.state {
			t.Errorf("line %d: %+v, want %+v", i+1, o[i], w)
		}
	}
	if o[0].Time != "2001-05-01T10:00:00Z" || o[4].Error == "" || !strings.Contains(o[6].Error, "account is required") {
		t.Errorf("fields: %+v %+v %+v", o[0], o[4], o[6])
	}
	if sum.Messages != 4 || sum.Inbound != 1 || sum.Errors != 2 || sum.Actions["hold"] != 3 || sum.AccountsByState["restricted"] != 1 {
		t.Errorf("summary: %+v", sum)
	}
	var text bytes.Buffer
	sum.WriteText(&text)
	if !strings.Contains(text.String(), "bulk-from-scripted-client") {
		t.Errorf("summary text: %s", text.String())
	}
}

// TestDeterministic: the same input gives byte-identical output.
func TestDeterministic(t *testing.T) {
	a, _ := replayFile(t, "testdata/sample.jsonl")
	b, _ := replayFile(t, "testdata/sample.jsonl")
	if a != b {
		t.Fatalf("replay is not deterministic:\n%s\n---\n%s", a, b)
	}
}

func FuzzParseRecord(f *testing.F) {
	data, _ := os.ReadFile("testdata/sample.jsonl")
	for _, l := range strings.Split(string(data), "\n") {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		if r.Time.IsZero() || r.Account == "" || len(r.Recipients) == 0 {
			t.Fatalf("accepted an incomplete record: %+v", r)
		}
		// Round trip: what was accepted re-encodes to an accepted record.
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRecord(again); err != nil {
			t.Fatalf("round trip: %v (%s)", err, again)
		}
	})
}

func TestReplyToPhishInReplay(t *testing.T) {
	in := strings.Join([]string{
		`{"time":"2026-11-02T09:00:00Z","account":"victim@example.edu","sender":"it-desk@phish.example","recipients":["victim@example.edu"],"direction":"inbound","message_id":"<p1@phish.example>","subject":"[Fraud Alert: Suspected SPAM] Mailbox quota","headers":{"Reply-To":"Desk <collect@drop.example>"}}`,
		`{"time":"2026-11-03T09:00:00Z","account":"victim@example.edu","recipients":["collect@drop.example"],"client":"Mozilla Thunderbird"}`,
		`{"time":"2026-11-03T09:05:00Z","account":"other@example.edu","recipients":["friend@example.org"],"in_reply_to":"<p1@phish.example>"}`,
		`{"time":"2026-11-03T09:06:00Z","account":"other@example.edu","recipients":["friend@example.org"],"in_reply_to":"<unrelated@example.org>"}`,
	}, "\n")
	var out bytes.Buffer
	if _, err := Run(context.Background(), config.Default(), strings.NewReader(in), &out, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{`"action":"allow"`, `"reasons":["reply-to-suspected-phish"]`, `"reasons":["reply-to-suspected-phish"]`, `"action":"allow"`}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s, want %s", i+1, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], `"account_state":"watch"`) {
		t.Errorf("a reply to phish did not put the account on watch: %s", lines[1])
	}
}

func TestReportHTML(t *testing.T) {
	f, err := os.Open("testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep := NewReport()
	var out bytes.Buffer
	sum, err := Run(context.Background(), config.Default(), f, io.MultiWriter(&out, rep), nil)
	if err != nil {
		t.Fatal(err)
	}
	var html bytes.Buffer
	if err := rep.WriteHTML(&html, sum); err != nil {
		t.Fatal(err)
	}
	h := html.String()
	for _, want := range []string{"<svg", "b@example.edu", "normal → watch → restricted", "#d33", "stroke-dasharray"} {
		if !strings.Contains(h, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Index(h, "b@example.edu") > strings.Index(h, "a@example.edu") {
		t.Error("the account with holds is not listed first")
	}
}
