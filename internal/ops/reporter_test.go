package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// batchCounter counts the OpenIncidents calls and their findings.
type batchCounter struct {
	store.Incidents
	mu      sync.Mutex
	calls   int
	written int
}

func (b *batchCounter) OpenIncidents(ctx context.Context, fs []store.IncidentFinding) ([]store.OpenResult, error) {
	b.mu.Lock()
	b.calls++
	b.written += len(fs)
	b.mu.Unlock()
	return b.Incidents.OpenIncidents(ctx, fs)
}

// TestReporter: findings added while the worker gathers are written in one
// call, per account, each message's finding once; an account's queue keeps
// at most maxPendingPerAccount findings but always one of a new reason;
// Close writes what waits at once, and a finding added after Close is
// still written.
func TestReporter(t *testing.T) {
	s, _, _ := newService(t)
	bc := &batchCounter{Incidents: s.Response.Incidents}
	s.Response.Incidents = bc
	r := NewReporter(s, time.Hour, nil, "")
	for i := range 300 {
		r.Add("a@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: fmt.Sprintf("QA%03d", i)}})
	}
	r.Add("a@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QA000"}}) // the other path
	r.Add("a@example.edu", []Finding{{Reason: "password-leak", QueueID: "QA299"}})
	r.Add("b@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QB"}, {Reason: "bulk-from-scripted-client", QueueID: "QB"}})
	r.Add("", []Finding{{Reason: "bulk-from-scripted-client"}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if bc.calls != 1 || bc.written != maxPendingPerAccount+1+1 {
		t.Fatalf("%d calls writing %d findings, want 1 call writing %d", bc.calls, bc.written, maxPendingPerAccount+2)
	}
	a, err := s.Response.Incidents.ActiveIncident(ctx, "a@example.edu")
	if err != nil || a.Severity != store.SeverityCritical || len(a.Evidence) != store.MaxEvidence {
		t.Fatalf("a: %+v %v", a, err)
	}
	if b, err := s.Response.Incidents.ActiveIncident(ctx, "b@example.edu"); err != nil || len(b.Evidence) != 1 {
		t.Fatalf("b: %+v %v", b, err)
	}
	r.Add("c@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QC"}})
	if _, err := s.Response.Incidents.ActiveIncident(ctx, "c@example.edu"); err != nil {
		t.Fatalf("a finding after Close: %v", err)
	}
	s.WaitPlaybooks(ctx)
}

// failingIncidents refuses OpenIncidents while down is set, as a store
// that does not answer.
type failingIncidents struct {
	store.Incidents
	mu    sync.Mutex
	down  bool
	hang  bool // answers nothing until ctx ends (a network cut)
	tries int
}

func (f *failingIncidents) OpenIncidents(ctx context.Context, fs []store.IncidentFinding) ([]store.OpenResult, error) {
	f.mu.Lock()
	f.tries++
	down, hang := f.down, f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if down {
		return nil, fmt.Errorf("postgres store: dial tcp: connection refused")
	}
	return f.Incidents.OpenIncidents(ctx, fs)
}

// waitTries waits until the store was asked n times, failing with msg.
func (f *failingIncidents) waitTries(t *testing.T, n int, msg string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		tries := f.tries
		f.mu.Unlock()
		if tries >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

// TestReporterKeepsWhatFailed: findings the store did not take (it did
// not answer) are kept and written when it answers again, with what came
// meanwhile — a hold written just before the store went away still
// reaches its incident.
func TestReporterKeepsWhatFailed(t *testing.T) {
	s, _, _ := newService(t)
	fi := &failingIncidents{Incidents: s.Response.Incidents, down: true}
	s.Response.Incidents = fi
	r := NewReporter(s, time.Millisecond, nil, "")
	r.Add("a@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QA"}})
	fi.waitTries(t, 2, "the failed batch was not tried again")
	r.Add("b@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QB"}})
	fi.mu.Lock()
	fi.down = false
	fi.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	waitEvidence(ctx, t, fi.Incidents, "a@example.edu", "b@example.edu")
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.WaitPlaybooks(ctx)
}

