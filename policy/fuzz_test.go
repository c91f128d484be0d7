package policy

import (
	"context"
	"slices"
	"testing"
)

// FuzzEgress feeds fuzzer strings and numbers into EgressInput and checks that the engine
// neither panics nor answers anything but allow, review or deny (with the bundle's digest),
// that an answer other than allow always says why, and that only a review asks for
// reviewers (two for an L3 dataset). Seeds come from egressCases.
func FuzzEgress(f *testing.F) {
	for _, c := range egressCases {
		in := c.input()
		col := in.Output.Columns[0]
		src := ColumnUse{}
		if len(col.DerivedFrom) > 0 {
			src = col.DerivedFrom[0]
		}
		tag := ""
		if len(src.Tags) > 0 {
			tag = src.Tags[0]
		}
		mech := ""
		if len(in.Output.Mechanisms) > 0 {
			mech = in.Output.Mechanisms[0]
		}
		fd := Finding{}
		if len(in.Findings) > 0 {
			fd = in.Findings[len(in.Findings)-1]
		}
		f.Add(in.Datasets[0].Grade, in.Datasets[0].PrivacyUnit, col.Kind, col.Aggregate, src.Column, tag, src.PrivacyUnit,
			mech, fd.Code, fd.Severity, in.Output.Rows, in.Output.Cells, in.Job.Epsilon, in.Job.Delta)
	}
	e := engine(f)
	f.Fuzz(func(t *testing.T, grade, unit, kind, aggregate, column, tag string, isUnit bool,
		mechanism, findingCode, severity string, rows, cells int, epsilon, delta float64) {
		in := goodEgress()
		in.Datasets = []DatasetRef{{Name: "visits", Provider: "p", Grade: grade, Domain: "platform", PrivacyUnit: unit}}
		in.Job.Epsilon, in.Job.Delta = epsilon, delta
		in.Output.Columns = append(in.Output.Columns, OutputColumn{
			Name: column, Kind: kind, Aggregate: aggregate,
			DerivedFrom: []ColumnUse{{Dataset: "visits", Column: column, Tags: []string{tag}, Usage: UsageAggregate, PrivacyUnit: isUnit}},
		})
		in.Output.Rows, in.Output.Cells = rows, cells
		in.Output.Mechanisms = append(in.Output.Mechanisms, mechanism)
		in.Findings = append(in.Findings, Finding{Code: findingCode, Severity: severity, Message: column})

		d, err := e.Egress(context.Background(), in)
		if err != nil {
			// Errors are allowed only with a deny.
			if d.Result != ResultDeny {
				t.Fatalf("error %v with result %q", err, d.Result)
			}
		}
		switch d.Result {
		case ResultAllow, ResultReview, ResultDeny:
		default:
			t.Fatalf("result %q", d.Result)
		}
		if d.BundleDigest != e.Digest() {
			t.Fatalf("digest %q", d.BundleDigest)
		}
		if d.Result != ResultAllow && len(d.Reasons) == 0 {
			t.Fatalf("%s without a reason", d.Result)
		}
		if d.Result == ResultReview && (d.Reviewers < 1 || d.Reviewers > MaxReviewers) ||
			d.Result != ResultReview && d.Reviewers != 0 {
			t.Fatalf("%s needs %d reviewers", d.Result, d.Reviewers)
		}
		if grade == "L3" && d.Result == ResultReview && d.Reviewers != 2 {
			t.Fatalf("an L3 output held for %d reviewers", d.Reviewers)
		}
	})
}

// FuzzAuthorize feeds fuzzer strings into RequestInput and checks that the engine answers
// only allow or deny (with the bundle's digest), that a deny always says why, and that an
// allow never breaks the policy's invariants: a known action and role, a whole principal, and
// for review.decide a reviewer independent of the job. Seeds come from requestCases.
func FuzzAuthorize(f *testing.F) {
	for _, c := range requestCases {
		in := c.input()
		reviewer := ""
		if len(in.Resource.Reviewers) > 0 {
			reviewer = in.Resource.Reviewers[0]
		}
		f.Add(in.Principal.Name, in.Principal.Role, in.Principal.Org, in.Action,
			in.Resource.Kind, in.Resource.Org, in.Resource.Provider, in.Resource.Submitter, reviewer)
	}
	e := engine(f)
	roles := []string{"provider", "operator", "applicant", "reviewer", "auditor"}
	f.Fuzz(func(t *testing.T, name, role, org, action, kind, resOrg, provider, submitter, reviewer string) {
		in := RequestInput{
			Principal: Principal{Name: name, Role: role, Org: org},
			Action:    action,
			Resource:  Resource{Kind: kind, ID: "x", Org: resOrg, Provider: provider, Submitter: submitter},
		}
		if reviewer != "" {
			in.Resource.Reviewers = []string{reviewer}
		}
		d, err := e.Authorize(context.Background(), in)
		if err != nil && d.Result != ResultDeny {
			t.Fatalf("error %v with result %q", err, d.Result)
		}
		if d.BundleDigest != e.Digest() {
			t.Fatalf("digest %q", d.BundleDigest)
		}
		switch d.Result {
		case ResultDeny:
			if len(d.Reasons) == 0 {
				t.Fatal("deny without a reason")
			}
			return
		case ResultAllow:
		default:
			t.Fatalf("result %q", d.Result)
		}
		if !slices.Contains(Actions(), action) || !slices.Contains(roles, role) || name == "" || org == "" {
			t.Fatalf("allowed %+v", in)
		}
		if action == ActionReviewDecide && (name == submitter || org == resOrg || name == reviewer || submitter == "" || resOrg == "") {
			t.Fatalf("review.decide allowed without separation of duties: %+v", in)
		}
	})
}
