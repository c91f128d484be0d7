package policy

import "context"

// RequestInput is the input of data.cleanroom.api.decision: who asks to do what to which resource.
type RequestInput struct {
	Principal Principal `json:"principal"`
	Action    string    `json:"action"` // one of the Action… constants
	Resource  Resource  `json:"resource"`
}

// Resource is what a request acts on. Fields not relevant to the action are empty.
type Resource struct {
	Kind      string   `json:"kind"` // one of the Resource… constants
	ID        string   `json:"id,omitempty"`
	Org       string   `json:"org,omitempty"`       // the applicant org owning an application/grant/job
	Provider  string   `json:"provider,omitempty"`  // a dataset's provider org
	Submitter string   `json:"submitter,omitempty"` // the principal name that submitted a job
	Reviewers []string `json:"reviewers,omitempty"` // principals who already reviewed a held job
}

// Resource kinds. Each action acts on one kind (see Actions); review.decide and audit.job
// also accept ResourceJob.
const (
	ResourceSelf        = "self"
	ResourceDataset     = "dataset"
	ResourceApplication = "application"
	ResourceGrant       = "grant"
	ResourceJob         = "job" // job.submit acts on the grant, not on a job
	ResourceReview      = "review"
	ResourceAudit       = "audit"
)

// Actions of API requests. The comment names the resource kind each acts on.
const (
	ActionWhoami             = "whoami"              // self
	ActionDatasetRegister    = "dataset.register"    // dataset (Provider: the registering org)
	ActionDatasetList        = "dataset.list"        // dataset
	ActionDatasetUsage       = "dataset.usage"       // dataset
	ActionApplicationCreate  = "application.create"  // application (Org: the applicant org)
	ActionApplicationList    = "application.list"    // application
	ActionApplicationRead    = "application.read"    // application
	ActionApplicationApprove = "application.approve" // application
	ActionApplicationReject  = "application.reject"  // application
	ActionGrantList          = "grant.list"          // grant
	ActionGrantRead          = "grant.read"          // grant
	ActionGrantBudget        = "grant.budget"        // grant
	ActionGrantSuspend       = "grant.suspend"       // grant
	ActionGrantResume        = "grant.resume"        // grant
	ActionGrantRevoke        = "grant.revoke"        // grant
	ActionGrantRedteam       = "grant.redteam"       // grant: record a red-team report on it
	ActionJobSubmit          = "job.submit"          // grant: the one the job runs under
	ActionJobExplain         = "job.explain"         // grant: a dry run of a job under it (not a job)
	ActionJobList            = "job.list"            // job
	ActionJobRead            = "job.read"            // job
	ActionJobResult          = "job.result"          // job
	ActionReviewList         = "review.list"         // review
	ActionReviewDecide       = "review.decide"       // review or job (Org, Submitter, Reviewers required)
	ActionAuditVerify        = "audit.verify"        // audit
	ActionAuditJob           = "audit.job"           // audit or job
	ActionAuditReplay        = "audit.replay"        // audit or job
	ActionAuditCheckpoint    = "audit.checkpoint"    // audit
	ActionAuditProof         = "audit.proof"         // audit
	ActionAuditPubkey        = "audit.pubkey"        // audit
)

// Actions returns every API action, in a fixed order.
func Actions() []string {
	return []string{
		ActionWhoami,
		ActionDatasetRegister, ActionDatasetList, ActionDatasetUsage,
		ActionApplicationCreate, ActionApplicationList, ActionApplicationRead, ActionApplicationApprove, ActionApplicationReject,
		ActionGrantList, ActionGrantRead, ActionGrantBudget, ActionGrantSuspend, ActionGrantResume, ActionGrantRevoke, ActionGrantRedteam,
		ActionJobSubmit, ActionJobExplain, ActionJobList, ActionJobRead, ActionJobResult,
		ActionReviewList, ActionReviewDecide,
		ActionAuditVerify, ActionAuditJob, ActionAuditReplay, ActionAuditCheckpoint, ActionAuditProof, ActionAuditPubkey,
	}
}

// Authorize decides whether in.Principal may do in.Action on in.Resource. The answer is allow
// or deny, never review: a bundle that answers review is denied as malformed. The policy is an
// allow-list, so a request no rule permits is a deny. A non-nil error (an *Error with
// errcode.PolicyEvalFailed) comes with a deny Decision.
func (e *Engine) Authorize(ctx context.Context, in RequestInput) (Decision, error) {
	d, err := e.eval(ctx, "authorize request", e.api, in)
	if err != nil {
		return d, err
	}
	if d.Result == ResultReview {
		return e.deny(ReasonDecisionMalformed + ": a request is allowed or denied, never held for review"), nil
	}
	return d, nil
}
