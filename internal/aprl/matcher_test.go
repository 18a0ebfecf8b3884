package aprl

import (
	"strings"
	"testing"
)

func TestMatcher(t *testing.T) {
	in := `# site blocklist
Phisher@Evil.example
@exact.example        # this domain only
bad.example
  # indented comment

not a rule
user@,
@.bad
`
	m, errs, err := ParseMatcher(strings.NewReader(in), "site")
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 3 || errs[0].Line != 7 || errs[1].Line != 8 || errs[2].Line != 9 {
		t.Errorf("errors = %v, want lines 7, 8, 9", errs)
	}
	if m.Len() != 3 {
		t.Errorf("Len = %d, want 3", m.Len())
	}
	tests := []struct {
		addr, rule string
		ok         bool
	}{
		{"phisher@evil.example", "phisher@evil.example", true},
		{"<PHISHER@EVIL.EXAMPLE>", "phisher@evil.example", true},
		{"other@evil.example", "", false},
		{"anyone@exact.example", "@exact.example", true},
		{"anyone@sub.exact.example", "", false},
		{"anyone@bad.example", "bad.example", true},
		{"anyone@a.b.bad.example", "bad.example", true},
		{"anyone@notbad.example", "", false},
		{"anyone@example", "", false},
		{"bad.example", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		rule, ok := m.Match(tt.addr)
		if rule != tt.rule || ok != tt.ok {
			t.Errorf("Match(%q) = %q, %v; want %q, %v", tt.addr, rule, ok, tt.rule, tt.ok)
		}
	}
	var nilM *Matcher
	if _, ok := nilM.Match("a@b"); ok {
		t.Error("nil Matcher matched")
	}
	if n := testing.AllocsPerRun(100, func() { m.Match("x@a.b.bad.example") }); n != 0 {
		t.Errorf("Match of a normalised address allocates %v times", n)
	}
}

func TestMatcherPrecedence(t *testing.T) {
	m, _, err := ParseMatcher(strings.NewReader("example.org\nsub.example.org\n@sub.example.org\nu@sub.example.org\n"), "site")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ addr, rule string }{
		{"u@sub.example.org", "u@sub.example.org"},
		{"v@sub.example.org", "@sub.example.org"},
		{"v@x.sub.example.org", "sub.example.org"},
		{"v@x.example.org", "example.org"},
	}
	for _, tt := range tests {
		if rule, _ := m.Match(tt.addr); rule != tt.rule {
			t.Errorf("Match(%q) = %q, want %q", tt.addr, rule, tt.rule)
		}
	}
}
