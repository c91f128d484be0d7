package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/sandbox"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// errCrash is what every write returns once the process is, for the test, dead.
var errCrash = errors.New("injected crash")

// faults lets the first limit writes of a decision through and fails every later one, as if
// the process died after write limit: nothing more reaches the disk.
type faults struct {
	mu       sync.Mutex
	n, limit int
}

func (f *faults) write() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n >= f.limit {
		return errCrash
	}
	f.n++
	return nil
}

func (f *faults) crashed() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.n >= f.limit }

type faultyLog struct {
	governance.Log
	f *faults
}

func (l faultyLog) Record(ctx context.Context, job string, ev provenance.Event) (uint64, error) {
	if err := l.f.write(); err != nil {
		return 0, err
	}
	return l.Log.Record(ctx, job, ev)
}

type faultyBudget struct {
	governance.Budget
	f *faults
}

func (b faultyBudget) OpenGrant(ctx context.Context, grant string, eps, delta float64, datasets []string) error {
	if err := b.f.write(); err != nil {
		return err
	}
	return b.Budget.OpenGrant(ctx, grant, eps, delta, datasets)
}

func (b faultyBudget) CloseGrant(ctx context.Context, grant, reason string, returnUnspent bool) error {
	if err := b.f.write(); err != nil {
		return err
	}
	return b.Budget.CloseGrant(ctx, grant, reason, returnUnspent)
}

type faultyHolds struct {
	governance.Holds
	f *faults
}

func (h faultyHolds) RecordReview(ctx context.Context, job string, by provenance.Principal, approve bool, reason string) error {
	if err := h.f.write(); err != nil {
		return err
	}
	return h.Holds.RecordReview(ctx, job, by, approve, reason)
}

func (h faultyHolds) Release(ctx context.Context, job string, hold, output json.RawMessage, reviewers []string) (json.RawMessage, []byte, error) {
	if err := h.f.write(); err != nil {
		return nil, nil, err
	}
	return h.Holds.Release(ctx, job, hold, output, reviewers)
}

func (h faultyHolds) EndHold(ctx context.Context, job string) error {
	if err := h.f.write(); err != nil {
		return err
	}
	return h.Holds.EndHold(ctx, job)
}

func (h faultyHolds) Withhold(ctx context.Context, job string, code errcode.Code, reason string) error {
	if err := h.f.write(); err != nil {
		return err
	}
	return h.Holds.Withhold(ctx, job, code, reason)
}

// faultyStore fails a store write before it commits: a write inside a transaction (a review,
// a job update) counts after the engine's writes it makes within that transaction.
type faultyStore struct {
	governance.State
	f *faults
}

func (s faultyStore) DecideApplication(ctx context.Context, id string, update func(*api.Application), g *api.Grant) error {
	if err := s.f.write(); err != nil {
		return err
	}
	return s.State.DecideApplication(ctx, id, update, g)
}

func (s faultyStore) SetGrantState(ctx context.Context, id string, from []string, to string, at time.Time) (api.Grant, error) {
	if err := s.f.write(); err != nil {
		return api.Grant{}, err
	}
	return s.State.SetGrantState(ctx, id, from, to, at)
}

func (s faultyStore) UpdateJob(ctx context.Context, id string, from []string, edit func(*governance.Job) error) (governance.Job, error) {
	return s.State.UpdateJob(ctx, id, from, func(j *governance.Job) error { return errors.Join(edit(j), s.f.write()) })
}

func (s faultyStore) AddReview(ctx context.Context, job string, r api.Review, edit func(*governance.Job) error) (governance.Job, error) {
	return s.State.AddReview(ctx, job, r, func(j *governance.Job) error {
		if err := edit(j); err != nil {
			return err
		}
		return s.f.write()
	})
}

// crashFixture is the state every crash case starts from, kept in a template data directory.
type crashFixture struct {
	dir       string
	pending   string // a pending application
	grant     string // an active grant with a job held for review (one of two approvals given)
	suspended string // a suspended grant
	held      string
	end       time.Time // when grant ends
}

