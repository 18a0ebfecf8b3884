package verdict

import (
	"encoding/json"
	"testing"
)

// TestNames: every action's name parses back to it, JSON and text carry
// the name, and an unknown name is refused with the list of known ones.
func TestNames(t *testing.T) {
	for i, a := range All() {
		if i > 0 && a <= All()[i-1] {
			t.Fatalf("%s is not stronger than %s", a, All()[i-1])
		}
		if b, ok := Parse(a.String()); !ok || b != a {
			t.Errorf("Parse(%q) = %v %v", a, b, ok)
		}
		out, err := json.Marshal(struct{ V Action }{a})
		if err != nil || string(out) != `{"V":"`+a.String()+`"}` {
			t.Errorf("JSON of %s: %s %v", a, out, err)
		}
		var back struct{ V Action }
		if err := json.Unmarshal(out, &back); err != nil || back.V != a {
			t.Errorf("JSON round trip of %s: %v %v", a, back.V, err)
		}
	}
	var a Action
	if err := a.UnmarshalText([]byte("quarantine")); err == nil || err.Error() != `must be one of allow, tag, hold, defer, reject, got "quarantine"` {
		t.Errorf("unknown name: %v", err)
	}
	if Action(9).String() != "unknown" {
		t.Error("out of range action has a name")
	}
	if _, err := Action(-1).MarshalText(); err == nil {
		t.Error("out of range action marshalled")
	}
	if p := Hold.Ptr(); *p != Hold {
		t.Error("Ptr")
	}
}

// FuzzParse: Parse accepts exactly the five names and never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"hold", "HOLD", "", "reject ", "allow\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := Parse(s)
		if ok != (s == "allow" || s == "tag" || s == "hold" || s == "defer" || s == "reject") {
			t.Fatalf("Parse(%q) ok=%v", s, ok)
		}
		if ok && a.String() != s {
			t.Fatalf("Parse(%q) = %s", s, a)
		}
	})
}
