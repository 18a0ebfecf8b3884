package fingerprint

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzClassify checks that Classify never panics, returns a listed family
// (never FamilyUnknown) and a clean, bounded Client, ignores white space
// around the values, and round-trips: classifying Client again gives the
// same Result. Seeds: testdata/fuzz/FuzzClassify.
func FuzzClassify(f *testing.F) {
	known := map[Family]bool{}
	for _, fam := range Families() {
		known[fam] = true
	}
	f.Fuzz(func(t *testing.T, xMailer, userAgent string) {
		r := Classify(xMailer, userAgent)
		if !known[r.Family] || r.Family == FamilyUnknown {
			t.Fatalf("family %q", r.Family)
		}
		if len(r.Client) > maxClient || !utf8.ValidString(r.Client) {
			t.Fatalf("Client %q: %d bytes, valid UTF-8 %v", r.Client, len(r.Client), utf8.ValidString(r.Client))
		}
		for _, c := range r.Client {
			if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) {
				t.Fatalf("Client %q holds %U", r.Client, c)
			}
		}
		if r.Client != strings.TrimSpace(r.Client) || strings.Contains(r.Client, "  ") {
			t.Fatalf("Client %q: white space not collapsed", r.Client)
		}
		if (r.Family == FamilyNone) != (r.Client == "") {
			t.Fatalf("family %s with Client %q", r.Family, r.Client)
		}
		if !strings.Contains(r.Client, r.Version) {
			t.Fatalf("Version %q is not part of Client %q", r.Version, r.Client)
		}

		padded := Classify(" \t\r\n "+xMailer+"\r\n\t ", "\r\n "+userAgent+" ")
		if padded != r {
			t.Fatalf("surrounding white space changed the result:\n%+v\n%+v", r, padded)
		}

		// Round trip: Client is a fixed point, in either header.
		if r.Family != FamilyNone {
			for _, again := range []Result{Classify(r.Client, ""), Classify("", r.Client)} {
				if again != r {
					t.Fatalf("classifying Client again: got %+v, want %+v", again, r)
				}
			}
		}
	})
}
