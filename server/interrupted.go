package server

import (
	"context"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// failInterrupted ends the jobs a previous process left running. A job whose outcome the runner
// had already stored, unseen, for the end of its completion quantum finished: that outcome is
// shown now. Every other job gets its job_interrupted record first (after the budget_reserved
// record the process may have died before appending, from the ledger), then is failed in the
// store: a crash between the two leaves the job running, and the next start finds the record
// and only fails it, so no failed job lacks the record and none has two. The record says
// whether the log already holds the job's release: a process killed after the engine recorded
// a release (debit final, receipt signed) but before the runner stored the outcome leaves a
// release the applicant never received (a narrow gap now: the runner stores the outcome as soon
// as the engine returns it). The job is failed, stays charged, and its record and message say
// so rather than "nothing was released".
func (s *Server) failInterrupted(ctx context.Context) ([]string, error) {
	all, err := s.store.Jobs(ctx, governance.JobFilter{State: api.JobRunning})
	if err != nil || len(all) == 0 {
		return nil, err
	}
	// A job whose outcome was stored but not yet shown (the process died during the completion
	// quantum) finished: its outcome is shown now, and it was not interrupted.
	var running []governance.Job
	for _, j := range all {
		shown, err := s.store.ApplyPendingOutcome(ctx, j.ID, s.now().UTC())
		if err != nil {
			return nil, err
		}
		if !shown {
			running = append(running, j)
		}
	}
	if len(running) == 0 {
		return nil, nil
	}
	ids := make(map[string]bool, len(running))
	for _, j := range running {
		ids[j.ID] = true
	}
	ents, err := s.eng.Audit().Records(func(typ, job string) bool {
		return ids[job] && (typ == provenance.TypeRelease || typ == provenance.TypeJobInterrupted)
	})
	if err != nil {
		return nil, err
	}
	released, recorded := map[string]bool{}, map[string]bool{}
	for _, e := range ents {
		r, err := e.Decode()
		if err != nil {
			return nil, err
		}
		switch r.Type {
		case provenance.TypeRelease:
			released[r.Job] = true
		case provenance.TypeJobInterrupted:
			recorded[r.Job] = true
		}
	}
	var failed []string
	for _, j := range running {
		if !recorded[j.ID] {
			if err := s.eng.ReconcileInterrupted(ctx, j.ID); err != nil {
				return failed, err
			}
			if _, err := s.eng.Record(ctx, j.ID, &provenance.JobInterrupted{Released: released[j.ID]}); err != nil {
				return failed, err
			}
		}
		msg := "the server stopped while this job ran; nothing of it was released, and what it reserved stays charged"
		if released[j.ID] {
			msg = "the server stopped after this job's release was recorded but before its result was stored; the result is not available, and what it spent stays charged"
		}
		if _, err := s.store.UpdateJob(ctx, j.ID, []string{api.JobRunning}, func(sj *governance.Job) error {
			sj.State, sj.UpdatedAt = api.JobFailed, s.now().UTC()
			sj.Error = &api.Error{Code: string(errcode.Internal), Message: msg}
			return nil
		}); err != nil {
			return failed, err
		}
		failed = append(failed, j.ID)
	}
	return failed, nil
}
