package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/connectors"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/he/verify"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
	"github.com/c1b99f93/cleanroom/server"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

func newDemoCmd() *cobra.Command {
	var datasets, dataDir, output string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the flagship scenario end to end on the committed test data, through a real server",
		Long: `demo starts a temporary platform — the server on a loopback port (127.0.0.1, a free port)
with its sandboxed worker, over a temporary data directory — and plays the medical-insurance
scenario through the HTTP API as the platform's users would, each with a fresh random token
held only in memory: the providers register their datasets; an insurer applies for a grant
(an application naming an L4 dataset is refused) and the operator approves it; the insurer's
DP statistics run as jobs, an output of L3 data is held until two independent reviewers approve
it, and attempts to read identifiers, export a file or query an L4 dataset are refused with
their codes; then the remaining budget, and an auditor's check of the provenance log. The
server is shut down at the end.`,
		Example: "  cleanroom demo\n  cleanroom demo --output json\n  cleanroom demo --datasets testdata/datasets --keep",
		PreRunE: func(*cobra.Command, []string) error { return checkOutput(output) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				d, err := os.MkdirTemp("", "cleanroom-demo-")
				if err != nil {
					return err
				}
				dataDir = d
				if !keep {
					defer os.RemoveAll(d)
				}
			}
			// Ctrl-C shuts the temporary server down cleanly (and removes its data directory).
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), datasets, dataDir, output)
		},
	}
	cmd.Flags().StringVar(&datasets, "datasets", "testdata/datasets", "directory of catalog specs (*.yaml) and their data")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "platform data directory, kept afterwards (default: a temporary one)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data directory for inspection")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func checkOutput(format string) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("--output must be table or json, not %q", format)
	}
	return nil
}

// demoReport is everything the demo shows, rendered as a table or as JSON.
type demoReport struct {
	DataDir      string          `json:"data_dir"`
	Server       string          `json:"server"` // the temporary server's loopback URL
	PolicyBundle string          `json:"policy_bundle"`
	Isolation    *wire.Isolation `json:"isolation"`
	// Principals are the demo's users (their tokens are never printed).
	Principals []api.Principal `json:"principals"`
	Datasets   []demoDataset   `json:"datasets"`
	// RefusedApplication is the applicant's first attempt, which names the L4 dataset.
	RefusedApplication *demoRefusal     `json:"refused_application"`
	Application        *api.Application `json:"application"`
	ApprovedBy         string           `json:"approved_by"`
	// Grant is the grant as it stands after the jobs (its budget shows what they spent).
	Grant *api.Grant `json:"grant"`
	Jobs  []demoJob  `json:"jobs"`
	// Verification is insurer-1 checking its customers' declared income bands (kind verify).
	Verification *demoVerification `json:"verification"`
	// Model is insurer-1's DP claim-cost model (kind model).
	Model *api.ModelResult `json:"model"`
	// Wasm is insurer-1's custom model code (kind wasm), the sample module.
	Wasm       *demoWasm           `json:"wasm"`
	Budget     []api.LedgerBalance `json:"budget"`
	Provenance api.VerifyReport    `json:"provenance"`
	AuditedBy  string              `json:"audited_by"`
	Replayed   int                 `json:"replayed"`          // jobs the auditor replayed, every stage matching
	Receipts   int                 `json:"receipts_verified"` // release receipts checked with the public key
}

type demoDataset struct {
	Name         string        `json:"name"`
	Provider     string        `json:"provider"`
	RegisteredBy string        `json:"registered_by"`
	Grade        catalog.Grade `json:"grade"`
	Public       bool          `json:"public"`
	Rows         int64         `json:"rows"`
	Snapshot     string        `json:"snapshot"`
}

// demoVerification is the demo's verification (核验): how many declared facts were checked,
// how many matched, how many the demo's customers had declared truthfully (the demo knows,
// the platform does not), and the jobs that answered them.
type demoVerification struct {
	Attribute string   `json:"attribute"`
	Claims    int      `json:"claims"`
	Matched   int      `json:"matched"`
	Truthful  int      `json:"truthful"`
	Absent    int      `json:"absent"`
	Jobs      []string `json:"jobs"`
	Seconds   float64  `json:"seconds"`
	// Again is the refusal of asking one of the same facts again (once per 30 days).
	Again *demoRefusal `json:"again"`
}

