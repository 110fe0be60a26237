package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/chat"
)

// scratch is a directory shared by fixtures that outlive one sub-benchmark
// run (testing's TempDir is removed after each).
var scratch string

func TestMain(m *testing.M) {
	if os.Getenv("BENCH_PLUGIN") == "1" { // re-executed as the out-of-process plugin
		plugins.Serve(&benchPlugin{})
		return
	}
	if os.Getenv("BENCH_CHAT_PLUGIN") == "1" { // re-executed as the out-of-process chat plugin
		plugins.Serve(chat.New())
		return
	}
	if mode := os.Getenv("BENCH_SFU_SERVER"); mode != "" { // re-executed as the SFU of BenchmarkSFU
		serveSFUChild(mode)
		return
	}
	if dir := os.Getenv("BENCH_SESSION_SERVER"); dir != "" { // re-executed as the kernel of BenchmarkSessionsIdle or BenchmarkChat
		serveSessionsChild(dir, os.Getenv("BENCH_CHAT"))
		return
	}
	var err error
	scratch, err = os.MkdirTemp("", "parley-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}
