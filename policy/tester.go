package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test (a test_ rule in a *_test.rego file).
type TestResult struct {
	Name string `json:"name"` // e.g. "data.cleanroom.access_test.test_l4_dataset_denied"
	Pass bool   `json:"pass"`
	Fail string `json:"fail,omitempty"` // why it did not pass; empty when Pass
}

// testTimeout bounds each Rego test.
const testTimeout = 10 * time.Second

// RunTests runs the bundle's Rego tests with OPA's tester, compiled as the engine compiles
// the bundle (Rego v1, strict, deterministic built-ins). Results are sorted by name. A
// failing test is a result, not an error; the error is for a bundle whose tests cannot run.
func (e *Engine) RunTests(ctx context.Context) ([]TestResult, error) {
	b, err := e.snap.bundle(e.caps)
	if err != nil {
		return nil, &Error{Code: errcode.PolicyTestsFailed, Op: "read bundle", Err: err}
	}
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false))
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, &Error{Code: errcode.PolicyTestsFailed, Op: "open store", Err: err}
	}
	defer store.Abort(ctx, txn)

	compiler := ast.NewCompiler().
		WithCapabilities(e.caps).
		WithStrict(true).
		WithDefaultRegoVersion(ast.RegoV1)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetBundles(map[string]*bundle.Bundle{bundleName: b}).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		SetTimeout(testTimeout).
		RunTests(ctx, txn)
	if err != nil {
		return nil, &Error{Code: errcode.PolicyTestsFailed, Op: "compile tests", Err: err}
	}
	var out []TestResult
	for r := range ch {
		out = append(out, testResult(r))
	}
	if err := ctx.Err(); err != nil {
		return out, &Error{Code: errcode.PolicyTestsFailed, Op: "run tests", Err: err}
	}
	slices.SortFunc(out, func(a, b TestResult) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func testResult(r *tester.Result) TestResult {
	tr := TestResult{Name: r.Package + "." + r.Name, Pass: r.Pass()}
	switch {
	case r.Error != nil:
		tr.Fail = "error: " + r.Error.Error()
	case r.Skip:
		tr.Fail = "skipped"
	case r.Fail:
		var b strings.Builder
		b.WriteString("fail")
		if r.FailedAt != nil {
			if r.FailedAt.Location != nil {
				fmt.Fprintf(&b, " at %s:%d", r.FailedAt.Location.File, r.FailedAt.Location.Row)
			}
			fmt.Fprintf(&b, ": %s", r.FailedAt)
		}
		tr.Fail = b.String()
	}
	return tr
}
