package provenance

import "time"

// The record types the platform writes, one Go type each, and their registration. This list is
// the provenance format: docs/provenance.md is checked against it (TestDocNamesEveryEvent), each
// type has a golden JSON file (testdata/events, TestEventGoldens), and the compatibility logs
// written before types existed decode through it (TestCompatibilityLogsReadThroughTheRegistry).
//
// Field names and encodings of a registered version never change. To change an event, add a
// new Go type with EventVersion 2 (the writer then writes "version":2) and keep the old one
// registered so old logs stay readable.

// Record types, by stage.
const (
	TypeDatasetRegistered = "dataset_registered"
	// TypeDatasetRegistrationRefused: a registration refused for where its source lies (outside
	// the provider's import root, through a symbolic link, no root) or for data already
	// registered (with the snapshot digest and the dataset it is registered as).
	TypeDatasetRegistrationRefused = "dataset_registration_refused"
	TypeRawSetRebuilt              = "rawset_rebuilt"
	TypePolicyLoaded               = "policy_loaded"
	TypeWorkerStarted              = "worker_started"
	TypeJobSubmitted               = "job_submitted"
	TypeGate                       = "gate"
	TypePlan                       = "plan"
	TypePolicyAccess               = "policy_access"
	TypeBudgetReserved             = "budget_reserved"
	TypeExecution                  = "execution"
	TypeMechanism                  = "mechanism"
	TypeReviewer                   = "reviewer"
	TypePolicyEgress               = "policy_egress"
	TypeHeld                       = "held"
	TypeOutputDecision             = "output_decision"
	TypeDecisionRecalled           = "decision_recalled"
	TypeAnsweredFromRelease        = "answered_from_release"
	TypeReleaseNotStored           = "release_not_stored"
	TypeReview                     = "review"
	TypeWithheld                   = "withheld"
	TypeBudgetDebited              = "budget_debited"
	TypeBudgetRefunded             = "budget_refunded"
	TypeRelease                    = "release"
	TypeJobFailed                  = "job_failed"
	TypeJobRefused                 = "job_refused"
	TypeJobInterrupted             = "job_interrupted"
	TypeReplay                     = "replay"
	// TypeGrantOpened: a grant's budget account opened without an allocation (engine-level
	// grants); TypeBudgetAllocated: a grant's budget carved out of its datasets' lifetime
	// budgets at approval; TypeBudgetReturned: a grant's allocations closed (revoked, expired,
	// cancelled), with what went back to the datasets.
	TypeGrantOpened          = "grant_opened"
	TypeBudgetAllocated      = "budget_allocated"
	TypeBudgetReturned       = "budget_returned"
	TypeApplicationSubmitted = "application_submitted"
	TypeApplicationApproved  = "application_approved"
	TypeApplicationRejected  = "application_rejected"
	TypeGrantState           = "grant_state"
	TypeRedteamReport        = "redteam_report"
	TypeRequestDenied        = "request_denied"
	// TypeRequestsDenied: a counted summary of one principal's requests the authorization
	// policy denied (and those then refused as rate_limited) within one window; the server
	// writes it instead of one request_denied per request, at the window's end and at shutdown.
	TypeRequestsDenied = "requests_denied"
	// TypeRequestRefused: a job request the gate refused when it was submitted; it never
	// became a job.
	TypeRequestRefused = "request_refused"
	// TypeGovernanceIntent: a governance decision (an application approved or rejected, a
	// grant suspended, resumed, revoked or expired, a held output approved or rejected) about
	// to take effect, with the id that keys its effects; TypeGovernanceOutcome: that decision
	// completed or rolled back. Every intent gets one outcome; the server's start-up writes the
	// outcomes a crash left unwritten.
	TypeGovernanceIntent  = "governance_intent"
	TypeGovernanceOutcome = "governance_outcome"
	// TypeLogRecovered is written by Open after it cut away a torn final line.
	TypeLogRecovered = "log_recovered"
	// TypeBoundsChosen: a job's contribution bounds chosen under DP from noisy histograms of
	// contributions per unit (the choose_bounds stage).
	TypeBoundsChosen = "bounds_chosen"
	// TypeChecksReserved: a verification's checks counted against the limits per fact and per
	// grant day (keyed digests, never subjects); TypeClaimsAnswered: the worker answered its
	// encrypted claims (digests of what went in and came out, never a value).
	TypeChecksReserved = "checks_reserved"
	TypeClaimsAnswered = "claims_answered"
	// Federated aggregation across data domains (kind federated_sql, he/collective): the
	// collective key made for a set of domains (TypeCollectiveKey), then per job what was
	// planned, and the digests of the messages of each round — never a value.
	TypeCollectiveKey      = "collective_key"
	TypeFederatedPlan      = "federated_plan"
	TypeFederatedInputs    = "federated_inputs"
	TypeFederatedSum       = "federated_sum"
	TypeFederatedKeySwitch = "federated_key_switch"
	TypeFederatedOpened    = "federated_opened"
	// Model jobs (kind model, dp/model): what the model was planned as (TypeModelPlan),
	// then what the worker's passes computed — a keyed digest of their pre-noise states, never
	// a state (TypeModelTrained).
	TypeModelPlan    = "model_plan"
	TypeModelTrained = "model_trained"
	// Custom model jobs (kind wasm, sandbox/wasm): what the job was planned as — the module by
	// digest, never its bytes (TypeWasmPlan) — then what the worker's run computed: a keyed
	// digest of the pre-noise block average, never the average (TypeWasmRan).
	TypeWasmPlan = "wasm_plan"
	TypeWasmRan  = "wasm_ran"
	// Cut-and-choose against a malicious applicant (docs/he.md): a commitment with the
	// challenge drawn after it (TypeVerifyCommitted), its accepted opening (TypeVerifyOpened),
	// and the grant's verification suspended with the evidence (TypeVerifySuspended).
	TypeVerifyCommitted = "verify_committed"
	TypeVerifyOpened    = "verify_opened"
	TypeVerifySuspended = "verify_suspension"
)

