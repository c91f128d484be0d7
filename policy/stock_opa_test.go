package policy

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/tester"
)

// TestBundleTestsPassUnderStockOPATester runs the default bundle's directory through OPA's
// tester.Run — what the stock `opa test policy/bundle` command does, with its default loader
// and compiler rather than the engine's strict settings — and expects the same tests as
// RunTests, all passing.
func TestBundleTestsPassUnderStockOPATester(t *testing.T) {
	ctx := context.Background()
	stock, err := tester.Run(ctx, "bundle")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := e.RunTests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stock) == 0 || len(stock) != len(ours) {
		t.Fatalf("stock tester ran %d tests, RunTests %d", len(stock), len(ours))
	}
	for _, r := range stock {
		if !r.Pass() {
			t.Errorf("%s.%s fails under the stock tester: %v", r.Package, r.Name, r.Error)
		}
	}
}
