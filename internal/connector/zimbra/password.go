package zimbra

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
)

// Password policy attributes (zimbra-attrs.xml at zm-mailbox
// 2b7f9787c69e): account attributes inherited from the COS, which
// GetAccount returns merged.
const (
	AttrPasswordMinLength               = "zimbraPasswordMinLength"
	AttrPasswordMaxLength               = "zimbraPasswordMaxLength"
	AttrPasswordMinUpperCaseChars       = "zimbraPasswordMinUpperCaseChars"
	AttrPasswordMinLowerCaseChars       = "zimbraPasswordMinLowerCaseChars"
	AttrPasswordMinPunctuationChars     = "zimbraPasswordMinPunctuationChars"
	AttrPasswordMinNumericChars         = "zimbraPasswordMinNumericChars"
	AttrPasswordMinDigitsOrPuncs        = "zimbraPasswordMinDigitsOrPuncs"
	AttrPasswordMinAlphaChars           = "zimbraPasswordMinAlphaChars"
	AttrPasswordAllowedChars            = "zimbraPasswordAllowedChars"
	AttrPasswordAllowedPunctuationChars = "zimbraPasswordAllowedPunctuationChars"
	AttrPasswordBlockCommonEnabled      = "zimbraPasswordBlockCommonEnabled"     // since 10.0.0
	AttrFeatureAllowUsernameInPassword  = "zimbraFeatureAllowUsernameInPassword" // since 10.1.0
	AttrUCUsername                      = "zimbraUCUsername"
	AttrPasswordMinAge                  = "zimbraPasswordMinAge"
	AttrPasswordEnforceHistory          = "zimbraPasswordEnforceHistory"
)

// PolicyAttrs are the attributes PasswordPolicy reads.
var PolicyAttrs = []string{AttrID,
	AttrPasswordMinLength, AttrPasswordMaxLength, AttrPasswordMinUpperCaseChars, AttrPasswordMinLowerCaseChars,
	AttrPasswordMinPunctuationChars, AttrPasswordMinNumericChars, AttrPasswordMinDigitsOrPuncs, AttrPasswordMinAlphaChars,
	AttrPasswordAllowedChars, AttrPasswordAllowedPunctuationChars, AttrPasswordBlockCommonEnabled,
	AttrFeatureAllowUsernameInPassword, AttrUCUsername, AttrPasswordMinAge, AttrPasswordEnforceHistory,
}

// PasswordPolicy is an account's effective password policy on Zimbra:
// what LdapProvisioning.checkPasswordStrength (lines 6118–6249 at
// zm-mailbox 2b7f9787c69e) checks a new password against. The zero value
// has no rule. Counts of 0 or less mean no rule, as in Zimbra.
type PasswordPolicy struct {
	// MinLength and MaxLength bound the length in Java chars (UTF-16
	// units): a character outside the Basic Multilingual Plane counts
	// twice. zimbraPasswordMinLength, zimbraPasswordMaxLength.
	MinLength, MaxLength int
	// MinUpperCase and MinLowerCase count letters by Java's
	// Character.isUpperCase / isLowerCase.
	// zimbraPasswordMinUpperCaseChars, zimbraPasswordMinLowerCaseChars.
	MinUpperCase, MinLowerCase int
	// MinNumeric counts digits (Character.isDigit).
	// zimbraPasswordMinNumericChars.
	MinNumeric int
	// MinPunctuation counts characters that match AllowedPunctuationChars
	// or, when it is empty, ASCII punctuation (33–47, 58–64, 91–96,
	// 123–126). zimbraPasswordMinPunctuationChars.
	MinPunctuation int
	// MinAlpha counts every character that is neither a digit nor counted
	// as punctuation: letters, and also anything else, a space or "é".
	// zimbraPasswordMinAlphaChars.
	MinAlpha int
	// MinDigitsOrPuncs bounds digits plus punctuation.
	// zimbraPasswordMinDigitsOrPuncs.
	MinDigitsOrPuncs int
	// AllowedChars is a java.util.regex pattern every character must
	// match on its own (Matcher.matches); "" allows any.
	// zimbraPasswordAllowedChars.
	AllowedChars string
	// AllowedPunctuationChars is a pattern that, when set, decides what
	// counts as punctuation instead of ASCII punctuation.
	// zimbraPasswordAllowedPunctuationChars.
	AllowedPunctuationChars string
	// Username, when ForbidUsername is set, must not occur in the
	// password, case ignored. On the SetPassword path Zimbra takes it from
	// zimbraUCUsername, which is normally unset (lines 6132–6144), and
	// forbids it only when zimbraFeatureAllowUsernameInPassword is FALSE.
	Username       string
	ForbidUsername bool
	// BlockCommon is zimbraPasswordBlockCommonEnabled: Zimbra refuses
	// passwords in its own list of common passwords (a bloom filter),
	// which Check does not have; a random password of any length worth
	// having is not in it.
	BlockCommon bool
	// MinAgeDays is zimbraPasswordMinAge. It is not a rule on the password
	// itself: when the policy is enforced, a set within this many days of
	// zimbraPasswordModifiedTime fails with PASSWORD_CHANGE_TOO_SOON
	// (lines 6279–6291), whatever the password.
	MinAgeDays int
	// EnforceHistory is zimbraPasswordEnforceHistory: how many previous
	// passwords an enforced set refuses. A random password is never one.
	EnforceHistory int
}

