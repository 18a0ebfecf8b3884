package zimbratest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
)

// This file models LdapProvisioning.setPassword and checkPasswordStrength
// (store/src/java/com/zimbra/cs/account/ldap/LdapProvisioning.java at
// zm-mailbox commit 2b7f9787c69ed6b95ce37a415ba27c50f1091c72): the
// three-argument setPassword (lines 6010–6034) always runs a dry run that
// checks the policy and keeps its message, then the real set, which
// enforces the policy only for an admin without setAccountPassword
// (SetPassword.checkAccountRights, SetPassword.java lines 120–141); the
// four-argument one (lines 6271–6320) checks strength, minimum age and
// history in that order, then writes the history, clears
// zimbraPasswordMustChange when it was TRUE, sets
// zimbraPasswordModifiedTime and raises zimbraAuthTokenValidityValue.

// commonPasswords stands in for Zimbra's bloom filter of common passwords
// (zimbraPasswordBlockCommonEnabled, line 6146): a few of the most common.
var commonPasswords = []string{"123456", "password", "12345678", "qwerty", "123456789", "letmein", "Password1"}

// invalidPassword is AccountServiceException.INVALID_PASSWORD(desc, arg)
// (AccountServiceException.java lines 202–208): "invalid password: "+desc,
// a sender's fault, with one argument.
func invalidPassword(desc, argName, argType, argValue string) *fault {
	f := &fault{code: "account.INVALID_PASSWORD", reason: "invalid password: " + desc, sender: true}
	if argName != "" {
		f.args = append(f.args, faultArg{name: argName, typ: argType, value: argValue})
	}
	return f
}

// getInt is Entry.getIntAttr(name, 0) on the account with its COS applied:
// Integer.parseInt, 0 when unset or unparsable.
func (s *Server) getInt(a *account, name string) int {
	v, err := strconv.ParseInt(firstOf(s.effective(a, name)), 10, 32)
	if err != nil {
		return 0
	}
	return int(v)
}

// getBool is Entry.getBooleanAttr: only "TRUE" is true; def when unset.
func (s *Server) getBool(a *account, name string, def bool) bool {
	v := s.effective(a, name)
	if len(v) == 0 {
		return def
	}
	return v[0] == "TRUE"
}

