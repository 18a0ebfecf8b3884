package milter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// macroRequests are the macros asked for at each stage (SMFIF_SETSYMLIST).
// Postfix sends exactly these instead of its milter_*_macros defaults.
var macroRequests = []struct {
	stage gomilter.MacroStage
	names []gomilter.MacroName
}{
	// {daemon_addr} and {daemon_port} (Postfix 3.2 and later) name the
	// smtpd listener: a content filter's re-injection service is one.
	{gomilter.StageConnect, []string{"j", "{daemon_name}", "{daemon_addr}", "{daemon_port}", "{client_addr}", "{client_ptr}"}},
	{gomilter.StageHelo, []string{"{tls_version}", "{cipher}"}},
	// Postfix knows the queue ID from MAIL only when
	// smtpd_delay_open_until_valid_rcpt = no; otherwise from the first
	// accepted RCPT. Hence "i" at every later stage.
	{gomilter.StageMail, []string{"i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}"}},
	{gomilter.StageRcpt, []string{"i", "{rcpt_addr}"}},
	{gomilter.StageEOH, []string{"i"}},
	{gomilter.StageEOM, []string{"i"}},
}

// connMacros and heloMacros are kept for the whole connection: go-milter
// forgets the HELO-stage macros at every Abort, and Postfix sends an Abort
// after each message.
var (
	connMacros = macroRequests[0].names
	heloMacros = macroRequests[1].names
	mailMacros = macroRequests[2].names
)

// conn is one milter connection from the MTA. It implements go-milter's
// Milter; go-milter calls it from a single goroutine, so it needs no
// locks. It carries connection-level state (client, HELO) across the
// messages of the connection and builds one Message per transaction.
type conn struct {
	srv   *Server
	id    uint64
	guard *guardConn
	log   *slog.Logger
	start time.Time

	skipBody bool // negotiated: reply SMFIR_SKIP once the preview is full

	clientHost string
	clientAddr string
	clientPort uint16
	helo       string
	macros     map[string]string // connection-level macros

	msg         *Message // the transaction in progress, nil between them
	headerBytes int
	messages    int
}

var _ gomilter.Milter = (*conn)(nil)

func (s *Server) newConn(raw net.Conn) *conn {
	id := s.lastConnID.Add(1)
	return &conn{
		srv:   s,
		id:    id,
		guard: newGuardConn(raw),
		log:   s.logger().With("conn", id),
		start: time.Now(),
	}
}

// serve runs go-milter's session on the connection and returns when it
// ends. Each connection gets its own go-milter Server so the Milter knows
// its connection (for hang-up detection and the connection id).
func (c *conn) serve() {
	defer c.srv.trackConn(c, false)

	opts := []gomilter.Option{
		gomilter.WithMilter(func() gomilter.Milter { return c }),
		gomilter.WithNegotiationCallback(c.negotiate),
		gomilter.WithReadTimeout(c.srv.ReadTimeout),
		gomilter.WithWriteTimeout(c.srv.writeTimeout()),
	}
	for _, r := range macroRequests {
		opts = append(opts, gomilter.WithMacroRequest(r.stage, r.names))
	}
	ms := gomilter.NewServer(opts...)
	_ = ms.Serve(&oneConnListener{conn: c.guard}) // returns once the session closed the connection

	attrs := []any{"messages", c.messages, "duration", time.Since(c.start).Round(time.Millisecond)}
	switch err := c.guard.readErr; {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("milter connection closed", attrs...)
	case errors.Is(err, errMalformed), errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Warn("milter connection dropped: broken conversation", append(attrs, "err", err)...)
	default:
		c.log.Warn("milter connection failed", append(attrs, "err", err)...)
	}
}

