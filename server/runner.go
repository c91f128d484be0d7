package server

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// runJobs claims queued jobs one at a time, in the scheduler's fair order (sched.go), until
// the server stops.
func (s *Server) runJobs() {
	defer s.runners.Done()
	for {
		select {
		case <-s.stopping:
			return
		default:
		}
		j, ok, err := s.store.ClaimJob(s.jobsCtx, s.now(), s.sched.pick)
		if err != nil {
			s.log.Error("claiming a queued job failed", "err", err)
		}
		if err != nil || !ok {
			select {
			case <-s.wake:
			case <-s.stopping:
				return
			case <-time.After(5 * time.Second): // a job queued by another process, or a store hiccup
			}
			continue
		}
		s.kick() // more may be queued: let another runner look
		s.notify()
		s.execute(j)
		s.notify()
		s.kick() // a running slot came free: a runner idle at an organisation's cap may start one
	}
}

// execute runs a claimed job: the grant's state, period, job kinds and dataset scope are
// checked again now (a suspension or revocation takes effect on the next job), then the
// engine runs it and the outcome is stored.
func (s *Server) execute(j governance.Job) {
	ctx := s.jobsCtx
	claimed := time.Now()
	g, err := s.store.Grant(ctx, j.Grant)
	if err == nil {
		err = s.jobAllowed(g, j.Kind)
	}
	var usage *policy.GrantUsage
	if err == nil {
		usage, err = s.usage(ctx, j.Grant, j.ID)
	}
	req := api.JobRequest{Grant: j.Grant, Kind: j.Kind, SQL: j.SQL, Options: j.Options, Federated: j.Federated, Model: j.Model, Wasm: j.Wasm}
	if err == nil && j.Kind == api.KindVerify {
		req.Verify, err = s.verifyInput(ctx, j.ID)
	}
	var out *engine.Outcome
	if err == nil {
		out, err = s.eng.Run(ctx, engineJob(j.ID, policy.Principal{Name: j.SubmittedBy, Role: "applicant", Org: j.Org}, g, req, usage))
	}
	// The outcome is stored at once, unseen, and shown when the completion quantum ends: a
	// crash in between loses nothing (the next start shows it), and no reader sees it early.
	// It is stored even when the server is stopping: the engine has recorded it.
	sctx := context.WithoutCancel(ctx)
	if err == nil && out.Repeat {
		// An identical earlier release answered the job: it read no data, so its duration
		// hides nothing and it is shown at once (docs/threat-model.md).
		s.showRepeat(sctx, j.ID, out)
		return
	}
	final, ferr := s.store.Job(sctx, j.ID)
	if ferr == nil {
		ferr = outcomeOf(&final, out, err)
	}
	if ferr == nil {
		ferr = s.store.SavePendingOutcome(sctx, final)
	}
	s.completeAt(claimed)
	if ferr != nil {
		s.log.Error("storing a job's outcome failed", "job", j.ID, "err", ferr)
		return
	}
	if _, aerr := s.store.ApplyPendingOutcome(sctx, j.ID, s.now().UTC()); aerr != nil {
		s.log.Error("showing a job's outcome failed; the next start shows it", "job", j.ID, "err", aerr)
	}
}

