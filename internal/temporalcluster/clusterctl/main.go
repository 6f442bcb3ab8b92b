// Command clusterctl starts the self-hosted Temporal of
// `make temporal-cluster` (internal/scripts/temporal-cluster.sh) and leaves
// it running: the processes of internal/temporalcluster in sessions of
// their own, on a named pair of databases that outlives them. It prints
// the frontend's address.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sagaflow/sagaflow/internal/temporalcluster"
)

func main() {
	dir := flag.String("dir", ".data/temporal-cluster", "directory of the configuration, logs and pids")
	databases := flag.String("databases", "sagaflowtc_local", "name of the persistence database; visibility is NAME_vis")
	portBase := flag.Int("port-base", temporalcluster.DefaultPortBase, "first port to try")
	namespace := flag.String("namespace", "default", "namespace to register")
	flag.Parse()
	c, err := temporalcluster.New(temporalcluster.Options{
		Dir: *dir, Databases: *databases, PortBase: *portBase, Namespace: *namespace,
		Detach: true, StartTimeout: 3 * time.Minute,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal-cluster:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(c.Dir()+"/address", []byte(c.FrontendHostPort()+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "temporal-cluster:", err)
		os.Exit(1)
	}
	for _, s := range c.Services() {
		fmt.Printf("%-10s pid %-7d gRPC 127.0.0.1:%d  metrics %s  log %s\n", s.Name, s.Pid(), s.Ports.GRPC, s.MetricsAddr, s.LogPath)
	}
	fmt.Println(c.FrontendHostPort())
}
