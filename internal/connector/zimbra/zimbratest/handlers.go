package zimbratest

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
)

// --- handlers (called with s.mu held) --------------------------------------

func (s *Server) auth(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	name := str(f["name"])
	if name == "" {
		name = str(f["account"])
	}
	_, hasPw := f["password"]
	call.Account, call.Password = name, hasPw
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if name == "" || !hasPw {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: missing name or password", sender: true}
	}
	if !strings.EqualFold(name, s.opts.AdminUser) || str(f["password"]) != s.opts.AdminPassword {
		return nil, &fault{code: "account.AUTH_FAILED", reason: "authentication failed for [" + name + "]", sender: true}
	}
	tok := "0_" + randomHex(20)
	s.tokens[tok] = &token{expires: s.opts.Now().Add(s.opts.TokenLifetime)}
	return map[string]any{
		"authToken": []any{map[string]any{"_content": tok}},
		"lifetime":  s.opts.TokenLifetime.Milliseconds(),
		"a":         []any{map[string]any{"n": "zimbraIsDomainAdminAccount", "_content": "false"}},
		"_jsns":     "urn:zimbraAdmin",
	}, nil
}

func (s *Server) getAccount(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	by, key := selectorOf(f["account"])
	call.Account = key
	attrsReq := str(f["attrs"])
	if attrsReq != "" {
		call.Args = append(call.Args, "attrs="+attrsReq)
	}
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if key == "" {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: missing <account>", sender: true}
	}
	a := s.lookup(by, key)
	if a == nil {
		return nil, &fault{code: "account.NO_SUCH_ACCOUNT", reason: "no such account: " + key, sender: true}
	}
	var only []string
	if attrsReq != "" {
		only = strings.Split(attrsReq, ",")
		for _, at := range only {
			if s.unknownAttr(at) {
				return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: requested attribute " + at + " is not on account", sender: true}
			}
		}
	}
	// GetAccount.java line 86: COS values apply unless applyCos="0".
	var cos map[string][]string
	if ac := str(f["applyCos"]); ac != "0" && ac != "false" {
		cos = s.cos
	}
	return map[string]any{"account": []any{s.encode(a, only, cos)}, "_jsns": "urn:zimbraAdmin"}, nil
}

// accountStatuses are zimbraAccountStatus's enum values (zimbra-attrs.xml).
var accountStatuses = []string{"active", "maintenance", "locked", "closed", "lockout", "pending"}

func (s *Server) modifyAccount(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	id := str(f["id"])
	call.Account = id
	attrs, err := attrList(f["a"])
	for _, at := range attrs {
		call.Args = append(call.Args, at[0]+"="+at[1])
	}
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if err != nil {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: " + err.Error(), sender: true}
	}
	if id == "" {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: missing required attribute: id", sender: true}
	}
	a := s.lookup("id", id)
	if a == nil {
		return nil, &fault{code: "account.NO_SUCH_ACCOUNT", reason: "no such account: " + id, sender: true}
	}
	// Validate all before changing any, as AttributeManager.preModify does.
	for _, at := range attrs {
		if f := validate(at[0], at[1]); f != nil {
			return nil, f
		}
	}
	// soap-admin: repeated names give all the new values; an empty value
	// removes the attribute; "+name" adds a value and "-name" removes one.
	replaced := map[string]bool{}
	for _, at := range attrs {
		n, v := at[0], at[1]
		switch {
		case strings.HasPrefix(n, "+"):
			n = a.canonical(n[1:])
			a.attrs[n] = append(a.attrs[n], v)
		case strings.HasPrefix(n, "-"):
			n = a.canonical(n[1:])
			a.attrs[n] = slices.DeleteFunc(a.attrs[n], func(x string) bool { return x == v })
		default:
			n = a.canonical(n)
			if !replaced[strings.ToLower(n)] {
				replaced[strings.ToLower(n)] = true
				delete(a.attrs, n)
			}
			if v != "" {
				a.attrs[n] = append(a.attrs[n], v)
			}
		}
		if len(a.attrs[n]) == 0 {
			delete(a.attrs, n)
		}
	}
	return map[string]any{"account": []any{s.encode(a, nil, s.cos)}, "_jsns": "urn:zimbraAdmin"}, nil
}

