package config

import (
	"encoding"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestEnumsRefuseBadValues: a value an enumerated setting does not take is
// refused by Load once, at its key path and line, with the names it takes
// (what `config check` and serve print).
func TestEnumsRefuseBadValues(t *testing.T) {
	for _, c := range []struct {
		yaml, path, msg string
		line            int
	}{
		{"log:\n  level: verbose\n", "log.level", `must be one of debug, info, warn, error, got "verbose"`, 2},
		{"log:\n  format: xml\n", "log.format", `must be one of text, json, got "xml"`, 2},
		{"log: {verdicts: none}\n", "log.verdicts", `must be one of non-allow, all, got "none"`, 1},
		{"milter: {on_error: explode}\n", "milter.on_error", `must be one of tempfail, accept, got "explode"`, 1},
		{"identity:\n  relayed_on_policy: policy\n", "identity.relayed_on_policy", `must be one of milter, sender, got "policy"`, 2},
		{"phish:\n  trust_tags: first_pass\n", "phish.trust_tags", `must be one of auto, reinjection, first-pass, got "first_pass"`, 2},
		{"password_leak:\n  sources: [ldap, nis]\n", "password_leak.sources[1]", `must be one of ldap, passwd_file, got "nis"`, 2},
		{"password_leak:\n  sources:\n    - LDAP\n", "password_leak.sources[0]", `must be one of ldap, passwd_file, got "LDAP"`, 3},
		{"directory:\n  passwd_file:\n    path: /etc/dovecot/users\n    scheme: MD5-CRYPT\n", "directory.passwd_file.scheme", `must be one of SHA512-CRYPT, BLF-CRYPT, got "MD5-CRYPT"`, 4},
		// Case matters, as it did: Dovecot's scheme names are upper case.
		{"directory: {passwd_file: {path: /etc/dovecot/users, scheme: sha512-crypt}}\n", "directory.passwd_file.scheme", `must be one of SHA512-CRYPT, BLF-CRYPT, got "sha512-crypt"`, 1},
		// Decoded whether or not the section is in use, like the verdicts.
		{"directory: {passwd_file: {scheme: MD5}}\n", "directory.passwd_file.scheme", `must be one of SHA512-CRYPT, BLF-CRYPT, got "MD5"`, 1},
		{"log: {level: \"\"}\n", "log.level", `must be one of debug, info, warn, error, got ""`, 1},
		{"log: {format: 1}\n", "log.format", `must be one of text, json, got "1"`, 1},
		{"log: {level: ~}\n", "log.level", "expected one word, got \"~\"", 1},
		{"milter: {on_error: [accept]}\n", "milter.on_error", "expected one word, got a list", 1},
		{"password_leak: {sources: ldap}\n", "password_leak.sources", `expected a list, got "ldap"`, 1},
		// A rule list item: the key path names the item.
		{"rules:\n  - {name: a, when: [{fact: size, gt: 1}], verdict: hold}\n  - {name: b, stage: rcpt, when: [{fact: size, gt: 1}], verdict: defer}\n" +
			"  - name: c\n    stage: connect\n    when: [{fact: size, gt: 1}]\n    verdict: defer\n", "rules[2].stage", `must be one of rcpt, eom, got "connect"`, 5},
		{"rules: [{name: a, stage: EOM, when: [{fact: size, gt: 1}], verdict: hold}]\n", "rules[0].stage", `must be one of rcpt, eom, got "EOM"`, 1},
		{"rules: [{name: a, stage: ~, when: [{fact: size, gt: 1}], verdict: hold}]\n", "rules[0].stage", "expected one word, got \"~\"", 1},
		{"rules:\n  - name: a\n    direction: outgoing\n    when: [{fact: size, gt: 1}]\n    verdict: hold\n", "rules[0].direction", `must be one of outbound, inbound, any, got "outgoing"`, 3},
		{"rules: [{name: a, direction: [inbound, any], when: [{fact: size, gt: 1}], verdict: hold}]\n", "rules[0].direction", "expected one word, got a list", 1},
		{"notify:\n  smtp:\n    starttls: tls\n", "notify.smtp.starttls", `must be one of none, opportunistic, required, got "tls"`, 3},
		// Empty is no setting of its own here: the default is written out.
		{"notify: {smtp: {starttls: \"\"}}\n", "notify.smtp.starttls", `must be one of none, opportunistic, required, got ""`, 1},
		// Decoded whether or not the channel is in use.
		{"notify:\n  syslog: {network: udp6}\n", "notify.syslog.network", `must be one of udp, tcp, unix, got "udp6"`, 2},
		{"notify: {syslog: {network: UDP, addr: \"127.0.0.1:514\"}}\n", "notify.syslog.network", `must be one of udp, tcp, unix, got "UDP"`, 1},
	} {
		_, err := Load([]byte(c.yaml))
		var errs Errors
		if !errors.As(err, &errs) {
			t.Errorf("%q: want Errors, got %v", c.yaml, err)
			continue
		}
		if len(errs) != 1 || errs[0] != (FieldError{Path: c.path, Line: c.line, Msg: c.msg}) {
			t.Errorf("%q:\n got %#v\nwant one %s: %s (line %d)", c.yaml, errs, c.path, c.msg, c.line)
		}
	}
}

// TestEnumsRoundTrip: every name of every enumerated setting loads to its
// typed value, is written back as the same name (MarshalText: the example,
// the configuration page) and loads again to the same configuration.
func TestEnumsRoundTrip(t *testing.T) {
	type value interface {
		encoding.TextMarshaler
		String() string
	}
	for _, c := range []struct {
		key   string // YAML path of the setting, dotted
		names []string
		get   func(*Config) value
		want  []value
	}{
		{"log.level", []string{"debug", "info", "warn", "error"}, func(c *Config) value { return c.Log.Level },
			[]value{LogDebug, LogInfo, LogWarn, LogError}},
		{"log.format", []string{"text", "json"}, func(c *Config) value { return c.Log.Format }, []value{LogText, LogJSON}},
		{"log.verdicts", []string{"non-allow", "all"}, func(c *Config) value { return c.Log.Verdicts }, []value{LogNonAllow, LogAll}},
		{"milter.on_error", []string{"tempfail", "accept"}, func(c *Config) value { return c.Milter.OnError }, []value{MilterTempfail, MilterAccept}},
		{"identity.relayed_on_policy", []string{"milter", "sender"}, func(c *Config) value { return c.Identity.RelayedOnPolicy },
			[]value{RelayedMilter, RelayedSender}},
		{"phish.trust_tags", []string{"auto", "reinjection", "first-pass"}, func(c *Config) value { return c.Phish.TrustTags },
			[]value{TrustAuto, TrustReinjection, TrustFirstPass}},
		{"password_leak.sources", []string{"[ldap]", "[passwd_file]"}, func(c *Config) value { return c.PasswordLeak.Sources[0] },
			[]value{SourceLDAP, SourcePasswdFile}},
		{"directory.passwd_file.scheme", []string{"SHA512-CRYPT", "BLF-CRYPT"}, func(c *Config) value { return c.Directory.PasswdFile.Scheme },
			[]value{SchemeSHA512Crypt, SchemeBLFCrypt}},
		{"notify.smtp.starttls", []string{"none", "opportunistic", "required"}, func(c *Config) value { return c.Notify.SMTP.StartTLS },
			[]value{StartTLSNone, StartTLSOpportunistic, StartTLSRequired}},
		// Empty: no syslog (the default), written as "".
		{"notify.syslog.network", []string{`""`, "udp", "tcp", "unix"}, func(c *Config) value { return c.Notify.Syslog.Network },
			[]value{SyslogOff, SyslogUDP, SyslogTCP, SyslogUnix}},
		// Empty: not set (eom, outbound); a rule is written without it.
		{"rules[0].stage", []string{`""`, "rcpt", "eom"}, func(c *Config) value { return c.Rules[0].Stage },
			[]value{StageUnset, StageRcpt, StageEOM}},
		{"rules[0].direction", []string{`""`, "outbound", "inbound", "any"}, func(c *Config) value { return c.Rules[0].Direction },
			[]value{DirectionUnset, DirectionOutbound, DirectionInbound, DirectionAny}},
	} {
		for i, name := range c.names {
			// "a.b.c: v" as nested flow mappings: {a: {b: {c: v}}}; a
			// rule's setting in a rule of the rules list.
			keys := strings.Split(c.key, ".")
			in := name
			if keys[0] == "rules[0]" {
				in = "{rules: [{name: r, " + keys[1] + ": " + in + ", when: [{fact: size, gt: 1}], verdict: defer}]}"
				keys = nil
			}
			for j := len(keys) - 1; j >= 0; j-- {
				in = "{" + keys[j] + ": " + in + "}"
			}
			cfg, err := Load([]byte(in))
			if err != nil {
				t.Errorf("%s: %v", in, err)
				continue
			}
			got := c.get(cfg)
			if got != c.want[i] {
				t.Errorf("%s: loaded %v, want %v", in, got, c.want[i])
			}
			text, err := got.MarshalText()
			if plain := strings.Trim(name, `[]"`); err != nil || string(text) != plain || got.String() != plain {
				t.Errorf("%s: MarshalText %q, %v; String %q; want %q", in, text, err, got, plain)
			}
			// The whole configuration written as the configuration page
			// writes it, and loaded again.
			out, err := yaml.Marshal(cfg)
			if err != nil {
				t.Errorf("%s: yaml.Marshal: %v", in, err)
				continue
			}
			again, err := Load(out)
			if err != nil {
				t.Errorf("%s: the written configuration does not load: %v", in, err)
				continue
			}
			if g := c.get(again); g != got {
				t.Errorf("%s: written and loaded again: %v, want %v", in, g, got)
			}
			if !reflect.DeepEqual(again.Log, cfg.Log) || !reflect.DeepEqual(again.Milter, cfg.Milter) || !reflect.DeepEqual(again.Identity, cfg.Identity) ||
				!reflect.DeepEqual(again.Phish, cfg.Phish) || !reflect.DeepEqual(again.PasswordLeak, cfg.PasswordLeak) || !reflect.DeepEqual(again.Directory, cfg.Directory) ||
				!reflect.DeepEqual(again.Notify, cfg.Notify) || !reflect.DeepEqual(again.Rules, cfg.Rules) {
				t.Errorf("%s: written and loaded again, the sections differ:\n%s", in, out)
			}
		}
	}
}

// TestRuleStageAndDirectionOmitted: a rule without stage or direction is
// written without them, as it was written (the example, the configuration
// page), and has the defaults, eom and outbound; one that names them is
// written with them.
func TestRuleStageAndDirectionOmitted(t *testing.T) {
	cfg, err := Load([]byte("rules:\n  - {name: a, when: [{fact: size, gt: 1}], verdict: hold}\n" +
		"  - {name: b, stage: \"\", direction: \"\", when: [{fact: size, gt: 1}], verdict: hold}\n" +
		"  - {name: c, stage: eom, direction: outbound, when: [{fact: size, gt: 1}], verdict: hold}\n" +
		"  - {name: d, stage: rcpt, direction: any, when: [{fact: size, gt: 1}], verdict: defer}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		stage, dir string
		written    []string
	}{
		{"eom", "outbound", nil},
		{"eom", "outbound", nil},
		{"eom", "outbound", []string{"stage: eom", "direction: outbound"}},
		{"rcpt", "any", []string{"stage: rcpt", "direction: any"}},
	} {
		r := cfg.Rules[i]
		if r.StageOrDefault().String() != want.stage || r.DirectionOrDefault().String() != want.dir {
			t.Errorf("rules[%d]: stage %v, direction %v; want %s, %s", i, r.StageOrDefault(), r.DirectionOrDefault(), want.stage, want.dir)
		}
		out, err := yaml.Marshal(r)
		if err != nil {
			t.Fatalf("rules[%d]: %v", i, err)
		}
		var keys []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "stage:") || strings.HasPrefix(line, "direction:") {
				keys = append(keys, line)
			}
		}
		if !reflect.DeepEqual(keys, want.written) {
			t.Errorf("rules[%d] written with %q, want %q:\n%s", i, keys, want.written, out)
		}
	}
}

