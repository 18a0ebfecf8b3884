package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	milter "github.com/d--j/go-milter"
)

// What the generated MTA says about itself, as Postfix 3.7.11 does with
// myhostname = mx.example.com (testdata/postfix-3.7.11-milter.txt).
const (
	mtaHostname = "mx.example.com"
	mtaVersion  = "Postfix 3.7.11"
	mtaAddr     = "127.0.0.1"
)

// RunMilter runs a milter load against o.Addr, playing Postfix, and
// returns what it measured. It refuses a target that is not on this host
// unless o.AllowRemote (the error wraps ErrNotLoopback), dials the first
// connection of each of o.Conns sessions before the clock starts, and
// returns at the latest about o.Timeout after Warmup+Duration (never later
// than MaxDuration plus MaxTimeout and a few seconds). If ctx is done the
// run stops early and its Result says StopCancelled; an error is returned
// only when the run could not start.
//
// A message's latency runs from the start of its milter session (for the
// first message of a session) or from MAIL FROM to the end-of-message
// reply.
func RunMilter(ctx context.Context, o MilterOptions) (*Result, error) {
	c, mo, err := o.normalize()
	if err != nil {
		return nil, fmt.Errorf("milter load: %w", err)
	}
	t, err := resolveTarget(ctx, c.addr, c.allowRemote, systemLookup)
	if err != nil {
		return nil, fmt.Errorf("milter load: %w", err)
	}
	r := newRunner(ctx, c)
	defer r.abort()
	conns, err := r.predial(t, c.conns)
	if err != nil {
		return nil, fmt.Errorf("milter load: connecting to %s: %w", c.addr, err)
	}
	d := &milterDialer{r: r, t: t, pool: make(chan net.Conn, len(conns))}
	for _, nc := range conns {
		if nc != nil {
			d.pool <- nc
		}
	}
	defer d.drain()
	cl := newMilterClient(t, c.timeout, d)
	bodies := makeBodies(c.seed, mo.BodyMin, mo.BodyMax)
	r.startClock()
	r.execute(ctx, func(wid int, ws *workerStats) {
		w := &milterWorker{r: r, o: &mo, cl: cl, bodies: bodies, ws: ws, g: newMsgGen(&r.c, wid, 7), wid: wid}
		w.run()
	})
	return r.result(), nil
}

// newMilterClient returns a client that negotiates as Postfix 3.7 does:
// protocol version 6, every modification action, and the default
// milter_*_macros lists of `postconf -d`.
func newMilterClient(t target, timeout time.Duration, d milter.Dialer) *milter.Client {
	return milter.NewClient(t.network, t.address,
		milter.WithDialer(d),
		milter.WithReadTimeout(timeout),
		milter.WithWriteTimeout(timeout),
		milter.WithMaximumVersion(6),
		milter.WithActions(milter.AllClientSupportedActionMasks),
		milter.WithoutDefaultMacros(),
		// milter_connect_macros = j {daemon_name} {daemon_addr} v _
		milter.WithMacroRequest(milter.StageConnect, []milter.MacroName{milter.MacroMTAFQDN, milter.MacroDaemonName, milter.MacroDaemonAddr, milter.MacroMTAVersion, macroClient}),
		// milter_helo_macros = {tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}
		milter.WithMacroRequest(milter.StageHelo, []milter.MacroName{milter.MacroTlsVersion, milter.MacroCipher, milter.MacroCipherBits, milter.MacroCertSubject, milter.MacroCertIssuer}),
		// milter_mail_macros = i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}
		milter.WithMacroRequest(milter.StageMail, []milter.MacroName{milter.MacroQueueId, milter.MacroAuthType, milter.MacroAuthAuthen, milter.MacroAuthAuthor, milter.MacroMailAddr, milter.MacroMailHost, milter.MacroMailMailer}),
		// milter_rcpt_macros = i {rcpt_addr} {rcpt_host} {rcpt_mailer}
		milter.WithMacroRequest(milter.StageRcpt, []milter.MacroName{milter.MacroQueueId, milter.MacroRcptAddr, milter.MacroRcptHost, milter.MacroRcptMailer}),
		// milter_data_macros, milter_end_of_header_macros, milter_end_of_data_macros = i
		milter.WithMacroRequest(milter.StageData, []milter.MacroName{milter.MacroQueueId}),
		milter.WithMacroRequest(milter.StageEOH, []milter.MacroName{milter.MacroQueueId}),
		milter.WithMacroRequest(milter.StageEOM, []milter.MacroName{milter.MacroQueueId}),
	)
}

// macroClient is Postfix's "_": the validated client name and address.
const macroClient milter.MacroName = "_"

// macroMap holds a session's macros. Unlike milter.MacroBag it can forget
// one: Postfix defines i only once the queue file exists.
type macroMap map[milter.MacroName]string

