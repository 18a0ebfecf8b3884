package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestExampleLoadsToDefaults(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteExample(&buf); err != nil {
		t.Fatal(err)
	}
	c, err := Load(buf.Bytes())
	if err != nil {
		t.Fatalf("example does not load: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("example does not load to the defaults:\n got %+v\nwant %+v", c, Default())
	}
	for _, want := range []string{"# Postfix SMTP access policy", "listen: 127.0.0.1:10041", "bulk-from-scripted-client", "zimbra-html"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("example lacks %q", want)
		}
	}
}

func TestEmptyIsDefault(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "~\n"} {
		c, err := Load([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Fatalf("%q: not the defaults", in)
		}
	}
	c, err := LoadFile("")
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("LoadFile(\"\") = %v, %v", c, err)
	}
}

func TestOverrides(t *testing.T) {
	c, err := Load([]byte(`
policy:
  listen: unix:/run/mailbrake/policy.sock
milter:
  enabled: false
postfix:
  sync_interval: 5s
rules:
  - name: big
    when:
      - {fact: recipient_count, gt: 100}
    verdict: hold
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.Listen != "unix:/run/mailbrake/policy.sock" || c.Milter.Enabled || c.Postfix.SyncInterval.D().Seconds() != 5 {
		t.Fatalf("overrides not applied: %+v", c)
	}
	if len(c.Rules) != 1 || *c.Rules[0].When[0].Gt != 100 || c.Rules[0].StageOrDefault() != StageEOM || c.Rules[0].ReasonOrName() != "big" {
		t.Fatalf("rules: %+v", c.Rules)
	}
	// untouched sections keep their defaults
	if c.HTTP.Listen != "127.0.0.1:10043" {
		t.Fatalf("http default lost: %q", c.HTTP.Listen)
	}
}

func TestEveryErrorWithKeyPath(t *testing.T) {
	_, err := Load([]byte(`
data_dir: ""
policy:
  listen: nowhere
  lisen: x
milter:
  on_error: explode
postfix:
  sync_interval: soon
identity:
  trusted_networks: [10.0.0.0/8, not-a-net]
rules:
  - name: a
    verdict: hold
    when:
      - {fact: recipient_count, gt: many}
  - name: a
    stage: connect
    verdict: quarantine
    when:
      - {fact: client_family, in: [x], eq: y}
      - {fact: client, matches: "("}
`))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	got := err.Error()
	for _, want := range []string{
		"policy.lisen: unknown key (did you mean \"listen\"?)",
		"postfix.sync_interval: invalid duration",
		"rules[0].when[0].gt: expected a number",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if !strings.Contains(got, "data_dir: must not be empty") {
		t.Errorf("validation errors missing beside decoding errors:\n%s", got)
	}
	_, err = Load([]byte(`
data_dir: ""
policy:
  listen: nowhere
milter:
  on_error: explode
identity:
  trusted_networks: [10.0.0.0/8, not-a-net]
rules:
  - name: a
    verdict: hold
    when: []
  - name: a
    stage: connect
    verdict: quarantine
    when:
      - {fact: client_family, in: [x], eq: y}
      - {fact: client, matches: "("}
`))
	got = err.Error()
	for _, want := range []string{
		"data_dir: must not be empty",
		"policy.listen: expected host:port",
		"milter.on_error: must be one of tempfail, accept",
		"identity.trusted_networks[1]: not a CIDR",
		"rules[0].when: a rule needs at least one condition",
		"rules[1].name: duplicate rule name \"a\"",
		`rules[1].stage: must be one of rcpt, eom, got "connect"`,
		"rules[1].verdict: must be one of",
		"rules[1].when[0]: needs exactly one of",
		"rules[1].when[1].matches: invalid regular expression",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

// TestPlaybookStepOrder: a playbook whose steps undo each other on Zimbra
// is refused by `config check` (and so by serve).
func TestPlaybookStepOrder(t *testing.T) {
	_, err := Load([]byte(`
playbooks:
  - name: wrong-order
    triggers: [marked-spam]
    severity: high
    steps: [force-password-change, scramble-password, end-sessions, lock-login]
`))
	if err == nil {
		t.Fatal("accepted force-password-change before scramble-password and end-sessions before lock-login")
	}
	for _, want := range []string{
		"playbooks[0].steps[0]: force-password-change must come after scramble-password",
		"playbooks[0].steps[2]: end-sessions needs lock-login before it",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := Load([]byte(`
playbooks:
  - name: right-order
    triggers: [marked-spam]
    severity: high
    steps: [lock-login, scramble-password, end-sessions, force-password-change]
`)); err != nil {
		t.Errorf("refused the right order: %v", err)
	}
}

func TestBadDocuments(t *testing.T) {
	for name, in := range map[string]string{
		"syntax":     "policy: [",
		"not a map":  "- a\n- b\n",
		"two docs":   "log: {level: info}\n---\nlog: {level: debug}\n",
		"alias":      "a: &x {level: info}\nlog: *x\n",
		"type":       "policy: 5\n",
		"dup key":    "log: {level: info}\nlog: {level: debug}\n",
		"bad bool":   "policy: {enabled: maybe}\n",
		"null value": "policy: {listen: ~}\n",
	} {
		if _, err := Load([]byte(in)); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#"), maxConfigBytes+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized file: %v", err)
	}
}

// FuzzLoad: any input either loads to a config that validates and survives
// a second load of its own example, or is refused with Errors; never a panic.
func FuzzLoad(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteExample(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("policy: {listen: 127.0.0.1:1}\n"))
	f.Add([]byte("rules:\n  - {name: x, verdict: hold, when: [{fact: size, gt: 1}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatalf("loaded config does not validate: %v", errs)
		}
	})
}

// TestDocsConfigBlocks loads every YAML block of the docs that shows a
// configuration, so a guide never tells an admin to write something
// `config check` refuses.
func TestDocsConfigBlocks(t *testing.T) {
	for _, doc := range []string{"../../docs/zimbra.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(data), "```yaml\n")
		if len(blocks) < 2 {
			t.Fatalf("%s: no yaml block", doc)
		}
		for i, b := range blocks[1:] {
			y, _, _ := strings.Cut(b, "```")
			if _, err := Load([]byte(y)); err != nil {
				t.Errorf("%s yaml block %d: %v\n%s", doc, i+1, err, y)
			}
		}
	}
}

// TestPlaybooksMergeWithDefaults (issue 14: defining one playbook dropped
// the defaults silently): a listed playbook named as a default replaces
// it, disabled turns one off, a new one is added and takes its triggers
// from the defaults; errors keep the file's key paths.
func TestPlaybooksMergeWithDefaults(t *testing.T) {
	c, err := Load([]byte(`playbooks:
  - name: contain-mass-sending
    triggers: [bulk-from-scripted-client, marked-spam]
    severity: critical
    steps: [restrict-sending, notify]
  - {name: phish-reply, disabled: true}
  - name: forged-identity
    triggers: [identity-header-forged, shared-origin]
    severity: high
    steps: [notify]
`))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]PlaybookConfig{}
	var names []string
	for _, p := range c.Playbooks {
		byName[p.Name] = p
		names = append(names, p.Name)
	}
	if want := []string{"contain-password-leak", "contain-mass-sending", "review-volume", "review-campaign", "forged-identity"}; !slices.Equal(names, want) {
		t.Fatalf("merged playbooks %v, want %v", names, want)
	}
	if p := byName["contain-mass-sending"]; p.Severity != "critical" || len(p.Steps) != 2 {
		t.Errorf("replaced default: %+v", p)
	}
	if slices.Contains(byName["review-campaign"].Triggers, "shared-origin") || !slices.Contains(byName["review-campaign"].Triggers, "campaign-run") {
		t.Errorf("review-campaign triggers %v: shared-origin should have moved to forged-identity", byName["review-campaign"].Triggers)
	}
	notes := strings.Join(Notes(c), "\n")
	if !strings.Contains(notes, "turned off: phish-reply") || !strings.Contains(notes, `"forged-identity" now handles shared-origin`) {
		t.Errorf("notes:\n%s", notes)
	}
	if PlaybookPath(c, 1) != "playbooks[0]" || PlaybookPath(c, 4) != "playbooks[2]" || !strings.Contains(PlaybookPath(c, 0), "default") {
		t.Errorf("paths: %q %q %q", PlaybookPath(c, 0), PlaybookPath(c, 1), PlaybookPath(c, 4))
	}
	if errs := c.Validate(); len(errs) > 0 {
		t.Errorf("the merged configuration does not validate: %v", errs)
	}

	// An explicit empty list still means no playbook at all.
	if c, err := Load([]byte("playbooks: []\n")); err != nil || len(c.Playbooks) != 0 || !strings.Contains(strings.Join(Notes(c), ""), "no playbook runs") {
		t.Errorf("playbooks: []: %v, %d playbooks, notes %q", err, len(c.Playbooks), Notes(c))
	}

	_, err = Load([]byte("playbooks:\n  - {name: not-a-default, disabled: true}\n  - {name: review-volume, disabled: true, steps: [notify]}\n"))
	msg := fmt.Sprint(err)
	if !strings.Contains(msg, "playbooks[0].disabled") || !strings.Contains(msg, "not a default playbook") || !strings.Contains(msg, "playbooks[1].disabled: a disabled playbook takes only its name") {
		t.Errorf("bad disabled entries: %v", err)
	}
}
