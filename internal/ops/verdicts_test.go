package ops

import (
	"fmt"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
)

func TestVerdictsBounded(t *testing.T) {
	var v Verdicts
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range verdictsPerAccount + 5 {
		v.Add("a", api.VerdictRecord{Time: t0.Add(time.Duration(i) * time.Minute), Action: "hold", Recipients: i})
	}
	got := v.Recent("a")
	if len(got) != verdictsPerAccount || got[0].Recipients != verdictsPerAccount+4 || got[len(got)-1].Recipients != 5 {
		t.Fatalf("recent: %d, newest %d, oldest %d", len(got), got[0].Recipients, got[len(got)-1].Recipients)
	}
	for i := range verdictsAccounts + 10 {
		v.Add(fmt.Sprintf("u%d", i), api.VerdictRecord{Action: "tag"})
	}
	if len(v.m) != verdictsAccounts || len(v.Recent("a")) != 0 || len(v.Recent(fmt.Sprintf("u%d", verdictsAccounts+9))) != 1 {
		t.Fatalf("accounts kept: %d", len(v.m))
	}
}
