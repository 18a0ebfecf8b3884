package policy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// RequestType is the only request type Postfix sends to an SMTPD policy
// service (SMTPD_POLICY_README: "request=smtpd_access_policy").
const RequestType = "smtpd_access_policy"

// The protocol states in which Postfix asks a policy service
// (SMTPD_POLICY_README: "Protocol states are CONNECT, EHLO, HELO, MAIL,
// RCPT, DATA, END-OF-MESSAGE, VRFY or ETRN"). BDAT is reported as DATA.
const (
	StateConnect      = "CONNECT"
	StateEHLO         = "EHLO"
	StateHELO         = "HELO"
	StateMail         = "MAIL"
	StateRcpt         = "RCPT"
	StateData         = "DATA"
	StateEndOfMessage = "END-OF-MESSAGE"
	StateVRFY         = "VRFY"
	StateETRN         = "ETRN"
)

// Request is one SMTPD access policy request. Each field holds the
// attribute named in its comment, with the Postfix version that added it.
// An attribute Postfix did not send is the zero value, as is an empty
// value or, for numbers, "0" (SMTPD_POLICY_README: "the client either
// does not send the attribute, sends the attribute with an empty value
// ("name="), or sends a zero value ("name=0")").
type Request struct {
	Request           string // request (2.1); always RequestType once parsed
	ProtocolState     string // protocol_state (2.1); one of the State constants
	ProtocolName      string // protocol_name (2.1): SMTP or ESMTP
	ClientAddress     string // client_address (2.1)
	ClientName        string // client_name (2.1); "unknown" when not verified
	ClientPort        string // client_port (3.0); "unknown" when not known
	ReverseClientName string // reverse_client_name (2.1)
	ServerAddress     string // server_address (3.2)
	ServerPort        string // server_port (3.2)
	HeloName          string // helo_name (2.1)
	Sender            string // sender (2.1)
	// Recipient (recipient, 2.1) is set at RCPT, and at DATA and
	// END-OF-MESSAGE only when the message has a single recipient.
	Recipient string
	// RecipientCount (recipient_count, 2.1) is non-zero only at DATA and
	// END-OF-MESSAGE.
	RecipientCount int
	QueueID        string // queue_id (2.1)
	// Instance (instance, 2.1) is the same for every request about one
	// message delivery on a connection.
	Instance string
	// Size (size, 2.2) is the MAIL FROM SIZE= value, and the real message
	// size at END-OF-MESSAGE.
	Size         int64
	ETRNDomain   string // etrn_domain (2.3)
	Stress       string // stress (2.5): empty or "yes"
	SASLMethod   string // sasl_method (2.2)
	SASLUsername string // sasl_username (2.2)
	SASLSender   string // sasl_sender (2.2)
	// The ccert_* attributes (2.2, pubkey 2.9) arrive xtext-encoded
	// (SMTPD_POLICY_README: "some characters are represented by +XX");
	// these fields hold the decoded text.
	CCertSubject           string
	CCertIssuer            string
	CCertFingerprint       string
	CCertPubkeyFingerprint string
	EncryptionProtocol     string // encryption_protocol (2.3)
	EncryptionCipher       string // encryption_cipher (2.3)
	EncryptionKeysize      int    // encryption_keysize (2.3); 0 in plaintext
	PolicyContext          string // policy_context (3.1)
	CompatibilityLevel     string // compatibility_level (3.8)
	MailVersion            string // mail_version (3.8)
	TLSSNI                 string // tls_sni (3.12)

	// claim is the decider's answer state when the server decides within
	// a DecisionTimeout (see Claim); nil otherwise.
	claim *atomic.Int32
}

// The states of a request decided within a DecisionTimeout.
const (
	claimPending  int32 = iota // being decided
	claimAnswered              // the handler's response is the answer
	claimTimedOut              // the server answered on its own
)

// Claim reports whether the handler's response to r will be the answer
// the client gets, and from then on makes it so: the server, which gives
// up on a request not decided within its DecisionTimeout, waits for the
// response of a handler that claimed it. A handler calls Claim once it has
// decided and before it acts on the decision (records a hold, opens an
// incident): false means the request was answered already without it —
// the message went on as that answer said — and the decision must not be
// acted on. Without a DecisionTimeout it is always true.
func (r *Request) Claim() bool {
	if r.claim == nil {
		return true
	}
	return r.claim.CompareAndSwap(claimPending, claimAnswered) || r.claim.Load() == claimAnswered
}

