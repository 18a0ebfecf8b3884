package policy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// rcptRequest is what Postfix 3.7 sends at RCPT for an authenticated
// submission over TLS (attribute order and empty values as in a capture
// from Postfix 3.7.11).
const rcptRequest = `request=smtpd_access_policy
protocol_state=RCPT
protocol_name=ESMTP
client_address=192.0.2.45
client_name=unknown
client_port=51234
reverse_client_name=unknown
server_address=192.0.2.10
server_port=587
helo_name=[192.168.1.20]
sender=alice@example.com
recipient=bob@example.net
recipient_count=0
queue_id=DB9C598416B
instance=3845.6b0b08cb.d97e2.0
size=0
etrn_domain=
stress=
sasl_method=PLAIN
sasl_username=alice@example.com
sasl_sender=
ccert_subject=
ccert_issuer=
ccert_fingerprint=
ccert_pubkey_fingerprint=
encryption_protocol=TLSv1.3
encryption_cipher=TLS_AES_256_GCM_SHA384
encryption_keysize=256
policy_context=

`

// req builds wire text from attribute lines: each line, then the empty line.
func req(lines ...string) string {
	return strings.Join(lines, "\n") + "\n\n"
}

func parse(t *testing.T, s string, lim Limits) (*Request, error) {
	t.Helper()
	return ReadRequest(bufio.NewReader(strings.NewReader(s)), lim)
}

