package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPU         string
	CPUs        int
	MemoryBytes int64
	OS          string
	Kernel      string
	Go          string
	RabbitMQ    string
	TemporalCLI string
	// LoadBefore and LoadAfter are /proc/loadavg's 1, 5 and 15 minute
	// averages when the run began and ended: how busy the shared host was.
	LoadBefore, LoadAfter string
	Date                  time.Time
}

// describeMachine gathers the machine's description; what cannot be read
// is reported as "unknown" rather than failing the run.
func describeMachine(ctx context.Context, temporalCLI string) Machine {
	m := Machine{Go: runtime.Version(), Date: time.Now().UTC(), CPU: "unknown", OS: runtime.GOOS,
		RabbitMQ: "unknown", TemporalCLI: "unknown", Kernel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		m.CPU, m.CPUs = parseCPUInfo(f)
		_ = f.Close()
	}
	if m.CPUs == 0 {
		m.CPUs = runtime.NumCPU()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		m.MemoryBytes = parseMemTotal(f)
		_ = f.Close()
	}
	if f, err := os.Open("/etc/os-release"); err == nil {
		if name := parseOSRelease(f); name != "" {
			m.OS = name
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadBefore = loadAverage()
	if out, err := command(ctx, "rabbitmqctl", "version").Output(); err == nil {
		m.RabbitMQ = strings.TrimSpace(lastLines(string(out), 1))
	}
	if out, err := command(ctx, temporalCLI, "--version").Output(); err == nil {
		m.TemporalCLI = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "temporal version "))
	}
	return m
}

// loadAverage returns the three load averages of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// parseCPUInfo returns the first model name and the number of processors
// of a /proc/cpuinfo.
func parseCPUInfo(r io.Reader) (model string, count int) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			count++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(val)
			}
		}
	}
	if model == "" {
		model = "unknown"
	}
	return model, count
}

// parseMemTotal returns MemTotal of a /proc/meminfo in bytes, 0 if absent.
func parseMemTotal(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// parseOSRelease returns PRETTY_NAME of an /etc/os-release.
func parseOSRelease(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// gib formats bytes as GiB with one decimal.
func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