// Limits bound what ReadRequest accepts from one request. A zero or
// negative field means its default.
type Limits struct {
	// MaxLineLength is the longest "name=value" line, without its newline.
	MaxLineLength int
	// MaxAttributes is the most attribute lines in one request.
	MaxAttributes int
	// MaxRequestBytes is the most bytes in one request, newlines included.
	MaxRequestBytes int
}

// Defaults for Limits.
const (
	// DefaultMaxLineLength: every value Postfix takes from the SMTP client
	// (helo_name, sender, recipient) comes from a command line that smtpd
	// caps at line_length_limit (2048 bytes), and xtext at most triples a
	// certificate name. 8 KiB is four times the SMTP cap, for sites that
	// raised line_length_limit, and still bounds memory per line.
	DefaultMaxLineLength = 8 << 10
	// DefaultMaxAttributes: Postfix 3.12 sends 32 attributes; 256 leaves
	// room for attributes added by later versions.
	DefaultMaxAttributes = 256
	// DefaultMaxRequestBytes: a Postfix request is about 700 bytes, and
	// about 7 KiB with every SMTP-supplied value at 2048 bytes. 64 KiB
	// bounds a connection's buffered request with ample headroom.
	DefaultMaxRequestBytes = 64 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxLineLength <= 0 {
		l.MaxLineLength = DefaultMaxLineLength
	}
	if l.MaxAttributes <= 0 {
		l.MaxAttributes = DefaultMaxAttributes
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = DefaultMaxRequestBytes
	}
	return l
}

// Errors returned (wrapped) by ReadRequest. A request that ends early
// gives an error wrapping io.ErrUnexpectedEOF; a connection closed between
// requests gives io.EOF itself.
var (
	ErrLineTooLong       = errors.New("policy: attribute line too long")
	ErrRequestTooLarge   = errors.New("policy: request too large")
	ErrTooManyAttributes = errors.New("policy: too many attributes")
	// ErrMalformedLine: a line without "=" or with an empty name.
	ErrMalformedLine = errors.New("policy: malformed attribute line, want name=value")
	// ErrInvalidText: NUL, a control character other than TAB, or invalid
	// UTF-8 in a name or value (SMTPD_POLICY_README: "An attribute name
	// must not contain "=", null or newline, and an attribute value must
	// not contain null or newline"; decoded ccert_* values are "an UTF-8
	// string without non-printable ASCII characters").
	ErrInvalidText   = errors.New("policy: NUL, control character or invalid UTF-8 in attribute")
	ErrInvalidNumber = errors.New("policy: invalid number")
	ErrInvalidXtext  = errors.New("policy: invalid xtext")
	// ErrNotPolicyRequest: the request attribute is missing or is not
	// RequestType.
	ErrNotPolicyRequest = errors.New("policy: not an smtpd_access_policy request")
	// ErrInvalidProtocolState: protocol_state is missing or is not one of
	// the State constants.
	ErrInvalidProtocolState = errors.New("policy: invalid protocol_state")
)

// attrID numbers the known attributes in the order Postfix sends them
// (a Postfix 3.7.11 capture, then the 3.8 and 3.12 additions); Encode
// writes them in this order.
type attrID uint8

const (
	attrRequest attrID = iota
	attrProtocolState
	attrProtocolName
	attrClientAddress
	attrClientName
	attrClientPort
	attrReverseClientName
	attrServerAddress
	attrServerPort
	attrHeloName
	attrSender
	attrRecipient
	attrRecipientCount
	attrQueueID
	attrInstance
	attrSize
	attrETRNDomain
	attrStress
	attrSASLMethod
	attrSASLUsername
	attrSASLSender
	attrCCertSubject
	attrCCertIssuer
	attrCCertFingerprint
	attrCCertPubkeyFingerprint
	attrEncryptionProtocol
	attrEncryptionCipher
	attrEncryptionKeysize
	attrPolicyContext
	attrCompatibilityLevel
	attrMailVersion
	attrTLSSNI
	numAttrs
)

