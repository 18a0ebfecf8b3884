package fingerprint

import "bytes"

// rule recognises the values that start with prefix.
type rule struct {
	// prefix is lower-case ASCII, compared ASCII case-insensitively with the
	// start of the value. When it ends in a letter or digit, the value must
	// not continue with one ("Zimbra" does not match "ZimbraWebClient").
	prefix string
	// family is the result of a plain rule; the version is then the first
	// version-like word after the prefix.
	family Family
	// refine, when not plain, names the function that decides from the text
	// after the prefix, and may pass the value on to the later rules.
	refine refinement
}

// refinement selects a refining function. It is an enumeration rather than
// a func field so that the call is direct and the caller's buffer stays on
// the stack (an indirect call makes its arguments escape).
type refinement uint8

const (
	plain refinement = iota
	refineZimbra
	refineMozilla
	refineEvolution
)

// rules are tried in order; the first that matches wins, so a longer prefix
// must come before a shorter one it extends. The examples are real values
// from shared/data/mua-header-fingerprints/headers.csv unless marked.
var rules = [...]rule{
	// "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", "Zimbra 8.7.0_GA_1659".
	{prefix: "zimbra", refine: refineZimbra},

	// "Roundcube Webmail/1.4.11"; also "RoundCube WebMail", the old spelling
	// and what Roundcube's useragent setting may be set to.
	{prefix: "roundcube webmail", family: FamilyRoundcube},
	// "SOGoMail 5.11.1".
	{prefix: "sogomail", family: FamilySOGo},
	// "Open-Xchange Mailer v7.10.6-Rev45".
	{prefix: "open-xchange mailer", family: FamilyOpenXchange},
	// "SquirrelMail/1.4.22".
	{prefix: "squirrelmail", family: FamilySquirrelMail},

	// "Microsoft Outlook Express 6.00.2900.2180" is a different program,
	// discontinued in 2006, that spam tools still imitate: other, and before
	// the Outlook rule that would take it.
	{prefix: "microsoft outlook express", family: FamilyOther},
	// "Microsoft Office Outlook 12.0", "Microsoft Office Outlook, Build
	// 11.0.5510" (code-index excerpts 3420999433, 7804987318).
	{prefix: "microsoft office outlook", family: FamilyOutlook},
	// "Microsoft Outlook 16.0", "Microsoft Outlook 16.0 (Build 13980)".
	{prefix: "microsoft outlook", family: FamilyOutlook},
	// "Microsoft-MacOutlook/16.39.20071300".
	{prefix: "microsoft-macoutlook/", family: FamilyOutlook},

	// "Mozilla Thunderbird" (115 and later), "Mozilla Thunderbird 1.0.2
	// (X11/20050322)".
	{prefix: "mozilla thunderbird", family: FamilyThunderbird},
	// "Thunderbird for Android" is K-9 Mail renamed (code-index excerpt
	// 19145194316); before the next rule.
	{prefix: "thunderbird for android", family: FamilyK9Mail},
	// "Thunderbird 2.0.0.6 (Macintosh/20070728)" (code-index excerpt
	// 48888240500).
	{prefix: "thunderbird", family: FamilyThunderbird},
	// "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101
	// Thunderbird/102.15.1", and Debian's rebuild "… Icedove/31.8.0"
	// (code-index excerpt 38499827898). Other Gecko and browser user agents
	// fall through to other.
	{prefix: "mozilla/", refine: refineMozilla},
	// "K-9 Mail for Android".
	{prefix: "k-9 mail", family: FamilyK9Mail},

	// "Apple Mail (2.3124)", "iPhone Mail (17A5831c)", "iPad Mail (13E238)".
	{prefix: "apple mail", family: FamilyAppleMail},
	{prefix: "iphone mail", family: FamilyAppleMail},
	{prefix: "ipad mail", family: FamilyAppleMail},

	// "Evolution 3.28.5-0ubuntu0.18.04.2", "Evolution 2.0.2 (2.0.2-3)".
	{prefix: "evolution", refine: refineEvolution},

	// "PHPMailer 6.9.3 (https://github.com/PHPMailer/PHPMailer)",
	// "PHPMailer [version 1.73]"; "Leaf PHPMailer 2.7 (leafmailer.pw)" is a
	// mass-mailer built on it.
	{prefix: "phpmailer", family: FamilyPHPMailer},
	{prefix: "leaf phpmailer", family: FamilyPHPMailer},
}

