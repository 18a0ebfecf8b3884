package zimbra

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf16"
)

// TestCheck follows LdapProvisioning.checkPasswordStrength (lines
// 6118–6249 at zm-mailbox 2b7f9787c69e): the first violation in Zimbra's
// order, with Zimbra's description and attribute.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      PasswordPolicy
		pw     string
		reason string // "" when accepted
		attr   string
	}{
		{"no policy", PasswordPolicy{}, "x", "", ""},
		{"too short", PasswordPolicy{MinLength: 8}, "Abc-123", "too short", AttrPasswordMinLength},
		{"length in UTF-16 units", PasswordPolicy{MaxLength: 3}, "ab😀", "too long", AttrPasswordMaxLength},
		{"length before classes", PasswordPolicy{MinLength: 10, MinUpperCase: 1}, "short", "too short", AttrPasswordMinLength},
		{"upper before numeric", PasswordPolicy{MinUpperCase: 1, MinNumeric: 1}, "abc", "not enough upper case characters", AttrPasswordMinUpperCaseChars},
		{"lower", PasswordPolicy{MinLowerCase: 2}, "ABc1", "not enough lower case characters", AttrPasswordMinLowerCaseChars},
		{"numeric", PasswordPolicy{MinNumeric: 2}, "abc1", "not enough numeric characters", AttrPasswordMinNumericChars},
		{"ASCII punctuation", PasswordPolicy{MinPunctuation: 2}, "a-b_c", "", ""},
		{"space is not punctuation", PasswordPolicy{MinPunctuation: 1}, "a b", "not enough punctuation characters", AttrPasswordMinPunctuationChars},
		{"allowed punctuation replaces ASCII", PasswordPolicy{MinPunctuation: 1, AllowedPunctuationChars: "[.]"}, "a-b", "not enough punctuation characters", AttrPasswordMinPunctuationChars},
		{"letters are alpha", PasswordPolicy{MinAlpha: 3}, "aB1-", "not enough alpha characters", AttrPasswordMinAlphaChars},
		{"non-punctuation symbol is alpha", PasswordPolicy{MinAlpha: 2, AllowedPunctuationChars: "[.]"}, "a-1", "", ""},
		{"é and space are alpha", PasswordPolicy{MinAlpha: 2}, "é 1", "", ""},
		{"digits or punctuation", PasswordPolicy{MinDigitsOrPuncs: 3}, "ab1-", "not enough numeric or punctuation characters", AttrPasswordMinDigitsOrPuncs},
		{"allowed characters", PasswordPolicy{AllowedChars: "[a-z0-9]"}, "abcQ1", "a character is not allowed", AttrPasswordAllowedChars},
		{"allowed characters before counts", PasswordPolicy{AllowedChars: "[a-z]", MinNumeric: 1}, "ab1", "a character is not allowed", AttrPasswordAllowedChars},
		{"Other_Uppercase counts as upper", PasswordPolicy{MinUpperCase: 1}, "Ⓐbc", "", ""},
		{"username", PasswordPolicy{Username: "Alice", ForbidUsername: true}, "xxALICExx", "password contains username", AttrFeatureAllowUsernameInPassword},
		{"username allowed", PasswordPolicy{Username: "alice"}, "alice1", "", ""},
		{"pattern Go cannot evaluate", PasswordPolicy{AllowedChars: `(?<=a)b`}, "b", "the pattern cannot be evaluated here", AttrPasswordAllowedChars},
		{"astral character with a pattern", PasswordPolicy{AllowedChars: "."}, "a😀", "a character outside the Basic Multilingual Plane", ""},
		{"invalid UTF-8 counts as U+FFFD", PasswordPolicy{MinLength: 2}, "\xff", "too short", AttrPasswordMinLength},
	} {
		err := tc.p.Check([]byte(tc.pw))
		if tc.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var pe *PolicyError
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Reason, tc.reason) || pe.Attr != tc.attr || !errors.Is(err, ErrPasswordRejected) {
			t.Errorf("%s: %v, want %q (%s)", tc.name, err, tc.reason, tc.attr)
		}
	}
}

