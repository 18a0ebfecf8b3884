package zimbratest

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// post sends body and returns the HTTP status and the decoded response.
func post(t *testing.T, s *Server, body string) (int, map[string]any) {
	t.Helper()
	resp, err := s.Client().Post(s.URL(), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("response %q: %v", data, err)
	}
	return resp.StatusCode, out
}

func faultCode(m map[string]any) string {
	f, _ := m["Body"].(map[string]any)["Fault"].(map[string]any)
	if f == nil {
		return ""
	}
	return f["Detail"].(map[string]any)["Error"].(map[string]any)["Code"].(string)
}

func login(t *testing.T, s *Server) string {
	t.Helper()
	status, m := post(t, s, `{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@example.test","password":"admin-secret"}}}`)
	if status != 200 {
		t.Fatalf("auth: %d %v", status, m)
	}
	ar := m["Body"].(map[string]any)["AuthResponse"].(map[string]any)
	if ar["lifetime"].(float64) != float64(DefaultTokenLifetime.Milliseconds()) {
		t.Fatalf("lifetime %v", ar["lifetime"])
	}
	return ar["authToken"].([]any)[0].(map[string]any)["_content"].(string)
}

func withToken(tok, body string) string {
	return `{"Header":{"context":{"_jsns":"urn:zimbra","authToken":{"_content":"` + tok + `"}}},"Body":` + body + `}`
}