// negotiate answers SMFIC_OPTNEG: the highest common version up to 6, the
// actions we use, and the protocol flags that spare both sides events and
// replies we do not need, each only if the MTA offers it.
func (c *conn) negotiate(mtaVersion, _ uint32, mtaActions, _ gomilter.OptAction, mtaProtocol, _ gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
	if mtaVersion < 2 {
		err := fmt.Errorf("milter: MTA speaks protocol version %d, need 2 or later", mtaVersion)
		c.log.Warn("milter negotiation failed", "err", err)
		return 0, 0, 0, 0, err
	}
	version := min(mtaVersion, gomilter.MaxServerProtocolVersion)
	if mtaActions&gomilter.OptQuarantine == 0 {
		err := errors.New("milter: MTA does not offer quarantine (SMFIF_QUARANTINE)")
		c.log.Warn("milter negotiation failed", "err", err, "offered_actions", mtaActions.String())
		return 0, 0, 0, 0, err
	}
	actions := (gomilter.OptQuarantine | gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptSetMacros) & mtaActions

	// Events we never look at, and no replies where we always continue.
	want := gomilter.OptNoUnknown | gomilter.OptNoData |
		gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply |
		gomilter.OptNoRcptReply | gomilter.OptNoDataReply | gomilter.OptNoUnknownReply |
		gomilter.OptNoHeaderReply | gomilter.OptNoEOHReply
	if c.srv.SkipBody && mtaProtocol&gomilter.OptSkip != 0 {
		want |= gomilter.OptSkip // body chunks need replies so one can be "skip"
	} else {
		want |= gomilter.OptNoBodyReply
	}
	protocol := want & mtaProtocol
	c.skipBody = protocol&gomilter.OptSkip != 0
	c.log.Debug("milter negotiated", "version", version, "actions", actions.String(), "protocol", protocol.String(), "max_data", uint32(offered))
	return version, actions, protocol, offered, nil
}

// recoverCallback turns a panic in a callback into an error: go-milter
// then closes this connection (the MTA applies milter_default_action) and
// the process lives on.
func (c *conn) recoverCallback(name string, resp **gomilter.Response, err *error) {
	if p := recover(); p != nil {
		c.log.Error("milter callback panicked", "callback", name, "panic", p, "stack", string(debug.Stack()))
		*resp = nil
		*err = fmt.Errorf("milter: %s callback panicked: %v", name, p)
	}
}

func (c *conn) resetConnection() {
	c.clientHost, c.clientAddr, c.clientPort, c.helo = "", "", 0, ""
	c.macros = nil
	c.msg = nil
}

// NewConnection starts a connection, or a new SMTP connection on a reused
// milter connection (SMFIC_QUIT_NC).
func (c *conn) NewConnection(gomilter.Modifier) error {
	c.resetConnection()
	return nil
}

func (c *conn) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("connect", &resp, &err)
	c.resetConnection()
	c.clientHost = host
	if family == "tcp4" || family == "tcp6" {
		c.clientAddr, c.clientPort = addr, port
	}
	c.macros = make(map[string]string, len(connMacros)+len(heloMacros))
	copyMacros(c.macros, m, connMacros)
	return gomilter.RespContinue, nil
}

func (c *conn) Helo(name string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("helo", &resp, &err)
	c.helo = name
	if c.macros == nil {
		c.macros = make(map[string]string, len(heloMacros))
	}
	// A second HELO (after STARTTLS) replaces the first one's values.
	for _, k := range heloMacros {
		delete(c.macros, k)
	}
	copyMacros(c.macros, m, heloMacros)
	return gomilter.RespContinue, nil
}

// copyMacros copies the non-empty values of names from m into dst.
func copyMacros(dst map[string]string, m gomilter.Macros, names []string) {
	for _, k := range names {
		if v := m.Get(k); v != "" {
			dst[k] = v
		}
	}
}

// current returns the transaction in progress, starting one if the MTA
// skipped MAIL (it should not).
func (c *conn) current() *Message {
	if c.msg == nil {
		c.startMessage()
	}
	return c.msg
}

func (c *conn) startMessage() {
	msg := &Message{
		ConnID:     c.id,
		ClientHost: c.clientHost,
		ClientAddr: c.clientAddr,
		ClientPort: c.clientPort,
		Helo:       c.helo,
		Macros:     make(map[string]string, len(c.macros)+len(mailMacros)+1),
	}
	for k, v := range c.macros {
		msg.Macros[k] = v
	}
	c.msg = msg
	c.headerBytes = 0
}

// updateQueueID takes the queue ID from macro "i" when the MTA sent one.
func (msg *Message) updateQueueID(m gomilter.Macros) {
	if v := m.Get(gomilter.MacroQueueId); v != "" {
		msg.QueueID = v
		msg.Macros[gomilter.MacroQueueId] = v
	}
}

func (c *conn) MailFrom(from, _ string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("mail", &resp, &err)
	c.startMessage()
	msg := c.msg
	copyMacros(msg.Macros, m, mailMacros)
	msg.Sender = envelopeAddress(from)
	if msg.Sender == "" {
		msg.Sender = envelopeAddress(m.Get(gomilter.MacroMailAddr))
	}
	msg.AuthAuthen = m.Get(gomilter.MacroAuthAuthen)
	msg.AuthType = m.Get(gomilter.MacroAuthType)
	msg.updateQueueID(m)
	return gomilter.RespContinue, nil
}

