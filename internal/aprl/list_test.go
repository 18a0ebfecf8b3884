package aprl

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBuildCleared(t *testing.T) {
	entries := []Entry{
		{Address: "newer@x.org", Types: TypeReplyTo, LastSeen: day("20100101")},
		{Address: "same@x.org", Types: TypeReplyTo, LastSeen: day("20100101")},
		{Address: "older@x.org", Types: TypeReplyTo, LastSeen: day("20100101")},
		{Address: "relisted@x.org", Types: TypeUnintended, LastSeen: day("20120101")},
		{Address: "kept@x.org", Types: TypeFrom, LastSeen: day("20100101")},
	}
	cleared := map[string]time.Time{
		"newer@x.org":    day("20100102"), // cleared after the listing: removed
		"SAME@x.org":     day("20100101"), // cleared the day it was last seen: removed
		"older@x.org":    day("20091231"), // listing is newer than clearing: kept
		"relisted@x.org": day("20110101"), // seen again after being cleared: kept
		"unlisted@x.org": day("20110101"),
	}
	l := Build(entries, cleared)
	tests := []struct {
		addr   string
		listed bool
	}{
		{"newer@x.org", false},
		{"same@x.org", false},
		{"older@x.org", true},
		{"relisted@x.org", true},
		{"kept@x.org", true},
		{"unlisted@x.org", false},
	}
	for _, tt := range tests {
		if _, ok := l.Lookup(tt.addr); ok != tt.listed {
			t.Errorf("Lookup(%q) listed = %v, want %v", tt.addr, ok, tt.listed)
		}
	}
	if l.Len() != 3 || l.removed != 2 {
		t.Errorf("Len = %d, removed = %d; want 3, 2", l.Len(), l.removed)
	}
}

func TestBuildMergesDuplicates(t *testing.T) {
	entries := []Entry{
		{Address: "a@x.org", Types: TypeReplyTo, LastSeen: day("20100101"), Source: "one", Line: 1},
		{Address: "A@X.org", Types: TypeUnintended, LastSeen: day("20120101"), Source: "two", Line: 7},
		{Address: "a@x.org", Types: TypeBody, LastSeen: day("20090101"), Source: "one", Line: 9},
		{Address: "not an address", Types: TypeReplyTo, LastSeen: day("20100101")},
		{Address: "notype@x.org", LastSeen: day("20100101")},
	}
	l := Build(entries, nil)
	e, ok := l.Lookup("a@x.org")
	if !ok || e.Types != TypeReplyTo|TypeBody|TypeUnintended || !e.LastSeen.Equal(day("20120101")) || e.Source != "two" || e.Line != 7 {
		t.Errorf("merged entry = %+v, %v", e, ok)
	}
	if l.Len() != 1 {
		t.Errorf("Len = %d, want 1", l.Len())
	}
}

func TestLookupNormalisation(t *testing.T) {
	l := Build([]Entry{{Address: "help.desk@example.edu", Types: TypeReplyTo, LastSeen: day("20100101")}}, nil)
	tests := []struct {
		in   string
		want bool
	}{
		{"help.desk@example.edu", true},
		{"Help.Desk@Example.EDU", true},
		{"<help.desk@example.edu>", true},
		{"  <HELP.DESK@EXAMPLE.EDU>\t", true},
		{"help.desk@example.edu.", false},
		{"helpdesk@example.edu", false},
		{"", false},
		{"<>", false},
		{"help.desk", false},
	}
	for _, tt := range tests {
		e, ok := l.Lookup(tt.in)
		if ok != tt.want {
			t.Errorf("Lookup(%q) = %v, want %v", tt.in, ok, tt.want)
		}
		if ok && e.Address != "help.desk@example.edu" {
			t.Errorf("Lookup(%q).Address = %q", tt.in, e.Address)
		}
	}
	var nilList *List
	if _, ok := nilList.Lookup("a@b"); ok || nilList.Len() != 0 {
		t.Error("nil List is not empty")
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a@b", "a@b", true},
		{"ÄBC@Bücher.Example", "äbc@bücher.example", true},
		{"a,b@c", "", false},
		{"#a@b", "", false},
		{"a@b\x00", "", false},
		{"a\u00a0b@c", "", false},
		{"a@b\xff", "", false},
		{strings.Repeat("a", 250) + "@b.cd", "", false},
	}
	for _, tt := range tests {
		got, ok := normalize(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalize(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLookupNoAlloc(t *testing.T) {
	l := benchList(1000)
	n := testing.AllocsPerRun(100, func() { l.Lookup("user500@example.org") })
	if n != 0 {
		t.Errorf("Lookup of a normalised address allocates %v times", n)
	}
}

func benchList(n int) *List {
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Address: fmt.Sprintf("user%d@example.org", i), Types: TypeUnintended, LastSeen: day("20120101")}
	}
	return Build(entries, nil)
}

func BenchmarkLookup(b *testing.B) {
	l := benchList(50_000)
	b.Run("normalised-hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Lookup("user4242@example.org")
		}
	})
	b.Run("normalised-miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Lookup("someone.else@example.org")
		}
	})
	b.Run("mixed-case-brackets", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Lookup("<User4242@Example.ORG>")
		}
	})
}
