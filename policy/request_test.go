package policy

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

func TestAuthorizeDecisions(t *testing.T) {
	e := engine(t)
	for _, c := range requestCases {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Authorize(context.Background(), c.input())
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			checkDecision(t, e, d, c.result, c.codes)
		})
	}
}

// actionKinds is the resource kind each action is sent with in the tests below.
var actionKinds = map[string]string{
	ActionWhoami:             ResourceSelf,
	ActionDatasetRegister:    ResourceDataset,
	ActionDatasetList:        ResourceDataset,
	ActionDatasetUsage:       ResourceDataset,
	ActionApplicationCreate:  ResourceApplication,
	ActionApplicationList:    ResourceApplication,
	ActionApplicationRead:    ResourceApplication,
	ActionApplicationApprove: ResourceApplication,
	ActionApplicationReject:  ResourceApplication,
	ActionGrantList:          ResourceGrant,
	ActionGrantRead:          ResourceGrant,
	ActionGrantBudget:        ResourceGrant,
	ActionGrantSuspend:       ResourceGrant,
	ActionGrantResume:        ResourceGrant,
	ActionGrantRevoke:        ResourceGrant,
	ActionGrantRedteam:       ResourceGrant,
	ActionJobSubmit:          ResourceGrant,
	ActionJobExplain:         ResourceGrant,
	ActionJobList:            ResourceJob,
	ActionJobRead:            ResourceJob,
	ActionJobResult:          ResourceJob,
	ActionReviewList:         ResourceReview,
	ActionReviewDecide:       ResourceReview,
	ActionAuditVerify:        ResourceAudit,
	ActionAuditJob:           ResourceAudit,
	ActionAuditReplay:        ResourceAudit,
	ActionAuditCheckpoint:    ResourceAudit,
	ActionAuditProof:         ResourceAudit,
	ActionAuditPubkey:        ResourceAudit,
}

// TestAuthorizeEveryActionEveryRole sends every action by every role on its own org's and on
// another org's resource. Each answer is allow or deny with the bundle's digest, a deny says
// why, and every action is allowed to someone (the Rego tests pin exactly whom).
func TestAuthorizeEveryActionEveryRole(t *testing.T) {
	e := engine(t)
	for _, action := range Actions() {
		kind, ok := actionKinds[action]
		if !ok {
			t.Fatalf("no resource kind for %s in the test", action)
		}
		allowed := 0
		for _, p := range []Principal{alice, pia, otto, rex, aud} {
			for _, owner := range []string{p.Org, "someone_else"} {
				res := Resource{Kind: kind, ID: "x", Org: owner, Provider: owner, Submitter: "bob"}
				d, err := e.Authorize(context.Background(), RequestInput{Principal: p, Action: action, Resource: res})
				if err != nil {
					t.Fatalf("%s by %s: %v", action, p.Role, err)
				}
				switch d.Result {
				case ResultAllow:
					allowed++
					checkDecision(t, e, d, ResultAllow, nil)
				case ResultDeny:
					if len(d.Reasons) == 0 {
						t.Errorf("%s by %s on %s's: deny without a reason", action, p.Role, owner)
					}
				default:
					t.Errorf("%s by %s on %s's: result %q", action, p.Role, owner, d.Result)
				}
			}
		}
		if allowed == 0 {
			t.Errorf("%s is allowed to no one", action)
		}
	}
}

// TestActionsMatchPolicy pins that Go and the default bundle know the same actions.
func TestActionsMatchPolicy(t *testing.T) {
	e := engine(t)
	b, err := e.snap.bundle(e.caps)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rego.New(
		rego.Query("data.cleanroom.api.actions"),
		rego.ParsedBundle(bundleName, b),
		rego.SetRegoVersion(ast.RegoV1),
	).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("eval: %v, %d results", err, len(rs))
	}
	var inPolicy []string
	for _, v := range rs[0].Expressions[0].Value.([]any) {
		inPolicy = append(inPolicy, v.(string))
	}
	inGo := slices.Clone(Actions())
	slices.Sort(inGo)
	slices.Sort(inPolicy)
	if !slices.Equal(inGo, inPolicy) {
		t.Errorf("Actions() = %q, policy knows %q", inGo, inPolicy)
	}
	if len(slices.Compact(slices.Clone(inGo))) != len(inGo) {
		t.Errorf("Actions() has duplicates: %q", inGo)
	}
}

func TestAuthorizeUndefinedDecisionDenies(t *testing.T) {
	for name, files := range map[string]map[string]string{
		// A bundle written before the request policy existed.
		"no_api_policy": {"access.rego": "package cleanroom.access\n\ndecision := {\"result\": \"allow\"}\n"},
		"decision_never_defined": {"api.rego": `package cleanroom.api

decision := {"result": "allow", "reasons": []} if input.action == "never"
`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for p, s := range files {
				writeFile(t, dir, p, s)
			}
			e := mustNew(t, WithBundleDir(dir))
			d, err := e.Authorize(context.Background(), requestCases[0].input())
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, e, d, ResultDeny, []string{ReasonDecisionUndefined})
		})
	}
}

func TestAuthorizeMalformedDecisionDenies(t *testing.T) {
	for name, decision := range map[string]string{
		"unknown_result":    `{"result": "maybe", "reasons": []}`,
		"reasons_not_list":  `{"result": "allow", "reasons": "fine"}`,
		"not_object":        `"allow"`,
		"review":            `{"result": "review", "reasons": ["x: y"]}`,
		"bad_reviewers":     `{"result": "allow", "reasons": [], "reviewers": 0}`,
		"result_not_string": `{"result": ["allow"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "api.rego", "package cleanroom.api\n\ndecision := "+decision+"\n")
			e := mustNew(t, WithBundleDir(dir))
			d, err := e.Authorize(context.Background(), requestCases[0].input())
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, e, d, ResultDeny, []string{ReasonDecisionMalformed})
		})
	}
}

func TestAuthorizeEvalErrorDenies(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "api.rego", `package cleanroom.api

deny contains "bad_number: not a number" if to_number(input.principal.name) > 0

decision := {"result": "deny", "reasons": sort(deny)} if count(deny) > 0
else := {"result": "allow", "reasons": []}
`)
	e := mustNew(t, WithBundleDir(dir))
	d, err := e.Authorize(context.Background(), requestCases[0].input()) // "rex" is not a number
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != errcode.PolicyEvalFailed {
		t.Fatalf("err = %v, want an *Error with code %s", err, errcode.PolicyEvalFailed)
	}
	checkDecision(t, e, d, ResultDeny, []string{ReasonEvalFailed})
}

func TestAuthorizeCanceledContextDenies(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := engine(t)
	in := requestCases[0].input()
	if d, err := e.Authorize(context.Background(), in); err != nil || d.Result != ResultAllow {
		t.Fatalf("the request is not allowed to begin with: %+v, %v", d, err)
	}
	d, err := e.Authorize(ctx, in)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != errcode.PolicyEvalFailed || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want an *Error with code %s wrapping context.Canceled", err, errcode.PolicyEvalFailed)
	}
	checkDecision(t, e, d, ResultDeny, []string{ReasonEvalFailed})
}

func BenchmarkAuthorize(b *testing.B) {
	e := engine(b)
	ctx := context.Background()
	inputs := make([]RequestInput, len(requestCases))
	for i, c := range requestCases {
		inputs[i] = c.input()
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Authorize(ctx, inputs[i%len(inputs)]); err != nil {
			b.Fatal(err)
		}
	}
}
