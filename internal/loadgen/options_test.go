package loadgen

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestPolicyFlags(t *testing.T) {
	var o PolicyOptions
	fs := pflag.NewFlagSet("policy", pflag.ContinueOnError)
	o.AddFlags(fs)
	if o != DefaultPolicyOptions() {
		t.Fatalf("a zero PolicyOptions got %+v, not the defaults", o)
	}
	err := fs.Parse([]string{"--addr", "unix:/run/p.sock", "--conns=3", "--state", "both", "-n", "500", "--rate", "250.5",
		"--duration", "30s", "--warmup", "2s", "--users", "10", "--skew", "0", "--rcpts", "4", "--timeout", "1s",
		"--seed", "7", "--allow-remote", "--label", "row"})
	if err != nil {
		t.Fatal(err)
	}
	want := PolicyOptions{Addr: "unix:/run/p.sock", Label: "row", Conns: 3, Duration: 30 * time.Second, Warmup: 2 * time.Second,
		N: 500, Users: 10, Skew: 0, State: "both", Rcpts: 4, Rate: 250.5, Timeout: time.Second, Seed: 7, AllowRemote: true}
	if o != want {
		t.Fatalf("parsed\n%+v\nwant\n%+v", o, want)
	}
}

func TestMilterFlags(t *testing.T) {
	o := MilterOptions{Addr: "127.0.0.1:2000"} // not zero: its values are the defaults
	fs := pflag.NewFlagSet("milter", pflag.ContinueOnError)
	o.AddFlags(fs)
	if f := fs.Lookup("addr"); f.DefValue != "127.0.0.1:2000" {
		t.Fatalf("--addr default %q", f.DefValue)
	}
	err := fs.Parse([]string{"--messages", "9", "--body-min", "100", "--body-max", "200", "--msgs-per-conn", "5", "--x-mailer", "zclient", "--rcpts", "60"})
	if err != nil {
		t.Fatal(err)
	}
	if o.N != 9 || o.BodyMin != 100 || o.BodyMax != 200 || o.MsgsPerConn != 5 || o.XMailer != "zclient" || o.Rcpts != 60 {
		t.Fatalf("parsed %+v", o)
	}
	var d MilterOptions
	d.AddFlags(pflag.NewFlagSet("milter", pflag.ContinueOnError))
	if d != DefaultMilterOptions() {
		t.Fatalf("a zero MilterOptions got %+v, not the defaults", d)
	}
}

func TestOutputFlags(t *testing.T) {
	var o Output
	fs := pflag.NewFlagSet("out", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--format", "md", "--md-header", "--json-out", "r.json"}); err != nil {
		t.Fatal(err)
	}
	if o != (Output{Format: "md", MarkdownHeader: true, JSONFile: "r.json"}) {
		t.Fatalf("parsed %+v", o)
	}
	if err := (&Output{Format: "yaml"}).Check(); err == nil {
		t.Fatal("format yaml accepted")
	}
}

func TestOptionsNormalize(t *testing.T) {
	c, state, err := PolicyOptions{State: "eom"}.normalize()
	if err != nil || state != "END-OF-MESSAGE" || c.addr != DefaultPolicyAddr || c.label != DefaultPolicyAddr ||
		c.conns != 8 || c.duration != 10*time.Second || c.users != 1000 || c.rcpts != 1 || c.timeout != 5*time.Second || c.skew != 0 {
		t.Fatalf("zero options: %+v %q %v", c, state, err)
	}
	_, m, err := MilterOptions{XMailer: "ZCLIENT"}.normalize()
	if err != nil || m.XMailer != XMailerZclient || m.BodyMin != 5<<10 || m.BodyMax != 20<<10 || m.MsgsPerConn != 1 {
		t.Fatalf("zero milter options: %+v %v", m, err)
	}
	if _, m, _ := (MilterOptions{XMailer: "none"}).normalize(); m.XMailer != "" {
		t.Fatalf("x-mailer none: %q", m.XMailer)
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"duration cap", func() error {
			_, _, err := (PolicyOptions{Duration: 10 * time.Minute, Warmup: time.Second}).normalize()
			return err
		}(), "duration:"},
		{"negative duration", func() error { _, _, err := (PolicyOptions{Duration: -time.Second}).normalize(); return err }(), "negative"},
		{"conns", func() error { _, _, err := (PolicyOptions{Conns: MaxConns + 1}).normalize(); return err }(), "conns:"},
		{"state", func() error { _, _, err := (PolicyOptions{State: "DATA"}).normalize(); return err }(), "state:"},
		{"rate", func() error { _, _, err := (PolicyOptions{Rate: -1}).normalize(); return err }(), "rate:"},
		{"rcpts", func() error { _, _, err := (PolicyOptions{Rcpts: 1001}).normalize(); return err }(), "rcpts:"},
		{"timeout", func() error { _, _, err := (PolicyOptions{Timeout: 2 * time.Minute}).normalize(); return err }(), "timeout:"},
		{"body", func() error { _, _, err := (MilterOptions{BodyMin: 10, BodyMax: 5}).normalize(); return err }(), "body-min"},
		{"per conn", func() error { _, _, err := (MilterOptions{MsgsPerConn: -1}).normalize(); return err }(), "msgs-per-conn"},
		{"x-mailer", func() error { _, _, err := (MilterOptions{XMailer: "a\r\nBcc: x"}).normalize(); return err }(), "x-mailer"},
		{"all errors", func() error { _, _, err := (PolicyOptions{Conns: -1, State: "x", Users: -1}).normalize(); return err }(), "users:"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, tc.err, tc.want)
		}
	}
	if _, _, err := (PolicyOptions{Duration: 9 * time.Minute, Warmup: time.Minute}).normalize(); err != nil {
		t.Errorf("10 minutes in all refused: %v", err)
	}
}