type attrKind uint8

const (
	kindString attrKind = iota
	kindXtext           // string, xtext on the wire
	kindInt             // int, at most math.MaxInt32
	kindInt64           // int64
)

var attrs = [numAttrs]struct {
	name string
	kind attrKind
}{
	attrRequest:                {"request", kindString},
	attrProtocolState:          {"protocol_state", kindString},
	attrProtocolName:           {"protocol_name", kindString},
	attrClientAddress:          {"client_address", kindString},
	attrClientName:             {"client_name", kindString},
	attrClientPort:             {"client_port", kindString},
	attrReverseClientName:      {"reverse_client_name", kindString},
	attrServerAddress:          {"server_address", kindString},
	attrServerPort:             {"server_port", kindString},
	attrHeloName:               {"helo_name", kindString},
	attrSender:                 {"sender", kindString},
	attrRecipient:              {"recipient", kindString},
	attrRecipientCount:         {"recipient_count", kindInt},
	attrQueueID:                {"queue_id", kindString},
	attrInstance:               {"instance", kindString},
	attrSize:                   {"size", kindInt64},
	attrETRNDomain:             {"etrn_domain", kindString},
	attrStress:                 {"stress", kindString},
	attrSASLMethod:             {"sasl_method", kindString},
	attrSASLUsername:           {"sasl_username", kindString},
	attrSASLSender:             {"sasl_sender", kindString},
	attrCCertSubject:           {"ccert_subject", kindXtext},
	attrCCertIssuer:            {"ccert_issuer", kindXtext},
	attrCCertFingerprint:       {"ccert_fingerprint", kindXtext},
	attrCCertPubkeyFingerprint: {"ccert_pubkey_fingerprint", kindXtext},
	attrEncryptionProtocol:     {"encryption_protocol", kindString},
	attrEncryptionCipher:       {"encryption_cipher", kindString},
	attrEncryptionKeysize:      {"encryption_keysize", kindInt},
	attrPolicyContext:          {"policy_context", kindString},
	attrCompatibilityLevel:     {"compatibility_level", kindString},
	attrMailVersion:            {"mail_version", kindString},
	attrTLSSNI:                 {"tls_sni", kindString},
}

// lookupAttr maps an attribute name to its id without allocating.
func lookupAttr(name []byte) (attrID, bool) {
	switch string(name) {
	case "request":
		return attrRequest, true
	case "protocol_state":
		return attrProtocolState, true
	case "protocol_name":
		return attrProtocolName, true
	case "client_address":
		return attrClientAddress, true
	case "client_name":
		return attrClientName, true
	case "client_port":
		return attrClientPort, true
	case "reverse_client_name":
		return attrReverseClientName, true
	case "server_address":
		return attrServerAddress, true
	case "server_port":
		return attrServerPort, true
	case "helo_name":
		return attrHeloName, true
	case "sender":
		return attrSender, true
	case "recipient":
		return attrRecipient, true
	case "recipient_count":
		return attrRecipientCount, true
	case "queue_id":
		return attrQueueID, true
	case "instance":
		return attrInstance, true
	case "size":
		return attrSize, true
	case "etrn_domain":
		return attrETRNDomain, true
	case "stress":
		return attrStress, true
	case "sasl_method":
		return attrSASLMethod, true
	case "sasl_username":
		return attrSASLUsername, true
	case "sasl_sender":
		return attrSASLSender, true
	case "ccert_subject":
		return attrCCertSubject, true
	case "ccert_issuer":
		return attrCCertIssuer, true
	case "ccert_fingerprint":
		return attrCCertFingerprint, true
	case "ccert_pubkey_fingerprint":
		return attrCCertPubkeyFingerprint, true
	case "encryption_protocol":
		return attrEncryptionProtocol, true
	case "encryption_cipher":
		return attrEncryptionCipher, true
	case "encryption_keysize":
		return attrEncryptionKeysize, true
	case "policy_context":
		return attrPolicyContext, true
	case "compatibility_level":
		return attrCompatibilityLevel, true
	case "mail_version":
		return attrMailVersion, true
	case "tls_sni":
		return attrTLSSNI, true
	}
	return 0, false
}

