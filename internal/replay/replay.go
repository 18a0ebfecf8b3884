package replay

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/netip"
	"net/textproto"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/translate"
)

// maxLine bounds one input line; a submission with thousands of recipients
// fits easily.
const maxLine = 4 << 20

// Record is one input line.
type Record struct {
	Time       time.Time         `json:"time"`
	Account    string            `json:"account"`
	Sender     string            `json:"sender,omitempty"`
	Recipients []string          `json:"recipients"`
	Client     string            `json:"client,omitempty"` // X-Mailer or User-Agent value
	ClientIP   string            `json:"client_ip,omitempty"`
	Subject    string            `json:"subject,omitempty"`
	MessageID  string            `json:"message_id,omitempty"`
	InReplyTo  string            `json:"in_reply_to,omitempty"`
	References []string          `json:"references,omitempty"`
	Size       int64             `json:"size,omitempty"`
	Direction  string            `json:"direction,omitempty"` // outbound (default) or inbound
	Headers    map[string]string `json:"headers,omitempty"`
	// Raw is the whole message (header block, blank line, body), base64
	// in JSON; EML names a file holding it instead. With it the content
	// detectors (campaign fingerprints) run as on the milter path, and
	// the Subject comes from it when not given.
	Raw []byte `json:"raw,omitempty"`
	EML string `json:"eml,omitempty"`
}

// MaxRaw bounds the message bytes read of raw or eml, as the milter keeps
// at most that much of a body for the content detectors.
const MaxRaw = 512 << 10

// ParseRecord parses and checks one input line.
func ParseRecord(line []byte) (*Record, error) {
	var r Record
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	if r.Time.IsZero() {
		return nil, errors.New("time is required")
	}
	if strings.TrimSpace(r.Account) == "" {
		return nil, errors.New("account is required")
	}
	if len(r.Recipients) == 0 {
		return nil, errors.New("recipients are required")
	}
	switch r.Direction {
	case "", "outbound", "inbound":
	default:
		return nil, fmt.Errorf("direction must be outbound or inbound, got %q", r.Direction)
	}
	if r.ClientIP != "" {
		if _, err := netip.ParseAddr(r.ClientIP); err != nil {
			return nil, fmt.Errorf("client_ip: %v", err)
		}
	}
	if r.EML != "" && len(r.Raw) > 0 {
		return nil, errors.New("raw and eml are exclusive")
	}
	if len(r.Raw) > MaxRaw {
		r.Raw = r.Raw[:MaxRaw]
	}
	if len(r.Raw) > 0 && r.Subject == "" {
		r.Subject = rawSubject(r.Raw)
	}
	return &r, nil
}

// Output is one output line.
type Output struct {
	Line         int      `json:"line"`
	Time         string   `json:"time"`
	Account      string   `json:"account"`
	Direction    string   `json:"direction,omitempty"`
	Action       string   `json:"action"`
	Reasons      []string `json:"reasons"`
	AccountState string   `json:"account_state"`
	Recipients   int      `json:"recipients,omitempty"`
	// Refused counts the recipients deferred or rejected at RCPT.
	Refused int `json:"refused,omitempty"`
	// Shadow is what the verdict would have been in shadow mode.
	Shadow string `json:"shadow,omitempty"`
	// Findings are every finding of the message, acted on or not.
	Findings []Finding `json:"findings,omitempty"`
	// Score is the account's score after the message, from ScoredMessages
	// messages, in the score window.
	Score          int64  `json:"score"`
	ScoredMessages int64  `json:"scored_messages"`
	Error          string `json:"error,omitempty"`
}

// Finding is one finding in an output line.
type Finding struct {
	Reason   string `json:"reason"`
	Family   string `json:"family"`
	Score    int    `json:"score"`
	Action   string `json:"action"`
	DryRun   bool   `json:"dry_run,omitempty"`
	Evidence string `json:"evidence,omitempty"`
}

// fill sets the verdict's parts of o.
func (o *Output) fill(v engine.Verdict) {
	o.Action = v.Action.String()
	o.Reasons = engine.ReasonStrings(v.Reasons)
	if v.Shadow != v.Action {
		o.Shadow = v.Shadow.String()
	}
	for _, f := range v.Findings {
		o.Findings = append(o.Findings, Finding{Reason: string(f.Reason), Family: string(f.Family), Score: f.Score, Action: f.Action.String(), DryRun: f.DryRun, Evidence: f.Evidence})
	}
	o.Score, o.ScoredMessages = v.Score, v.ScoredMessages
}

