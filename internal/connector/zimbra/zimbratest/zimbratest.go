package zimbratest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Path is where Zimbra serves the admin SOAP API.
const Path = "/service/admin/soap"

// DefaultTokenLifetime is zimbraAdminAuthTokenLifetime's default, 12h.
const DefaultTokenLifetime = 12 * time.Hour

// maxRequestBytes bounds a request body; ours are a few hundred bytes.
const maxRequestBytes = 1 << 20

// Options configure a Server.
type Options struct {
	// AdminUser and AdminPassword are the credentials AuthRequest
	// accepts; empty means "admin@example.test" and "admin-secret".
	AdminUser     string
	AdminPassword string
	// TokenLifetime is the lifetime of issued tokens; 0 means
	// DefaultTokenLifetime.
	TokenLifetime time.Duration
	// Now is the server's clock (token expiry, zimbraPasswordModifiedTime);
	// nil means time.Now.
	Now func() time.Time
	// ServerName is the name of the server Start returns;
	// DefaultServerName when empty. Peers are the names of the other
	// mailbox servers of the deployment, each started with its own
	// endpoint (see Peer).
	ServerName string
	Peers      []string
	// InvalidLoginFilterMaxFailedLogin is each server's
	// zimbraInvalidLoginFilterMaxFailedLogin: past this many failed
	// AuthRequests from one client IP, that IP gets HTTP 503 for 15 to 20
	// minutes (filter.go). 0 means Zimbra's default, 10; a negative value
	// turns the filter off.
	InvalidLoginFilterMaxFailedLogin int
	// MissingRights are admin rights the admin account lacks, as for a
	// delegated admin; every other right is held, as a global admin holds
	// them all. The fake honours RightSetAccountPassword,
	// RightListServer, RightAdminLoginAs and RightViewGrants.
	MissingRights []string
	// DeniedAttrs are attributes the admin has no right to read: GetAccount
	// lists each value of them as {"n":name,"pd":true} without the value
	// (admin ToXML.encodeAttr, lines 173–184 at zm-mailbox 2b7f9787c69e).
	DeniedAttrs []string
	// UnknownAttrs are attributes this server's version does not have
	// (e.g. AttrsSince889 to play an 8.8.8 server): GetAccount naming one
	// in attrs= fails with service.INVALID_REQUEST "requested attribute X
	// is not on account" (AdminDocumentHandler.getReqAttrs, lines
	// 700–723), and a GetAccount without attrs= never shows them.
	UnknownAttrs []string
}

// AttrsSince889 are the account attributes Zimbra 8.8.9 added that
// mailbrake reads (zimbra-attrs.xml lines 9495–9501 at zm-mailbox
// 2b7f9787c69e, since="8.8.9"): Options.UnknownAttrs plays an 8.8.8 server
// with them.
var AttrsSince889 = []string{"zimbraPrefPasswordRecoveryAddress", "zimbraPrefPasswordRecoveryAddressStatus"}

// Admin rights (zimbra-rights.xml) the fake can withhold with
// Options.MissingRights.
const (
	// RightSetAccountPassword: without it (and with changeAccountPassword,
	// which the fake always grants) SetPassword enforces the account's
	// password policy (SetPassword.checkAccountRights, SetPassword.java
	// lines 120–141 at zm-mailbox 2b7f9787c69e).
	RightSetAccountPassword = "setAccountPassword"
	// RightListServer: without it GetAllServers lists no server
	// (GetAllServers.java line 66).
	RightListServer = "listServer"
	// RightAdminLoginAs: without it GetShareInfo and GetDataSources
	// (GetShareInfo.java lines 82–83, GetDataSources.java lines 72–73)
	// and account-namespace requests on the account's behalf
	// (ZimbraSoapContext.validateDelegatedAccess lines 536–647, via
	// ACLAccessManager.canAccessAccount lines 89–106) fail with
	// service.PERM_DENIED.
	RightAdminLoginAs = "adminLoginAs"
	// RightViewGrants: without it GetGrants fails (GetGrants.java line 61).
	RightViewGrants = "viewGrants"
)

