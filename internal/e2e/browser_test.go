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

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
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

// loginAs signs in to the web UI at base.
func loginAs(t *testing.T, ctx context.Context, base, user, pw string) {
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
		loginAs(t, ctx, base, user, pw)
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

// TestBrowserNarrowAndDark (issue 14): at 390 px (a phone) no page of the
// review UI scrolls sideways — a spam run's page with 60 recipients and a
// long subject included — and with the system in dark mode the UI is dark.
// Screenshots go to the artifacts directory.
func TestBrowserNarrowAndDark(t *testing.T) {
	in, d := startPair(t, true, false, postfixtest.Options{}, "")
	const adminPW = "Admin-Narrow-Pass-3"
	addUser(t, d, "root-admin", "admin", adminPW)
	a := in.Send(t, postfixtest.SendOptions{From: "mallory.with.a.rather.long.name@campus.example", To: recipients(60, "a-long-destination-domain.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "Urgent: verify your mailbox quota immediately or it will be suspended within twenty-four hours"},
		Body:    "Click https://verify.example.net/a/very/long/path/that/does/not/wrap/easily/at/all/0123456789 now\n"})
	h := d.waitHold(a.QueueID)
	base := "http://" + d.httpAddr()
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	loginAs(t, ctx, base, "root-admin", adminPW)
	shots := artifactsDir(t)
	for _, page := range []string{"/", "/quarantine", fmt.Sprintf("/quarantine/%d", h.ID), "/accounts", "/accounts/" + h.Account, "/incidents", "/audit"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+page), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if err != nil {
			t.Fatal(err)
		}
		if len(widths) != 2 || widths[0] > widths[1] {
			wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('table')).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))`))
			t.Errorf("%s at 390 px: the page is %v px wide (scroll width, viewport); widest: %v", page, widths, wide)
		}
		if b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			name := strings.Trim(strings.NewReplacer("/", "-").Replace(page), "-")
			if name == "" {
				name = "dashboard"
			}
			os.WriteFile(filepath.Join(shots, "browser-narrow-"+strings.SplitN(name, "-", 2)[0]+".png"), b, 0o644)
		}
	}

	bg := func() string {
		t.Helper()
		c, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.documentElement).backgroundColor`))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := bg(); c != "rgb(255, 255, 255)" {
		t.Errorf("light mode background %s", c)
	}
	dark := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	})
	if err := chromedp.Do(ctx, dark, chromedp.Navigate(base+"/quarantine"), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
		t.Fatal(err)
	}
	if c := bg(); c != "rgb(20, 24, 28)" {
		t.Errorf("dark mode background %s, want rgb(20, 24, 28)", c)
	}
	if b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(shots, "browser-dark-quarantine.png"), b, 0o644)
	}
}