func init() {
	register(
		func() Event { return &DatasetRegistered{} },
		func() Event { return &DatasetRegistrationRefused{} },
		func() Event { return &RawSetRebuilt{} },
		func() Event { return &PolicyLoaded{} },
		func() Event { return &WorkerStarted{} },
		func() Event { return &JobSubmitted{} },
		func() Event { return &Gate{} },
		func() Event { return &Plan{} },
		func() Event { return &PolicyAccess{} },
		func() Event { return &BudgetReserved{} },
		func() Event { return &Execution{} },
		func() Event { return &Mechanism{} },
		func() Event { return &Reviewer{} },
		func() Event { return &PolicyEgress{} },
		func() Event { return &Held{} },
		func() Event { return &OutputDecision{} },
		func() Event { return &DecisionRecalled{} },
		func() Event { return &AnsweredFromRelease{} },
		func() Event { return &ReleaseNotStored{} },
		func() Event { return &Review{} },
		func() Event { return &Withheld{} },
		func() Event { return &BudgetDebited{} },
		func() Event { return &BudgetRefunded{} },
		func() Event { return &Release{} },
		func() Event { return &JobFailed{} },
		func() Event { return &JobRefused{} },
		func() Event { return &JobInterrupted{} },
		func() Event { return &Replay{} },
		func() Event { return &GrantOpened{} },
		func() Event { return &BudgetAllocated{} },
		func() Event { return &BudgetReturned{} },
		func() Event { return &ApplicationSubmitted{} },
		func() Event { return &ApplicationApproved{} },
		func() Event { return &ApplicationRejected{} },
		func() Event { return &GrantState{} },
		func() Event { return &RedteamReport{} },
		func() Event { return &RequestDenied{} },
		func() Event { return &RequestsDenied{} },
		func() Event { return &RequestRefused{} },
		func() Event { return &GovernanceIntent{} },
		func() Event { return &GovernanceOutcome{} },
		func() Event { return &LogRecovered{} },
		func() Event { return &BoundsChosen{} },
		func() Event { return &ChecksReserved{} },
		func() Event { return &ClaimsAnswered{} },
		func() Event { return &CollectiveKey{} },
		func() Event { return &FederatedPlan{} },
		func() Event { return &FederatedInputs{} },
		func() Event { return &FederatedSum{} },
		func() Event { return &FederatedKeySwitch{} },
		func() Event { return &FederatedOpened{} },
		func() Event { return &ModelPlan{} },
		func() Event { return &ModelTrained{} },
		func() Event { return &WasmPlan{} },
		func() Event { return &WasmRan{} },
		func() Event { return &VerifyCommitted{} },
		func() Event { return &VerifyOpened{} },
		func() Event { return &VerifySuspended{} },
	)
}

// Principal names who acted: a platform user (policy.Principal's fields).
type Principal struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Org  string `json:"org"`
}

// DatasetRegistered: a dataset's snapshot was taken and the dataset registered.
type DatasetRegistered struct {
	Name        string `json:"name"`
	Provider    string `json:"provider"`
	Grade       string `json:"grade"`
	Domain      string `json:"domain"`
	PrivacyUnit string `json:"privacy_unit"`
	Snapshot    string `json:"snapshot"` // the snapshot's digest
	Rows        int64  `json:"rows"`
	Spec        Doc    `json:"spec"`   // catalog.Spec
	RawSet      Doc    `json:"rawset"` // the raw-value set's digest, entry count and key ID (keyed hashes only)
}

// DatasetRegistrationRefused: a registration was refused. Refused by the server before the
// source was read: Principal is set and Snapshot, RegisteredAs, RegisteredBy are not; refused by
// the engine because the data is already registered: the reverse.
type DatasetRegistrationRefused struct {
	Principal    *Principal `json:"principal,omitempty"`
	Name         string     `json:"name"`
	Provider     string     `json:"provider"`
	Grade        string     `json:"grade"`
	Code         string     `json:"code"`
	Snapshot     string     `json:"snapshot,omitempty"`
	RegisteredAs string     `json:"registered_as,omitempty"`
	RegisteredBy string     `json:"registered_by,omitempty"`
}

// RawSetRebuilt: a dataset's raw-value set was rebuilt from its snapshot.
type RawSetRebuilt struct {
	Name     string `json:"name"`
	Snapshot string `json:"snapshot"`
	Reason   string `json:"reason"`
	RawSet   Doc    `json:"rawset"` // rawset description: digest, entry count, key ID
}

