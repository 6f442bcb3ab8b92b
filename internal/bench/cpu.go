package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc CPU times (USER_HZ), 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// parseProcStat returns user+system CPU time from a /proc/<pid>/stat line.
// The command name may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseProcStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name in %q", line)
	}
	f := strings.Fields(line[i+1:])
	// After the name: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseSystemStat returns the busy and total CPU time of all cores from
// /proc/stat's "cpu" line; idle and iowait count as not busy.
func parseSystemStat(r io.Reader) (busy, total time.Duration, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[0] != "cpu" {
			continue
		}
		for i, s := range f[1:] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: %w", err)
			}
			d := time.Duration(n) * clockTick
			total += d
			if i != 3 && i != 4 { // idle, iowait
				busy += d
			}
		}
		return busy, total, nil
	}
	return 0, 0, fmt.Errorf("/proc/stat: no cpu line")
}

// processCPU reads a process's CPU time; 0 when it cannot be read.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	d, err := parseProcStat(string(b))
	if err != nil {
		return 0
	}
	return d
}

// pidsNamed lists the processes whose command name is comm (RabbitMQ's
// Erlang VM is beam.smp).
func pidsNamed(comm string) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// CPUShare is how many cores each party kept busy during a row, on
// average.
type CPUShare struct {
	DevServer, Worker, Benchmark, RabbitMQ, Others, HostBusy float64
}

// cpuSnapshot is the CPU time of the parties at one moment.
type cpuSnapshot struct {
	at                                   time.Time
	devServer, worker, benchmark, rabbit time.Duration
	hostBusy                             time.Duration
}

// takeCPU reads the CPU time of the dev server, the worker processes
// (summed; none for an in-process row), this process, RabbitMQ and the
// whole host.
func takeCPU(serverPIDs []int, workerPIDs ...int) cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), benchmark: processCPU(os.Getpid())}
	for _, pid := range serverPIDs {
		s.devServer += processCPU(pid)
	}
	for _, pid := range workerPIDs {
		s.worker += processCPU(pid)
	}
	for _, pid := range pidsNamed("beam.smp") {
		s.rabbit += processCPU(pid)
	}
	if f, err := os.Open("/proc/stat"); err == nil {
		s.hostBusy, _, _ = parseSystemStat(f)
		_ = f.Close()
	}
	return s
}

// share turns two snapshots into cores kept busy; what the host spent
// beyond the four parties is Others: other people's processes.
func share(before, after cpuSnapshot) CPUShare {
	secs := after.at.Sub(before.at).Seconds()
	if secs <= 0 {
		return CPUShare{}
	}
	cores := func(a, b time.Duration) float64 { return (b - a).Seconds() / secs }
	c := CPUShare{
		DevServer: cores(before.devServer, after.devServer),
		Worker:    cores(before.worker, after.worker),
		Benchmark: cores(before.benchmark, after.benchmark),
		RabbitMQ:  cores(before.rabbit, after.rabbit),
		HostBusy:  cores(before.hostBusy, after.hostBusy),
	}
	c.Others = max(0, c.HostBusy-c.DevServer-c.Worker-c.Benchmark-c.RabbitMQ)
	return c
}
