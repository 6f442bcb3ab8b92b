package temporalcluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics scrapes a service's Prometheus endpoint and returns each sample
// by its series (name and labels as exposed).
func (s *Service) Metrics(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.MetricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", s.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %s", s.Name, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Sum adds the samples of a metric (every series of that name).
func Sum(samples map[string]float64, name string) float64 {
	var total float64
	for series, v := range samples {
		if series == name || strings.HasPrefix(series, name+"{") {
			total += v
		}
	}
	return total
}

// ShardsOwned is how many history shards a history host holds, from its
// numshards_gauge (the shard controller records it each time it acquires
// shards: at start, on every membership change, and every minute).
func (s *Service) ShardsOwned(ctx context.Context) (int, error) {
	if s.Role != RoleHistory {
		return 0, fmt.Errorf("%s is no history host", s.Name)
	}
	m, err := s.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	for series := range m {
		if series == "numshards_gauge" || strings.HasPrefix(series, "numshards_gauge{") {
			return int(Sum(m, "numshards_gauge")), nil
		}
	}
	return 0, fmt.Errorf("%s exposes no numshards_gauge yet", s.Name)
}

// ShardsCreated counts the shards a history host took ownership of since
// it started (sharditem_created_count).
func (s *Service) ShardsCreated(ctx context.Context) (int, error) {
	m, err := s.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	return int(Sum(m, "sharditem_created_count")), nil
}

// Shards is persistence.numHistoryShards of the cluster.
func (c *Cluster) Shards() int { return c.opts.Shards }

// WaitShards waits until the running history hosts hold every shard
// between them, each as want says (nil: any split), and returns what each
// holds by name.
func (c *Cluster) WaitShards(ctx context.Context, want func(owned map[string]int) bool) (map[string]int, error) {
	var last map[string]int
	var lastErr error
	for {
		owned := map[string]int{}
		total := 0
		lastErr = nil
		for _, h := range c.ServicesOf(RoleHistory) {
			if !h.Running() {
				continue
			}
			n, err := h.ShardsOwned(ctx)
			if err != nil {
				lastErr = err
				break
			}
			owned[h.Name] = n
			total += n
		}
		last = owned
		if lastErr == nil && total == c.opts.Shards && (want == nil || want(owned)) {
			return owned, nil
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, fmt.Errorf("history shards: %w (%v)", lastErr, ctx.Err())
			}
			return last, fmt.Errorf("history shards %v of %d: %w", last, c.opts.Shards, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
