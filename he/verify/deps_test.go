package verify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestVerifyIsPureGoAndLinksNoProjectPackage: the integrators (worker, server, CLI) and other
// Go programs link this package, so it builds with CGO_ENABLED=0 and links, transitively,
// no cgo, no DuckDB and no package of this repository.
func TestVerifyIsPureGoAndLinksNoProjectPackage(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command(goTool, "list", "-e", "-deps", "-json", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Standard   bool
			CgoFiles   []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch {
		case p.Error != nil:
			t.Errorf("%s does not build without cgo: %s", p.ImportPath, p.Error.Err)
		case len(p.CgoFiles) > 0 || p.ImportPath == "C":
			t.Errorf("%s uses cgo", p.ImportPath)
		case strings.HasPrefix(p.ImportPath, "github.com/duckdb/"):
			t.Errorf("links DuckDB: %s", p.ImportPath)
		case strings.HasPrefix(p.ImportPath, "github.com/c1b99f93/cleanroom/") && p.ImportPath != "github.com/c1b99f93/cleanroom/he/verify":
			t.Errorf("links a project package: %s", p.ImportPath)
		}
	}
}