// PolicyLoaded: the engine started with a policy bundle.
type PolicyLoaded struct {
	BundleDigest string `json:"bundle_digest"`
	Source       string `json:"source"`
}

// WorkerStarted: a domain's sandbox worker started, with the isolation in force.
type WorkerStarted struct {
	Domain    string `json:"domain"`
	Isolation Doc    `json:"isolation"` // wire.Isolation
}

// JobSubmitted: a job was submitted (the first record of every job).
type JobSubmitted struct {
	// Kind is the job kind, which names its stage list; empty in logs written before job kinds
	// existed, which hold only SQL jobs.
	Kind      string    `json:"kind,omitempty"`
	Principal Principal `json:"principal"`
	Grant     string    `json:"grant"`
	SQL       string    `json:"sql"`
	Options   Doc       `json:"options"` // plan.Options with defaults filled
}

// Gate: the SQL gate admitted the job, naming the snapshots it reads.
type Gate struct {
	Admitted  bool              `json:"admitted"`
	Dataset   string            `json:"dataset"`
	Snapshots map[string]string `json:"snapshots"` // dataset → snapshot digest
}

// Plan: the bounded plan the worker runs, its cost and the differencing checks.
type Plan struct {
	WorkerPlan         Doc `json:"worker_plan"`         // wire.Plan, with its sampling key
	PublicPartitions   Doc `json:"public_partitions"`   // plan's public partitions
	Cost               Doc `json:"cost"`                // plan.Cost
	Split              Doc `json:"split"`               // how the budget is split over aggregates
	DifferencingChecks Doc `json:"differencing_checks"` // []plan.Probe
}

// PolicyDecision is a policy decision with the input it was made on (policy.Decision's fields
// and the input), so a replay or a candidate bundle can evaluate it again.
type PolicyDecision struct {
	Result       string   `json:"result"`
	Reasons      []string `json:"reasons"`
	Reviewers    int      `json:"reviewers,omitempty"`
	BundleDigest string   `json:"bundle_digest"`
	Input        Doc      `json:"input"` // policy.AccessInput or policy.EgressInput
}

// PolicyAccess: the access policy's decision on a job.
type PolicyAccess struct{ PolicyDecision }

// PolicyEgress: the egress policy's decision on a job's output.
type PolicyEgress struct{ PolicyDecision }

// ChecksReserved: a verification's checks were counted, all or none, against the policy's
// limits: each fact (a dataset's attribute of one subject) so many times per period by the
// organisation, and so many checks a day by the grant.
type ChecksReserved struct {
	Checks int `json:"checks"`
	// FactsDigest is a keyed digest over the checks' facts in request order, and
	// ConsentsDigest over their consent references' keyed digests, which the ledger keeps
	// per check: an auditor holding the request can check both; neither reveals a subject.
	FactsDigest    string `json:"facts_digest"`
	ConsentsDigest string `json:"consents_digest"`
	// PublicKey is the SHA-256 of the applicant's public key, pinned to the grant.
	PublicKey string `json:"public_key"`
	Limits    Doc    `json:"limits"` // ledger.CheckLimits
}

// ClaimsAnswered: the worker answered a verification's encrypted claims. Per batch, the
// SHA-256 of each ciphertext received and returned; the worker could decrypt nothing.
type ClaimsAnswered struct {
	Domain       string            `json:"domain"`
	Snapshots    map[string]string `json:"snapshots"`
	ParameterSet string            `json:"parameter_set"`
	Batches      Doc               `json:"batches"`
	DurationMS   int64             `json:"duration_ms"`
}

// CollectiveKey: a collective key was made for a set of data domains (he/collective rounds 1–2)
// and every domain's signing public key pinned: a worker that later presents another key for
// its domain is refused.
type CollectiveKey struct {
	Ceremony string   `json:"ceremony"`
	Domains  []string `json:"domains"`
	// KeyID is the SHA-256 of the collective public key (hex).
	KeyID string `json:"key_id"`
	// DomainKeys are the domains' ed25519 signing public keys (hex), Aggregator the platform's.
	DomainKeys    map[string]string `json:"domain_keys"`
	Aggregator    string            `json:"aggregator_key"`
	ParameterSet  string            `json:"parameter_set"`
	KeyMessage    string            `json:"key_message"`    // sha256 of the signed round-2 message
	ShareMessages map[string]string `json:"share_messages"` // sha256 of each domain's signed CKG share
}

// FederatedPlan: a federated job's plan: per dataset its domain, snapshot and bounded worker
// plan; the public partitions; per aggregate the sensitivity summed over the domains and each
// domain's noise share; the cost debited on the grant and on every dataset.
type FederatedPlan struct {
	Ceremony   string `json:"ceremony"`
	KeyID      string `json:"key_id"`
	Datasets   Doc    `json:"datasets"` // []{dataset, domain, snapshot, worker_plan}
	Partitions int    `json:"partitions"`
	Aggregates Doc    `json:"aggregates"` // []{name, kind, l0, linf_by_domain, linf, noise}
	Cost       Doc    `json:"cost"`       // plan.Cost
}

// FederatedInputs: every domain's signed encrypted inputs (round 3), by domain, as SHA-256
// digests of the messages, one per aggregate.
type FederatedInputs struct {
	Inputs     map[string][]string `json:"inputs"`
	DurationMS int64               `json:"duration_ms"`
}