func TestFaults(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := Start(t, Options{Now: func() time.Time { return now }})
	s.AddAccount("u@example.test", nil)
	tok := login(t, s)
	for _, tc := range []struct{ name, body, code string }{
		{"no token", `{"Body":{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","account":{"by":"name","_content":"u@example.test"}}}}`, "service.AUTH_REQUIRED"},
		{"bad token", withToken("0_forged", `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","account":{"by":"name","_content":"u@example.test"}}}`), "service.AUTH_REQUIRED"},
		{"unknown request", withToken(tok, `{"DeleteAccountRequest":{"_jsns":"urn:zimbraAdmin","id":"x"}}`), "service.UNKNOWN_DOCUMENT"},
		{"wrong namespace", withToken(tok, `{"GetAccountRequest":{"_jsns":"urn:zimbraAccount","account":{"by":"name","_content":"u@example.test"}}}`), "service.UNKNOWN_DOCUMENT"},
		{"no such account", withToken(tok, `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","account":{"by":"name","_content":"x@example.test"}}}`), "account.NO_SUCH_ACCOUNT"},
		{"bad admin password", `{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@example.test","password":"guess"}}}`, "account.AUTH_FAILED"},
		{"bad status", withToken(tok, `{"ModifyAccountRequest":{"_jsns":"urn:zimbraAdmin","id":"x","a":[{"n":"zimbraAccountStatus","_content":"gone"}]}}`), "account.NO_SUCH_ACCOUNT"},
		{"not json", `<soap:Envelope/>`, "service.PARSE_ERROR"},
	} {
		status, m := post(t, s, tc.body)
		if status != 500 || faultCode(m) != tc.code {
			t.Errorf("%s: %d %s, want 500 %s", tc.name, status, faultCode(m), tc.code)
		}
	}
	now = now.Add(DefaultTokenLifetime)
	if _, m := post(t, s, withToken(tok, `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","account":{"by":"name","_content":"u@example.test"}}}`)); faultCode(m) != "service.AUTH_EXPIRED" {
		t.Errorf("token past its lifetime: %s", faultCode(m))
	}
	for _, c := range s.Calls() {
		if strings.Contains(c.String(), "guess") || strings.Contains(c.String(), "admin-secret") {
			t.Fatalf("password in call log: %s", c)
		}
	}
	resp, err := s.Client().Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestModifyAccountSemantics(t *testing.T) {
	s := Start(t, Options{})
	id := s.AddAccount("u@example.test", map[string][]string{"zimbraMailForwardingAddress": {"a@x", "b@x"}, "description": {"d"}})
	tok := login(t, s)
	mod := func(a string) string {
		_, m := post(t, s, withToken(tok, `{"ModifyAccountRequest":{"_jsns":"urn:zimbraAdmin","id":"`+id+`","a":`+a+`}}`))
		return faultCode(m)
	}
	if c := mod(`[{"n":"-zimbraMailForwardingAddress","_content":"a@x"},{"n":"+zimbraMailForwardingAddress","_content":"c@x"},{"n":"description","_content":""}]`); c != "" {
		t.Fatal(c)
	}
	if got := s.Attr("u@example.test", "zimbraMailForwardingAddress"); !slices.Equal(got, []string{"b@x", "c@x"}) {
		t.Fatalf("+/-: %q", got)
	}
	if s.Attr("u@example.test", "description") != nil {
		t.Fatal("empty value did not remove the attribute")
	}
	if c := mod(`[{"n":"zimbraMailForwardingAddress","_content":"z@x"},{"n":"zimbraMailForwardingAddress","_content":"y@x"}]`); c != "" {
		t.Fatal(c)
	}
	if got := s.Attr("u@example.test", "zimbraMailForwardingAddress"); !slices.Equal(got, []string{"z@x", "y@x"}) {
		t.Fatalf("replace: %q", got)
	}
	for _, bad := range []string{
		`[{"n":"zimbraAccountStatus","_content":"gone"}]`,
		`[{"n":"zimbraAuthTokenValidityValue","_content":"-1"}]`,
		`[{"n":"zimbraPasswordMustChange","_content":"yes"}]`,
	} {
		if c := mod(bad); c != "account.INVALID_ATTR_VALUE" {
			t.Errorf("%s: %q", bad, c)
		}
	}
	if got := s.Attr("u@example.test", "zimbraAccountStatus"); !slices.Equal(got, []string{"active"}) {
		t.Fatalf("a rejected modify changed the account: %q", got)
	}
}

// TestSetPasswordFault checks the wire form of an enforced policy
// violation: HTTP 500, account.INVALID_PASSWORD, the reason
// "invalid password: too short" and the argument
// {"n":"zimbraPasswordMinLength","t":"NUM","_content":"8"}
// (AccountServiceException lines 202–208, Soap12Protocol.soapFault lines
// 120–127 at zm-mailbox 2b7f9787c69e).
func TestSetPasswordFault(t *testing.T) {
	s := Start(t, Options{MissingRights: []string{RightSetAccountPassword}})
	s.SetCOS(map[string][]string{"zimbraPasswordMinLength": {"8"}})
	id := s.AddAccount("u@example.test", nil)
	tok := login(t, s)
	status, m := post(t, s, withToken(tok, `{"SetPasswordRequest":{"_jsns":"urn:zimbraAdmin","id":"`+id+`","newPassword":"short"}}`))
	f := m["Body"].(map[string]any)["Fault"].(map[string]any)
	errEl := f["Detail"].(map[string]any)["Error"].(map[string]any)
	args, _ := json.Marshal(errEl["a"])
	if status != 500 || errEl["Code"] != "account.INVALID_PASSWORD" || f["Reason"].(map[string]any)["Text"] != "invalid password: too short" ||
		string(args) != `[{"_content":"8","n":"zimbraPasswordMinLength","t":"NUM"}]` {
		t.Fatalf("%d %v", status, m)
	}
	if s.Attr("u@example.test", "zimbraPasswordModifiedTime") != nil {
		t.Fatal("refused password set")
	}
}

// TestGetAccountEncoding checks GetAccountResponse against admin ToXML
// (lines 62–89 and 118–184 at zm-mailbox 2b7f9787c69e): a denied
// attribute is one {"n","pd":true} per value; a sanitized one is one
// "VALUE-BLOCKED" however many values it has (Provisioning.sanitizedAttrValue
// lines 464–481); an attribute the server version lacks is absent; COS
// values apply unless applyCos="0".
func TestGetAccountEncoding(t *testing.T) {
	s := Start(t, Options{DeniedAttrs: []string{"zimbraMailForwardingAddress"}, UnknownAttrs: AttrsSince889})
	s.SetCOS(map[string][]string{"zimbraPasswordMinLength": {"6"}})
	s.AddAccount("u@example.test", map[string][]string{
		"zimbraMailForwardingAddress":       {"a@x", "b@x"},
		"zimbraAppSpecificPassword":         {"h1", "h2", "h3"},
		"zimbraPrefPasswordRecoveryAddress": {"r@x"},
	})
	tok := login(t, s)
	get := func(extra string) string {
		_, m := post(t, s, withToken(tok, `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin"`+extra+`,"account":{"by":"name","_content":"u@example.test"}}}`))
		a := m["Body"].(map[string]any)["GetAccountResponse"].(map[string]any)["account"].([]any)[0].(map[string]any)["a"]
		b, _ := json.Marshal(a)
		return string(b)
	}
	got := get("")
	for _, want := range []string{
		`{"_content":"VALUE-BLOCKED","n":"zimbraAppSpecificPassword"},{"_content":"`,
		`{"n":"zimbraMailForwardingAddress","pd":true},{"n":"zimbraMailForwardingAddress","pd":true}`,
		`{"_content":"6","n":"zimbraPasswordMinLength"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("GetAccount: %s\nwant %s", got, want)
		}
	}
	if strings.Contains(got, "RecoveryAddress") || strings.Contains(got, "h1") || strings.Contains(got, "a@x") {
		t.Errorf("GetAccount shows what it must not: %s", got)
	}
	if got := get(`,"applyCos":"0"`); strings.Contains(got, "zimbraPasswordMinLength") {
		t.Errorf("applyCos=0: %s", got)
	}
	_, m := post(t, s, withToken(tok, `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","attrs":"zimbraId,zimbraPrefPasswordRecoveryAddress","account":{"by":"name","_content":"u@example.test"}}}`))
	if faultCode(m) != "service.INVALID_REQUEST" {
		t.Errorf("unknown attribute requested: %v", m)
	}
}

// TestFlushCacheKeys models FlushCache type=account on one server
// (LdapProvisioning.flushCache lines 9043–9075, AccountCache lines 83–158
// at zm-mailbox 2b7f9787c69e): by="id" finds the cached account by the
// key exactly as given, by="name" lower-cases it and tries names then
// aliases; a key not in the cache does nothing and is no error; a found
// account leaves every index. allServers=1 repeats the request with
// allServers=0 on every other server and answers success even when one
// is down (lines 227–252).
func TestFlushCacheKeys(t *testing.T) {
	s := Start(t, Options{Peers: []string{"mbox2.example.test", "mbox3.example.test"}})
	id := s.AddAccount("u@example.test", map[string][]string{"zimbraMailAlias": {"Alias@example.test"}})
	peer := s.Peer("mbox2.example.test")
	tok := login(t, s)
	flush := func(srv *Server, cache string) {
		t.Helper()
		status, m := post(t, srv, withToken(tok, `{"FlushCacheRequest":{"_jsns":"urn:zimbraAdmin","cache":`+cache+`}}`))
		if status != 200 {
			t.Fatalf("%s: %d %v", cache, status, m)
		}
	}
	locked := func(srv *Server) bool {
		st, _, _ := srv.SeenAccount("u@example.test")
		return st == "locked"
	}
	lock := func(status string) {
		_, m := post(t, s, withToken(tok, `{"ModifyAccountRequest":{"_jsns":"urn:zimbraAdmin","id":"`+id+`","a":[{"n":"zimbraAccountStatus","_content":"`+status+`"}]}}`))
		if faultCode(m) != "" {
			t.Fatal(m)
		}
	}
	for _, tc := range []struct {
		name, cache string
		flushed     bool
	}{
		{"id as given", `{"type":"account","entry":[{"by":"id","_content":"` + id + `"}]}`, true},
		{"id in another case", `{"type":"account","entry":[{"by":"id","_content":"` + strings.ToUpper(id) + `"}]}`, false},
		{"name in another case", `{"type":"account","entry":[{"by":"name","_content":"U@EXAMPLE.TEST"}]}`, true},
		{"alias", `{"type":"account","entry":[{"by":"name","_content":"alias@example.test"}]}`, true},
		{"unknown name", `{"type":"account","entry":[{"by":"name","_content":"other@example.test"}]}`, false},
		{"another cache", `{"type":"cos","entry":[{"by":"id","_content":"` + id + `"}]}`, false},
		{"no entry clears all", `{"type":"account"}`, true},
	} {
		lock("active")
		peer.SeenAccount("u@example.test") // cache it
		lock("locked")
		flush(peer, tc.cache)
		if locked(peer) != tc.flushed {
			t.Errorf("%s: flushed = %v, want %v", tc.name, !tc.flushed, tc.flushed)
		}
		peer.cache.clear()
	}

	lock("active")
	for _, p := range s.Servers()[1:] {
		p.SeenAccount("u@example.test")
	}
	lock("locked")
	s.Peer("mbox3.example.test").Stop()
	s.ResetCalls()
	flush(s, `{"type":"account","allServers":"1","entry":[{"by":"id","_content":"`+id+`"}]}`)
	if !locked(peer) || locked(s.Peer("mbox3.example.test")) {
		t.Fatal("allServers=1 did not flush the live peer only")
	}
	want := []string{
		"FlushCacheRequest account=" + id + " type=account allServers=1 entry=id:" + id,
		"FlushCacheRequest account=" + id + " type=account allServers=0 entry=id:" + id + " server=mbox2.example.test",
	}
	if got := s.CallStrings(); !slices.Equal(got, want) {
		t.Fatalf("calls %q\nwant %q", got, want)
	}
}

// TestSessionModel checks the fake's sessions against zm-mailbox
// 2b7f9787c69e: a password change (validity bump) leaves IMAP sessions
// open (ImapHandler 438–456 looks at the status only); a server with a
// cached account takes the old token until the cache is flushed or
// expires; a token newer than the cached account makes the server reload
// it once (Account.java 340–403, bug 46287).
func TestSessionModel(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := Start(t, Options{Now: func() time.Time { return now }, Peers: []string{"mbox2.example.test"}})
	s.AddAccount("u@example.test", map[string][]string{"zimbraAuthTokenValidityValue": {"4"}})
	peer := s.Peer("mbox2.example.test")
	old, _ := s.IssueUserToken("u@example.test")
	imapHome, _ := s.OpenIMAPSession("u@example.test")
	imapPeer, _ := peer.OpenIMAPSession("u@example.test")
	if !peer.UserTokenValid(old) { // caches the account (validity 4)
		t.Fatal("fresh token refused")
	}
	s.SetPassword("u@example.test", "N3w-password")
	if s.UserTokenValid(old) || !peer.UserTokenValid(old) {
		t.Fatal("after the password change the home server must refuse the old token and the peer (stale cache) still take it")
	}
	if !s.IMAPSessionAlive(imapHome) || !peer.IMAPSessionAlive(imapPeer) {
		t.Fatal("a password change closed an IMAP session")
	}
	fresh, _ := s.IssueUserToken("u@example.test")
	if !peer.UserTokenValid(fresh) || peer.UserTokenValid(old) {
		t.Fatal("a newer token must make the peer reload the account, after which the old one fails")
	}
	if _, v, _ := peer.SeenAccount("u@example.test"); v != 5 {
		t.Fatalf("peer sees validity %d after the reload", v)
	}
	s.SetPassword("u@example.test", "N3w-password-2") // 6
	now = now.Add(15 * time.Minute)
	if peer.UserTokenValid(fresh) {
		t.Fatal("the peer's copy outlived ldap_cache_account_maxage")
	}
}

// TestInvalidLoginFilter follows ZimbraInvalidLoginFilter (lines 107–200
// at zm-mailbox 2b7f9787c69e): the count exceeding the limit (10 by
// default) suspends the IP; the failure that does it is still answered;
// then every request, good credentials included, gets HTTP 503 (not a
// SOAP fault) until the 5-minutely task finds the IP suspended for more
// than 15 minutes; a success does not reset the count.
func TestInvalidLoginFilter(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	s := Start(t, Options{Now: func() time.Time { return now }})
	bad := `{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@example.test","password":"guess"}}}`
	send := func(body string) int {
		t.Helper()
		resp, err := s.Client().Post(s.URL(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 503 && (!strings.Contains(string(b), "HTTP ERROR 503") || strings.Contains(string(b), "Fault")) {
			t.Fatalf("503 body %q", b)
		}
		return resp.StatusCode
	}
	for i := range 10 {
		if c := send(bad); c != 500 {
			t.Fatalf("failure %d: %d", i+1, c)
		}
	}
	login(t, s) // a success does not reset the count
	now = start.Add(2 * time.Second)
	if c := send(bad); c != 500 { // the 11th is answered, and suspends
		t.Fatalf("11th failure: %d", c)
	}
	for _, at := range []time.Duration{3 * time.Second, 15 * time.Minute, 20 * time.Minute} {
		now = start.Add(at)
		good := `{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@example.test","password":"admin-secret"}}}`
		if c := send(good); c != 503 {
			t.Fatalf("at +%v: %d, want 503", at, c)
		}
	}
	// Suspended at +2s: the run at +15m1s finds 14m59s, the one at +20m1s
	// more than 15 minutes.
	now = start.Add(20*time.Minute + time.Second)
	login(t, s)
	if got := s.CallStrings(); got[len(got)-2] != "AuthRequest http=503" {
		t.Fatalf("calls %q", got)
	}
}
