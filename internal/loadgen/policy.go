package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// RunPolicy runs a Postfix policy delegation load against o.Addr and
// returns what it measured. It refuses a target that is not on this host
// unless o.AllowRemote (the error wraps ErrNotLoopback), dials o.Conns
// connections before the clock starts, and returns at the latest about
// o.Timeout after Warmup+Duration (never later than MaxDuration plus
// MaxTimeout and a few seconds). If ctx is done the run stops early and
// its Result says StopCancelled; an error is returned only when the run
// could not start.
func RunPolicy(ctx context.Context, o PolicyOptions) (*Result, error) {
	c, state, err := o.normalize()
	if err != nil {
		return nil, fmt.Errorf("policy load: %w", err)
	}
	t, err := resolveTarget(ctx, c.addr, c.allowRemote, systemLookup)
	if err != nil {
		return nil, fmt.Errorf("policy load: %w", err)
	}
	r := newRunner(ctx, c)
	defer r.abort()
	conns, err := r.predial(t, c.conns)
	if err != nil {
		return nil, fmt.Errorf("policy load: connecting to %s: %w", c.addr, err)
	}
	r.startClock()
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(c.conns) / o.Rate)
	}
	r.execute(ctx, func(wid int, ws *workerStats) {
		var cn *policyConn
		if conns[wid] != nil {
			cn = newPolicyConn(conns[wid])
			ws.conns++
		}
		policyWorker(r, t, state, interval, wid, ws, cn)
	})
	res := r.result()
	res.State = state
	return res, nil
}

// policyWorker sends requests on one connection until the run stops.
func policyWorker(r *runner, t target, state string, interval time.Duration, wid int, ws *workerStats, cn *policyConn) {
	defer func() {
		if cn != nil {
			_ = cn.nc.Close()
		}
	}()
	g := newPolicyGen(&r.c, state, wid)
	// Paced workers are staggered so they do not fire in lockstep.
	sched := r.start.Add(time.Duration(wid) * interval / time.Duration(r.c.conns))
	for {
		g.nextMessage()
		for i := range g.steps {
			var t0 time.Time
			if interval > 0 {
				if !r.sleepUntil(sched) {
					return
				}
				t0 = sched // measured from the intended send time
				sched = sched.Add(interval)
			} else {
				t0 = time.Now()
			}
			send, measured := r.admit(t0)
			if !send {
				return
			}
			if cn == nil {
				nc, err := r.dial(t)
				if err != nil {
					if measured {
						r.recordErr(ws, "dial_", err)
					}
					// A refused port fails at once: back off rather than spin.
					if !r.sleepUntil(time.Now().Add(50 * time.Millisecond)) {
						return
					}
					continue
				}
				cn = newPolicyConn(nc)
				ws.conns++
			}
			action, err := cn.roundTrip(g.render(&g.steps[i]), r.deadline())
			t1 := time.Now()
			if err != nil {
				_ = cn.nc.Close()
				cn = nil
			}
			if !measured {
				continue
			}
			if err != nil {
				r.recordErr(ws, "", err)
				continue
			}
			ws.h.add(t1.Sub(t0))
			ws.outcomes[actionKey(action)]++
		}
	}
}

type policyConn struct {
	nc net.Conn
	r  *bufio.Reader
}

// maxReplyLine bounds one reply line; an action with its text is far shorter.
const maxReplyLine = 4096

func newPolicyConn(nc net.Conn) *policyConn {
	return &policyConn{nc: nc, r: bufio.NewReaderSize(nc, maxReplyLine)}
}

// roundTrip sends one request and returns the value of its action attribute.
func (c *policyConn) roundTrip(req []byte, deadline time.Time) (string, error) {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := c.nc.Write(req); err != nil {
		return "", err
	}
	var action string
	found := false
	for range 100 {
		line, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return "", fmt.Errorf("reply line longer than %d bytes: %w", maxReplyLine, errBadReply)
		}
		if err != nil {
			return "", err
		}
		line = bytes.TrimRight(line, "\r\n")
		// SMTPD_POLICY_README: the reply is name=value lines ending with
		// an empty line, with at least an action=... attribute.
		if len(line) == 0 {
			if !found {
				return "", fmt.Errorf("reply without action=: %w", errBadReply)
			}
			return action, nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("action=")); ok {
			action = string(v)
			found = true
		}
	}
	return "", fmt.Errorf("reply longer than 100 lines: %w", errBadReply)
}