func newCrashFixture(t *testing.T, clk *clock) crashFixture {
	t.Helper()
	fx := crashFixture{dir: t.TempDir()}
	p := start(t, fx.dir, clk)
	fx.grant = setupGrant(t, p, 3)
	held := p.waitJob("insurer-1", p.submit("insurer-1", fx.grant, byIncome).ID)
	if held.State != api.JobInReview || held.Review.Required != 2 {
		t.Fatalf("the fixture's job is %+v, want in_review for two reviewers", held)
	}
	fx.held = held.ID
	p.must("rev-1", "POST", "/v1/reviews/"+held.ID+"/approve", nil, nil)
	fx.suspended = p.approve(p.apply("insurer-2", 0.5, 1e-8))
	p.must("op-1", "POST", "/v1/grants/"+fx.suspended+"/suspend", api.ReasonRequest{Reason: "audit"}, nil)
	fx.pending = p.apply("insurer-2", 0.5, 1e-8)
	var g api.Grant
	p.must("op-1", "GET", "/v1/grants/"+fx.grant, nil, &g)
	fx.end = g.End
	p.stop()
	return fx
}

func openServer(t *testing.T, dir string, clk *clock) *server.Server {
	t.Helper()
	ps, err := server.ParsePrincipals([]byte(principalsYAML))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), server.Config{DataDir: dir, Principals: ps, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), WorkerDB: sandbox.DBLimits{MemoryLimit: "2GB"}})
	if err != nil {
		t.Fatalf("reopening the server: %v", err)
	}
	return srv
}

// TestGovernanceCrashBetweenAnyTwoWritesIsReconciled runs each governance decision with a crash
// injected after its k-th write, for every k until the decision completes, then reopens the
// server on the same data directory and checks that start-up reconciled it: every intent has
// one outcome, the log verifies, no allocation is without a grant in force nor a grant in force
// without its allocation, the store's application, grant and job states are those the log
// records.
func TestGovernanceCrashBetweenAnyTwoWritesIsReconciled(t *testing.T) {
	if testing.Short() {
		t.Skip("opens the server a hundred times")
	}
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	fx := newCrashFixture(t, &clock{now: start})
	op := provenance.Principal{Name: "op-1", Role: "operator", Org: "platform"}
	rev2 := provenance.Principal{Name: "rev-2", Role: "reviewer", Org: "platform"}
	cases := []struct {
		name string
		late bool // run after the grant's period ended
		run  func(ctx context.Context, svc *governance.Service, st governance.State) error
	}{
		{"approve application", false, func(ctx context.Context, svc *governance.Service, st governance.State) error {
			a, err := st.Application(ctx, fx.pending)
			if err == nil {
				_, err = svc.Approve(ctx, op, a, governance.ApproveTerms{})
			}
			return err
		}},
		{"reject application", false, func(ctx context.Context, svc *governance.Service, st governance.State) error {
			a, err := st.Application(ctx, fx.pending)
			if err == nil {
				_, err = svc.Reject(ctx, op, a, "outside the declared scope")
			}
			return err
		}},
		{"suspend grant", false, transition(fx.grant, governance.Suspend, op)},
		{"resume grant", false, transition(fx.suspended, governance.Resume, op)},
		{"revoke grant with a held output", false, transition(fx.grant, governance.Revoke, op)},
		{"expire grant", true, func(ctx context.Context, svc *governance.Service, _ governance.State) error {
			return svc.Settle(ctx, false)
		}},
		{"approve held output (second approval releases)", false, decide(fx.held, rev2, true)},
		{"reject held output", false, decide(fx.held, rev2, false)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k := 0; ; k++ {
				if k > 20 {
					t.Fatal("the decision never completed")
				}
				clk := &clock{now: start}
				dir := filepath.Join(t.TempDir(), fmt.Sprint(k))
				copyDir(t, fx.dir, dir)
				srv := openServer(t, dir, clk)
				if c.late {
					clk.Set(fx.end.Add(time.Hour))
				}
				f := &faults{limit: k}
				d := server.GovernanceDeps(srv)
				d.Log, d.Budget = faultyLog{d.Log, f}, faultyBudget{d.Budget, f}
				d.Holds, d.Store = faultyHolds{d.Holds, f}, faultyStore{d.Store, f}
				err := c.run(context.Background(), governance.NewService(d), d.Store)
				crashed := f.crashed() && err != nil
				if err != nil && !errors.Is(err, errCrash) {
					t.Fatalf("crash after write %d: %v, want the injected crash", k, err)
				}
				if err := srv.Close(); err != nil {
					t.Fatal(err)
				}
				srv = openServer(t, dir, clk)
				checkReconciled(t, fmt.Sprintf("crash after write %d", k), srv, clk.Now())
				if err := srv.Close(); err != nil {
					t.Fatal(err)
				}
				if !crashed && err == nil {
					t.Logf("%d writes", k)
					return
				}
			}
		})
	}
}

