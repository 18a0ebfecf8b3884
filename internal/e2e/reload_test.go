package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/policy"
)

// TestReloadBinary: `mailbrake reload` checks the configuration, refuses
// one with errors (exit 2, nothing sent), and otherwise makes the running
// daemon re-read it (SIGHUP): a rule added to the file applies to the next
// request, with what the daemon counted before kept (issue 14).
func TestReloadBinary(t *testing.T) {
	pAddr := freeAddr(t)
	d := startDaemon(t, daemonOptions{Policy: pAddr, PostfixConfigDir: t.TempDir()})
	base, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl, err := policy.Dial("tcp", pAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	send := func(state, instance string) string {
		t.Helper()
		r := policy.Request{Request: policy.RequestType, ProtocolState: state, SASLUsername: "ann@campus.example", ClientAddress: "192.0.2.1",
			ClientPort: "40000", Instance: instance, Sender: "ann@campus.example", Recipient: "x@dest.example", RecipientCount: 1, QueueID: "Q" + instance}
		resp, err := cl.Check(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Action
	}
	send(policy.StateRcpt, "1")
	send(policy.StateEndOfMessage, "1")

	reload := func(yaml string) (int, string) {
		t.Helper()
		if err := os.WriteFile(d.config, []byte(string(base)+yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary, "--config", d.config, "--socket", d.socket, "reload")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	waitLog := func(what string, n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); strings.Count(d.log.String(), what) < n; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, tailLines(d.log.String(), 20))
			}
		}
	}

	code, out := reload("playbooks:\n  - {name: mine, triggers: [reply-to-phiser], severity: high, steps: [notify]}\n")
	if code != 2 || !strings.Contains(out, "reply-to-phiser") || !strings.Contains(out, "not reloaded") {
		t.Fatalf("reload of a broken configuration: exit %d\n%s", code, out)
	}
	if strings.Contains(d.log.String(), "configuration reloaded") {
		t.Fatal("the daemon reloaded a configuration the command refused")
	}

	code, out = reload("rules:\n  - {name: one-an-hour, reason: one-an-hour, stage: rcpt, when: [{fact: messages_1h, gte: 1}], verdict: defer}\n")
	if code != 0 || !strings.Contains(out, "re-reading it") {
		t.Fatalf("reload: exit %d\n%s", code, out)
	}
	waitLog("configuration reloaded", 1)
	if a := send(policy.StateRcpt, "2"); !strings.HasPrefix(a, "DEFER") {
		t.Fatalf("after the reload: %q, want DEFER (one message counted before it)", a)
	}
	if !strings.Contains(d.log.String(), "applied=[rules]") {
		t.Errorf("the log does not say what was applied:\n%s", tailLines(d.log.String(), 5))
	}
}
