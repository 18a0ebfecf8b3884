package cli

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/ops"
)

// TestNodesAlone: `mailbrake nodes` against the admin API of a node
// without cluster.postgres lists that node, up, marked as this node, and
// says why it is alone; --json is the API's answer.
func TestNodesAlone(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	svc := &ops.Service{Node: "mx1.example.edu", Status0: api.Status{Version: "1.4.0"}, Log: slog.New(slog.DiscardHandler)}
	srv := &http.Server{Handler: api.Handler(svc, slog.New(slog.DiscardHandler))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	code, out, errOut := run(t, "--socket", sock, "nodes")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NODE") || !strings.Contains(lines[2], "knows no other node") {
		t.Fatalf("output:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) < 8 || f[0] != "mx1.example.edu" || f[1] != "(this" || f[3] != "up" || f[len(f)-2] != "1.4.0" || f[len(f)-1] != "0" {
		t.Fatalf("row %q", lines[1])
	}
	code, out, errOut = run(t, "--socket", sock, "nodes", "--json")
	var l api.NodeList
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || l.Shared || len(l.Nodes) != 1 || l.Nodes[0].Name != "mx1.example.edu" ||
		l.Nodes[0].State != api.NodeUp || !l.Nodes[0].Self || l.DownAfterSeconds != 15 {
		t.Fatalf("--json: exit %d %s %s", code, out, errOut)
	}
}
