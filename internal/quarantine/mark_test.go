package quarantine

import (
	"slices"
	"strings"
	"testing"
)

func TestMark(t *testing.T) {
	v := FormatMark("4ABC123", "alice@example.edu", []string{"bulk-from-scripted-client", "rate, messages hour"})
	q, a, rs, ok := ParseMark(v)
	if !ok || q != "4ABC123" || a != "alice@example.edu" || !slices.Equal(rs, []string{"bulk-from-scripted-client", "ratemessageshour"}) {
		t.Fatalf("%q: %q %q %q %v", v, q, a, rs, ok)
	}
	headers := "Received: from x\r\nX-Mailbrake-Hold: 9ZZZ account=forged@example.edu reasons=none\r\nSubject: hi\r\nX-Mailbrake-Hold: 4ABC123 account=alice@example.edu\r\n reasons=a,b\r\n"
	if a, rs, ok := markIn(headers, "4ABC123"); !ok || a != "alice@example.edu" || !slices.Equal(rs, []string{"a", "b"}) {
		t.Fatalf("markIn: %q %q %v", a, rs, ok)
	}
	if _, _, ok := markIn(headers, "4OTHER1"); ok {
		t.Fatal("a mark for another queue ID was taken")
	}
}

// FuzzParseMark: never panics; a mark it accepts has a valid queue ID and
// bounded reasons, and FormatMark's output parses back to itself.
func FuzzParseMark(f *testing.F) {
	f.Add("4ABC123 account=a@b reasons=x,y", "a@b", "x")
	f.Add("", "", "")
	f.Add("4ABC123 reasons=,,,", "\x00", "a b,c")
	f.Fuzz(func(t *testing.T, v, account, reason string) {
		if q, _, rs, ok := ParseMark(v); ok && (!ValidQueueID(q) || len(rs) > maxMarkReasons) {
			t.Fatalf("bad parse of %q", v)
		}
		m := FormatMark("4ABC123", account, []string{reason})
		q, a, rs, ok := ParseMark(m)
		if !ok || q != "4ABC123" || strings.ContainsAny(a, " \t\r\n,") {
			t.Fatalf("%q from %q %q: %q %q %q %v", m, account, reason, q, a, rs, ok)
		}
		if m2 := FormatMark(q, a, rs); m2 != m {
			t.Fatalf("not stable: %q then %q", m, m2)
		}
	})
}
