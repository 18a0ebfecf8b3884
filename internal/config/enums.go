package config

import (
	"fmt"
	"log/slog"
	"strings"
)

// The enumerated settings. Each is decoded, and checked, once by Load
// (decodeNode takes any encoding.TextUnmarshaler), the way verdict.Action
// is; the daemon compares the typed constants. Their names are the YAML
// spelling, which MarshalText writes back (the example, the configuration
// page).

// enumName is v's name in names, or a placeholder for a value no name has.
func enumName[T ~int](names []string, v T) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("unknown(%d)", int(v))
}

// enumText is MarshalText for an enumeration: an unknown value is an error.
func enumText[T ~int](names []string, v T) ([]byte, error) {
	if v < 0 || int(v) >= len(names) {
		return nil, fmt.Errorf("unknown value %d (one of %s)", int(v), strings.Join(names, ", "))
	}
	return []byte(names[v]), nil
}

// enumParse is UnmarshalText for an enumeration. A setting whose empty
// value means its default (rules[].stage) has "" as the name of its zero
// value: "" is then taken, and not listed among the names it takes.
func enumParse[T ~int](names []string, v *T, b []byte) error {
	for i, n := range names {
		if n == string(b) {
			*v = T(i)
			return nil
		}
	}
	listed := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" {
			listed = append(listed, n)
		}
	}
	return fmt.Errorf("must be one of %s, got %q", strings.Join(listed, ", "), b)
}

// LogLevel is log.level.
type LogLevel int

const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
)

var logLevels = []string{"debug", "info", "warn", "error"}

func (v LogLevel) String() string                { return enumName(logLevels, v) }
func (v LogLevel) MarshalText() ([]byte, error)  { return enumText(logLevels, v) }
func (v *LogLevel) UnmarshalText(b []byte) error { return enumParse(logLevels, v, b) }