// FederatedSum: the aggregator's signed sums (round 4), one per aggregate (SHA-256 digests),
// and the digest of the receiver key they are to be switched to.
type FederatedSum struct {
	Sums     []string `json:"sums"`
	Receiver string   `json:"receiver"`
}

// FederatedKeySwitch: every domain's signed key-switch shares (round 5) and the aggregator's
// results (round 6), as SHA-256 digests.
type FederatedKeySwitch struct {
	Shares     map[string][]string `json:"shares"`
	Results    []string            `json:"results"`
	DurationMS int64               `json:"duration_ms"`
}

// ModelPlan: a model job's plan: the model's type, the worker's pass (its relation, filter and
// values as typed trees, the model's public spec with its bounds and rows per unit, the
// sampling key and the deadline; no SQL text), the budget, the noise additions planned (their
// sensitivities and noise scales), and a logistic fit's iterations.
type ModelPlan struct {
	Type       string `json:"type"`
	Pass       Doc    `json:"pass"`       // wire.ModelPass, without a step
	Cost       Doc    `json:"cost"`       // plan.Cost
	Components Doc    `json:"components"` // []dp.Component
	Iterations int    `json:"iterations,omitempty"`
}

// ModelTrained: the worker's passes over a model job's rows returned their pre-noise states.
// PreNoiseDigest is a keyed digest of them all, in order, which a replay recomputes; Steps are
// a logistic fit's coefficients at each pass (scaled, intercept first), computed from noisy
// gradients only, which a replay runs the passes at.
type ModelTrained struct {
	Domain         string            `json:"domain"`
	Snapshots      map[string]string `json:"snapshots"`
	Passes         int               `json:"passes"`
	Steps          Doc               `json:"steps,omitempty"` // []model.Step
	PreNoiseDigest string            `json:"pre_noise_digest"`
	DurationMS     int64             `json:"duration_ms"`
}

// WasmPlan: a custom model job's plan: the module's digest and size (never its bytes), the
// worker's relation (typed trees over the sources' columns; no SQL text), the declared output
// (length, bounds, default), k, the per-block deadline, the budget and the block mean's noise
// additions (sensitivity (hi − lo)/k per element, noise scales). The block key is not here: it
// is derived from the job's ID under the audit key, so a replay recomputes it and no record
// reveals which units share a block.
type WasmPlan struct {
	ModuleDigest string `json:"module_digest"`
	ModuleBytes  int    `json:"module_bytes"`
	Relation     Doc    `json:"relation"` // wire.Relation
	Output       Doc    `json:"output"`   // wire.WasmOutput
	Blocks       int    `json:"blocks"`
	DeadlineMS   int64  `json:"deadline_ms"`
	Cost         Doc    `json:"cost"`       // plan.Cost
	Components   Doc    `json:"components"` // []dp.Component
}

// WasmRan: the worker ran the module over the k blocks and returned their clamped average.
// PreNoiseDigest is a keyed digest of it (each element's float64 bits), which a replay
// recomputes; nothing says which blocks failed.
type WasmRan struct {
	Domain         string            `json:"domain"`
	Snapshots      map[string]string `json:"snapshots"`
	ModuleDigest   string            `json:"module_digest"`
	Blocks         int               `json:"blocks"`
	PreNoiseDigest string            `json:"pre_noise_digest"`
	DurationMS     int64             `json:"duration_ms"`
}

// FederatedOpened: the platform, as receiver, verified every share and decrypted the noisy
// totals; NoisyDigest is a keyed digest of them (they are released next).
type FederatedOpened struct {
	Partitions  int    `json:"partitions"`
	Aggregates  int    `json:"aggregates"`
	NoisyDigest string `json:"noisy_digest"`
}

// BudgetReserved: the job's cost was reserved on its accounts.
type BudgetReserved struct {
	Accounts []string `json:"accounts"`
	Cost     Doc      `json:"cost"` // plan.Cost
	// Reconciled marks a record written at restart from the ledger, for a job whose process
	// died after the ledger reserved and before this record was appended.
	Reconciled bool `json:"reconciled,omitempty"`
}

// Execution: the worker ran the plan; the pre-noise aggregates appear only as keyed digests.
type Execution struct {
	Domain                     string            `json:"domain"`
	Snapshots                  map[string]string `json:"snapshots"`
	DurationMS                 int64             `json:"duration_ms"`
	PreNoiseDigest             string            `json:"pre_noise_digest"`
	DifferencingPreNoiseDigest string            `json:"differencing_pre_noise_digest,omitempty"`
}

