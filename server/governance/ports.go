package governance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// The service's dependencies are declared here, where they are used, and kept small: the server
// adapts the engine to them, and the crash test wraps them to fail after any write.

// Log is the provenance log as governance uses it. Nothing takes effect before its intent is
// recorded: Record fails closed, and a decision whose intent cannot be written does nothing.
type Log interface {
	// Record appends ev under job ("" for none) and returns its index.
	Record(ctx context.Context, job string, ev provenance.Event) (uint64, error)
	// Decisions returns, in log order, the records reconciliation reads: every
	// governance_intent and governance_outcome, and the decisions' own records
	// (application_approved, application_rejected, grant_state, review, withheld).
	Decisions(ctx context.Context) ([]provenance.Record, error)
}

// Budget is the ledger's side of a grant. A grant's budget is carved out of its datasets'
// lifetime budgets before the grant exists, so no grant is in force without its allocation.
// Both writes are idempotent by grant id, so reconciliation can re-run them: opening an
// allocation that exists with the same terms confirms it; closing a closed one does nothing.
type Budget interface {
	OpenGrant(ctx context.Context, grant string, epsilon, delta float64, datasets []string) error
	CloseGrant(ctx context.Context, grant, reason string, returnUnspent bool) error
	AllocatedGrants(ctx context.Context) ([]string, error)
}

// Closing reasons of a grant's allocation (Budget.CloseGrant).
const (
	CloseRevoked   = "revoked"
	CloseExpired   = "expired"
	CloseCancelled = "cancelled" // allocated, but the grant was never put in force
)

// Holds is the engine's side of an output held for review. A rejected or withheld output is
// never released, whoever approves it later (the engine refuses with conflict).
type Holds interface {
	// RecordReview records a reviewer's decision in provenance (and nothing else).
	RecordReview(ctx context.Context, job string, by provenance.Principal, approve bool, reason string) error
	// Release releases a held output after its approvals: it records the release and returns
	// the result stamped with its log index and the signed receipt. It writes nothing to the
	// control-plane store, so it runs inside the store's transaction.
	Release(ctx context.Context, job string, hold, output json.RawMessage, reviewers []string) (json.RawMessage, []byte, error)
	// EndHold ends a released output's hold (idempotent).
	EndHold(ctx context.Context, job string) error
	// Withhold makes "never released" the decision on a held output, recorded first
	// (idempotent for the same decision; conflict when decided otherwise).
	Withhold(ctx context.Context, job string, code errcode.Code, reason string) error
}

// State is the control-plane store's side of a decision; *Store implements it. Its writes are
// each one transaction and check the state they move from, so a decision's store write is its
// point of no return: before it, a decision is rolled back; after it, completed.
type State interface {
	Application(ctx context.Context, id string) (api.Application, error)
	DecideApplication(ctx context.Context, id string, update func(*api.Application), grant *api.Grant) error
	Grant(ctx context.Context, id string) (api.Grant, error)
	Grants(ctx context.Context, org string) ([]api.Grant, error)
	SetGrantState(ctx context.Context, id string, from []string, to string, at time.Time) (api.Grant, error)
	Job(ctx context.Context, id string) (Job, error)
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)
	UpdateJob(ctx context.Context, id string, from []string, edit func(*Job) error) (Job, error)
	AddReview(ctx context.Context, job string, r api.Review, edit func(*Job) error) (Job, error)
}

var _ State = (*Store)(nil)

// Rules are the policy's parameters governance applies.
type Rules interface {
	// ReturnUnspent says whether what a grant closed for reason (CloseRevoked, CloseExpired)
	// never spent goes back to its datasets.
	ReturnUnspent(reason string) bool
}

// Deps are a Service's dependencies.
type Deps struct {
	Log    Log
	Budget Budget
	Holds  Holds
	Store  State
	Rules  Rules
	// Now is the clock (default time.Now); Changed is called when a job changed state (to
	// wake long-polls; may be nil); Logger receives failures nobody else sees (may be nil).
	Now     func() time.Time
	Changed func()
	Logger  *slog.Logger
}

// NewID returns a fresh identifier with prefix (app-, grant-, job-, gov-, …).
func NewID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// The range every time a request gives (an application's start and end, an approval's end)
// must lie in, inclusive. A grant's period is bound to a declared purpose and is measured in
// months or years; anything outside this range is a typo or a probe, and a time past year 9999
// (9999-12-31 as an end is 10000-01-01) cannot even be written into a provenance record or a
// JSON document. The bounds are fixed, not relative to the clock, so the same request is
// always judged alike; "not in the past" is checked separately where it applies.
// The range runs from 1 January of EarliestYear to 1 January of LatestYear, UTC.
const (
	EarliestYear = 2000
	LatestYear   = 2200
)

// ParseTime reads an RFC 3339 time or a date; a date as an end means the end of that day.
// A time outside [EarliestYear-01-01, LatestYear-01-01] (UTC) is date_out_of_range.
func ParseTime(field, v string, end bool) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err == nil {
		t = t.UTC()
	} else if t, err = time.Parse(time.DateOnly, v); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
	} else {
		return time.Time{}, errcode.New(errcode.InvalidRequest, "%s must be an RFC 3339 time or a date (YYYY-MM-DD)", field)
	}
	earliest, latest := time.Date(EarliestYear, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(LatestYear, 1, 1, 0, 0, 0, 0, time.UTC)
	if t.Before(earliest) || t.After(latest) {
		return time.Time{}, errcode.New(errcode.DateOutOfRange, "%s must lie between %d-01-01 and %d-01-01 (UTC); a date as an end means the end of that day, so the last end date is %d-12-31",
			field, EarliestYear, LatestYear, LatestYear-1)
	}
	return t, nil
}
