package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/parleyhq/parley/eventlog"

	bolt "go.etcd.io/bbolt"
)

// appendNotes appends n events to the log in dir (the kernel stopped).
func appendNotes(t *testing.T, dir string, from, n int) {
	t.Helper()
	l, err := eventlog.Open(dir, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := from; i < from+n; i++ {
		d := eventlog.Draft{Type: "note.added", Stream: "notes/1", Company: "acme", Actor: "alice", Payload: fmt.Appendf(nil, `{"marker":"m-%03d"}`, i)}
		if _, err := l.Append(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

// A head that verify printed, given back later as --anchor, shows what a
// chain alone cannot: the log cut back, or rewritten from that point on.
// Export verifies first and exports nothing from a broken log.
func TestAuditAnchorAndExport(t *testing.T) {
	dir := t.TempDir()
	appendNotes(t, dir, 1, 5)
	code, out, _ := kernelCmd(t, "audit", "verify", "--data-dir", dir)
	m := regexp.MustCompile(`head: seq (\d+) hash ([0-9a-f]+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("verify: exit %d, %s", code, out)
	}
	anchor := m[1] + ":" + m[2]
	appendNotes(t, dir, 6, 2) // the log grows past the anchor
	if code, out, _ := kernelCmd(t, "audit", "verify", "--data-dir", dir, "--anchor", anchor); code != 0 || !strings.Contains(out, "anchor: seq 5 has hash "+m[2]+", as recorded") {
		t.Fatalf("verify --anchor on the grown log: exit %d, %s", code, out)
	}
	wrong := m[1] + ":" + strings.Repeat("0", len(m[2]))
	for _, c := range []struct {
		anchor string
		code   int
		says   string
	}{
		{wrong, exitBroken, "BROKEN at seq 5: the record's hash is not the anchor's"},
		{"99:" + m[2], exitBroken, "BROKEN at seq 99: the anchor's seq is not in the log"},
		{"five:" + m[2], exitUsage, ""},
		{"5:abc", exitUsage, ""},
	} {
		code, out, stderr := kernelCmd(t, "audit", "verify", "--data-dir", dir, "--anchor", c.anchor)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("--anchor %s: exit %d, %s%s; want exit %d saying %q", c.anchor, code, out, stderr, c.code, c.says)
		}
	}

	if code, out, _ := kernelCmd(t, "audit", "export", "--data-dir", dir); code != 0 || strings.Count(out, "\n") != 7 {
		t.Fatalf("export of the clean log: exit %d, %s", code, out)
	}
	path := filepath.Join(dir, eventlog.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, bytes.ReplaceAll(b, []byte("m-003"), []byte("m-00X")), 0o600) // every copy bbolt left of the page
	code, out, _ = kernelCmd(t, "audit", "export", "--data-dir", dir)
	if code != exitBroken || !strings.Contains(out, "BROKEN at seq 3") || strings.Contains(out, "m-00") {
		t.Fatalf("export of an altered log: exit %d, %s; want exit %d, BROKEN at seq 3 and nothing exported", code, out, exitBroken)
	}
}

// A log damaged so that it does not even open (its last record gone, the
// head still naming it) is the audit's finding, exit 1, not "cannot be
// opened" (exit 3, as for a kernel holding the file).
func TestAuditReportsALogThatDoesNotOpen(t *testing.T) {
	dir := t.TempDir()
	appendNotes(t, dir, 1, 3)
	db, err := bolt.Open(filepath.Join(dir, eventlog.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("events")).Delete(binary.BigEndian.AppendUint64(nil, 3))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, out, stderr := kernelCmd(t, "audit", "verify", "--data-dir", dir)
	if code != exitBroken || !strings.HasPrefix(out, "BROKEN") {
		t.Fatalf("verify of a log missing its last record: exit %d, %s%s; want exit %d, BROKEN", code, out, stderr, exitBroken)
	}
}

// A file whose events bucket points past its end (its page number
// patched) makes bbolt panic: audit reports the damage, exit 1, without a
// crash, and not as "not an event log". (A read past the file's end inside
// the mapping faults instead; audit turns that into a panic it recovers.)
func TestAuditReportsADamagedFile(t *testing.T) {
	dir := t.TempDir()
	appendNotes(t, dir, 1, 200)
	path := filepath.Join(dir, eventlog.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("events"))
		if j < 0 {
			break
		}
		at := i + j + len("events")
		if at+8 <= len(b) { // the bucket's root page id follows its name in the root bucket's leaf
			binary.LittleEndian.PutUint64(b[at:], 1<<30)
			n++
		}
		i = at
	}
	if n == 0 {
		t.Fatal("no bucket name in the file")
	}
	os.WriteFile(path, b, 0o600)
	code, out, stderr := kernelCmd(t, "audit", "verify", "--data-dir", dir)
	if code != exitBroken || !strings.HasPrefix(out, "BROKEN") || strings.Contains(stderr, "goroutine ") {
		t.Fatalf("verify of a file that faults: exit %d, %s%s; want exit %d, BROKEN, no crash", code, out, stderr, exitBroken)
	}
}
