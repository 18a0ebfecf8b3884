package daemon

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// loadOrCreateKey reads a secret key file, creating it with 32 random
// bytes (mode 0600, written to a temporary file and renamed into place)
// when it does not exist. A key file readable by others is refused: it
// keys hashes of the recipients every account mails.
func loadOrCreateKey(path string) ([]byte, error) {
	if b, err := readKey(path); err != nil || b != nil {
		return b, err
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	// Link, not rename: two daemons starting at once on one data directory
	// must not both create a key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateKey(path)
		}
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	return key, nil
}

// readKey reads a key file, refusing one readable by group or others or
// shorter than 16 bytes; nil and no error when it does not exist.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is accessible to group or others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("key file %s holds %d bytes; want at least 16", path, len(b))
	}
	return b, nil
}
