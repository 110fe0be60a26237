package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
)

const auditUsage = `usage: kernel audit verify [--data-dir DIR] [--anchor SEQ:HASH]
       kernel audit export [--data-dir DIR] [--from-seq N] [--to-seq N] [--since T] [--until T]
                           [--stream S] [--type T] [--actor A] [--out FILE]

Audit opens the event log read-only. It needs the kernel stopped: while a
kernel holds the file, audit says so and exits 3. Export verifies the log
first and exports nothing from a broken one.

A hash chain shows every change to a record, but not a rewrite of the
records from some point on with their hashes recomputed, nor the last ones
cut off: keep the head that verify prints somewhere else, and give it
later as --anchor SEQ:HASH.
`

// Exit codes of audit: 0 fine, 1 the chain is broken, 2 usage, 3 the log
// cannot be opened (locked, missing, not an event log).
const (
	exitBroken   = 1
	exitUsage    = 2
	exitUnusable = 3
)

func audit(args []string, stdout, stderr io.Writer) (code int) {
	// A damaged file can send bbolt to read past the end of its mapping:
	// a fault, which this makes a panic, recovered as the audit's finding.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stdout, "BROKEN: the event log file is damaged: %v\n", r)
			code = exitBroken
		}
	}()
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("kernel audit "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	defDir := os.Getenv(kernel.EnvName("data_dir"))
	if defDir == "" {
		defDir = kernel.DefaultConfig().DataDir
	}
	dir := fs.String("data-dir", defDir, "data directory of the kernel ("+kernel.EnvName("data_dir")+")")
	switch args[0] {
	case "verify":
		anchor := fs.String("anchor", "", "SEQ:HASH, a head verify printed earlier: the log must still reach it unchanged")
		if err := fs.Parse(args[1:]); err != nil {
			return exitUsage
		}
		var anchorSeq uint64
		var anchorHash eventlog.Hash
		if *anchor != "" {
			var err error
			if anchorSeq, anchorHash, err = parseAnchor(*anchor); err != nil {
				fmt.Fprintln(stderr, "kernel audit verify: --anchor:", err)
				return exitUsage
			}
		}
		l, code := openForAudit(*dir, stdout, stderr)
		if l == nil {
			return code
		}
		defer l.Close()
		start := time.Now()
		rep, err := l.Verify(context.Background())
		if err == nil && *anchor != "" {
			err = l.Anchor(anchorSeq, anchorHash)
		}
		if code := reportBroken(err, stdout); code != 0 {
			return code
		}
		fmt.Fprintf(stdout, "ok: %d events in %d streams verified in %s\nhead: seq %d hash %s\n",
			rep.Events, rep.Streams, time.Since(start).Round(time.Millisecond), rep.Head, rep.HeadHash)
		if *anchor != "" {
			fmt.Fprintf(stdout, "anchor: seq %d has hash %s, as recorded\n", anchorSeq, anchorHash)
		}
		return 0
	case "export":
		var f eventlog.Filter
		var since, until, out string
		fs.Uint64Var(&f.FromSeq, "from-seq", 0, "first seq (inclusive)")
		fs.Uint64Var(&f.ToSeq, "to-seq", 0, "last seq (inclusive)")
		fs.StringVar(&since, "since", "", "only events at or after this RFC 3339 time")
		fs.StringVar(&until, "until", "", "only events before this RFC 3339 time")
		fs.StringVar(&f.Stream, "stream", "", "only this stream")
		fs.StringVar(&f.Type, "type", "", `only this type, or a prefix ending in "*" ("channel.*")`)
		fs.StringVar(&f.Actor, "actor", "", "only this actor")
		fs.StringVar(&out, "out", "", "write to this file instead of standard output")
		if err := fs.Parse(args[1:]); err != nil {
			return exitUsage
		}
		for _, t := range []struct {
			flag, v string
			dst     *time.Time
		}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
			if t.v == "" {
				continue
			}
			v, err := time.Parse(time.RFC3339, t.v)
			if err != nil {
				fmt.Fprintf(stderr, "kernel audit export: --%s: %v\n", t.flag, err)
				return exitUsage
			}
			*t.dst = v
		}
		l, code := openForAudit(*dir, stdout, stderr)
		if l == nil {
			return code
		}
		defer l.Close()
		if _, err := l.Verify(context.Background()); err != nil { // nothing exported from a log that does not verify
			return reportBroken(err, stdout)
		}
		w := stdout
		if out != "" {
			file, err := os.Create(out)
			if err != nil {
				fmt.Fprintln(stderr, "kernel audit export:", err)
				return exitUsage
			}
			defer file.Close()
			w = file
		}
		n, err := l.Export(context.Background(), w, f)
		if err != nil {
			fmt.Fprintln(stderr, "kernel audit export:", err)
			return exitBroken
		}
		fmt.Fprintf(stderr, "exported %d events\n", n)
		return 0
	default:
		fmt.Fprintf(stderr, "kernel audit: unknown subcommand %q\n\n%s", args[0], auditUsage)
		return exitUsage
	}
}

func openForAudit(dir string, stdout, stderr io.Writer) (*eventlog.Log, int) {
	l, err := eventlog.Open(dir, eventlog.Options{ReadOnly: true, LockTimeout: 500 * time.Millisecond})
	switch {
	case err == nil:
		return l, 0
	case errors.Is(err, eventlog.ErrLocked):
		fmt.Fprintf(stderr, "kernel audit: the event log in %s is in use by a running kernel; stop it first (audit needs the file to itself)\n", dir)
	case errors.Is(err, eventlog.ErrCorrupt): // an event log, damaged: that is the audit's finding, not a usage problem
		fmt.Fprintf(stdout, "BROKEN: %v\n", err)
		return nil, exitBroken
	default:
		fmt.Fprintln(stderr, "kernel audit:", err)
	}
	return nil, exitUnusable
}

// reportBroken prints what Verify (or Anchor) found wrong and returns the
// exit code for it; 0 for nil.
func reportBroken(err error, stdout io.Writer) int {
	var ce *eventlog.ChainError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		fmt.Fprintf(stdout, "BROKEN at seq %d: %s\n", ce.Seq, ce.Reason)
		fmt.Fprintf(stdout, "records before seq %d verified; everything from it on is suspect\n", ce.Seq)
	default:
		fmt.Fprintln(stdout, "BROKEN:", err)
	}
	return exitBroken
}

// parseAnchor reads SEQ:HASH (the hash in hex, as verify prints it).
func parseAnchor(s string) (uint64, eventlog.Hash, error) {
	var h eventlog.Hash
	seqText, hashText, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || seq == 0 {
		return 0, h, fmt.Errorf("want SEQ:HASH, got %q", s)
	}
	b, err := hex.DecodeString(hashText)
	if err != nil || len(b) != len(h) {
		return 0, h, fmt.Errorf("the hash must be %d hex digits", 2*len(h))
	}
	copy(h[:], b)
	return seq, h, nil
}
