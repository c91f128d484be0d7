// Package api defines the JSON documents of cleanroom's HTTP API (/v1), shared by the server
// and its clients (the CLI). Field names are the wire contract; /v1/openapi.json describes them.
package api

import (
	"encoding/json"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
)

// Error is the body of every failed request: {"error": {"code", "message", "position"?}}.
type Error struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Position *int   `json:"position,omitempty"`
}

// ErrorBody wraps an Error.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Principal is the caller as the server knows it.
type Principal struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Org  string `json:"org"`
}

// Health is GET /healthz.
type Health struct {
	Status       string `json:"status"`
	PolicyDigest string `json:"policy_digest"`
}

// Dataset is a registered dataset's metadata (GET /v1/datasets). It never holds rows, and not
// the provider's source location.
type Dataset struct {
	Name        string                    `json:"name"`
	Provider    string                    `json:"provider"`
	Grade       string                    `json:"grade"`
	Domain      string                    `json:"domain"`
	PrivacyUnit string                    `json:"privacy_unit,omitempty"`
	Public      bool                      `json:"public"`
	Digest      string                    `json:"digest"`
	Rows        *int64                    `json:"rows,omitempty"`   // absent when the policy does not disclose sizes
	Budget      *Budget                   `json:"budget,omitempty"` // the provider's lifetime cap
	Columns     map[string]catalog.Column `json:"columns"`
	// Verify are the attributes a verification (kind verify) may check claims against.
	Verify map[string]catalog.VerifyAttribute `json:"verify,omitempty"`
}

// Budget is an (epsilon, delta) pair.
type Budget struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// Datasets is GET /v1/datasets.
type Datasets struct {
	Datasets []Dataset `json:"datasets"`
}

// Registered is POST /v1/datasets's answer.
type Registered struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Rows   int64  `json:"rows"`
}

// RedteamRequest is POST /v1/grants/{id}/redteam: an operator's red-team report on a grant
// (`cleanroom redteam --record`), as a summary of each attack and the SHA-256 of the full report,
// which the operator keeps. The server records it in provenance as it is; it holds no data value.
type RedteamRequest struct {
	ReportSHA256 string          `json:"report_sha256"`
	Scored       bool            `json:"scored"` // the attacks were scored against the raw data
	Attacks      []RedteamAttack `json:"attacks"`
}

// RedteamAttack is one attack of a red-team report: the jobs it submitted, whether the platform
// blocked it, the budget it cost and, when scored, what it recovered against a baseline guess.
type RedteamAttack struct {
	Name     string   `json:"name"`
	Jobs     int      `json:"jobs"`
	Blocked  bool     `json:"blocked"`
	Epsilon  float64  `json:"epsilon"`
	Delta    float64  `json:"delta"`
	Score    *float64 `json:"score,omitempty"`
	Baseline *float64 `json:"baseline,omitempty"`
	Margin   *float64 `json:"margin,omitempty"`
	Exceeds  bool     `json:"exceeds"` // score > baseline + margin: the attack recovered more than a guess
}

// RedteamRecorded is the answer to a recorded red-team report: the record's id (an auditor reads
// it with GET /v1/audit/jobs/{id}) and its index in the provenance log.
type RedteamRecorded struct {
	ID           string `json:"id"`
	Grant        string `json:"grant"`
	Index        uint64 `json:"index"`
	ReportSHA256 string `json:"report_sha256"`
}

// Job kinds a grant may allow. sql, verify, federated_sql and model run on this version of the
// platform.
const (
	KindSQL       = "sql"
	KindVerify    = "verify"
	KindFederated = "federated_sql"
	KindModel     = "model"
	KindWasm      = "wasm"
)

