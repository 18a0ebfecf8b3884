package zimbra

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Namespaces of the JSON form: "_jsns" on the header context, on admin
// requests, and on account-service requests sent to the admin endpoint.
const (
	nsZimbra  = "urn:zimbra"
	nsAdmin   = "urn:zimbraAdmin"
	nsAccount = "urn:zimbraAccount"
)

// Fault codes Zimbra returns in Body.Fault.Detail.Error.Code
// (ServiceException and AccountServiceException in zm-mailbox).
const (
	CodeNoSuchAccount    = "account.NO_SUCH_ACCOUNT"
	CodeAuthFailed       = "account.AUTH_FAILED"
	CodeInvalidAttrValue = "account.INVALID_ATTR_VALUE"
	CodeInvalidPassword  = "account.INVALID_PASSWORD"
	// CodePasswordRecentlyUsed and CodePasswordChangeTooSoon are the
	// other two policy refusals of LdapProvisioning.setPassword
	// (AccountServiceException lines 39–40, 198–200, 409–411 at zm-mailbox
	// 2b7f9787c69e).
	CodePasswordRecentlyUsed  = "account.PASSWORD_RECENTLY_USED"
	CodePasswordChangeTooSoon = "account.PASSWORD_CHANGE_TOO_SOON"
	CodeAuthExpired           = "service.AUTH_EXPIRED"
	CodeAuthRequired          = "service.AUTH_REQUIRED"
	CodePermDenied            = "service.PERM_DENIED"
	CodeUnknownDocument       = "service.UNKNOWN_DOCUMENT"
	CodeInvalidRequest        = "service.INVALID_REQUEST"
)

// Fault is a SOAP fault returned by Zimbra. errors.Is reports a match
// when the target is a *Fault with the same Code, so
// errors.Is(err, ErrNoSuchAccount) works on any wrapped fault.
type Fault struct {
	// Code is the Zimbra error code, e.g. "account.NO_SUCH_ACCOUNT".
	Code string
	// Reason is the server's human-readable text.
	Reason string
	// Trace is the server's request trace id, for its mailbox.log.
	Trace string
	// Args are the fault's arguments (Detail.Error.a, written by
	// Soap12Protocol.soapFault lines 120–127 at zm-mailbox 2b7f9787c69e),
	// e.g. the policy attribute an INVALID_PASSWORD fault names:
	// {Name: "zimbraPasswordMinLength", Type: "NUM", Value: "8"}.
	Args []FaultArg
}

// FaultArg is one argument of a fault (ServiceException.Argument).
type FaultArg struct {
	Name, Type, Value string
}

