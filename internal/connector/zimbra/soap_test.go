package zimbra

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"
)

// A fault as Zimbra sends it (JSON form of Soap12Protocol.soapFault).
const noSuchAccountFault = `{"Header":{"context":{"_jsns":"urn:zimbra"}},"Body":{"Fault":{"Code":{"Value":"soap:Sender"},"Reason":{"Text":"no such account: x@example.edu"},"Detail":{"Error":{"Code":"account.NO_SUCH_ACCOUNT","Trace":"qtp1-12:1618483353424:1240","_jsns":"urn:zimbra"}}}},"_jsns":"urn:zimbraSoap"}`

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
		fault            *Fault
		malformed        bool
	}{
		{name: "element", data: `{"Body":{"AuthResponse":{"lifetime":1}},"_jsns":"urn:zimbraSoap"}`, want: `{"lifetime":1}`},
		{name: "fault", data: noSuchAccountFault, fault: &Fault{Code: CodeNoSuchAccount, Reason: "no such account: x@example.edu", Trace: "qtp1-12:1618483353424:1240"}},
		{name: "fault wins", data: `{"Body":{"AuthResponse":{},"Fault":{"Detail":{"Error":{"Code":"service.FAILURE"}}}}}`, fault: &Fault{Code: "service.FAILURE"}},
		{name: "fault with arguments", data: `{"Body":{"Fault":{"Code":{"Value":"soap:Sender"},"Reason":{"Text":"invalid password: too short"},"Detail":{"Error":{"Code":"account.INVALID_PASSWORD","Trace":"t","a":[{"n":"zimbraPasswordMinLength","t":"NUM","_content":"8"}],"_jsns":"urn:zimbra"}}}}}`,
			fault: &Fault{Code: CodeInvalidPassword, Reason: "invalid password: too short", Trace: "t", Args: []FaultArg{{Name: "zimbraPasswordMinLength", Type: "NUM", Value: "8"}}}},
		{name: "fault without zimbra code", data: `{"Body":{"Fault":{"Code":{"Value":"soap:Receiver"},"Reason":{"Text":"proxy"}}}}`, fault: &Fault{Code: "soap:Receiver", Reason: "proxy"}},
		{name: "other element", data: `{"Body":{"GetAccountResponse":{}}}`, malformed: true},
		{name: "no body", data: `{"Header":{}}`, malformed: true},
		{name: "body not object", data: `{"Body":[]}`, malformed: true},
		{name: "not json", data: `<soap:Envelope/>`, malformed: true},
		{name: "bad fault", data: `{"Body":{"Fault":{"Reason":{"Text":{"_content":[[[[[["x"]]]]]]}}}}}`, malformed: true},
	} {
		raw, err := parseResponse([]byte(tc.data), "AuthResponse")
		var f *Fault
		switch {
		case tc.fault != nil:
			if !errors.As(err, &f) || !reflect.DeepEqual(f, tc.fault) {
				t.Errorf("%s: %v, want fault %+v", tc.name, err, tc.fault)
			}
		case tc.malformed:
			if !errors.Is(err, errMalformed) {
				t.Errorf("%s: %v, want malformed", tc.name, err)
			}
		default:
			if err != nil || string(raw) != tc.want {
				t.Errorf("%s: %s, %v", tc.name, raw, err)
			}
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		`"x"`: "x", `12`: "12", `true`: "true", `null`: "", `{"_content":"x"}`: "x", `[{"_content":"x"},{"_content":"y"}]`: "x",
		`[]`: "", `{}`: "", `{"_content":7}`: "7", `"\u00e9"`: "é",
	} {
		var got text
		if err := json.Unmarshal([]byte(in), &got); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", in, got, err)
		}
	}
	var got text
	if err := json.Unmarshal([]byte(`[[[[[[["x"]]]]]]]`), &got); err == nil {
		t.Error("deep nesting accepted")
	}
}

func TestParseGeneralizedTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"20260101120000Z":     time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		"20251231235959.123Z": time.Date(2025, 12, 31, 23, 59, 59, 123e6, time.UTC),
	} {
		got, err := ParseGeneralizedTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "2026-01-01T12:00:00Z", "20261301120000Z", "20260101120000"} {
		if _, err := ParseGeneralizedTime(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	a := &Account{Attrs: map[string][]string{AttrPasswordModifiedTime: {"yesterday"}}}
	if _, err := a.PasswordModifiedTime(); err == nil {
		t.Error("bad zimbraPasswordModifiedTime accepted")
	}
	if tm, err := (&Account{}).PasswordModifiedTime(); err != nil || !tm.IsZero() {
		t.Errorf("unset: %v %v", tm, err)
	}
}

func TestDecodeIdentities(t *testing.T) {
	raw := `{"identity":[{"name":"DEFAULT","id":"Z1","_attrs":{"zimbraPrefFromAddress":"a@x","zimbraPrefReplyToEnabled":"TRUE","zimbraPrefReplyToAddress":"r@evil","zimbraPrefWhenSentToAddresses":["p@x","q@x"]}},
		{"name":"Other","id":"I2","a":[{"n":"zimbraPrefFromAddress","_content":"o@x"}]}],"_jsns":"urn:zimbraAccount"}`
	ids, err := decodeIdentities(json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []Identity{
		{Name: "DEFAULT", ID: "Z1", FromAddress: "a@x", ReplyToEnabled: true, ReplyToAddress: "r@evil"},
		{Name: "Other", ID: "I2", FromAddress: "o@x"},
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("%+v", ids)
	}
}

// TestRedact: the password, and the one character of it Zimbra quotes
// when zimbraPasswordAllowedChars refuses it, never survive.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, secret, want string }{
		{"invalid password: S3cret is in the history", "S3cret", "invalid password: [redacted] is in the history"},
		{"invalid password: Q is not an allowed character", "abcQ", "invalid password: [redacted] is not an allowed character"},
		{"Password violation: account=u@x, violation=invalid password: é is not an allowed character.  Password is set successfully.", "aé",
			"Password violation: account=u@x, violation=invalid password: [redacted] is not an allowed character.  Password is set successfully."},
		{"invalid password: too short", "abc", "invalid password: too short"},
		{"invalid password: a long reason is not an allowed character", "x", "invalid password: a long reason is not an allowed character"},
		{"no secret", "", "no secret"},
	} {
		if got := redact(tc.in, tc.secret); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDecodeDeniedAttrs: an attribute the admin may not read comes as
// {"n":…,"pd":true} (JSON) or pd="1" (XML form) without a value (admin
// ToXML.encodeAttr lines 173–184 at zm-mailbox 2b7f9787c69e): it is kept
// apart from the values, never read as an empty value.
func TestDecodeDeniedAttrs(t *testing.T) {
	raw := `{"account":[{"name":"u@x","id":"Z","a":[{"n":"zimbraId","_content":"Z"},{"n":"zimbraPrefMailForwardingAddress","pd":true},
		{"n":"zimbraMailForwardingAddress","pd":true},{"n":"zimbraMailForwardingAddress","pd":true},{"n":"zimbraMailSieveScript","pd":"1"}]}]}`
	a, err := decodeAccount(json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"zimbraPrefMailForwardingAddress", "zimbraMailForwardingAddress", "zimbraMailSieveScript"}
	if !slices.Equal(a.DeniedAttrs, want) || len(a.Attrs) != 1 || a.Values("zimbraPrefMailForwardingAddress") != nil {
		t.Fatalf("denied %q attrs %v", a.DeniedAttrs, a.Attrs)
	}
	if !a.Denied("ZIMBRAMAILSIEVESCRIPT") || a.Denied("zimbraId") || len(a.ForwardingAddresses()) != 0 {
		t.Fatal("Denied")
	}
}

// TestDecodePersistenceResponses decodes the responses Persistence reads,
// in the shapes zm-mailbox 2b7f9787c69e writes them: GetGrants
// (RightCommand.Grants.toXML lines 166–208), GetShareInfo
// (soap/type/ShareInfo.java lines 44–137) and GetDataSources (account
// ToXML.encodeDataSource lines 261–268, "_attrs" key/value pairs).
func TestDecodePersistenceResponses(t *testing.T) {
	g, err := decodeGrants(json.RawMessage(`{"grant":[{"target":[{"type":"account","id":"Z","name":"u@x"}],"grantee":[{"type":"usr","id":"G","name":"m@x"}],
		"right":[{"deny":false,"canDelegate":true,"disinheritSubGroups":false,"subDomain":false,"_content":"sendAs"}]},
		{"target":{"type":"account"},"grantee":{"type":"pub"},"right":{"deny":"1","_content":"viewFreeBusy"}}],"_jsns":"urn:zimbraAdmin"}`))
	want := []Grant{{GranteeType: "usr", GranteeID: "G", GranteeName: "m@x", Right: "sendAs", CanDelegate: true}, {GranteeType: "pub", Right: "viewFreeBusy", Deny: true}}
	if err != nil || !slices.Equal(g, want) {
		t.Fatalf("grants %+v %v", g, err)
	}
	sh, err := decodeShares(json.RawMessage(`{"share":[{"ownerId":"Z","ownerEmail":"u@x","ownerName":"U","folderId":257,"folderUuid":"F","folderPath":"/Inbox",
		"view":"message","rights":"rwidx","granteeType":"usr","granteeId":"G","granteeName":"m@x","granteeDisplayName":"M","activeSyncDisabled":false}]}`))
	if err != nil || len(sh) != 1 || sh[0] != (Share{FolderID: "257", FolderPath: "/Inbox", View: "message", Rights: "rwidx", GranteeType: "usr", GranteeID: "G", GranteeName: "m@x"}) {
		t.Fatalf("shares %+v %v", sh, err)
	}
	ds, err := decodeDataSources(json.RawMessage(`{"dataSource":[{"name":"Ex","id":"D","type":"imap","_attrs":{"zimbraDataSourceHost":"imap.evil",
		"zimbraDataSourceEnabled":"TRUE","zimbraDataSourceOAuthToken":"VALUE-BLOCKED","zimbraDataSourceUsername":{"_content":"","pd":true}}}]}`))
	if err != nil || len(ds) != 1 || ds[0] != (DataSource{Name: "Ex", ID: "D", Type: "imap", Host: "imap.evil", Enabled: "TRUE"}) {
		t.Fatalf("data sources %+v %v", ds, err)
	}
	ids, err := decodeIdentities(json.RawMessage(`{"identity":[{"name":"I","id":"1","_attrs":{"zimbraPrefReplyToAddress":{"_content":"","pd":true},"zimbraPrefFromAddress":"f@x"}}]}`))
	if err != nil || len(ids) != 1 || ids[0].ReplyToAddress != "" || ids[0].FromAddress != "f@x" {
		t.Fatalf("identity with a denied pair: %+v %v", ids, err)
	}
}

func TestValuesCaseInsensitive(t *testing.T) {
	a := &Account{Attrs: map[string][]string{"ZIMBRAACCOUNTSTATUS": {"locked"}, "zimbraAccountSTATUS": {"active"}}}
	for range 20 { // map order must not matter
		if a.Status() != "locked" {
			t.Fatal(a.Status())
		}
	}
}

// encodeEnvelope wraps a response element as Zimbra would.
func encodeEnvelope(name string, el json.RawMessage) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]any{"Body": map[string]json.RawMessage{name: el}, "_jsns": "urn:zimbraSoap"})
	return buf.Bytes()
}

