package api

import (
	"strings"
	"testing"
)

// TestAccountScoreSummary: the arithmetic in words — the families, the
// message count, and why one message does not restrict.
func TestAccountScoreSummary(t *testing.T) {
	s := AccountScore{Total: 10, Messages: 1, Families: map[string]int64{"volume": 5, "scripted": 5}, Window: "24h", WatchScore: 5, RestrictScore: 10}
	got := strings.Join(s.Summary(), "\n")
	want := "Score 10 in the last 24h, from 1 message: scripted 5, volume 5.\nAt 10 it would be restricted, but one message never restricts an account: it stays on watch."
	if got != want {
		t.Errorf("one message:\n%s\nwant\n%s", got, want)
	}
	s.Total, s.Messages, s.Families = 5, 1, map[string]int64{"volume": 5}
	if got := s.Summary(); len(got) != 2 || !strings.Contains(got[1], "restricted at 10 with evidence from more than one message") {
		t.Errorf("below: %q", got)
	}
	if got := (AccountScore{Window: "24h"}).Summary(); len(got) != 1 || got[0] != "No findings scored in the last 24h." {
		t.Errorf("none: %q", got)
	}
}
