package server

import "github.com/c1b99f93/cleanroom/server/governance"

// GovernanceDeps exposes the governance service's dependencies over a server's engine and
// store, for tests that wrap them (the crash test).
func GovernanceDeps(s *Server) governance.Deps { return s.governanceDeps() }

// StoreOf is a server's governance store, for tests that check it against the ledger and log.
func StoreOf(s *Server) *governance.Store { return s.store }