// match applies rules to a normalised, non-empty value.
func match(v []byte) (Family, span, bool) {
	for i := range rules {
		r := &rules[i]
		if !hasPrefixFold(v, r.prefix) {
			continue
		}
		rest := len(r.prefix)
		if isAlnum(r.prefix[rest-1]) && rest < len(v) && isAlnum(v[rest]) {
			continue
		}
		var (
			f   Family
			ver span
			ok  bool
		)
		switch r.refine {
		case refineZimbra:
			f, ver, ok = zimbra(v, rest)
		case refineMozilla:
			f, ver, ok = mozilla(v, rest)
		case refineEvolution:
			f, ver, ok = evolution(v, rest)
		default:
			f, ok = r.family, true
			if f != FamilyOther {
				ver = versionAfter(v, rest)
			}
		}
		if ok {
			return f, ver, true
		}
	}
	return "", span{}, false
}

// zimbraClients name the Zimbra family from the SOAP user agent inside the
// parenthesis of "Zimbra <build> (<name>/<version>)"; anything else is
// FamilyZimbraOther. Sources: see the package documentation.
var zimbraClients = [...]struct {
	prefix string
	family Family
}{
	{"zclient", FamilyZimbraHTML},
	{"zimbrawebclient", FamilyZimbraAjax},
	{"zimbraxwebclient", FamilyZimbraModern},
	{"zimbraxdesktopclient", FamilyZimbraModern},
}

// zimbra reads what Zimbra's MailSender writes: "Zimbra " + build, then
// " (" + user agent + ")" when the SOAP request named one. A value that
// starts with the word Zimbra but not with a build is FamilyZimbraOther.
func zimbra(v []byte, rest int) (Family, span, bool) {
	i := rest
	if i >= len(v) || v[i] != ' ' || i+1 >= len(v) || !isDigit(v[i+1]) {
		return FamilyZimbraOther, span{}, true
	}
	i++
	build := span{start: i}
	for i < len(v) && v[i] != ' ' && v[i] != '(' {
		i++
	}
	build.end = i
	for i < len(v) && v[i] == ' ' {
		i++
	}
	if i == len(v) {
		return FamilyZimbraBare, build, true
	}
	if v[i] != '(' {
		return FamilyZimbraOther, build, true
	}
	ua := v[i+1:]
	for _, c := range zimbraClients {
		if hasPrefixFold(ua, c.prefix) && (len(ua) == len(c.prefix) || !isAlnum(ua[len(c.prefix)])) {
			return c.family, build, true
		}
	}
	return FamilyZimbraOther, build, true
}

// mozilla recognises Thunderbird's Gecko user agent string, which names the
// application after the platform: "… Gecko/20100101 Thunderbird/102.15.1".
func mozilla(v []byte, rest int) (Family, span, bool) {
	for _, app := range [...]string{" thunderbird/", " icedove/"} {
		if i := indexFold(v[rest:], app); i >= 0 {
			return FamilyThunderbird, versionAfter(v, rest+i+len(app)), true
		}
	}
	return "", span{}, false
}

// evolution requires the version Evolution always writes
// ("Evolution <ver>[ (<distro ver>)]"), so that a bare word does not match.
func evolution(v []byte, rest int) (Family, span, bool) {
	if rest+1 < len(v) && v[rest] == ' ' && isDigit(v[rest+1]) {
		return FamilyEvolution, versionAfter(v, rest), true
	}
	return "", span{}, false
}

// versionAfter returns the first word of v[from:] that looks like a
// version: it starts with a digit, or with "v" and a digit (the "v" is left
// out). Words end at white space and at ( ) [ ] , ; /.
func versionAfter(v []byte, from int) span {
	i := from
	for i < len(v) {
		for i < len(v) && isVersionSep(v[i]) {
			i++
		}
		start := i
		for i < len(v) && !isVersionSep(v[i]) {
			i++
		}
		w := v[start:i]
		switch {
		case len(w) > 0 && isDigit(w[0]):
			return span{start, i}
		case len(w) > 1 && (w[0] == 'v' || w[0] == 'V') && isDigit(w[1]):
			return span{start + 1, i}
		}
	}
	return span{}
}

func isVersionSep(c byte) bool {
	switch c {
	case ' ', '(', ')', '[', ']', ',', ';', '/':
		return true
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// lower folds an ASCII upper-case letter; other bytes are unchanged, so
// UTF-8 sequences never match an ASCII prefix.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether v starts with prefix, which is lower-case
// ASCII, ignoring ASCII case.
func hasPrefixFold(v []byte, prefix string) bool {
	if len(v) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(v[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// indexFold returns the index of the first instance of needle in v,
// ignoring ASCII case, or -1. needle is lower-case ASCII and starts with a
// byte that is not a letter (a space, in the rules), so candidates can be
// found with bytes.IndexByte.
func indexFold(v []byte, needle string) int {
	for i := 0; i+len(needle) <= len(v); {
		j := bytes.IndexByte(v[i:len(v)-len(needle)+1], needle[0])
		if j < 0 {
			return -1
		}
		i += j
		if hasPrefixFold(v[i:], needle) {
			return i
		}
		i++
	}
	return -1
}