func encodeFault(f *Fault) []byte {
	value := "soap:Sender"
	if f.Code == "" {
		value = ""
	}
	errEl := map[string]any{"Code": f.Code, "Trace": f.Trace, "_jsns": "urn:zimbra"}
	if len(f.Args) > 0 {
		var args []any
		for _, a := range f.Args {
			args = append(args, map[string]any{"n": a.Name, "t": a.Type, "_content": a.Value})
		}
		errEl["a"] = args
	}
	b, _ := json.Marshal(map[string]any{"Body": map[string]any{"Fault": map[string]any{
		"Code":   map[string]any{"Value": value},
		"Reason": map[string]any{"Text": f.Reason},
		"Detail": map[string]any{"Error": errEl},
	}}})
	return b
}

// encodeAccount renders a as GetAccountResponse, attributes sorted.
func encodeAccount(a *Account) json.RawMessage {
	keys := make([]string, 0, len(a.Attrs))
	for k := range a.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	list := []any{}
	for _, k := range keys {
		for _, v := range a.Attrs[k] {
			list = append(list, attr{N: k, Content: v})
		}
	}
	for _, k := range a.DeniedAttrs {
		list = append(list, map[string]any{"n": k, "pd": true})
	}
	b, _ := json.Marshal(map[string]any{"account": []any{map[string]any{"name": a.Name, "id": a.ID, "a": list}}})
	return b
}