func (m macroMap) Get(name milter.MacroName) string { return m[name] }

func (m macroMap) GetEx(name milter.MacroName) (string, bool) {
	v, ok := m[name]
	return v, ok
}

// milterDialer hands out the connections dialled before the clock
// started, then dials tracked connections.
type milterDialer struct {
	r    *runner
	t    target
	pool chan net.Conn
}

func (d *milterDialer) Dial(string, string) (net.Conn, error) {
	select {
	case nc := <-d.pool:
		return nc, nil
	default:
		return d.r.dial(d.t)
	}
}

func (d *milterDialer) drain() {
	for {
		select {
		case nc := <-d.pool:
			_ = nc.Close()
		default:
			return
		}
	}
}

// milterWorker runs one session after another.
type milterWorker struct {
	r      *runner
	o      *MilterOptions
	cl     *milter.Client
	bodies [][]byte
	ws     *workerStats
	g      *msgGen
	wid    int
	msgNo  uint64

	m    message
	s    *milter.ClientSession
	mm   macroMap
	used int
}

func (w *milterWorker) closeSession() {
	if w.s != nil {
		_ = w.s.Close() // Postfix sends QUIT when the SMTP session ends
		w.s = nil
	}
}

func (w *milterWorker) run() {
	defer w.closeSession()
	r := w.r
	for {
		t0 := time.Now()
		send, measured := r.admit(t0)
		if !send {
			return
		}
		var outcome string
		var mods int
		var err error
		var body []byte
		if w.s == nil {
			w.g.newSession(&w.m)
			outcome, err = w.openSession()
			w.used = 0
		}
		if err == nil && outcome == "" {
			w.g.newTransaction(&w.m)
			w.msgNo++
			body = w.bodies[w.g.rng.IntN(len(w.bodies))]
			outcome, mods, err = w.transaction(body)
			w.used++
		}
		t1 := time.Now()
		// A session carries MsgsPerConn messages; after any other outcome
		// than a queued message it ends (the client gives up or retries
		// in a new session).
		if err != nil || (outcome != outcomeAccept && outcome != outcomeQuarantine) || w.used >= w.o.MsgsPerConn {
			w.closeSession()
		}
		if !measured {
			continue
		}
		if err != nil {
			r.recordErr(w.ws, "", err)
			// A refused or broken milter fails at once: back off rather than spin.
			if !r.sleepUntil(time.Now().Add(20 * time.Millisecond)) {
				return
			}
			continue
		}
		w.ws.h.add(t1.Sub(t0))
		w.ws.outcomes[outcome]++
		w.ws.mods += int64(mods)
	}
}

// Outcomes of a message that Postfix queues.
const (
	outcomeAccept     = "ACCEPT"
	outcomeQuarantine = "QUARANTINE"
)

// openSession opens a milter session and sends connect and HELO. A
// non-empty outcome means the milter decided there.
func (w *milterWorker) openSession() (string, error) {
	m := &w.m
	w.mm = macroMap{
		milter.MacroMTAFQDN:    mtaHostname,
		milter.MacroDaemonName: mtaHostname, // milter_macro_daemon_name = $myhostname
		milter.MacroDaemonAddr: mtaAddr,
		milter.MacroMTAVersion: mtaVersion,
		macroClient:            "unknown [" + m.client + "]",
	}
	s, err := w.cl.Session(w.mm)
	if err != nil {
		return "", err
	}
	w.s = s
	w.ws.conns++
	act, err := s.Conn("unknown", milter.FamilyInet, m.port, m.client)
	if err != nil {
		return "", err
	}
	if ends(act) {
		return actionName(act) + "@connect", nil
	}
	// Submission: STARTTLS before AUTH. Postfix has the TLS macros from
	// the EHLO after STARTTLS on.
	w.mm[milter.MacroTlsVersion] = "TLSv1.3"
	w.mm[milter.MacroCipher] = "TLS_AES_256_GCM_SHA384"
	w.mm[milter.MacroCipherBits] = "256"
	act, err = s.Helo(m.helo)
	if err != nil {
		return "", err
	}
	if ends(act) {
		return actionName(act) + "@helo", nil
	}
	return "", nil
}