func (c *conn) RcptTo(rcpt, _ string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("rcpt", &resp, &err)
	msg := c.current()
	msg.RecipientCount++
	if len(msg.Recipients) < MaxRecipients {
		addr := envelopeAddress(rcpt)
		if addr == "" {
			addr = envelopeAddress(m.Get(gomilter.MacroRcptAddr))
		}
		msg.Recipients = append(msg.Recipients, addr)
	}
	msg.updateQueueID(m)
	// Not RespSkip: every recipient counts.
	return gomilter.RespContinue, nil
}

func (c *conn) Data(gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (c *conn) Header(name, value string, _ gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("header", &resp, &err)
	msg := c.current()
	msg.HeaderCount++
	value = trimHeaderValue(value)
	if size := len(name) + len(value); len(msg.Headers) < MaxHeaders && c.headerBytes+size <= MaxHeaderBytes {
		msg.Headers = append(msg.Headers, Header{Name: name, Value: value})
		c.headerBytes += size
	}
	return gomilter.RespContinue, nil
}

func (c *conn) Headers(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("end of headers", &resp, &err)
	c.current().updateQueueID(m)
	return gomilter.RespContinue, nil
}

func (c *conn) BodyChunk(chunk []byte, _ gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("body", &resp, &err)
	msg := c.current()
	msg.BodySize += int64(len(chunk))
	limit := c.srv.previewLimit()
	if room := limit - len(msg.Preview); room > 0 {
		if msg.Preview == nil {
			msg.Preview = make([]byte, 0, min(limit, max(len(chunk), 4096)))
		}
		msg.Preview = append(msg.Preview, chunk[:min(room, len(chunk))]...)
	}
	if c.skipBody && len(msg.Preview) >= limit {
		msg.BodySkipped = true
		return gomilter.RespSkip, nil
	}
	return gomilter.RespContinue, nil
}

func (c *conn) Unknown(string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Abort ends the transaction in progress (RSET, or the SMTP client went
// away); the connection's state stays.
func (c *conn) Abort(gomilter.Modifier) error {
	c.msg = nil
	return nil
}

func (c *conn) Cleanup(gomilter.Modifier) {
	c.msg = nil
}

// EndOfMessage hands the message to the Handler and replies with its
// decision.
func (c *conn) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer c.recoverCallback("end of message", &resp, &err)
	msg := c.current()
	c.msg = nil
	c.messages++
	msg.updateQueueID(m)

	start := time.Now()
	d, herr := c.runHandler(msg, m)
	took := time.Since(start)
	if herr == nil && (d.Kind < Accept || d.Kind > Discard) {
		herr = fmt.Errorf("milter: handler returned decision of invalid kind %d", int(d.Kind))
	}
	log := c.log.With("queue_id", msg.QueueID)
	if herr != nil {
		d = c.srv.onError()
		log.Error("milter handler failed; applying on_error decision", "decision", d.Kind.String(), "err", herr)
	}
	resp, err = c.reply(d, m, msg, log)
	if c.srv.Observe != nil {
		c.srv.Observe(took, d.Kind, herr)
	}
	attrs := []any{"decision", d.Kind.String(), "recipients", msg.RecipientCount, "body_bytes", msg.BodySize, "took", took.Round(time.Microsecond)}
	lvl := slog.LevelInfo
	switch d.Kind {
	case Accept:
		lvl = slog.LevelDebug
	case Quarantine:
		attrs = append(attrs, "reason", quarantineReason(d.Reason))
	}
	log.Log(context.Background(), lvl, "milter decision", attrs...)
	return resp, err
}

type handlerResult struct {
	d   Decision
	err error
}

// runHandler calls the Handler in its own goroutine, with a context that
// is cancelled when the MTA hangs up, and sends progress while it runs.
func (c *conn) runHandler(msg *Message, m gomilter.Modifier) (Decision, error) {
	ctx, cancel := context.WithCancelCause(c.srv.ctx)
	defer cancel(nil)
	stop := c.guard.watchHangup(func(err error) {
		cancel(fmt.Errorf("milter: MTA connection lost: %w", err))
	})
	defer stop()

	done := make(chan handlerResult, 1)
	go func() {
		var r handlerResult
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("milter handler panicked", "queue_id", msg.QueueID, "panic", p, "stack", string(debug.Stack()))
				r = handlerResult{err: fmt.Errorf("milter: handler panicked: %v", p)}
			}
			done <- r
		}()
		r.d, r.err = c.srv.Handler.EndOfMessage(ctx, msg)
	}()

	tick := time.NewTicker(c.srv.progressInterval())
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.d, r.err
		case <-tick.C:
			// SMFIR_PROGRESS keeps the MTA from timing out; a failed
			// write means the connection is gone.
			if err := m.Progress(); err != nil {
				tick.Stop()
				if !errors.Is(err, gomilter.ErrVersionTooLow) {
					cancel(fmt.Errorf("milter: MTA connection lost: %w", err))
				}
			}
		}
	}
}

