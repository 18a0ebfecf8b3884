package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

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
		// above the baseline floor (100) as well, but a replay starts as a
		// new installation: the baseline is learning (see below).
		{"hold", "bulk-from-scripted-client", "restricted"},
		{"hold", "account-restricted", "restricted"},
		{"error", "", ""},
		{"allow", "", "normal"},
		{"error", "", ""},
	}
	for i, w := range want {
		if o[i].Line != i+1 || o[i].Action != w.action || strings.Join(o[i].Reasons, ",") != w.reasons || o[i].AccountState != w.state {
			t.Errorf("line %d: %+v, want %+v", i+1, o[i], w)
		}
	}
	// Every finding is listed, with its family, score and dry-run flag,
	// and the account's score after the message.
	var base *Finding
	for i, f := range o[2].Findings {
		if f.Reason == "above-baseline-hour" {
			base = &o[2].Findings[i]
		}
	}
	if base == nil || !base.DryRun || base.Family != "volume" || base.Score != 5 || !strings.Contains(base.Evidence, "(learning)") {
		t.Errorf("line 3 findings: %+v", o[2].Findings)
	}
	if o[2].Score != 10 || o[2].ScoredMessages != 2 {
		t.Errorf("line 3 score %d from %d messages, want 10 from 2", o[2].Score, o[2].ScoredMessages)
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

// TestReplayContent: records carrying the message (raw, base64, or eml, a
// file) run the content detectors: a run of one text to first-time
// recipients is found as on the milter path; eml that is not a regular
// file, and raw with eml, are line errors.
func TestReplayContent(t *testing.T) {
	msg := "From: m@example.edu\r\nSubject: =?utf-8?q?Opportunit=C3=A9?=\r\n\r\nHello there,\r\n\r\nI am writing to share an investment opportunity with a guaranteed monthly return. Our fund has helped many families in your area. Reply for the brochure.\r\n"
	eml := t.TempDir() + "/m.eml"
	if err := os.WriteFile(eml, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Novelty.Learning = 0
	var in bytes.Buffer
	for i := range 6 {
		rec := map[string]any{"time": fmt.Sprintf("2026-11-02T09:%02d:00Z", i*5), "account": "m@example.edu",
			"recipients": []string{fmt.Sprintf("a%d@x.example", i), fmt.Sprintf("b%d@x.example", i)}}
		if i%2 == 0 {
			rec["raw"] = []byte(msg)
		} else {
			rec["eml"] = eml
		}
		b, _ := json.Marshal(rec)
		in.Write(append(b, '\n'))
	}
	in.WriteString(`{"time":"2026-11-02T10:00:00Z","account":"m@example.edu","recipients":["z@x.example"],"eml":"/dev/null"}` + "\n")
	in.WriteString(`{"time":"2026-11-02T10:00:00Z","account":"m@example.edu","recipients":["z@x.example"],"eml":"x","raw":"eA=="}` + "\n")
	var out bytes.Buffer
	if _, err := Run(context.Background(), cfg, &in, &out, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outputs(t, &out) {
		got = append(got, o.Action+" "+strings.Join(o.Reasons, ","))
	}
	want := []string{"allow ", "allow ", "allow ", "allow ", "hold campaign-run", "hold campaign-run", "error ", "error "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if s := rawSubject([]byte(msg)); s != "Opportunité" {
		t.Errorf("subject %q", s)
	}
}

// TestReplayRunsRecipientStage: the recipient-stage rules run per
// recipient as on the policy path: the default messages-per-hour rule
// defers at RCPT from the 201st message in an hour, and the refused
// recipients are counted, not sent.
func TestReplayRunsRecipientStage(t *testing.T) {
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 205 {
		enc.Encode(Record{Time: t0.Add(time.Duration(i) * 10 * time.Second), Account: "script@example.edu",
			Recipients: []string{fmt.Sprintf("a%d@x.example", i), fmt.Sprintf("b%d@x.example", i)}})
	}
	var out bytes.Buffer
	sum, err := Run(context.Background(), config.Default(), &in, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs := outputs(t, &out)
	if len(outs) != 205 {
		t.Fatalf("%d output lines", len(outs))
	}
	for i, o := range outs {
		deferred := o.Action == "defer"
		if want := i >= 200; deferred != want || (deferred && (o.Refused != 2 || strings.Join(o.Reasons, ",") != "rate-messages-hour")) {
			t.Fatalf("message %d: %+v", i+1, o)
		}
	}
	if sum.Actions["defer"] != 5 {
		t.Errorf("summary: %+v", sum.Actions)
	}
}

// outputs decodes replay's output lines.
func outputs(t *testing.T, r io.Reader) []Output {
	t.Helper()
	var outs []Output
	dec := json.NewDecoder(r)
	for {
		var o Output
		if err := dec.Decode(&o); err == io.EOF {
			return outs
		} else if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
}
