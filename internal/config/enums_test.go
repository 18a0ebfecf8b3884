package config

import (
	"encoding"
	"errors"
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
	} {
		for i, name := range c.names {
			// "a.b.c: v" as nested flow mappings: {a: {b: {c: v}}}.
			keys := strings.Split(c.key, ".")
			in := name
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
			if plain := strings.Trim(name, "[]"); err != nil || string(text) != plain || got.String() != plain {
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
				!reflect.DeepEqual(again.Phish, cfg.Phish) || !reflect.DeepEqual(again.PasswordLeak, cfg.PasswordLeak) || !reflect.DeepEqual(again.Directory, cfg.Directory) {
				t.Errorf("%s: written and loaded again, the sections differ:\n%s", in, out)
			}
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