func validate(name, value string) *fault {
	n := strings.TrimLeft(strings.ToLower(name), "+-")
	bad := func(why string) *fault {
		return &fault{code: "account.INVALID_ATTR_VALUE", reason: "invalid attr value: " + name + " " + why, sender: true}
	}
	if value == "" {
		return nil
	}
	switch n {
	case "zimbraid":
		return &fault{code: "service.INVALID_REQUEST", reason: "invalid request: zimbraId is immutable", sender: true}
	case "zimbraaccountstatus":
		if !slices.Contains(accountStatuses, value) {
			return bad("must be one of: " + strings.Join(accountStatuses, ","))
		}
	case "zimbraauthtokenvalidityvalue":
		if v, err := strconv.ParseInt(value, 10, 64); err != nil || v < 0 || v > math.MaxInt32 {
			return bad("must be an integer between 0 and 2147483647")
		}
	case "zimbrapasswordmustchange":
		if value != "TRUE" && value != "FALSE" {
			return bad("must be TRUE or FALSE")
		}
	}
	return nil
}

func (s *Server) setPassword(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	id := str(f["id"])
	_, hasPw := f["newPassword"]
	pw := str(f["newPassword"])
	call.Account, call.Password = id, hasPw
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if id == "" || pw == "" {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: missing id or newPassword", sender: true}
	}
	a := s.lookup("id", id)
	if a == nil {
		return nil, &fault{code: "account.NO_SUCH_ACCOUNT", reason: "no such account: " + id, sender: true}
	}
	msg, flt := s.setAccountPassword(a, pw, s.lacksRight(RightSetAccountPassword))
	if flt != nil {
		return nil, flt
	}
	// SetPassword.java lines 109–114: the dry run's violation, if any, as
	// <message>.
	resp := map[string]any{"_jsns": "urn:zimbraAdmin"}
	if msg != "" {
		resp["message"] = []any{map[string]any{"_content": msg}}
	}
	return resp, nil
}

func (s *Server) flushCache(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	var cache struct {
		Type       json.RawMessage   `json:"type"`
		AllServers json.RawMessage   `json:"allServers"`
		Entry      []json.RawMessage `json:"entry"`
	}
	_, hasCache := f["cache"]
	if hasCache && json.Unmarshal(f["cache"], &cache) != nil {
		hasCache = false
	}
	typ := str(cache.Type)
	call.Args = append(call.Args, "type="+typ)
	all := str(cache.AllServers)
	if all != "" {
		call.Args = append(call.Args, "allServers="+all)
	}
	type entry struct{ by, key string }
	var entries []entry
	for _, e := range cache.Entry {
		by, key := selectorOf(e)
		if call.Account == "" {
			call.Account = key
		}
		call.Args = append(call.Args, "entry="+by+":"+key)
		entries = append(entries, entry{by, key})
	}
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if !hasCache {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: missing <cache>", sender: true}
	}
	if typ == "" {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: missing cache type", sender: true}
	}
	flushLocal := func(srv *Server) {
		if !slices.Contains(strings.Split(typ, ","), "account") {
			return // other caches are not modelled
		}
		// LdapProvisioning.flushCache, case account (lines 9043–9075 at
		// zm-mailbox 2b7f9787c69e): no entry clears the cache; an entry
		// is looked up by the key as given and, if cached, removed
		// under all its keys; an unknown key does nothing.
		if len(entries) == 0 {
			srv.cache.clear()
			return
		}
		for _, e := range entries {
			var c *cachedAccount
			if e.by == "id" {
				c = srv.cache.getByID(e.key)
			} else {
				c = srv.cache.getByName(e.key)
			}
			if c != nil {
				srv.cache.remove(c)
			}
		}
	}
	flushLocal(s)
	// FlushCache.flushCacheOnAllServers (lines 227–252): the same request
	// with allServers=0 to every other mailbox server, one at a time, with
	// the caller's token; a failure is only logged. The response is
	// empty either way (line 82).
	if all == "1" || all == "true" {
		for _, p := range s.servers {
			if p == s || p.stopped {
				continue
			}
			pc := Call{Request: call.Request, Account: call.Account, Server: p.name, primary: p == s.servers[0], Args: []string{"type=" + typ, "allServers=0"}}
			for _, e := range entries {
				pc.Args = append(pc.Args, "entry="+e.by+":"+e.key)
			}
			if f := p.gate(&pc, req); f != nil {
				pc.Fault = f.code
			} else {
				flushLocal(p)
			}
			s.calls = append(s.calls, pc)
		}
	}
	return map[string]any{"_jsns": "urn:zimbraAdmin"}, nil
}

