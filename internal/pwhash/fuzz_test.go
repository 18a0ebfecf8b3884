package pwhash

import (
	"errors"
	"strings"
	"testing"
)

// fuzzLimits keep one Verify of anything Parse accepts to a few
// milliseconds, so the fuzzer explores parsing rather than waiting on KDFs.
var fuzzLimits = Limits{MaxMemoryKiB: 1024, MaxArgon2Time: 2, MaxArgon2Lanes: 2, MaxBcryptCost: 5, MaxRounds: 5000}

// schemeCosts is every Scheme a Hash may report, with its Cost.
var schemeCosts = map[string]Cost{
	"PLAIN": Fast, "MD5": Fast, "SMD5": Fast, "SHA": Fast, "SSHA": Fast,
	"SHA256": Fast, "SSHA256": Fast, "SHA384": Fast, "SSHA384": Fast, "SHA512": Fast, "SSHA512": Fast,
	"CRYPT-MD5": Slow, "CRYPT-SHA256": Slow, "CRYPT-SHA512": Slow, "CRYPT-YESCRYPT": Slow, "BLF-CRYPT": Slow,
	"ARGON2I": Slow, "ARGON2ID": Slow, "ARGON2D": Slow,
	"PBKDF2-SHA1": Slow, "PBKDF2-SHA256": Slow, "PBKDF2-SHA512": Slow,
}

// swapSchemeCase swaps the ASCII case of the name in "{name}…".
func swapSchemeCase(s string) string {
	end := strings.IndexByte(s, '}')
	if !strings.HasPrefix(s, "{") || end < 0 {
		return s
	}
	b := []byte(s)
	for i := 1; i < end; i++ {
		switch c := b[i]; {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

// FuzzParse: Parse and Verify never panic; an error is one of the three
// and repeats nothing of the value; the outcome does not depend on the case
// of the scheme name; an accepted hash reports a known scheme and its cost.
// Seeds, one or more per scheme, are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.stored)
	}
	f.Fuzz(func(t *testing.T, stored string) {
		h, err := fuzzLimits.Parse(stored)
		h2, err2 := fuzzLimits.Parse(swapSchemeCase(stored))
		if (err == nil) != (err2 == nil) || h.Scheme() != h2.Scheme() {
			t.Fatalf("scheme case changes the outcome: %v, %v / %v, %v", h, err, h2, err2)
		}
		if err != nil {
			if h != nil {
				t.Fatalf("Parse returned both %v and %v", h, err)
			}
			if !errors.Is(err, ErrUnknownScheme) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooCostly) {
				t.Fatalf("unexpected error %v", err)
			}
			if errors.Is(err, ErrMalformed) != errors.Is(err2, ErrMalformed) || errors.Is(err, ErrTooCostly) != errors.Is(err2, ErrTooCostly) {
				t.Fatalf("scheme case changes the error: %v / %v", err, err2)
			}
			checkNoLeak(t, stored, err.Error())
			return
		}
		if want, ok := schemeCosts[h.Scheme()]; !ok || h.Cost() != want {
			t.Fatalf("Parse = %v with cost %v", h, h.Cost())
		}
		checkNoLeak(t, stored, h.String())
		h.Verify(nil)
		h.Verify([]byte(testPassword))
	})
}
