package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/server/api"
)

// TestReleaseReceiptsVerifyOfflineWithThePublicKeyOnly: a released result and its receipt
// check out with the platform's public key; a changed number, another platform's key, a
// forged signature or another job's result do not.
func TestReleaseReceiptsVerifyOfflineWithThePublicKeyOnly(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	register(t, e, loadDataset(t, "medical_visits"))
	register(t, e, loadDataset(t, "residents"))
	grant(t, e, "g", 10)
	job := func(sql string) *engine.Outcome {
		t.Helper()
		out, err := e.Run(ctx, engine.Job{Principal: applicant, Grant: "g", SQL: sql, Options: plan.Options{Epsilon: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := job("SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district")
	result, err := json.Marshal(out.Result)
	if err != nil {
		t.Fatal(err)
	}
	body, err := engine.VerifyReceipt(out.Receipt, result, e.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if body.Job != out.Result.Job || body.Grant != "g" || body.LogIndex != out.Result.LogIndex || body.Spent.Epsilon != 1 || len(body.Mechanisms) != 1 {
		t.Fatalf("receipt states %+v", body)
	}

	changed := *out.Result
	changed.Rows = append([][]api.Cell(nil), out.Result.Rows...)
	cell := *changed.Rows[0][1].DP
	cell.Value++
	changed.Rows[0] = []api.Cell{changed.Rows[0][0], {DP: &cell}}
	forgedResult, _ := json.Marshal(&changed)
	if _, err := engine.VerifyReceipt(out.Receipt, forgedResult, e.PublicKey()); err == nil {
		t.Fatal("a result with a changed value verified")
	}
	other := openEngine(t)
	if _, err := engine.VerifyReceipt(out.Receipt, result, other.PublicKey()); err == nil {
		t.Fatal("a receipt verified under another platform's key")
	}
	forged := bytes.Clone(out.Receipt)
	forged[len(forged)-5] ^= 1
	if _, err := engine.VerifyReceipt(forged, result, e.PublicKey()); err == nil {
		t.Fatal("a receipt with a forged signature verified")
	}

	// A held output gets its receipt when it is released, naming its reviewers.
	held := job("SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender")
	if held.Held == nil || held.Receipt != nil {
		t.Fatalf("a held output came with a receipt (held=%v)", held.Held != nil)
	}
	receipt, err := e.ReleaseHeld(ctx, held.Result.Job, held.Held, held.Result, []string{"rev-1", "rev-2"})
	if err != nil {
		t.Fatal(err)
	}
	heldResult, _ := json.Marshal(held.Result)
	hb, err := engine.VerifyReceipt(receipt, heldResult, e.PublicKey())
	if err != nil || len(hb.Reviewers) != 2 {
		t.Fatalf("the held output's receipt: %+v, %v", hb, err)
	}
	if _, err := engine.VerifyReceipt(receipt, result, e.PublicKey()); err == nil {
		t.Fatal("a receipt verified another job's result")
	}
}