// getAllServers is GetAllServers.handle (lines 44–71 at zm-mailbox
// 2b7f9787c69e): every server with service in zimbraServiceEnabled, each
// encoded by GetServer.encodeServer (lines 82–97) as name, id and its
// attributes (applyConfig: zimbraAdminPort inherited from the global
// config), those the admin may list (Admin.R_listServer) only.
func (s *Server) getAllServers(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	service := str(f["service"])
	if service != "" {
		call.Args = append(call.Args, "service="+service)
	}
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	list := []any{}
	for _, srv := range s.servers {
		attrs := srv.ldapAttrs()
		if service != "" && !slices.Contains(attrs["zimbraServiceEnabled"], service) || s.lacksRight(RightListServer) {
			continue
		}
		var a []any
		names := make([]string, 0, len(attrs))
		for k := range attrs {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			for _, v := range attrs[k] {
				a = append(a, map[string]any{"n": k, "_content": v})
			}
		}
		list = append(list, map[string]any{"name": srv.name, "id": srv.id, "a": a})
	}
	return map[string]any{"server": list, "_jsns": "urn:zimbraAdmin"}, nil
}

func (s *Server) getIdentities(_ map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	by, key := selectorOf(req.Header.Context.Account)
	call.Target = key
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if key == "" {
		// The admin's own identities; the admin is not in the store.
		return map[string]any{"identity": []any{}, "_jsns": "urn:zimbraAccount"}, nil
	}
	a := s.lookup(by, key)
	if a == nil {
		return nil, &fault{code: "account.NO_SUCH_ACCOUNT", reason: "no such account: " + key, sender: true}
	}
	if s.lacksRight(RightAdminLoginAs) {
		return nil, defendHarvest(key) // ZimbraSoapContext.java line 647
	}
	// LdapProvisioning.getAllIdentities (lines 7997–8021 at zm-mailbox
	// 2b7f9787c69e): the LDAP children, then the default identity made by
	// Provisioning.getDefaultIdentity (lines 2276–2295) from the account's
	// own attributes, its From falling back to the account's canonical
	// address or name and the display name or cn
	// (AccountUtil.getFriendlyEmailAddress lines 158–176).
	var list []any
	for _, id := range a.identities {
		attrs := map[string]any{}
		for k, v := range id.attrs {
			attrs[k] = kv(v)
		}
		list = append(list, map[string]any{"name": id.name, "id": id.id, "_attrs": attrs})
	}
	defAttrs := map[string]any{}
	for k, v := range a.attrs {
		if strings.HasPrefix(k, "zimbraPrefFrom") || strings.HasPrefix(k, "zimbraPrefReplyTo") {
			defAttrs[k] = kv(v)
		}
	}
	if _, ok := defAttrs["zimbraPrefFromAddress"]; !ok {
		addr := firstOf(a.get("zimbraMailCanonicalAddress"))
		if addr == "" {
			addr = a.name
		}
		defAttrs["zimbraPrefFromAddress"] = addr
	}
	if _, ok := defAttrs["zimbraPrefFromDisplay"]; !ok {
		if d := firstOf(a.get("displayName")); d != "" {
			defAttrs["zimbraPrefFromDisplay"] = d
		} else if cn := firstOf(a.get("cn")); cn != "" {
			defAttrs["zimbraPrefFromDisplay"] = cn
		}
	}
	defName := firstOf(a.get("zimbraPrefIdentityName"))
	if defName == "" {
		defName = "DEFAULT"
	}
	defAttrs["zimbraPrefIdentityName"] = defName
	defAttrs["zimbraPrefIdentityId"] = a.id
	list = append(list, map[string]any{"name": defName, "id": a.id, "_attrs": defAttrs})
	return map[string]any{"identity": list, "_jsns": "urn:zimbraAccount"}, nil
}

// kv renders one value of "_attrs": a string, or an array when
// multi-valued (@ZimbraKeyValuePairs).
func kv(v []string) any {
	if len(v) == 1 {
		return v[0]
	}
	return v
}
