package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"text/template"
	"time"
)

// Event kinds. The values are stable: they appear in mail headers, the
// webhook payload and syslog.
const (
	KindIncidentOpened    = "incident-opened"
	KindIncidentConfirmed = "incident-confirmed"
	KindPlaybookFinished  = "playbook-finished"
	KindStepFailed        = "step-failed"
	KindIncidentResolved  = "incident-resolved"
	KindIncidentDismissed = "incident-dismissed"
)

// Channels, as named in ChannelResult. Each mail audience is its own
// channel with its own rate limit and its own SMTP transaction.
const (
	ChannelHelpDesk = "email-helpdesk"
	ChannelAdmin    = "email-admin"
	ChannelUser     = "email-user"
	ChannelWebhook  = "webhook"
	ChannelSyslog   = "syslog"
)

// Reasons a channel was skipped, as in ChannelResult.Skipped.
const (
	SkipRateLimited = "rate-limited" // the per-incident or per-hour limit was reached
	SkipNoAddress   = "no-address"   // Config.UserAddress found no address for the user
)

// Incident is what the caller knows about an incident at the time of the
// event. Evidence must already be masked: this package has no notion of
// secrets and sends evidence as given (bounded in size) to the help desk,
// the admins and the webhook.
type Incident struct {
	ID       int64     `json:"id"`
	Account  string    `json:"account"`
	Severity string    `json:"severity"`
	State    string    `json:"state"`
	Reasons  []string  `json:"reasons"`
	Evidence []string  `json:"evidence"`
	Steps    []Step    `json:"steps"`
	Opened   time.Time `json:"opened,omitzero"`
	Updated  time.Time `json:"updated,omitzero"`
	URL      string    `json:"url,omitempty"` // link to the admin UI, optional
}

