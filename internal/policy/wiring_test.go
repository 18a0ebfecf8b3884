package policy

import (
	"testing"
	"time"
)

func TestWiringStages(t *testing.T) {
	var w Wiring
	now := time.Unix(1_800_000_000, 0)
	rcpt := &Request{ProtocolState: "RCPT", ServerAddress: "127.0.0.1", ServerPort: "25"}
	ch := w.Observe(rcpt, now)
	if !ch.First || ch.Now.Service != "127.0.0.1:25" || ch.Now.Stages() != "pending" {
		t.Fatalf("first: %+v (%s)", ch, ch.Now.Stages())
	}
	var changed []string
	for range rcptOnlyAfter {
		if ch := w.Observe(rcpt, now); ch.Changed {
			changed = append(changed, ch.From+">"+ch.Now.Stages())
		}
	}
	if len(changed) != 1 || changed[0] != "pending>rcpt-only" {
		t.Fatalf("changes %v, want pending>rcpt-only", changed)
	}
	ch = w.Observe(&Request{ProtocolState: "END-OF-MESSAGE", ServerAddress: "127.0.0.1", ServerPort: "25"}, now)
	if !ch.Changed || ch.From != "rcpt-only" || ch.Now.Stages() != "rcpt+eom" {
		t.Fatalf("after END-OF-MESSAGE: %+v (%s)", ch, ch.Now.Stages())
	}
	// Postfix before 3.2 sends no server_address: one "unknown" service.
	if ch := w.Observe(&Request{ProtocolState: "DATA"}, now); ch.Now.Service != "unknown" || ch.Now.Stages() != "data" {
		t.Fatalf("unknown service: %+v (%s)", ch, ch.Now.Stages())
	}
	if got := len(w.Services()); got != 2 {
		t.Fatalf("%d services", got)
	}
}

func TestWiringBounded(t *testing.T) {
	var w Wiring
	now := time.Unix(1_800_000_000, 0)
	for i := range maxWiringServices + 50 {
		w.Observe(&Request{ProtocolState: "RCPT", ServerAddress: "127.0.0.1", ServerPort: string(rune('0'+i%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i/100))}, now)
	}
	if n := len(w.Services()); n > maxWiringServices+1 {
		t.Fatalf("%d services remembered", n)
	}
}
