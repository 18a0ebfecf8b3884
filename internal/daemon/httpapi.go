package daemon

import (
	"context"
	"net"
	"net/url"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/ops"
)

// redactedConfig renders the effective configuration as YAML with every
// value whose key names a secret replaced. Secrets are read from files,
// so only file paths are in the configuration; the redaction guards
// against a secret put inline by mistake.
func redactedConfig(c *config.Config) string {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return "# configuration could not be rendered: " + err.Error()
	}
	redactNode(&n)
	b, err := yaml.Marshal(&n)
	if err != nil {
		return "# configuration could not be rendered: " + err.Error()
	}
	return string(b)
}

func redactNode(n *yaml.Node) { redactIn(n, "") }

// redactIn redacts n, the value of the mapping key parent.
func redactIn(n *yaml.Node, parent string) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			if !strings.HasSuffix(k, "_file") && (strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.HasSuffix(k, "_key") || k == "key" || k == "token") && v.Kind == yaml.ScalarNode && v.Value != "" {
				v.Value = "(redacted)"
				v.Tag = "!!str"
			}
			if v.Kind == yaml.ScalarNode {
				if parent == "webhook" && k == "url" {
					v.Value = redactHookURL(v.Value)
				} else {
					v.Value = redactURL(v.Value)
				}
			}
			redactIn(v, k)
		}
		return
	}
	for _, c := range n.Content {
		redactIn(c, parent)
	}
}

// redactHookURL shows a notification hook's scheme and host only, as the
// notifier's own logs do: hook URLs carry their token in the path
// (Slack's /services/T…/B…/secret, Discord's /api/webhooks/id/token,
// Teams, Mattermost), which a viewer of the config must not see.
func redactHookURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		if s == "" {
			return s
		}
		return "(redacted)"
	}
	out := u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

// dsnSecret is a password-like setting of a key=value string, its value
// bare or quoted.
var dsnSecret = regexp.MustCompile(`(?i)((?:^|\s)[a-z_]*pass[a-z_]*)\s*=\s*(?:'(?:\\.|[^'\\])*'|\S+)`)

// redactURL hides the credentials a URL may carry (a webhook's
// https://user:pass@host/…?token=…): its userinfo and the values of
// secret-looking query parameters. Anything else is returned unchanged.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		// A key=value connection string (PostgreSQL's "host=db
		// sslpassword=…"): the values of password-like keys.
		return dsnSecret.ReplaceAllString(s, "${1}=(redacted)")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	changed := false
	if u.User != nil {
		u.User = url.User("(redacted)")
		changed = true
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		for _, w := range []string{"token", "key", "secret", "pass", "sig", "auth", "code"} {
			if strings.Contains(lk, w) {
				q.Set(k, "(redacted)")
				changed = true
				break
			}
		}
	}
	if !changed {
		return s
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// loopbackOnly reports whether addr listens on loopback only.
func loopbackOnly(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// volumeCounter counts outbound messages for the dashboard. It is an
// engine Learner, so a message decided on both paths is counted once.
type volumeCounter struct{ v *ops.Volume }

func (volumeCounter) Learns() bool { return true }

func (volumeCounter) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

func (c volumeCounter) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	c.v.Add(sub.Time, sub.RecipientCount)
	return nil
}