// BoundsChosen: a job's contribution bounds were chosen under DP. The worker computed
// histograms of contributions per unit over the rows the query reads (ProfilePlan, with its
// sampling key), each unit in one bin of each (sensitivity 1); the engine noised every bin
// with Epsilon (Share of the job's epsilon) and chose the bounds from the noisy bins alone.
// The pre-noise bins appear only as a keyed digest, which a replay recomputes.
//
// Clamping bounds chosen the same way are recorded beside: the quantile plan (ClampPlan, one
// row per unit) and the histogram plans of values read on a log scale (ClampHistograms), the
// noisy quantiles, the chosen bounds per value, the epsilon and share, and the keyed digest of
// the quantile trees' and histograms' pre-noise states, in that order. Either half may be
// absent.
type BoundsChosen struct {
	ProfilePlan    Doc     `json:"profile_plan"` // wire.Plan with its Profile
	Histograms     Doc     `json:"histograms"`   // plan.Profiled: the noisy bins
	Chosen         Doc     `json:"chosen"`       // plan.Choice
	Epsilon        float64 `json:"epsilon"`
	Share          float64 `json:"share"`
	PreNoiseDigest string  `json:"pre_noise_digest"`

	ClampPlan Doc `json:"clamp_plan"` // wire.Plan of the quantiles
	// ClampHistograms are the worker plans ([]wire.Plan) of the half-octave histograms of the
	// values read on a log scale; absent in records written before them.
	ClampHistograms     Doc     `json:"clamp_histograms,omitzero"`
	ClampQuantiles      Doc     `json:"clamp_quantiles"` // [][2]float64: noisy low and high quantile per value
	ClampBounds         Doc     `json:"clamp_bounds"`    // [][2]float64: the chosen bounds per value
	ClampEpsilon        float64 `json:"clamp_epsilon,omitempty"`
	ClampShare          float64 `json:"clamp_share,omitempty"`
	ClampPreNoiseDigest string  `json:"clamp_pre_noise_digest,omitempty"`
}

// Mechanism: the DP mechanisms applied and how many rows came out.
type Mechanism struct {
	Aggregates         Doc `json:"aggregates"` // per aggregate: mechanism, epsilon, delta, components
	RowsReleased       int `json:"rows_released"`
	DifferencingChecks Doc `json:"differencing_checks"`
}

// Reviewer: the automatic output reviewer's findings (columns and codes, never values).
type Reviewer struct {
	Findings       Doc `json:"findings"`
	SuppressedRows int `json:"suppressed_rows"`
}

// Held: an output was held for human review.
type Held struct {
	Grant        string   `json:"grant"`
	Reviewers    int      `json:"reviewers"`
	Reasons      []string `json:"reasons"`
	OutputDigest string   `json:"output_digest"`
}

// OutputDecision: a decision on a computed output (held, denied) that answers every repeat.
type OutputDecision struct {
	Fingerprint string `json:"fingerprint"`
	State       string `json:"state"`
	Code        string `json:"code"`
	Reason      string `json:"reason"`
}

// DecisionRecalled: a job was answered by an earlier decision on the same output.
type DecisionRecalled struct {
	DecidedJob string `json:"decided_job"`
	State      string `json:"state"`
	Code       string `json:"code"`
}

// AnsweredFromRelease: a job was answered with an earlier job's released output, at no cost.
type AnsweredFromRelease struct {
	ReleasedJob string `json:"released_job"`
}

// ReleaseNotStored: a release could not be stored for repeated queries.
type ReleaseNotStored struct {
	Reason string `json:"reason"`
}

// Review: a reviewer's decision on a held output.
type Review struct {
	Reviewer Principal `json:"reviewer"`
	Approve  bool      `json:"approve"`
	Reason   string    `json:"reason,omitempty"`
}

// Withheld: a held output will never be released.
type Withheld struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// BudgetDebited: a job's reservation became a debit. Before a release: Cost is set. After a
// failure that may depend on the data: Reason and Released (false) are set instead.
type BudgetDebited struct {
	Cost     *Doc   `json:"cost,omitempty"` // plan.Cost
	Reason   string `json:"reason,omitempty"`
	Released *bool  `json:"released,omitempty"`
}

// BudgetRefunded: a job's reservation was returned (it failed before reading data).
type BudgetRefunded struct {
	Reason string `json:"reason"`
}

// Release: an output left the platform. Reviewers is set when it was released after review;
// ReleasedJob and Charged when it repeats an earlier release.
type Release struct {
	OutputDigest string   `json:"output_digest"`
	Rows         int      `json:"rows"`
	Reviewers    []string `json:"reviewers,omitempty"`
	ReleasedJob  string   `json:"released_job,omitempty"`
	Charged      *bool    `json:"charged,omitempty"`
}

// JobEnd is how a job that released nothing ended: its public error.
type JobEnd struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Position *int   `json:"position"` // byte offset into the SQL, or null
}

// JobRefused: the job ended before its budget was reserved.
type JobRefused struct{ JobEnd }

// JobFailed: the job ended after its budget was reserved.
type JobFailed struct{ JobEnd }

// JobInterrupted: the server stopped while the job ran; the job failed. Released says whether
// the log already held the job's release (the process died before the outcome was stored, so
// the applicant never received it); false: nothing was released.
type JobInterrupted struct {
	Released bool `json:"released"`
}

