package errcode_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

// declaredCodes parses this package's source and returns every constant declared with type
// Code, by name, with its value.
func declaredCodes(t *testing.T) map[string]errcode.Code {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]errcode.Code{}
	for _, f := range pkgs["errcode"].Files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
					t.Errorf("%s: constant %s is not declared with type Code", fset.Position(vs.Pos()), vs.Names[0].Name)
					continue
				}
				for i, n := range vs.Names {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: code %s is not a string literal", fset.Position(n.Pos()), n.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					out[n.Name] = errcode.Code(v)
				}
			}
		}
	}
	return out
}

// TestEveryCodeIsListedOnceInAll: All is the registry — each declared constant is in it exactly
// once, it holds nothing else, and no two constants share a value.
func TestEveryCodeIsListedOnceInAll(t *testing.T) {
	declared := declaredCodes(t)
	byValue := map[errcode.Code]string{}
	for name, v := range declared {
		if other, dup := byValue[v]; dup {
			t.Errorf("constants %s and %s are both %q", name, other, v)
		}
		byValue[v] = name
	}
	seen := map[errcode.Code]int{}
	for _, c := range errcode.All() {
		seen[c]++
		if _, ok := byValue[c]; !ok {
			t.Errorf("All lists %q, which no constant declares", c)
		}
	}
	for v, name := range byValue {
		if n := seen[v]; n != 1 {
			t.Errorf("%s (%q) is listed %d times in All, want once", name, v, n)
		}
	}
}

// TestNoCodeIsAStringLiteral scans every .go file of the module: where a Code is expected —
// the first argument of errcode.New, At and Wrap, the Code of an errcode.Error literal, a
// conversion errcode.Code(...) — a string literal is refused (declare a constant); and outside
// this package and tests (which compare what the API and CLI print) no string literal spells a
// declared code that has an underscore (use the constant, or string(constant) where a string
// is stored).
func TestNoCodeIsAStringLiteral(t *testing.T) {
	declared := declaredCodes(t)
	codes := map[string]string{}
	for name, v := range declared {
		if strings.Contains(string(v), "_") {
			codes[string(v)] = name
		}
	}
	root := filepath.Join("..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		inErrcode := f.Name.Name == "errcode"
		isTest := strings.HasSuffix(path, "_test.go")
		isErrcode := func(e ast.Expr, name string) bool {
			switch x := e.(type) {
			case *ast.SelectorExpr:
				id, ok := x.X.(*ast.Ident)
				return ok && id.Name == "errcode" && x.Sel.Name == name
			case *ast.Ident:
				return inErrcode && x.Name == name
			}
			return false
		}
		isLit := func(e ast.Expr) bool {
			lit, ok := e.(*ast.BasicLit)
			return ok && lit.Kind == token.STRING
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CallExpr:
				for _, fn := range []string{"New", "At", "Wrap", "Code"} {
					if isErrcode(x.Fun, fn) && len(x.Args) > 0 && isLit(x.Args[0]) {
						t.Errorf("%s: errcode.%s with the literal %s: use a declared Code constant", fset.Position(x.Pos()), fn, x.Args[0].(*ast.BasicLit).Value)
					}
				}
			case *ast.CompositeLit:
				if x.Type != nil && isErrcode(x.Type, "Error") {
					for _, el := range x.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok && isLit(kv.Value) {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
								t.Errorf("%s: errcode.Error{Code: %s}: use a declared Code constant", fset.Position(kv.Pos()), kv.Value.(*ast.BasicLit).Value)
							}
						}
					}
				}
			case *ast.BasicLit:
				if inErrcode || isTest || x.Kind != token.STRING {
					return true
				}
				if v, err := strconv.Unquote(x.Value); err == nil {
					if name, ok := codes[v]; ok {
						t.Errorf("%s: the literal %s spells errcode.%s: use the constant", fset.Position(x.Pos()), x.Value, name)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