// TestReporterGivesUpOnSilentStore: a store that stops answering without
// closing the connection (a network cut) does not hold the incident lock,
// and every admin's incident action behind it, for ever: the batch's
// writing runs out, the batch is kept and written once the store answers.
func TestReporterGivesUpOnSilentStore(t *testing.T) {
	defer func(d time.Duration) { reportTimeout = d }(reportTimeout)
	reportTimeout = 50 * time.Millisecond
	s, _, _ := newService(t)
	fi := &failingIncidents{Incidents: s.Response.Incidents, hang: true}
	s.Response.Incidents = fi
	r := NewReporter(s, time.Millisecond, nil, "")
	r.Add("a@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QA"}})
	fi.waitTries(t, 2, "a batch the store never answered was not given up and tried again")
	fi.mu.Lock()
	fi.hang = false
	fi.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	waitEvidence(ctx, t, fi.Incidents, "a@example.edu")
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s.WaitPlaybooks(ctx)
}

// TestReporterSpool: findings the store did not take are kept on disk; a
// process stopped (or killed) meanwhile leaves them there, and the next
// one writes them once the store answers, then removes the file.
func TestReporterSpool(t *testing.T) {
	s, _, _ := newService(t)
	fi := &failingIncidents{Incidents: s.Response.Incidents, down: true}
	s.Response.Incidents = fi
	spool := filepath.Join(t.TempDir(), "spool", "findings.json")
	r := NewReporter(s, time.Millisecond, nil, spool)
	r.Add("a@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QA", HoldID: 7, Detail: "60 recipients"}})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(spool); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the findings the store did not take were not spooled")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r.Add("b@example.edu", []Finding{{Reason: "bulk-from-scripted-client", QueueID: "QB"}})
	if err := r.Close(ctx); err != nil { // the store still down: both stay on disk
		t.Fatal(err)
	}
	b, err := os.ReadFile(spool)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := DecodeSpooledFindings(b)
	if err != nil || len(kept) != 2 {
		t.Fatalf("spool %s: %v", b, err)
	}

	fi.mu.Lock()
	fi.down = false
	fi.mu.Unlock()
	r2 := NewReporter(s, time.Millisecond, nil, spool)
	if ev := waitEvidence(ctx, t, fi.Incidents, "a@example.edu", "b@example.edu"); ev[0].HoldID != 7 || ev[0].Detail != "60 recipients" {
		t.Fatalf("evidence %+v", ev[0])
	}
	if err := r2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("the spool is still there once written: %v", err)
	}
	s.WaitPlaybooks(ctx)
}

// FuzzDecodeSpooledFindings: the findings spool decoder never panics;
// what it accepts has an account and reasons, and encodes back to what it
// decodes the same.
func FuzzDecodeSpooledFindings(f *testing.F) {
	good, _ := json.Marshal([]Report{{Account: "a@example.edu", Findings: []Finding{{Reason: "bulk", Detail: "x", HoldID: 3, QueueID: "Q1"}}}})
	f.Add(good)
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"Account":"","Findings":[]}]`))
	f.Add([]byte(`[{"Account":"a","Findings":[{"Reason":"r","HoldID":-1}]}]`))
	f.Add([]byte(`[{"Account":"a","Findings":[{"Reason":"r"}],"Extra":1}] []`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		reports, err := DecodeSpooledFindings(b)
		if err != nil {
			return
		}
		for _, r := range reports {
			if r.Account == "" || len(r.Findings) == 0 {
				t.Fatalf("accepted %+v", r)
			}
		}
		b2, err := json.Marshal(reports)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeSpooledFindings(b2)
		if err != nil || !reflect.DeepEqual(normal(reports), normal(again)) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, reports, again)
		}
	})
}

// normal makes an empty list nil, as JSON round trips it.
func normal(rs []Report) []Report {
	if len(rs) == 0 {
		return nil
	}
	return rs
}

// waitEvidence waits until each account's incident has one piece of
// evidence, and returns them in the accounts' order.
func waitEvidence(ctx context.Context, t *testing.T, inc store.Incidents, accounts ...string) []store.Evidence {
	t.Helper()
	var out []store.Evidence
	for _, acct := range accounts {
		for {
			if in, err := inc.ActiveIncident(ctx, acct); err == nil && len(in.Evidence) == 1 {
				out = append(out, in.Evidence[0])
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: its finding was not written once the store answered", acct)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}