// ReplayStage is one stage of a replayed job.
type ReplayStage struct {
	Stage  string `json:"stage"`
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// Replay: an auditor replayed a job.
type Replay struct {
	Job    string        `json:"job"`
	Stages []ReplayStage `json:"stages"`
	Match  bool          `json:"match"`
}

// GrantOpened: a grant's budget account was opened without an allocation.
type GrantOpened struct {
	Grant   string  `json:"grant"`
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// BudgetAllocated: a grant's budget was carved out of its datasets' lifetime budgets.
type BudgetAllocated struct {
	Grant    string   `json:"grant"`
	Epsilon  float64  `json:"epsilon"`
	Delta    float64  `json:"delta"`
	Datasets []string `json:"datasets"`
}

// BudgetReturned: a grant's allocations were closed.
type BudgetReturned struct {
	Grant         string   `json:"grant"`
	Reason        string   `json:"reason"`
	ReturnUnspent bool     `json:"return_unspent"`
	Returned      Doc      `json:"returned"` // ledger.Budget
	Kept          Doc      `json:"kept"`     // ledger.Budget
	Datasets      []string `json:"datasets"`
}

// ApplicationSubmitted: an application for a grant (api.Application's fields).
type ApplicationSubmitted struct {
	ID        string     `json:"id"`
	State     string     `json:"state"`
	Org       string     `json:"org"`
	Applicant string     `json:"applicant"`
	Purpose   string     `json:"purpose"`
	Scenario  string     `json:"scenario"`
	Datasets  []string   `json:"datasets"`
	Start     time.Time  `json:"start"`
	End       time.Time  `json:"end"`
	Epsilon   float64    `json:"epsilon"`
	Delta     float64    `json:"delta"`
	JobKinds  []string   `json:"job_kinds"`
	CreatedAt time.Time  `json:"created_at"`
	DecidedBy string     `json:"decided_by,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Grant     string     `json:"grant,omitempty"`
}

// ApplicationApproved: an application was approved and became a grant.
type ApplicationApproved struct {
	Application string    `json:"application"`
	Grant       Doc       `json:"grant"` // api.Grant
	By          Principal `json:"by"`
}

// ApplicationRejected: an application was rejected.
type ApplicationRejected struct {
	Application string    `json:"application"`
	By          Principal `json:"by"`
	Reason      string    `json:"reason"`
}

// GrantState: a grant changed state (suspended, resumed, revoked).
type GrantState struct {
	Grant  string    `json:"grant"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	By     Principal `json:"by"`
	Reason string    `json:"reason"`
}

// VerifyCommitted: an applicant committed to K key candidates (kind "key") or to K shares
// of each claims ciphertext (kind "claims"), and the platform drew the challenge with
// crypto/rand after storing the commitment: the index per object left closed.
type VerifyCommitted struct {
	Grant      string    `json:"grant"`
	Commitment string    `json:"commitment"`
	By         Principal `json:"by"`
	Kind       string    `json:"kind"`
	Candidates int       `json:"candidates"`
	Digests    Doc       `json:"digests"` // [][]string: per object, the SHA-256 of each candidate
	Challenges []int     `json:"challenges"`
	Deadline   string    `json:"deadline"`
}

// VerifyOpened: every opening of a commitment rebuilt its digest: for a key, the challenged
// candidate is pinned (KeyDigest); for claims, the job that carried the openings (Job).
type VerifyOpened struct {
	Grant      string `json:"grant"`
	Commitment string `json:"commitment"`
	Kind       string `json:"kind"`
	KeyDigest  string `json:"key_digest,omitempty"`
	Job        string `json:"job,omitempty"`
}

// VerifySuspended: a grant's verification was suspended. Reason "opening_mismatch": the
// opening of candidate Candidate of object Object does not rebuild the committed digest —
// Opening (base64, the seed and the errors) and Committed are the evidence anyone can check
// again with he/verify; "abandoned": the challenge was left unopened past its deadline.
type VerifySuspended struct {
	Grant      string `json:"grant"`
	Commitment string `json:"commitment"`
	Kind       string `json:"kind"`
	Reason     string `json:"reason"`
	Object     int    `json:"object"`
	Candidate  int    `json:"candidate"`
	Committed  string `json:"committed,omitempty"`
	Opening    string `json:"opening,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// RedteamReport: a red-team report's summary was recorded against a grant.
type RedteamReport struct {
	Grant        string    `json:"grant"`
	By           Principal `json:"by"`
	ReportSHA256 string    `json:"report_sha256"`
	Scored       bool      `json:"scored"`
	Attacks      Doc       `json:"attacks"` // []api.RedteamAttack
}

// RequestDenied: the authorization policy denied a request. The server no longer writes it
// (it writes requests_denied summaries instead, one per principal per window); it stays
// registered so that older logs read.
type RequestDenied struct {
	Principal    Principal `json:"principal"`
	Action       string    `json:"action"`
	Resource     Doc       `json:"resource"` // policy.Resource
	Reasons      []string  `json:"reasons"`
	BundleDigest string    `json:"bundle_digest"`
}

// RequestsDenied: how many requests of one principal were denied within one window, by
// action, resource kind and code. It replaces one request_denied per request, so a client
// repeating forbidden requests adds one record per window, not one per request; what it keeps
// is who, what (the action, the resource kind, the first few resource ids, the policy's
// reasons), how many and when (the window). A crash loses at most the counts of the window
// still open.
type RequestsDenied struct {
	Principal    Principal     `json:"principal"`
	From         time.Time     `json:"from"`  // the window's start (the first denial's time)
	Until        time.Time     `json:"until"` // the window's end (or the shutdown's time)
	Total        int64         `json:"total"`
	Counts       []DeniedCount `json:"counts"` // sorted by action, resource kind, code
	BundleDigest string        `json:"bundle_digest"`
}

// DeniedCount is one line of a RequestsDenied summary.
type DeniedCount struct {
	Action       string   `json:"action"`
	ResourceKind string   `json:"resource_kind"`
	Code         string   `json:"code"` // forbidden, separation_of_duties or rate_limited
	Count        int64    `json:"count"`
	Resources    []string `json:"resources,omitempty"` // the first distinct resource ids (at most 8)
	Reasons      []string `json:"reasons,omitempty"`   // the policy's distinct reasons (at most 8)
}

// RequestRefused: the SQL gate refused a job request as it was submitted, so it was answered at
// once and never became a job (no job record, no rate-limit count). Like job_refused it
// holds the refusal's code and position; unlike job_submitted it holds no SQL text — only a
// digest keyed with the platform's audit key — since a refused query's literals were never
// admitted, and no message, which may quote names the applicant typed.
type RequestRefused struct {
	Principal Principal `json:"principal"`
	Grant     string    `json:"grant"`
	Kind      string    `json:"kind"`
	Code      string    `json:"code"`
	Position  *int      `json:"position"`   // byte offset into the SQL, or null
	SQLDigest string    `json:"sql_digest"` // keyed digest of the SQL text
}

// GovernanceIntent: a governance decision is about to take effect. Its effects (ledger, store,
// the decision's own record such as application_approved) follow, then its GovernanceOutcome;
// ID keys the effects so that they can be re-run after a crash without being doubled.
type GovernanceIntent struct {
	ID      string    `json:"id"`      // the decision's idempotency key ("gov-…"; also the record's job)
	Action  string    `json:"action"`  // approve_application, reject_application, suspend_grant, …
	Subject string    `json:"subject"` // the application, grant or job decided
	By      Principal `json:"by"`
	Reason  string    `json:"reason,omitempty"`
	Detail  Doc       `json:"detail"` // what re-running the effects needs (the grant an approval makes, as api.Grant)
}

// GovernanceOutcome: a governance decision ended. Completed: every effect took place;
// rolled_back: none stays (Code says why). Reconciled: settled when the server started, after
// a crash or a failure left the decision without its outcome.
type GovernanceOutcome struct {
	ID         string `json:"id"`
	Action     string `json:"action"`
	Subject    string `json:"subject"`
	Outcome    string `json:"outcome"` // completed | rolled_back
	Code       string `json:"code,omitempty"`
	Reconciled bool   `json:"reconciled,omitempty"`
}

// LogRecovered: Open cut away a torn final line.
type LogRecovered struct {
	DroppedBytes int64  `json:"dropped_bytes"`
	AtIndex      uint64 `json:"at_index"`
}

// Event types and versions: every type in the registry above.

func (*DatasetRegistered) EventType() string { return TypeDatasetRegistered }
func (*DatasetRegistered) EventVersion() int { return 1 }

func (*DatasetRegistrationRefused) EventType() string { return TypeDatasetRegistrationRefused }
func (*DatasetRegistrationRefused) EventVersion() int { return 1 }

func (*RawSetRebuilt) EventType() string { return TypeRawSetRebuilt }
func (*RawSetRebuilt) EventVersion() int { return 1 }

func (*PolicyLoaded) EventType() string { return TypePolicyLoaded }
func (*PolicyLoaded) EventVersion() int { return 1 }

func (*WorkerStarted) EventType() string { return TypeWorkerStarted }
func (*WorkerStarted) EventVersion() int { return 1 }

func (*JobSubmitted) EventType() string { return TypeJobSubmitted }
func (*JobSubmitted) EventVersion() int { return 1 }

func (*Gate) EventType() string { return TypeGate }
func (*Gate) EventVersion() int { return 1 }

func (*Plan) EventType() string { return TypePlan }
func (*Plan) EventVersion() int { return 1 }

func (*PolicyAccess) EventType() string { return TypePolicyAccess }
func (*PolicyAccess) EventVersion() int { return 1 }

func (*ChecksReserved) EventType() string     { return TypeChecksReserved }
func (*ChecksReserved) EventVersion() int     { return 1 }
func (*ClaimsAnswered) EventType() string     { return TypeClaimsAnswered }
func (*ClaimsAnswered) EventVersion() int     { return 1 }
func (*CollectiveKey) EventType() string      { return TypeCollectiveKey }
func (*CollectiveKey) EventVersion() int      { return 1 }
func (*FederatedPlan) EventType() string      { return TypeFederatedPlan }
func (*FederatedPlan) EventVersion() int      { return 1 }
func (*FederatedInputs) EventType() string    { return TypeFederatedInputs }
func (*FederatedInputs) EventVersion() int    { return 1 }
func (*FederatedSum) EventType() string       { return TypeFederatedSum }
func (*FederatedSum) EventVersion() int       { return 1 }
func (*FederatedKeySwitch) EventType() string { return TypeFederatedKeySwitch }
func (*FederatedKeySwitch) EventVersion() int { return 1 }
func (*FederatedOpened) EventType() string    { return TypeFederatedOpened }
func (*FederatedOpened) EventVersion() int    { return 1 }
func (*ModelPlan) EventType() string          { return TypeModelPlan }
func (*ModelPlan) EventVersion() int          { return 1 }
func (*ModelTrained) EventType() string       { return TypeModelTrained }
func (*ModelTrained) EventVersion() int       { return 1 }
func (*WasmPlan) EventType() string           { return TypeWasmPlan }
func (*WasmPlan) EventVersion() int           { return 1 }
func (*WasmRan) EventType() string            { return TypeWasmRan }
func (*WasmRan) EventVersion() int            { return 1 }
func (*BudgetReserved) EventType() string     { return TypeBudgetReserved }
func (*BudgetReserved) EventVersion() int     { return 1 }

func (*Execution) EventType() string { return TypeExecution }
func (*Execution) EventVersion() int { return 1 }

func (*Mechanism) EventType() string { return TypeMechanism }
func (*Mechanism) EventVersion() int { return 1 }

func (*Reviewer) EventType() string { return TypeReviewer }
func (*Reviewer) EventVersion() int { return 1 }

func (*PolicyEgress) EventType() string { return TypePolicyEgress }
func (*PolicyEgress) EventVersion() int { return 1 }

func (*Held) EventType() string { return TypeHeld }
func (*Held) EventVersion() int { return 1 }

func (*OutputDecision) EventType() string { return TypeOutputDecision }
func (*OutputDecision) EventVersion() int { return 1 }

func (*DecisionRecalled) EventType() string { return TypeDecisionRecalled }
func (*DecisionRecalled) EventVersion() int { return 1 }

func (*AnsweredFromRelease) EventType() string { return TypeAnsweredFromRelease }
func (*AnsweredFromRelease) EventVersion() int { return 1 }

func (*ReleaseNotStored) EventType() string { return TypeReleaseNotStored }
func (*ReleaseNotStored) EventVersion() int { return 1 }

func (*Review) EventType() string { return TypeReview }
func (*Review) EventVersion() int { return 1 }

func (*Withheld) EventType() string { return TypeWithheld }
func (*Withheld) EventVersion() int { return 1 }

func (*BudgetDebited) EventType() string { return TypeBudgetDebited }
func (*BudgetDebited) EventVersion() int { return 1 }

func (*BudgetRefunded) EventType() string { return TypeBudgetRefunded }
func (*BudgetRefunded) EventVersion() int { return 1 }

func (*Release) EventType() string { return TypeRelease }
func (*Release) EventVersion() int { return 1 }

func (*JobFailed) EventType() string { return TypeJobFailed }
func (*JobFailed) EventVersion() int { return 1 }

func (*JobRefused) EventType() string { return TypeJobRefused }
func (*JobRefused) EventVersion() int { return 1 }

func (*JobInterrupted) EventType() string { return TypeJobInterrupted }
func (*JobInterrupted) EventVersion() int { return 1 }

func (*Replay) EventType() string { return TypeReplay }
func (*Replay) EventVersion() int { return 1 }

func (*GrantOpened) EventType() string { return TypeGrantOpened }
func (*GrantOpened) EventVersion() int { return 1 }

func (*BudgetAllocated) EventType() string { return TypeBudgetAllocated }
func (*BudgetAllocated) EventVersion() int { return 1 }

func (*BudgetReturned) EventType() string { return TypeBudgetReturned }
func (*BudgetReturned) EventVersion() int { return 1 }

func (*ApplicationSubmitted) EventType() string { return TypeApplicationSubmitted }
func (*ApplicationSubmitted) EventVersion() int { return 1 }

func (*ApplicationApproved) EventType() string { return TypeApplicationApproved }
func (*ApplicationApproved) EventVersion() int { return 1 }

func (*ApplicationRejected) EventType() string { return TypeApplicationRejected }
func (*ApplicationRejected) EventVersion() int { return 1 }

func (*GrantState) EventType() string { return TypeGrantState }
func (*GrantState) EventVersion() int { return 1 }

func (*VerifyCommitted) EventType() string { return TypeVerifyCommitted }
func (*VerifyCommitted) EventVersion() int { return 1 }
func (*VerifyOpened) EventType() string    { return TypeVerifyOpened }
func (*VerifyOpened) EventVersion() int    { return 1 }
func (*VerifySuspended) EventType() string { return TypeVerifySuspended }
func (*VerifySuspended) EventVersion() int { return 1 }
func (*RedteamReport) EventType() string   { return TypeRedteamReport }
func (*RedteamReport) EventVersion() int   { return 1 }

func (*RequestDenied) EventType() string { return TypeRequestDenied }
func (*RequestDenied) EventVersion() int { return 1 }

func (*RequestsDenied) EventType() string { return TypeRequestsDenied }
func (*RequestsDenied) EventVersion() int { return 1 }

func (*RequestRefused) EventType() string { return TypeRequestRefused }
func (*RequestRefused) EventVersion() int { return 1 }

func (*LogRecovered) EventType() string { return TypeLogRecovered }
func (*LogRecovered) EventVersion() int { return 1 }

func (*GovernanceIntent) EventType() string { return TypeGovernanceIntent }
func (*GovernanceIntent) EventVersion() int { return 1 }

func (*GovernanceOutcome) EventType() string { return TypeGovernanceOutcome }
func (*GovernanceOutcome) EventVersion() int { return 1 }

func (*BoundsChosen) EventType() string { return TypeBoundsChosen }
func (*BoundsChosen) EventVersion() int { return 1 }