// actionKey reduces an action to its keyword: "DEFER_IF_PERMIT Rate
// limit…" to DEFER_IF_PERMIT, "450 4.7.1 …" to 450.
func actionKey(a string) string {
	a = strings.TrimSpace(a)
	if i := strings.IndexAny(a, " \t"); i >= 0 {
		a = a[:i]
	}
	if a == "" {
		return "(empty)"
	}
	return strings.ToUpper(a)
}

// policyStep is one request of a message.
type policyStep struct {
	state     string
	recipient string
	rcptCount int
	queueID   string
}

// policyGen generates one connection's messages and renders their requests.
type policyGen struct {
	c     *common
	state string
	wid   int
	g     *msgGen
	msgNo uint64
	epoch int64

	// the current message
	m     message
	steps []policyStep
	buf   []byte
}

func newPolicyGen(c *common, state string, wid int) *policyGen {
	return &policyGen{c: c, state: state, wid: wid, g: newMsgGen(c, wid, 1), epoch: time.Now().Unix()}
}

// nextMessage generates the next message and its requests in the order
// Postfix sends them. A policy connection carries the requests of many
// SMTP sessions, so every message comes from a newly drawn user.
func (p *policyGen) nextMessage() {
	p.msgNo++
	p.g.newSession(&p.m)
	p.g.newTransaction(&p.m)
	m := &p.m
	// instance is the same for all requests of one message; smtpd makes
	// it from its pid, the time in seconds and microseconds, and the
	// message's number in the SMTP session ("3845.6b0b08cb.d97e2.0").
	m.instance = fmt.Sprintf("%x.%x.%x.0", 0x1000+p.wid, p.epoch, p.msgNo)
	p.steps = p.steps[:0]
	if p.state == "RCPT" || p.state == "BOTH" {
		for i, rcpt := range m.rcpts {
			// smtpd_delay_open_until_valid_rcpt = yes (the default): the
			// queue file, and with it the queue ID, exists only after the
			// first recipient is accepted.
			qid := m.queueID
			if i == 0 {
				qid = ""
			}
			// SMTPD_POLICY_README: recipient_count is non-zero only in
			// the DATA and END-OF-MESSAGE states.
			p.steps = append(p.steps, policyStep{state: "RCPT", recipient: rcpt, rcptCount: 0, queueID: qid})
		}
	}
	if p.state == "END-OF-MESSAGE" || p.state == "BOTH" {
		// Postfix names the recipient at END-OF-MESSAGE only when there
		// is exactly one.
		rcpt := ""
		if len(m.rcpts) == 1 {
			rcpt = m.rcpts[0]
		}
		p.steps = append(p.steps, policyStep{state: "END-OF-MESSAGE", recipient: rcpt, rcptCount: len(m.rcpts), queueID: m.queueID})
	}
}

// render writes the request for step s: the attributes Postfix 3.7
// sends, in its order (SMTPD_POLICY_README, "Protocol description";
// testdata/postfix-3.7.11-policy.txt is a capture). compatibility_level
// and mail_version came with Postfix 3.8 and are not sent. The buffer is
// reused by the next call.
func (p *policyGen) render(s *policyStep) []byte {
	m := &p.m
	b := p.buf[:0]
	kv := func(k, v string) {
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, v...)
		b = append(b, '\n')
	}
	kv("request", "smtpd_access_policy")
	kv("protocol_state", s.state)
	kv("protocol_name", "ESMTP")
	kv("client_address", m.client)
	kv("client_name", "unknown")
	kv("client_port", strconv.Itoa(int(m.port)))
	kv("reverse_client_name", "unknown")
	kv("server_address", "127.0.0.1")
	kv("server_port", "587")
	kv("helo_name", m.helo)
	kv("sender", m.sender)
	kv("recipient", s.recipient)
	kv("recipient_count", strconv.Itoa(s.rcptCount))
	kv("queue_id", s.queueID)
	kv("instance", m.instance)
	// The SIZE= the client announced at MAIL FROM.
	kv("size", strconv.Itoa(m.size))
	kv("etrn_domain", "")
	kv("stress", "")
	kv("sasl_method", "PLAIN")
	kv("sasl_username", m.user)
	kv("sasl_sender", "")
	kv("ccert_subject", "")
	kv("ccert_issuer", "")
	kv("ccert_fingerprint", "")
	kv("ccert_pubkey_fingerprint", "")
	// Submission: STARTTLS before AUTH.
	kv("encryption_protocol", "TLSv1.3")
	kv("encryption_cipher", "TLS_AES_256_GCM_SHA384")
	kv("encryption_keysize", "256")
	kv("policy_context", "")
	// SMTPD_POLICY_README: an empty line ends the request.
	b = append(b, '\n')
	p.buf = b
	return b
}