// Summary counts what a replay did.
type Summary struct {
	Lines           int            `json:"lines"`
	Messages        int            `json:"messages"`
	Inbound         int            `json:"inbound"`
	Errors          int            `json:"errors"`
	Actions         map[string]int `json:"actions"`
	Reasons         map[string]int `json:"reasons"`
	AccountsByState map[string]int `json:"accounts_by_state"`
}

// states is the in-memory account state view of a replay.
type states map[string]store.AccountState

func (s states) AccountState(a string) store.AccountState {
	if st, ok := s[a]; ok {
		return st
	}
	return store.AccountNormal
}

// Run replays in (JSON Lines) through the engine configured by cfg and
// writes one output line per input line, in order. A bad line yields an
// output line with an error and does not stop the replay. Progress, when
// non-nil, is called after every line with the bytes read so far.
func Run(ctx context.Context, cfg *config.Config, in io.Reader, out io.Writer, progress func(line int, bytes int64)) (*Summary, error) {
	return RunWith(ctx, cfg, nil, in, out, progress)
}

// RunWith is Run with the detectors given (built from cfg, perhaps with
// their state restored), so that the caller can keep what they learned
// (mailbrake learn); nil builds them.
func RunWith(ctx context.Context, cfg *config.Config, dets *detect.Set, in io.Reader, out io.Writer, progress func(line int, bytes int64)) (*Summary, error) {
	st := states{}
	if dets == nil {
		var err error
		if dets, err = detect.Build(cfg, detect.Options{}); err != nil {
			return nil, err
		}
	}
	e, err := engine.New(engine.Options{Detectors: dets.All(),
		Rules: cfg.Rules, Counters: counter.NewMemory(), OnError: engine.ActionAllow,
		States: st, Scores: counter.NewMemory(), WatchScore: int64(cfg.Accounts.WatchScore), RestrictScore: int64(cfg.Accounts.RestrictScore),
		ScoreWindow: cfg.Accounts.ScoreWindow.D(), Shadow: cfg.Engine.Shadow,
	})
	if err != nil {
		return nil, err
	}
	id, err := engine.NewIdentity(cfg.Identity.TrustedNetworks, cfg.Identity.AccountHeader)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Actions: map[string]int{}, Reasons: map[string]int{}, AccountsByState: map[string]int{}}
	seen := map[string]bool{}
	br := bufio.NewReaderSize(in, 64<<10)
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	var read int64
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		line, err := readLine(br)
		read += int64(len(line))
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return sum, fmt.Errorf("line %d: %w", n, err)
		}
		sum.Lines++
		o := Output{Line: n, Reasons: []string{}}
		rec, perr := ParseRecord(line)
		if perr == nil {
			perr = rec.loadEML()
		}
		if perr != nil {
			o.Error, o.Action, o.AccountState = perr.Error(), "error", ""
			sum.Errors++
		} else {
			o.Time = rec.Time.UTC().Format(time.RFC3339)
			account, _, _ := id.Resolve(rec.Account, "", "", netip.Addr{})
			o.Account = account
			o.Recipients = len(rec.Recipients)
			seen[account] = true
			if rec.Direction == "inbound" {
				sub := submission(rec, account, n)
				sub.Direction, sub.AccountSource = engine.Inbound, engine.SourceUnauthenticated
				v, err := e.Evaluate(ctx, sub)
				if err != nil {
					return sum, fmt.Errorf("line %d: %w", n, err)
				}
				o.fill(v)
				o.Direction = "inbound"
				o.AccountState = string(st.AccountState(account))
				sum.Inbound++
			} else {
				v, refused, err := outbound(ctx, e, st, rec, account, n)
				if err != nil {
					return sum, fmt.Errorf("line %d: %w", n, err)
				}
				o.fill(v)
				o.Refused = refused
				o.AccountState = string(st.AccountState(account))
				sum.Messages++
				sum.Actions[o.Action]++
				for _, r := range o.Reasons {
					sum.Reasons[r]++
				}
			}
		}
		if err := enc.Encode(o); err != nil {
			return sum, err
		}
		if progress != nil {
			progress(n, read)
		}
	}
	for a := range seen {
		sum.AccountsByState[string(st.AccountState(a))]++
	}
	return sum, bw.Flush()
}

// readLine reads one line of at most maxLine bytes, without its newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if err != nil || !isPrefix {
			return buf, err
		}
	}
}