// str returns the string field for id, or nil for a numeric attribute.
func (r *Request) str(id attrID) *string {
	switch id {
	case attrRequest:
		return &r.Request
	case attrProtocolState:
		return &r.ProtocolState
	case attrProtocolName:
		return &r.ProtocolName
	case attrClientAddress:
		return &r.ClientAddress
	case attrClientName:
		return &r.ClientName
	case attrClientPort:
		return &r.ClientPort
	case attrReverseClientName:
		return &r.ReverseClientName
	case attrServerAddress:
		return &r.ServerAddress
	case attrServerPort:
		return &r.ServerPort
	case attrHeloName:
		return &r.HeloName
	case attrSender:
		return &r.Sender
	case attrRecipient:
		return &r.Recipient
	case attrQueueID:
		return &r.QueueID
	case attrInstance:
		return &r.Instance
	case attrETRNDomain:
		return &r.ETRNDomain
	case attrStress:
		return &r.Stress
	case attrSASLMethod:
		return &r.SASLMethod
	case attrSASLUsername:
		return &r.SASLUsername
	case attrSASLSender:
		return &r.SASLSender
	case attrCCertSubject:
		return &r.CCertSubject
	case attrCCertIssuer:
		return &r.CCertIssuer
	case attrCCertFingerprint:
		return &r.CCertFingerprint
	case attrCCertPubkeyFingerprint:
		return &r.CCertPubkeyFingerprint
	case attrEncryptionProtocol:
		return &r.EncryptionProtocol
	case attrEncryptionCipher:
		return &r.EncryptionCipher
	case attrPolicyContext:
		return &r.PolicyContext
	case attrCompatibilityLevel:
		return &r.CompatibilityLevel
	case attrMailVersion:
		return &r.MailVersion
	case attrTLSSNI:
		return &r.TLSSNI
	}
	return nil
}

// num returns the numeric field for id as an int64.
func (r *Request) num(id attrID) int64 {
	switch id {
	case attrRecipientCount:
		return int64(r.RecipientCount)
	case attrSize:
		return r.Size
	case attrEncryptionKeysize:
		return int64(r.EncryptionKeysize)
	}
	return 0
}

// validState reports whether s is a protocol state Postfix sends, and
// returns it as the package constant (so the Request does not keep the
// request buffer alive through it).
func validState(s []byte) (string, bool) {
	switch string(s) {
	case StateConnect:
		return StateConnect, true
	case StateEHLO:
		return StateEHLO, true
	case StateHELO:
		return StateHELO, true
	case StateMail:
		return StateMail, true
	case StateRcpt:
		return StateRcpt, true
	case StateData:
		return StateData, true
	case StateEndOfMessage:
		return StateEndOfMessage, true
	case StateVRFY:
		return StateVRFY, true
	case StateETRN:
		return StateETRN, true
	}
	return "", false
}

// parser reads requests. Its buffers are reused from request to request,
// so parsing a request costs two allocations: the Request and one string
// holding all its values.
type parser struct {
	vals []byte // decoded values of the known attributes
	long []byte // assembles a line longer than the bufio.Reader's buffer
}

var parserPool = sync.Pool{New: func() any { return new(parser) }}

// ReadRequest reads one policy request from r: "name=value" lines up to an
// empty line (SMTPD_POLICY_README: "The client request is a sequence of
// name=value attributes separated by newline, and is terminated by an
// empty line"). A "\r" before a newline is ignored, so requests typed
// into telnet work. Attributes may come in any order; unknown attributes
// are ignored and, when an attribute repeats, the last value counts (the
// README allows either).
//
// At a clean end of input before a request starts ReadRequest returns
// io.EOF. Every other error is wrapped with context, carries no attribute
// value, and matches one of the Err variables or io.ErrUnexpectedEOF with
// errors.Is, or is r's read error. After an error the position in r is
// unspecified.
func ReadRequest(r *bufio.Reader, lim Limits) (*Request, error) {
	p := parserPool.Get().(*parser)
	req, err := p.read(r, lim.withDefaults())
	if cap(p.vals) <= DefaultMaxRequestBytes && cap(p.long) <= 2*DefaultMaxLineLength {
		parserPool.Put(p)
	}
	return req, err
}

