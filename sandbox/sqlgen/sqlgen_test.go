package sqlgen_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/sandbox/sqlgen"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/")

// TestRender runs the data-driven files in testdata/ (CockroachDB's datadriven form): each
// case is a directive line, an expression as JSON, "----", and the SQL the renderer writes
// or the error it returns. Directives: value, condition, text; "value cols=a,s.b" limits the
// scope to those columns (every column otherwise). -rewrite regenerates the outputs.
func TestRender(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			for i, block := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
				head, want, ok := strings.Cut(block, "\n----\n")
				if !ok {
					head, want = strings.TrimSuffix(block, "\n----"), ""
				}
				directive, input, _ := strings.Cut(head, "\n")
				got := run(directive, input)
				if !*rewrite && got != want {
					t.Errorf("%s case %d (%s):\n got %s\nwant %s", path, i+1, directive, got, want)
				}
				if i > 0 {
					out.WriteString("\n")
				}
				out.WriteString(directive + "\n" + input + "\n----\n" + got + "\n")
			}
			if *rewrite {
				if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func run(directive, input string) string {
	fields := strings.Fields(directive)
	scope := func(string, string) bool { return true }
	for _, f := range fields[1:] {
		if cols, ok := strings.CutPrefix(f, "cols="); ok {
			set := map[string]bool{}
			for _, c := range strings.Split(cols, ",") {
				set[c] = true
			}
			scope = func(source, name string) bool {
				if source != "" {
					return set[source+"."+name]
				}
				return set[name]
			}
		}
	}
	var e *wire.Expr
	dec := json.NewDecoder(strings.NewReader(input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return "error: " + err.Error()
	}
	var s string
	var err error
	switch fields[0] {
	case "value":
		s, err = sqlgen.Value(e, scope)
	case "condition":
		s, err = sqlgen.Condition(e, scope)
	case "text":
		s, err = sqlgen.Text(e)
	default:
		return "error: unknown directive " + fields[0]
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

// A literal or a name can never end the SQL it is rendered into: whatever text a constant or
// a column name holds, the renderer quotes it.
func TestRenderQuotesWhateverTheTextHolds(t *testing.T) {
	for _, s := range []string{`'); DROP TABLE t; --`, `x" OR 1=1 --`, "a\nb", `''`, `""`} {
		e := wire.Compare("=", wire.Col("", s), wire.Str(s))
		got, err := sqlgen.Condition(e, func(string, string) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		want := "coalesce(try((" + sqlgen.Ident(s) + " = " + sqlgen.String(s) + ")), false)"
		if got != want || strings.Count(sqlgen.Ident(s), `"`)%2 != 0 || strings.Count(sqlgen.String(s), `'`)%2 != 0 {
			t.Fatalf("%q rendered %s", s, got)
		}
	}
}

func FuzzRenderValidExprsOnly(f *testing.F) {
	f.Add(`{"kind":"func","name":"abs","args":[{"kind":"column","name":"x"}]}`)
	f.Add(`{"kind":"const","type":"NUMBER","value":"1; DROP"}`)
	f.Fuzz(func(t *testing.T, in string) {
		var e *wire.Expr
		if json.Unmarshal([]byte(in), &e) != nil {
			return
		}
		s, err := sqlgen.Text(e)
		if err == nil && e.Validate() != nil {
			t.Fatalf("rendered an invalid expression: %s", s)
		}
	})
}
