package daemon

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/engine"
)

// Reloaded says what a reload did.
type Reloaded struct {
	// Applied are the settings now in force (top-level keys).
	Applied []string
	// Restart are the top-level keys that changed but take effect only
	// at the next start (listeners, the store, detectors' parameters,
	// connectors, notification).
	Restart []string
}

// live are the configuration keys a reload applies while mail flows; the
// rest need a restart.
var live = map[string]bool{"rules": true, "engine.on_error": true, "engine.shadow": true, "accounts": true, "playbooks": true, "log.level": true}

// current is the configuration in force: what started, with what reloads
// changed. Whatever reads a key a reload applies reads it here.
func (d *Daemon) current() *config.Config {
	if c := d.inForce.Load(); c != nil {
		return c
	}
	return d.cfg
}

// configView renders the configuration in force for the API and the web
// UI, secrets redacted, headed by the keys a reload changed that wait for
// the next start (the view shows what runs, not what the file says).
func (d *Daemon) configView() string {
	text := redactedConfig(d.current())
	if p := d.restartKeys.Load(); p != nil && len(*p) > 0 {
		text = "# The configuration in force. Changed in the file and waiting for the next start: " + strings.Join(*p, ", ") + "\n" + text
	}
	return text
}

// Reload checks next exactly as `config check` and a start would (Build,
// without listening or writing) and, when it passes, applies what can
// change while mail flows: the rules, engine.on_error, engine.shadow, the
// account score thresholds and the playbooks (an incident already open
// keeps the playbook it was opened with). Learned state is kept. A
// configuration with any error changes nothing and the error says why.
// log.level is the caller's (it owns the logger).
func (d *Daemon) Reload(next *config.Config) (Reloaded, error) {
	var r Reloaded
	nd, err := Build(next, slog.New(slog.DiscardHandler), d.version)
	if err != nil {
		return r, err
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	prev := d.applied
	if prev == nil {
		prev = d.cfg
	}
	for _, key := range changedKeys(prev, next) {
		if live[key] {
			r.Applied = append(r.Applied, key)
		} else {
			r.Restart = append(r.Restart, key)
		}
	}
	if d.engine != nil {
		if err := d.engine.Retune(engine.Tuning{Rules: next.Rules, OnError: next.Engine.OnError, Shadow: next.Engine.Shadow,
			WatchScore: int64(next.Accounts.WatchScore), RestrictScore: int64(next.Accounts.RestrictScore), ScoreWindow: next.Accounts.ScoreWindow.D()}); err != nil {
			return Reloaded{}, fmt.Errorf("rules: %w", err)
		}
	}
	if d.ops != nil && d.ops.Response != nil {
		d.ops.Response.SetPlaybooks(nd.response.playbooks)
	}
	// What is in force from now on: the applied keys of next, the rest
	// of what started.
	merged := *prev
	merged.Rules, merged.Engine.OnError, merged.Engine.Shadow = next.Rules, next.Engine.OnError, next.Engine.Shadow
	merged.Accounts, merged.Playbooks, merged.Log.Level = next.Accounts, next.Playbooks, next.Log.Level
	d.applied = &merged
	d.inForce.Store(&merged)
	restart := r.Restart
	d.restartKeys.Store(&restart)
	return r, nil
}

// changedKeys lists the top-level configuration keys (and engine.*, log.*
// one level down) whose values differ, by their YAML names.
func changedKeys(a, b *config.Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fa, fb := va.Field(i), vb.Field(i)
		if name == "engine" || name == "log" {
			for j := range fa.NumField() {
				sub := fa.Type().Field(j)
				if !reflect.DeepEqual(fa.Field(j).Interface(), fb.Field(j).Interface()) {
					out = append(out, name+"."+strings.Split(sub.Tag.Get("yaml"), ",")[0])
				}
			}
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			out = append(out, name)
		}
	}
	return out
}