// removeHeaders removes every copy of the named fields the message came
// with. The index counts the fields of that name, from 1; the last copy
// goes first, so that the others keep their index whichever way the MTA
// counts after a removal.
func removeHeaders(names []string, m gomilter.Modifier, msg *Message, log *slog.Logger) error {
	for _, name := range names {
		n := 0
		for _, h := range msg.Headers {
			if strings.EqualFold(h.Name, name) {
				n++
			}
		}
		for i := n; i >= 1; i-- {
			if err := m.ChangeHeader(i, name, ""); err != nil {
				if errors.Is(err, gomilter.ErrModificationNotAllowed) {
					log.Warn("milter: MTA did not allow removing header fields; a copy the client wrote stays", "name", name)
					return nil
				}
				return fmt.Errorf("milter: removing header %s: %w", name, err)
			}
		}
		if n > 0 {
			log.Info("milter: removed header fields the client wrote with a name only this milter writes", "name", name, "copies", n)
		}
	}
	return nil
}

// Reply defaults for TempFail and Reject decisions without code or text.
const (
	defaultTempFailCode = 451
	defaultTempFailText = "4.7.1 Try again later"
	defaultRejectCode   = 550
	defaultRejectText   = "5.7.1 Message rejected"
)

// reply applies d through m and returns the final response.
func (c *conn) reply(d Decision, m gomilter.Modifier, msg *Message, log *slog.Logger) (*gomilter.Response, error) {
	switch d.Kind {
	case Accept, Quarantine:
		if err := removeHeaders(d.RemoveHeaders, m, msg, log); err != nil {
			return nil, err
		}
		for _, h := range d.AddHeaders {
			if !validHeaderName(h.Name) || len(h.Value) > maxAddedHeaderValue {
				log.Warn("milter: not adding invalid header field", "name", h.Name, "value_bytes", len(h.Value))
				continue
			}
			if err := m.AddHeader(h.Name, h.Value); err != nil {
				if errors.Is(err, gomilter.ErrModificationNotAllowed) {
					log.Warn("milter: MTA did not allow adding header fields", "name", h.Name)
					break
				}
				return nil, fmt.Errorf("milter: adding header %s: %w", h.Name, err)
			}
		}
		if d.Kind == Quarantine {
			// SMFIR_QUARANTINE, then accept: Postfix moves the message
			// to the hold queue.
			if err := m.Quarantine(quarantineReason(d.Reason)); err != nil {
				return nil, fmt.Errorf("milter: sending quarantine: %w", err)
			}
		}
		return gomilter.RespAccept, nil
	case TempFail:
		return replyCode(d, 4, defaultTempFailCode, defaultTempFailText, gomilter.RespTempFail, log), nil
	case Reject:
		return replyCode(d, 5, defaultRejectCode, defaultRejectText, gomilter.RespReject, log), nil
	case Discard:
		return gomilter.RespDiscard, nil
	}
	return nil, fmt.Errorf("milter: cannot reply with decision %s", d.Kind)
}

// replyCode builds an SMFIR_REPLYCODE response for a TempFail (class 4)
// or Reject (class 5) decision, replacing a code of the wrong class and
// empty text with the defaults.
func replyCode(d Decision, class, defCode int, defText string, fallback *gomilter.Response, log *slog.Logger) *gomilter.Response {
	code, text := d.Code, d.Text
	if code/100 != class {
		code = defCode
	}
	if text == "" {
		text = defText
	}
	resp, err := gomilter.RejectWithCodeAndReason(uint16(code), text)
	if err != nil {
		log.Warn("milter: invalid reply text; using the MTA's default reply", "code", code, "err", err)
		return fallback
	}
	return resp
}