// ApplicationRequest is POST /v1/applications. Start and End are RFC 3339 times or dates
// (YYYY-MM-DD); a date as End means the end of that day (UTC).
type ApplicationRequest struct {
	Purpose  string   `json:"purpose"`
	Scenario string   `json:"scenario"`
	Datasets []string `json:"datasets"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Epsilon  float64  `json:"epsilon"`
	Delta    float64  `json:"delta"`
	JobKinds []string `json:"job_kinds"`
}

// Application states.
const (
	ApplicationPending  = "pending"
	ApplicationApproved = "approved"
	ApplicationRejected = "rejected"
)

// Application is an applicant unit's request for a grant.
type Application struct {
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
	Reason    string     `json:"reason,omitempty"` // why it was rejected
	Grant     string     `json:"grant,omitempty"`  // the grant it became
}

// Applications is GET /v1/applications.
type Applications struct {
	Applications []Application `json:"applications"`
}

// ApproveRequest is POST /v1/applications/{id}/approve: the operator may lower the budget or
// end the period earlier, never widen them.
type ApproveRequest struct {
	Epsilon *float64 `json:"epsilon,omitempty"`
	Delta   *float64 `json:"delta,omitempty"`
	End     string   `json:"end,omitempty"`
}

// Approved is the answer to an approval.
type Approved struct {
	GrantID string `json:"grant_id"`
}

// ReasonRequest is the body of a rejection or review: why.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

// Grant states as stored; GET also reports "expired" for an active grant past its end.
const (
	GrantActive    = "active"
	GrantSuspended = "suspended"
	GrantRevoked   = "revoked"
	GrantExpired   = "expired"
)

// Grant is an approved application: who may run which jobs on which datasets, when, and
// with how much privacy budget.
type Grant struct {
	ID          string      `json:"id"`
	State       string      `json:"state"`
	Org         string      `json:"org"`
	Application string      `json:"application"`
	Purpose     string      `json:"purpose"`
	Scenario    string      `json:"scenario"`
	Datasets    []string    `json:"datasets"`
	JobKinds    []string    `json:"job_kinds"`
	Start       time.Time   `json:"start"`
	End         time.Time   `json:"end"`
	Budget      GrantBudget `json:"budget"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// GrantBudget is a grant's budget — its allocation, carved out of each of its datasets'
// lifetime budgets at approval — and what its jobs have spent (reservations of running jobs
// count as spent). Total is the allocation in force: after a revocation or expiry that returned
// the unspent part (Returned), it is what the grant had spent. Allocated is false for a grant
// approved before allocations existed: it holds none and draws on its datasets' unallocated
// remainder.
type GrantBudget struct {
	EpsilonTotal     float64 `json:"epsilon_total"`
	EpsilonSpent     float64 `json:"epsilon_spent"`
	EpsilonRemaining float64 `json:"epsilon_remaining"`
	EpsilonReturned  float64 `json:"epsilon_returned"`
	DeltaTotal       float64 `json:"delta_total"`
	DeltaSpent       float64 `json:"delta_spent"`
	DeltaRemaining   float64 `json:"delta_remaining"`
	DeltaReturned    float64 `json:"delta_returned"`
	Allocated        bool    `json:"allocated"`
}

// Grants is GET /v1/grants.
type Grants struct {
	Grants []Grant `json:"grants"`
}

// JobRequest is POST /v1/jobs.
type JobRequest struct {
	Grant   string     `json:"grant"`
	Kind    string     `json:"kind"`
	SQL     string     `json:"sql"`
	Options JobOptions `json:"options"`
	// Verify is a verification's claims (kind verify).
	Verify *VerifyRequest `json:"verify,omitempty"`
	// Federated names a federated job's datasets, one per data domain (kind federated_sql).
	Federated *FederatedRequest `json:"federated,omitempty"`
	// Model is a model job's model (kind model); its SQL is in Model, not in SQL.
	Model *ModelRequest `json:"model,omitempty"`
	// Wasm is a custom model job's module and shape (kind wasm); its SQL is in Wasm.
	Wasm *WasmRequest `json:"wasm,omitempty"`
}

// VerifyRequest is a verification job's input (kind verify, private verification 核验): the
// applicant's public key and batches of encrypted claims, each batch about one verifiable
// attribute of one dataset (GET /v1/datasets/{name} lists them). Keys and ciphertexts are
// he/verify's binary serialization, base64 in JSON. The platform never sees a claimed value;
// the answer is ciphertexts only the applicant's secret key opens, one match or no match per
// claim. The key is the grant's pinned key (POST /v1/grants/{id}/verify/key), and the
// ciphertexts open a claims commitment (Commitment; see VerifyClaimsCommitRequest).
type VerifyRequest struct {
	PublicKey []byte        `json:"public_key"`
	Batches   []VerifyBatch `json:"batches"`
	// Commitment is the claims commitment this request opens (its id).
	Commitment string `json:"commitment,omitempty"`
}

// VerifyBatch is a batch of claims about one attribute: subject i (a privacy unit in printable ASCII, e.g. a
// person_id) is claimed, in slot i of the ciphertexts, to have a value, under consent or
// contract reference Consents[i] (kept by the platform only as a keyed hash).
type VerifyBatch struct {
	Dataset   string   `json:"dataset"`
	Attribute string   `json:"attribute"`
	Subjects  []string `json:"subjects"`
	Consents  []string `json:"consents"`
	// Ciphertexts are, per claims ciphertext, the share the commitment's challenge left
	// closed; Openings, per claims ciphertext, open every other share, in share order.
	Ciphertexts [][]byte   `json:"ciphertexts"`
	Openings    [][][]byte `json:"openings,omitempty"`
}

// VerifyResult is a released verification: per batch, in request order, the ciphertexts
// answering its claims (slot i: 0 for a match, any other value for no match).
type VerifyResult struct {
	Job          string         `json:"job"`
	ParameterSet string         `json:"parameter_set"`
	Batches      []VerifyAnswer `json:"batches"`
	LogIndex     uint64         `json:"log_index,omitempty"`
}

// VerifyAnswer answers one VerifyBatch.
type VerifyAnswer struct {
	Dataset     string   `json:"dataset"`
	Attribute   string   `json:"attribute"`
	Checks      int      `json:"checks"`
	Ciphertexts [][]byte `json:"ciphertexts"`
}

// JobOptions are a job's privacy parameters; zero (or absent) means the platform default,
// except for Delta: absent is the default (a share of the grant's delta), and 0 is pure DP —
// public partitions only, and a query that would need partition selection is refused.
type JobOptions struct {
	Epsilon                  float64  `json:"epsilon,omitempty"`
	Delta                    *float64 `json:"delta,omitempty"`
	MaxGroupsContributed     int64    `json:"max_groups_contributed,omitempty"`
	MaxContributionsPerGroup int64    `json:"max_contributions_per_group,omitempty"`
}

// Job states: queued → running → in_review? → released | denied | failed.
const (
	JobQueued   = "queued"
	JobRunning  = "running"
	JobInReview = "in_review"
	JobReleased = "released"
	JobDenied   = "denied"
	JobFailed   = "failed"
)

// Job is a submitted job. Result is present only when State is released (and to principals
// who may read results); a reviewer sees a held result in the review queue instead.
type Job struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Grant       string     `json:"grant"`
	Org         string     `json:"org"`
	SubmittedBy string     `json:"submitted_by"`
	Kind        string     `json:"kind"`
	SQL         string     `json:"sql"`
	Options     JobOptions `json:"options"`
	// Federated names a federated job's datasets (kind federated_sql).
	Federated *FederatedRequest `json:"federated,omitempty"`
	// Model is a model job's model (kind model).
	Model *ModelRequest `json:"model,omitempty"`
	// Wasm is a custom model job's request (kind wasm), its module by digest only.
	Wasm      *WasmRequest    `json:"wasm,omitempty"`
	Datasets  []string        `json:"datasets,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Error     *Error          `json:"error,omitempty"`
	Review    *JobReview      `json:"review,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	// Receipt is the platform-signed release receipt (a C2SP signed note), present with Result.
	// `cleanroom audit receipt verify` checks it offline with the platform's public key.
	Receipt string `json:"receipt,omitempty"`
}

