// Command asyncapi writes the event catalog as an AsyncAPI 3.0 document:
// every event, command and reply of events/ with its channels (the event
// exchange and routing keys, the services' queues), its CloudEvents
// envelope, the JSON Schema of each payload version and the upcasters
// between versions.
//
//	go run ./internal/asyncapi           # regenerate docs/asyncapi.yaml
//	go run ./internal/asyncapi -check    # fail when it is out of date
//
// It refuses to overwrite the document when a published version of a
// payload lost or retyped a field (see incompatibilities), unless
// -allow-breaking is given.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sagaflow/sagaflow/internal/repo"
)

// documentPath is where the document is committed, from the repository root.
const documentPath = "docs/asyncapi.yaml"

func main() {
	check := flag.Bool("check", false, "write nothing; fail when "+documentPath+" is out of date or a change breaks a published version")
	allowBreaking := flag.Bool("allow-breaking", false, "write the document even when a published version lost or retyped a field")
	flag.Parse()
	root, err := repo.Root()
	if err == nil {
		err = run(filepath.Join(root, documentPath), *check, *allowBreaking)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "asyncapi: %s\n", err)
		os.Exit(1)
	}
}

// run writes the document to path, or with check only compares it.
func run(path string, check, allowBreaking bool) error {
	entries, err := catalogEntries()
	if err != nil {
		return err
	}
	doc, err := generate(entries)
	if err != nil {
		return err
	}
	published, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		published = nil
	case err != nil:
		return err
	}
	if published != nil {
		problems, err := incompatibilities(published, doc)
		if err != nil {
			return err
		}
		if len(problems) > 0 && (check || !allowBreaking) {
			return fmt.Errorf("%s; %s", strings.Join(problems, "; "), breakingAdvice)
		}
	}
	if check {
		if !bytes.Equal(published, doc) {
			return fmt.Errorf("%s is out of date: run go run ./internal/asyncapi", documentPath)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, doc, 0o644)
}
