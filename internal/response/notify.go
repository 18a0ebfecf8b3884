package response

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailbrake/mailbrake/internal/notify"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Notify carries out the notify step.
type Notify struct{ n *notify.Notifier }

// NewNotify returns the notify connector.
func NewNotify(n *notify.Notifier) Notify { return Notify{n} }

func (Notify) Name() string { return "notify" }

func (Notify) Supports(s playbook.Step) bool { return s == playbook.StepNotify }

func (c Notify) Do(ctx context.Context, s playbook.Step, inc *store.Incident, _ []byte) (string, error) {
	if s != playbook.StepNotify {
		return "", fmt.Errorf("%w: notify does not carry out %s", playbook.ErrPermanent, s)
	}
	ev := notifyEvent(inc)
	results := c.n.Send(ctx, ev)
	var sent, skipped []string
	var errs []error
	for _, r := range results {
		switch {
		case r.Err != nil && !r.Sent:
			errs = append(errs, fmt.Errorf("%s: %w", r.Channel, r.Err))
		case r.Skipped != "":
			skipped = append(skipped, r.Channel+" ("+r.Skipped+")")
		default:
			sent = append(sent, r.Channel)
		}
	}
	detail := ev.Kind + " sent to " + strings.Join(sent, ", ")
	if len(sent) == 0 {
		detail = ev.Kind + ": nothing sent"
	}
	if len(skipped) > 0 {
		detail += "; skipped " + strings.Join(skipped, ", ")
	}
	if len(errs) > 0 && len(sent) == 0 {
		return "", errors.Join(errs...)
	}
	if len(errs) > 0 {
		detail += "; failed " + errors.Join(errs...).Error()
	}
	return detail, nil
}

// Update tells the help desk about an incident it was already told of:
// what the steps carried out since did (kind ""), or that it was
// resolved or dismissed (notify.KindIncidentResolved, …). Mail is threaded
// per incident. It returns the channels' errors joined.
func (c Notify) Update(ctx context.Context, inc *store.Incident, kind string) error {
	ev := notifyEvent(inc)
	if kind != "" {
		ev.Kind, ev.NextSteps = kind, ""
	}
	var errs []error
	for _, r := range c.n.Send(ctx, ev) {
		if r.Err != nil && !r.Sent {
			errs = append(errs, fmt.Errorf("%s: %w", r.Channel, r.Err))
		}
	}
	return errors.Join(errs...)
}

// Told reports whether the help desk was told of inc: its notify step is
// done.
func Told(inc *store.Incident) bool {
	st := inc.Step(string(playbook.StepNotify))
	return st != nil && st.Status == store.StepDone
}

// notifyEvent describes an incident for the notifier. The evidence is
// what mailbrake recorded, which never holds a password or a body.
func notifyEvent(inc *store.Incident) notify.Event {
	ni := notify.Incident{ID: inc.ID, Account: inc.Account, Severity: string(inc.Severity), State: string(inc.State), Reasons: inc.Reasons,
		Opened: inc.Opened, Updated: inc.Updated}
	for _, e := range inc.Evidence {
		line := e.Time.UTC().Format("2006-01-02 15:04:05Z") + " " + e.Reason
		if e.HoldID != 0 {
			line += fmt.Sprintf(" (hold %d)", e.HoldID)
		}
		if e.Detail != "" {
			line += ": " + e.Detail
		}
		ni.Evidence = append(ni.Evidence, line)
	}
	pending, failed := false, false
	for _, s := range inc.Steps {
		if s.Name == string(playbook.StepNotify) {
			continue
		}
		ni.Steps = append(ni.Steps, notify.Step{Name: s.Name, Status: string(s.Status), Detail: s.Detail, At: s.At})
		pending = pending || s.Status == store.StepPending
		failed = failed || s.Status == store.StepFailed
	}
	ev := notify.Event{Kind: notify.KindPlaybookFinished, Incident: ni}
	switch {
	case failed:
		ev.Kind = notify.KindStepFailed
		ev.NextSteps = fmt.Sprintf("Some steps failed (see above). An admin should fix the cause and retry them with `mailbrake incident confirm %d`, or do them by hand.", inc.ID)
	case pending:
		ev.Kind = notify.KindIncidentOpened
		ev.NextSteps = fmt.Sprintf("Sending from %s is held. An admin must review the evidence and confirm (`mailbrake incident confirm %d`: lock, new password, end sessions) or dismiss it as a false alarm (`mailbrake incident dismiss %d --note …`).", inc.Account, inc.ID, inc.ID)
	}
	return ev
}
