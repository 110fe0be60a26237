package keystore

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// MasterKeySize is the size of the master key: AES-256.
const MasterKeySize = 32

var errNoMaster = errors.New("no master key file")

// readMaster reads the master key: MasterKeySize raw bytes, or twice as
// many hex digits (surrounding white space allowed). An absent file is
// errNoMaster.
func readMaster(path string, logger *slog.Logger) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoMaster
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: master key file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		logger.Warn("the master key file is readable by other users: chmod 600 it", "file", path, "mode", st.Mode().Perm().String())
	}
	if len(b) == MasterKeySize {
		return b, nil
	}
	if t := bytes.TrimSpace(b); len(t) == 2*MasterKeySize {
		if k, err := hex.DecodeString(string(t)); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("keystore: master key file %s: want %d bytes (or %d hex digits), found %d bytes", path, MasterKeySize, 2*MasterKeySize, len(b))
}

// createMaster writes a new random master key to path (mode 0600). It
// never replaces an existing file, and a crash leaves either no file or a
// complete one.
func createMaster(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keystore: create master key file: %w", err)
	}
	k := random(MasterKeySize)
	tmp, err := os.CreateTemp(dir, ".master-key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("keystore: create master key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(k)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path) // fails if path exists
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: create master key file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return k, nil
}
