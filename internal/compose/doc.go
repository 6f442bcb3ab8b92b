// Package compose keeps the repository's docker-compose.yml honest without
// a Docker engine. Its tests load the file with compose-go, the parser the
// compose CLI uses, so that what they check is what `docker compose` would
// run, and compare it with the code it deploys: every service's image or
// build, its ports and health checks, the worker's environment against the
// flag table the worker binary prints (`worker --help`), and the search
// attributes against the ones the workflows upsert. The worker's health
// check runs against a stand-in endpoint, and the search-attribute setup
// script under /bin/sh with a stand-in `temporal` command.
//
// The directory also holds the files the compose services mount: the
// Temporal server's dynamic config and, for the observability profile,
// Prometheus' scrape config (prometheus.yml) and Grafana's provisioning
// and dashboard (grafana/). Their tests check that every mounted file
// exists, that Prometheus scrapes the worker, and that every metric the
// dashboard queries is one the worker exports.
package compose