// Slog is the level as log/slog has it.
func (v LogLevel) Slog() slog.Level {
	switch v {
	case LogDebug:
		return slog.LevelDebug
	case LogWarn:
		return slog.LevelWarn
	case LogError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// LogFormat is log.format.
type LogFormat int

const (
	LogText LogFormat = iota
	LogJSON
)

var logFormats = []string{"text", "json"}

func (v LogFormat) String() string                { return enumName(logFormats, v) }
func (v LogFormat) MarshalText() ([]byte, error)  { return enumText(logFormats, v) }
func (v *LogFormat) UnmarshalText(b []byte) error { return enumParse(logFormats, v, b) }

// LogVerdicts is log.verdicts: which decisions get a log line.
type LogVerdicts int

const (
	LogNonAllow LogVerdicts = iota
	LogAll
)

var logVerdicts = []string{"non-allow", "all"}

func (v LogVerdicts) String() string                { return enumName(logVerdicts, v) }
func (v LogVerdicts) MarshalText() ([]byte, error)  { return enumText(logVerdicts, v) }
func (v *LogVerdicts) UnmarshalText(b []byte) error { return enumParse(logVerdicts, v, b) }

// MilterOnError is milter.on_error: the answer when a decision fails.
type MilterOnError int

const (
	MilterTempfail MilterOnError = iota
	MilterAccept
)

var milterOnErrors = []string{"tempfail", "accept"}

func (v MilterOnError) String() string                { return enumName(milterOnErrors, v) }
func (v MilterOnError) MarshalText() ([]byte, error)  { return enumText(milterOnErrors, v) }
func (v *MilterOnError) UnmarshalText(b []byte) error { return enumParse(milterOnErrors, v, b) }

// RelayedOnPolicy is identity.relayed_on_policy: who decides mail from a
// trusted relay without SASL on the policy path.
type RelayedOnPolicy int

const (
	RelayedMilter RelayedOnPolicy = iota
	RelayedSender
)

var relayedOnPolicies = []string{"milter", "sender"}

func (v RelayedOnPolicy) String() string                { return enumName(relayedOnPolicies, v) }
func (v RelayedOnPolicy) MarshalText() ([]byte, error)  { return enumText(relayedOnPolicies, v) }
func (v *RelayedOnPolicy) UnmarshalText(b []byte) error { return enumParse(relayedOnPolicies, v, b) }

// TrustTags is phish.trust_tags: which spam tags are believed. The names
// are phishmem's (phishmem.TrustAuto, …), which String gives.
type TrustTags int

const (
	TrustAuto TrustTags = iota
	TrustReinjection
	TrustFirstPass
)

var trustTags = []string{"auto", "reinjection", "first-pass"}

func (v TrustTags) String() string                { return enumName(trustTags, v) }
func (v TrustTags) MarshalText() ([]byte, error)  { return enumText(trustTags, v) }
func (v *TrustTags) UnmarshalText(b []byte) error { return enumParse(trustTags, v, b) }

// HashSource is one of password_leak.sources: where password hashes come
// from.
type HashSource int

const (
	SourceLDAP HashSource = iota
	SourcePasswdFile
)

var hashSources = []string{"ldap", "passwd_file"}

func (v HashSource) String() string                { return enumName(hashSources, v) }
func (v HashSource) MarshalText() ([]byte, error)  { return enumText(hashSources, v) }
func (v *HashSource) UnmarshalText(b []byte) error { return enumParse(hashSources, v, b) }

// PasswdScheme is directory.passwd_file.scheme: how passwords mailbrake
// writes are hashed. The names are Dovecot's, which String gives.
type PasswdScheme int

const (
	SchemeSHA512Crypt PasswdScheme = iota
	SchemeBLFCrypt
)

var passwdSchemes = []string{"SHA512-CRYPT", "BLF-CRYPT"}

func (v PasswdScheme) String() string                { return enumName(passwdSchemes, v) }
func (v PasswdScheme) MarshalText() ([]byte, error)  { return enumText(passwdSchemes, v) }
func (v *PasswdScheme) UnmarshalText(b []byte) error { return enumParse(passwdSchemes, v, b) }

// RuleStage is rules[].stage: where in the transaction a rule is tested.
// Not set (""), it is eom (StageOrDefault), and a rule without it is
// written without it (omitempty).
type RuleStage int

const (
	StageUnset RuleStage = iota
	StageRcpt
	StageEOM
)

var ruleStages = []string{"", "rcpt", "eom"}

func (v RuleStage) String() string                { return enumName(ruleStages, v) }
func (v RuleStage) MarshalText() ([]byte, error)  { return enumText(ruleStages, v) }
func (v *RuleStage) UnmarshalText(b []byte) error { return enumParse(ruleStages, v, b) }

// RuleDirection is rules[].direction: which mail a rule is tested on. Not
// set (""), it is outbound (DirectionOrDefault), and a rule without it is
// written without it (omitempty).
type RuleDirection int

const (
	DirectionUnset RuleDirection = iota
	DirectionOutbound
	DirectionInbound
	DirectionAny
)

var ruleDirections = []string{"", "outbound", "inbound", "any"}

func (v RuleDirection) String() string                { return enumName(ruleDirections, v) }
func (v RuleDirection) MarshalText() ([]byte, error)  { return enumText(ruleDirections, v) }
func (v *RuleDirection) UnmarshalText(b []byte) error { return enumParse(ruleDirections, v, b) }

// StartTLS is notify.smtp.starttls. String gives the name package notify
// takes (notify.SMTPConfig.StartTLS).
type StartTLS int

const (
	StartTLSNone StartTLS = iota
	StartTLSOpportunistic
	StartTLSRequired
)

var startTLSModes = []string{"none", "opportunistic", "required"}

func (v StartTLS) String() string                { return enumName(startTLSModes, v) }
func (v StartTLS) MarshalText() ([]byte, error)  { return enumText(startTLSModes, v) }
func (v *StartTLS) UnmarshalText(b []byte) error { return enumParse(startTLSModes, v, b) }

// SyslogNetwork is notify.syslog.network. Empty ("", the default) is no
// syslog. String gives the name package notify takes
// (notify.SyslogConfig.Network).
type SyslogNetwork int

const (
	SyslogOff SyslogNetwork = iota
	SyslogUDP
	SyslogTCP
	SyslogUnix
)

var syslogNetworks = []string{"", "udp", "tcp", "unix"}

func (v SyslogNetwork) String() string                { return enumName(syslogNetworks, v) }
func (v SyslogNetwork) MarshalText() ([]byte, error)  { return enumText(syslogNetworks, v) }
func (v *SyslogNetwork) UnmarshalText(b []byte) error { return enumParse(syslogNetworks, v, b) }
