package exec

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDo(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "stdin.json")
	ok := &Connector{Command: []string{script(t, "cat > "+saved+"\necho 'locked in site IAM'\necho second line\n")}, Steps: []playbook.Step{playbook.StepLockLogin, playbook.StepScramblePassword}}
	inc := &store.Incident{ID: 7, Account: "u@example.edu", Reasons: []string{"password-leak"}}
	if !ok.Supports(playbook.StepLockLogin) || ok.Supports(playbook.StepNotify) {
		t.Fatal("Supports")
	}
	detail, err := ok.Do(context.Background(), playbook.StepScramblePassword, inc, []byte("N3w-secret"))
	if err != nil || detail != "locked in site IAM" {
		t.Fatalf("Do: %q %v", detail, err)
	}
	var in Input
	b, _ := os.ReadFile(saved)
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	if in.Step != "scramble-password" || in.Incident.ID != 7 || in.Incident.Account != "u@example.edu" || in.NewPassword != "N3w-secret" {
		t.Fatalf("stdin: %+v", in)
	}

	temp := &Connector{Command: []string{script(t, "echo 'directory busy' >&2\nexit 75\n")}}
	_, err = temp.Do(context.Background(), playbook.StepLockLogin, inc, nil)
	if err == nil || errors.Is(err, playbook.ErrPermanent) || !strings.Contains(err.Error(), "directory busy") {
		t.Fatalf("exit 75: %v", err)
	}
	perm := &Connector{Command: []string{script(t, "echo 'no such user' >&2\nexit 3\n")}}
	if _, err := perm.Do(context.Background(), playbook.StepLockLogin, inc, []byte("pw-secret")); !errors.Is(err, playbook.ErrPermanent) ||
		!strings.Contains(err.Error(), "no such user") || strings.Contains(err.Error(), "pw-secret") {
		t.Fatalf("exit 3: %v", err)
	}
	slow := &Connector{Command: []string{script(t, "sleep 5\n")}, Timeout: 100 * time.Millisecond}
	start := time.Now()
	if _, err := slow.Do(context.Background(), playbook.StepLockLogin, inc, nil); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("timeout did not stop the command")
	}
	missing := &Connector{Command: []string{filepath.Join(dir, "nope")}}
	if _, err := missing.Do(context.Background(), playbook.StepLockLogin, inc, nil); !errors.Is(err, playbook.ErrPermanent) {
		t.Fatalf("missing command: %v", err)
	}
}

func TestFirstLine(t *testing.T) {
	if got := firstLine("a\x1b[31mb\tc\nd"); got != "a[31mbc" {
		t.Fatalf("%q", got)
	}
	if got := firstLine(strings.Repeat("x", 300)); len(got) > 204 {
		t.Fatalf("not bounded: %d", len(got))
	}
}
