package aprl

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every entry it returns has
// a normalised address and a valid type set, and that writing the entries
// back as ADDRESS,TYPE,DATE lines and parsing again gives the same entries.
// Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("# ADDRESS,TYPE,DATE\na@x.org,AB,20090101\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, errs, err := Parse(bytes.NewReader(data), "fuzz")
		for _, e := range errs {
			if e.Line < 1 {
				t.Errorf("error without a line number: %v", e)
			}
		}
		if err != nil {
			return
		}
		var buf strings.Builder
		for _, e := range entries {
			if n, ok := normalize(e.Address); !ok || n != e.Address || e.Address == "" {
				t.Fatalf("entry address %q is not normalised (%q, %v)", e.Address, n, ok)
			}
			if !e.Types.valid() {
				t.Fatalf("entry %q has invalid types %v", e.Address, e.Types)
			}
			fmt.Fprintf(&buf, "%s,%s,%s\n", e.Address, e.Types, e.LastSeen.Format(dateLayout))
		}
		again, errs2, err := Parse(strings.NewReader(buf.String()), "fuzz")
		if err != nil || len(errs2) != 0 {
			t.Fatalf("re-encoded entries do not parse: %v %v\n%s", err, errs2, buf.String())
		}
		if len(again) != len(entries) {
			t.Fatalf("got %d entries back, want %d", len(again), len(entries))
		}
		for i, e := range entries {
			g := again[i]
			if g.Address != e.Address || g.Types != e.Types || !g.LastSeen.Equal(e.LastSeen) {
				t.Fatalf("entry %d: got %+v back, want %+v", i, g, e)
			}
		}
		Build(entries, nil).Lookup(string(data))
	})
}

// FuzzParseMatcher checks that ParseMatcher never panics and that an
// address rule matches itself. Seeds are in testdata/fuzz/FuzzParseMatcher.
func FuzzParseMatcher(f *testing.F) {
	f.Add([]byte("user@example.org\n@example.net\nexample.com # comment\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _, err := ParseMatcher(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for a := range m.addrs {
			if r, ok := m.Match(a); !ok || r != a {
				t.Fatalf("Match(%q) = %q, %v", a, r, ok)
			}
		}
		for d := range m.domains {
			if _, ok := m.Match("x@" + d); !ok {
				t.Fatalf("domain rule %q does not match x@%s", d, d)
			}
		}
	})
}
