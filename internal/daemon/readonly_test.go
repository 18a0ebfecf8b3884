package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/config"
)

// TestReadOnlyWhileStoreTakesNoWrites: a node of its own lists itself as
// the one node, up; while its SQLite database takes no writes (another
// process holds the write lock), a change fails with a 503 saying so, the
// admin API's status says the records are read-only and every web page
// shows the banner.
func TestReadOnlyWhileStoreTakesNoWrites(t *testing.T) {
	var dataDir string
	d := startInProcess(t, func(c *config.Config) { dataDir = c.DataDir })
	ctx := api.WithActor(context.Background(), api.Actor{Name: "test"})
	c := api.NewClient(d.Socket)
	host, _ := os.Hostname()

	l, err := c.ListNodes(ctx)
	if err != nil || l.Shared || len(l.Nodes) != 1 || l.Nodes[0].Name != host || l.Nodes[0].State != api.NodeUp || !l.Nodes[0].Self || l.Nodes[0].Version != "test" {
		t.Fatalf("nodes %+v, %v", l, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.ReadOnly || st.Records != api.RecordsSQLite || st.Node != host {
		t.Fatalf("status %+v, %v", st, err)
	}
	const pw = "a-Long-Admin-Password"
	if _, err := d.ops.PutUser(ctx, api.PutUserRequest{Name: "alice", Role: string(auth.RoleAdmin), Password: pw}); err != nil {
		t.Fatal(err)
	}
	p, err := d.auth.Login(ctx, "alice", pw, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	page := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+d.HTTP.String()+path, nil)
		req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: p.SessionID})
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if body := page("/nodes"); !strings.Contains(body, host+` <span class="muted">(this node)</span>`) || strings.Contains(body, "read-only") {
		t.Fatalf("nodes page:\n%s", body)
	}

	lockStore(t, dataDir)
	// A change that cannot be written (after the store's busy timeout)
	// is a 503 that says why; it probes the store at once, so the status
	// follows without waiting for ops.RecordsCheckEvery.
	_, err = c.SetAccountState(ctx, api.SetAccountStateRequest{Account: "eve@example.org", State: "restricted", Reason: "spam run"})
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "the SQLite database takes no writes") || strings.Contains(err.Error(), "locked") {
		t.Fatalf("a change while the store takes no writes: %v", err)
	}
	if st, err := c.Status(ctx); err != nil || !st.ReadOnly {
		t.Fatalf("status while locked %+v, %v", st, err)
	}
	for _, path := range []string{"/", "/nodes", "/config"} {
		if body := page(path); !strings.Contains(body, "Records are read-only: the SQLite database takes no writes") {
			t.Errorf("%s: no read-only banner:\n%.2000s", path, body)
		}
	}
}
