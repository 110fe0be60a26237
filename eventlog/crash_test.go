package eventlog_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/parleyhq/parley/eventlog"
)

const crashChildEnv = "EVENTLOG_CRASH_CHILD_DIR"

// TestMain lets the test binary double as the child process of the crash
// test.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends from 16 goroutines forever and prints "seq id" for
// every acknowledged event, until it is killed.
func crashChild(dir string) {
	l, err := eventlog.Open(dir, eventlog.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				d := eventlog.Draft{Type: "crash.appended", Stream: fmt.Sprintf("g/%d", g), Payload: fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)}
				evs, err := l.Append(context.Background(), d)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%d %s\n", evs[0].Seq, evs[0].ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestKill9KeepsAcknowledgedEvents kills an appending process with SIGKILL
// and checks every event it had acknowledged is in the reopened log, the
// chain verifies and seq has no gap.
func TestKill9KeepsAcknowledgedEvents(t *testing.T) {
	dir := t.TempDir()
	for round := 0; round < 2; round++ { // the second round appends to a log that survived a kill
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[uint64]string{}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			seq, id, _ := strings.Cut(sc.Text(), " ")
			n, err := strconv.ParseUint(seq, 10, 64)
			if err != nil {
				t.Fatalf("child printed %q", sc.Text())
			}
			acked[n] = id
			if len(acked) == 3000 {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		if len(acked) < 3000 {
			t.Fatalf("child died after %d acks", len(acked))
		}

		l, err := eventlog.Open(dir, eventlog.Options{})
		if err != nil {
			t.Fatalf("reopen after kill -9: %v", err)
		}
		rep, err := l.Verify(context.Background())
		if err != nil {
			t.Fatalf("verify after kill -9: %v", err)
		}
		found := 0
		err = l.Read(context.Background(), 1, 0, func(e eventlog.Event) error {
			if id, ok := acked[e.Seq]; ok {
				if id != e.ID.String() {
					return fmt.Errorf("seq %d has id %s, child acknowledged %s", e.Seq, e.ID, id)
				}
				found++
			}
			return nil
		})
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		if found != len(acked) {
			t.Fatalf("round %d: %d of %d acknowledged events survived", round, found, len(acked))
		}
		t.Logf("round %d: %d acknowledged, %d in the log (head %s), chain verified", round, len(acked), rep.Events, rep.HeadHash.String()[:12])
	}
}
