package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Packages depend one way (DESIGN.md §2): leaves → the cgo-free wire package → the worker →
// the engine → the server → cmd. These tests check what each package links, transitively, as
// Tailscale's tstest/deptest does (go list -deps), not only its direct imports, and name the
// chain of imports that breaks a rule.

// module is this repository's module path.
const module = "github.com/c1b99f93/cleanroom"

// depBuildTags are the build tags the Makefile builds and tests with (GOFLAGS); the rules must
// hold under them, since DuckDB's Arrow API only exists with duckdb_arrow.
const depBuildTags = "duckdb_arrow"

// listedPackage is the part of go list -json a rule reads.
type listedPackage struct {
	ImportPath string
	DepOnly    bool
	Imports    []string
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// goList runs go list -e -deps -json over patterns from the repository root, with env added
// to the test's environment, and returns the packages by import path and the ones the
// patterns matched (not only depended on).
func goList(t *testing.T, env []string, patterns ...string) (pkgs map[string]*listedPackage, roots []string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	args := append([]string{"list", "-e", "-deps", "-json", "-tags=" + depBuildTags}, patterns...)
	cmd := exec.Command(goTool, args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	pkgs = map[string]*listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("reading go list output: %v", err)
		}
		pkgs[p.ImportPath] = &p
		if !p.DepOnly {
			roots = append(roots, p.ImportPath)
		}
	}
	if len(roots) == 0 {
		t.Fatalf("go list matched no package for %v", patterns)
	}
	return pkgs, roots
}

// importChain returns the shortest chain of imports from the package from to a package that
// bad reports, both ends included, or nil if from links none.
func importChain(pkgs map[string]*listedPackage, from string, bad func(string) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != from && bad(p) {
			var chain []string
			for q := p; q != ""; q = prev[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			return chain
		}
		if pkg := pkgs[p]; pkg != nil {
			for _, imp := range pkg.Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return nil
}

// short drops the module path from an import path of this repository.
func short(p string) string { return strings.TrimPrefix(p, module+"/") }

func hasPathPrefix(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/") || strings.HasPrefix(p, prefix+"-")
}

// TestPackagesDependOneWay pins what the light packages may link. The API documents, the Go
// client, the gate, the planner, the models' DP mechanisms and the pipe's wire types link neither DuckDB (cgo, and raw
// rows) nor OPA; the sandbox links nothing of the engine it serves (a model job's accumulators
// are in dp/model, beside the other DP states the worker fills); server/governance does not
// link the engine (only the ports it declares); the leaves link no other package of this
// repository but errcode.
func TestPackagesDependOneWay(t *testing.T) {
	light := []string{"./server/api", "./server/client", "./engine/gate", "./engine/plan", "./engine/post", "./dp/model", "./sandbox/wire", "./sandbox/sqlgen"}
	leaves := []string{"./catalog", "./errcode", "./dp", "./rawset", "./he/verify", "./he/collective"}
	rules := []struct {
		name     string
		patterns []string
		forbid   string // what the packages must not link, for the message
		bad      func(root, p string) bool
	}{
		{"no DuckDB", light, "DuckDB",
			func(_, p string) bool { return hasPathPrefix(p, "github.com/duckdb/duckdb-go") }},
		{"no OPA", light, "OPA",
			func(_, p string) bool { return hasPathPrefix(p, "github.com/open-policy-agent/opa") }},
		{"sandbox below engine", []string{"./sandbox/..."}, "the engine",
			func(_, p string) bool { return hasPathPrefix(p, module+"/engine") }},
		// Governance decides through ports it declares; the server adapts the engine to them.
		{"governance beside the engine", []string{"./server/governance"}, "the engine",
			func(_, p string) bool { return p == module+"/engine" }},
		// errcode is the bottom of the leaves: the others may name their failures with it.
		{"leaves", leaves, "another package of this repository",
			func(root, p string) bool { return p != root && p != module+"/errcode" && hasPathPrefix(p, module) }},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			pkgs, roots := goList(t, nil, r.patterns...)
			for _, root := range roots {
				if chain := importChain(pkgs, root, func(p string) bool { return r.bad(root, p) }); chain != nil {
					for i := range chain {
						chain[i] = short(chain[i])
					}
					t.Errorf("%s links %s: %s", short(root), r.forbid, strings.Join(chain, " → "))
				}
			}
		})
	}
}

// TestClientBuildsWithoutCgo: other Go programs use the client and the API documents, so they
// build with CGO_ENABLED=0 (make lint builds them so, too).
func TestClientBuildsWithoutCgo(t *testing.T) {
	pkgs, roots := goList(t, []string{"CGO_ENABLED=0"}, "./server/api", "./server/client")
	for _, root := range roots {
		failed := func(p string) bool { return pkgs[p] != nil && pkgs[p].Error != nil }
		if chain := importChain(pkgs, root, failed); chain != nil || failed(root) {
			if chain == nil {
				chain = []string{root}
			}
			bad := pkgs[chain[len(chain)-1]].Error.Err
			for i := range chain {
				chain[i] = short(chain[i])
			}
			t.Errorf("without cgo, %s does not build: %s (%s)", short(root), strings.Join(chain, " → "), bad)
		}
	}
}
