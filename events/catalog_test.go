package events_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/repo"
)

const eventsImportPath = "github.com/sagaflow/sagaflow/events"

// TestCatalogIsRegisteredOnlyInEvents keeps the catalog in one place: no
// production file outside events/ calls events.Register, in an init()
// function or anywhere else. A program that decodes a query type must not
// need to link the service that answers it just for its registration.
func TestCatalogIsRegisteredOnlyInEvents(t *testing.T) {
	root, err := repo.Root()
	require.NoError(t, err)
	var offenders []string
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if rel == "events" || name == "testdata" || name == "vendor" || (strings.HasPrefix(name, ".") && rel != ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, call := range registerCalls(f) {
			offenders = append(offenders, fset.Position(call.Pos()).String())
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, offenders, "events.Register called outside events/: register the type in events/catalog.go")
}

// registerCalls returns the calls of events.Register (with or without type
// arguments) in f, under whatever name f imports events.
func registerCalls(f *ast.File) []*ast.CallExpr {
	name := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == eventsImportPath {
			name = "events"
			if imp.Name != nil {
				name = imp.Name.Name
			}
		}
	}
	if name == "" || name == "_" {
		return nil
	}
	var calls []*ast.CallExpr
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		fun := call.Fun
		switch x := fun.(type) {
		case *ast.IndexExpr:
			fun = x.X
		case *ast.IndexListExpr:
			fun = x.X
		}
		if sel, ok := fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Register" {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == name {
				calls = append(calls, call)
			}
		}
		return true
	})
	return calls
}

func TestRegisterCallsFindsEveryForm(t *testing.T) {
	src := `package p

import ev "github.com/sagaflow/sagaflow/events"

func init() { ev.Register[T](ev.KindCommand, "a.b", 1) }

var _ = func() bool { ev.Register[T](ev.KindEvent, "c.d", 1); return true }()

func other() { x.Register() }
`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, parser.SkipObjectResolution)
	require.NoError(t, err)
	require.Len(t, registerCalls(f), 2)
}