// Step is one playbook step and its outcome so far.
type Step struct {
	Name   string    `json:"name"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// Event is one thing worth telling people about.
type Event struct {
	// Kind is one of the Kind constants.
	Kind     string
	Incident Incident
	// NextSteps is what the help desk must do next; empty means the
	// standard checklist for a compromised account (or nothing, for a
	// resolved or dismissed incident).
	NextSteps string
}

// ChannelResult is the outcome of one channel for one event.
type ChannelResult struct {
	Channel string
	// Recipients are the mail addresses, the webhook's scheme and host
	// (its path and query may hold a token), or the syslog address.
	Recipients []string
	// Sent is true when the channel delivered to at least one recipient.
	Sent bool
	// Skipped is SkipRateLimited or SkipNoAddress when nothing was tried.
	Skipped string
	// Err is why the channel failed; with Sent, which recipients failed.
	Err error
}

// Notifier sends events. It is safe for concurrent use.
type Notifier struct {
	s           *settings
	log         *slog.Logger
	templates   map[string]*template.Template // by audience
	userAddress func(ctx context.Context, account string) (string, error)
	contact     string
	hostname    string
	pid         int
	http        *http.Client
	limits      *limiter

	// Hooks for tests: the clock and the wait between webhook attempts.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// New validates cfg, reads its secret and template files and returns a
// Notifier. Every problem is reported, each with its key path
// ("notify.smtp.addr: missing port"), joined into one error. A nil logger
// discards.
func New(cfg Config, logger *slog.Logger) (*Notifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, errs := validate(cfg)
	tmpls, terrs := loadTemplates(cfg.TemplatesDir)
	errs = append(errs, terrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	n := &Notifier{
		s:           s,
		log:         logger.With("component", "notify"),
		templates:   tmpls,
		userAddress: cfg.UserAddress,
		contact:     oneLine(cfg.HelpDeskContact, maxLine),
		pid:         os.Getpid(),
		now:         time.Now,
		sleep:       sleepCtx,
	}
	if n.contact == "" {
		var addrs []string
		for _, a := range s.smtp.helpDesk {
			addrs = append(addrs, a.Address)
		}
		n.contact = strings.Join(addrs, ", ")
	}
	n.hostname, _ = os.Hostname()
	if !printUSASCII(n.hostname, 255) {
		n.hostname = s.smtp.hello
	}
	n.http = &http.Client{
		Timeout: s.webhook.timeout,
		// A redirect is a misconfigured URL; following it would send the
		// event somewhere the operator did not name.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	n.limits = newLimiter(s.perIncident, s.perHour, time.Hour)
	return n, nil
}

// Notify sends ev on every configured channel and returns the failures of
// all channels joined; one failing channel does not stop the others. A
// rate-limited channel is not a failure.
func (n *Notifier) Notify(ctx context.Context, ev Event) error {
	var errs []error
	for _, r := range n.Send(ctx, ev) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Channel, r.Err))
		}
	}
	return errors.Join(errs...)
}

// Send sends ev on every configured channel, concurrently, and returns
// one result per channel the event goes to, in a fixed order: help desk,
// admin, user, webhook, syslog. The user mail goes out only for
// playbook-finished.
func (n *Notifier) Send(ctx context.Context, ev Event) []ChannelResult {
	b := bound(ev)
	type job struct {
		channel string
		run     func(context.Context) ChannelResult
	}
	var jobs []job
	if n.s.smtp.on {
		if len(n.s.smtp.helpDesk) > 0 {
			jobs = append(jobs, job{ChannelHelpDesk, func(ctx context.Context) ChannelResult {
				return n.sendMailTo(ctx, ChannelHelpDesk, audienceHelpDesk, b, n.s.smtp.helpDesk)
			}})
		}
		if len(n.s.smtp.admins) > 0 {
			jobs = append(jobs, job{ChannelAdmin, func(ctx context.Context) ChannelResult {
				return n.sendMailTo(ctx, ChannelAdmin, audienceAdmin, b, n.s.smtp.admins)
			}})
		}
		if n.s.smtp.notifyUsr && b.Kind == KindPlaybookFinished {
			jobs = append(jobs, job{ChannelUser, func(ctx context.Context) ChannelResult { return n.sendUser(ctx, b) }})
		}
	}
	if n.s.webhook.on {
		jobs = append(jobs, job{ChannelWebhook, func(ctx context.Context) ChannelResult { return n.sendWebhook(ctx, b) }})
	}
	if n.s.syslog.on {
		jobs = append(jobs, job{ChannelSyslog, func(ctx context.Context) ChannelResult { return n.sendSyslog(ctx, b) }})
	}

	results := make([]ChannelResult, len(jobs))
	if !knownKind(ev.Kind) {
		// Send nothing; report the bad event on every channel so the
		// caller's joined error names it.
		for i, j := range jobs {
			results[i] = ChannelResult{Channel: j.channel, Err: fmt.Errorf("unknown event kind %q", b.Kind)}
		}
		return results
	}
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() { results[i] = job.run(ctx) })
	}
	wg.Wait()
	for _, r := range results {
		switch {
		case r.Err != nil:
			n.log.Error("notification failed", "channel", r.Channel, "incident", b.Incident.ID, "kind", b.Kind,
				"sent", r.Sent, "err", r.Err)
		case r.Sent:
			n.log.Info("notification sent", "channel", r.Channel, "incident", b.Incident.ID, "kind", b.Kind,
				"recipients", len(r.Recipients))
		}
	}
	return results
}

// allow applies the rate limits of channel for the incident and logs the
// first skip of a window.
func (n *Notifier) allow(channel string, b bounded) bool {
	ok, scope, first := n.limits.allow(channel, b.Incident.ID, n.now())
	if !ok && first {
		n.log.Warn("notifications rate-limited; further skips in this window are not logged",
			"channel", channel, "incident", b.Incident.ID, "limit", scope)
	}
	return ok
}

func knownKind(k string) bool {
	switch k {
	case KindIncidentOpened, KindIncidentConfirmed, KindPlaybookFinished, KindStepFailed,
		KindIncidentResolved, KindIncidentDismissed:
		return true
	}
	return false
}

// randomID returns n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
