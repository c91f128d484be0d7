package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// TestWorkerAnswersClaimsAgainstEachReduction runs verification through the worker process:
// per reduction (value, any, count, max with bands), claims that are true, false, about an
// absent subject, about a subject whose rows disagree, and written with spaces and case,
// decrypt with the applicant's key to exactly the matches computed here from the data.
func TestWorkerAnswersClaimsAgainstEachReduction(t *testing.T) {
	ctx := context.Background()
	c := startWorker(t, nil)
	id := func(i int) string { return fmt.Sprintf("53010219800101%04d", i) }
	// Person i: band "b<i%3>" on every row (person 7's rows disagree), i%4 rows, inpatient on
	// the last row when i is odd, cost 50·i on its first row.
	lines := []string{"person_id,band,inpatient,cost"}
	for i := range 40 {
		for r := range 1 + i%4 {
			band := fmt.Sprintf("b%d", i%3)
			if i == 7 && r == 1 {
				band = "other"
			}
			inpatient := i%2 == 1 && r == i%4
			lines = append(lines, fmt.Sprintf("%s,%s,%t,%d", id(i), band, inpatient, 50*i+r))
		}
	}
	path := filepath.Join(t.TempDir(), "people.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := &catalog.Spec{Name: "people", Provider: "p", Grade: catalog.GradeL2, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceCSV, Path: path}, Budget: catalog.Budget{Epsilon: 1},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"band":      {Tags: []catalog.Tag{catalog.TagSensitive}},
			"inpatient": {Tags: []catalog.Tag{catalog.TagSensitive}},
			"cost":      {Tags: []catalog.Tag{catalog.TagSensitive}},
		}}
	snap, err := register(ctx, t, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := verify.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	type claim struct {
		subject, value string
		want           bool
	}
	for _, tc := range []struct {
		name   string
		attr   catalog.VerifyAttribute
		claims []claim
	}{
		{"value", catalog.VerifyAttribute{Column: "band"}, []claim{
			{id(4), "b1", true}, {id(4), "b2", false}, {" " + strings.ToLower(id(5)) + " ", " b2 ", true},
			{id(7), "b1", false}, {id(7), "other", false}, // rows disagree: no value
			{id(99), "b0", false}, // absent
		}},
		{"any", catalog.VerifyAttribute{Column: "inpatient", Reduce: catalog.ReduceAny}, []claim{
			{id(3), "true", true}, {id(3), "false", false}, {id(4), "false", true}, {id(4), "true", false},
			{id(98), "false", false},
		}},
		{"count", catalog.VerifyAttribute{Column: "cost", Reduce: catalog.ReduceCount}, []claim{
			{id(6), "3", true}, {id(6), "03", true}, {id(6), "2", false}, {id(8), "1", true},
		}},
		{"max in bands", catalog.VerifyAttribute{Column: "cost", Reduce: catalog.ReduceMax, Bands: []float64{100, 1000}}, []claim{
			{id(1), "0", true}, {id(2), "1", true}, {id(2), "0", false}, {id(30), "2", true}, {id(30), "1", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var subjects []string
			var values []uint64
			for _, cl := range tc.claims {
				subjects = append(subjects, cl.subject)
				values = append(values, verify.Encode(cl.value))
			}
			cts, err := keys.EncryptClaims(values)
			if err != nil {
				t.Fatal(err)
			}
			answers, err := c.AnswerClaims(ctx, &wire.Claims{Job: "job-claims", Snapshot: snap.Digest, PrivacyUnit: "person_id",
				Attribute: tc.attr, Subjects: subjects, PublicKey: keys.PublicKey(), Ciphertexts: cts, TimeoutMS: 30_000})
			if err != nil {
				t.Fatal(err)
			}
			got, err := keys.DecryptMatches(answers, len(subjects))
			if err != nil {
				t.Fatal(err)
			}
			for i, cl := range tc.claims {
				if got[i] != cl.want {
					t.Errorf("claim %d (%q of %s): match %v, want %v", i, cl.value, cl.subject, got[i], cl.want)
				}
			}
		})
	}

	// A count that does not fit the ciphertexts, and bytes that are no ciphertext, are refused.
	for name, cl := range map[string]*wire.Claims{
		"no ciphertext": {Snapshot: snap.Digest, PrivacyUnit: "person_id", Attribute: catalog.VerifyAttribute{Column: "band"},
			Subjects: []string{id(1)}, PublicKey: keys.PublicKey()},
		"garbage": {Snapshot: snap.Digest, PrivacyUnit: "person_id", Attribute: catalog.VerifyAttribute{Column: "band"},
			Subjects: []string{id(1)}, PublicKey: keys.PublicKey(), Ciphertexts: [][]byte{[]byte("not a ciphertext")}},
	} {
		if _, err := c.AnswerClaims(ctx, cl); errcode.Of(err) != errcode.MalformedCiphertext {
			t.Errorf("%s: %v, want %s", name, err, errcode.MalformedCiphertext)
		}
	}
}
