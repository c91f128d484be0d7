package policy

import "fmt"

// Error codes. They are stable; callers branch on them, tests assert them.
const (
	// CodeBundleInvalid: the bundle could not be read, parsed or compiled.
	CodeBundleInvalid = "policy_bundle_invalid"
	// CodeEvalFailed: evaluating a decision failed (the returned Decision is a deny).
	CodeEvalFailed = "policy_eval_failed"
	// CodeTestsFailed: the bundle's Rego tests could not be run (failing tests are results,
	// not errors).
	CodeTestsFailed = "policy_tests_failed"
)

// Error is a policy error with a stable code. Err is the cause from OPA or the file system;
// its text may quote input values, so at the API boundary show Code only.
type Error struct {
	Code string
	Op   string // what was being done, e.g. "load bundle", "evaluate access"
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("policy: %s: %s", e.Op, e.Code)
	}
	return fmt.Sprintf("policy: %s: %s: %v", e.Op, e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
