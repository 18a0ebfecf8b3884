package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/aprl"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Reasons of the phisher detector.
const (
	// ReasonReplyToPhisher: an outbound message goes to a listed phisher
	// address (an APRL list or the site blocklist).
	ReasonReplyToPhisher engine.Reason = "reply-to-phisher"
	// ReasonFromListedPhisher: an inbound message's From, Reply-To or
	// envelope sender is a listed phisher address.
	ReasonFromListedPhisher engine.Reason = "from-listed-phisher"
)

// Phishers is the known-phisher detector over APRL lists and the site
// block and allow lists. Lists are swapped atomically on reload, so
// lookups never wait for a reload.
type Phishers struct {
	o       PhishersOptions
	watcher *aprl.Watcher // nil without APRL lists
	block   matcherFiles
	allow   matcherFiles
	log     *slog.Logger
}

// PhishersOptions configures the Phishers detector.
type PhishersOptions struct {
	Lists, Cleared, Blocklist, Allowlist []string
	Action                               engine.Action
	Score                                int
	InboundAction                        engine.Action
	DryRun                               bool
	Logger                               *slog.Logger
}

// NewPhishers loads every file; it fails when one cannot be read or is
// not a list at all (bad lines are skipped and logged).
func NewPhishers(o PhishersOptions) (*Phishers, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Phishers{o: o, log: o.Logger, block: matcherFiles{files: o.Blocklist}, allow: matcherFiles{files: o.Allowlist}}
	if len(o.Lists) > 0 {
		w, err := aprl.NewWatcher(o.Lists, o.Cleared, o.Logger)
		if err != nil {
			return nil, err
		}
		p.watcher = w
	}
	if _, err := p.block.check(o.Logger); err != nil {
		return nil, err
	}
	if _, err := p.allow.check(o.Logger); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload checks every file and reloads those that changed. On an error
// the previous lists stay in use.
func (p *Phishers) Reload() error {
	var errs []error
	if p.watcher != nil {
		if _, err := p.watcher.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range []*matcherFiles{&p.block, &p.allow} {
		if _, err := m.check(p.log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run reloads changed files every interval until ctx is done.
func (p *Phishers) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Reload(); err != nil {
				p.log.Warn("phisher list reload failed; keeping the previous lists", "err", err)
			}
		}
	}
}

// Len returns the listed APRL addresses and the site rules.
func (p *Phishers) Len() (listed, blockRules, allowRules int) {
	if p.watcher != nil {
		listed = p.watcher.Current().Len()
	}
	return listed, p.block.len(), p.allow.len()
}

// Lookup says whether addr is a listed phisher and where it is listed.
func (p *Phishers) Lookup(addr string) (where string, ok bool) {
	if addr == "" {
		return "", false
	}
	if _, ok := p.allow.match(addr); ok {
		return "", false
	}
	if rule, ok := p.block.match(addr); ok {
		return "blocklist " + rule, true
	}
	if p.watcher != nil {
		if e, ok := p.watcher.Current().Lookup(addr); ok {
			return fmt.Sprintf("%s:%d type %s last seen %s", e.Source, e.Line, e.Types, e.LastSeen.Format("2006-01-02")), true
		}
	}
	return "", false
}

// Outbound implements engine.Detector: mail to a listed address.
func (p *Phishers) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	var hits []string
	for _, r := range sub.Recipients {
		if where, ok := p.Lookup(r); ok {
			hits = append(hits, strings.ToLower(r)+" ("+where+")")
			if len(hits) == 3 {
				break
			}
		}
	}
	if len(hits) == 0 {
		return nil
	}
	return []engine.Finding{{Rule: "phishers", Reason: ReasonReplyToPhisher, Family: verdict.Phish, Action: p.o.Action, Score: p.o.Score, DryRun: p.o.DryRun,
		Evidence: "recipient " + strings.Join(hits, ", ")}}
}

// Inbound implements engine.Detector: mail from a listed address.
func (p *Phishers) Inbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	for _, c := range []struct{ what, value string }{{"from", sub.From}, {"reply-to", sub.ReplyTo}, {"sender", sub.Sender}} {
		for _, addr := range headerAddresses(c.value) {
			if where, ok := p.Lookup(addr); ok {
				return []engine.Finding{{Rule: "phishers", Reason: ReasonFromListedPhisher, Family: verdict.Phish, Action: p.o.InboundAction, DryRun: p.o.DryRun,
					Evidence: fmt.Sprintf("%s %s (%s)", c.what, strings.ToLower(addr), where)}}
			}
		}
	}
	return nil
}

// headerAddresses returns the addresses of a From or Reply-To header value
// ("Name <a@b>, c@d"), or of a bare envelope address. A value that does
// not parse yields the parts that look like addresses, so a malformed
// header cannot hide a listed address.
func headerAddresses(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out
	}
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '<' || r == '>' || r == '"'
	}) {
		if strings.Contains(f, "@") {
			out = append(out, f)
			if len(out) == 10 {
				break
			}
		}
	}
	return out
}

// matcherFiles is a site list made of several files, reloaded when one of
// them changes.
type matcherFiles struct {
	files  []string
	cur    atomic.Pointer[[]*aprl.Matcher] // one per file
	mu     sync.Mutex
	stamps []os.FileInfo
}

func (m *matcherFiles) check(log *slog.Logger) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.files) == 0 {
		return false, nil
	}
	stamps := make([]os.FileInfo, len(m.files))
	same := m.stamps != nil
	for i, f := range m.files {
		fi, err := os.Stat(f)
		if err != nil {
			return false, fmt.Errorf("site list: %w", err)
		}
		stamps[i] = fi
		if same {
			old := m.stamps[i]
			same = os.SameFile(old, fi) && old.ModTime().Equal(fi.ModTime()) && old.Size() == fi.Size()
		}
	}
	if same {
		return false, nil
	}
	ms := make([]*aprl.Matcher, 0, len(m.files))
	for _, f := range m.files {
		fh, err := os.Open(f)
		if err != nil {
			return false, fmt.Errorf("site list: %w", err)
		}
		mt, bad, err := aprl.ParseMatcher(fh, f)
		fh.Close()
		if err != nil {
			return false, fmt.Errorf("site list: %w", err)
		}
		for i, e := range bad {
			if i == 10 {
				break
			}
			log.Warn("site list bad line skipped", "file", f, "line", e.Line, "error", e.Msg)
		}
		ms = append(ms, mt)
	}
	m.cur.Store(&ms)
	m.stamps = stamps
	return true, nil
}

func (m *matcherFiles) match(addr string) (string, bool) {
	ms := m.cur.Load()
	if ms == nil {
		return "", false
	}
	for _, mt := range *ms {
		if r, ok := mt.Match(addr); ok {
			return r, true
		}
	}
	return "", false
}

func (m *matcherFiles) len() int {
	ms := m.cur.Load()
	if ms == nil {
		return 0
	}
	n := 0
	for _, mt := range *ms {
		n += mt.Len()
	}
	return n
}