// Arg returns the value of the argument called name, and whether there is
// one.
func (f *Fault) Arg(name string) (string, bool) {
	for _, a := range f.Args {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// Error implements error.
func (f *Fault) Error() string {
	code := f.Code
	if code == "" {
		code = "(no code)"
	}
	s := "zimbra fault " + code
	if f.Reason != "" {
		s += ": " + f.Reason
	}
	if len(f.Args) > 0 {
		args := make([]string, len(f.Args))
		for i, a := range f.Args {
			args[i] = a.Name + "=" + a.Value
		}
		s += " (" + strings.Join(args, ", ") + ")"
	}
	return s
}

// Is reports whether target is a *Fault with f's Code.
func (f *Fault) Is(target error) bool {
	t, ok := target.(*Fault)
	return ok && t.Code == f.Code
}

// Sentinel faults for errors.Is.
var (
	ErrNoSuchAccount   error = &Fault{Code: CodeNoSuchAccount}
	ErrAuthFailed      error = &Fault{Code: CodeAuthFailed}
	ErrAuthExpired     error = &Fault{Code: CodeAuthExpired}
	ErrAuthRequired    error = &Fault{Code: CodeAuthRequired}
	ErrPermDenied      error = &Fault{Code: CodePermDenied}
	ErrUnknownDocument error = &Fault{Code: CodeUnknownDocument}
)

// ErrPasswordRejected matches an error of SetPassword when Zimbra refused
// the new password under the account's password policy: the faults
// account.INVALID_PASSWORD, account.PASSWORD_RECENTLY_USED and
// account.PASSWORD_CHANGE_TOO_SOON. Zimbra enforces the policy on
// SetPassword only for an admin who lacks the setAccountPassword right but
// holds changeAccountPassword (SetPassword.checkAccountRights, lines
// 120–141 at zm-mailbox 2b7f9787c69e). Sending the same password again
// cannot succeed: the error is permanent. The fault itself is wrapped too,
// so errors.As still finds the *Fault and its Args.
var ErrPasswordRejected = errors.New("zimbra: the password policy refused the new password")

// passwordRejection reports whether f is one of ErrPasswordRejected's
// faults.
func passwordRejection(f *Fault) bool {
	switch f.Code {
	case CodeInvalidPassword, CodePasswordRecentlyUsed, CodePasswordChangeTooSoon:
		return true
	}
	return false
}

// errMalformed marks responses that are not the JSON SOAP Zimbra sends.
var errMalformed = errors.New("zimbra: malformed response")

// --- requests -------------------------------------------------------------

// envelope is a JSON SOAP request: {"Header":{"context":...},"Body":{...}}.
type envelope struct {
	Header *header        `json:"Header,omitempty"`
	Body   map[string]any `json:"Body"`
}

type header struct {
	Context soapContext `json:"context"`
}

// soapContext is the header context (soap.txt: <context xmlns="urn:zimbra">).
// Account names the target account of an account-service request an
// admin sends on its behalf (SoapUtil.addTargetAccountToCtxt).
type soapContext struct {
	JSNS      string    `json:"_jsns"`
	AuthToken *content  `json:"authToken,omitempty"`
	Account   *selector `json:"account,omitempty"`
}

// content is an element with text only: {"_content":"..."}.
type content struct {
	Content string `json:"_content"`
}

// selector is <account by="name">u@dom</account> and its kin.
type selector struct {
	By      string `json:"by"`
	Content string `json:"_content"`
}

// attr is one <a n="name">value</a>.
type attr struct {
	N       string `json:"n"`
	Content string `json:"_content"`
}

type authRequest struct {
	JSNS     string `json:"_jsns"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

type getAccountRequest struct {
	JSNS    string   `json:"_jsns"`
	Attrs   string   `json:"attrs,omitempty"`
	Account selector `json:"account"`
}

type modifyAccountRequest struct {
	JSNS string `json:"_jsns"`
	ID   string `json:"id"`
	A    []attr `json:"a"`
}

type setPasswordRequest struct {
	JSNS        string `json:"_jsns"`
	ID          string `json:"id"`
	NewPassword string `json:"newPassword"`
}

type flushCacheRequest struct {
	JSNS  string        `json:"_jsns"`
	Cache cacheSelector `json:"cache"`
}

// cacheSelector is soap CacheSelector: type is a comma-separated list,
// allServers a ZmBoolean ("1").
type cacheSelector struct {
	Type       string     `json:"type"`
	AllServers string     `json:"allServers"`
	Entry      []selector `json:"entry"`
}

type getIdentitiesRequest struct {
	JSNS string `json:"_jsns"`
}

// getGrantsRequest is <GetGrantsRequest><target type by>…</target>.
type getGrantsRequest struct {
	JSNS   string      `json:"_jsns"`
	Target grantTarget `json:"target"`
}

type grantTarget struct {
	Type    string `json:"type"`
	By      string `json:"by"`
	Content string `json:"_content"`
}

type getShareInfoRequest struct {
	JSNS  string   `json:"_jsns"`
	Owner selector `json:"owner"`
}

type getDataSourcesRequest struct {
	JSNS string `json:"_jsns"`
	ID   string `json:"id"`
}

type getAllServersRequest struct {
	JSNS    string `json:"_jsns"`
	Service string `json:"service,omitempty"`
}

// encodeRequest renders one request. token is "" only for AuthRequest;
// target, when set, is the zimbraId the request acts on behalf of.
func encodeRequest(name string, req any, token, target string) ([]byte, error) {
	env := envelope{Body: map[string]any{name: req}}
	if token != "" {
		env.Header = &header{Context: soapContext{JSNS: nsZimbra, AuthToken: &content{token}}}
		if target != "" {
			env.Header.Context.Account = &selector{By: "id", Content: target}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// --- responses ------------------------------------------------------------

// parseResponse returns the Body element called name from a JSON SOAP
// response, or the *Fault the Body carries instead. A body with both
// returns the fault.
func parseResponse(data []byte, name string) (json.RawMessage, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	rawBody, ok := env["Body"]
	if !ok {
		return nil, fmt.Errorf("%w: no Body", errMalformed)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(rawBody, &body); err != nil {
		return nil, fmt.Errorf("%w: Body: %v", errMalformed, err)
	}
	if rawFault, ok := body["Fault"]; ok {
		f, err := parseFault(rawFault)
		if err != nil {
			return nil, err
		}
		return nil, f
	}
	el, ok := body[name]
	if !ok {
		return nil, fmt.Errorf("%w: Body has no %s", errMalformed, name)
	}
	return el, nil
}

// faultJSON is the SOAP 1.2 fault in Zimbra's JSON form:
// {"Code":{"Value":"soap:Sender"},"Reason":{"Text":"..."},
// "Detail":{"Error":{"Code":"account.AUTH_FAILED","Trace":"...","_jsns":"urn:zimbra",
// "a":[{"n":"zimbraPasswordMinLength","t":"NUM","_content":"8"}]}}}.
type faultJSON struct {
	Code struct {
		Value text `json:"Value"`
	} `json:"Code"`
	Reason struct {
		Text text `json:"Text"`
	} `json:"Reason"`
	Detail struct {
		Error struct {
			Code  text                `json:"Code"`
			Trace text                `json:"Trace"`
			A     elems[faultArgJSON] `json:"a"`
		} `json:"Error"`
	} `json:"Detail"`
}

// faultArgJSON is one ServiceException.Argument: {"n":…,"t":…,"_content":…}.
type faultArgJSON struct {
	N       text `json:"n"`
	T       text `json:"t"`
	Content text `json:"_content"`
}

func parseFault(raw json.RawMessage) (*Fault, error) {
	var fj faultJSON
	if err := json.Unmarshal(raw, &fj); err != nil {
		return nil, fmt.Errorf("%w: Fault: %v", errMalformed, err)
	}
	f := &Fault{Code: string(fj.Detail.Error.Code), Reason: string(fj.Reason.Text), Trace: string(fj.Detail.Error.Trace)}
	for _, a := range fj.Detail.Error.A {
		f.Args = append(f.Args, FaultArg{Name: string(a.N), Type: string(a.T), Value: string(a.Content)})
	}
	if f.Code == "" {
		// A fault without a Zimbra code (a proxy's, say): keep the SOAP code.
		f.Code = string(fj.Code.Value)
	}
	return f, nil
}

// maxTextDepth bounds how deeply text unwraps {"_content":...} and arrays;
// Zimbra nests at most an array of one element holding an object.
const maxTextDepth = 4

// text is an element's text in Zimbra's JSON: a plain value ("x", 12,
// true), an element {"_content":"x"}, or a repeated element
// [{"_content":"x"}], of which the first counts. null and a missing
// _content are "".
type text string

// UnmarshalJSON implements json.Unmarshaler.
func (t *text) UnmarshalJSON(b []byte) error {
	s, err := decodeText(b, 0)
	*t = text(s)
	return err
}

func decodeText(b []byte, depth int) (string, error) {
	if depth > maxTextDepth {
		return "", errors.New("text nested too deeply")
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", errors.New("empty value")
	}
	switch b[0] {
	case '"':
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return "", err
		}
		c, ok := obj["_content"]
		if !ok {
			return "", nil
		}
		return decodeText(c, depth+1)
	case '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(b, &arr); err != nil {
			return "", err
		}
		if len(arr) == 0 {
			return "", nil
		}
		return decodeText(arr[0], depth+1)
	case 'n':
		return "", json.Unmarshal(b, new(any))
	default: // number, true, false
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return "", err
		}
		return string(b), nil
	}
}

// elems decodes a repeated element, which Zimbra writes as an array, and
// also accepts a single object.
type elems[T any] []T

// UnmarshalJSON implements json.Unmarshaler.
func (e *elems[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var one T
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*e = elems[T]{one}
		return nil
	}
	var many []T
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*e = many
	return nil
}

type authResponse struct {
	AuthToken text `json:"authToken"`
	Lifetime  text `json:"lifetime"` // milliseconds (@ZimbraJsonAttribute long)
}

// attrJSON is one <a n="name">value</a>; pd ("permission denied", true
// in JSON, "1" in XML) marks a value the admin has no right to read
// (admin ToXML.encodeAttr, lines 173–184 at zm-mailbox 2b7f9787c69e).
type attrJSON struct {
	N       text `json:"n"`
	Content text `json:"_content"`
	PD      text `json:"pd"`
}

type accountJSON struct {
	Name text            `json:"name"`
	ID   text            `json:"id"`
	A    elems[attrJSON] `json:"a"`
}

type accountResponse struct {
	Account elems[accountJSON] `json:"account"`
}

type setPasswordResponse struct {
	Message text `json:"message"`
}

// identityJSON is account/type/Identity: name and id attributes, and its
// attrs as key/value pairs ("_attrs", @ZimbraKeyValuePairs), a value being
// a string or, when multi-valued, an array. The XML-style "a" list is
// accepted too.
type identityJSON struct {
	Name  text                       `json:"name"`
	ID    text                       `json:"id"`
	Attrs map[string]json.RawMessage `json:"_attrs"`
	A     elems[attrJSON]            `json:"a"`
}

type getIdentitiesResponse struct {
	Identity elems[identityJSON] `json:"identity"`
}

// decodeAccount turns a GetAccountResponse or ModifyAccountResponse into
// an Account.
func decodeAccount(raw json.RawMessage) (*Account, error) {
	var r accountResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: account: %v", errMalformed, err)
	}
	if len(r.Account) == 0 {
		return nil, fmt.Errorf("%w: no account element", errMalformed)
	}
	aj := r.Account[0]
	a := &Account{Name: string(aj.Name), ID: string(aj.ID), Attrs: make(map[string][]string, len(aj.A))}
	for _, at := range aj.A {
		n := string(at.N)
		if n == "" {
			continue
		}
		if pd := string(at.PD); pd == "true" || pd == "1" {
			// Listed without its value: set, but not readable by us.
			if !slices.Contains(a.DeniedAttrs, n) {
				a.DeniedAttrs = append(a.DeniedAttrs, n)
			}
			continue
		}
		a.Attrs[n] = append(a.Attrs[n], string(at.Content))
	}
	if a.ID == "" {
		a.ID = a.first(AttrID)
	}
	return a, nil
}

// entryJSON is a directory entry as admin ToXML encodes it (a server,
// the global config): name, id and its attributes as "a".
type entryJSON struct {
	Name text            `json:"name"`
	ID   text            `json:"id"`
	A    elems[attrJSON] `json:"a"`
}

// entry is a decoded entryJSON; attributes the admin may not read are
// left out.
type entry struct {
	Name, ID string
	Attrs    map[string][]string
}

func (e *entry) first(name string) string {
	if v := e.Attrs[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func decodeEntry(ej entryJSON) entry {
	e := entry{Name: string(ej.Name), ID: string(ej.ID), Attrs: map[string][]string{}}
	for _, at := range ej.A {
		if pd := string(at.PD); pd == "true" || pd == "1" || string(at.N) == "" {
			continue
		}
		e.Attrs[string(at.N)] = append(e.Attrs[string(at.N)], string(at.Content))
	}
	return e
}

type getAllServersResponse struct {
	Server elems[entryJSON] `json:"server"`
}

// decodeServers turns a GetAllServersResponse into entries.
func decodeServers(raw json.RawMessage) ([]entry, error) {
	var r getAllServersResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: servers: %v", errMalformed, err)
	}
	out := make([]entry, 0, len(r.Server))
	for _, s := range r.Server {
		out = append(out, decodeEntry(s))
	}
	return out, nil
}

// kvAttrs reads the attributes of an account-namespace element: the
// key/value pairs of "_attrs" (a string, or an array when multi-valued;
// account ToXML.encodeAttr lines 270–295 at zm-mailbox 2b7f9787c69e) and
// any XML-style "a" list. A pair the admin may not read (pd) has no value
// and is left out.
func kvAttrs(kv map[string]json.RawMessage, a elems[attrJSON]) (map[string][]string, error) {
	attrs := make(map[string][]string, len(kv)+len(a))
	for k, v := range kv {
		v = bytes.TrimSpace(v)
		vals := []json.RawMessage{v}
		if len(v) > 0 && v[0] == '[' { // multi-valued
			if err := json.Unmarshal(v, &vals); err != nil {
				return nil, fmt.Errorf("%w: attr %s: %v", errMalformed, k, err)
			}
		}
		for _, v := range vals {
			// A pair with attributes is an object: {"_content":"","pd":true}.
			var pd struct {
				PD text `json:"pd"`
			}
			if v = bytes.TrimSpace(v); len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &pd) == nil && truthy(pd.PD) {
				continue
			}
			s, err := decodeText(v, 0)
			if err != nil {
				return nil, fmt.Errorf("%w: attr %s: %v", errMalformed, k, err)
			}
			attrs[k] = append(attrs[k], s)
		}
	}
	for _, at := range a {
		if pd := string(at.PD); pd == "true" || pd == "1" {
			continue
		}
		if n := string(at.N); n != "" {
			attrs[n] = append(attrs[n], string(at.Content))
		}
	}
	return attrs, nil
}

// decodeIdentities turns a GetIdentitiesResponse into Identities.
func decodeIdentities(raw json.RawMessage) ([]Identity, error) {
	var r getIdentitiesResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: identities: %v", errMalformed, err)
	}
	out := make([]Identity, 0, len(r.Identity))
	for _, ij := range r.Identity {
		attrs, err := kvAttrs(ij.Attrs, ij.A)
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		out = append(out, identityFromAttrs(string(ij.Name), string(ij.ID), attrs))
	}
	return out, nil
}

// grantJSON is one <grant> of GetGrantsResponse (RightCommand.Grants.toXML,
// lines 166–208): <target type id name/><grantee type id name/>
// <right deny canDelegate …>name</right>; the booleans are real booleans
// in JSON, "0"/"1" in XML.
type grantJSON struct {
	Grantee elems[struct {
		Type text `json:"type"`
		ID   text `json:"id"`
		Name text `json:"name"`
	}] `json:"grantee"`
	Right elems[struct {
		Deny        text `json:"deny"`
		CanDelegate text `json:"canDelegate"`
		Content     text `json:"_content"`
	}] `json:"right"`
}

func truthy(t text) bool { return t == "true" || t == "1" || t == "TRUE" }

// decodeGrants turns a GetGrantsResponse into Grants.
func decodeGrants(raw json.RawMessage) ([]Grant, error) {
	var r struct {
		Grant elems[grantJSON] `json:"grant"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: grants: %v", errMalformed, err)
	}
	out := make([]Grant, 0, len(r.Grant))
	for _, g := range r.Grant {
		var gr Grant
		if len(g.Grantee) > 0 {
			gr.GranteeType, gr.GranteeID, gr.GranteeName = string(g.Grantee[0].Type), string(g.Grantee[0].ID), string(g.Grantee[0].Name)
		}
		if len(g.Right) > 0 {
			gr.Right, gr.Deny, gr.CanDelegate = string(g.Right[0].Content), truthy(g.Right[0].Deny), truthy(g.Right[0].CanDelegate)
		}
		out = append(out, gr)
	}
	return out, nil
}

// shareJSON is one <share> of GetShareInfoResponse (soap/type/ShareInfo.java
// lines 44–137).
type shareJSON struct {
	FolderID    text `json:"folderId"`
	FolderPath  text `json:"folderPath"`
	View        text `json:"view"`
	Rights      text `json:"rights"`
	GranteeType text `json:"granteeType"`
	GranteeID   text `json:"granteeId"`
	GranteeName text `json:"granteeName"`
}

// decodeShares turns a GetShareInfoResponse into Shares.
func decodeShares(raw json.RawMessage) ([]Share, error) {
	var r struct {
		Share elems[shareJSON] `json:"share"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: shares: %v", errMalformed, err)
	}
	out := make([]Share, 0, len(r.Share))
	for _, s := range r.Share {
		out = append(out, Share{FolderID: string(s.FolderID), FolderPath: string(s.FolderPath), View: string(s.View), Rights: string(s.Rights),
			GranteeType: string(s.GranteeType), GranteeID: string(s.GranteeID), GranteeName: string(s.GranteeName)})
	}
	return out, nil
}

// dataSourceJSON is one <dataSource name id type> of GetDataSourcesResponse
// with its attributes (account ToXML.encodeDataSource, lines 261–268).
type dataSourceJSON struct {
	Name  text                       `json:"name"`
	ID    text                       `json:"id"`
	Type  text                       `json:"type"`
	Attrs map[string]json.RawMessage `json:"_attrs"`
	A     elems[attrJSON]            `json:"a"`
}

// decodeDataSources turns a GetDataSourcesResponse into DataSources,
// keeping only what describes them (never a password or token, which
// Zimbra does not send anyway).
func decodeDataSources(raw json.RawMessage) ([]DataSource, error) {
	var r struct {
		DataSource elems[dataSourceJSON] `json:"dataSource"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%w: data sources: %v", errMalformed, err)
	}
	out := make([]DataSource, 0, len(r.DataSource))
	for _, d := range r.DataSource {
		attrs, err := kvAttrs(d.Attrs, d.A)
		if err != nil {
			return nil, fmt.Errorf("data source: %w", err)
		}
		first := func(k string) string {
			if v := attrs[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		out = append(out, DataSource{Name: string(d.Name), ID: string(d.ID), Type: string(d.Type),
			Host: first(AttrDataSourceHost), Enabled: first(AttrDataSourceEnabled)})
	}
	return out, nil
}

// redact replaces every occurrence of secret in s, and the one character
// of it Zimbra quotes when a password has a character
// zimbraPasswordAllowedChars refuses ("invalid password: <ch> is not an
// allowed character", LdapProvisioning.checkPasswordStrength lines
// 6196–6200 at zm-mailbox 2b7f9787c69e): the same text reaches the
// SetPassword warning when the password is set all the same.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "[redacted]")
	const prefix, suffix = "invalid password: ", " is not an allowed character"
	var b strings.Builder
	for {
		i := strings.Index(s, prefix)
		if i < 0 {
			break
		}
		rest := s[i+len(prefix):]
		j := strings.Index(rest, suffix)
		// The quoted character is one UTF-16 unit: a rune, or U+FFFD
		// for half of a surrogate pair.
		if j < 0 || utf8.RuneCountInString(rest[:j]) > 2 {
			b.WriteString(s[:i+len(prefix)])
			s = rest
			continue
		}
		b.WriteString(s[:i+len(prefix)] + "[redacted]")
		s = rest[j:]
	}
	b.WriteString(s)
	return b.String()
}