// Call is one request the server received.
type Call struct {
	// Request is the request element, e.g. "GetAccountRequest".
	Request string
	// Account is the account the request names, by name or id as sent.
	Account string
	// Target is the header's target account (requests sent on an
	// account's behalf).
	Target string
	// Args are the other key fields as "key=value", in request order.
	Args []string
	// Password reports that the request carried a password; its value is
	// never recorded.
	Password bool
	// Fault is the fault code the server answered with, "" on success.
	Fault string
	// Server is the name of the server that received the request.
	Server string
	// HTTPStatus is set when the request got an HTTP error instead of a
	// SOAP answer (503 from ZimbraInvalidLoginFilter).
	HTTPStatus int
	// primary is whether that is the server Start returned.
	primary bool
}

// String renders c on one line: "ModifyAccountRequest account=ID
// zimbraAccountStatus=locked", followed by " server=NAME" for a request
// another server than the one Start returned received.
func (c Call) String() string {
	var b strings.Builder
	b.WriteString(c.Request)
	if c.Account != "" {
		b.WriteString(" account=" + c.Account)
	}
	if c.Target != "" {
		b.WriteString(" target=" + c.Target)
	}
	for _, a := range c.Args {
		b.WriteString(" " + a)
	}
	if c.Password {
		b.WriteString(" password=(set)")
	}
	if c.Fault != "" {
		b.WriteString(" fault=" + c.Fault)
	}
	if c.HTTPStatus != 0 {
		b.WriteString(" http=" + strconv.Itoa(c.HTTPStatus))
	}
	if !c.primary && c.Server != "" {
		b.WriteString(" server=" + c.Server)
	}
	return b.String()
}

// Server is one mailbox server (mailboxd) of a fake Zimbra deployment,
// with its own admin SOAP endpoint, its own account cache and its own
// injected faults. The servers of a deployment share the directory
// (accounts, COS, global config), the admin tokens (Zimbra tokens are
// valid on every server) and one call log. Start returns the first
// server; Peer and Servers return the others.
type Server struct {
	*deployment
	name     string
	id       string
	srv      *httptest.Server
	injected map[string][]fault
	cache    *accountCache
	imap     []*imapSession
	filter   loginFilter
	stopped  bool
}

// deployment is what the servers of one fake Zimbra share. One mutex
// guards it and every server's own state.
type deployment struct {
	caFile string
	dir    string
	opts   Options

	mu          sync.Mutex
	servers     []*Server // the first is the one Start returned
	accounts    []*account
	cos         map[string][]string
	config      map[string][]string // the global config
	tokens      map[string]*token
	userTokens  map[string]*userToken
	calls       []Call
	traceSerial int
}

type account struct {
	name        string
	id          string
	attrs       map[string][]string
	password    string
	history     []historyEntry // zimbraPasswordHistory, kept out of attrs
	identities  []*identity
	grants      []grant
	shares      []share
	dataSources []*dataSource
}

type identity struct {
	name  string
	id    string
	attrs map[string][]string
}

type token struct {
	expires time.Time
	revoked bool
}

// fault is a ServiceException: code, message, whether it is the sender's
// fault (soap:Sender) or the server's (soap:Receiver), and its externally
// visible arguments.
type fault struct {
	code   string
	reason string
	sender bool
	args   []faultArg
}

// faultArg is a ServiceException.Argument: name, type (NUM, STR…), value.
type faultArg struct{ name, typ, value string }

// Error implements error.
func (f *fault) Error() string { return f.code + ": " + f.reason }

// DefaultServerName is the name (cn) of the server Start returns when
// Options.ServerName is empty.
const DefaultServerName = "mbox1.example.test"