// PolicyError is a password that breaks a PasswordPolicy. It matches
// ErrPasswordRejected. It never holds the password or any character of it.
type PolicyError struct {
	// Reason is Zimbra's description ("too short", "not enough upper case
	// characters", …) or why the policy cannot be evaluated.
	Reason string
	// Attr is the policy attribute, and Limit its value.
	Attr, Limit string
}

// Error implements error.
func (e *PolicyError) Error() string {
	s := "invalid password: " + e.Reason
	if e.Attr != "" {
		s += " (" + e.Attr
		if e.Limit != "" {
			s += "=" + e.Limit
		}
		s += ")"
	}
	return s
}

// Is makes errors.Is(err, ErrPasswordRejected) true.
func (e *PolicyError) Is(target error) bool { return target == ErrPasswordRejected }

// compiledPolicy is a PasswordPolicy with its patterns compiled.
type compiledPolicy struct {
	PasswordPolicy
	allowed, punct *regexp.Regexp
}

// javaOnlyRE finds java.util.regex syntax that Go's RE2 reads with
// another meaning instead of refusing it: the POSIX and java.lang.Character
// classes \p{Punct}, \p{Alpha}, \p{javaLowerCase}… (ASCII-only in Java,
// Unicode categories or scripts in Go), class intersection "&&", octal
// "\0nn", and "[" nested in a class (a union in Java).
var javaOnlyRE = regexp.MustCompile(`\\[pP]\{(Is|In|java|Lower|Upper|ASCII|Alpha|Digit|Alnum|Punct|Graph|Print|Blank|Cntrl|XDigit|Space)|&&|\\0|\[[^\]]*[^\\]\[[^:]`)

// compileJavaPattern compiles a policy pattern for a whole-string match,
// as Matcher.matches does. Go's RE2 stands in for java.util.regex: they
// agree on the character classes and ranges such policies are made of. A
// pattern RE2 cannot compile (look-around, possessive quantifiers…) or
// would read differently (javaOnlyRE) cannot be evaluated here: Check then
// refuses every password and GeneratePassword fails, rather than guess.
// (Java's "." also excludes \r and U+0085, U+2028, U+2029, and its \s
// includes \x0B; no password GeneratePassword makes holds any of them.)
func compileJavaPattern(pattern, attr string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	if javaOnlyRE.MatchString(pattern) {
		return nil, &PolicyError{Reason: "the pattern cannot be evaluated here (Java-only syntax)", Attr: attr, Limit: pattern}
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, &PolicyError{Reason: "the pattern cannot be evaluated here (" + err.Error() + ")", Attr: attr, Limit: pattern}
	}
	return re, nil
}

func (p PasswordPolicy) compile() (*compiledPolicy, error) {
	cp := &compiledPolicy{PasswordPolicy: p}
	var err error
	if cp.allowed, err = compileJavaPattern(p.AllowedChars, AttrPasswordAllowedChars); err != nil {
		return nil, err
	}
	if cp.punct, err = compileJavaPattern(p.AllowedPunctuationChars, AttrPasswordAllowedPunctuationChars); err != nil {
		return nil, err
	}
	return cp, nil
}

