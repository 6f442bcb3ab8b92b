package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMachineFiles(t *testing.T) {
	model, n := parseCPUInfo(strings.NewReader("processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n"))
	require.Equal(t, "AMD EPYC", model)
	require.Equal(t, 2, n)
	require.Equal(t, int64(24684032*1024), parseMemTotal(strings.NewReader("MemTotal:       24684032 kB\nMemFree: 1 kB\n")))
	require.Equal(t, "Debian GNU/Linux 12 (bookworm)", parseOSRelease(strings.NewReader("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")))
}
