package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/milter"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/pwleak"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/translate"
)

// mapStates is an engine.StateSource for scenarios.
type mapStates map[string]store.AccountState

func (m mapStates) AccountState(a string) store.AccountState {
	if s, ok := m[a]; ok {
		return s
	}
	return store.AccountNormal
}

var update = flag.Bool("update", false, "rewrite the want sections of testdata/scenarios")

// scenarioInput is one submission line of a scenario file.
type scenarioInput struct {
	At       string `json:"at"` // offset from the scenario start, e.g. "90s", "2h"
	Repeat   int    `json:"repeat"`
	Stage    string `json:"stage"`
	Path     string `json:"path"`
	SASL     string `json:"sasl"`
	Header   string `json:"header"` // value of the account header
	Sender   string `json:"sender"`
	Client   string `json:"client"` // client IP
	XMailer  string `json:"x_mailer"`
	UA       string `json:"user_agent"`
	Rcpt     string `json:"rcpt"`
	Rcpts    int    `json:"rcpts"`
	Instance string `json:"instance"`
	QueueID  string `json:"queue_id"`
	// RcptList names the recipients (milter path); without it the
	// message goes to rcpts generated addresses (rcpt000@dest.example …),
	// the same ones every time.
	RcptList []string `json:"rcpt_list"`
	// RcptDomain is the domain of the generated recipients (default
	// dest.example): another domain makes them first-time again.
	RcptDomain string `json:"rcpt_domain"`
	// Headers are more header fields, in order, after the account
	// header, X-Mailer and User-Agent: [["Name", "value"], …].
	Headers [][2]string `json:"headers"`
	// Body is the message body after the header block (milter path), as
	// the milter keeps it: the content detectors read it.
	Body string `json:"body"`
}

// TestScenarios runs every testdata/scenarios/*.txt file: an optional YAML
// config, then "== input" with one submission per line (JSON), then
// "== want" with one verdict per input line. Each input becomes a milter
// message or a policy request and goes through the daemon's own
// translation (package translate) and the detectors the config builds
// (package detect), so a scenario sees what live traffic would. Run with
// -update to rewrite the want sections after a deliberate change, and
// review the diff.
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/scenarios/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfgPart, rest, ok := bytes.Cut(data, []byte("== input\n"))
			if !ok {
				t.Fatal("missing == input")
			}
			inPart, wantPart, ok := bytes.Cut(rest, []byte("== want\n"))
			if !ok {
				t.Fatal("missing == want")
			}
			cfg, err := config.Load(cfgPart)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			got := run(t, cfg, inPart)
			if *update {
				out := append(append(append([]byte{}, cfgPart...), "== input\n"...), inPart...)
				out = append(append(out, "== want\n"...), got...)
				if err := os.WriteFile(file, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(wantPart) {
				t.Errorf("verdicts differ\n--- got\n%s--- want\n%s", got, wantPart)
			}
		})
	}
}

