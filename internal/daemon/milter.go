package daemon

import (
	"context"
	"mime"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailbrake/mailbrake/internal/enforce"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/milter"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/received"
	"github.com/mailbrake/mailbrake/internal/store"
)

type milterAdapter struct{ d *Daemon }

func (d *Daemon) milterServer() *milter.Server {
	onErr := milter.Decision{Kind: milter.TempFail, Code: 451, Text: "4.3.0 Temporary local problem, try again later"}
	if d.cfg.Milter.OnError == "accept" {
		onErr = milter.Decision{Kind: milter.Accept}
	}
	return &milter.Server{
		Handler:      &milterAdapter{d: d},
		Logger:       d.log.With("path", "milter"),
		PreviewLimit: d.bodyLimit(),
		OnError:      onErr,
		Observe: func(dur time.Duration, kind milter.DecisionKind, err error) {
			d.metrics.milterLatency.Observe(dur.Seconds())
			d.metrics.milterMessages.WithLabelValues(kind.String()).Inc()
		},
	}
}

var wordDecoder = mime.WordDecoder{}

// decodeSubject decodes RFC 2047 words and bounds the result.
func decodeSubject(s string) string {
	if dec, err := wordDecoder.DecodeHeader(s); err == nil {
		s = dec
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > 512 {
		s = s[:512]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// EndOfMessage implements milter.Handler.
func (a *milterAdapter) EndOfMessage(ctx context.Context, msg *milter.Message) (milter.Decision, error) {
	d := a.d
	addr, _ := netip.ParseAddr(msg.ClientAddr)
	// Headers a trusted relay adds are its last copies; earlier copies
	// were written by the client (engine.HeaderAccount).
	headerAccount, forged := "", []string(nil)
	if d.identity.Header != "" {
		headerAccount, forged = engine.HeaderAccount(msg.HeaderValues(d.identity.Header))
	}
	account, source, trusted := d.identity.Resolve(msg.AuthAuthen, headerAccount, msg.Sender, addr)
	if source != engine.SourceHeader {
		forged = nil
	}
	client, otherFamilies := classifyClient(msg)
	sub := &engine.Submission{
		Time:                time.Now(),
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
		Subject:             decodeSubject(msg.Header("Subject")),
		QueueID:             msg.QueueID,
		MessageID:           msg.Header("Message-ID"),
		InReplyTo:           msg.Header("In-Reply-To"),
		References:          strings.Fields(msg.Header("References")),
		From:                msg.Header("From"),
		ReplyTo:             msg.Header("Reply-To"),
		Header:              msg.Header,
		HeaderValues:        msg.HeaderValues,
		Reinjected:          d.reinjectionListener(msg.Macros["{daemon_addr}"], msg.Macros["{daemon_port}"]),
		ReceivedIDs:         received.QueueIDs(msg.HeaderValues("Received")),
	}
	if sub.Reinjected {
		// Back from a content filter: decided on its first pass.
		v, _ := d.engine.Evaluate(ctx, sub)
		d.logReinjected(sub, v)
		return milter.Decision{Kind: milter.Accept}, nil
	}
	if d.pwleak != nil && sub.Direction != engine.Inbound && source != engine.SourceUnauthenticated {
		sub.Body = rawMessage(msg)
		defer clear(sub.Body)
	}
	defer func() {
		for _, s := range sub.Secrets {
			clear(s)
		}
	}()
	v, err := d.engine.Evaluate(ctx, sub)
	if err != nil {
		d.metrics.storeErrors.WithLabelValues("counters").Inc()
		d.log.Warn("engine error; on_error verdict applies", "queue_id", msg.QueueID, "account", account, "err", err)
	}
	if v.Reinjected {
		// Recognised by its Received header (engine.reinjectionOf).
		d.logReinjected(sub, v)
		return milter.Decision{Kind: milter.Accept}, nil
	}
	log := d.log.With("path", "milter", "conn", msg.ConnID)
	d.enforcer.Enforce(ctx, log, sub, v, func() enforce.Content {
		return enforce.Content{Headers: leakscan.Mask(headerBlock(msg), sub.Secrets), Preview: leakscan.Mask(textPreview(msg, d.preview), sub.Secrets)}
	})
	switch v.Action {
	case engine.ActionHold:
		reason := "mailbrake: " + strings.Join(engine.ReasonStrings(v.Reasons), ",")
		// The mark lets the queue sync record this hold with its reasons
		// should its record not be written (quarantine.MarkHeader).
		mark := milter.Header{Name: quarantine.MarkHeader, Value: quarantine.FormatMark(sub.QueueID, sub.Account, engine.ReasonStrings(v.Reasons))}
		return milter.Decision{Kind: milter.Quarantine, Reason: reason, AddHeaders: []milter.Header{mark}}, nil
	case engine.ActionDefer:
		return milter.Decision{Kind: milter.TempFail, Code: 451, Text: v.Text}, nil
	case engine.ActionReject:
		return milter.Decision{Kind: milter.Reject, Code: 550, Text: v.Text}, nil
	case engine.ActionTag:
		return milter.Decision{Kind: milter.Accept, AddHeaders: []milter.Header{{Name: "X-Mailbrake-Reasons", Value: strings.Join(engine.ReasonStrings(v.Reasons), ", ")}}}, nil
	}
	return milter.Decision{Kind: milter.Accept}, nil
}

// headerBlock renders the collected headers, bounded.
func headerBlock(msg *milter.Message) string {
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

// classifyClient names the client family from the relay's X-Mailer (the
// last copy: Zimbra's MailSender adds its own after any copy the client
// wrote) and the User-Agent, and returns the other families that earlier
// X-Mailer copies name, as evidence. A bare Zimbra X-Mailer without the
// relay's X-Originating-IP is the server's own mail (fingerprint.System).
func classifyClient(msg *milter.Message) (fingerprint.Result, []fingerprint.Family) {
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

// bodyLimit is how much of each body the milter keeps: the preview, or
// more when the password-leak check reads the whole message.
func (d *Daemon) bodyLimit() int {
	n := d.cfg.Quarantine.PreviewBytes
	if d.pwleak != nil {
		n = max(n, d.cfg.PasswordLeak.MaxScanBytes)
	}
	return n
}

// rawMessage rebuilds the message as the detectors read it: the header
// fields, a blank line and the body bytes kept.
func rawMessage(msg *milter.Message) []byte {
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

// reinjectionListener reports whether the smtpd listener a message came in
// on ({daemon_addr}/{daemon_port}, or server_address/server_port on the
// policy path) is one of postfix.reinjection_listeners.
func (d *Daemon) reinjectionListener(addr, port string) bool {
	if addr == "" || port == "" || len(d.reinjection) == 0 {
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
	return slices.Contains(d.reinjection, netip.AddrPortFrom(a.Unmap(), uint16(p)))
}

// logReinjected logs a re-injected message at debug: it is counted under
// mailbrake_reinjected_total and was logged on its first pass.
func (d *Daemon) logReinjected(sub *engine.Submission, v engine.Verdict) {
	d.metrics.reinjected.WithLabelValues(string(sub.Path)).Inc()
	d.log.Debug("re-injected message: decided on its first pass; not charged or held again", "path", sub.Path,
		"queue_id", sub.QueueID, "instance", sub.Instance, "direction", sub.Direction, "received_ids", sub.ReceivedIDs, "learned", len(v.Findings))
}

// expectReinjection tells the engine that a released message may come back
// through smtpd from a content filter (see engine.Expect).
func (d *Daemon) expectReinjection(h *store.Hold) {
	dir := engine.Outbound
	if h.Account == engine.Unauthenticated {
		dir = engine.Inbound
	}
	d.engine.Expect(h.QueueID, h.Sender, headerValue(h.Headers, "Message-ID"), h.Recipients, dir, time.Now())
}

// headerValue returns the first value of a header in a header block as
// headerBlock writes it ("Name: value" lines).
func headerValue(block, name string) string {
	for _, line := range strings.Split(block, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