func transition(grant string, act governance.GrantAction, by provenance.Principal) func(context.Context, *governance.Service, governance.State) error {
	return func(ctx context.Context, svc *governance.Service, st governance.State) error {
		g, err := st.Grant(ctx, grant)
		if err == nil {
			_, err = svc.Transition(ctx, by, g, act, "crash test")
		}
		return err
	}
}

func decide(job string, by provenance.Principal, approve bool) func(context.Context, *governance.Service, governance.State) error {
	return func(ctx context.Context, svc *governance.Service, st governance.State) error {
		j, err := st.Job(ctx, job)
		if err == nil {
			_, err = svc.Decide(ctx, by, j, approve, "crash test")
		}
		return err
	}
}

// checkReconciled asserts that store, ledger and log agree.
func checkReconciled(t *testing.T, when string, srv *server.Server, now time.Time) {
	t.Helper()
	ctx := context.Background()
	audit := srv.Engine().Audit()
	if rep, err := audit.Verify(); err != nil || !rep.OK() {
		t.Fatalf("%s: the log does not verify: %+v %v", when, rep, err)
	}
	ents, err := audit.Records(func(string, string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	intents, outcomes := map[string]bool{}, map[string]int{}
	approved, rejected, released, withheld := map[string]int{}, map[string]int{}, map[string]bool{}, map[string]bool{}
	grantState := map[string]string{}
	for _, ent := range ents {
		r, err := ent.Decode()
		if err != nil {
			t.Fatal(err)
		}
		switch ev := r.Event.(type) {
		case *provenance.GovernanceIntent:
			intents[ev.ID] = true
		case *provenance.GovernanceOutcome:
			outcomes[ev.ID]++
		case *provenance.ApplicationApproved:
			approved[ev.Application]++
		case *provenance.ApplicationRejected:
			rejected[ev.Application]++
		case *provenance.GrantState:
			grantState[ev.Grant] = ev.To
		case *provenance.Release:
			released[r.Job] = true
		case *provenance.Withheld:
			withheld[r.Job] = true
		}
	}
	for id := range intents {
		if outcomes[id] != 1 {
			t.Errorf("%s: intent %s has %d outcomes, want 1", when, id, outcomes[id])
		}
	}
	d := server.GovernanceDeps(srv)
	st := server.StoreOf(srv)
	apps, err := st.Applications(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		want := map[string][2]int{api.ApplicationPending: {0, 0}, api.ApplicationApproved: {1, 0}, api.ApplicationRejected: {0, 1}}[a.State]
		if got := [2]int{approved[a.ID], rejected[a.ID]}; got != want {
			t.Errorf("%s: application %s is %s with %d application_approved and %d application_rejected records", when, a.ID, a.State, got[0], got[1])
		}
	}
	allocated, err := d.Budget.AllocatedGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{}
	for _, id := range allocated {
		open[id] = true
	}
	grants, err := st.Grants(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, g := range grants {
		known[g.ID] = true
		inForce := g.State != api.GrantRevoked && now.Before(g.End)
		if inForce != open[g.ID] {
			t.Errorf("%s: grant %s is %s (period ends %s) and its allocation open=%v", when, g.ID, g.State, g.End, open[g.ID])
		}
		want := grantState[g.ID]
		if want == "" {
			want = api.GrantActive
		}
		if g.State != want {
			t.Errorf("%s: grant %s is %s in the store, %s in the log", when, g.ID, g.State, want)
		}
	}
	for id := range open {
		if !known[id] {
			t.Errorf("%s: an allocation is open for %s, which is no grant", when, id)
		}
	}
	jobs, err := st.Jobs(ctx, governance.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		switch {
		case j.State == api.JobReleased && !released[j.ID]:
			t.Errorf("%s: job %s is released without a release record", when, j.ID)
		case j.State == api.JobDenied && j.Review != nil && !withheld[j.ID]:
			t.Errorf("%s: held job %s is denied without a withheld record", when, j.ID)
		case j.State == api.JobInReview && withheld[j.ID]:
			t.Errorf("%s: job %s was withheld but is still in review", when, j.ID)
		}
	}
}

// copyDir copies a closed server's data directory.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return nil // sockets and the like: a closed server leaves none that matter
	})
	if err != nil {
		t.Fatal(err)
	}
}
