package temporaltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// watchdog stops the dev server if this test binary dies without running
// Main's cleanup (a panicking test exits the process at once): a tiny shell
// loop outlives us, notices, and interrupts the server. It needs /proc to
// find the server's pid; without it there is no watchdog.
type watchdog struct{ cmd *exec.Cmd }

func startWatchdog(cliPath string) *watchdog {
	pids := childrenRunning(cliPath)
	if len(pids) == 0 {
		return nil
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; kill -INT %s 2>/dev/null", os.Getpid(), strings.Join(pids, " "))
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		return nil
	}
	go func() { _ = cmd.Wait() }()
	return &watchdog{cmd: cmd}
}

func (w *watchdog) stop() {
	if w != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
	}
}

// childrenRunning lists the pids of this process's children running exe.
func childrenRunning(exe string) []string {
	want, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: state, ppid, ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(self) {
			continue
		}
		if got, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && got == want {
			pids = append(pids, strconv.Itoa(pid))
		}
	}
	return pids
}