func run(t *testing.T, cfg *config.Config, input []byte) string {
	t.Helper()
	states := mapStates{}
	dets, err := detect.Build(cfg, detect.Options{NoveltyKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	detectors := dets.All()
	// The password-leak check as the daemon builds it, from a passwd-file
	// (the scenario's directory.passwd_file, relative to this package).
	var leak *pwleak.Detector
	if p := cfg.Directory.PasswdFile.Path; p != "" {
		if o := detect.PasswordLeakOptions(cfg, []pwleak.HashSource{detect.PasswdFileSource{Path: p}}, nil); o != nil {
			leak = pwleak.New(*o)
			t.Cleanup(leak.Close)
			detectors = append(detectors, leak)
		}
	}
	e, err := engine.New(engine.Options{Rules: cfg.Rules, Counters: counter.NewMemory(), OnError: engine.ActionAllow,
		States: states, Scores: counter.NewMemory(), WatchScore: int64(cfg.Accounts.WatchScore), RestrictScore: int64(cfg.Accounts.RestrictScore),
		ScoreWindow: cfg.Accounts.ScoreWindow.D(), Shadow: cfg.Engine.Shadow, Detectors: detectors})
	if err != nil {
		t.Fatal(err)
	}
	id, err := engine.NewIdentity(cfg.Identity.TrustedNetworks, cfg.Identity.AccountHeader)
	if err != nil {
		t.Fatal(err)
	}
	id.PolicySender = cfg.Identity.RelayedOnPolicy == config.RelayedSender
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	now := start
	tr := &translate.Translator{Identity: id, Now: func() time.Time { return now }}
	var out strings.Builder
	for n, line := range strings.Split(strings.TrimRight(string(input), "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var in scenarioInput
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("input line %d: %v", n+1, err)
		}
		at := time.Duration(0)
		if in.At != "" {
			if at, err = time.ParseDuration(in.At); err != nil {
				t.Fatalf("input line %d: %v", n+1, err)
			}
		}
		now = start.Add(at)
		repeat := max(in.Repeat, 1)
		var v engine.Verdict
		for i := 0; i < repeat; i++ {
			qid, instance := in.QueueID, in.Instance
			if repeat > 1 && qid != "" {
				qid = fmt.Sprintf("%s%04d", qid, i)
			}
			if i > 0 && instance != "" && in.Stage != "rcpt" {
				// Postfix's instance names one message: repeated messages
				// get their own (repeated RCPTs are one message's).
				instance = fmt.Sprintf("%s.%04d", instance, i)
			}
			var sub *engine.Submission
			if in.Path == "policy" {
				req := &policy.Request{ProtocolState: policy.StateEndOfMessage, SASLUsername: in.SASL, Sender: in.Sender, ClientAddress: in.Client,
					Recipient: in.Rcpt, RecipientCount: in.Rcpts, QueueID: qid, Instance: instance}
				if in.Stage == "rcpt" {
					req.ProtocolState, req.RecipientCount = policy.StateRcpt, 0
				}
				var ok bool
				if sub, ok = tr.PolicySubmission(req); !ok {
					t.Fatalf("input line %d: state %s not decided on", n+1, req.ProtocolState)
				}
				if in.Body != "" {
					t.Fatalf("input line %d: the policy path sees no body", n+1)
				}
			} else {
				if in.Path != "" && in.Path != "milter" || in.Stage != "" && in.Stage != "eom" {
					t.Fatalf("input line %d: the milter sees whole messages (path milter, stage eom)", n+1)
				}
				msg := scenarioMessage(cfg, in, qid)
				sub = tr.MilterSubmission(msg)
				if (leak != nil || dets.Campaign != nil) && translate.ContentScanned(sub) {
					sub.Body = translate.RawMessage(msg) // as the daemon's milter adapter does
				}
			}
			if v, err = e.Evaluate(context.Background(), sub); err != nil {
				t.Fatalf("input line %d: %v", n+1, err)
			}
			if v.Escalate != "" {
				states[sub.Account] = v.Escalate // as ops applies it
			}
		}
		fmt.Fprintf(&out, "%s", v.Action)
		if len(v.Reasons) > 0 {
			fmt.Fprintf(&out, " %s", strings.Join(engine.ReasonStrings(v.Reasons), ","))
		}
		if v.Shadow != v.Action {
			fmt.Fprintf(&out, " (shadow: %s)", v.Shadow)
		}
		if v.AccountState != store.AccountNormal {
			fmt.Fprintf(&out, " state=%s", v.AccountState)
		}
		if v.Escalate != "" {
			fmt.Fprintf(&out, " escalate=%s", v.Escalate)
		}
		if v.Score > 0 {
			fmt.Fprintf(&out, " score=%d/%dmsg", v.Score, v.ScoredMessages)
		}
		for _, f := range v.Findings {
			switch {
			case f.DryRun:
				fmt.Fprintf(&out, " (dry-run %s: %s)", f.Reason, f.Action)
			case f.Action == engine.ActionAllow && f.Score > 0:
				fmt.Fprintf(&out, " (evidence %s +%d)", f.Reason, f.Score)
			}
		}
		fmt.Fprintf(&out, " [%d/%d msgs, %d/%d rcpts 1h/24h]\n", v.Totals.Messages1h, v.Totals.Messages24h, v.Totals.Recipients1h, v.Totals.Recipients24h)
	}
	return out.String()
}

// scenarioMessage is the milter's view of a scenario input line.
func scenarioMessage(cfg *config.Config, in scenarioInput, qid string) *milter.Message {
	msg := &milter.Message{ClientAddr: in.Client, AuthAuthen: in.SASL, Sender: in.Sender, QueueID: qid, Recipients: in.RcptList}
	if len(msg.Recipients) == 0 {
		switch {
		case in.Rcpt != "":
			msg.Recipients = []string{in.Rcpt}
		default:
			dom := in.RcptDomain
			if dom == "" {
				dom = "dest.example"
			}
			for i := range in.Rcpts {
				msg.Recipients = append(msg.Recipients, fmt.Sprintf("rcpt%03d@%s", i, dom))
			}
		}
	}
	msg.RecipientCount = max(in.Rcpts, len(msg.Recipients))
	if in.Header != "" {
		msg.Headers = append(msg.Headers, milter.Header{Name: cfg.Identity.AccountHeader, Value: in.Header})
	}
	if in.XMailer != "" {
		msg.Headers = append(msg.Headers, milter.Header{Name: "X-Mailer", Value: in.XMailer})
	}
	if in.UA != "" {
		msg.Headers = append(msg.Headers, milter.Header{Name: "User-Agent", Value: in.UA})
	}
	for _, h := range in.Headers {
		msg.Headers = append(msg.Headers, milter.Header{Name: h[0], Value: h[1]})
	}
	msg.Preview = []byte(in.Body)
	msg.BodySize = int64(len(in.Body))
	return msg
}
