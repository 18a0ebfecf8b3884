package aprl

import (
	"os"
	"path/filepath"
	"testing"
)

// corpusDir holds the shared half of the APRL (see its SOURCE.md).
var corpusDir = filepath.Join("..", "..", "..", "shared", "data", "aprl-phishing-reply-addresses")

func TestCorpus(t *testing.T) {
	f, err := os.Open(filepath.Join(corpusDir, "phishing_reply_addresses"))
	if os.IsNotExist(err) {
		t.Skip("corpus not present:", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, errs, err := Parse(f, "phishing_reply_addresses")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("parse errors: %d", len(errs))
	for _, e := range errs {
		t.Errorf("parse error: %v", e)
	}
	// SOURCE.md: the shared half holds 26725 listed addresses.
	t.Logf("entries: %d", len(entries))
	if len(entries) != 26725 {
		t.Errorf("got %d entries, want 26725", len(entries))
	}

	all := Build(entries, nil)
	if all.Len() != len(entries) {
		t.Errorf("Build kept %d of %d entries (the list has no duplicates)", all.Len(), len(entries))
	}
	perType := map[Type]int{}
	withE := 0
	for _, e := range entries {
		perType[e.Types]++
		if e.Types&TypeUnintended != 0 {
			withE++
		}
		if got, ok := all.Lookup(e.Address); !ok || got.Types != e.Types {
			t.Errorf("%s: Lookup = %+v, %v; want types %v", e.Address, got, ok, e.Types)
		}
	}
	t.Logf("type combinations: %d %v; entries with E: %d", len(perType), perType, withE)
	if withE == 0 || perType[TypeUnintended] == 0 {
		t.Error("no E entries kept")
	}

	cf, err := os.Open(filepath.Join(corpusDir, "phishing_cleared_addresses"))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	cleared, cerrs, err := ParseCleared(cf, "phishing_cleared_addresses")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cerrs {
		t.Errorf("cleared parse error: %v", e)
	}
	// SOURCE.md: the shared half holds 1120 cleared addresses.
	if len(cleared) != 1120 {
		t.Errorf("got %d cleared addresses, want 1120", len(cleared))
	}
	overlap := 0
	for a := range cleared {
		if _, ok := all.Lookup(a); ok {
			overlap++
		}
	}
	l := Build(entries, cleared)
	// The upstream tooling already removed cleared addresses when it listed
	// them, so only addresses seen again after clearing overlap.
	t.Logf("cleared addresses also listed: %d", overlap)
	t.Logf("cleared addresses: %d; removed from the list: %d; listed after clearing: %d", len(cleared), l.removed, l.Len())
	if l.Len()+l.removed != all.Len() {
		t.Errorf("Len %d + removed %d != %d", l.Len(), l.removed, all.Len())
	}
	for a, d := range cleared {
		if e, ok := l.Lookup(a); ok && !e.LastSeen.After(d) {
			t.Errorf("%s cleared %v but still listed, last seen %v", a, d, e.LastSeen)
		}
	}
}