// span locates a value in parser.vals.
type span struct{ off, end int32 }

// read parses one request; lim must have its defaults applied.
func (p *parser) read(br *bufio.Reader, lim Limits) (*Request, error) {
	var (
		spans              [numAttrs]span
		nums               [3]int64 // recipient_count, size, encryption_keysize
		total, lineNo      int
		state, requestType string
		stateOK            bool
	)
	p.vals = p.vals[:0]
	for {
		line, n, err := p.readLine(br, lim.MaxLineLength)
		total += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				if total == 0 {
					return nil, io.EOF
				}
				err = io.ErrUnexpectedEOF
			}
			if errors.Is(err, ErrLineTooLong) {
				return nil, fmt.Errorf("reading policy request: line %d: %w (limit %d bytes)", lineNo+1, err, lim.MaxLineLength)
			}
			return nil, fmt.Errorf("reading policy request: %w", err)
		}
		if total > lim.MaxRequestBytes {
			return nil, fmt.Errorf("reading policy request: %w (limit %d bytes)", ErrRequestTooLarge, lim.MaxRequestBytes)
		}
		// SMTPD_POLICY_README: the request "is terminated by an empty line".
		if len(line) == 0 {
			break
		}
		lineNo++
		if lineNo > lim.MaxAttributes {
			return nil, fmt.Errorf("reading policy request: %w (limit %d)", ErrTooManyAttributes, lim.MaxAttributes)
		}
		if !validText(line) {
			return nil, fmt.Errorf("reading policy request: line %d: %w", lineNo, ErrInvalidText)
		}
		eq := bytes.IndexByte(line, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("reading policy request: line %d: %w", lineNo, ErrMalformedLine)
		}
		id, known := lookupAttr(line[:eq])
		if !known {
			// SMTPD_POLICY_README: "The policy server should ignore any
			// attributes that it does not care about."
			continue
		}
		val := line[eq+1:]
		a := attrs[id]
		switch a.kind {
		case kindString:
			switch id {
			case attrProtocolState:
				state, stateOK = validState(val)
			case attrRequest:
				requestType = ""
				if string(val) == RequestType {
					requestType = RequestType
				}
			default:
				off := len(p.vals)
				p.vals = append(p.vals, val...)
				spans[id] = span{int32(off), int32(len(p.vals))}
			}
		case kindXtext:
			off := len(p.vals)
			p.vals, err = appendUnxtext(p.vals, val)
			if err != nil {
				return nil, fmt.Errorf("reading policy request: line %d (%s): %w", lineNo, a.name, err)
			}
			if !validText(p.vals[off:]) {
				return nil, fmt.Errorf("reading policy request: line %d (%s): decoded xtext: %w", lineNo, a.name, ErrInvalidText)
			}
			spans[id] = span{int32(off), int32(len(p.vals))}
		case kindInt, kindInt64:
			limit := uint64(math.MaxInt64)
			if a.kind == kindInt {
				limit = math.MaxInt32
			}
			v, ok := parseUint(val, limit)
			if !ok {
				return nil, fmt.Errorf("reading policy request: line %d (%s): %w", lineNo, a.name, ErrInvalidNumber)
			}
			switch id {
			case attrRecipientCount:
				nums[0] = int64(v)
			case attrSize:
				nums[1] = int64(v)
			case attrEncryptionKeysize:
				nums[2] = int64(v)
			}
		}
	}
	if requestType == "" {
		return nil, fmt.Errorf("reading policy request: %w", ErrNotPolicyRequest)
	}
	if !stateOK {
		return nil, fmt.Errorf("reading policy request: %w", ErrInvalidProtocolState)
	}
	req := &Request{
		Request:           requestType,
		ProtocolState:     state,
		RecipientCount:    int(nums[0]),
		Size:              nums[1],
		EncryptionKeysize: int(nums[2]),
	}
	s := string(p.vals) // the one allocation for every value
	for id := range numAttrs {
		if sp := spans[id]; sp.end > sp.off {
			*req.str(id) = s[sp.off:sp.end]
		}
	}
	return req, nil
}

