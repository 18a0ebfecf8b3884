package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

const chromiumPath = "/usr/bin/chromium"

// artifactsDir is where the browser test saves its screenshots:
// $MAILBRAKE_ARTIFACTS, or artifacts/ at the top of the repository (not
// committed).
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("MAILBRAKE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts a headless Chromium with a private profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skip("chromium not installed; run scripts/install-test-deps.sh")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancel(); cancelA() })
	return ctx
}

func addUser(t *testing.T, d *daemon, name, role, password string) {
	t.Helper()
	cmd := exec.Command(binary, "--socket", d.socket, "user", "add", name, "--role", role, "--password-stdin")
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add %s: %v %s", name, err, out)
	}
}

// TestBrowserReviewAndRelease: in a real headless Chromium an admin logs
// in, sees a message the real Postfix held, opens it, releases it, and the
// message reaches the sink; a helpdesk user sees the message's envelope
// but not its content. Screenshots go to the artifacts directory.
func TestBrowserReviewAndRelease(t *testing.T) {
	in, d := startPair(t, true, false, postfixtest.Options{}, "")
	const adminPW, helpPW = "Admin-Browser-Pass-1", "Helpdesk-Browser-Pass-2"
	addUser(t, d, "root-admin", "admin", adminPW)
	addUser(t, d, "desk", "helpdesk", helpPW)
	a := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "Quarterly invoice"}, Body: "BODY-SENTINEL please pay the attached invoice\n"})
	h := d.waitHold(a.QueueID)
	base := "http://" + d.httpAddr()
	shots := artifactsDir(t)
	shot := func(ctx context.Context, name string) {
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		p := filepath.Join(shots, "browser-"+name+".png")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Error(err)
		}
		t.Logf("screenshot: %s", p)
	}
	login := func(ctx context.Context, user, pw string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.CSS(`input[name=name]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name=name]`), user),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), pw),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
			chromedp.WaitVisible(chromedp.CSS(`nav`)),
		); err != nil {
			t.Fatalf("login as %s: %v", user, err)
		}
	}

	// Admin: log in, find the held message, open it, release it.
	ctx := browser(t)
	login(ctx, "root-admin", adminPW)
	shot(ctx, "dashboard")
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/quarantine"), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
		t.Fatal(err)
	}
	list, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil || !strings.Contains(list, "Quarterly invoice") || !strings.Contains(list, "bulk-from-scripted-client") {
		t.Fatalf("quarantine list: %v\n%s", err, list)
	}
	shot(ctx, "quarantine")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/quarantine/%d"]`, h.ID))), chromedp.WaitVisible(chromedp.CSS(`pre.message`))); err != nil {
		t.Fatalf("open the message: %v", err)
	}
	detail, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if !strings.Contains(detail, "BODY-SENTINEL") || !strings.Contains(detail, zclient) {
		t.Fatalf("message page lacks its preview or headers:\n%s", detail)
	}
	shot(ctx, "message")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`form[action="/quarantine/%d/release"] button`, h.ID))),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`))); err != nil {
		t.Fatalf("release: %v", err)
	}
	if flash, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p.flash`))); !strings.Contains(flash, "released") {
		t.Fatalf("after release: %q", flash)
	}
	shot(ctx, "released")
	got := in.Sink.WaitMessages(t, 1, 30*time.Second)
	if len(got[0].Recipients) != 60 {
		t.Fatalf("delivered to %d recipients", len(got[0].Recipients))
	}
	if st := d.holdByQueueID(a.QueueID).State; st != store.HoldReleased {
		t.Fatalf("hold state after release in the browser: %s", st)
	}
	audit := d.mustCLI("quarantine", "audit")
	if !strings.Contains(audit, "web:root-admin") {
		t.Fatalf("release not audited as the web user:\n%s", audit)
	}

	// Helpdesk: sees the message's envelope, never its content.
	hctx := browser(t)
	login(hctx, "desk", helpPW)
	if err := chromedp.Do(hctx, chromedp.Navigate(fmt.Sprintf("%s/quarantine/%d", base, h.ID)), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
		t.Fatal(err)
	}
	page, _ := chromedp.Run(hctx, chromedp.OuterHTML(chromedp.CSS(`html`)))
	if strings.Contains(page, "BODY-SENTINEL") || strings.Contains(page, "X-Mailer") {
		t.Fatal("the helpdesk user sees message content")
	}
	if !strings.Contains(page, "alice@campus.example") {
		t.Fatal("the helpdesk user does not see the envelope")
	}
	shot(hctx, "helpdesk-message")
	for _, pw := range []string{adminPW, helpPW} {
		if strings.Contains(d.log.String(), pw) || strings.Contains(page, pw) {
			t.Fatal("a user's password appears in the log or a page")
		}
	}
}
