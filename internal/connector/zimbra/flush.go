package zimbra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// adminServiceURI is the admin SOAP path Zimbra puts in another server's
// URL (AdminConstants.ADMIN_SERVICE_URI, line 27 at zm-mailbox
// 2b7f9787c69e), after LC.zimbra_admin_service_scheme, "https://".
const adminServiceURI = "/service/admin/soap/"

// flushParallel bounds the servers flushed at once: a few at a time
// keeps a deployment with a dead server from waiting for each timeout in
// turn, without opening a connection to every server of a large one.
const flushParallel = 8

// ServerFlush is the outcome of flushing the account from one mailbox
// server's cache.
type ServerFlush struct {
	// Server is the server's name (its cn), URL its admin endpoint.
	Server, URL string
	// Err is why the flush failed; nil when the server answered.
	Err error
}

// FlushReport says which servers' account caches FlushAccountCache
// flushed. Zimbra's FlushCache with allServers=1 only logs the failures
// of other servers and answers success regardless (FlushCache.java lines
// 227–252 at zm-mailbox 2b7f9787c69e), so the account is flushed server
// by server, by its id, and each server's answer is kept.
type FlushReport struct {
	// Servers are the mailbox servers GetAllServers listed, in its order,
	// each with its outcome.
	Servers []ServerFlush
	// ListErr is why the server list could not be used (GetAllServers
	// failed or listed no server); nil when it was.
	ListErr error
	// AllServers reports that, because the server list could not be used
	// or no server could be flushed, FlushCacheRequest allServers=1 was
	// sent to the configured endpoint instead; AllServersErr is its error.
	// Its success says nothing about the other servers.
	AllServers    bool
	AllServersErr error
}

// Failed returns the names of the servers whose flush failed.
func (r *FlushReport) Failed() []string {
	var out []string
	for _, s := range r.Servers {
		if s.Err != nil {
			out = append(out, s.Server)
		}
	}
	return out
}

// String describes the report in a sentence or two, e.g. "caches flushed
// by id on mbox1 (ok), mbox2 (failed: …)".
func (r *FlushReport) String() string {
	var parts []string
	if len(r.Servers) > 0 {
		srv := make([]string, len(r.Servers))
		for i, s := range r.Servers {
			if s.Err != nil {
				srv[i] = s.Server + " (failed: " + s.Err.Error() + ")"
			} else {
				srv[i] = s.Server + " (ok)"
			}
		}
		parts = append(parts, "caches flushed by id on "+strings.Join(srv, ", "))
	}
	if r.ListErr != nil {
		parts = append(parts, "the mailbox servers could not be listed ("+r.ListErr.Error()+")")
	}
	if r.AllServers {
		if r.AllServersErr != nil {
			parts = append(parts, "FlushCache with allServers=1 failed too: "+r.AllServersErr.Error())
		} else {
			parts = append(parts, "cache flushed with allServers=1 instead (Zimbra does not report failures on the other servers)")
		}
	}
	if len(parts) == 0 {
		return "no cache flushed"
	}
	return strings.Join(parts, "; ")
}

// mailboxServer is a mailbox server as GetAllServers describes it.
type mailboxServer struct {
	name, url string
	err       error // why it has no usable admin endpoint
}

// mailboxServers lists the mailbox servers and their admin endpoints:
// GetAllServersRequest service="mailbox" (GetAllServers.java lines 44–71),
// each URL built as URLUtil.getAdminURL does from zimbraServiceHostname
// and zimbraAdminPort (URLUtil.java lines 70–76, 115–123).
func (c *Client) mailboxServers(ctx context.Context) ([]mailboxServer, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GetAllServersRequest", getAllServersRequest{JSNS: nsAdmin, Service: "mailbox"}, "", "", "", &raw); err != nil {
		return nil, fmt.Errorf("zimbra: listing mailbox servers: %w", err)
	}
	list, err := decodeServers(raw)
	if err != nil {
		return nil, fmt.Errorf("zimbra: listing mailbox servers: %w", err)
	}
	out := make([]mailboxServer, 0, len(list))
	for _, s := range list {
		host, port := s.first("zimbraServiceHostname"), s.first("zimbraAdminPort")
		ms := mailboxServer{name: s.Name}
		if ms.name == "" {
			ms.name = host
		}
		if p, err := strconv.Atoi(port); host == "" || err != nil || p <= 0 || p > 65535 {
			ms.err = fmt.Errorf("no admin endpoint (zimbraServiceHostname %q, zimbraAdminPort %q)", host, port)
		} else {
			ms.url = "https://" + net.JoinHostPort(host, port) + adminServiceURI
		}
		out = append(out, ms)
	}
	return out, nil
}

// flushRequest sends FlushCacheRequest type=account for the account id
// to url, allServers as asked.
func (c *Client) flushRequest(ctx context.Context, url, name, id string, allServers bool) error {
	all := "0"
	if allServers {
		all = "1"
	}
	req := flushCacheRequest{JSNS: nsAdmin, Cache: cacheSelector{Type: "account", AllServers: all, Entry: []selector{{By: "id", Content: id}}}}
	return c.callAt(ctx, url, "FlushCacheRequest", req, "", name, "", nil)
}

// FlushAccountCache drops the account from the account cache of every
// mailbox server, so that none keeps acting on a copy up to 15 minutes
// old (ldap_cache_account_maxage): a lock, a raised token validity value
// and a new password then take effect everywhere at once. It flushes by
// zimbraId, the key a server's cache finds the account by exactly
// (LdapProvisioning.flushCache lines 9043–9075, AccountCache lines
// 83–158). It returns an error only when the account cannot be read; the
// report says which servers were flushed.
func (c *Client) FlushAccountCache(ctx context.Context, name string) (*FlushReport, error) {
	a, err := c.accountID(ctx, name)
	if err != nil {
		return nil, err
	}
	return c.flushByID(ctx, name, a.ID), nil
}

func (c *Client) flushByID(ctx context.Context, name, id string) *FlushReport {
	r := &FlushReport{}
	servers, err := c.mailboxServers(ctx)
	if err == nil && len(servers) == 0 {
		err = errors.New("GetAllServers listed none; the admin may lack the listServer right")
	}
	if err != nil {
		r.ListErr = err
	} else {
		r.Servers = make([]ServerFlush, len(servers))
		var wg sync.WaitGroup
		sem := make(chan struct{}, flushParallel)
		for i, s := range servers {
			r.Servers[i] = ServerFlush{Server: s.name, URL: s.url, Err: s.err}
			if s.err != nil {
				continue
			}
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := c.flushRequest(ctx, s.url, name, id, false); err != nil {
					r.Servers[i].Err = err
				}
			})
		}
		wg.Wait()
	}
	if ctx.Err() == nil && (r.ListErr != nil || len(r.Failed()) == len(r.Servers)) {
		r.AllServers = true
		r.AllServersErr = c.flushRequest(ctx, c.url, name, id, true)
	}
	return r
}

// Ping shows that the admin service answers with mailbrake's credentials:
// one authenticated GetAllServersRequest (the request the cache flush
// makes), read-only.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.mailboxServers(ctx)
	return err
}
