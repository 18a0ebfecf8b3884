package response

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbePasswdFile: the probe opens the file for writing and creates
// (and removes) a file beside it, as a change does before its rename; it
// leaves nothing behind and names a missing file.
func TestProbePasswdFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	if err := os.WriteFile(path, []byte("alice:{SHA512-CRYPT}$6$x$y:1000:1000::/home/alice::\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := probeFile(path); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(dir)
	if err != nil || len(es) != 1 || es[0].Name() != "users" {
		t.Fatalf("the probe left %v (%v)", es, err)
	}
	if err := probeFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "passwd-file") {
		t.Fatalf("a missing file: %v", err)
	}
}