// checkPasswordStrength is LdapProvisioning.checkPasswordStrength on the
// SetPassword path (lines 6118–6249): the first violation, in Zimbra's
// order. Lengths and characters are Java chars (UTF-16 units).
func (s *Server) checkPasswordStrength(a *account, pw string) *fault {
	units := utf16.Encode([]rune(pw))
	num := func(n int) string { return strconv.Itoa(n) }
	if min := s.getInt(a, "zimbraPasswordMinLength"); min > 0 && len(units) < min {
		return invalidPassword("too short", "zimbraPasswordMinLength", "NUM", num(min))
	}
	if max := s.getInt(a, "zimbraPasswordMaxLength"); max > 0 && len(units) > max {
		return invalidPassword("too long", "zimbraPasswordMaxLength", "NUM", num(max))
	}
	// Lines 6134–6144: on this path the "username" is zimbraUCUsername,
	// normally unset; zimbraFeatureAllowUsernameInPassword defaults to TRUE
	// (ZAttrAccount line 14198).
	if u := firstOf(s.effective(a, "zimbraUCUsername")); u != "" && !s.getBool(a, "zimbraFeatureAllowUsernameInPassword", true) &&
		strings.Contains(strings.ToLower(pw), strings.ToLower(u)) {
		return invalidPassword("password contains username", "zimbraPasswordAllowUsername", "STR", "")
	}
	if s.getBool(a, "zimbraPasswordBlockCommonEnabled", false) && slices.Contains(commonPasswords, pw) {
		return invalidPassword("too common", "zimbraPasswordBlockCommonEnabled", "STR", "")
	}
	minUpper := s.getInt(a, "zimbraPasswordMinUpperCaseChars")
	minLower := s.getInt(a, "zimbraPasswordMinLowerCaseChars")
	minNumeric := s.getInt(a, "zimbraPasswordMinNumericChars")
	minPunct := s.getInt(a, "zimbraPasswordMinPunctuationChars")
	minAlpha := s.getInt(a, "zimbraPasswordMinAlphaChars")
	minNumOrPunc := s.getInt(a, "zimbraPasswordMinDigitsOrPuncs")
	allowed, f := compileJavaPattern(s.effective(a, "zimbraPasswordAllowedChars"), "zimbraPasswordAllowedChars")
	if f != nil {
		return f
	}
	allowedPunct, f := compileJavaPattern(s.effective(a, "zimbraPasswordAllowedPunctuationChars"), "zimbraPasswordAllowedPunctuationChars")
	if f != nil {
		return f
	}
	if minUpper <= 0 && minLower <= 0 && minNumeric <= 0 && minPunct <= 0 && minAlpha <= 0 && minNumOrPunc <= 0 && allowed == nil && allowedPunct == nil {
		return nil
	}
	var upper, lower, numeric, punct, alpha int
	for _, u := range units {
		ch := string(rune(u)) // a lone surrogate becomes U+FFFD: Go strings cannot hold one
		if allowed != nil && !allowed.MatchString(ch) {
			return invalidPassword(ch+" is not an allowed character", "zimbraPasswordAllowedChars", "STR", firstOf(s.effective(a, "zimbraPasswordAllowedChars")))
		}
		r := rune(u)
		isAlpha := true
		switch {
		case unicode.Is(unicode.Lu, r) || unicode.Is(unicode.Other_Uppercase, r): // Character.isUpperCase
			upper++
		case unicode.Is(unicode.Ll, r) || unicode.Is(unicode.Other_Lowercase, r): // Character.isLowerCase
			lower++
		case unicode.IsDigit(r): // Character.isDigit: Nd
			numeric++
			isAlpha = false
		case allowedPunct != nil:
			if allowedPunct.MatchString(ch) {
				punct++
				isAlpha = false
			}
		case isASCIIPunct(r):
			punct++
			isAlpha = false
		}
		if isAlpha {
			alpha++
		}
	}
	switch {
	case upper < minUpper:
		return invalidPassword("not enough upper case characters", "zimbraPasswordMinUpperCaseChars", "NUM", num(minUpper))
	case lower < minLower:
		return invalidPassword("not enough lower case characters", "zimbraPasswordMinLowerCaseChars", "NUM", num(minLower))
	case numeric < minNumeric:
		return invalidPassword("not enough numeric characters", "zimbraPasswordMinNumericChars", "NUM", num(minNumeric))
	case punct < minPunct:
		return invalidPassword("not enough punctuation characters", "zimbraPasswordMinPunctuationChars", "NUM", num(minPunct))
	case alpha < minAlpha:
		return invalidPassword("not enough alpha characters", "zimbraPasswordMinAlphaChars", "NUM", num(minAlpha))
	case numeric+punct < minNumOrPunc:
		return invalidPassword("not enough numeric or punctuation characters", "zimbraPasswordMinDigitsOrPuncs", "NUM", num(minNumOrPunc))
	}
	return nil
}

// isASCIIPunct is LdapProvisioning.isAsciiPunc (lines 6258–6264).
func isASCIIPunct(r rune) bool {
	return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
}

// compileJavaPattern compiles a Pattern.compile'd policy attribute for
// Matcher.matches (a whole-string match). Go's RE2 stands in for
// java.util.regex, which it matches on plain character classes and
// ranges, what tests use; it reads Java's POSIX \p{Punct}-style classes,
// "&&" and nested classes differently. A pattern it cannot compile gets
// Zimbra's answer to an invalid one (lines 6162–6167).
func compileJavaPattern(v []string, attr string) (*regexp.Regexp, *fault) {
	if len(v) == 0 {
		return nil, nil
	}
	re, err := regexp.Compile(`^(?:` + v[0] + `)$`)
	if err != nil {
		return nil, invalidPassword(attr+" is not valid regex: "+err.Error(), "", "", "")
	}
	return re, nil
}