// transaction sends one message on the open session: MAIL, RCPTs, DATA,
// headers, body, end-of-message. It returns the outcome and the number of
// modification actions.
func (w *milterWorker) transaction(body []byte) (string, int, error) {
	s, mm, m := w.s, w.mm, &w.m
	// smtpd_delay_open_until_valid_rcpt = yes (the default): no queue
	// file, so no i, until the first recipient is accepted.
	delete(mm, milter.MacroQueueId)
	mm[milter.MacroAuthType] = "PLAIN"
	mm[milter.MacroAuthAuthen] = m.user
	mm[milter.MacroMailAddr] = m.sender
	mm[milter.MacroMailHost] = domainOf(m.sender)
	// The transports of a typical Zimbra MTA: local mail goes to the
	// mailbox server over LMTP, the rest out over SMTP.
	mm[milter.MacroMailMailer] = "lmtp"
	act, err := s.Mail(m.sender, "BODY=8BITMIME SIZE="+strconv.Itoa(len(body)))
	if err != nil {
		return "", 0, err
	}
	if ends(act) {
		return actionName(act) + "@mail", 0, nil
	}
	accepted := 0
	for _, rcpt := range m.rcpts {
		mm[milter.MacroRcptAddr] = rcpt
		mm[milter.MacroRcptHost] = domainOf(rcpt)
		mm[milter.MacroRcptMailer] = "smtp"
		act, err = s.Rcpt(rcpt, "")
		if err != nil {
			return "", 0, err
		}
		if act.Type == milter.ActionAccept || act.Type == milter.ActionDiscard {
			return actionName(act) + "@rcpt", 0, nil
		}
		if !act.StopProcessing() {
			accepted++
			mm[milter.MacroQueueId] = m.queueID
		}
	}
	if accepted == 0 {
		return actionName(act) + "@rcpt", 0, nil
	}
	if act, err = s.DataStart(); err != nil {
		return "", 0, err
	}
	if ends(act) {
		return actionName(act) + "@data", 0, nil
	}
	for _, h := range w.headers() {
		if act, err = s.HeaderField(h[0], h[1], nil); err != nil {
			return "", 0, err
		}
		if ends(act) {
			return actionName(act) + "@header", 0, nil
		}
	}
	if act, err = s.HeaderEnd(); err != nil {
		return "", 0, err
	}
	if ends(act) {
		return actionName(act) + "@eoh", 0, nil
	}
	mods, act, err := s.BodyReadFrom(bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	return eomOutcome(mods, act), len(mods), nil
}

// headers returns the message's header fields as Postfix passes them to
// a milter: the client's fields in order, values without the leading
// space, folded lines joined with LF (Postfix's internal line end). Postfix
// does not pass its own Received: field.
func (w *milterWorker) headers() [][2]string {
	m := &w.m
	// Past ten recipients a sender puts the rest in Bcc.
	to := m.rcpts[:min(len(m.rcpts), 10)]
	h := [][2]string{
		{"Message-ID", fmt.Sprintf("<%x.%d.%d@example.com>", w.g.rng.Uint64(), w.wid, w.msgNo)},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"MIME-Version", "1.0"},
	}
	if w.o.XMailer != "" {
		h = append(h, [2]string{"X-Mailer", w.o.XMailer})
	}
	h = append(h,
		[2]string{"Content-Language", "en-US"},
		[2]string{"From", fmt.Sprintf("User %d <%s>", m.userNo, m.sender)},
		[2]string{"To", strings.Join(to, ",\n ")},
		[2]string{"Subject", fmt.Sprintf("Quarterly report %d/%d", w.wid, w.msgNo)},
		[2]string{"Content-Type", "text/plain; charset=UTF-8; format=flowed"},
		[2]string{"Content-Transfer-Encoding", "8bit"},
	)
	return h
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// ends reports whether Postfix stops sending this milter events for the
// message (or session) after act.
func ends(act *milter.Action) bool {
	return act.StopProcessing() || act.Type == milter.ActionAccept || act.Type == milter.ActionDiscard
}

// eomOutcome names what Postfix does with a message after the
// end-of-message reply: accept and continue queue it, and a quarantine
// modification with them puts it on hold (Postfix logs "milter triggers
// HOLD action"); reject, tempfail and discard win over a quarantine.
func eomOutcome(mods []milter.ModifyAction, act *milter.Action) string {
	switch act.Type {
	case milter.ActionAccept, milter.ActionContinue:
		for _, m := range mods {
			if m.Type == milter.ActionQuarantine {
				return outcomeQuarantine
			}
		}
		return outcomeAccept
	}
	return actionName(act) + "@eom"
}

func actionName(a *milter.Action) string {
	switch a.Type {
	case milter.ActionAccept:
		return "ACCEPT"
	case milter.ActionContinue:
		return "CONTINUE"
	case milter.ActionDiscard:
		return "DISCARD"
	case milter.ActionReject:
		return "REJECT"
	case milter.ActionTempFail:
		return "TEMPFAIL"
	case milter.ActionSkip:
		return "SKIP"
	case milter.ActionRejectWithCode:
		if a.SMTPCode >= 400 && a.SMTPCode < 500 {
			return "TEMPFAIL(" + strconv.Itoa(int(a.SMTPCode)) + ")"
		}
		return "REJECT(" + strconv.Itoa(int(a.SMTPCode)) + ")"
	}
	return "UNKNOWN"
}
