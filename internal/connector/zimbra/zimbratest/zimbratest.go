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
	"math"
	"net/http"
	"net/http/httptest"
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
	// MissingRights are admin rights the admin account lacks, as for a
	// delegated admin; every other right is held, as a global admin holds
	// them all. The fake honours RightSetAccountPassword.
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
}

// String renders c on one line: "ModifyAccountRequest account=ID
// zimbraAccountStatus=locked".
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
	return b.String()
}

// Server is a Zimbra admin SOAP stand-in.
type Server struct {
	srv    *httptest.Server
	caFile string
	dir    string
	opts   Options

	mu          sync.Mutex
	accounts    []*account // in creation order
	cos         map[string][]string
	tokens      map[string]*token
	calls       []Call
	injected    map[string][]fault
	traceSerial int
}

type account struct {
	name       string
	id         string
	attrs      map[string][]string
	password   string
	history    []historyEntry // zimbraPasswordHistory, kept out of attrs
	identities []*identity
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

// Start starts a server and stops it when tb ends.
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
	s := &Server{opts: opts, tokens: map[string]*token{}, injected: map[string][]fault{}, cos: map[string][]string{}, dir: tb.TempDir()}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	// A client that rejects the certificate is a case tests provoke.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	tb.Cleanup(s.srv.Close)
	s.caFile = filepath.Join(s.dir, "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	if err := os.WriteFile(s.caFile, ca, 0o600); err != nil {
		tb.Fatalf("zimbratest: writing CA file: %v", err)
	}
	return s
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
// zimbraId. zimbraAccountStatus defaults to active.
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

// FailNext makes the next request called request (after its token is
// checked) fail with a fault of code and reason.
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
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil || len(data) > maxRequestBytes {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
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
	resp, f := s.dispatch(name, el, &req)
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
func (s *Server) dispatch(name string, el json.RawMessage, req *request) (map[string]any, *fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	call := Call{Request: name}
	resp, f := s.handle(name, el, req, &call)
	if f != nil {
		call.Fault = f.code
	}
	s.calls = append(s.calls, call)
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
		"AuthRequest":          {"urn:zimbraAdmin", s.auth},
		"GetAccountRequest":    {"urn:zimbraAdmin", s.getAccount},
		"ModifyAccountRequest": {"urn:zimbraAdmin", s.modifyAccount},
		"SetPasswordRequest":   {"urn:zimbraAdmin", s.setPassword},
		"FlushCacheRequest":    {"urn:zimbraAdmin", s.flushCache},
		"GetIdentitiesRequest": {"urn:zimbraAccount", s.getIdentities},
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
	if all := str(cache.AllServers); all != "" {
		call.Args = append(call.Args, "allServers="+all)
	}
	for _, e := range cache.Entry {
		by, key := selectorOf(e)
		if call.Account == "" {
			call.Account = key
		}
		call.Args = append(call.Args, "entry="+by+":"+key)
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
	return map[string]any{"_jsns": "urn:zimbraAdmin"}, nil
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
	// LdapProvisioning.getAllIdentities: the default identity (the
	// account's own attributes) first, then the LDAP children.
	defAttrs := map[string]any{}
	for k, v := range a.attrs {
		if strings.HasPrefix(k, "zimbraPrefFrom") || strings.HasPrefix(k, "zimbraPrefReplyTo") {
			defAttrs[k] = kv(v)
		}
	}
	defName := firstOf(a.get("zimbraPrefIdentityName"))
	if defName == "" {
		defName = "DEFAULT"
	}
	defAttrs["zimbraPrefIdentityName"] = defName
	defAttrs["zimbraPrefIdentityId"] = a.id
	list := []any{map[string]any{"name": defName, "id": a.id, "_attrs": defAttrs}}
	for _, id := range a.identities {
		attrs := map[string]any{}
		for k, v := range id.attrs {
			attrs[k] = kv(v)
		}
		list = append(list, map[string]any{"name": id.name, "id": id.id, "_attrs": attrs})
	}
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
