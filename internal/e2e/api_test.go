package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestAPIOverHTTP: users and tokens made with the CLI; the REST API on
// the HTTP listener refuses requests without a token and answers with
// one, within the token's role; a held message shows up in it.
func TestAPIOverHTTP(t *testing.T) {
	in, d := startPair(t, true, false, postfixtest.Options{}, "")
	add := exec.Command(binary, "--socket", d.socket, "user", "add", "reviewer", "--role", "helpdesk", "--password-stdin")
	add.Stdin = strings.NewReader("a-Long-Helpdesk-Password\n")
	if out, err := add.CombinedOutput(); err != nil || !strings.Contains(string(out), "saved") {
		t.Fatalf("user add: %v %s", err, out)
	}
	if out := d.mustCLI("user", "list"); !strings.Contains(out, "reviewer") || strings.Contains(out, "argon2") {
		t.Fatalf("user list: %s", out)
	}
	secret := strings.TrimSpace(d.mustCLI("token", "create", "monitoring", "--role", "viewer"))
	if !strings.HasPrefix(secret, "mbk_") {
		t.Fatalf("token: %q", secret)
	}
	if out := d.mustCLI("token", "list"); strings.Contains(out, secret) || !strings.Contains(out, "monitoring") {
		t.Fatalf("token list shows the secret or lacks the token: %s", out)
	}
	a := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "api test"}, Body: "spam\n"})
	d.waitHold(a.QueueID)
	// The hold opens an incident off the request path; wait for its
	// immediate step before reading the metrics.
	waitIncident(t, d, "alice@campus.example", func(in store.Incident) bool {
		s := in.Step("restrict-sending")
		return s != nil && s.Status == store.StepDone
	})

	base := "http://" + d.httpAddr()
	get := func(path, tok string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/api/v1/holds", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	code, body := get("/api/v1/holds?reason=bulk-from-scripted-client", secret)
	var list struct{ Holds []store.Hold }
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Holds) != 1 || list.Holds[0].Subject != "api test" {
		t.Fatalf("holds with a token: %d %s", code, body)
	}
	if code, _ := get("/api/v1/users", secret); code != http.StatusForbidden {
		t.Fatalf("viewer listing users: %d", code)
	}
	if code, body := get("/api/v1/config", secret); code != 200 || !strings.Contains(body, "milter") {
		t.Fatalf("config: %d %s", code, body)
	}
	if code, _ := get("/healthz", ""); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	// Metrics: admin operations and incidents by fixed labels only, no
	// account or address anywhere.
	wants := []string{`mailbrake_admin_operations_total{action="token"}`, `mailbrake_incidents_opened_total{severity="high"} 1`,
		`mailbrake_playbook_steps_total{status="done",step="restrict-sending"} 1`, `mailbrake_holds_total{path="milter"} 1`}
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, metrics = get("/metrics", "")
		all := true
		for _, w := range wants {
			all = all && strings.Contains(metrics, w)
		}
		if all || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{`mailbrake_admin_operations_total{action="token"}`, `mailbrake_incidents_opened_total{severity="high"} 1`,
		`mailbrake_playbook_steps_total{status="done",step="restrict-sending"} 1`, `mailbrake_holds_total{path="milter"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, never := range []string{"alice@campus.example", "campus.example", "reviewer"} {
		if strings.Contains(metrics, never) {
			t.Errorf("metrics name %q", never)
		}
	}
	d.mustCLI("token", "revoke", strings.Split(strings.TrimPrefix(secret, "mbk_"), "_")[0])
	if code, _ := get("/api/v1/holds", secret); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", code)
	}
}