// Start starts a fake Zimbra deployment, its first mailbox server and
// one more per Options.Peers, and stops them when tb ends. It returns the
// first server.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.AdminUser == "" {
		opts.AdminUser = "admin@example.test"
	}
	if opts.AdminPassword == "" {
		opts.AdminPassword = "admin-secret"
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ServerName == "" {
		opts.ServerName = DefaultServerName
	}
	d := &deployment{opts: opts, tokens: map[string]*token{}, userTokens: map[string]*userToken{}, cos: map[string][]string{}, dir: tb.TempDir(),
		config: map[string][]string{"zimbraAuthTokenValidityValueEnabled": {"TRUE"}}}
	for _, name := range append([]string{opts.ServerName}, opts.Peers...) {
		s := &Server{deployment: d, name: name, id: newUUID(), injected: map[string][]fault{}, cache: newAccountCache(), filter: newLoginFilter(opts.Now())}
		s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
		// A client that rejects the certificate is a case tests provoke.
		s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.srv.StartTLS() // every server presents httptest's one certificate
		tb.Cleanup(s.srv.Close)
		d.servers = append(d.servers, s)
	}
	d.caFile = filepath.Join(d.dir, "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.servers[0].srv.Certificate().Raw})
	if err := os.WriteFile(d.caFile, ca, 0o600); err != nil {
		tb.Fatalf("zimbratest: writing CA file: %v", err)
	}
	return d.servers[0]
}

// Name returns the server's name (its cn, what GetAllServers calls it).
func (s *Server) Name() string { return s.name }

// ldapAttrs are the server's entry as GetAllServers shows it: its
// endpoint as URLUtil.getAdminURL builds it (zimbraServiceHostname and
// zimbraAdminPort, lines 70–76 at zm-mailbox 2b7f9787c69e) and the
// services it runs.
func (s *Server) ldapAttrs() map[string][]string {
	u, _ := url.Parse(s.srv.URL)
	return map[string][]string{
		"cn":                    {s.name},
		"zimbraId":              {s.id},
		"zimbraServiceHostname": {u.Hostname()},
		"zimbraAdminPort":       {u.Port()},
		"zimbraServiceEnabled":  {"mailbox", "service", "zimbra", "zimbraAdmin"},
	}
}

// Servers returns every mailbox server of the deployment, the one Start
// returned first.
func (s *Server) Servers() []*Server { return slices.Clone(s.servers) }

// Peer returns the server called name, nil if there is none.
func (s *Server) Peer(name string) *Server {
	for _, p := range s.servers {
		if p.name == name {
			return p
		}
	}
	return nil
}

// Stop shuts the server down: connections to it are refused from now on,
// as to a mailbox server that is down. FlushCacheRequest allServers=1 on
// another server then skips it, as Zimbra does (it only logs).
func (s *Server) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.srv.Close()
}

// URL returns the admin SOAP endpoint, https://127.0.0.1:PORT/service/admin/soap.
func (s *Server) URL() string { return s.srv.URL + Path }

// BaseURL returns the server's root URL, without Path.
func (s *Server) BaseURL() string { return s.srv.URL }

// Client returns an HTTP client that trusts the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// CAFile returns the path of a PEM file holding the certificate the
// server presents, for the client's CA file.
func (s *Server) CAFile() string { return s.caFile }

// AdminUser returns the admin account name AuthRequest accepts.
func (s *Server) AdminUser() string { return s.opts.AdminUser }

// AdminPasswordFile writes the admin password, newline-terminated as an
// editor would, to a file and returns its path.
func (s *Server) AdminPasswordFile(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "zimbra-admin-password")
	if err := os.WriteFile(p, []byte(s.opts.AdminPassword+"\n"), 0o600); err != nil {
		tb.Fatalf("zimbratest: writing password file: %v", err)
	}
	return p
}

