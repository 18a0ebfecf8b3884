package zimbratest

import (
	"slices"
	"strings"
)

// --- store ----------------------------------------------------------------

func (s *Server) byName(name string) *account {
	for _, a := range s.accounts {
		if strings.EqualFold(a.name, name) {
			return a
		}
	}
	return nil
}

func (s *Server) lookup(by, key string) *account {
	switch by {
	case "id":
		for _, a := range s.accounts {
			if a.id == key {
				return a
			}
		}
		return nil
	case "name", "":
		return s.byName(key)
	}
	return nil
}

func (a *account) canonical(name string) string {
	for k := range a.attrs {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func (a *account) get(name string) []string { return a.attrs[a.canonical(name)] }

func (a *account) set(name, value string) { a.attrs[a.canonical(name)] = []string{value} }

// effective returns the values of an attribute of the account, or those
// of its COS when the account has none (Entry.getAttr with defaults).
func (s *Server) effective(a *account, name string) []string {
	if v := a.get(name); len(v) > 0 {
		return v
	}
	for k, v := range s.cos {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// lacksRight reports whether Options.MissingRights withholds right.
func (s *Server) lacksRight(right string) bool { return slices.Contains(s.opts.MissingRights, right) }

// unknownAttr reports whether Options.UnknownAttrs removes name from this
// server's schema.
func (s *Server) unknownAttr(name string) bool {
	return slices.ContainsFunc(s.opts.UnknownAttrs, func(u string) bool { return strings.EqualFold(u, strings.TrimSpace(name)) })
}

// blockedAttrs are the attributes whose values Zimbra never returns:
// Provisioning.sanitizedAttrValue (Provisioning.java lines 464–481 at
// zm-mailbox 2b7f9787c69e) replaces the whole value, however many values
// there are, by the one string "VALUE-BLOCKED"; zimbraDataSourcePassword
// is skipped altogether (admin ToXML.encodeAttrs lines 140–145).
var blockedAttrs = []string{"userPassword", "zimbraDataSourcePassword", "zimbraFreebusyExchangeAuthPassword", "zimbraUCPassword",
	"zimbraTwoFactorAuthSecret", "zimbraTwoFactorAuthScratchCodes", "zimbraAppSpecificPassword", "zimbraTwoFactorAuthTrustedDevices",
	"zimbraDataSourceOAuthToken", "zimbraDataSourceOAuthClientSecret", "zimbraDataSourceOAuthRefreshToken", "zimbraTwoFactorCodeForEmail"}

// sanitized is Provisioning.sanitizedAttrValue.
func sanitized(name string, v []string) []string {
	if slices.ContainsFunc(blockedAttrs, func(b string) bool { return strings.EqualFold(b, name) }) {
		return []string{"VALUE-BLOCKED"}
	}
	return v
}

// encode renders the account as admin ToXML.encodeAccount and encodeAttrs
// do (lines 62–89, 118–184): name and id, then one {"n","_content"} per
// value of its attributes merged over cos, secrets sanitized, limited to
// only when given; an attribute in Options.DeniedAttrs keeps one
// {"n","pd":true} per value and loses the values.
func (s *Server) encode(a *account, only []string, cos map[string][]string) map[string]any {
	attrs := map[string][]string{}
	for k, v := range cos {
		attrs[k] = v
	}
	for k, v := range a.attrs {
		for c := range attrs {
			if strings.EqualFold(c, k) {
				delete(attrs, c)
			}
		}
		attrs[k] = v
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		if s.unknownAttr(k) || strings.EqualFold(k, "zimbraDataSourcePassword") {
			continue
		}
		if only == nil || slices.ContainsFunc(only, func(o string) bool { return strings.EqualFold(strings.TrimSpace(o), k) }) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	list := []any{}
	for _, k := range names {
		denied := slices.ContainsFunc(s.opts.DeniedAttrs, func(d string) bool { return strings.EqualFold(d, k) })
		for _, v := range sanitized(k, attrs[k]) {
			if denied {
				list = append(list, map[string]any{"n": k, "pd": true})
			} else {
				list = append(list, map[string]any{"n": k, "_content": v})
			}
		}
	}
	return map[string]any{"name": a.name, "id": a.id, "a": list}
}