// detReader is a deterministic stand-in for crypto/rand in tests: SHA-256
// of a seed and a counter.
type detReader struct {
	seed []byte
	n    uint64
	buf  []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var ctr [8]byte
		binary.BigEndian.PutUint64(ctr[:], r.n)
		r.n++
		h := sha256.Sum256(append(append([]byte{}, r.seed...), ctr[:]...))
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// hostilePolicies are policies a site could set, alone or together.
var hostilePolicies = map[string][]PasswordPolicy{
	"none":                                nil,
	"Zimbra COS defaults":                 {{MinLength: 6, MaxLength: 64}},
	"every class, tight max":              {{MinLength: 10, MaxLength: 10, MinUpperCase: 3, MinLowerCase: 3, MinNumeric: 2, MinPunctuation: 2}},
	"alpha and digits-or-puncts":          {{MinAlpha: 12, MinDigitsOrPuncs: 6, MaxLength: 40}},
	"no digits allowed, digits-or-puncts": {{AllowedChars: "[^0-9]", MinDigitsOrPuncs: 4}},
	"disjoint punctuation sets": {
		{MinPunctuation: 2, AllowedPunctuationChars: "[!]"},
		{MinPunctuation: 1, AllowedPunctuationChars: "[?]"},
	},
	"punctuation that is alpha elsewhere": {
		{MinPunctuation: 3},
		{MinAlpha: 20, AllowedPunctuationChars: "[.]", MaxLength: 30},
	},
	"only two characters": {{AllowedChars: "[aB]", MinUpperCase: 1, MinLowerCase: 1}},
	"hex only":            {{AllowedChars: "[0-9a-f]", MinLength: 8}, {MaxLength: 64}},
	"one-letter username": {{Username: "a", ForbidUsername: true, AllowedChars: "[a-c]"}},
	"username":            {{Username: "ab", ForbidUsername: true, AllowedChars: "[ab]"}},
	"three systems":       {{MinLength: 12, MinUpperCase: 1}, {MaxLength: 20, MinNumeric: 2}, {AllowedChars: `[A-Za-z0-9._-]`, MinPunctuation: 1}},
}

// infeasibleFrom gives, for the hostile policies that cannot carry much
// entropy, the least number of bits GeneratePassword must refuse rather
// than return less: 10 characters carry at most 10·log2(94) < 66 bits, 20
// of [A-Za-z0-9._-] 20·log2(65) < 121; a password of a and b without "ab"
// is b…ba…a, about log2(length) bits.
var infeasibleFrom = map[string]int{"every class, tight max": 128, "three systems": 128, "username": 40}

func TestGeneratePassword(t *testing.T) {
	for name, ps := range hostilePolicies {
		for _, bits := range []int{0, 40, 128} {
			pw, err := GeneratePassword(ps, bits)
			if min, ok := infeasibleFrom[name]; ok && bits >= min {
				if err == nil {
					t.Errorf("%s, %d bits: %q, want an error", name, bits, pw)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s, %d bits: %v", name, bits, err)
				continue
			}
			for i, p := range ps {
				if err := p.Check(pw); err != nil {
					t.Errorf("%s, %d bits: policy %d refuses %q: %v", name, bits, i+1, pw, err)
				}
			}
			if len(pw) == 0 || strings.ContainsFunc(string(pw), func(r rune) bool { return r < 33 || r > 126 }) {
				t.Errorf("%s: %q is not printable ASCII", name, pw)
			}
		}
	}
	// A typical policy: 128 bits from letters and digits is 22 characters.
	pw, err := GeneratePassword([]PasswordPolicy{{MinLength: 6, MaxLength: 64}}, 128)
	if err != nil || len(pw) != int(math.Ceil(128/math.Log2(62))) {
		t.Fatalf("%q %v", pw, err)
	}
	a, _ := GeneratePassword(nil, 128)
	b, _ := GeneratePassword(nil, 128)
	if string(a) == string(b) {
		t.Fatal("two generated passwords are equal")
	}
}

// TestGeneratePasswordImpossible: policies that cannot be met together
// are an error, not a password one of them refuses.
func TestGeneratePasswordImpossible(t *testing.T) {
	for name, tc := range map[string]struct {
		ps   []PasswordPolicy
		bits int
		want string
	}{
		"no upper case allowed":      {[]PasswordPolicy{{AllowedChars: "[a-z0-9]", MinUpperCase: 1}}, 0, "upper case"},
		"min above max":              {[]PasswordPolicy{{MinLength: 30}, {MaxLength: 20}}, 0, "at most 20"},
		"classes above max":          {[]PasswordPolicy{{MaxLength: 4, MinUpperCase: 2, MinNumeric: 3}}, 0, "at most 4"},
		"entropy above max":          {[]PasswordPolicy{{MaxLength: 16}}, 256, "bits of entropy"},
		"punctuation disallowed":     {[]PasswordPolicy{{AllowedChars: "[A-Za-z0-9]"}, {MinPunctuation: 1}}, 0, "punctuation"},
		"punctuation sets exclusive": {[]PasswordPolicy{{AllowedChars: "[a-z!]"}, {MinPunctuation: 1, AllowedPunctuationChars: "[#%]"}}, 0, "punctuation"},
		"nothing allowed in common":  {[]PasswordPolicy{{AllowedChars: "[a-m]"}, {AllowedChars: "[n-z]"}}, 0, "no printable ASCII"},
		"pattern Go cannot evaluate": {[]PasswordPolicy{{AllowedChars: `(?<=a)b`}}, 0, "cannot be evaluated"},
		"Java's \\p{Punct}":          {[]PasswordPolicy{{AllowedChars: `[a-z\p{Punct}]`}}, 0, "Java-only syntax"},
		"Java's intersection":        {[]PasswordPolicy{{AllowedChars: `[a-z&&[^e]]`}}, 0, "Java-only syntax"},
		"Java's octal":               {[]PasswordPolicy{{AllowedChars: `[\0101-\0132]`}}, 0, "Java-only syntax"},
		"Java's nested class":        {[]PasswordPolicy{{AllowedChars: `[a-z[0-9]]`}}, 0, "Java-only syntax"},
		"one character, some bits":   {[]PasswordPolicy{{AllowedChars: "[x]"}}, 1, "bits of entropy"},
		"negative entropy":           {nil, -1, "bits of entropy asked"},
	} {
		pw, err := GeneratePassword(tc.ps, tc.bits)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %q, %v; want an error with %q", name, pw, err, tc.want)
		}
	}
}

// FuzzCheck runs Check and the generator on arbitrary policies and
// passwords. Properties: no panic; the verdict is deterministic; a
// refusal is a *PolicyError that does not quote the password; an accepted
// password meets the length bounds in UTF-16 units; a password the
// generator returns is accepted by the policy it was made for.
func FuzzCheck(f *testing.F) {
	f.Add(uint8(8), uint8(64), uint8(1), uint8(1), uint8(1), uint8(1), uint8(0), uint8(0), "", "", "", false, []byte("Passw0rd!"), []byte("seed"))
	f.Add(uint8(0), uint8(3), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), "[a-z]", "[.]", "bob", true, []byte("ab😀"), []byte{1})
	f.Fuzz(func(t *testing.T, minLen, maxLen, upper, lower, numeric, punct, alpha, dop uint8, allowed, allowedPunct, username string,
		forbid bool, pw, seed []byte) {
		c := func(v uint8) int { return int(v % 40) }
		p := PasswordPolicy{MinLength: c(minLen), MaxLength: c(maxLen), MinUpperCase: c(upper), MinLowerCase: c(lower), MinNumeric: c(numeric),
			MinPunctuation: c(punct), MinAlpha: c(alpha), MinDigitsOrPuncs: c(dop), AllowedChars: allowed, AllowedPunctuationChars: allowedPunct,
			Username: username, ForbidUsername: forbid}
		err := p.Check(pw)
		if err2 := p.Check(pw); (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("not a *PolicyError: %v", err)
			}
			if len(pw) >= 4 && strings.Contains(err.Error(), string(pw)) && !strings.Contains(allowed+allowedPunct, string(pw)) &&
				!strings.Contains(pe.Reason+pe.Attr, string(pw)) {
				t.Fatalf("the error quotes the password: %v", err)
			}
		} else {
			n := len(utf16.Encode([]rune(strings.ToValidUTF8(string(pw), "\uFFFD"))))
			if p.MinLength > 0 && n < p.MinLength || p.MaxLength > 0 && n > p.MaxLength {
				t.Fatalf("accepted at %d units: %+v", n, p)
			}
		}
		gen, err := generatePassword(&detReader{seed: seed}, []PasswordPolicy{p}, 32)
		if err != nil {
			return
		}
		if err := p.Check(gen); err != nil {
			t.Fatalf("generated %q refused: %v (policy %+v)", gen, err, p)
		}
	})
}
