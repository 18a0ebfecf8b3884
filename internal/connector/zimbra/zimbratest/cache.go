package zimbratest

import (
	"strconv"
	"strings"
	"time"
)

// ldapCacheAccountMaxAge is how long a server keeps an account in its
// cache: LC.ldap_cache_account_maxage, 15 minutes (LC.java lines 458–462
// at zm-mailbox 2b7f9787c69e; LdapCache.java lines 70–75).
const ldapCacheAccountMaxAge = 15 * time.Minute

// cachedAccount is a server's copy of an account: what it acts on when it
// validates a token or lets an IMAP or POP3 command run.
type cachedAccount struct {
	id, name string
	aliases  []string
	status   string
	validity int // zimbraAuthTokenValidityValue, -1 when unset
	loaded   time.Time
	// reloadedFor is the highest token validity value the entry was
	// reloaded for (EntryCacheDataKey.ACCOUNT_VALIDITY_VALUE_HIGHEST_RELOAD,
	// Account.java lines 386–396).
	reloadedFor int
}

// accountCache is one server's account cache (AccountCache.java), indexed
// by id, by name and by alias; lookups by id use the key exactly as
// given, lookups by name lower-case it (lines 147–158).
type accountCache struct {
	byID, byName, byAlias map[string]*cachedAccount
}

func newAccountCache() *accountCache {
	return &accountCache{byID: map[string]*cachedAccount{}, byName: map[string]*cachedAccount{}, byAlias: map[string]*cachedAccount{}}
}

func (c *accountCache) put(e *cachedAccount) {
	c.byID[e.id] = e
	c.byName[strings.ToLower(e.name)] = e
	for _, al := range e.aliases {
		c.byAlias[strings.ToLower(al)] = e
	}
}

// remove is AccountCache.remove (lines 83–100): every index of the entry.
func (c *accountCache) remove(e *cachedAccount) {
	delete(c.byID, e.id)
	delete(c.byName, strings.ToLower(e.name))
	for _, al := range e.aliases {
		delete(c.byAlias, strings.ToLower(al))
	}
}

func (c *accountCache) getByID(key string) *cachedAccount { return c.byID[key] }

func (c *accountCache) getByName(key string) *cachedAccount {
	k := strings.ToLower(key)
	if e := c.byName[k]; e != nil {
		return e
	}
	return c.byAlias[k]
}

func (c *accountCache) clear() { *c = *newAccountCache() }

// snapshot copies what a server caches of an account.
func (d *deployment) snapshot(a *account) *cachedAccount {
	v, err := strconv.ParseInt(firstOf(a.get("zimbraAuthTokenValidityValue")), 10, 32)
	if err != nil {
		v = -1
	}
	return &cachedAccount{id: a.id, name: a.name, aliases: a.get("zimbraMailAlias"), status: firstOf(a.get("zimbraAccountStatus")),
		validity: int(v), loaded: d.opts.Now(), reloadedFor: -1}
}

// home returns the account's home server: the one its zimbraMailHost
// names, else the first.
func (d *deployment) home(a *account) *Server {
	mh := firstOf(a.get("zimbraMailHost"))
	for _, s := range d.servers {
		if strings.EqualFold(s.name, mh) {
			return s
		}
	}
	return d.servers[0]
}

// view returns the account with the given id as server s acts on it. The
// home server sees every change at once: admin requests on the account are
// proxied to it (getProxiedAccountPath in ModifyAccount, SetPassword,
// GetAccount) and it updates the cached entry it writes through. Another
// server uses its cached copy until it is flushed or older than 15
// minutes, then reloads it. nil when there is no such account.
func (s *Server) view(id string) *cachedAccount {
	a := s.lookup("id", id)
	if a == nil {
		if e := s.cache.getByID(id); e != nil {
			s.cache.remove(e)
		}
		return nil
	}
	if s.home(a) == s {
		return s.snapshot(a)
	}
	if e := s.cache.getByID(id); e != nil && s.opts.Now().Sub(e.loaded) < ldapCacheAccountMaxAge {
		return e
	} else if e != nil {
		s.cache.remove(e)
	}
	e := s.snapshot(a)
	s.cache.put(e)
	return e
}

// reload is Provisioning.reload: the server reads the account again.
func (s *Server) reload(id string) *cachedAccount {
	if e := s.cache.getByID(id); e != nil {
		s.cache.remove(e)
	}
	return s.view(id)
}

// SeenAccount returns the account's status and zimbraAuthTokenValidityValue
// (-1 when unset) as this server acts on them: fresh on the account's home
// server, else from its account cache, which it fills on first use. ok is
// false if there is no such account.
func (s *Server) SeenAccount(name string) (status string, validity int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(name)
	if a == nil {
		return "", 0, false
	}
	e := s.view(a.id)
	return e.status, e.validity, true
}