// JobReview is a held job's review: how many approvals it needs, why it was held, and the
// reviews so far.
type JobReview struct {
	Required int      `json:"required"`
	Reasons  []string `json:"reasons"`
	Reviews  []Review `json:"reviews"`
}

// Review is one reviewer's decision.
type Review struct {
	Reviewer string    `json:"reviewer"`
	Org      string    `json:"org"`
	Decision string    `json:"decision"` // approve or reject
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// Jobs is GET /v1/jobs.
type Jobs struct {
	Jobs []Job `json:"jobs"`
}

// ReviewItem is a held job in the review queue with the result that waits for release.
type ReviewItem struct {
	Job    Job             `json:"job"`
	Result json.RawMessage `json:"result"`
}

// Reviews is GET /v1/reviews.
type Reviews struct {
	Reviews []ReviewItem `json:"reviews"`
}

// AuditJob is GET /v1/audit/jobs/{id}: every provenance record of a job, in log order, each
// with its RFC 6962 inclusion proof in the tree of Checkpoint (when one covers it).
type AuditJob struct {
	Job        string       `json:"job"`
	Records    []AuditEntry `json:"records"`
	Checkpoint string       `json:"checkpoint,omitempty"` // the signed checkpoint note
	Size       uint64       `json:"size,omitempty"`       // its tree size
	// Lines are the records' exact log lines (the leaves) and Inclusion their proofs, by the
	// position of the record in Records.
	Lines     []string   `json:"lines,omitempty"`
	Inclusion [][]string `json:"inclusion,omitempty"`
}

// AuditEntry is a provenance log entry as the log holds it (the engine's provenance.Entry,
// field for field, kept here so that the API's documents link nothing of the engine): its
// index, the previous entry's hash, its own, and the canonical record.
type AuditEntry struct {
	Index  uint64          `json:"index"`
	Prev   string          `json:"prev"`
	Hash   string          `json:"hash"`
	Record json.RawMessage `json:"record"`
}

// InclusionProof is GET /v1/audit/proof/inclusion: entry Index (its exact Line) is in the
// tree of the first Size entries, whose root is Root; Hashes are base64 SHA-256.
type InclusionProof struct {
	Index  uint64   `json:"index"`
	Size   uint64   `json:"size"`
	Root   string   `json:"root"`
	Line   string   `json:"line"`
	Hashes []string `json:"hashes"`
}

// ConsistencyProof is GET /v1/audit/proof/consistency: the tree of the first Old entries
// (root OldRoot) is a prefix of the tree of the first New (root NewRoot).
type ConsistencyProof struct {
	Old     uint64   `json:"old"`
	New     uint64   `json:"new"`
	OldRoot string   `json:"old_root"`
	NewRoot string   `json:"new_root"`
	Hashes  []string `json:"hashes"`
}
