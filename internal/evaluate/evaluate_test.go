package evaluate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/aprl"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/replay"
	"github.com/mailbrake/mailbrake/internal/store"
)

const shared = "../../../shared/data"

func load(t *testing.T) []replay.Record {
	t.Helper()
	var all []replay.Record
	for _, src := range []struct {
		path string
		read func(f *os.File) ([]replay.Record, error)
	}{
		{"enron-sent-metadata/enron_sent_messages.csv", func(f *os.File) ([]replay.Record, error) { return ReadEnronSent(f) }},
		{"enron-perry-wolfe/messages.csv", func(f *os.File) ([]replay.Record, error) { return ReadPerryWolfe(f) }},
	} {
		f, err := os.Open(filepath.Join(shared, src.path))
		if err != nil {
			t.Skipf("shared data not available (%v); the evaluation runs where ../shared/data exists", err)
		}
		recs, err := src.read(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", src.path, err)
		}
		if len(recs) == 0 {
			t.Fatalf("%s: no records", src.path)
		}
		all = append(all, recs...)
	}
	return all
}

// TestEvaluateDefaults replays the real legitimate history with the
// campaigns injected, under the default configuration, and reports the
// figures recorded in docs/detection.md. It asserts the targets that the
// current detectors meet; the others are reported (see docs/detection.md).
func TestEvaluateDefaults(t *testing.T) {
	legit := load(t)
	cfg := config.Default()
	// The default configuration names no phisher list (a site points
	// phishers.lists at its copy of the APRL); the evaluation uses the
	// real list in ../shared and replies to an address on it.
	list := filepath.Join(shared, "aprl-phishing-reply-addresses/phishing_reply_addresses")
	cleared := filepath.Join(shared, "aprl-phishing-reply-addresses/phishing_cleared_addresses")
	cfg.Phishers.Lists, cfg.Phishers.Cleared = []string{list}, []string{cleared}
	phisher := listedReplyTo(t, list)
	campaigns := append([]Campaign(nil), Campaigns...)
	for i := range campaigns {
		if campaigns[i].Name == "phisher-reply" {
			campaigns[i].To = phisher
		}
	}
	t.Logf("phisher-reply campaign writes to %s, listed in the APRL", phisher)
	// Seed 1 is the run reported in docs/detection.md; the others vary the
	// generated shapes and the content campaigns, and the spread is
	// logged. Every seed must meet every target.
	type spread struct{ lo, hi int }
	through := map[string]*spread{}
	for seed := uint64(1); seed <= 5; seed++ {
		res, err := Run(context.Background(), cfg, legit, Vary(campaigns, seed), Shapes(seed), seed)
		if err != nil {
			t.Fatal(err)
		}
		if seed == 1 {
			b, _ := json.MarshalIndent(res, "", "  ")
			t.Logf("evaluation with the default configuration, seed 1:\n%s", b)
		}
		t.Logf("seed %d: legitimate messages held: %d of %d (%.3f%%); legitimate senders ever restricted: %d of %d (%.2f%%), by a single message: %d",
			seed, res.LegitHeld, res.LegitMessages, 100*res.HeldShare(), res.LegitRestricted, res.LegitSenders, 100*res.RestrictedShare(), res.RestrictedBySingleMessage)
		if res.LegitMessages < 10000 {
			t.Fatalf("only %d legitimate messages: conversion lost data", res.LegitMessages)
		}
		// Targets (issues 3 and 12): legitimate messages held ≤ 0.2 %,
		// senders restricted ≤ 1 %, none by a single message.
		if res.HeldShare() > 0.002 {
			t.Errorf("seed %d: legitimate messages held %.3f%% > 0.2%%", seed, 100*res.HeldShare())
		}
		if res.RestrictedShare() > 0.01 {
			t.Errorf("seed %d: legitimate senders restricted %.2f%% > 1%%", seed, 100*res.RestrictedShare())
		}
		if res.RestrictedBySingleMessage > 0 {
			t.Errorf("seed %d: %d legitimate senders restricted by a single message", seed, res.RestrictedBySingleMessage)
		}
		for _, sh := range res.Shapes {
			t.Logf("seed %d: shape %s (%s): %d messages, %d held %v, final state %s", seed, sh.Shape, sh.Account, sh.Messages, sh.Held, sh.HeldByReason, sh.FinalState)
			if st := store.AccountState(sh.FinalState); st.Rank() >= store.AccountRestricted.Rank() {
				t.Errorf("seed %d: legitimate shape %s ended %s", seed, sh.Shape, sh.FinalState)
			}
		}
		// Campaign targets (issues 3 and 12). The first-time spray
		// counts as "other bulk" (≤ 100).
		targets := map[string]int{"bulk-zimbra-html": 0, "bulk-zimbra-ajax": 100, "slow-drip-smtp": 300, "first-time-spray": 100, "phisher-reply": 0,
			"low-and-slow": 100, "internal-phishing": 60, "new-account-run": 100}
		for _, c := range res.Campaigns {
			limit, ok := targets[c.Campaign]
			if !ok {
				t.Errorf("campaign %s has no target", c.Campaign)
				continue
			}
			if c.Through > limit {
				t.Errorf("seed %d: %s: %d recipients got through, target ≤ %d", seed, c.Campaign, c.Through, limit)
			}
			sp := through[c.Campaign]
			if sp == nil {
				sp = &spread{c.Through, c.Through}
				through[c.Campaign] = sp
			}
			sp.lo, sp.hi = min(sp.lo, c.Through), max(sp.hi, c.Through)
		}
	}
	for _, c := range campaigns {
		if sp := through[c.Name]; sp != nil {
			t.Logf("spread over seeds 1–5: %s: %d–%d recipients through", c.Name, sp.lo, sp.hi)
		}
	}
}

// listedReplyTo returns the first address of the list used in phishing
// Reply-To headers (type A) and not cleared.
func listedReplyTo(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("APRL list not available: %v", err)
	}
	defer f.Close()
	entries, _, err := aprl.Parse(f, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Types&aprl.TypeReplyTo != 0 {
			return e.Address
		}
	}
	t.Fatal("no type A address in the list")
	return ""
}

func TestReadersRejectBadInput(t *testing.T) {
	if _, err := ReadEnronSent(strings.NewReader("a,b\n1,2\n")); err == nil {
		t.Error("ReadEnronSent accepted a file without its columns")
	}
	if _, err := ReadPerryWolfe(strings.NewReader("")); err == nil {
		t.Error("ReadPerryWolfe accepted an empty file")
	}
	recs, err := ReadPerryWolfe(strings.NewReader("msg_id,timestamp_utc,epoch,sender_id,rcpt_ids,rcpt_count\n1,2001-01-02T03:04:05Z,0,7,8;9,2\n2,1970-01-01T00:00:00Z,0,7,8,1\n"))
	if err != nil || len(recs) != 1 || recs[0].Account != "pw7@enron.com" || len(recs[0].Recipients) != 2 {
		t.Fatalf("ReadPerryWolfe: %+v %v", recs, err)
	}
}