// FuzzParseResponse feeds arbitrary bodies to the response parser and the
// typed decoders. Properties: no panic; an error is a *Fault or
// errMalformed; a fault survives re-encoding; an element survives being
// wrapped again; an account survives re-encoding.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(noSuchAccountFault))
	f.Add([]byte(`{"Body":{"GetAccountResponse":{"account":[{"name":"u@d","id":"Z","a":[{"n":"zimbraId","_content":"Z"},{"n":"x","_content":"1"},{"n":"x","_content":"2"}]}]}}}`))
	names := []string{"AuthResponse", "GetAccountResponse", "SetPasswordResponse", "GetIdentitiesResponse", "GetAllServersResponse",
		"GetGrantsResponse", "GetShareInfoResponse", "GetDataSourcesResponse", "GetConfigResponse"}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range names {
			raw, err := parseResponse(data, name)
			if err != nil {
				if raw != nil {
					t.Fatalf("element with error %v", err)
				}
				var fl *Fault
				if !errors.As(err, &fl) {
					if !errors.Is(err, errMalformed) {
						t.Fatalf("error neither fault nor malformed: %v", err)
					}
					continue
				}
				_, err2 := parseResponse(encodeFault(fl), name)
				var f2 *Fault
				if !errors.As(err2, &f2) || !reflect.DeepEqual(f2, fl) {
					t.Fatalf("fault round trip: %+v → %v", fl, err2)
				}
				continue
			}
			raw2, err := parseResponse(encodeEnvelope(name, raw), name)
			if err != nil {
				t.Fatalf("re-wrapped element: %v", err)
			}
			var c1, c2 bytes.Buffer
			if json.Compact(&c1, raw) != nil || json.Compact(&c2, raw2) != nil || c1.String() != c2.String() {
				t.Fatalf("element changed: %s → %s", raw, raw2)
			}
			switch name {
			case "GetAccountResponse":
				a, err := decodeAccount(raw)
				if err != nil {
					continue
				}
				b, err := decodeAccount(encodeAccount(a))
				if err != nil || !reflect.DeepEqual(a, b) {
					t.Fatalf("account round trip:\n%+v\n%+v (%v)", a, b, err)
				}
			case "GetIdentitiesResponse":
				_, _ = decodeIdentities(raw)
			case "GetAllServersResponse":
				_, _ = decodeServers(raw)
			case "GetGrantsResponse":
				_, _ = decodeGrants(raw)
			case "GetShareInfoResponse":
				_, _ = decodeShares(raw)
			case "GetDataSourcesResponse":
				_, _ = decodeDataSources(raw)
			case "GetConfigResponse":
				var e entryJSON
				if json.Unmarshal(raw, &e) == nil {
					_ = decodeEntry(e)
				}
			case "AuthResponse":
				var ar authResponse
				_ = json.Unmarshal(raw, &ar)
			case "SetPasswordResponse":
				var sr setPasswordResponse
				_ = json.Unmarshal(raw, &sr)
			}
		}
	})
}
