package cli

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

func backupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent backup of the database and the novelty key to FILE (a tar; .gz compresses)",
		Long: `Writes FILE, a tar archive (gzip-compressed when FILE ends in .gz or
.tgz) holding mailbrake.db — a consistent copy made with SQLite's VACUUM
INTO while the daemon runs, checked with PRAGMA integrity_check — and
novelty.key, without which the stored recipient hashes and campaign prints
are useless. FILE is created 0600 and must not exist. Restore: stop
mailbrake, extract the archive into the data directory (removing any
mailbrake.db-wal and mailbrake.db-shm there), start it; docs/deploy.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			out := args[0]
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("%s exists; not overwritten", out)
			}
			tmp, err := os.MkdirTemp(filepath.Dir(out), ".mailbrake-backup-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dbCopy := filepath.Join(tmp, "mailbrake.db")
			version, err := sqlite.Backup(cmd.Context(), filepath.Join(c.DataDir, "mailbrake.db"), dbCopy)
			if err != nil {
				return err
			}
			members := []string{dbCopy}
			key := c.Novelty.KeyFile
			if !filepath.IsAbs(key) {
				key = filepath.Join(c.DataDir, key)
			}
			if _, err := os.Stat(key); err == nil {
				members = append(members, key)
			} else if c.Novelty.Enabled {
				fmt.Fprintf(cmd.ErrOrStderr(), "mailbrake: warning: no novelty key at %s; the backup holds the database only\n", key)
			}
			if err := writeTar(out, members); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: mailbrake.db (schema %d, integrity ok)%s\n", out, version, map[bool]string{true: " and novelty.key", false: ""}[len(members) == 2])
			return nil
		},
	}
}

// writeTar writes the files into a new tar at out (0600), each under its
// base name; a file it could not finish is removed.
func writeTar(out string, files []string) (err error) {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err // exists (a race with another writer), or no permission: not ours to remove
	}
	defer func() {
		if err != nil {
			os.Remove(out)
		}
	}()
	var w io.Writer = f
	var gz *gzip.Writer
	if strings.HasSuffix(out, ".gz") || strings.HasSuffix(out, ".tgz") {
		gz = gzip.NewWriter(f)
		w = gz
	}
	tw := tar.NewWriter(w)
	for _, p := range files {
		if err := addFile(tw, p); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func addFile(tw *tar.Writer, p string) error {
	src, err := os.Open(p)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(p), Mode: 0o600, Size: fi.Size(), ModTime: time.Now().UTC().Truncate(time.Second), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, src)
	return err
}
