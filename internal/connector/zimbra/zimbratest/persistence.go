package zimbratest

import (
	"encoding/json"
	"slices"
	"strings"
)

// This file models the admin requests that show what an attacker can
// leave on an account besides its attributes, with the response shapes of
// zm-mailbox commit 2b7f9787c69ed6b95ce37a415ba27c50f1091c72.

// grant is an ACE on the account (zimbraACE).
type grant struct {
	granteeType, granteeID, granteeName, right string
	deny                                       bool
}

// share is a grant on one of the account's folders.
type share struct {
	folderID                     int
	folderUUID, path, view       string
	rights                       string
	granteeType, granteeID, name string
}

// dataSource is an LDAP child of the account (zimbraDataSource).
type dataSource struct {
	name, id, typ string
	attrs         map[string][]string
}

// AddGrant grants right (sendAs, sendOnBehalfOf, loginAs…) on the account
// to the grantee (granteeType "usr", "grp", "dom", "all", "pub"…), as
// zmprov grantRight or the user's own ModifyPrefs/GrantRights would. It
// reports false if there is no such account.
func (s *Server) AddGrant(account, granteeType, granteeName, right string, deny bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(account)
	if a == nil {
		return false
	}
	a.grants = append(a.grants, grant{granteeType: granteeType, granteeID: newUUID(), granteeName: granteeName, right: right, deny: deny})
	return true
}

// AddShare shares the account's folder at path (e.g. "/Inbox") with the
// grantee, rights in Zimbra's letters ("r", "rwidx"…). It reports false if
// there is no such account.
func (s *Server) AddShare(account, path, granteeType, granteeName, rights string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(account)
	if a == nil {
		return false
	}
	a.shares = append(a.shares, share{folderID: 257 + len(a.shares), folderUUID: newUUID(), path: path, view: "message", rights: rights,
		granteeType: granteeType, granteeID: newUUID(), name: granteeName})
	return true
}

// AddDataSource adds an external data source (typ "imap", "pop3",
// "caldav", "rss"…) to the account with its attributes
// (zimbraDataSourceHost, zimbraDataSourcePassword…), and returns its id.
func (s *Server) AddDataSource(account, name, typ string, attrs map[string][]string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(account)
	if a == nil {
		return "", false
	}
	ds := &dataSource{name: name, id: newUUID(), typ: typ, attrs: map[string][]string{}}
	for k, v := range attrs {
		ds.attrs[k] = slices.Clone(v)
	}
	ds.attrs["zimbraDataSourceName"] = []string{name}
	ds.attrs["zimbraDataSourceId"] = []string{ds.id}
	a.dataSources = append(a.dataSources, ds)
	return ds.id, true
}

// defendHarvest is DEFEND_ACCOUNT_HARVEST, what an admin without the right
// a request needs on an account gets (AdminDocumentHandler lines 303–343,
// ServiceException.java lines 383–387).
func defendHarvest(key string) *fault {
	return &fault{code: "service.PERM_DENIED", reason: "permission denied: can not access account " + key, sender: true}
}

// getGrants is GetGrants.handle (lines 47–97) for <target type="account">:
// the ACEs on that account, each rendered by RightCommand.Grants.toXML
// (lines 166–208): <grant><target type id name/><grantee type id name/>
// <right deny canDelegate disinheritSubGroups subDomain>right</right>.
// It needs viewGrants (line 61).
func (s *Server) getGrants(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	var target struct {
		Type json.RawMessage `json:"type"`
		By   json.RawMessage `json:"by"`
	}
	_ = json.Unmarshal(f["target"], &target)
	_, key := selectorOf(f["target"])
	typ, by := str(target.Type), str(target.By)
	call.Account = key
	call.Args = append(call.Args, "target="+typ+":"+by)
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if typ != "account" {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: only target type account is modelled", sender: true}
	}
	a := s.lookup(by, key)
	if a == nil {
		return nil, &fault{code: "account.NO_SUCH_ACCOUNT", reason: "no such account: " + key, sender: true}
	}
	if s.lacksRight(RightViewGrants) {
		return nil, &fault{code: "service.PERM_DENIED", reason: "permission denied: need right viewGrants", sender: true}
	}
	list := []any{}
	for _, g := range a.grants {
		list = append(list, map[string]any{
			"target":  []any{map[string]any{"type": "account", "id": a.id, "name": a.name}},
			"grantee": []any{map[string]any{"type": g.granteeType, "id": g.granteeID, "name": g.granteeName}},
			"right":   []any{map[string]any{"deny": g.deny, "canDelegate": false, "disinheritSubGroups": false, "subDomain": false, "_content": g.right}},
		})
	}
	return map[string]any{"grant": list, "_jsns": "urn:zimbraAdmin"}, nil
}

// getShareInfo is the admin GetShareInfo.handle (lines 73–91): with no
// <grantee>, every grant on the owner's folders
// (ShareInfo.Discover.doDiscover lines 401–429), each a <share> with the
// attributes of soap/type/ShareInfo.java (lines 44–137). It needs
// adminLoginAs on the owner.
func (s *Server) getShareInfo(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	by, key := selectorOf(f["owner"])
	call.Account = key
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	a := s.lookup(by, key)
	if a == nil {
		return nil, &fault{code: "account.NO_SUCH_ACCOUNT", reason: "no such account: " + key, sender: true}
	}
	if s.lacksRight(RightAdminLoginAs) {
		return nil, defendHarvest(key)
	}
	list := []any{}
	for _, sh := range a.shares {
		list = append(list, map[string]any{
			"ownerId": a.id, "ownerEmail": a.name, "ownerName": firstOf(a.get("displayName")),
			"folderId": sh.folderID, "folderUuid": sh.folderUUID, "folderPath": sh.path, "view": sh.view, "rights": sh.rights,
			"granteeType": sh.granteeType, "granteeId": sh.granteeID, "granteeName": sh.name, "granteeDisplayName": sh.name,
			"activeSyncDisabled": false,
		})
	}
	return map[string]any{"share": list, "_jsns": "urn:zimbraAdmin"}, nil
}

// getDataSources is GetDataSources.handle (lines 65–81): each source as
// account ToXML.encodeDataSource writes it (lines 261–268): name, id,
// type and its attributes as "_attrs" key/value pairs (encodeAttrs lines
// 129–166: zimbraDataSourcePassword never, OAuth secrets as
// "VALUE-BLOCKED"). It needs adminLoginAs on the account.
func (s *Server) getDataSources(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	id := str(f["id"])
	call.Account = id
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	a := s.lookup("id", id)
	if a == nil {
		return nil, &fault{code: "account.NO_SUCH_ACCOUNT", reason: "no such account: " + id, sender: true}
	}
	if s.lacksRight(RightAdminLoginAs) {
		return nil, defendHarvest(id)
	}
	list := []any{}
	for _, ds := range a.dataSources {
		attrs := map[string]any{}
		for k, v := range ds.attrs {
			if strings.EqualFold(k, "zimbraDataSourcePassword") {
				continue
			}
			attrs[k] = kv(sanitized(k, v))
		}
		list = append(list, map[string]any{"name": ds.name, "id": ds.id, "type": ds.typ, "_attrs": attrs})
	}
	return map[string]any{"dataSource": list, "_jsns": "urn:zimbraAdmin"}, nil
}
