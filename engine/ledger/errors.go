package ledger

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/errcode"
)

// ErrBudgetExhausted is matched (errors.Is) by every *ExhaustedError.
var ErrBudgetExhausted = errcode.New(errcode.BudgetExhausted, "the privacy budget is exhausted")

// ErrUnknownAccount is wrapped when an operation names an account that does not exist.
var ErrUnknownAccount = errcode.New(errcode.UnknownAccount, "unknown budget account")

// ErrDuplicateJob is wrapped when a job that already has a ledger entry reserves again.
var ErrDuplicateJob = errcode.New(errcode.DuplicateJob, "the job already has a budget reservation")

// ErrNotReserved is wrapped when Commit or Refund finds the job not in the reserved state:
// never reserved, already debited, or already refunded.
var ErrNotReserved = errcode.New(errcode.NotReserved, "the job holds no budget reservation")

// ErrAccountMismatch is wrapped when EnsureAccount finds the account with a different total.
var ErrAccountMismatch = errcode.New(errcode.AccountMismatch, "the budget account exists with a different total")

// ErrInvalidBudget is wrapped when a budget or cost is negative, not finite, or out of range.
var ErrInvalidBudget = errcode.New(errcode.InvalidBudget, "the budget is invalid")

// ErrInvalidReservation is wrapped when a reservation is malformed: no job, no accounts, an
// account listed twice, or a mechanism that is not JSON.
var ErrInvalidReservation = errcode.New(errcode.InvalidReservation, "the budget reservation is invalid")

// ExhaustedError reports the account that refused a reservation. It wraps ErrBudgetExhausted.
type ExhaustedError struct {
	Account   string
	Remaining Budget // what the account had left (never negative)
	Requested Budget // the job's cost
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("%s: account %q has epsilon=%g delta=%g remaining, job requested epsilon=%g delta=%g",
		errcode.BudgetExhausted, e.Account, e.Remaining.Epsilon, e.Remaining.Delta, e.Requested.Epsilon, e.Requested.Delta)
}

// Unwrap makes errors.Is(err, ErrBudgetExhausted) and errcode.Code work.
func (e *ExhaustedError) Unwrap() error { return ErrBudgetExhausted }

// ErrInsufficient is matched (errors.Is) by every *InsufficientError.
var ErrInsufficient = errcode.New(errcode.DatasetBudgetInsufficient, "the budget has too little left to allocate")

// InsufficientError reports the source account that refused an allocation: what it had left
// after its earlier allocations and the charges outside them, and what was asked. It wraps
// ErrInsufficient.
type InsufficientError struct {
	Account   string
	Remaining Budget // never negative
	Requested Budget
}

func (e *InsufficientError) Error() string {
	return fmt.Sprintf("%s: account %q has epsilon=%g delta=%g left to allocate, epsilon=%g delta=%g requested",
		errcode.DatasetBudgetInsufficient, e.Account, e.Remaining.Epsilon, e.Remaining.Delta, e.Requested.Epsilon, e.Requested.Delta)
}

// Unwrap makes errors.Is(err, ErrInsufficient) and errcode.Code work.
func (e *InsufficientError) Unwrap() error { return ErrInsufficient }
