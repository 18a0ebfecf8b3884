package leakscan

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedData is the development data set beside the repository (see
// /work/shared/data/README.md); it is not part of the repository, and the
// test skips when it is absent.
const sharedData = "../../../shared/data"

// TestSharedPhishing runs Extract over every real .eml under sharedData:
// no error, every bound kept.
func TestSharedPhishing(t *testing.T) {
	if _, err := os.Stat(sharedData); err != nil {
		t.Skipf("no shared data: %v", err)
	}
	var files []string
	err := filepath.WalkDir(sharedData, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".eml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no .eml files in the shared data")
	}
	tight := Options{MaxBytes: 16 << 10, MaxCandidates: 50}
	var cands, truncated, textBytes int
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, opt := range []Options{{}, tight} {
			res, err := Extract(strings.NewReader(string(data)), opt)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			checkResult(t, res, opt)
			if opt == (Options{}) {
				cands += len(res.Candidates)
				textBytes += res.TextBytes
				if res.Truncated {
					truncated++
				}
			}
		}
	}
	t.Logf("%d messages: %d text bytes, %d candidates, %d truncated", len(files), textBytes, cands, truncated)
}
