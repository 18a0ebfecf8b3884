// Package exec is the playbook connector for a site's own tooling: it runs
// a configured command (no shell) for the steps it is configured for, with
// the step and the incident as JSON on standard input. For
// scramble-password the new password is in the JSON's new_password field,
// so the site can set it where mailbrake cannot; it is never logged.
//
// Exit status 0 is success, 75 (EX_TEMPFAIL) a temporary failure that is
// retried, anything else a permanent failure. The first line of standard
// output (at most 200 bytes) is recorded as the step's detail; standard
// error (at most 200 bytes) goes into the error.
package exec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Connector runs a command for its steps.
type Connector struct {
	Command []string
	Steps   []playbook.Step
	Timeout time.Duration // default 30 s
}

var _ playbook.Connector = (*Connector)(nil)

// Input is the JSON written to the command's standard input.
type Input struct {
	Step        string          `json:"step"`
	Incident    *store.Incident `json:"incident"`
	NewPassword string          `json:"new_password,omitempty"`
}

// Name implements playbook.Connector.
func (c *Connector) Name() string { return "exec" }

// Supports implements playbook.Connector.
func (c *Connector) Supports(s playbook.Step) bool { return slices.Contains(c.Steps, s) }

// exTempFail is sysexits.h EX_TEMPFAIL.
const exTempFail = 75

// Do implements playbook.Connector.
func (c *Connector) Do(ctx context.Context, s playbook.Step, inc *store.Incident, password []byte) (string, error) {
	if len(c.Command) == 0 {
		return "", fmt.Errorf("%w: no command configured", playbook.ErrPermanent)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in, err := json.Marshal(Input{Step: string(s), Incident: inc, NewPassword: string(password)})
	if err != nil {
		return "", err
	}
	defer clear(in)
	cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb limited
	out.max, errb.max = 4096, 4096
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if err != nil {
		msg := firstLine(errb.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			if ee.ExitCode() == exTempFail {
				return "", fmt.Errorf("%s exited %d (temporary): %s", c.Command[0], ee.ExitCode(), msg)
			}
			return "", fmt.Errorf("%w: %s exited %d: %s", playbook.ErrPermanent, c.Command[0], ee.ExitCode(), msg)
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: timed out after %s", c.Command[0], timeout)
		}
		return "", fmt.Errorf("%w: running %s: %v", playbook.ErrPermanent, c.Command[0], err)
	}
	return firstLine(out.String()), nil
}

// firstLine returns the first line, printable, at most 200 bytes.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return strings.TrimSpace(s)
}

// limited keeps at most max bytes of what is written to it.
type limited struct {
	bytes.Buffer
	max int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
