package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestAuditActions: every AuditAction constant the package declares is
// listed by AuditActions, no action is listed twice, and every name is
// kebab-case.
func TestAuditActions(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var declared []AuditAction
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				v := s.(*ast.ValueSpec)
				if v.Type == nil || types.ExprString(v.Type) != "AuditAction" {
					continue
				}
				for i, n := range v.Names {
					lit, ok := v.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s: %s is not a string literal", fset.Position(n.Pos()), n.Name)
						continue
					}
					s, _ := strconv.Unquote(lit.Value)
					declared = append(declared, AuditAction(s))
				}
			}
		}
	}
	listed := AuditActions()
	if len(declared) == 0 {
		t.Fatal("no AuditAction constant found")
	}
	for _, a := range declared {
		if !slices.Contains(listed, a) {
			t.Errorf("AuditActions does not list %q", a)
		}
	}
	kebab := regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
	seen := map[AuditAction]bool{}
	for _, a := range listed {
		if seen[a] {
			t.Errorf("%q listed twice", a)
		}
		seen[a] = true
		if !slices.Contains(declared, a) {
			t.Errorf("%q listed but not declared as a constant", a)
		}
		if !kebab.MatchString(string(a)) {
			t.Errorf("%q is not kebab-case (%s)", a, kebab)
		}
	}
}

// TestAuditActionsFromCatalogue: outside the catalogue (audit_actions.go),
// no audit action is spelled out — no string literal where an AuditAction
// goes (an AuditEntry's Action, an argument, a comparison, a constant of
// its own) and no conversion to AuditAction — in the module's non-test
// code. The store's conformance suite (storetest) is left out: it writes
// made-up actions to show that a store keeps any text.
func TestAuditActionsFromCatalogue(t *testing.T) {
	pkgs, exports := listModule(t)
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if f := exports[path]; f != "" {
			return os.Open(f)
		}
		return nil, fmt.Errorf("no export data for %s", path)
	})
	checked := 0
	for _, p := range pkgs {
		if strings.HasSuffix(p.ImportPath, "/internal/store/storetest") {
			continue
		}
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		for _, bad := range spelledActions(t, fset, imp, p.ImportPath, files) {
			t.Errorf("%s %s: an audit action not from the catalogue (internal/store/audit_actions.go)", p.ImportPath, bad)
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d packages checked", checked)
	}
}

// TestSpelledActions: the check of TestAuditActionsFromCatalogue finds a
// literal action and a conversion, and takes a catalogue constant.
func TestSpelledActions(t *testing.T) {
	_, exports := listModule(t)
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) { return os.Open(exports[path]) })
	f, err := parser.ParseFile(fset, "fake.go", `package fake

import "github.com/mailbrake/mailbrake/internal/store"

func audit(a store.AuditAction) {}

func f(s string, e store.AuditEntry) {
	audit(store.AuditHold)
	audit("made-up")
	_ = store.AuditEntry{Action: "made-up"}
	_ = store.AuditAction(s)
	var a store.AuditAction
	a = "made-up"
	_ = e.Action == store.AuditRelease || a == store.AuditDelete
}
`, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := spelledActions(t, fset, imp, "fake", []*ast.File{f})
	want := []string{"fake.go:9:8", "fake.go:10:31", "fake.go:11:6", "fake.go:13:6"}
	if !slices.Equal(got, want) {
		t.Fatalf("found %v, want %v", got, want)
	}
}

// spelledActions type-checks a package and returns where, outside the
// catalogue, a string literal becomes an AuditAction or a value is
// converted to one.
func spelledActions(t *testing.T, fset *token.FileSet, imp types.Importer, path string, files []*ast.File) []string {
	t.Helper()
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
	if _, err := (&types.Config{Importer: imp}).Check(path, fset, files, info); err != nil {
		t.Fatalf("type-checking %s: %v", path, err)
	}
	isAction := func(e ast.Expr) bool {
		n, ok := types.Unalias(info.Types[e].Type).(*types.Named)
		return ok && n.Obj().Name() == "AuditAction" && n.Obj().Pkg() != nil && strings.HasSuffix(n.Obj().Pkg().Path(), "/internal/store")
	}
	var bad []string
	for _, f := range files {
		if name := fset.Position(f.Pos()).Filename; filepath.Base(name) == "audit_actions.go" && strings.HasSuffix(path, "/internal/store") {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if isAction(n) {
					bad = append(bad, shortPos(fset, n.Pos()))
				}
			case *ast.CallExpr:
				if info.Types[n.Fun].IsType() && isAction(n.Fun) {
					bad = append(bad, shortPos(fset, n.Pos()))
					return false // its literal, if any, is the same finding
				}
			}
			return true
		})
	}
	return bad
}

func shortPos(fset *token.FileSet, p token.Pos) string {
	pos := fset.Position(p)
	return fmt.Sprintf("%s:%d:%d", filepath.Base(pos.Filename), pos.Line, pos.Column)
}

type listedPackage struct {
	ImportPath, Dir, Export string
	GoFiles, CgoFiles       []string
	Module                  *struct{ Main bool }
}

// listModule lists the module's packages (non-test files) and the export
// data of them and everything they import, from the go command.
func listModule(t *testing.T) ([]listedPackage, map[string]string) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command(goCmd, "list", "-export", "-deps", "-json=ImportPath,Dir,Export,GoFiles,CgoFiles,Module", "./...")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	exports := map[string]string{}
	for d := json.NewDecoder(strings.NewReader(string(out))); ; {
		var p listedPackage
		if err := d.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		if p.Module != nil && p.Module.Main {
			if len(p.CgoFiles) > 0 {
				t.Fatalf("%s uses cgo: type-check it otherwise", p.ImportPath)
			}
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, exports
}