func TestReadRequestPostfix37(t *testing.T) {
	got, err := parse(t, rcptRequest, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := Request{
		Request:            "smtpd_access_policy",
		ProtocolState:      "RCPT",
		ProtocolName:       "ESMTP",
		ClientAddress:      "192.0.2.45",
		ClientName:         "unknown",
		ClientPort:         "51234",
		ReverseClientName:  "unknown",
		ServerAddress:      "192.0.2.10",
		ServerPort:         "587",
		HeloName:           "[192.168.1.20]",
		Sender:             "alice@example.com",
		Recipient:          "bob@example.net",
		QueueID:            "DB9C598416B",
		Instance:           "3845.6b0b08cb.d97e2.0",
		SASLMethod:         "PLAIN",
		SASLUsername:       "alice@example.com",
		EncryptionProtocol: "TLSv1.3",
		EncryptionCipher:   "TLS_AES_256_GCM_SHA384",
		EncryptionKeysize:  256,
	}
	if *got != want {
		t.Errorf("got  %+v\nwant %+v", *got, want)
	}
}

// TestReadRequestEveryAttribute sets each attribute alone on top of the
// two required ones.
func TestReadRequestEveryAttribute(t *testing.T) {
	tests := []struct {
		line string
		want Request
	}{
		{"protocol_name=ESMTP", Request{ProtocolName: "ESMTP"}},
		{"client_address=2001:db8::1", Request{ClientAddress: "2001:db8::1"}},
		{"client_name=mail.example.org", Request{ClientName: "mail.example.org"}},
		{"client_port=40472", Request{ClientPort: "40472"}},
		{"reverse_client_name=rev.example.org", Request{ReverseClientName: "rev.example.org"}},
		{"server_address=127.0.0.1", Request{ServerAddress: "127.0.0.1"}},
		{"server_port=2525", Request{ServerPort: "2525"}},
		{"helo_name=client.example.org", Request{HeloName: "client.example.org"}},
		{"sender=a@example.com", Request{Sender: "a@example.com"}},
		{"recipient=r1@example.net", Request{Recipient: "r1@example.net"}},
		{"recipient_count=61", Request{RecipientCount: 61}},
		{"queue_id=4Qx9Zk1fJBz3y", Request{QueueID: "4Qx9Zk1fJBz3y"}},
		{"instance=3845.6b0b08cb.d97e2.0", Request{Instance: "3845.6b0b08cb.d97e2.0"}},
		{"size=10485760", Request{Size: 10485760}},
		{"size=9223372036854775807", Request{Size: 9223372036854775807}},
		{"etrn_domain=example.org", Request{ETRNDomain: "example.org"}},
		{"stress=yes", Request{Stress: "yes"}},
		{"sasl_method=LOGIN", Request{SASLMethod: "LOGIN"}},
		{"sasl_username=jörg@example.de", Request{SASLUsername: "jörg@example.de"}},
		{"sasl_sender=other@example.com", Request{SASLSender: "other@example.com"}},
		{"ccert_subject=solaris9.porcupine.org", Request{CCertSubject: "solaris9.porcupine.org"}},
		// SMTPD_POLICY_README's own example.
		{"ccert_issuer=Wietse+20Venema", Request{CCertIssuer: "Wietse Venema"}},
		{"ccert_fingerprint=C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04", Request{CCertFingerprint: "C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04"}},
		{"ccert_pubkey_fingerprint=68:B3:29:DA:98:93:E3:40:99:C7:D8:AD:5C:B9:C9:40", Request{CCertPubkeyFingerprint: "68:B3:29:DA:98:93:E3:40:99:C7:D8:AD:5C:B9:C9:40"}},
		{"encryption_protocol=TLSv1.2", Request{EncryptionProtocol: "TLSv1.2"}},
		{"encryption_cipher=ECDHE-RSA-AES256-GCM-SHA384", Request{EncryptionCipher: "ECDHE-RSA-AES256-GCM-SHA384"}},
		{"encryption_keysize=128", Request{EncryptionKeysize: 128}},
		{"policy_context=submission", Request{PolicyContext: "submission"}},
		{"compatibility_level=3.6", Request{CompatibilityLevel: "3.6"}},
		{"mail_version=3.8.1", Request{MailVersion: "3.8.1"}},
		{"tls_sni=smtp.example.org", Request{TLSSNI: "smtp.example.org"}},
	}
	covered := map[string]bool{"request": true, "protocol_state": true}
	for _, tt := range tests {
		name, _, _ := strings.Cut(tt.line, "=")
		covered[name] = true
		t.Run(name, func(t *testing.T) {
			got, err := parse(t, req("request=smtpd_access_policy", "protocol_state=MAIL", tt.line), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Request, want.ProtocolState = RequestType, StateMail
			if *got != want {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
	for _, a := range attrs {
		if !covered[a.name] {
			t.Errorf("attribute %s has no test case", a.name)
		}
	}
}

func TestReadRequestStates(t *testing.T) {
	for _, st := range []string{"CONNECT", "EHLO", "HELO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "VRFY", "ETRN"} {
		got, err := parse(t, req("protocol_state="+st, "request=smtpd_access_policy"), Limits{})
		if err != nil {
			t.Errorf("%s: %v", st, err)
			continue
		}
		if got.ProtocolState != st {
			t.Errorf("ProtocolState = %q, want %q", got.ProtocolState, st)
		}
	}
}

// TestReadRequestMissingValues: an unavailable value may be absent, empty,
// or "0" for numbers (SMTPD_POLICY_README).
func TestReadRequestMissingValues(t *testing.T) {
	base := []string{"request=smtpd_access_policy", "protocol_state=END-OF-MESSAGE"}
	for name, extra := range map[string][]string{
		"absent": nil,
		"empty":  {"recipient_count=", "size=", "encryption_keysize=", "sender=", "ccert_subject="},
		"zero":   {"recipient_count=0", "size=0", "encryption_keysize=0"},
		"padded": {"recipient_count=000", "size=00"},
	} {
		got, err := parse(t, req(append(base, extra...)...), Limits{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := Request{Request: RequestType, ProtocolState: StateEndOfMessage}
		if *got != want {
			t.Errorf("%s: got %+v, want %+v", name, *got, want)
		}
	}
}

func TestReadRequestLenient(t *testing.T) {
	tests := []struct {
		name, in string
		want     Request
	}{
		{"any order", req("sender=a@x", "protocol_state=RCPT", "request=smtpd_access_policy"),
			Request{Sender: "a@x"}},
		{"unknown attributes ignored", req("request=smtpd_access_policy", "future_attr=1", "x=", "protocol_state=RCPT"),
			Request{}},
		{"last duplicate wins", req("request=smtpd_access_policy", "protocol_state=RCPT", "sender=first@x", "sender=last@x", "size=1", "size=2"),
			Request{Sender: "last@x", Size: 2}},
		{"CRLF lines", "request=smtpd_access_policy\r\nprotocol_state=RCPT\r\nsender=a@x\r\n\r\n",
			Request{Sender: "a@x"}},
		{"value with =", req("request=smtpd_access_policy", "protocol_state=RCPT", "policy_context=a=b"),
			Request{PolicyContext: "a=b"}},
		{"xtext lowercase hex and raw bytes", req("request=smtpd_access_policy", "protocol_state=RCPT", "ccert_subject=J+c3+b6rg M"),
			Request{CCertSubject: "Jörg M"}},
		{"TAB allowed", req("request=smtpd_access_policy", "protocol_state=RCPT", "policy_context=a\tb"),
			Request{PolicyContext: "a\tb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(t, tt.in, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Request, want.ProtocolState = RequestType, StateRcpt
			if *got != want {
				t.Errorf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestReadRequestErrors(t *testing.T) {
	head := "request=smtpd_access_policy\nprotocol_state=RCPT\n"
	small := Limits{MaxLineLength: 64, MaxAttributes: 8, MaxRequestBytes: 256}
	tests := []struct {
		name string
		in   string
		lim  Limits
		want error
	}{
		{"no =", head + "sender\n\n", Limits{}, ErrMalformedLine},
		{"empty name", head + "=value\n\n", Limits{}, ErrMalformedLine},
		{"line too long", head + "sender=" + strings.Repeat("a", 58) + "\n\n", small, ErrLineTooLong},
		{"line too long, no newline", head + "sender=" + strings.Repeat("a", 1000), small, ErrLineTooLong},
		{"default line limit", head + "sender=" + strings.Repeat("a", DefaultMaxLineLength) + "\n\n", Limits{}, ErrLineTooLong},
		{"too many attributes", head + strings.Repeat("x=1\n", 7) + "\n", small, ErrTooManyAttributes},
		{"request too large", head + strings.Repeat("sender="+strings.Repeat("a", 50)+"\n", 5) + "\n", small, ErrRequestTooLarge},
		{"missing request", "protocol_state=RCPT\n\n", Limits{}, ErrNotPolicyRequest},
		{"other request", "request=junk\nprotocol_state=RCPT\n\n", Limits{}, ErrNotPolicyRequest},
		{"request overridden", head + "request=junk\n\n", Limits{}, ErrNotPolicyRequest},
		{"empty request", "\n", Limits{}, ErrNotPolicyRequest},
		{"missing state", "request=smtpd_access_policy\n\n", Limits{}, ErrInvalidProtocolState},
		{"unknown state", "request=smtpd_access_policy\nprotocol_state=BOGUS\n\n", Limits{}, ErrInvalidProtocolState},
		{"lowercase state", "request=smtpd_access_policy\nprotocol_state=rcpt\n\n", Limits{}, ErrInvalidProtocolState},
		{"NUL in value", head + "sasl_username=al\x00ice\n\n", Limits{}, ErrInvalidText},
		{"NUL in name", head + "sasl\x00username=alice\n\n", Limits{}, ErrInvalidText},
		{"control char", head + "sender=a\x1b[31m@x\n\n", Limits{}, ErrInvalidText},
		{"bare CR inside", head + "sender=a\rb\n\n", Limits{}, ErrInvalidText},
		{"DEL", head + "sender=a\x7f\n\n", Limits{}, ErrInvalidText},
		{"invalid UTF-8", head + "sender=\xff\xfe@x\n\n", Limits{}, ErrInvalidText},
		{"invalid UTF-8 in unknown attribute", head + "other=\xc3\n\n", Limits{}, ErrInvalidText},
		{"letters in number", head + "size=12k\n\n", Limits{}, ErrInvalidNumber},
		{"negative number", head + "recipient_count=-1\n\n", Limits{}, ErrInvalidNumber},
		{"plus sign", head + "size=+5\n\n", Limits{}, ErrInvalidNumber},
		{"int overflow", head + "recipient_count=2147483648\n\n", Limits{}, ErrInvalidNumber},
		{"int64 overflow", head + "size=9223372036854775808\n\n", Limits{}, ErrInvalidNumber},
		{"xtext lone +", head + "ccert_subject=a+\n\n", Limits{}, ErrInvalidXtext},
		{"xtext short", head + "ccert_issuer=a+4\n\n", Limits{}, ErrInvalidXtext},
		{"xtext not hex", head + "ccert_subject=+GG\n\n", Limits{}, ErrInvalidXtext},
		{"xtext NUL", head + "ccert_subject=a+00b\n\n", Limits{}, ErrInvalidText},
		{"xtext newline", head + "ccert_subject=a+0Ab\n\n", Limits{}, ErrInvalidText},
		{"xtext invalid UTF-8", head + "ccert_subject=+FF\n\n", Limits{}, ErrInvalidText},
		{"no empty line", head, Limits{}, io.ErrUnexpectedEOF},
		{"cut mid-line", head + "sender=a", Limits{}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse(t, tt.in, tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("got a request with the error: %+v", got)
			}
		})
	}
}

func TestReadRequestErrorHidesValues(t *testing.T) {
	_, err := parse(t, "request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username=hunter2\x00\n\n", Limits{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v; want an error without the value", err)
	}
	_, err = parse(t, "request=smtpd_access_policy\nprotocol_state=RCPT\nsize=hunter2\n\n", Limits{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "size") {
		t.Fatalf("err = %v; want an error naming the attribute, not its value", err)
	}
}

func TestReadRequestEOF(t *testing.T) {
	if _, err := parse(t, "", Limits{}); err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
}

// TestReadRequestStream reads several requests from one stream, as a
// server does on one connection, then sees the clean end.
func TestReadRequestStream(t *testing.T) {
	in := rcptRequest + req("request=smtpd_access_policy", "protocol_state=END-OF-MESSAGE", "recipient_count=3", "size=2048") + rcptRequest
	br := bufio.NewReader(strings.NewReader(in))
	var states []string
	for {
		r, err := ReadRequest(br, Limits{})
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, r.ProtocolState)
		if r.ProtocolState == StateEndOfMessage && (r.RecipientCount != 3 || r.Size != 2048 || r.Sender != "") {
			t.Errorf("values leaked between requests: %+v", r)
		}
	}
	if strings.Join(states, ",") != "RCPT,END-OF-MESSAGE,RCPT" {
		t.Errorf("states = %v", states)
	}
}

// TestReadRequestSmallBuffer parses lines longer than the bufio.Reader's
// buffer.
func TestReadRequestSmallBuffer(t *testing.T) {
	long := strings.Repeat("x", 100) + "@example.com"
	in := req("request=smtpd_access_policy", "protocol_state=RCPT", "sender="+long, "recipient="+long+"\r")
	r, err := ReadRequest(bufio.NewReaderSize(strings.NewReader(in), 16), Limits{MaxLineLength: 200})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sender != long || r.Recipient != long {
		t.Errorf("sender %q recipient %q", r.Sender, r.Recipient)
	}
	_, err = ReadRequest(bufio.NewReaderSize(strings.NewReader(in), 16), Limits{MaxLineLength: 100})
	if !errors.Is(err, ErrLineTooLong) {
		t.Errorf("err = %v, want ErrLineTooLong", err)
	}
}

func fullRequest() *Request {
	return &Request{
		Request:                RequestType,
		ProtocolState:          StateEndOfMessage,
		ProtocolName:           "ESMTP",
		ClientAddress:          "2001:db8::25",
		ClientName:             "mail.example.org",
		ClientPort:             "40472",
		ReverseClientName:      "mail.example.org",
		ServerAddress:          "192.0.2.10",
		ServerPort:             "587",
		HeloName:               "mail.example.org",
		Sender:                 "alice@example.com",
		Recipient:              "",
		RecipientCount:         61,
		QueueID:                "4Qx9Zk1fJBz3y",
		Instance:               "1c2f.6761a3b2.8c7a1.0",
		Size:                   123456,
		ETRNDomain:             "",
		Stress:                 "yes",
		SASLMethod:             "PLAIN",
		SASLUsername:           "alice@example.com",
		SASLSender:             "",
		CCertSubject:           "Jörg + Co",
		CCertIssuer:            "Example CA=R3",
		CCertFingerprint:       "C2:9D:F4:87",
		CCertPubkeyFingerprint: "68:B3:29:DA",
		EncryptionProtocol:     "TLSv1.3",
		EncryptionCipher:       "TLS_AES_256_GCM_SHA384",
		EncryptionKeysize:      256,
		PolicyContext:          "submission",
		CompatibilityLevel:     "3.6",
		MailVersion:            "3.8.1",
		TLSSNI:                 "smtp.example.org",
	}
}

func TestEncode(t *testing.T) {
	var b bytes.Buffer
	if err := fullRequest().Encode(&b); err != nil {
		t.Fatal(err)
	}
	// Postfix's attribute order; ccert_* as Postfix's xtext_quote writes
	// them.
	want := req(
		"request=smtpd_access_policy",
		"protocol_state=END-OF-MESSAGE",
		"protocol_name=ESMTP",
		"client_address=2001:db8::25",
		"client_name=mail.example.org",
		"client_port=40472",
		"reverse_client_name=mail.example.org",
		"server_address=192.0.2.10",
		"server_port=587",
		"helo_name=mail.example.org",
		"sender=alice@example.com",
		"recipient=",
		"recipient_count=61",
		"queue_id=4Qx9Zk1fJBz3y",
		"instance=1c2f.6761a3b2.8c7a1.0",
		"size=123456",
		"etrn_domain=",
		"stress=yes",
		"sasl_method=PLAIN",
		"sasl_username=alice@example.com",
		"sasl_sender=",
		"ccert_subject=J+C3+B6rg+20+2B+20Co",
		"ccert_issuer=Example+20CA=R3",
		"ccert_fingerprint=C2:9D:F4:87",
		"ccert_pubkey_fingerprint=68:B3:29:DA",
		"encryption_protocol=TLSv1.3",
		"encryption_cipher=TLS_AES_256_GCM_SHA384",
		"encryption_keysize=256",
		"policy_context=submission",
		"compatibility_level=3.6",
		"mail_version=3.8.1",
		"tls_sni=smtp.example.org",
	)
	if b.String() != want {
		t.Errorf("Encode:\n%s\nwant:\n%s", b.String(), want)
	}
	got, err := ReadRequest(bufio.NewReader(&b), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if *got != *fullRequest() {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", *got, *fullRequest())
	}
}

func TestEncodeDefaultsRequestType(t *testing.T) {
	var b bytes.Buffer
	if err := (&Request{ProtocolState: StateRcpt}).Encode(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "request=smtpd_access_policy\n") {
		t.Errorf("Encode = %q", b.String())
	}
}

func TestEncodeRefusesUnparsable(t *testing.T) {
	for name, r := range map[string]*Request{
		"newline injects an attribute": {ProtocolState: StateRcpt, Sender: "a@x\nsasl_username=admin"},
		"NUL":                          {ProtocolState: StateRcpt, HeloName: "a\x00"},
		"invalid UTF-8 in xtext field": {ProtocolState: StateRcpt, CCertSubject: "\xff"},
		"control in xtext field":       {ProtocolState: StateRcpt, CCertIssuer: "a\nb"},
		"negative size":                {ProtocolState: StateRcpt, Size: -1},
		"negative count":               {ProtocolState: StateRcpt, RecipientCount: -1},
		"count too large":              {ProtocolState: StateRcpt, RecipientCount: 1 << 31},
	} {
		var b bytes.Buffer
		err := r.Encode(&b)
		if !errors.Is(err, ErrInvalidText) && !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("%s: err = %v", name, err)
		}
		if b.Len() != 0 {
			t.Errorf("%s: wrote %q", name, b.String())
		}
	}
}

// TestValidText compares the word-at-a-time check with a plain loop for
// every byte value at every position of a 17-byte line.
func TestValidText(t *testing.T) {
	plain := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return false
			}
		}
		return utf8.Valid(b)
	}
	line := []byte("sender=alice@x.yz")
	for pos := range line {
		for c := range 256 {
			b := slices.Clone(line)
			b[pos] = byte(c)
			if got, want := validText(b), plain(b); got != want {
				t.Fatalf("validText(%q) = %v, want %v", b, got, want)
			}
		}
	}
	for _, s := range []string{"", "Jörg", "tab\there, and more than eight", "0123456789abcdef\xc3\xb6"} {
		if !validText([]byte(s)) {
			t.Errorf("validText(%q) = false", s)
		}
	}
}

func TestXtext(t *testing.T) {
	tests := []struct{ decoded, encoded string }{
		{"", ""},
		{"Wietse Venema", "Wietse+20Venema"},
		{"a+b", "a+2Bb"},
		{"CN=x, O=y", "CN=x,+20O=y"},
		{"ü", "+C3+BC"},
		{"tab\there", "tab+09here"},
	}
	for _, tt := range tests {
		if got := string(appendXtext(nil, tt.decoded)); got != tt.encoded {
			t.Errorf("appendXtext(%q) = %q, want %q", tt.decoded, got, tt.encoded)
		}
		got, err := appendUnxtext(nil, []byte(tt.encoded))
		if err != nil || string(got) != tt.decoded {
			t.Errorf("appendUnxtext(%q) = %q, %v; want %q", tt.encoded, got, err, tt.decoded)
		}
	}
}

func TestResponses(t *testing.T) {
	long := strings.Repeat("y", 300)
	tests := []struct {
		name string
		got  Response
		want string
	}{
		{"dunno", Dunno(), "DUNNO"},
		{"ok", OK(), "OK"},
		{"hold", Hold("mailbrake: held for review (bulk-recipients)"), "HOLD mailbrake: held for review (bulk-recipients)"},
		{"hold without text", Hold(""), "HOLD"},
		{"defer", Defer("4.7.1 Try again later"), "DEFER 4.7.1 Try again later"},
		{"defer_if_permit", DeferIfPermit("Service temporarily unavailable"), "DEFER_IF_PERMIT Service temporarily unavailable"},
		{"reject", Reject("5.7.1 Message refused by local policy"), "REJECT 5.7.1 Message refused by local policy"},
		{"reply 450", Reply(450, "4.7.1 Slow down"), "450 4.7.1 Slow down"},
		{"reply 554", Reply(554, "5.7.1 No"), "554 5.7.1 No"},
		{"prepend", Prepend("X-Mailbrake-Reasons", "bulk-recipients"), "PREPEND X-Mailbrake-Reasons: bulk-recipients"},
		{"warn", Warn("unusual volume"), "WARN unusual volume"},
		{"CRLF injection", Reject("no\r\n\r\naction=OK"), "REJECT no action=OK"},
		{"controls and surrounding space", Hold("  a\tb\x00c  "), "HOLD a b c"},
		{"non-ASCII", Reject("Jörg’s mail"), "REJECT J?rg?s mail"},
		{"invalid UTF-8", Reject("a\xffb"), "REJECT a?b"},
		{"only controls", Hold("\r\n"), "HOLD"},
		{"truncated", Reject(long), "REJECT " + long[:MaxTextLength]},
		{"truncated, trailing space trimmed", Warn(strings.Repeat("z", MaxTextLength-1) + " tail"), "WARN " + strings.Repeat("z", MaxTextLength-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.Action != tt.want {
				t.Errorf("Action = %q, want %q", tt.got.Action, tt.want)
			}
			if err := tt.got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestResponseValidate(t *testing.T) {
	bad := map[string]Response{
		"empty":                {},
		"newline":              {Action: "DUNNO\naction=OK"},
		"NUL":                  {Action: "REJECT a\x00"},
		"tab":                  {Action: "REJECT\ta"},
		"leading space":        {Action: " DUNNO"},
		"too long":             {Action: "REJECT " + strings.Repeat("a", maxActionLength)},
		"2xx code":             Reply(250, "fine"),
		"6xx code":             Reply(600, "x"),
		"two-digit code":       Reply(45, "x"),
		"four-digit code":      {Action: "4501 x"},
		"prepend without name": Prepend("", "x"),
		"prepend bad name":     Prepend("X Bad", "x"),
		"prepend no colon":     {Action: "PREPEND X-Foo"},
	}
	for name, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: Validate(%q) = nil, want an error", name, r.Action)
		}
	}
	for _, r := range []Response{{Action: "defer_if_permit Service temporarily unavailable"}, {Action: "reject_unverified_sender"}, {Action: "prepend X-A: b"}} {
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%q) = %v", r.Action, err)
		}
	}
}

// FuzzReadRequest checks that ReadRequest never panics, and that whatever
// it accepts survives Encode and a second parse unchanged.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(rcptRequest))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxLineLength: 1024, MaxAttributes: 64, MaxRequestBytes: 16 << 10}
		r1, err := ReadRequest(bufio.NewReader(bytes.NewReader(data)), lim)
		// The long-line path must agree with the fast path.
		r1small, errSmall := ReadRequest(bufio.NewReaderSize(bytes.NewReader(data), 16), lim)
		if (err == nil) != (errSmall == nil) || err == nil && *r1 != *r1small {
			t.Fatalf("16-byte buffer disagrees: %v / %v", err, errSmall)
		}
		if err != nil {
			if r1 != nil {
				t.Fatalf("request returned with error %v", err)
			}
			return
		}
		var wire bytes.Buffer
		if err := r1.Encode(&wire); err != nil {
			t.Fatalf("Encode of a parsed request: %v", err)
		}
		// xtext may triple a ccert_* line.
		r2, err := ReadRequest(bufio.NewReader(bytes.NewReader(wire.Bytes())), Limits{MaxLineLength: 4 << 10, MaxRequestBytes: 1 << 20})
		if err != nil {
			t.Fatalf("parsing Encode output: %v\n%q", err, wire.String())
		}
		if *r1 != *r2 {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", *r1, *r2)
		}
		var again bytes.Buffer
		if err := r2.Encode(&again); err != nil || !bytes.Equal(again.Bytes(), wire.Bytes()) {
			t.Fatalf("Encode not stable: %v", err)
		}
	})
}

// FuzzResponseText checks that any text gives a valid, stable action.
func FuzzResponseText(f *testing.F) {
	for _, s := range []string{"", "held for review", "a\r\nb", "Jörg", strings.Repeat("x", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range []Response{Hold(text), Reject(text), Reply(451, text), Prepend("X-Test", text)} {
			if err := r.Validate(); err != nil {
				t.Fatalf("%q: %v", r.Action, err)
			}
		}
		s := sanitizeText(text)
		if sanitizeText(s) != s {
			t.Fatalf("sanitizeText not idempotent on %q", text)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data := []byte(rcptRequest)
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(data)
		br.Reset(rd)
		if _, err := ReadRequest(br, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	r := fullRequest()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = r.appendWire(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