// AddAccount creates an account with attrs (copied) and returns its
// zimbraId. zimbraAccountStatus defaults to active, zimbraMailHost (its
// home server) to the server Start returned.
func (s *Server) AddAccount(name string, attrs map[string][]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &account{name: name, id: newUUID(), attrs: map[string][]string{}}
	for k, v := range attrs {
		a.attrs[k] = slices.Clone(v)
	}
	a.attrs["zimbraId"] = []string{a.id}
	if len(a.get("zimbraAccountStatus")) == 0 {
		a.attrs["zimbraAccountStatus"] = []string{"active"}
	}
	if len(a.get("zimbraMailHost")) == 0 {
		a.attrs["zimbraMailHost"] = []string{s.servers[0].name}
	}
	s.accounts = append(s.accounts, a)
	return a.id
}

// AddIdentity adds a non-default identity (an LDAP child of the account)
// and returns its id. It reports false if there is no such account.
func (s *Server) AddIdentity(accountName, name string, attrs map[string][]string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(accountName)
	if a == nil {
		return "", false
	}
	id := &identity{name: name, id: newUUID(), attrs: map[string][]string{}}
	for k, v := range attrs {
		id.attrs[k] = slices.Clone(v)
	}
	id.attrs["zimbraPrefIdentityName"] = []string{name}
	id.attrs["zimbraPrefIdentityId"] = []string{id.id}
	a.identities = append(a.identities, id)
	return id.id, true
}

// Account returns a copy of the account's attributes and its id.
func (s *Server) Account(name string) (id string, attrs map[string][]string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(name)
	if a == nil {
		return "", nil, false
	}
	attrs = map[string][]string{}
	for k, v := range a.attrs {
		attrs[k] = slices.Clone(v)
	}
	return a.id, attrs, true
}

// Attr returns the values of one attribute of an account.
func (s *Server) Attr(name, attr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.byName(name); a != nil {
		return slices.Clone(a.get(attr))
	}
	return nil
}

// SetPref sets one of the account's own attributes as the user's
// ModifyPrefsRequest does (a user, or an attacker in the user's session,
// may set any zimbraPref* attribute, zimbraPrefPasswordRecoveryAddress and
// its status included: zm-mailbox ModifyPrefs.java, commit 2b7f9787c69e),
// without a request. It reports false if there is no such account.
func (s *Server) SetPref(name, attr, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(name)
	if a == nil {
		return false
	}
	a.set(attr, value)
	return true
}

// SetPassword sets the account's password as a global admin's
// SetPasswordRequest does (the policy not enforced; history, must-change,
// validity value and modified time updated), without a request. It
// reports false if there is no such account.
func (s *Server) SetPassword(name, pw string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(name)
	if a == nil {
		return false
	}
	_, _ = s.setAccountPassword(a, pw, false)
	return true
}

// CheckPassword reports whether pw is the password last set for the
// account (by SetPasswordRequest).
func (s *Server) CheckPassword(name, pw string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(name)
	return a != nil && a.password != "" && a.password == pw
}

// SetCOS sets the attributes of the class of service every account
// belongs to (copied): an account without its own value of an attribute
// inherits the COS's, as GetAccount shows with applyCos (the default) and
// the password policy reads it (Entry.getAttr with defaults).
func (s *Server) SetCOS(attrs map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cos = map[string][]string{}
	for k, v := range attrs {
		s.cos[k] = slices.Clone(v)
	}
}

// ExpireTokens expires every token issued so far: the next request that
// presents one fails with service.AUTH_EXPIRED.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.revoked = true
	}
}

// FailNext makes the next request called request that this server
// receives (after its token is checked) fail with a fault of code and
// reason.
func (s *Server) FailNext(request, code, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injected[request] = append(s.injected[request], fault{code: code, reason: reason, sender: true})
}

// Calls returns the requests received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.Args = slices.Clone(c.Args)
		out[i] = c
	}
	return out
}

// CallStrings returns Calls rendered with Call.String.
func (s *Server) CallStrings() []string {
	var out []string
	for _, c := range s.Calls() {
		out = append(out, c.String())
	}
	return out
}

// ResetCalls forgets the calls recorded so far.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// --- HTTP -----------------------------------------------------------------

