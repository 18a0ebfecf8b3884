package milter

import (
	"context"
	"fmt"
	"strings"
)

// Bounds on what one Message collects. They keep a hostile or broken
// message from growing the daemon's memory without limit; the counts
// (RecipientCount, HeaderCount, BodySize) keep counting past them.
const (
	// MaxRecipients bounds Message.Recipients. Postfix's
	// smtpd_recipient_limit defaults to 1000, so 10,000 keeps every
	// recipient of any sane configuration.
	MaxRecipients = 10_000
	// MaxHeaders bounds the number of fields in Message.Headers.
	MaxHeaders = 1000
	// MaxHeaderBytes bounds the bytes of names and values in
	// Message.Headers: more than twice Postfix's header_size_limit
	// (100 KiB) for one field, and far above any real header block.
	MaxHeaderBytes = 256 << 10
	// DefaultPreviewLimit is the preview size used when
	// Server.PreviewLimit is not set: enough for the first text part of a
	// typical message.
	DefaultPreviewLimit = 16 << 10
)

// Header is one header field, in the order the MTA sent it.
type Header struct {
	Name  string
	Value string
}

// Message is what the milter collected for one SMTP transaction. It is
// handed to the Handler at end of message and belongs to the handler from
// then on: the milter does not touch it again.
type Message struct {
	// ConnID identifies the milter connection in logs. It is unique
	// within one Server.
	ConnID uint64

	// ClientHost is the client's host name as the MTA reports it
	// ("unknown" in Postfix when it has none).
	ClientHost string
	// ClientAddr is the client's IP address as text; empty for
	// connections over a Unix socket or of unknown family.
	ClientAddr string
	// ClientPort is the client's TCP port; 0 when ClientAddr is empty.
	ClientPort uint16
	// Helo is the name from the client's last HELO/EHLO.
	Helo string

	// QueueID is the MTA's queue ID (macro "i"). Postfix knows it from
	// MAIL or from the first accepted RCPT on; it is re-read at the end of
	// headers and at end of message, and the last non-empty value wins.
	QueueID string
	// AuthAuthen is the SASL login name ({auth_authen}), empty when the
	// client did not authenticate.
	AuthAuthen string
	// AuthType is the SASL mechanism ({auth_type}).
	AuthType string

	// Sender is the envelope sender without angle brackets; empty for the
	// null sender <>.
	Sender string
	// Recipients are the envelope recipients without angle brackets, at
	// most MaxRecipients of them.
	Recipients []string
	// RecipientCount counts every RCPT the MTA passed on, including the
	// ones beyond MaxRecipients.
	RecipientCount int

	// Headers are the header fields in order. Values are as the MTA sent
	// them (folding kept) with surrounding white space trimmed. At most
	// MaxHeaders fields and MaxHeaderBytes bytes are kept.
	Headers []Header
	// HeaderCount counts every header field seen, kept or not.
	HeaderCount int

	// Preview holds the first Server.PreviewLimit bytes of the body, raw
	// as the MTA sent them (CRLF line ends, transfer encoding intact).
	Preview []byte
	// BodySize counts the body bytes received. It is the body's size
	// unless BodySkipped is set.
	BodySize int64
	// BodySkipped reports that the MTA was asked to skip the rest of the
	// body once the preview was full (Server.SkipBody); BodySize is then
	// only a lower bound.
	BodySkipped bool

	// Macros holds the non-empty values of the connection, HELO and MAIL
	// macros this package requests, keyed by name as the MTA sends them:
	// j, {daemon_name}, {daemon_addr}, {daemon_port}, {client_addr}, {client_ptr},
	// {tls_version}, {cipher}, i, {auth_type}, {auth_authen},
	// {auth_author} and {mail_addr}. "i" holds the final queue ID.
	Macros map[string]string
}

// Header returns the value of the first header field named name, compared
// case-insensitively, or "" when there is none.
func (m *Message) Header(name string) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// HeaderValues returns the values of every header field named name, in the
// order they appear in the message, compared case-insensitively. A header
// that a relay adds to a message already carrying a copy (Zimbra's
// X-Authenticated-User and X-Mailer) is the last one.
func (m *Message) HeaderValues(name string) []string {
	var out []string
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			out = append(out, h.Value)
		}
	}
	return out
}

// LastHeader returns the value of the last header field named name, or ""
// when there is none.
func (m *Message) LastHeader(name string) string {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if strings.EqualFold(m.Headers[i].Name, name) {
			return m.Headers[i].Value
		}
	}
	return ""
}

// DecisionKind is what the MTA is told to do with a message.
type DecisionKind int

// The decision kinds. The zero value is not a decision: a handler that
// returns it is treated as failing (Server.OnError applies).
const (
	// Accept lets the message through.
	Accept DecisionKind = iota + 1
	// Quarantine accepts the message into the MTA's hold queue
	// (SMFIR_QUARANTINE, then accept).
	Quarantine
	// TempFail rejects the message with a 4xx reply.
	TempFail
	// Reject rejects the message with a 5xx reply.
	Reject
	// Discard accepts the message and silently drops it.
	Discard
)

// String returns the kind's stable name, used in logs and metric labels.
func (k DecisionKind) String() string {
	switch k {
	case Accept:
		return "accept"
	case Quarantine:
		return "quarantine"
	case TempFail:
		return "tempfail"
	case Reject:
		return "reject"
	case Discard:
		return "discard"
	}
	return fmt.Sprintf("invalid(%d)", int(k))
}

// Decision is the Handler's verdict on one message.
type Decision struct {
	Kind DecisionKind
	// Reason is the quarantine reason. Postfix only logs it, and only
	// about 100 characters of it, so it is cleaned of control characters
	// and cut to MaxReasonLen bytes. Ignored for other kinds.
	Reason string
	// Code and Text are the SMTP reply for TempFail (a 4xx code) and
	// Reject (a 5xx code). Text is the reply text after the code,
	// starting with an enhanced status code: Code 451 and Text
	// "4.7.1 Try again later" reply "451 4.7.1 Try again later". A
	// missing or mismatching code, or empty text, is replaced with the
	// defaults (451 4.7.1 / 550 5.7.1).
	Code int
	Text string
	// AddHeaders are appended to the message for Accept and Quarantine.
	// Fields with an invalid name or a value over 16 KiB are skipped.
	AddHeaders []Header
	// RemoveHeaders names header fields whose every copy in the message
	// as received is removed (SMFIR_CHGHEADER with no value) for Accept
	// and Quarantine, before AddHeaders: a milter's own fields, so that a
	// copy a client wrote never passes for one the milter added.
	RemoveHeaders []string
}

// MaxReasonLen is the longest quarantine reason sent to the MTA: Postfix
// logs only about 100 characters of it (milter8.c).
const MaxReasonLen = 100

// Handler decides on a message at end of message.
//
// The context is cancelled when the MTA connection is lost or the server
// is shut down without waiting; the milter waits for EndOfMessage to return
// either way, so it must return promptly once ctx is done. An error or a
// panic makes the server answer with Server.OnError.
type Handler interface {
	EndOfMessage(ctx context.Context, msg *Message) (Decision, error)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(ctx context.Context, msg *Message) (Decision, error)

// EndOfMessage calls f(ctx, msg).
func (f HandlerFunc) EndOfMessage(ctx context.Context, msg *Message) (Decision, error) {
	return f(ctx, msg)
}
