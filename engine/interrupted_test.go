package engine

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/provenance"
)

// TestReconcileInterruptedRecordsWhatTheLedgerReserved: a process killed after the ledger
// reserved for a job and before budget_reserved was appended leaves a reservation the log does
// not show (the crash harness found one). At restart the record is appended from the ledger,
// marked reconciled, once; a job the ledger never reserved for gets nothing.
func TestReconcileInterruptedRecordsWhatTheLedgerReserved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.OpenGrant(ctx, "g1", ledger.Budget{Epsilon: 10, Delta: 1e-5}); err != nil {
		t.Fatal(err)
	}
	// The crash window: the ledger reserved, nothing recorded.
	if err := e.ledger.Reserve(ctx, "job-cut", []string{GrantAccount("g1")}, ledger.Budget{Epsilon: 0.5, Delta: 1e-8}, nil); err != nil {
		t.Fatal(err)
	}
	reserved := func(job string) []*provenance.BudgetReserved {
		t.Helper()
		ents, err := provenance.ReadJob(filepath.Join(dir, "provenance.log"), job)
		if err != nil {
			t.Fatal(err)
		}
		var out []*provenance.BudgetReserved
		for _, ent := range ents {
			var rec struct {
				Type string
				Data provenance.BudgetReserved
			}
			if err := json.Unmarshal(ent.Record, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Type == provenance.TypeBudgetReserved {
				out = append(out, &rec.Data)
			}
		}
		return out
	}
	for range 2 { // a second restart finds the record and adds none
		if err := e.ReconcileInterrupted(ctx, "job-cut"); err != nil {
			t.Fatal(err)
		}
	}
	got := reserved("job-cut")
	if len(got) != 1 || !got[0].Reconciled || len(got[0].Accounts) != 1 || got[0].Accounts[0] != GrantAccount("g1") {
		t.Fatalf("budget_reserved records %+v; want one, reconciled, on the grant's account", got)
	}
	var cost struct{ Epsilon, Delta float64 }
	if err := got[0].Cost.Decode(&cost); err != nil || cost.Epsilon != 0.5 || cost.Delta != 1e-8 {
		t.Errorf("reconciled cost %+v (%v); want the ledger's epsilon 0.5, delta 1e-8", cost, err)
	}
	if err := e.ReconcileInterrupted(ctx, "job-never-reserved"); err != nil {
		t.Fatal(err)
	}
	if got := reserved("job-never-reserved"); len(got) != 0 {
		t.Errorf("a job the ledger never reserved for got %d budget_reserved records", len(got))
	}
}