// Check reports whether Zimbra would accept pw under p, with the first
// violation in Zimbra's order (LdapProvisioning.checkPasswordStrength,
// lines 6118–6249 at zm-mailbox 2b7f9787c69e): length, username, then,
// one character at a time, AllowedChars, then the counts: upper case,
// lower case, numeric, punctuation, alpha, digits or punctuation.
// Characters are Java chars (UTF-16 units) as in Zimbra; invalid UTF-8
// counts as U+FFFD, as it reaches Zimbra through JSON. Check cannot test
// BlockCommon. The error is a *PolicyError.
func (p PasswordPolicy) Check(pw []byte) error {
	cp, err := p.compile()
	if err != nil {
		return err
	}
	return cp.check(pw)
}

func (cp *compiledPolicy) check(pw []byte) error {
	s := strings.ToValidUTF8(string(pw), "\uFFFD")
	units := utf16.Encode([]rune(s))
	num := strconv.Itoa
	if cp.MinLength > 0 && len(units) < cp.MinLength {
		return &PolicyError{Reason: "too short", Attr: AttrPasswordMinLength, Limit: num(cp.MinLength)}
	}
	if cp.MaxLength > 0 && len(units) > cp.MaxLength {
		return &PolicyError{Reason: "too long", Attr: AttrPasswordMaxLength, Limit: num(cp.MaxLength)}
	}
	if cp.ForbidUsername && cp.Username != "" && containsFold(s, cp.Username) {
		return &PolicyError{Reason: "password contains username", Attr: AttrFeatureAllowUsernameInPassword, Limit: "FALSE"}
	}
	if cp.MinUpperCase <= 0 && cp.MinLowerCase <= 0 && cp.MinNumeric <= 0 && cp.MinPunctuation <= 0 && cp.MinAlpha <= 0 &&
		cp.MinDigitsOrPuncs <= 0 && cp.allowed == nil && cp.punct == nil {
		return nil // line 6183: no per-character policy
	}
	var upper, lower, numeric, punct, alpha int
	for _, u := range units {
		r := rune(u)
		if utf16.IsSurrogate(r) && (cp.allowed != nil || cp.punct != nil) {
			// Zimbra matches each half of a surrogate pair on its own;
			// Go's regexp cannot see a lone surrogate.
			return &PolicyError{Reason: "a character outside the Basic Multilingual Plane cannot be checked against the patterns here"}
		}
		ch := string(r)
		if cp.allowed != nil && !cp.allowed.MatchString(ch) {
			return &PolicyError{Reason: "a character is not allowed", Attr: AttrPasswordAllowedChars, Limit: cp.AllowedChars}
		}
		isAlpha := true
		switch {
		case javaUpper(r):
			upper++
		case javaLower(r):
			lower++
		case unicode.IsDigit(r):
			numeric++
			isAlpha = false
		case cp.punct != nil:
			if cp.punct.MatchString(ch) {
				punct++
				isAlpha = false
			}
		case asciiPunct(r):
			punct++
			isAlpha = false
		}
		if isAlpha {
			alpha++
		}
	}
	switch {
	case upper < cp.MinUpperCase:
		return &PolicyError{Reason: "not enough upper case characters", Attr: AttrPasswordMinUpperCaseChars, Limit: num(cp.MinUpperCase)}
	case lower < cp.MinLowerCase:
		return &PolicyError{Reason: "not enough lower case characters", Attr: AttrPasswordMinLowerCaseChars, Limit: num(cp.MinLowerCase)}
	case numeric < cp.MinNumeric:
		return &PolicyError{Reason: "not enough numeric characters", Attr: AttrPasswordMinNumericChars, Limit: num(cp.MinNumeric)}
	case punct < cp.MinPunctuation:
		return &PolicyError{Reason: "not enough punctuation characters", Attr: AttrPasswordMinPunctuationChars, Limit: num(cp.MinPunctuation)}
	case alpha < cp.MinAlpha:
		return &PolicyError{Reason: "not enough alpha characters", Attr: AttrPasswordMinAlphaChars, Limit: num(cp.MinAlpha)}
	case numeric+punct < cp.MinDigitsOrPuncs:
		return &PolicyError{Reason: "not enough numeric or punctuation characters", Attr: AttrPasswordMinDigitsOrPuncs, Limit: num(cp.MinDigitsOrPuncs)}
	}
	return nil
}

