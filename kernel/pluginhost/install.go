package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleyhq/parley/plugins"
)

// Installed is the record `kernel plugin install` writes next to the
// binary: what the operator granted and the checksum the binary must keep.
type Installed struct {
	ID          string           `json:"id"`
	Binary      string           `json:"binary"` // file name inside the plugins directory
	SHA256      string           `json:"sha256"`
	Manifest    plugins.Manifest `json:"manifest"` // granted at install
	InstalledAt time.Time        `json:"installed_at"`
}

// Inspect starts a plugin executable, reads its manifest and stops it.
// checksum, when set, is verified before the binary runs.
func Inspect(ctx context.Context, path string, checksum []byte, timeout time.Duration) (plugins.Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return plugins.Manifest{}, err
	}
	p, err := launch(abs, nil, PluginEnv(), checksum, timeout, slog.New(slog.DiscardHandler))
	if err != nil {
		return plugins.Manifest{}, err
	}
	defer p.Kill()
	mctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := p.Manifest(mctx)
	if err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	return m, m.Validate()
}

// Install copies the executable at path into dir, hashes the copy, runs
// the copy (checked against that hash) to read its manifest, and records
// manifest and SHA-256 next to it. The kernel later refuses to run a
// binary whose checksum changed. Install while the kernel is stopped: a
// running kernel keeps the grant it loaded.
func Install(ctx context.Context, dir, path string) (Installed, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Installed{}, err
	}
	src, err := os.Open(path)
	if err != nil {
		return Installed{}, err
	}
	defer src.Close()
	staged, err := os.CreateTemp(dir, ".installing-*")
	if err != nil {
		return Installed{}, err
	}
	defer os.Remove(staged.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(staged, h), src)
	if err = errors.Join(err, staged.Chmod(0o755), staged.Sync(), staged.Close()); err != nil {
		return Installed{}, err
	}
	sum := h.Sum(nil)
	m, err := Inspect(ctx, staged.Name(), sum, 10*time.Second)
	if err != nil {
		return Installed{}, fmt.Errorf("install %s: %w", path, err)
	}
	dst := filepath.Join(dir, m.ID)
	rec := Installed{ID: m.ID, Binary: m.ID, SHA256: hex.EncodeToString(sum), Manifest: m, InstalledAt: time.Now().UTC()}
	b, _ := json.MarshalIndent(rec, "", "  ")
	// The record first, then the binary: a crash in between leaves a record
	// whose binary is missing or old, which the checksum refuses.
	if err := writeFileAtomic(dst+".json", append(b, '\n')); err != nil {
		return Installed{}, err
	}
	if err := os.Rename(staged.Name(), dst); err != nil {
		return Installed{}, err
	}
	return rec, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadInstalled returns a Spec for every plugin installed in dir. A missing
// directory holds no plugins.
func LoadInstalled(dir string) ([]Spec, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var specs []Spec
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var rec Installed
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("plugin record %s: %w", f, err)
		}
		sum, err := hex.DecodeString(rec.SHA256)
		if err != nil || len(sum) != sha256.Size || rec.ID == "" || strings.ContainsAny(rec.Binary, `/\`) {
			return nil, fmt.Errorf("plugin record %s: bad id, binary or sha256", f)
		}
		granted := rec.Manifest
		specs = append(specs, Spec{
			ID: rec.ID, Transport: OutOfProcess, Path: filepath.Join(dir, rec.Binary), Env: PluginEnv(),
			Checksum: sum, Granted: &granted,
		})
	}
	return specs, nil
}

// PluginEnv is the environment a plugin process gets: the basics a program
// needs, none of the kernel's own settings or secrets.
func PluginEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