// readLine returns the next line without its "\n" or "\r\n", and how many
// bytes it consumed. The line is valid until the next read from br.
func (p *parser) readLine(br *bufio.Reader, maxLen int) ([]byte, int, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Longer than br's buffer: assemble it, up to the limit.
		p.long = append(p.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(p.long) > maxLen+1 { // +1: a "\r" may still be stripped
				return nil, len(p.long), ErrLineTooLong
			}
			line, err = br.ReadSlice('\n')
			p.long = append(p.long, line...)
		}
		line = p.long
	}
	n := len(line)
	if err != nil {
		if n > maxLen {
			return nil, n, ErrLineTooLong
		}
		return nil, n, err
	}
	line = line[:n-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) > maxLen {
		return nil, n, ErrLineTooLong
	}
	return line, n, nil
}

// validText reports whether b is UTF-8 without NUL, DEL or control
// characters other than TAB.
func validText(b []byte) bool {
	// Eight bytes at a time while they are printable ASCII, which is
	// nearly every value Postfix sends; the rest goes byte by byte.
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		nonASCII := w & high
		below20 := (w - 0x20*ones) &^ w & high // some byte < 0x20
		del := w ^ 0x7f*ones
		isDEL := (del - ones) &^ del & high // some byte == 0x7f
		if nonASCII|below20|isDEL != 0 {
			break
		}
	}
	return validTextSlow(b[i:])
}

func validTextSlow(b []byte) bool {
	ascii := true
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return ascii || utf8.Valid(b)
}

// validTextString is validText for a string.
func validTextString(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

// parseUint parses a decimal number of at most limit; empty means 0
// (SMTPD_POLICY_README: an unavailable value may be sent empty).
func parseUint(b []byte, limit uint64) (uint64, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > limit {
			return 0, false
		}
	}
	return v, true
}

// appendUnxtext appends the decoded xtext v to b. Postfix's xtext_unquote
// accepts "+XX" in either case; other bytes stand for themselves.
func appendUnxtext(b, v []byte) ([]byte, error) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '+' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(v) {
			return b, ErrInvalidXtext
		}
		hi, ok1 := unhex(v[i+1])
		lo, ok2 := unhex(v[i+2])
		if !ok1 || !ok2 {
			return b, ErrInvalidXtext
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return b, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendXtext appends s as xtext the way Postfix's xtext_quote does: bytes
// other than "+" from "!" to "~" stand for themselves, every other byte is
// "+XX" in uppercase hex.
func appendXtext(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '+' && c > ' ' && c < 0x7f {
			b = append(b, c)
		} else {
			b = append(b, '+', hex[c>>4], hex[c&0xf])
		}
	}
	return b
}

// Encode writes r in wire form: every known attribute in the order
// Postfix sends them, numbers as decimal, ccert_* as xtext, then the empty line. An
// empty Request field is written as RequestType. Encode does not check
// ProtocolState, so tests can send requests a server must refuse, but it
// refuses values that could not be parsed back (a newline, NUL or other
// control character, invalid UTF-8, a negative number, a count above
// math.MaxInt32).
func (r *Request) Encode(w io.Writer) error {
	b, err := r.appendWire(make([]byte, 0, 1024))
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("writing policy request: %w", err)
	}
	return nil
}

// appendWire appends r in wire form to b.
func (r *Request) appendWire(b []byte) ([]byte, error) {
	for id := range numAttrs {
		a := attrs[id]
		b = append(b, a.name...)
		b = append(b, '=')
		switch a.kind {
		case kindString, kindXtext:
			v := *r.str(id)
			if id == attrRequest && v == "" {
				v = RequestType
			}
			if !validTextString(v) {
				return b, fmt.Errorf("encoding policy request: %s: %w", a.name, ErrInvalidText)
			}
			if a.kind == kindXtext {
				b = appendXtext(b, v)
			} else {
				b = append(b, v...)
			}
		default:
			n := r.num(id)
			if n < 0 || a.kind == kindInt && n > math.MaxInt32 {
				return b, fmt.Errorf("encoding policy request: %s: %w", a.name, ErrInvalidNumber)
			}
			b = strconv.AppendInt(b, n, 10)
		}
		b = append(b, '\n')
	}
	// SMTPD_POLICY_README: the request "is terminated by an empty line".
	return append(b, '\n'), nil
}