// showRepeat stores and shows, in one write, the outcome of a job an earlier release answered.
func (s *Server) showRepeat(ctx context.Context, id string, out *engine.Outcome) {
	_, err := s.store.UpdateJob(ctx, id, []string{api.JobRunning}, func(sj *governance.Job) error {
		if err := outcomeOf(sj, out, nil); err != nil {
			return err
		}
		sj.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		s.log.Error("storing a job's outcome failed", "job", id, "err", err)
	}
}

// outcomeOf fills a running job's final document from the engine's outcome or error.
func outcomeOf(sj *governance.Job, out *engine.Outcome, err error) error {
	if err != nil {
		pub := errcode.Public(err)
		sj.State = finalState(pub.Code)
		sj.Error = &api.Error{Code: string(pub.Code), Message: pub.Message, Position: pub.Position}
		return nil
	}
	sj.Datasets = out.Datasets
	var doc any = out.Result
	switch {
	case out.Verify != nil:
		doc = out.Verify
	case out.Model != nil:
		doc = out.Model
	case out.Wasm != nil:
		doc = out.Wasm
	}
	res, merr := json.Marshal(doc)
	if merr != nil {
		return merr
	}
	sj.Output = res
	if out.Held == nil {
		sj.State, sj.Receipt = api.JobReleased, string(out.Receipt)
		return nil
	}
	hold, merr := json.Marshal(out.Held)
	if merr != nil {
		return merr
	}
	sj.State, sj.Hold = api.JobInReview, hold
	sj.Review = &api.JobReview{Required: out.Held.Reviewers, Reasons: out.Held.Reasons, Reviews: []api.Review{}}
	return nil
}

// completeAt waits, before a job's outcome becomes visible, until a whole number of completion
// quanta has passed since the job was claimed. How long a job computes depends on the raw data
// (how many rows a filter keeps, how many partitions a key has, and — by DuckDB's try(), which
// re-evaluates a failing vector row by row — whether any row of an expression fails;
// sandbox/total.go): an applicant polling its job would otherwise time that. Rounding up to
// the quantum leaves a difference δ visible only when it carries the job across a quantum's
// end, about δ/quantum of the time (docs/threat-model.md has the measured figures). A server
// that is stopping stores at once.
func (s *Server) completeAt(claimed time.Time) {
	q := s.cfg.CompletionQuantum
	if q == 0 {
		q = DefaultCompletionQuantum
	}
	if q < 0 {
		return
	}
	elapsed := time.Since(claimed)
	end := max(1, (elapsed+q-1)/q) * q
	select {
	case <-time.After(end - elapsed):
	case <-s.stopping:
	}
}

// finalState is the state a job ends in for an error code: refused by the platform's rules
// (denied) or stopped by a failure (failed).
func finalState(code errcode.Code) string {
	switch code {
	case errcode.SandboxTimeout, errcode.SandboxFailed, errcode.QueryFailed, errcode.Internal,
		errcode.ProvenanceFailed, errcode.Canceled, errcode.Unavailable:
		return api.JobFailed
	}
	return api.JobDenied
}

// jobAllowed enforces the grant: active, within its period, and for a job kind it covers.
func (s *Server) jobAllowed(g api.Grant, kind string) error {
	if err := s.grantUsable(g); err != nil {
		return err
	}
	if !slices.Contains(g.JobKinds, kind) {
		return errcode.New(errcode.Forbidden, "grant %s does not cover %s jobs", g.ID, kind)
	}
	if kind != api.KindSQL && kind != api.KindVerify && kind != api.KindFederated && kind != api.KindModel && kind != api.KindWasm {
		return errcode.New(errcode.UnsupportedJobKind, "%s jobs are not available on this platform yet", kind)
	}
	return nil
}

// verifyInput reads a queued verification's claims.
func (s *Server) verifyInput(ctx context.Context, job string) (*api.VerifyRequest, error) {
	b, err := s.store.JobInput(ctx, job)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the verification's claims could not be read")
	}
	var req api.VerifyRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the verification's claims could not be read")
	}
	return &req, nil
}

// grantUsable refuses a revoked, suspended or out-of-period grant.
func (s *Server) grantUsable(g api.Grant) error {
	now := s.now()
	switch {
	case g.State == api.GrantRevoked:
		return errcode.New(errcode.GrantRevoked, "grant %s has been revoked", g.ID)
	case g.State == api.GrantSuspended:
		return errcode.New(errcode.GrantSuspended, "grant %s is suspended", g.ID)
	case now.Before(g.Start):
		return errcode.New(errcode.GrantExpired, "grant %s is valid from %s", g.ID, g.Start.Format(time.RFC3339))
	case !now.Before(g.End):
		return errcode.New(errcode.GrantExpired, "grant %s ended at %s", g.ID, g.End.Format(time.RFC3339))
	}
	return nil
}

// waitJob returns a job once it is no longer queued or running, or when wait has passed.
func (s *Server) waitJob(ctx context.Context, id string, wait time.Duration) (governance.Job, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		ch := s.changes()
		j, err := s.store.Job(ctx, id)
		if err != nil || (j.State != api.JobQueued && j.State != api.JobRunning) {
			return j, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			return j, nil
		case <-ctx.Done():
			return j, nil
		case <-s.stopping:
			return j, nil
		}
	}
}

// usage counts the grant's other jobs of the last hour and day, for the policy's rate limits.
func (s *Server) usage(ctx context.Context, grant, job string) (*policy.GrantUsage, error) {
	now := s.now()
	hour, err := s.store.CountJobs(ctx, grant, now.Add(-time.Hour), job)
	if err != nil {
		return nil, err
	}
	day, err := s.store.CountJobs(ctx, grant, now.Add(-24*time.Hour), job)
	if err != nil {
		return nil, err
	}
	return &policy.GrantUsage{JobsLastHour: hour, JobsLastDay: day}, nil
}
