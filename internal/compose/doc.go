// Package compose keeps the repository's docker-compose.yml and Dockerfile
// honest without a Docker engine: its tests parse them and check them
// against the code they deploy. The worker's environment is compared with
// the flag table the worker binary prints (`worker --help`), the search
// attributes with the ones the workflows upsert, the builder image with
// go.mod's Go version, and the worker's health check is run against a
// stand-in endpoint. The search-attribute setup script runs under /bin/sh
// with a stand-in `temporal` command.
package compose