// demoRefusal is a request the server refused: who asked for what, and the API's answer.
type demoRefusal struct {
	Who     string `json:"who"`
	Action  string `json:"action"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type demoJob struct {
	Title  string         `json:"title"`
	SQL    string         `json:"sql"`
	ID     string         `json:"id,omitempty"`
	State  string         `json:"state"`
	Result *engine.Result `json:"result,omitempty"`
	Error  *api.Error     `json:"error,omitempty"`
	// Held: the egress policy held the output for review (how many approvals, why);
	// ReviewedBy approved it, and Refusals are the review attempts separation of duties refused.
	Held       *api.JobReview `json:"held,omitempty"`
	ReviewedBy []string       `json:"reviewed_by,omitempty"`
	Refusals   []demoRefusal  `json:"refusals,omitempty"`
	// Explained is the free dry run asked for before submitting (steps marked explain).
	Explained *api.Explanation `json:"explained,omitempty"`
}

// demoStep is one job of the demo's applicant.
type demoStep struct {
	title string
	sql   string
	opts  plan.Options
	// explain asks for the free dry run first (it reads no data and spends nothing).
	explain bool
	// federated runs the SQL as one statistic over these datasets, each in its own data
	// domain, under a collective key (kind federated_sql).
	federated []string
}

var demoSteps = []demoStep{
	{title: "Visits and total cost by district (public partitions)",
		sql:  "SELECT district, COUNT(*) AS visits, SUM(cost) AS total_cost FROM medical_visits GROUP BY district",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Visits by month with the contribution bounds chosen under DP (a free dry run first; the answer states its bias)",
		sql:     "SELECT date_trunc('month', visit_date) AS month, COUNT(*) AS visits FROM medical_visits GROUP BY month ORDER BY month",
		opts:    plan.Options{Epsilon: 1},
		explain: true},
	{title: "Persons with an inpatient visit, by age band",
		sql:  "SELECT age_band, COUNT(DISTINCT person_id) AS persons FROM medical_visits WHERE inpatient GROUP BY age_band",
		opts: plan.Options{Epsilon: 0.5, MaxGroupsContributed: 1}},
	{title: "Visits by hospital in 2025 (no public domain: DP partition selection, at the default delta of 1/100 of the grant's)",
		sql:  "SELECT hospital_id, COUNT(*) AS visits FROM medical_visits WHERE visit_date >= DATE '2025-01-01' GROUP BY hospital_id",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 2, MaxContributionsPerGroup: 5}},
	{title: "Average, median and 90th percentile of cost per visit, by age band",
		sql:  "SELECT age_band, AVG(cost) AS mean_cost, MEDIAN(cost) AS median_cost, QUANTILE_CONT(cost, 0.9) AS p90_cost FROM medical_visits GROUP BY age_band ORDER BY age_band",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Visits and mean cost by income band (medical_visits joined with residents on person_id, bounded after the join; residents is L3: two-person review)",
		sql:  "SELECT r.income_band, COUNT(*) AS visits, AVG(v.cost) AS mean_cost FROM medical_visits v JOIN residents r ON v.person_id = r.person_id GROUP BY r.income_band",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Persons by number of visits (a per-unit subquery counts each person's visits, clamped to 1..10; the histogram is DP)",
		sql:  "SELECT visits, COUNT(*) AS persons FROM (SELECT person_id, GREATEST(LEAST(COUNT(*), 10), 1) AS visits FROM medical_visits GROUP BY person_id) AS per_person GROUP BY visits ORDER BY visits",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 1}},
	{title: "The first query again, spelled differently (answered from its release: no budget spent)",
		sql:  "select district, count(*) as visits, sum(cost) as total_cost from medical_visits group by 1",
		opts: plan.Options{Epsilon: 1, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5}},
	{title: "Care events by district across two data domains: the health commission's visits and the medical-insurance bureau's own-domain claims, one DP total under a collective key (neither domain's counts are seen by anyone)",
		sql:       "SELECT district, COUNT(*) AS visits_and_claims FROM medical_visits GROUP BY district",
		opts:      plan.Options{Epsilon: 0.5, MaxGroupsContributed: 1, MaxContributionsPerGroup: 5},
		federated: []string{"medical_visits", demoBureauClaims}},
	{title: "Attempt to read raw identifiers (must be refused)",
		sql: "SELECT person_id, cost FROM medical_visits WHERE cost > 40000"},
	{title: "Attempt to export a file (must be refused)",
		sql: "COPY medical_visits TO '/tmp/out.csv'"},
	{title: "Query on criminal_records, an L4 (不予开放) dataset no grant can include (must be refused)",
		sql: "SELECT COUNT(*) FROM criminal_records"},
}

// The demo's application: what insurer-1 asks for.
const (
	demoPurpose  = "Price a new outpatient cover product"
	demoScenario = "Actuarial pricing of outpatient cover: visit frequency, cost per visit and its spread by district, " +
		"age band, hospital and income band, from DP aggregates only; no individual record leaves the sandbox."
	// The grant is carved out of each dataset's lifetime budget at approval, so it must fit
	// the smallest: residents has epsilon 10 and delta 1e-6. Half its delta leaves room for
	// other organisations' grants.
	demoEpsilon = 8
	demoDelta   = 5e-7
	// demoL4 is the L4 dataset the applicant first asks for by mistake.
	demoL4 = "criminal_records"
)

// demoApplicationDatasets are the non-L4 private datasets the scenario needs.
var demoApplicationDatasets = []string{"medical_visits", "residents", "insurance_claims", demoBureauClaims}

// demoBureauClaims is the medical-insurance bureau's claims register kept in its own data domain
// (a worker of its own): the demo derives it from the committed claims (person, district,
// amount of every claim) and registers it there, so that one statistic can span two domains.
const (
	demoBureauClaims = "bureau_claims"
	demoBureauOrg    = "medical-insurance-bureau"
	demoBureauDomain = "insurance_bureau"
)

// demoReviewers are the operator-side reviewers: independent of the applicant and of each
// other, as a two-person review (双人复核) requires.
var demoReviewers = []string{"rev-1", "rev-2"}

func runDemo(ctx context.Context, out io.Writer, datasetDir, dataDir, format string) error {
	r, err := buildDemo(ctx, datasetDir, dataDir)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.writeTable(out)
	return nil
}

// demoPlatform is the temporary server and a client per principal.
type demoPlatform struct {
	srv     *server.Server
	url     string
	clients map[string]*client.Client
	stop    func() error
}

// principalsDoc is a principals file (YAML) for these principals, each with a fresh random
// token, and the tokens by name (kept in memory, never printed): the file holds only their
// SHA-256 digests.
func principalsDoc(principals []api.Principal) ([]byte, map[string]string, error) {
	type entry struct {
		Name        string `yaml:"name"`
		Role        string `yaml:"role"`
		Org         string `yaml:"org"`
		TokenSHA256 string `yaml:"token_sha256"`
	}
	var file struct {
		Principals []entry `yaml:"principals"`
	}
	tokens := map[string]string{}
	for _, p := range principals {
		tok, digest, err := server.NewToken()
		if err != nil {
			return nil, nil, err
		}
		tokens[p.Name] = tok
		file.Principals = append(file.Principals, entry{Name: p.Name, Role: p.Role, Org: p.Org, TokenSHA256: digest})
	}
	b, err := yaml.Marshal(&file)
	return b, tokens, err
}

// as is the client of a principal.
func (p *demoPlatform) as(name string) *client.Client { return p.clients[name] }

// startDemoPlatform generates the principals with fresh random tokens (kept in memory, never
// printed), and starts a server over dataDir on a free loopback port.
func startDemoPlatform(ctx context.Context, dataDir string, importRoots map[string]string, principals []api.Principal) (*demoPlatform, error) {
	b, tokens, err := principalsDoc(principals)
	if err != nil {
		return nil, err
	}
	ps, err := server.ParsePrincipals(b)
	if err != nil {
		return nil, err
	}
	srv, err := server.New(ctx, server.Config{DataDir: dataDir, Principals: ps, ImportRoots: importRoots})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	p := &demoPlatform{srv: srv, url: "http://" + ln.Addr().String(), clients: map[string]*client.Client{}}
	// stop shuts down gracefully: no new requests or jobs, running ones finish; then the stores
	// and the worker are closed, so the data directory holds a complete log.
	p.stop = func() error {
		cancel()
		serr := <-done
		return errors.Join(serr, srv.Close())
	}
	for name, tok := range tokens {
		c, err := client.New(p.url, tok, client.WithUserAgent("cleanroom-demo"))
		if err != nil {
			_ = p.stop()
			return nil, err
		}
		p.clients[name] = c
	}
	return p, nil
}

// refused turns the error of a request that must be refused into what the server answered.
func refused(who, action string, err error) (*demoRefusal, error) {
	if err == nil {
		return nil, fmt.Errorf("demo: %s: %s was not refused", who, action)
	}
	var ae *client.Error
	if !errors.As(err, &ae) {
		return nil, err
	}
	return &demoRefusal{Who: who, Action: action, Status: ae.Status, Code: ae.Code, Message: ae.Message}, nil
}

func providerName(org string) string { return "provider-" + org }

func buildDemo(ctx context.Context, datasetDir, dataDir string) (r *demoReport, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	paths, err := filepath.Glob(filepath.Join(datasetDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no catalog specs in %s (run from the repository root or pass --datasets)", datasetDir)
	}
	var specs []*catalog.Spec
	var principals []api.Principal
	importRoots := map[string]string{}
	for _, path := range paths {
		// LoadFile makes a relative source path absolute (against the spec's folder); the data
		// lie in a folder per provider organisation, <datasets>/<org>, that organisation's
		// import root.
		spec, err := catalog.LoadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		specs = append(specs, spec)
		if importRoots[spec.Provider], err = filepath.Abs(filepath.Join(datasetDir, spec.Provider)); err != nil {
			return nil, err
		}
		p := api.Principal{Name: providerName(spec.Provider), Role: "provider", Org: spec.Provider}
		if !slices.Contains(principals, p) {
			principals = append(principals, p)
		}
	}
	slices.SortFunc(principals, func(a, b api.Principal) int { return strings.Compare(a.Name, b.Name) })
	principals = append(principals,
		api.Principal{Name: "op-1", Role: "operator", Org: "platform"},
		api.Principal{Name: "insurer-1", Role: "applicant", Org: "acme-insurance"},
		api.Principal{Name: "rev-1", Role: "reviewer", Org: "platform"},
		api.Principal{Name: "rev-2", Role: "reviewer", Org: "platform"},
		api.Principal{Name: "aud-1", Role: "auditor", Org: "audit-office"},
	)

	// The bureau registers its own-domain register from a root of its own in the data directory.
	bureauRoot := filepath.Join(dataDir, "import", demoBureauOrg)
	bureauSpec, err := writeBureauClaims(ctx, filepath.Join(importRoots[demoBureauOrg], "insurance_claims.parquet"), bureauRoot)
	if err != nil {
		return nil, err
	}
	for _, spec := range specs { // the bureau's committed data moves to its new root with it
		if spec.Provider == demoBureauOrg {
			to := filepath.Join(bureauRoot, filepath.Base(spec.Source.Path))
			if err := copyFile(spec.Source.Path, to); err != nil {
				return nil, err
			}
			spec.Source.Path = to
		}
	}
	importRoots[demoBureauOrg] = bureauRoot
	specs = append(specs, bureauSpec)

	p, err := startDemoPlatform(ctx, dataDir, importRoots, principals)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := p.stop(); serr != nil && err == nil {
			r, err = nil, fmt.Errorf("demo: shutting the server down: %w", serr)
		}
	}()
	r = &demoReport{DataDir: dataDir, Server: p.url, Principals: principals}
	h, err := p.as("insurer-1").Health(ctx)
	if err != nil {
		return nil, err
	}
	r.PolicyBundle = h.PolicyDigest

	// Each provider registers its own datasets.
	for _, spec := range specs {
		who := providerName(spec.Provider)
		reg, err := p.as(who).RegisterDataset(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("%s registering %s: %w", who, spec.Name, err)
		}
		r.Datasets = append(r.Datasets, demoDataset{Name: reg.Name, Provider: spec.Provider, RegisteredBy: who,
			Grade: spec.Grade, Public: spec.Public, Rows: reg.Rows, Snapshot: reg.Digest})
	}
	if r.Isolation, err = p.srv.Engine().Isolation(ctx, catalog.DefaultDomain); err != nil {
		return nil, err
	}

	// insurer-1 applies; an application naming the L4 dataset is refused outright.
	insurer := p.as("insurer-1")
	now := time.Now().UTC()
	req := api.ApplicationRequest{Purpose: demoPurpose, Scenario: demoScenario, Datasets: demoApplicationDatasets,
		Start: now.Format(time.DateOnly), End: now.AddDate(1, 0, 0).Format(time.DateOnly),
		Epsilon: demoEpsilon, Delta: demoDelta, JobKinds: []string{api.KindSQL, api.KindVerify, api.KindFederated, api.KindModel, api.KindWasm}}
	withL4 := req
	withL4.Datasets = append(slices.Clone(req.Datasets), demoL4)
	_, aerr := insurer.CreateApplication(ctx, withL4)
	if r.RefusedApplication, err = refused("insurer-1", "apply for "+strings.Join(withL4.Datasets, ", "), aerr); err != nil {
		return nil, err
	}
	if r.Application, err = insurer.CreateApplication(ctx, req); err != nil {
		return nil, fmt.Errorf("insurer-1 applying: %w", err)
	}
	approved, err := p.as("op-1").ApproveApplication(ctx, r.Application.ID, api.ApproveRequest{})
	if err != nil {
		return nil, fmt.Errorf("op-1 approving %s: %w", r.Application.ID, err)
	}
	r.ApprovedBy = "op-1"
	if r.Application, err = insurer.Application(ctx, r.Application.ID); err != nil {
		return nil, err
	}

	for _, s := range demoSteps {
		var explained *api.Explanation
		if s.explain {
			if explained, err = p.as("insurer-1").Explain(ctx, demoRequest(approved.GrantID, s)); err != nil {
				return nil, fmt.Errorf("insurer-1 explaining %q: %w", s.title, err)
			}
		}
		job, err := runDemoJob(ctx, p, approved.GrantID, s)
		if err != nil {
			return nil, err
		}
		job.Explained = explained
		r.Jobs = append(r.Jobs, *job)
	}

	if r.Verification, err = runDemoVerification(ctx, p, approved.GrantID, datasetDir); err != nil {
		return nil, err
	}
	if r.Model, err = runDemoModel(ctx, p, approved.GrantID); err != nil {
		return nil, err
	}
	if r.Wasm, err = runDemoWasm(ctx, p, approved.GrantID, datasetDir); err != nil {
		return nil, err
	}

	// The budget: the grant's as the applicant reads it, each private dataset's lifetime
	// budget as the operator reads it.
	if r.Grant, err = insurer.Grant(ctx, approved.GrantID); err != nil {
		return nil, err
	}
	gb := r.Grant.Budget
	r.Budget = append(r.Budget, api.LedgerBalance{Account: engine.GrantAccount(r.Grant.ID),
		Total:     api.Budget{Epsilon: gb.EpsilonTotal, Delta: gb.DeltaTotal},
		Spent:     api.Budget{Epsilon: gb.EpsilonSpent, Delta: gb.DeltaSpent},
		Remaining: api.Budget{Epsilon: gb.EpsilonRemaining, Delta: gb.DeltaRemaining}})
	for _, d := range r.Datasets {
		if d.Public {
			continue
		}
		rep, err := p.as("op-1").Budget(ctx, client.BudgetDataset, d.Name)
		if err != nil {
			return nil, fmt.Errorf("op-1 reading the budget of %s: %w", d.Name, err)
		}
		r.Budget = append(r.Budget, rep.Balance)
	}

	// The auditor checks the provenance log's hash chain.
	rep, err := p.as("aud-1").VerifyAudit(ctx)
	if err != nil {
		return nil, fmt.Errorf("aud-1 verifying the audit log: %w", err)
	}
	if !rep.OK() {
		return nil, fmt.Errorf("provenance log does not verify: %s at line %d", rep.Problem, rep.FirstBad)
	}
	r.Provenance, r.AuditedBy = *rep, "aud-1"

	// The auditor replays every job from its records; each released one's receipt is checked
	// offline with the platform's public key alone.
	pub, err := p.as("aud-1").PublicKey(ctx)
	if err != nil {
		return nil, err
	}
	audited := slices.Clone(r.Jobs)
	for _, id := range r.Verification.Jobs {
		audited = append(audited, demoJob{ID: id, State: api.JobReleased})
	}
	if r.Wasm != nil && r.Wasm.Result != nil {
		audited = append(audited, demoJob{ID: r.Wasm.Result.Job, State: api.JobReleased})
	}
	for _, j := range audited {
		if j.ID == "" {
			continue
		}
		rp, err := p.as("aud-1").Replay(ctx, j.ID)
		if err != nil {
			return nil, fmt.Errorf("aud-1 replaying %s: %w", j.ID, err)
		}
		if !rp.Match {
			return nil, fmt.Errorf("the replay of job %s does not match its provenance: %+v", j.ID, rp.Stages)
		}
		r.Replayed++
		if j.State == api.JobReleased {
			full, err := p.as("insurer-1").Job(ctx, j.ID, 0)
			if err != nil {
				return nil, err
			}
			if _, err := engine.VerifyReceipt([]byte(full.Receipt), full.Result, pub); err != nil {
				return nil, fmt.Errorf("the receipt of job %s does not verify: %w", j.ID, err)
			}
			r.Receipts++
		}
	}
	return r, nil
}

// jobDelta is the demo's delta for a job: none given (0 here) is the platform's default.
func jobDelta(o plan.Options) *float64 {
	if o.Delta == 0 && !o.DeltaSet {
		return nil
	}
	return &o.Delta
}

// demoRequest is the job request of a demo step.
func demoRequest(grant string, s demoStep) api.JobRequest {
	opts := s.opts
	req := api.JobRequest{Grant: grant, Kind: api.KindSQL, SQL: s.sql, Options: api.JobOptions{
		Epsilon: opts.Epsilon, Delta: jobDelta(opts),
		MaxGroupsContributed: opts.MaxGroupsContributed, MaxContributionsPerGroup: opts.MaxContributionsPerGroup}}
	if len(s.federated) > 0 {
		req.Kind, req.Federated = api.KindFederated, &api.FederatedRequest{Datasets: s.federated}
	}
	return req
}

// runDemoJob submits one job as insurer-1 and waits for it. A held output is reviewed: the
// applicant's own attempt to approve it is refused, the first reviewer approves (and may not
// approve twice), and as many reviewers as it needs approve it before its result is read.
func runDemoJob(ctx context.Context, p *demoPlatform, grant string, s demoStep) (*demoJob, error) {
	insurer := p.as("insurer-1")
	job := &demoJob{Title: s.title, SQL: s.sql}
	j, err := insurer.SubmitJob(ctx, demoRequest(grant, s))
	if err != nil {
		var ae *client.Error
		if !errors.As(err, &ae) {
			return nil, err
		}
		job.State, job.Error = api.JobDenied, &ae.APIError
		return job, nil
	}
	if j, err = insurer.WaitJob(ctx, j.ID); err != nil {
		return nil, err
	}
	job.ID = j.ID
	if j.State == api.JobInReview {
		job.Held = j.Review
		if j.Review == nil || j.Review.Required > len(demoReviewers) {
			return nil, fmt.Errorf("job %s is held for more reviewers than the demo has", j.ID)
		}
		_, aerr := insurer.ApproveReview(ctx, j.ID, "approving my own output")
		rf, err := refused("insurer-1", "approve its own held job", aerr)
		if err != nil {
			return nil, err
		}
		job.Refusals = append(job.Refusals, *rf)
		for i, name := range demoReviewers[:j.Review.Required] {
			rv := p.as(name)
			queue, err := rv.Reviews(ctx)
			if err != nil {
				return nil, err
			}
			if !slices.ContainsFunc(queue.Reviews, func(it api.ReviewItem) bool { return it.Job.ID == j.ID }) {
				return nil, fmt.Errorf("job %s is not in %s's review queue", j.ID, name)
			}
			if _, err := rv.ApproveReview(ctx, j.ID, "coarse income bands, no small cells"); err != nil {
				return nil, fmt.Errorf("%s approving %s: %w", name, j.ID, err)
			}
			job.ReviewedBy = append(job.ReviewedBy, name)
			if i == 0 && j.Review.Required > 1 {
				_, aerr := rv.ApproveReview(ctx, j.ID, "approving again")
				rf, err := refused(name, "approve the same job a second time", aerr)
				if err != nil {
					return nil, err
				}
				job.Refusals = append(job.Refusals, *rf)
			}
		}
		if j, err = insurer.Job(ctx, j.ID, 0); err != nil {
			return nil, err
		}
		if j.State != api.JobReleased {
			return nil, fmt.Errorf("job %s is %s after its reviews, not released", j.ID, j.State)
		}
	}
	job.State = j.State
	switch j.State {
	case api.JobReleased:
		if job.Result, err = decodeResult(j.Result); err != nil {
			return nil, fmt.Errorf("job %s: %w", j.ID, err)
		}
	default:
		job.Error = j.Error
		if job.Error == nil {
			job.Error = &api.Error{Code: j.State, Message: "the job ended " + j.State + " without an error"}
		}
	}
	return job, nil
}

func (r *demoReport) writeTable(out io.Writer) {
	fmt.Fprintf(out, "cleanroom demo — a temporary platform: server %s, data dir %s\n\n", r.Server, r.DataDir)
	fmt.Fprintf(out, "policy bundle %s (embedded default)\n", r.PolicyBundle)
	iso := r.Isolation
	fmt.Fprintf(out, "sandbox worker: network namespace=%v (interfaces %s), no_new_privs=%v, rlimit AS=%d GiB, CPU=%ds\n",
		iso.NetworkNamespace, strings.Join(iso.Interfaces, ","), iso.NoNewPrivs, iso.AddressSpace>>30, iso.CPUSeconds)
	for _, w := range iso.Warnings {
		fmt.Fprintf(out, "  warning: %s\n", w)
	}

	fmt.Fprintln(out, "\nprincipals (each with a fresh random bearer token, held in memory and never printed):")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\trole\torg")
	for _, p := range r.Principals {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Name, p.Role, p.Org)
	}
	tw.Flush()

	fmt.Fprintln(out, "\ndatasets, each registered by its provider over the API (raw rows stay in the sandbox worker):")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\tregistered by\tgrade\trows\tsnapshot")
	for _, d := range r.Datasets {
		grade := string(d.Grade)
		if d.Public {
			grade += " (public)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", d.Name, d.RegisteredBy, grade, d.Rows, shorten(d.Snapshot, 24))
	}
	tw.Flush()

	a, g := r.Application, r.Grant
	fmt.Fprintf(out, "\napplication and approval:\n")
	if rf := r.RefusedApplication; rf != nil {
		fmt.Fprintf(out, "   %s first tries to %s\n   refused: %s (HTTP %d) — %s\n", rf.Who, rf.Action, rf.Code, rf.Status, rf.Message)
	}
	fmt.Fprintf(out, "   %s (%s) applies for %s: application %s\n", a.Applicant, a.Org, strings.Join(a.Datasets, ", "), a.ID)
	fmt.Fprintf(out, "     purpose:  %s\n     scenario: %s\n     asks for: %s jobs, epsilon %s, delta %s, from %s to %s\n",
		a.Purpose, a.Scenario, strings.Join(a.JobKinds, ", "), fmtFloat(a.Epsilon), fmtFloat(a.Delta),
		a.Start.Format(time.DateOnly), a.End.Add(-time.Nanosecond).Format(time.DateOnly))
	fmt.Fprintf(out, "   %s approves it: grant %s (%s)\n     period %s, budget epsilon %s, delta %s\n",
		r.ApprovedBy, g.ID, g.State, fmtPeriod(g.Start, g.End), fmtFloat(g.Budget.EpsilonTotal), fmtFloat(g.Budget.DeltaTotal))

	fmt.Fprintf(out, "\njobs submitted by %s on grant %s:\n", a.Applicant, g.ID)
	for _, j := range r.Jobs {
		fmt.Fprintf(out, "\n== %s\n   %s\n", j.Title, j.SQL)
		if x := j.Explained; x != nil {
			writeDemoExplanation(out, x)
		}
		if j.Error != nil {
			id := ""
			if j.ID != "" {
				id = "job " + j.ID + " "
			}
			fmt.Fprintf(out, "   %srefused: %s — %s\n", id, j.Error.Code, j.Error.Message)
			continue
		}
		if j.Held != nil {
			fmt.Fprintf(out, "   job %s held in review: %d approvals needed (%s)\n", j.ID, j.Held.Required, strings.Join(j.Held.Reasons, "; "))
			for _, rf := range j.Refusals {
				fmt.Fprintf(out, "   %s tries to %s: refused %s (HTTP %d) — %s\n", rf.Who, rf.Action, rf.Code, rf.Status, rf.Message)
			}
			fmt.Fprintf(out, "   approved by %s: released\n", strings.Join(j.ReviewedBy, " and "))
		}
		printResult(out, j.Result)
	}

	if v := r.Verification; v != nil {
		fmt.Fprintf(out, "\n== Verification (核验): %s checks %d customers' declared %s against the resident register\n", a.Applicant, v.Claims, v.Attribute)
		fmt.Fprintln(out, "   claimed values encrypted under the insurer's own BGV key; the platform never sees one, the insurer learns match or no match")
		fmt.Fprintf(out, "   %d matched, %d did not (the demo's customers: %d declared truthfully, %d are not in the register); jobs %s, %.1f s\n",
			v.Matched, v.Claims-v.Matched, v.Truthful, v.Absent, strings.Join(v.Jobs, ", "), v.Seconds)
		if rf := v.Again; rf != nil {
			fmt.Fprintf(out, "   asking about one of the same facts again: refused %s — %s\n", rf.Code, rf.Message)
		}
	}

	if m := r.Model; m != nil {
		fmt.Fprintf(out, "\n== Model: %s trains a DP %s of visit cost on age group and inpatient stay (at most 4 visits a person)\n", a.Applicant, m.Type)
		fmt.Fprintln(out, "   the rows stay in the sandbox; the worker returns bounded sums, the platform adds the noise")
		_ = writeModelResult(indent{out}, m) // the report is printed best-effort, as its other lines are

	}
	if r.Wasm != nil {
		r.Wasm.writeTable(out, a.Applicant)
	}

	fmt.Fprintln(out, "\nbudget (the grant's as insurer-1 reads it; each private dataset's lifetime budget as op-1 reads it —")
	fmt.Fprintln(out, "the grant's budget was carved out of each of its datasets when it was approved):")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  account\tepsilon total\tallocated to grants\tspent\tremaining\tdelta total\tallocated\tspent")
	for _, b := range r.Budget {
		fmt.Fprintf(tw, "  %s\t%.3g\t%.3g\t%.3g\t%.3g\t%.3g\t%.3g\t%.3g\n", b.Account, b.Total.Epsilon, b.Allocated.Epsilon, b.Spent.Epsilon,
			b.Remaining.Epsilon, b.Total.Delta, b.Allocated.Delta, b.Spent.Delta)
	}
	tw.Flush()
	fmt.Fprintf(out, "\naudit by %s: provenance log of %d records, hash chain verified, head %s\n", r.AuditedBy, r.Provenance.Records, r.Provenance.Head)
	fmt.Fprintf(out, "  merkle tree root %s, %d signed checkpoint(s) verified\n", r.Provenance.Root, r.Provenance.Checkpoints)
	fmt.Fprintf(out, "  %d job(s) replayed from their records: every stage matches (snapshots, policy decisions, pre-noise aggregates)\n", r.Replayed)
	fmt.Fprintf(out, "  %d release receipt(s) verified offline with the platform's public key\n", r.Receipts)
	fmt.Fprintln(out, "server shut down")
}

func printResult(out io.Writer, r *engine.Result) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', tabwriter.AlignRight)
	var hdr []string
	for _, c := range r.Columns {
		if c.Kind == "group_key" {
			hdr = append(hdr, c.Name)
		} else {
			hdr = append(hdr, c.Name, "95% CI")
		}
	}
	fmt.Fprintln(tw, "   "+strings.Join(hdr, "\t")+"\t")
	for _, row := range r.Rows {
		var cells []string
		for _, c := range row {
			switch {
			case c.DP != nil:
				cells = append(cells, fmt.Sprintf("%.0f", c.DP.Value), fmt.Sprintf("[%.0f, %.0f]", c.DP.CILow, c.DP.CIHigh))
			case c.Derived != nil:
				cells = append(cells, derivedValue(c.Derived, func(v float64) string { return fmt.Sprintf("%.3g", v) }), "post-processed")
			case c.Key != nil:
				cells = append(cells, *c.Key)
			default:
				cells = append(cells, "NULL")
			}
		}
		fmt.Fprintln(tw, "   "+strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintf(out, "   released job %s: %d rows%s; spent epsilon %.3g, delta %.3g (%s)\n   bounds: %s\n",
		r.Job, len(r.Rows), withheldText(r), r.Spent.Epsilon, r.Spent.Delta, r.Split, r.Bounds)
	for _, warn := range r.Bias.Warnings() {
		fmt.Fprintf(out, "   %s\n", warn)
	}
}

// writeDemoExplanation prints the dry run in brief: what the job will cost, each noise
// addition's expected error, and how its bounds will be chosen.
func writeDemoExplanation(out io.Writer, x *api.Explanation) {
	fmt.Fprintf(out, "   dry run (free: reads no data, spends nothing): policy %s; cost epsilon %.3g, delta %.3g\n", x.Policy.Result, x.Cost.Epsilon, x.Cost.Delta)
	for _, a := range x.Aggregates {
		e := "depends on the group's size"
		if a.ExpectedError != nil {
			e = fmt.Sprintf("±%.3g per cell at the maximum bounds", *a.ExpectedError)
		}
		fmt.Fprintf(out, "     %s: %s, epsilon %.3g, expected 95%% error %s\n", a.Name, a.Mechanism, a.Epsilon, e)
	}
	fmt.Fprintf(out, "     partitions: %s\n     bounds: %s\n", x.Partitions, x.BoundsChoice)
}

// demoVerifyClaims is how many declared facts the demo's insurer checks.
const demoVerifyClaims = 300

// runDemoVerification has insurer-1 check its customers' declared income bands against the
// resident register (kind verify). The demo plays the customers: it reads the register's
// file to make two thirds of them declare truthfully, a fifth something else, and a few
// people the register does not hold — the platform sees none of it, and the insurer learns
// only match or no match. It then asks about one fact again, which the limit per fact refuses.
func runDemoVerification(ctx context.Context, p *demoPlatform, grant, datasetDir string) (*demoVerification, error) {
	rr, err := connectors.Open(ctx, "parquet", filepath.Join(datasetDir, "public-security-bureau", "residents.parquet"), connectors.Options{})
	if err != nil {
		return nil, fmt.Errorf("demo: read the residents for the customers' declarations: %w", err)
	}
	defer rr.Release()
	type person struct{ id, band string }
	var people []person
	for rr.Next() && len(people) < demoVerifyClaims {
		rec := rr.RecordBatch()
		pid, okp := rec.Column(rec.Schema().FieldIndices("person_id")[0]).(*array.String)
		inc, oki := rec.Column(rec.Schema().FieldIndices("income_band")[0]).(*array.String)
		if !okp || !oki {
			return nil, errors.New("demo: the residents file has unexpected column types")
		}
		for i := 0; i < int(rec.NumRows()) && len(people) < demoVerifyClaims; i++ {
			people = append(people, person{pid.Value(i), inc.Value(i)})
		}
	}
	if err := rr.Err(); err != nil {
		return nil, err
	}
	v := &demoVerification{Attribute: "income_band", Claims: len(people)}
	claims := make([]client.Claim, len(people))
	for i, pp := range people {
		cl := client.Claim{Dataset: "residents", Subject: pp.id, Attribute: "income_band", Claimed: pp.band,
			Consent: fmt.Sprintf("policy-application-%04d", i+1)}
		switch {
		case i%15 == 7: // not in the register
			cl.Subject, cl.Claimed = fmt.Sprintf("53999919990101%04d", i), "middle"
			v.Absent++
		case i%5 == 3: // declared another band
			cl.Claimed = map[bool]string{true: "high", false: "low"}[pp.band == "low"]
		default:
			v.Truthful++
		}
		claims[i] = cl
	}
	// The insurer's key is pinned by cut-and-choose: 16 candidates, the platform opens 15.
	cands, err := verify.GenerateKeyCandidates(16)
	if err != nil {
		return nil, err
	}
	pinned, err := p.as("insurer-1").PinVerifyKey(ctx, grant, cands)
	if err != nil {
		return nil, fmt.Errorf("insurer-1 pinning its verification key: %w", err)
	}
	keys := pinned.Client()
	start := time.Now()
	rep, err := p.as("insurer-1").Verify(ctx, grant, keys, claims, 0)
	if err != nil {
		return nil, fmt.Errorf("insurer-1 verifying declared income bands: %w", err)
	}
	v.Seconds, v.Jobs = time.Since(start).Seconds(), rep.Jobs
	for _, m := range rep.Matches {
		if m {
			v.Matched++
		}
	}
	if v.Matched != v.Truthful {
		return nil, fmt.Errorf("demo: %d claims matched, but %d were declared truthfully", v.Matched, v.Truthful)
	}
	// The same fact again, hoping for another answer: refused, not answered.
	again := claims[:1]
	again[0].Claimed = "upper_middle"
	_, aerr := p.as("insurer-1").Verify(ctx, grant, keys, again, 0)
	if v.Again, err = refused("insurer-1", "check one of the same facts again", aerr); err != nil {
		return nil, err
	}
	return v, nil
}

// writeBureauClaims writes the bureau's own-domain claims register (person_id, district,
// amount of every committed claim, as an Arrow IPC stream with the committed column types) into
// root and returns its catalog spec, in domain demoBureauDomain.
func writeBureauClaims(ctx context.Context, claimsParquet, root string) (*catalog.Spec, error) {
	rr, err := connectors.Open(ctx, "parquet", claimsParquet, connectors.Options{})
	if err != nil {
		return nil, fmt.Errorf("demo: read the claims: %w", err)
	}
	defer rr.Release()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(root, demoBureauClaims+".arrows")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var w *ipc.Writer
	for rr.Next() {
		rec := rr.RecordBatch()
		var fields []arrow.Field
		var cols []arrow.Array
		for _, name := range []string{"person_id", "district", "amount"} {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) != 1 {
				return nil, fmt.Errorf("demo: the claims have no column %s", name)
			}
			fields, cols = append(fields, rec.Schema().Field(idx[0])), append(cols, rec.Column(idx[0]))
		}
		out := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
		if w == nil {
			w = ipc.NewWriter(f, ipc.WithSchema(out.Schema()))
		}
		err := w.Write(out)
		out.Release()
		if err != nil {
			return nil, err
		}
	}
	if err := rr.Err(); err != nil {
		return nil, err
	}
	if w == nil {
		return nil, errors.New("demo: the claims are empty")
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	districts := []string{"530102", "530103", "530111", "530112", "530113", "530114", "530115", "530124", "530125", "530126", "530127", "530128", "530129", "530181"}
	return &catalog.Spec{Name: demoBureauClaims, Provider: demoBureauOrg, Grade: catalog.GradeL2, Domain: demoBureauDomain, PrivacyUnit: "person_id",
		Source: catalog.Source{Kind: catalog.SourceArrow, Path: path}, Budget: catalog.Budget{Epsilon: 20, Delta: 1e-5},
		Columns: map[string]catalog.Column{
			"person_id": {Tags: []catalog.Tag{catalog.TagIdentifier}},
			"district":  {Tags: []catalog.Tag{catalog.TagQuasiIdentifier}, Domain: districts},
			"amount":    {Tags: []catalog.Tag{catalog.TagSensitive}, Bounds: []float64{0, 50000}},
		}}, nil
}

// copyFile copies a file (the bureau's committed claims, into its demo import root).
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// demoModelSQL is the demo model's row-level SQL: per visit, the patient's age group (0 for
// 0-17 … 4 for 65+) and whether it was an inpatient stay, and its cost.
const demoModelSQL = `SELECT person_id,
  CASE age_band WHEN '0-17' THEN 0 WHEN '18-34' THEN 1 WHEN '35-49' THEN 2 WHEN '50-64' THEN 3 WHEN '65+' THEN 4 END AS age_group,
  CASE WHEN inpatient THEN 1 ELSE 0 END AS inpatient_stay,
  cost
FROM medical_visits`

// runDemoModel trains the demo's DP linear regression of visit cost (kind model).
func runDemoModel(ctx context.Context, p *demoPlatform, grant string) (*api.ModelResult, error) {
	c := p.as("insurer-1")
	j, err := c.TrainModel(ctx, grant, api.ModelRequest{Type: api.ModelLinearRegression, SQL: demoModelSQL,
		Features: []string{"age_group", "inpatient_stay"}, Label: "cost", Bounds: map[string][]float64{"cost": {0, 20000}}, MaxRowsPerUnit: 4},
		api.JobOptions{Epsilon: 0.5})
	if err != nil {
		return nil, fmt.Errorf("insurer-1 training the demo model: %w", err)
	}
	if j, err = c.WaitJob(ctx, j.ID); err != nil {
		return nil, err
	}
	if err := jobStateError(j); err != nil {
		return nil, err
	}
	return client.ModelResult(j)
}

// indent prefixes every line written through it with three spaces.
type indent struct{ w io.Writer }

func (i indent) Write(b []byte) (int, error) {
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		if _, err := io.WriteString(i.w, "   "+l); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
