package passwdfile

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics; that writing a parsed file back
// gives the same bytes and parsing those the same entries; and that a
// password change, a lock and an unlock written back and parsed again show
// exactly that change. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		out := file.Bytes()
		if !bytes.Equal(out, data) {
			t.Fatalf("Bytes() = %q, want the input %q", out, data)
		}
		again := reparse(t, out)
		entries := file.Entries()
		if !reflect.DeepEqual(again.Entries(), entries) {
			t.Fatalf("entries differ after a round trip:\n%+v\n%+v", again.Entries(), entries)
		}
		if len(entries) == 0 {
			return
		}
		user := entries[0].User
		if checkUser(user) != nil {
			return
		}
		first, _ := file.Lookup(user)

		if err := file.SetPassword(user, "{PLAIN}fuzz"); err != nil {
			t.Fatalf("SetPassword(%q): %v", user, err)
		}
		changed := reparse(t, file.Bytes())
		got, ok := changed.Lookup(user)
		if !ok || got.Password != "{PLAIN}fuzz" {
			t.Fatalf("after SetPassword: %+v, %v", got, ok)
		}
		if len(changed.Entries()) != len(entries) {
			t.Fatalf("SetPassword changed the number of entries")
		}
		for i, e := range changed.Entries() {
			if e.User != user && !reflect.DeepEqual(e, entries[i]) {
				t.Fatalf("SetPassword(%q) changed %+v into %+v", user, entries[i], e)
			}
		}

		err = file.SetExtraField(user, LockField, "y")
		if err != nil {
			return // an old-format line
		}
		locked := reparse(t, file.Bytes())
		got, _ = locked.Lookup(user)
		if !got.Locked() || got.Password != "{PLAIN}fuzz" {
			t.Fatalf("after Lock: %+v", got)
		}
		if err := file.RemoveExtraField(user, LockField); err != nil {
			t.Fatal(err)
		}
		unlocked := reparse(t, file.Bytes())
		got, _ = unlocked.Lookup(user)
		if got.Locked() {
			t.Fatalf("after Unlock: %+v", got)
		}
		var others []string
		for _, fl := range first.ExtraFields() {
			if k, _, _ := strings.Cut(fl, "="); k != LockField {
				others = append(others, fl)
			}
		}
		if !slices.Equal(got.ExtraFields(), others) {
			t.Fatalf("Lock and Unlock changed the other extra fields: %q, want %q", got.ExtraFields(), others)
		}
	})
}

func reparse(t *testing.T, data []byte) *File {
	t.Helper()
	f, err := Parse(data)
	if err != nil {
		t.Fatalf("written file does not parse: %v\n%q", err, data)
	}
	return f
}
