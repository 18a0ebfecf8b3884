// Package translate is where Postfix's two protocols meet the engine: a
// policy request or a milter message becomes an engine.Submission, and a
// verdict becomes a policy action or a milter decision. What mailbrake
// knows of Postfix's attributes and of a message's headers lives here:
// which copy of an identity or client header counts (the relay's, the
// last), which protocol states are decided on, what a hold looks like to
// Postfix. The daemon only wires it to the servers, and the engine's golden
// scenarios go through the same mapping as live traffic.
package translate

import (
	"bytes"
	"mime"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/milter"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/received"
)

// Translator turns what Postfix sends into submissions.
type Translator struct {
	// Identity resolves the sending account (SASL login, the relay's
	// account header, the envelope sender).
	Identity *engine.Identity
	// Reinjection are the smtpd listeners a content filter hands mail
	// back to (postfix.reinjection_listeners).
	Reinjection []netip.AddrPort
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (t *Translator) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// StageOf is the engine stage a policy protocol state is decided at: RCPT
// (per recipient), and DATA or END-OF-MESSAGE (recipient_count known; DATA
// is what zmconfigd's zimbraMtaSmtpdDataRestrictions wires, and HOLD there
// applies to the whole message). ok is false for every other state, which
// is answered DUNNO.
func StageOf(protocolState string) (engine.Stage, bool) {
	switch protocolState {
	case policy.StateRcpt:
		return engine.StageRcpt, true
	case policy.StateData, policy.StateEndOfMessage:
		return engine.StageEOM, true
	}
	return "", false
}

// StateLabel bounds a metric label to Postfix's protocol states.
func StateLabel(s string) string {
	switch s {
	case policy.StateConnect, policy.StateEHLO, policy.StateHELO, policy.StateMail, policy.StateRcpt,
		policy.StateData, policy.StateEndOfMessage, policy.StateVRFY, policy.StateETRN:
		return s
	}
	return "other"
}

// PolicySubmission is the submission of a policy request; ok is false
// when its protocol state is not decided on (StageOf).
func (t *Translator) PolicySubmission(req *policy.Request) (sub *engine.Submission, ok bool) {
	stage, ok := StageOf(req.ProtocolState)
	if !ok {
		return nil, false
	}
	addr, _ := netip.ParseAddr(req.ClientAddress)
	account, source, trusted := t.Identity.ResolvePolicy(req.SASLUsername, req.Sender, addr)
	sub = &engine.Submission{
		Time:           t.now(),
		Stage:          stage,
		Path:           engine.PathPolicy,
		Account:        account,
		AccountSource:  source,
		ClientAddress:  addr,
		ClientPort:     clientPort(req.ClientPort),
		TrustedClient:  trusted,
		Client:         fingerprint.Result{Family: fingerprint.FamilyUnknown}, // the policy protocol carries no headers
		Sender:         req.Sender,
		Recipient:      req.Recipient,
		RecipientCount: req.RecipientCount,
		Size:           req.Size,
		QueueID:        req.QueueID,
		Instance:       req.Instance,
		Reinjected:     t.reinjectionListener(req.ServerAddress, req.ServerPort),
		Origin:         Origin(source, addr, ""),
	}
	if stage == engine.StageEOM && req.RecipientCount == 1 && req.Recipient != "" {
		sub.Recipients = []string{req.Recipient}
	}
	return sub, true
}

// clientPort parses client_port ("unknown" or absent before Postfix 3.0).
func clientPort(s string) uint16 {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(p)
}

// MilterSubmission is the submission of a message the milter saw whole.
// The identity header and the client header are taken from the relay's
// copy, the last: Zimbra's MailSender adds its own after any copy the
// client wrote (engine.HeaderAccount, ClassifyClient).
func (t *Translator) MilterSubmission(msg *milter.Message) *engine.Submission {
	addr, _ := netip.ParseAddr(msg.ClientAddr)
	headerAccount, forged := "", []string(nil)
	if t.Identity.Header != "" {
		headerAccount, forged = engine.HeaderAccount(msg.HeaderValues(t.Identity.Header))
	}
	account, source, trusted := t.Identity.Resolve(msg.AuthAuthen, headerAccount, msg.Sender, addr)
	if source != engine.SourceHeader {
		forged = nil
	}
	client, otherFamilies := ClassifyClient(msg)
	return &engine.Submission{
		Time:                t.now(),
		Stage:               engine.StageEOM,
		Path:                engine.PathMilter,
		Account:             account,
		AccountSource:       source,
		ClientAddress:       addr,
		ClientPort:          msg.ClientPort,
		TrustedClient:       trusted,
		Client:              client,
		OtherClientFamilies: otherFamilies,
		ForgedAccounts:      forged,
		Sender:              msg.Sender,
		Recipients:          msg.Recipients,
		RecipientCount:      msg.RecipientCount,
		Size:                msg.BodySize,
		Subject:             DecodeSubject(msg.Header("Subject")),
		QueueID:             msg.QueueID,
		MessageID:           msg.Header("Message-ID"),
		InReplyTo:           msg.Header("In-Reply-To"),
		References:          strings.Fields(msg.Header("References")),
		From:                msg.Header("From"),
		ReplyTo:             msg.Header("Reply-To"),
		Header:              msg.Header,
		HeaderValues:        msg.HeaderValues,
		Reinjected:          t.reinjectionListener(msg.Macros["{daemon_addr}"], msg.Macros["{daemon_port}"]),
		ReceivedIDs:         received.QueueIDs(msg.HeaderValues("Received")),
		Origin:              Origin(source, addr, msg.LastHeader("X-Originating-IP")),
	}
}

// Origin is the address that submitted a message for its account: the
// SMTP client of a SASL submission, or for mail a trusted relay names the
// account of (Zimbra's webmail) the relay's X-Originating-IP — the last
// copy: MailSender adds "[" + request IP + "]" with addHeader after any
// copy the client wrote (zm-mailbox store/src/java/com/zimbra/cs/mailbox/
// MailSender.java, updateHeaders and formatXOrigIpHeader, commit
// 2b7f9787c69ed6b95ce37a415ba27c50f1091c72). Invalid otherwise.
func Origin(source engine.AccountSource, client netip.Addr, xOriginatingIP string) netip.Addr {
	switch source {
	case engine.SourceSASL:
		return client.Unmap()
	case engine.SourceHeader:
		v := strings.TrimSpace(xOriginatingIP)
		v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
		if a, err := netip.ParseAddr(v); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// reinjectionListener reports whether the smtpd listener a message came in
// on ({daemon_addr}/{daemon_port}, or server_address/server_port on the
// policy path) is one of the re-injection listeners.
func (t *Translator) reinjectionListener(addr, port string) bool {
	if addr == "" || port == "" || len(t.Reinjection) == 0 {
		return false
	}
	a, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return false
	}
	return slices.Contains(t.Reinjection, netip.AddrPortFrom(a.Unmap(), uint16(p)))
}

// ClassifyClient names the client family from the relay's X-Mailer (the
// last copy: Zimbra's MailSender adds its own after any copy the client
// wrote) and the User-Agent, and returns the other families that earlier
// X-Mailer copies name, as evidence. A bare Zimbra X-Mailer without the
// relay's X-Originating-IP is the server's own mail (fingerprint.System).
func ClassifyClient(msg *milter.Message) (fingerprint.Result, []fingerprint.Family) {
	mailers := msg.HeaderValues("X-Mailer")
	last := ""
	if len(mailers) > 0 {
		last = mailers[len(mailers)-1]
	}
	r := fingerprint.Classify(last, msg.LastHeader("User-Agent"))
	r = fingerprint.System(r, msg.LastHeader("X-Originating-IP") != "")
	var others []fingerprint.Family
	for _, m := range mailers[:max(len(mailers)-1, 0)] {
		f := fingerprint.Classify(m, "").Family
		if f != r.Family && !slices.Contains(others, f) {
			others = append(others, f)
		}
	}
	return r, others
}

var wordDecoder = mime.WordDecoder{}

// DecodeSubject decodes RFC 2047 words and bounds the result to 512 bytes.
func DecodeSubject(s string) string {
	if dec, err := wordDecoder.DecodeHeader(s); err == nil {
		s = dec
	}
	return bound(strings.ToValidUTF8(s, "\uFFFD"), 512)
}

// PolicyResponse is the policy action for a verdict. HOLD is answered only
// at END-OF-MESSAGE (or DATA), where it holds the whole message; the
// config keeps hold rules there, and a hold at RCPT is answered DUNNO
// rather than holding on a guess. A tag cannot be added on this path
// (PREPEND is not allowed in smtpd_end_of_data_restrictions): the milter
// adds it.
func PolicyResponse(sub *engine.Submission, v engine.Verdict) policy.Response {
	switch v.Action {
	case engine.ActionHold:
		if sub.Stage != engine.StageEOM {
			return policy.Dunno()
		}
		return policy.Hold("mailbrake: held for review (" + strings.Join(engine.ReasonStrings(v.Reasons), ",") + ")")
	case engine.ActionDefer:
		return policy.Defer(v.Text)
	case engine.ActionReject:
		return policy.Reject(v.Text)
	}
	return policy.Dunno()
}

// ActionKeyword bounds a metric label to the policy actions mailbrake
// answers.
func ActionKeyword(action string) string {
	k, _, _ := strings.Cut(action, " ")
	switch k {
	case "DUNNO", "OK", "HOLD", "DEFER", "DEFER_IF_PERMIT", "REJECT", "WARN":
		return k
	}
	if len(k) == 3 && (k[0] == '4' || k[0] == '5') {
		return k[:1] + "xx"
	}
	return "other"
}

// MilterDecision is the milter's answer for a verdict. A held message is
// quarantined (Postfix's hold queue) with a mark naming its queue ID,
// account and reasons, so that the queue sync can record the hold should
// its record not be written (quarantine.MarkHeader).
func MilterDecision(sub *engine.Submission, v engine.Verdict) milter.Decision {
	switch v.Action {
	case engine.ActionHold:
		reasons := engine.ReasonStrings(v.Reasons)
		mark := milter.Header{Name: quarantine.MarkHeader, Value: quarantine.FormatMark(sub.QueueID, sub.Account, reasons)}
		return milter.Decision{Kind: milter.Quarantine, Reason: "mailbrake: " + strings.Join(reasons, ","), AddHeaders: []milter.Header{mark}, RemoveHeaders: OwnHeaders}
	case engine.ActionDefer:
		return milter.Decision{Kind: milter.TempFail, Code: 451, Text: v.Text}
	case engine.ActionReject:
		return milter.Decision{Kind: milter.Reject, Code: 550, Text: v.Text}
	case engine.ActionTag:
		return milter.Decision{Kind: milter.Accept, AddHeaders: []milter.Header{{Name: ReasonsHeader, Value: strings.Join(engine.ReasonStrings(v.Reasons), ", ")}}, RemoveHeaders: OwnHeaders}
	}
	return milter.Decision{Kind: milter.Accept, RemoveHeaders: OwnHeaders}
}

// ReasonsHeader is the field a tagged message carries its reasons in.
const ReasonsHeader = "X-Mailbrake-Reasons"

// OwnHeaders are the fields only mailbrake writes: a copy a client wrote
// is removed from every message the milter passes or holds, so none
// passes for mailbrake's (a forged hold mark naming another account, or
// reasons a downstream filter trusts).
var OwnHeaders = []string{quarantine.MarkHeader, ReasonsHeader}

// HeaderBlock renders the message's headers as the reviewer sees them,
// bounded to 64 KiB.
func HeaderBlock(msg *milter.Message) string {
	var b strings.Builder
	for _, h := range msg.Headers {
		if b.Len() > 64<<10 {
			b.WriteString("[… more headers not kept]\n")
			break
		}
		b.WriteString(h.Name)
		b.WriteString(": ")
		b.WriteString(h.Value)
		b.WriteByte('\n')
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}

// TextPreview decodes what the milter kept of the body (the first
// PreviewLimit bytes) into readable text of at most limit bytes, with the
// MIME walk the password-leak scan makes (leakscan.Text). The raw bytes
// are used when no text comes out of it. The preview is stored for the
// reviewer; it is never logged.
func TextPreview(msg *milter.Message, limit int) string {
	if limit <= 0 || len(msg.Preview) == 0 {
		return ""
	}
	var raw bytes.Buffer
	for _, h := range msg.Headers {
		if strings.EqualFold(h.Name, "Content-Type") || strings.EqualFold(h.Name, "Content-Transfer-Encoding") || strings.EqualFold(h.Name, "MIME-Version") {
			raw.WriteString(h.Name + ": " + h.Value + "\r\n")
		}
	}
	raw.WriteString("\r\n")
	raw.Write(msg.Preview)
	s := leakscan.Text(&raw, limit)
	if strings.TrimSpace(s) == "" {
		s = string(msg.Preview)
	}
	return bound(strings.ToValidUTF8(s, "\uFFFD"), limit)
}

// ContentScanned reports whether a message's content is read by the
// content detectors (password leak, campaign fingerprints): outbound mail of a known account;
// inbound and unauthenticated mail is never scanned.
func ContentScanned(sub *engine.Submission) bool {
	return sub.Direction != engine.Inbound && sub.AccountSource != engine.SourceUnauthenticated
}

// RawMessage rebuilds the message as the detectors read it: the header
// fields, a blank line and the body bytes kept.
func RawMessage(msg *milter.Message) []byte {
	n := len(msg.Preview) + 2
	for _, h := range msg.Headers {
		n += len(h.Name) + len(h.Value) + 4
	}
	b := make([]byte, 0, n)
	for _, h := range msg.Headers {
		b = append(b, h.Name...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, msg.Preview...)
}

func bound(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
