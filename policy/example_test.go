package policy_test

import (
	"context"
	"fmt"

	"github.com/c1b99f93/cleanroom/policy"
)

func ExampleEngine_Access() {
	ctx := context.Background()
	e, err := policy.New(ctx) // the embedded default bundle
	if err != nil {
		panic(err)
	}
	visits := policy.DatasetRef{
		Name: "visits", Provider: "medical_insurance_bureau", Grade: "L2",
		Domain: "platform", PrivacyUnit: "person_id",
	}
	in := policy.AccessInput{
		Principal: policy.Principal{Name: "alice", Role: "applicant", Org: "insurer_a"},
		Action:    policy.ActionSubmitJob,
		Datasets:  []policy.DatasetRef{visits},
		Columns: []policy.ColumnUse{
			{Dataset: "visits", Column: "district", Tags: []string{"quasi_identifier"}, Usage: policy.UsageGroupKey},
			{Dataset: "visits", Column: "person_id", Tags: []string{"identifier"}, Usage: policy.UsageCountDistinctUnit, PrivacyUnit: true},
		},
		Job: policy.JobParams{Kind: "sql", Epsilon: 0.5, Delta: 1e-6, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1},
	}
	d, err := e.Access(ctx, in)
	if err != nil {
		panic(err)
	}
	fmt.Println(d.Result, d.Allowed())

	// Grouping by the ID number itself would single people out.
	in.Columns[1].Usage = policy.UsageGroupKey
	d, _ = e.Access(ctx, in)
	fmt.Println(d.Result, d.Reasons)
	// Output:
	// allow true
	// deny [identifier_in_group_key: column visits.person_id is tagged identifier]
}

func ExampleEngine_Authorize() {
	ctx := context.Background()
	e, err := policy.New(ctx)
	if err != nil {
		panic(err)
	}
	alice := policy.Principal{Name: "alice", Role: "applicant", Org: "insurer_a"}
	grant := policy.Resource{Kind: policy.ResourceGrant, ID: "g1", Org: "insurer_a"}
	d, err := e.Authorize(ctx, policy.RequestInput{Principal: alice, Action: policy.ActionGrantBudget, Resource: grant})
	if err != nil {
		panic(err)
	}
	fmt.Println(d.Result)

	// Another org's grant is not hers to read.
	grant.Org = "insurer_b"
	d, _ = e.Authorize(ctx, policy.RequestInput{Principal: alice, Action: policy.ActionGrantBudget, Resource: grant})
	fmt.Println(d.Result, d.Reasons)

	// A reviewer may not decide on a job of their own org.
	rita := policy.Principal{Name: "rita", Role: "reviewer", Org: "insurer_b"}
	held := policy.Resource{Kind: policy.ResourceReview, ID: "j2", Org: "insurer_b", Submitter: "bob"}
	d, _ = e.Authorize(ctx, policy.RequestInput{Principal: rita, Action: policy.ActionReviewDecide, Resource: held})
	fmt.Println(d.Result, d.Codes())
	// Output:
	// allow
	// deny [other_org: role applicant may do grant.budget only on its own org's grant]
	// deny [separation_of_duties]
}