// historyEntry is one value of zimbraPasswordHistory ("millis:hash"); the
// fake keeps the password itself, out of the attributes GetAccount shows.
type historyEntry struct {
	at time.Time
	pw string
}

// newHistory is LdapProvisioning.updateHistory (lines 5986–6002): the
// current password joins the history, the oldest leaving so that at most
// max remain; nil when the account has no password.
func newHistory(history []historyEntry, current string, max int, now time.Time) []historyEntry {
	if current == "" {
		return nil
	}
	h := slices.Clone(history)
	slices.SortStableFunc(h, func(x, y historyEntry) int { return x.at.Compare(y.at) })
	for len(h) > 0 && len(h) >= max {
		h = h[1:]
	}
	return append(h, historyEntry{at: now, pw: current})
}

// passwordChecks is the checking half of the four-argument setPassword
// (lines 6274–6306) with enforcePolicy or dryRun set: strength, then the
// minimum age unless a change is due anyway, then the history that would
// be written. It returns that history too.
func (s *Server) passwordChecks(a *account, pw string) ([]historyEntry, *fault) {
	if f := s.checkPasswordStrength(a, pw); f != nil {
		return nil, f
	}
	mustChange := s.getBool(a, "zimbraPasswordMustChange", false)
	if minAge := s.getInt(a, "zimbraPasswordMinAge"); !mustChange && minAge > 0 {
		if last, err := time.Parse("20060102150405Z", firstOf(a.get("zimbraPasswordModifiedTime"))); err == nil &&
			last.Add(time.Duration(minAge)*24*time.Hour).After(s.opts.Now()) {
			return nil, &fault{code: "account.PASSWORD_CHANGE_TOO_SOON", reason: "password can't be changed yet", sender: true}
		}
	}
	if max := s.getInt(a, "zimbraPasswordEnforceHistory"); max > 0 {
		h := newHistory(a.history, a.password, max, s.opts.Now())
		for _, e := range h {
			if e.pw == pw {
				return nil, &fault{code: "account.PASSWORD_RECENTLY_USED", reason: "password was recently used", sender: true}
			}
		}
		return h, nil
	}
	return nil, nil
}

// setAccountPassword is the three-argument LdapProvisioning.setPassword,
// enforce being what SetPassword.checkAccountRights decided: it returns
// the SetPasswordResponse message ("" for none) or the fault that stopped
// an enforced set.
func (s *Server) setAccountPassword(a *account, pw string, enforce bool) (string, *fault) {
	_, dry := s.passwordChecks(a, pw) // the dry run (line 6019)
	if dry != nil && enforce {
		// The enforced set (line 6024) meets the same violation first.
		return "", dry
	}
	// The real set (lines 6294–6320): the history is written even when
	// the policy is not enforced.
	if max := s.getInt(a, "zimbraPasswordEnforceHistory"); max > 0 {
		a.history = newHistory(a.history, a.password, max, s.opts.Now())
	}
	a.password = pw
	if s.getBool(a, "zimbraPasswordMustChange", false) {
		delete(a.attrs, a.canonical("zimbraPasswordMustChange"))
	}
	a.set("zimbraPasswordModifiedTime", s.opts.Now().UTC().Format("20060102150405Z"))
	// ZAttrAccount.getAuthTokenValidityValue: unset is -1 (lines 5089–5091).
	v, err := strconv.ParseInt(firstOf(a.get("zimbraAuthTokenValidityValue")), 10, 32)
	if err != nil {
		v = -1
	}
	if v == 1<<31-1 {
		v = 0
	} else {
		v++
	}
	a.set("zimbraAuthTokenValidityValue", strconv.FormatInt(v, 10))
	if dry == nil {
		return "", nil
	}
	// ZsMsg.properties lines 365–366 (passwordViolation), English; Zimbra
	// translates it into the account's locale.
	return "Password violation: account=" + a.name + ", violation=" + dry.reason + ".  Password is set successfully.", nil
}