// request is a JSON SOAP request as the connector sends it.
type request struct {
	Header struct {
		Context struct {
			AuthToken json.RawMessage `json:"authToken"`
			Account   json.RawMessage `json:"account"`
		} `json:"context"`
	} `json:"Header"`
	Body map[string]json.RawMessage `json:"Body"`
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil || len(data) > maxRequestBytes {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	// ZimbraInvalidLoginFilter is mapped to /*: it comes first.
	ip := clientIP(r)
	if s.refuseSuspended(w, ip, data) {
		return
	}
	// The admin servlet is mapped to /service/admin/soap/* (web.xml); the
	// URL Zimbra builds for a server ends in a slash (URLUtil.getAdminURL
	// with AdminConstants.ADMIN_SERVICE_URI).
	if r.URL.Path != Path && r.URL.Path != Path+"/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// SoapServlet: a body that starts with '{' is the JSON protocol.
	var req request
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) || json.Unmarshal(data, &req) != nil {
		s.writeFault(w, &fault{code: "service.PARSE_ERROR", reason: "parse error: not a JSON SOAP request", sender: true})
		return
	}
	if len(req.Body) != 1 {
		s.writeFault(w, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: Body must hold one request", sender: true})
		return
	}
	var name string
	var el json.RawMessage
	for name, el = range req.Body {
	}
	resp, f := s.dispatch(name, el, &req, ip)
	if f != nil {
		s.writeFault(w, f)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{
		"Header": map[string]any{"context": map[string]any{"_jsns": "urn:zimbra"}},
		"Body":   map[string]any{strings.TrimSuffix(name, "Request") + "Response": resp},
		"_jsns":  "urn:zimbraSoap",
	})
}

// dispatch runs one request and records it.
func (s *Server) dispatch(name string, el json.RawMessage, req *request, ip string) (map[string]any, *fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	call := Call{Request: name, Server: s.name, primary: s == s.servers[0]}
	// Reserve the request's place: a handler may record the requests it
	// sends on to other servers, which come after it.
	i := len(s.calls)
	s.calls = append(s.calls, Call{})
	resp, f := s.handle(name, el, req, &call)
	if f != nil {
		call.Fault = f.code
		if f.code == "account.AUTH_FAILED" { // an AuthFailedServiceException
			s.loginFailed(ip)
		}
	}
	s.calls[i] = call
	return resp, f
}

func (s *Server) handle(name string, el json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(el, &fields); err != nil {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: " + name + " is not an element", sender: true}
	}
	ns := str(fields["_jsns"])
	handlers := map[string]struct {
		ns string
		fn func(map[string]json.RawMessage, *request, *Call) (map[string]any, *fault)
	}{
		"AuthRequest":           {"urn:zimbraAdmin", s.auth},
		"GetAccountRequest":     {"urn:zimbraAdmin", s.getAccount},
		"ModifyAccountRequest":  {"urn:zimbraAdmin", s.modifyAccount},
		"SetPasswordRequest":    {"urn:zimbraAdmin", s.setPassword},
		"FlushCacheRequest":     {"urn:zimbraAdmin", s.flushCache},
		"GetAllServersRequest":  {"urn:zimbraAdmin", s.getAllServers},
		"GetConfigRequest":      {"urn:zimbraAdmin", s.getConfig},
		"GetGrantsRequest":      {"urn:zimbraAdmin", s.getGrants},
		"GetShareInfoRequest":   {"urn:zimbraAdmin", s.getShareInfo},
		"GetDataSourcesRequest": {"urn:zimbraAdmin", s.getDataSources},
		"GetIdentitiesRequest":  {"urn:zimbraAccount", s.getIdentities},
	}
	h, ok := handlers[name]
	if !ok || h.ns != ns {
		// SoapEngine dispatches on the qualified name.
		return nil, &fault{code: "service.UNKNOWN_DOCUMENT", reason: "unknown document: " + name, sender: true}
	}
	return h.fn(fields, req, call)
}

// gate runs after a handler has recorded the request's key fields and
// before it acts: it checks the token (not for AuthRequest) and fires a
// fault queued by FailNext.
func (s *Server) gate(call *Call, req *request) *fault {
	if call.Request != "AuthRequest" {
		if f := s.checkToken(str(req.Header.Context.AuthToken)); f != nil {
			return f
		}
	}
	if q := s.injected[call.Request]; len(q) > 0 {
		s.injected[call.Request] = q[1:]
		return &q[0]
	}
	return nil
}

// checkToken: ZimbraSoapContext rejects a missing or undecodable token
// with AUTH_REQUIRED and an expired one with AUTH_EXPIRED.
func (s *Server) checkToken(tok string) *fault {
	t, ok := s.tokens[tok]
	if tok == "" || !ok {
		return &fault{code: "service.AUTH_REQUIRED", reason: "no valid authtoken present", sender: true}
	}
	if t.revoked || !s.opts.Now().Before(t.expires) {
		return &fault{code: "service.AUTH_EXPIRED", reason: "auth credentials have expired"}
	}
	return nil
}

func (s *Server) writeFault(w http.ResponseWriter, f *fault) {
	s.traceSerial++
	codeValue := "soap:Receiver"
	if f.sender {
		codeValue = "soap:Sender"
	}
	errEl := map[string]any{
		"Code":  f.code,
		"Trace": fmt.Sprintf("qtp-zimbratest-%d:%d", s.traceSerial, s.opts.Now().UnixMilli()),
		"_jsns": "urn:zimbra",
	}
	// Soap12Protocol.soapFault lines 120–127 (zm-mailbox 2b7f9787c69e):
	// one <a n t>value</a> per argument.
	if len(f.args) > 0 {
		var args []any
		for _, a := range f.args {
			args = append(args, map[string]any{"n": a.name, "t": a.typ, "_content": a.value})
		}
		errEl["a"] = args
	}
	// Soap12Protocol in JSON form; HTTP 500 (SoapServlet.sendResponse
	// lines 358–361).
	s.writeJSON(w, http.StatusInternalServerError, map[string]any{
		"Header": map[string]any{"context": map[string]any{"_jsns": "urn:zimbra"}},
		"Body": map[string]any{"Fault": map[string]any{
			"Code":   map[string]any{"Value": codeValue},
			"Reason": map[string]any{"Text": f.reason},
			"Detail": map[string]any{"Error": errEl},
		}},
		"_jsns": "urn:zimbraSoap",
	})
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// --- JSON helpers ---------------------------------------------------------

// str returns an element's or attribute's text: "x", {"_content":"x"} or
// [{"_content":"x"}] (element text and attributes are interchangeable in
// Zimbra's Element.getAttribute).
func str(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	case '{':
		var o map[string]json.RawMessage
		if json.Unmarshal(raw, &o) != nil {
			return ""
		}
		return str(o["_content"])
	case '[':
		var l []json.RawMessage
		if json.Unmarshal(raw, &l) != nil || len(l) == 0 {
			return ""
		}
		return str(l[0])
	case 'n':
		return ""
	}
	return string(raw)
}

// selectorOf reads {"by":"name","_content":"u@dom"}.
func selectorOf(raw json.RawMessage) (by, key string) {
	var o map[string]json.RawMessage
	if json.Unmarshal(raw, &o) != nil {
		return "", str(raw)
	}
	return str(o["by"]), str(o["_content"])
}

// attrList reads [{"n":"name","_content":"value"}, ...].
func attrList(raw json.RawMessage) ([][2]string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var l []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &l); err != nil {
		var one map[string]json.RawMessage
		if json.Unmarshal(raw, &one) != nil {
			return nil, errors.New("a: not a list of attributes")
		}
		l = append(l, one)
	}
	out := make([][2]string, 0, len(l))
	for _, o := range l {
		n := str(o["n"])
		if n == "" {
			return out, errors.New("a: attribute without n")
		}
		out = append(out, [2]string{n, str(o["_content"])})
	}
	return out, nil
}

func firstOf(v []string) string {
	if len(v) > 0 {
		return v[0]
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
