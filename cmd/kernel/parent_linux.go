package main

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// followGoRun makes a kernel started by `go run` receive SIGTERM when the go
// command dies. `go run` does not forward SIGTERM to the program it runs,
// so without this a `kill` of the go command leaves the kernel running,
// holding the port and the data directory. Only the go tool as parent
// triggers it: a kernel started by a shell, systemd or a container runtime
// keeps ordinary Unix behaviour.
func followGoRun() {
	ppid := os.Getppid()
	exe, err := os.Readlink("/proc/" + strconv.Itoa(ppid) + "/exe")
	if err != nil || filepath.Base(exe) != "go" {
		return
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0); err != nil {
		return
	}
	if os.Getppid() != ppid { // the go command died before prctl took effect
		unix.Kill(os.Getpid(), unix.SIGTERM)
	}
}