func submission(r *Record, account string, line int) *engine.Submission {
	client := r.Client
	fp := fingerprint.Classify(client, "")
	if client == "" {
		fp = fingerprint.Classify(r.Headers["X-Mailer"], r.Headers["User-Agent"])
	}
	addr, _ := netip.ParseAddr(r.ClientIP)
	origin := translate.Origin(engine.SourceSASL, addr, "")
	if xo := r.Headers["X-Originating-IP"]; xo != "" {
		origin = translate.Origin(engine.SourceHeader, addr, xo)
	}
	sender := r.Sender
	if sender == "" {
		sender = account
	}
	return &engine.Submission{
		Time: r.Time, Stage: engine.StageEOM, Path: engine.PathMilter,
		Account: account, AccountSource: engine.SourceSASL, ClientAddress: addr, Origin: origin, Client: fp,
		Sender: sender, Recipients: r.Recipients, RecipientCount: len(r.Recipients),
		Size: r.Size, Subject: r.Subject, Body: r.Raw,
		MessageID: r.MessageID, InReplyTo: r.InReplyTo, References: r.References,
		From: cmp.Or(r.Headers["From"], r.Sender), ReplyTo: r.Headers["Reply-To"],
		Header: func(name string) string {
			for k, v := range r.Headers {
				if strings.EqualFold(k, name) {
					return v
				}
			}
			return ""
		},
		// A unique key per line, so both the counters and the scores
		// charge each replayed message once.
		QueueID: fmt.Sprintf("replay%d", line),
	}
}

// loadEML reads the message of an eml record (a regular file, at most
// MaxRaw bytes of it).
func (r *Record) loadEML() error {
	if r.EML == "" {
		return nil
	}
	f, err := os.Open(r.EML)
	if err != nil {
		return fmt.Errorf("eml: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("eml: %s is not a regular file", r.EML)
	}
	if r.Raw, err = io.ReadAll(io.LimitReader(f, MaxRaw)); err != nil {
		return fmt.Errorf("eml: %w", err)
	}
	if r.Subject == "" {
		r.Subject = rawSubject(r.Raw)
	}
	return nil
}

// outbound decides one outbound message as Postfix and the daemon would:
// each recipient at RCPT on the policy path (the recipient-stage rules,
// such as the default messages-per-hour), then the message at end of
// message on the milter path with the recipients accepted. A recipient
// deferred or rejected at RCPT is refused and not sent; a HOLD at RCPT
// holds the whole message. The verdict is the strongest of the two
// stages, with every finding.
func outbound(ctx context.Context, e *engine.Engine, st states, rec *Record, account string, line int) (engine.Verdict, int, error) {
	eom := submission(rec, account, line)
	var rcpt engine.Verdict
	var accepted []string
	for _, r := range rec.Recipients {
		rs := *eom
		rs.Stage, rs.Path, rs.Recipient, rs.Recipients, rs.RecipientCount, rs.Body = engine.StageRcpt, engine.PathPolicy, r, nil, 0, nil
		rs.Instance = eom.QueueID
		v, err := e.Evaluate(ctx, &rs)
		if err != nil {
			return v, 0, err
		}
		if v.Escalate != "" {
			st[account] = v.Escalate
		}
		if v.Action >= engine.ActionDefer {
			if v.Action > rcpt.Action || len(rcpt.Findings) == 0 {
				rcpt = v
			}
			continue
		}
		if v.Action > rcpt.Action {
			rcpt = v
		}
		accepted = append(accepted, r)
	}
	refused := len(rec.Recipients) - len(accepted)
	if len(accepted) == 0 {
		return rcpt, refused, nil // nothing was sent
	}
	eom.Recipients, eom.RecipientCount = accepted, len(accepted)
	v, err := e.Evaluate(ctx, eom)
	if err != nil {
		return v, refused, err
	}
	if v.Escalate != "" {
		st[account] = v.Escalate
	}
	if rcpt.Action > v.Action {
		v.Action, v.Reasons = rcpt.Action, append(rcpt.Reasons, v.Reasons...)
	}
	if refused > 0 || rcpt.Action > engine.ActionAllow {
		v.Findings = append(rcpt.Findings, v.Findings...)
	}
	return v, refused, nil
}

// rawSubject returns the decoded Subject of a raw message ("" when it has
// none or its header block does not parse).
func rawSubject(raw []byte) string {
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	s := h.Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	return s
}

// WriteText prints a human summary.
func (s *Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d lines: %d outbound messages, %d inbound, %d errors\n", s.Lines, s.Messages, s.Inbound, s.Errors)
	printMap := func(title string, m map[string]int) {
		if len(m) == 0 {
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
		fmt.Fprintf(w, "%s:\n", title)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-28s %d\n", k, m[k])
		}
	}
	printMap("verdicts", s.Actions)
	printMap("reasons", s.Reasons)
	printMap("accounts by state", s.AccountsByState)
}
