package aprl

import (
	"io"
	"strings"
)

// Matcher is a site allow- or blocklist of addresses and domains. Its
// methods are safe for concurrent use; a nil *Matcher matches nothing.
//
// Each line holds one rule, with '#' starting a comment (at the start of a
// line or after white space):
//
//	user@example.org   the address (compared case-insensitively)
//	@example.org       every address at example.org, but not its subdomains
//	example.org        every address at example.org and at any subdomain
//
// The two domain forms follow Postfix: "@domain" is an exact domain as in
// virtual(5), and a bare "domain" also matches subdomains as in access(5)
// with parent_domain_matches_subdomains.
type Matcher struct {
	addrs   map[string]string // normalised address → rule
	exact   map[string]string // domain → "@domain"
	domains map[string]string // domain → "domain", subdomains included
}

// ParseMatcher reads a site list. Bad lines are skipped and returned as
// ParseErrors; the error is as for Parse.
func ParseMatcher(r io.Reader, source string) (*Matcher, []ParseError, error) {
	lr := newLineReader(r, source)
	m := &Matcher{addrs: map[string]string{}, exact: map[string]string{}, domains: map[string]string{}}
	for {
		s, ok, err := lr.next()
		if err != nil {
			errs, _ := lr.finish()
			return nil, errs, err
		}
		if !ok {
			break
		}
		rule := s
		if i := strings.IndexAny(rule, " \t"); i >= 0 {
			rest := strings.TrimSpace(rule[i:])
			if rest != "" && rest[0] != '#' {
				lr.fail("want one rule per line: " + quote(s))
				continue
			}
			rule = rule[:i]
		}
		switch {
		case strings.HasPrefix(rule, "@"):
			d, ok := normalizeDomain(rule[1:])
			if !ok {
				lr.fail("bad domain: " + quote(s))
				continue
			}
			m.exact[d] = "@" + d
		case strings.Contains(rule, "@"):
			a, ok := normalize(rule)
			if !ok || strings.ContainsAny(rule, "<>") {
				lr.fail("bad address: " + quote(s))
				continue
			}
			if _, ok := normalizeDomain(a[strings.LastIndexByte(a, '@')+1:]); !ok {
				lr.fail("bad domain: " + quote(s))
				continue
			}
			m.addrs[a] = a
		default:
			d, ok := normalizeDomain(rule)
			if !ok {
				lr.fail("bad domain: " + quote(s))
				continue
			}
			m.domains[d] = d
		}
		if err := lr.ok(); err != nil {
			errs, _ := lr.finish()
			return nil, errs, err
		}
	}
	errs, err := lr.finish()
	if err != nil {
		return nil, errs, err
	}
	return m, errs, nil
}

// Match reports whether addr matches a rule, and which: the address rule
// first, then "@domain", then the most specific "domain". The rule is
// returned in its normalised form. Matching an already normalised address
// does not allocate.
func (m *Matcher) Match(addr string) (rule string, ok bool) {
	if m == nil {
		return "", false
	}
	a, ok := normalize(addr)
	if !ok {
		return "", false
	}
	if r, ok := m.addrs[a]; ok {
		return r, true
	}
	d := a[strings.LastIndexByte(a, '@')+1:]
	if r, ok := m.exact[d]; ok {
		return r, true
	}
	for {
		if r, ok := m.domains[d]; ok {
			return r, true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return "", false
		}
		d = d[i+1:]
	}
}

// Len returns the number of rules.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return len(m.addrs) + len(m.exact) + len(m.domains)
}
