package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/replay"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// ErrRunning is returned by Learn while the daemon serves from the same
// data directory: what learn writes, serve keeps in memory and would
// overwrite.
var ErrRunning = errors.New("mailbrake is running on this data directory; stop it first (what learn writes, serve keeps in memory and would overwrite at its stop)")

// LearnResult is what Learn did.
type LearnResult struct {
	Summary   *replay.Summary
	Snapshots int // account snapshots written
}

// Learn seeds the detectors' state (recipients each account writes to,
// each account's normal volume and client families, origins) from
// recorded submissions (replay's JSON Lines) and writes it into the data
// directory, where serve restores it: a new installation starts knowing
// its senders instead of learning them from live mail. The novelty key is
// the one serve uses (created when missing). It refuses while the daemon
// runs.
func Learn(ctx context.Context, cfg *config.Config, in io.Reader, log *slog.Logger) (*LearnResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sock := cfg.Admin.Socket
	if sock == "" {
		sock = filepath.Join(cfg.DataDir, "admin.sock")
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return nil, ErrRunning
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "mailbrake.db"), log)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	defer st.Close()
	d := &Daemon{cfg: cfg}
	var key []byte
	if cfg.Novelty.Enabled {
		if key, err = loadOrCreateKey(d.noveltyKeyPath()); err != nil {
			return nil, fmt.Errorf("novelty.key_file: %w", err)
		}
	}
	dets, err := detect.Build(cfg, detect.Options{Logger: log, NoveltyKey: key})
	if err != nil {
		return nil, err
	}
	sns := dets.Snapshotters()
	// What the store has already is learned on, not replaced.
	all, err := st.LoadSnapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading snapshots: %w", err)
	}
	for _, sn := range sns {
		part := map[string][]byte{}
		for k, v := range all {
			if len(k) > len(sn.Prefix) && k[:len(sn.Prefix)] == sn.Prefix {
				part[k[len(sn.Prefix):]] = v
			}
		}
		if err := sn.Restore(part); err != nil {
			log.Warn("some snapshots could not be read", "prefix", sn.Prefix, "err", err)
		}
	}
	sum, err := replay.RunWith(ctx, cfg, dets, in, io.Discard, nil)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, sn := range sns {
		for k, v := range sn.Dirty() {
			out[sn.Prefix+k] = v
		}
	}
	if err := st.SaveSnapshots(ctx, out); err != nil {
		return nil, fmt.Errorf("saving what was learned: %w", err)
	}
	return &LearnResult{Summary: sum, Snapshots: len(out)}, nil
}
