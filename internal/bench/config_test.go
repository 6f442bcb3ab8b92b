package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		env     func(string) string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "defaults: three runs of 500 sagas at 100", args: nil, env: noEnv, check: func(t *testing.T, c Config) {
			require.Equal(t, 500, c.Sagas)
			require.Equal(t, 3, c.Repeats)
			require.Equal(t, 100, c.Concurrency)
			require.Equal(t, []int{1, 2, 3, 4, 5}, c.Rows)
			require.True(t, c.Variants)
			require.Equal(t, 50, c.HistorySample)
			require.Equal(t, "amqp://guest:guest@127.0.0.1:5672/", c.AMQPURL)
			require.Equal(t, "sagaflow-bench-", c.VHostPrefix)
		}},
		{name: "a vhost prefix of its own", args: []string{"--vhost-prefix", "sagaflow-hb-"}, env: noEnv,
			check: func(t *testing.T, c Config) { require.Equal(t, "sagaflow-hb-", c.VHostPrefix) }},
		{name: "smoke run", args: []string{"--sagas", "100", "--concurrency", "20", "--skip-go-benchmarks", "--rows", "3,1"}, env: noEnv,
			check: func(t *testing.T, c Config) {
				require.Equal(t, 100, c.Sagas)
				require.Equal(t, 20, c.Concurrency)
				require.True(t, c.SkipGoBenchmarks)
				require.Equal(t, []int{1, 3}, c.Rows)
			}},
		{name: "AMQP_URL is the default broker", env: func(k string) string {
			if k == "AMQP_URL" {
				return "amqp://u:p@broker:5672/"
			}
			return ""
		}, check: func(t *testing.T, c Config) { require.Equal(t, "amqp://u:p@broker:5672/", c.AMQPURL) }},
		{name: "unknown row", args: []string{"--rows", "6"}, env: noEnv, wantErr: `"6" is not a row from 1 to 5`},
		{name: "every problem at once", args: []string{"--sagas", "-1", "--concurrency", "-2"}, env: noEnv, wantErr: "concurrency -2"},
		{name: "repeats must be positive", args: []string{"--repeats", "-1"}, env: noEnv, wantErr: "repeats -1: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, tt.env, io.Discard)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestPlanRows(t *testing.T) {
	c := Config{Rows: []int{1, 2, 3}, Variants: true, MorePollers: 16, TransferPollRPS: 1000}
	require.Equal(t, []RowSpec{
		{Row: 1}, {Row: 1, Encrypted: true}, {Row: 1, Traced: true}, {Row: 1, Cluster: true}, {Row: 1, SelfHosted: true}, {Row: 1, Pollers: 16},
		{Row: 2}, {Row: 2, Pollers: 16}, {Row: 2, Eager: true},
		{Row: 3}, {Row: 3, Eager: true},
		{Row: 1, TransferPollRPS: 1000}, {Row: 2, TransferPollRPS: 1000}, {Row: 3, TransferPollRPS: 1000},
	}, planRows(c))
	c.Variants = false
	fast := []RowSpec{{Row: 1, TransferPollRPS: 1000}, {Row: 2, TransferPollRPS: 1000}, {Row: 3, TransferPollRPS: 1000}}
	require.Equal(t, append([]RowSpec{{Row: 1}, {Row: 1, Encrypted: true}, {Row: 1, Traced: true}, {Row: 1, Cluster: true}, {Row: 1, SelfHosted: true}, {Row: 2}, {Row: 3}}, fast...), planRows(c),
		"the codec, cluster and self-hosted rows run without variants too, and every row on the second server setting, for the tail check")
	c.SkipSelfHosted = true
	require.Equal(t, append([]RowSpec{{Row: 1}, {Row: 1, Encrypted: true}, {Row: 1, Traced: true}, {Row: 1, Cluster: true}, {Row: 2}, {Row: 3}}, fast...), planRows(c), "--skip-self-hosted")
	c.SkipCluster = true
	require.Equal(t, append([]RowSpec{{Row: 1}, {Row: 1, Encrypted: true}, {Row: 1, Traced: true}, {Row: 2}, {Row: 3}}, fast...), planRows(c), "--skip-cluster")
	c.TransferPollRPS = -1
	require.Equal(t, []RowSpec{{Row: 1}, {Row: 1, Encrypted: true}, {Row: 1, Traced: true}, {Row: 2}, {Row: 3}}, planRows(c), "a negative poll rate leaves the second setting out")
	c = Config{Rows: []int{2, 3}}
	require.Equal(t, []RowSpec{{Row: 2}, {Row: 3}}, planRows(c), "the cluster row runs beside row 1 only")

	// The transfer rows run with the defaults only, on both server settings.
	c = Config{Rows: []int{4, 5}, Variants: true, MorePollers: 16, TransferPollRPS: 1000}
	require.Equal(t, []RowSpec{{Row: 4}, {Row: 5}, {Row: 4, TransferPollRPS: 1000}, {Row: 5, TransferPollRPS: 1000}}, planRows(c))
}