// TestRuleVerdictAtRcpt: hold and tag are decided at end of message, so
// a rule at stage rcpt cannot ask for them; without a stage it is at eom.
func TestRuleVerdictAtRcpt(t *testing.T) {
	for _, c := range []struct {
		stage, verdict, err string
	}{
		{"rcpt", "hold", "rules[0].verdict: hold is decided at end of message; use stage eom, or defer/reject at rcpt"},
		{"rcpt", "tag", "rules[0].verdict: tag is decided at end of message; use stage eom, or defer/reject at rcpt"},
		{"rcpt", "defer", ""},
		{"rcpt", "reject", ""},
		{"eom", "hold", ""},
		{`""`, "tag", ""},
	} {
		in := "rules: [{name: a, stage: " + c.stage + ", when: [{fact: size, gt: 1}], verdict: " + c.verdict + "}]\n"
		_, err := Load([]byte(in))
		if got := fmt.Sprint(err); c.err == "" && err != nil || c.err != "" && got != c.err {
			t.Errorf("%s: got %v, want %q", in, err, c.err)
		}
	}
}

// TestEnumTextOfUnknownValue: a value no name has (set in Go, never
// loaded) is not written as if it were a setting.
func TestEnumTextOfUnknownValue(t *testing.T) {
	if b, err := MilterOnError(7).MarshalText(); err == nil {
		t.Errorf("MarshalText of an unknown value: %q", b)
	}
	if s := LogFormat(-1).String(); s != "unknown(-1)" {
		t.Errorf("String of an unknown value: %q", s)
	}
	var v LogVerdicts = LogAll
	if err := v.UnmarshalText([]byte("some")); err == nil || v != LogAll {
		t.Errorf("a refused name changed the value: %v, %v", v, err)
	}
}

func TestLogLevelSlog(t *testing.T) {
	for v, want := range map[LogLevel]slog.Level{LogDebug: slog.LevelDebug, LogInfo: slog.LevelInfo, LogWarn: slog.LevelWarn, LogError: slog.LevelError} {
		// The name is slog's too, so the two spellings agree.
		var fromSlog slog.Level
		if err := fromSlog.UnmarshalText([]byte(v.String())); err != nil || v.Slog() != want || fromSlog != want {
			t.Errorf("%v: Slog %v, slog parses it as %v (%v); want %v", v, v.Slog(), fromSlog, err, want)
		}
	}
}