// javaUpper is Character.isUpperCase: general category Lu or the
// property Other_Uppercase.
func javaUpper(r rune) bool {
	return unicode.Is(unicode.Lu, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// javaLower is Character.isLowerCase: Ll or Other_Lowercase.
func javaLower(r rune) bool {
	return unicode.Is(unicode.Ll, r) || unicode.Is(unicode.Other_Lowercase, r)
}

// asciiPunct is LdapProvisioning.isAsciiPunc (lines 6258–6264).
func asciiPunct(r rune) bool {
	return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
}

// containsFold is StringUtils.containsIgnoreCase.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// javaInt is Entry.getIntAttr(name, 0): Integer.parseInt, 0 when unset or
// unparsable.
func javaInt(v string) int {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int(n)
}

// policyFromAccount builds the policy from GetAccount's attributes.
func policyFromAccount(a *Account) PasswordPolicy {
	i := func(name string) int { return javaInt(a.first(name)) }
	return PasswordPolicy{
		MinLength:               i(AttrPasswordMinLength),
		MaxLength:               i(AttrPasswordMaxLength),
		MinUpperCase:            i(AttrPasswordMinUpperCaseChars),
		MinLowerCase:            i(AttrPasswordMinLowerCaseChars),
		MinNumeric:              i(AttrPasswordMinNumericChars),
		MinPunctuation:          i(AttrPasswordMinPunctuationChars),
		MinAlpha:                i(AttrPasswordMinAlphaChars),
		MinDigitsOrPuncs:        i(AttrPasswordMinDigitsOrPuncs),
		AllowedChars:            a.first(AttrPasswordAllowedChars),
		AllowedPunctuationChars: a.first(AttrPasswordAllowedPunctuationChars),
		Username:                a.first(AttrUCUsername),
		// Entry.getBooleanAttr: only "TRUE" is true; the default is TRUE
		// (ZAttrAccount.isFeatureAllowUsernameInPassword, line 14198).
		ForbidUsername: a.first(AttrFeatureAllowUsernameInPassword) != "" && a.first(AttrFeatureAllowUsernameInPassword) != "TRUE",
		BlockCommon:    a.first(AttrPasswordBlockCommonEnabled) == "TRUE",
		MinAgeDays:     i(AttrPasswordMinAge),
		EnforceHistory: i(AttrPasswordEnforceHistory),
	}
}

// PasswordPolicy returns the account's effective password policy: its
// own values of the policy attributes, else its COS's, as GetAccount
// returns them. A rule the server's version does not have is no rule. When
// the admin has no right to read a policy attribute the policy is unknown,
// and PasswordPolicy says which attributes in its error.
func (c *Client) PasswordPolicy(ctx context.Context, name string) (PasswordPolicy, error) {
	a, err := c.GetAccount(ctx, name, PolicyAttrs...)
	if err != nil {
		return PasswordPolicy{}, err
	}
	if len(a.DeniedAttrs) > 0 {
		return PasswordPolicy{}, fmt.Errorf("zimbra: password policy of %s: no right to read %s", name, strings.Join(a.DeniedAttrs, ", "))
	}
	return policyFromAccount(a), nil
}

// maxGeneratedLength bounds GeneratePassword when no policy sets a
// maximum: 1024 bits at the poorest alphabet that still carries entropy.
const maxGeneratedLength = 1024

// safePunctuation is the punctuation GeneratePassword prefers, when a
// policy allows it, for the punctuation a policy demands: none of it is
// special to a shell, a URL or an LDAP filter when quoted as usual.
const safePunctuation = "!#%+,-.:=@_~"

// GeneratePassword returns a random password (crypto/rand) that every
// policy accepts (PasswordPolicy.Check) and that carries at least
// entropyBits bits, or an error saying why the policies cannot be met
// together. It uses printable ASCII only (33–126), fills each demanded
// character class with characters that count for every policy that
// demands it, prefers letters and digits elsewhere, and counts entropy as
// the sum, over positions, of log2 of the number of characters each
// position was drawn from: a lower bound, as the final shuffle only adds.
// BlockCommon and the history cannot be checked and need not be: a
// random password is in neither.
func GeneratePassword(policies []PasswordPolicy, entropyBits int) ([]byte, error) {
	return generatePassword(rand.Reader, policies, entropyBits)
}

// slot is one position of the password and the characters it may take.
type slot []byte

func (s slot) subsetOf(f func(byte) bool) bool {
	for _, c := range s {
		if !f(c) {
			return false
		}
	}
	return true
}

func filter(set []byte, f func(byte) bool) []byte {
	var out []byte
	for _, c := range set {
		if f(c) {
			out = append(out, c)
		}
	}
	return out
}

// prefer narrows set to the characters that satisfy f, unless none does.
func prefer(set []byte, f func(byte) bool) []byte {
	if n := filter(set, f); len(n) > 0 {
		return n
	}
	return set
}

func generatePassword(r io.Reader, policies []PasswordPolicy, entropyBits int) ([]byte, error) {
	if entropyBits < 0 {
		return nil, fmt.Errorf("zimbra: generating a password: %d bits of entropy asked", entropyBits)
	}
	fail := func(format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf("zimbra: the password policies cannot be met together: "+format, args...)
	}
	cps := make([]*compiledPolicy, len(policies))
	for i, p := range policies {
		cp, err := p.compile()
		if err != nil {
			return fail("policy %d: %v", i+1, err)
		}
		cps[i] = cp
	}

	// The alphabet: printable ASCII every policy allows; a one-letter
	// forbidden username would be drawn sooner or later, so it goes too.
	var alphabet []byte
	for c := byte(33); c <= 126; c++ {
		ok := true
		for _, cp := range cps {
			if cp.allowed != nil && !cp.allowed.MatchString(string(rune(c))) ||
				cp.ForbidUsername && len(cp.Username) == 1 && strings.EqualFold(cp.Username, string(rune(c))) {
				ok = false
				break
			}
		}
		if ok {
			alphabet = append(alphabet, c)
		}
	}
	if len(alphabet) == 0 {
		return fail("no printable ASCII character is allowed by every policy")
	}
	isUpper := func(c byte) bool { return c >= 'A' && c <= 'Z' }
	isLower := func(c byte) bool { return c >= 'a' && c <= 'z' }
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isLetter := func(c byte) bool { return isUpper(c) || isLower(c) }
	punctFor := func(cp *compiledPolicy) func(byte) bool {
		return func(c byte) bool {
			if isLetter(c) || isDigit(c) {
				return false
			}
			if cp.punct != nil {
				return cp.punct.MatchString(string(rune(c)))
			}
			return asciiPunct(rune(c))
		}
	}
	alphaFor := func(cp *compiledPolicy) func(byte) bool {
		pf := punctFor(cp)
		return func(c byte) bool { return !isDigit(c) && !pf(c) }
	}

	var slots []slot
	count := func(f func(byte) bool) int {
		n := 0
		for _, s := range slots {
			if s.subsetOf(f) {
				n++
			}
		}
		return n
	}
	maxOf := func(f func(PasswordPolicy) int) int {
		m := 0
		for _, p := range policies {
			m = max(m, f(p))
		}
		return m
	}
	// Upper, lower and digits mean the same to every policy.
	for _, cl := range []struct {
		min   int
		class func(byte) bool
		what  string
	}{
		{maxOf(func(p PasswordPolicy) int { return p.MinUpperCase }), isUpper, "upper case"},
		{maxOf(func(p PasswordPolicy) int { return p.MinLowerCase }), isLower, "lower case"},
		{maxOf(func(p PasswordPolicy) int { return p.MinNumeric }), isDigit, "numeric"},
	} {
		pool := filter(alphabet, cl.class)
		for count(cl.class) < cl.min {
			if len(pool) == 0 {
				return fail("%d %s characters demanded, and none is allowed", cl.min, cl.what)
			}
			slots = append(slots, pool)
		}
	}
	// Punctuation depends on each policy's AllowedPunctuationChars: draw
	// from characters that count for as many of the policies still short
	// of punctuation as possible.
	punctSlot := func(i int, short func(j int) bool) slot {
		pool := filter(alphabet, punctFor(cps[i]))
		for j := range cps {
			if j != i && short(j) {
				pool = prefer(pool, punctFor(cps[j]))
			}
		}
		return prefer(pool, func(c byte) bool { return strings.IndexByte(safePunctuation, c) >= 0 })
	}
	punctShort := func(j int) bool { return count(punctFor(cps[j])) < cps[j].MinPunctuation }
	for i, cp := range cps {
		for count(punctFor(cp)) < cp.MinPunctuation {
			s := punctSlot(i, punctShort)
			if len(s) == 0 {
				return fail("policy %d demands %d punctuation characters, and no allowed character counts as punctuation for it", i+1, cp.MinPunctuation)
			}
			slots = append(slots, s)
		}
	}
	digits := filter(alphabet, isDigit)
	for i, cp := range cps {
		pf := punctFor(cp)
		digitOrPunct := func(c byte) bool { return isDigit(c) || pf(c) }
		dopShort := func(j int) bool {
			pj := punctFor(cps[j])
			return count(func(c byte) bool { return isDigit(c) || pj(c) }) < cps[j].MinDigitsOrPuncs
		}
		for count(digitOrPunct) < cp.MinDigitsOrPuncs {
			s := slot(digits)
			if len(s) == 0 {
				s = punctSlot(i, dopShort)
			}
			if len(s) == 0 {
				return fail("policy %d demands %d digits or punctuation characters, and none is allowed", i+1, cp.MinDigitsOrPuncs)
			}
			slots = append(slots, s)
		}
	}
	letters := filter(alphabet, isLetter)
	for i, cp := range cps {
		af := alphaFor(cp)
		for count(af) < cp.MinAlpha {
			s := slot(letters) // letters are alpha for every policy
			if len(s) == 0 {
				s = filter(alphabet, af)
				for j := range cps {
					if j != i && count(alphaFor(cps[j])) < cps[j].MinAlpha {
						s = prefer(s, alphaFor(cps[j]))
					}
				}
			}
			if len(s) == 0 {
				return fail("policy %d demands %d alpha characters, and none is allowed", i+1, cp.MinAlpha)
			}
			slots = append(slots, s)
		}
	}

	// The rest: letters and digits when the policies allow enough of them
	// and they carry the entropy asked, else anything allowed.
	frees := [][]byte{alphabet}
	if alnum := filter(alphabet, func(c byte) bool { return isLetter(c) || isDigit(c) }); len(alnum) >= 10 && len(alnum) < len(alphabet) {
		frees = [][]byte{alnum, alphabet}
	}
	minLen := maxOf(func(p PasswordPolicy) int { return p.MinLength })
	maxLen := maxGeneratedLength
	for _, p := range policies {
		if p.MaxLength > 0 {
			maxLen = min(maxLen, p.MaxLength)
		}
	}
	bits := func() float64 {
		b := 0.0
		for _, s := range slots {
			b += math.Log2(float64(len(s)))
		}
		return b
	}
	required := slots
	for _, free := range frees {
		slots = slices.Clone(required)
		for len(slots) < max(minLen, 1) {
			slots = append(slots, free)
		}
		if len(slots) > maxLen {
			return fail("%d characters are needed for the demanded classes and the minimum length, at most %d allowed", len(slots), maxLen)
		}
		for len(free) > 1 && bits() < float64(entropyBits) && len(slots) < maxLen {
			slots = append(slots, free)
		}
		if bits() >= float64(entropyBits) {
			break
		}
	}
	if b := bits(); b < float64(entropyBits) {
		return fail("%.1f bits of entropy fit in the %d characters allowed, %d asked", b, maxLen, entropyBits)
	}

	// A username longer than one character can still turn up by chance.
	for range 100 {
		pw := make([]byte, len(slots))
		for i, s := range slots {
			n, err := randIndex(r, len(s))
			if err != nil {
				return nil, fmt.Errorf("zimbra: generating a password: %w", err)
			}
			pw[i] = s[n]
		}
		for i := len(pw) - 1; i > 0; i-- { // Fisher–Yates
			j, err := randIndex(r, i+1)
			if err != nil {
				return nil, fmt.Errorf("zimbra: generating a password: %w", err)
			}
			pw[i], pw[j] = pw[j], pw[i]
		}
		var err error
		for _, cp := range cps {
			if err = cp.check(pw); err != nil {
				break
			}
		}
		var pe *PolicyError
		if err == nil {
			return pw, nil
		}
		clear(pw)
		if !errors.As(err, &pe) || pe.Reason != "password contains username" {
			return nil, fmt.Errorf("zimbra: generating a password: a generated password failed its policy: %w", err)
		}
	}
	return fail("every password drawn contains a forbidden username")
}

// randIndex returns a uniform integer in [0, n) from r.
func randIndex(r io.Reader, n int) (int, error) {
	v, err := rand.Int(r, big.NewInt(int64(n)))
	if err != nil {
		return 0, err
	}
	return int(v.Int64()), nil
}
