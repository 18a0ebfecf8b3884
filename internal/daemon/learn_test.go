package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/replay"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// TestLearnSeedsWhatServeRestores: learn writes the detectors' state under
// the daemon's key and prefixes; restored as serve restores it, the
// senders' correspondents and normal are known and the learning period
// is over; a second learn adds to it; learn refuses while serve runs.
func TestLearnSeedsWhatServeRestores(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	t0 := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for day := range 10 {
		for m := range 5 {
			enc.Encode(replay.Record{Time: t0.AddDate(0, 0, day).Add(time.Duration(m) * time.Hour), Account: "prof@campus.example",
				Recipients: []string{fmt.Sprintf("colleague%d@campus.example", (day*5+m)%30)}, Client: "Mozilla Thunderbird"})
		}
	}
	res, err := Learn(t.Context(), cfg, &in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.Messages != 50 || res.Snapshots == 0 {
		t.Fatalf("learn: %+v", res)
	}

	// Restore the way serve does: the key file, the store's snapshots.
	key, err := readKey(filepath.Join(cfg.DataDir, cfg.Novelty.KeyFile))
	if err != nil || key == nil {
		t.Fatalf("novelty key not created: %v", err)
	}
	set, err := detect.Build(cfg, detect.Options{NoveltyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(cfg.DataDir, "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := st.LoadSnapshots(t.Context())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{}
	for _, sn := range set.Snapshotters() {
		d.snapshotters = append(d.snapshotters, snapshotter{sn.Prefix, sn.Dirty, sn.Restore, sn.Parts, sn.Part})
	}
	d.restoreSnapshots(snaps)
	now := t0.AddDate(0, 0, 11)
	if set.Novelty.Learning(now) {
		t.Errorf("still learning after 10 days of log (since %s)", set.Novelty.Tracker.Since())
	}
	if st := set.Novelty.Tracker.Observe("prof@campus.example", []string{"colleague7@campus.example"}, now); st.New != 0 {
		t.Errorf("a learned correspondent is first-time: %+v", st)
	}
	if nm, ok := set.Baseline.Normal("prof@campus.example", now); !ok || nm.HistoryDays < 9 {
		t.Errorf("baseline not learned: %+v %v", nm, ok)
	}

	// While serve runs (its admin socket answers), learn refuses.
	l, err := net.Listen("unix", filepath.Join(cfg.DataDir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go answer(l)
	if _, err := Learn(t.Context(), cfg, bytes.NewReader(nil), nil); !errors.Is(err, ErrRunning) {
		t.Errorf("learn while serve runs: %v", err)
	}
}

// TestStaleAdminSocket: a socket left by a crashed mailbrake is removed; a
// socket that answers is a clear error naming the running mailbrake, not
// "address already in use" (issue 13).
func TestStaleAdminSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // stale: the file stays, nothing answers
	ln, err := listenAdmin(path, "")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ln.Close()
	go answer(ln)
	if _, err := listenAdmin(path, ""); err == nil || !strings.Contains(err.Error(), "another mailbrake is running") {
		t.Fatalf("second listener: %v", err)
	}
}

// answer accepts and closes connections until l is closed: a socket that
// answers, as a running mailbrake's does.
func answer(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
