package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

//go:embed templates/*.txt
var defaultTemplates embed.FS

// Mail audiences; each has a template file of the same name plus ".txt".
const (
	audienceHelpDesk = "helpdesk"
	audienceAdmin    = "admin"
	audienceUser     = "user"
)

var audiences = []string{audienceHelpDesk, audienceAdmin, audienceUser}

// maxBody bounds a rendered mail body. The defaults render a few KiB; a
// template that loops past this is broken, not chatty.
const maxBody = 256 << 10

// MessageData is what a mail template sees. Templates are text/template
// files; besides the built-ins they may call:
//
//	join     strings.Join, e.g. {{join .Incident.Reasons ", "}}
//	datetime formats a time as "2006-01-02 15:04:05 MST" ("-" when zero)
//	inc      adds one, for numbering steps from 1
type MessageData struct {
	// Kind is the event kind, e.g. "playbook-finished".
	Kind string
	// Headline is one sentence saying what happened, e.g. "An admin
	// confirmed incident 42 on alice@example.edu."
	Headline string
	// Incident is the bounded incident: no control characters in
	// single-line fields, at most 50 evidence lines of 500 characters.
	Incident Incident
	// EvidenceOmitted counts evidence lines beyond the bound.
	EvidenceOmitted int
	// NextSteps is the caller's instruction to the help desk, possibly
	// several lines; empty means the template's standard checklist.
	NextSteps string
	// ActionNeeded is false for resolved and dismissed incidents.
	ActionNeeded bool
	// HelpDeskContact says how users reach the help desk.
	HelpDeskContact string
}

var templateFuncs = template.FuncMap{
	"join": strings.Join,
	"datetime": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format("2006-01-02 15:04:05 MST")
	},
	"inc": func(i int) int { return i + 1 },
}

// loadTemplates returns the template of every audience: the file of the
// same name in dir when there is one, the embedded default otherwise.
func loadTemplates(dir string) (map[string]*template.Template, []error) {
	var errs []error
	out := map[string]*template.Template{}
	if dir != "" {
		if st, err := os.Stat(dir); err != nil {
			return nil, []error{&ConfigError{Path: "notify.templates_dir", Msg: err.Error()}}
		} else if !st.IsDir() {
			return nil, []error{&ConfigError{Path: "notify.templates_dir", Msg: dir + " is not a directory"}}
		}
	}
	for _, a := range audiences {
		name := a + ".txt"
		text, err := defaultTemplates.ReadFile("templates/" + name)
		if err != nil {
			panic(err) // embedded at build time
		}
		path := "notify.templates_dir"
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			switch {
			case err == nil:
				text = b
			case errors.Is(err, fs.ErrNotExist):
			default:
				errs = append(errs, &ConfigError{Path: path, Msg: err.Error()})
				continue
			}
		}
		t, err := parseTemplate(name, string(text))
		if err != nil {
			errs = append(errs, &ConfigError{Path: path, Msg: err.Error()})
			continue
		}
		out[a] = t
	}
	return out, errs
}

// parseTemplate parses one mail template and renders it once with sample
// data, so that a misspelt field or a failing function is an error at
// start rather than a missing mail during an incident.
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := newTemplate(name, text)
	if err != nil {
		return nil, err
	}
	if _, err := render(t, sampleData()); err != nil {
		return nil, err
	}
	return t, nil
}

// newTemplate parses text with the template functions.
func newTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
}

// render executes t, bounded by maxBody.
func render(t *template.Template, data MessageData) (string, error) {
	w := &cappedBuffer{max: maxBody}
	if err := t.Execute(w, data); err != nil {
		return "", fmt.Errorf("%s: %w", t.Name(), err)
	}
	return w.String(), nil
}

type cappedBuffer struct {
	bytes.Buffer
	max int
}

var errTooLong = fmt.Errorf("rendered text longer than %d bytes", maxBody)

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.Len()+len(p) > c.max {
		return 0, errTooLong
	}
	return c.Buffer.Write(p)
}

// sampleData is what a template is tried on at load time: every field set.
func sampleData() MessageData {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return MessageData{
		Kind:     KindPlaybookFinished,
		Headline: "Mailbrake finished the playbook of incident 1 on alice@example.edu.",
		Incident: Incident{
			ID: 1, Account: "alice@example.edu", Severity: "high", State: "contained",
			Reasons:  []string{"password-leak"},
			Evidence: []string{"message 1 to 200 recipients"},
			Steps:    []Step{{Name: "lock-login", Status: "done", Detail: "ldap", At: t}},
			Opened:   t, Updated: t, URL: "https://mailbrake.example.edu/incidents/1",
		},
		EvidenceOmitted: 1,
		NextSteps:       "Call the user.",
		ActionNeeded:    true,
		HelpDeskContact: "helpdesk@example.edu",
	}
}

// messageData builds the template data of an event.
func (n *Notifier) messageData(b bounded) MessageData {
	return MessageData{
		Kind:            b.Kind,
		Headline:        headline(b),
		Incident:        b.Incident,
		EvidenceOmitted: b.evidenceOmitted,
		NextSteps:       b.NextSteps,
		ActionNeeded:    b.Kind != KindIncidentResolved && b.Kind != KindIncidentDismissed,
		HelpDeskContact: n.contact,
	}
}

func headline(b bounded) string {
	f, ok := map[string]string{
		KindIncidentOpened:    "Mailbrake opened incident %d on %s.",
		KindIncidentConfirmed: "An admin confirmed incident %d on %s.",
		KindPlaybookFinished:  "Mailbrake finished the playbook of incident %d on %s.",
		KindStepFailed:        "A playbook step of incident %d on %s failed.",
		KindIncidentResolved:  "Incident %d on %s was resolved.",
		KindIncidentDismissed: "Incident %d on %s was dismissed as a false alarm.",
	}[b.Kind]
	if !ok {
		f = "Incident %d on %s."
	}
	return fmt.Sprintf(f, b.Incident.ID, b.Incident.Account)
}
