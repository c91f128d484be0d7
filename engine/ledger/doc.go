// Package ledger is cleanroom's persistent privacy-budget ledger, kept in the control-plane
// SQLite store.
//
// The ledger's invariant: no account's spent budget ever exceeds its total, and no result is
// released without a debit. Budgets are (epsilon, delta) accounts — a grant's budget, a dataset's
// lifetime cap. A job reserves its cost on all of its accounts in one transaction before it runs;
// the reservation becomes a debit when the result is released, or is refunded when the job fails
// without releasing:
//
//	Reserve (all accounts, one tx; refused → nothing written)
//	     │
//	     ▼
//	 reserved ──Commit──▶ debited    (result released)
//	     │
//	     └─────Refund───▶ refunded   (failed before release)
//
// A crash leaves reservations standing, and a standing reservation counts as spent, so a crash can
// waste budget but never release without paying. Composition is sequential (basic): an account's
// spent budget is the sum of the costs of its jobs that are not refunded.
//
// Budget is allocated, not raced for. Allocate opens a holder account (a grant) by carving its
// total out of each source account (the lifetime budget of each dataset it names), all or
// nothing, in one write transaction, so two allocations racing for the last budget cannot both
// succeed. A job charged to the holder and to a source spends from the allocation: it is checked
// against the holder alone, and counts in the source only through the allocation. The invariant
// per source: total ≥ the outstanding parts of its allocations + the charges on it that no
// allocation covers (those of holders opened without one, as grants approved before allocations
// existed); per holder: spent ≤ total ≤ what it holds from each source. CloseAllocations ends a
// holder's allocations (revoked, expired, cancelled) and, when asked, returns what it never
// spent: the holder's total drops to its spent, and the allocation keeps amount, returned part,
// reason and time. Allocations are never deleted and a closed one never changes.
//
//	source (dataset) ──Allocate──▶ holder (grant) ──Reserve──▶ job
//	        ▲                                  │
//	        └──────── CloseAllocations ────────┘ (unspent part, if returned)
//
// Amounts are kept as exact integers — epsilon in units of 1e-12, delta in units of 1e-18 — not as
// floats, so fifty reservations of 0.1 fit a total of 5 exactly and the fifty-first is refused. A
// float is converted through its shortest decimal form; a cost is rounded up to the next unit and
// a total down, so rounding only ever refuses.
//
// Writers are serialised twice: by a semaphore inside the process and by SQLite's BEGIN IMMEDIATE
// (the DSN's _txlock=immediate) across processes, with the database in WAL mode and a busy
// timeout. Every balance check and the writes it guards happen in one such transaction.
package ledger
