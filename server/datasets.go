package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

func (s *Server) registerDataset(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return 0, nil, bodyError(err, fmt.Sprintf("the catalog spec must be a JSON document of at most %d bytes", maxBody))
	}
	if len(body) > maxBody {
		return 0, nil, errcode.New(errcode.InvalidRequest, "the catalog spec must be a JSON document of at most %d bytes", maxBody)
	}
	spec, err := catalog.ParseJSON(body)
	if err != nil {
		return 0, nil, errcode.Wrap(errcode.InvalidSpec, err, "%s", err.Error())
	}
	if err := s.authorize(r.Context(), who, policy.ActionDatasetRegister, policy.Resource{Kind: "dataset", ID: spec.Name, Provider: spec.Provider}); err != nil {
		return 0, nil, err
	}
	if spec.Provider != who.Org { // whatever the bundle says: a provider registers for its own org
		return 0, nil, s.refuseRegistration(r.Context(), who, spec, errcode.New(errcode.Forbidden,
			"%s may register datasets only for its own organisation", who.Name))
	}
	root, ok := s.roots[who.Org]
	if !ok {
		return 0, nil, s.refuseRegistration(r.Context(), who, spec, errcode.New(errcode.NoImportRoot,
			"organisation %s has no import root on this server, so its providers cannot register from files; the operator assigns one with --import-root %s=DIR", who.Org, who.Org))
	}
	src, path, err := root.open(spec.Source.Path)
	if err != nil {
		return 0, nil, s.refuseRegistration(r.Context(), who, spec, err)
	}
	defer src.Close()
	spec.Source.Path = path
	d, err := s.eng.RegisterDataset(r.Context(), spec, src)
	if errcode.Of(err) == errcode.DatasetAlreadyRegistered {
		s.denied.spend(who) // recorded by the engine, one record each: bounded like a denial
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, api.Registered{Name: d.Spec.Name, Digest: d.Snapshot.Digest, Rows: d.Snapshot.Rows}, nil
}

// refuseRegistration records in provenance that who's registration was refused before its
// source was read (who, which dataset, the code; never the path) and returns err. Each such
// record takes a token of who's denied-request bucket (denials.spend), so a flood of refused
// registrations meets 429 rate_limited, counted in a summary, instead of growing the log.
func (s *Server) refuseRegistration(ctx context.Context, who policy.Principal, spec *catalog.Spec, err error) error {
	defer s.denied.spend(who)
	if _, rerr := s.eng.Record(context.WithoutCancel(ctx), "", &provenance.DatasetRegistrationRefused{
		Principal: ptr(provenance.Principal(who)), Name: spec.Name, Provider: spec.Provider, Grade: string(spec.Grade), Code: string(errcode.Of(err)),
	}); rerr != nil {
		return rerr
	}
	return err
}

func (s *Server) datasetDoc(d *engine.Dataset) api.Dataset {
	out := api.Dataset{Name: d.Spec.Name, Provider: d.Spec.Provider, Grade: string(d.Spec.Grade), Domain: d.Spec.Domain,
		PrivacyUnit: d.Spec.PrivacyUnit, Public: d.Spec.Public, Digest: d.Snapshot.Digest, Columns: d.Spec.Columns, Verify: d.Spec.Verify}
	if s.eng.Params().DiscloseDatasetSize == policy.DatasetSizePublic {
		out.Rows = ptr(d.Snapshot.Rows)
	}
	if !d.Spec.Public {
		out.Budget = &api.Budget{Epsilon: d.Spec.Budget.Epsilon, Delta: d.Spec.Budget.Delta}
	}
	return out
}

func (s *Server) listDatasets(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	if err := s.authorize(r.Context(), who, policy.ActionDatasetList, policy.Resource{Kind: "dataset"}); err != nil {
		return 0, nil, err
	}
	out := api.Datasets{Datasets: []api.Dataset{}}
	for _, d := range s.eng.Datasets() {
		out.Datasets = append(out.Datasets, s.datasetDoc(d))
	}
	return http.StatusOK, out, nil
}

func (s *Server) datasetBudget(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	name := r.PathValue("name")
	d, ok := s.eng.Dataset(name)
	if !ok {
		return 0, nil, errcode.New(errcode.NotFound, "no dataset named %q is registered", name)
	}
	if err := s.authorize(r.Context(), who, policy.ActionDatasetUsage, policy.Resource{Kind: "dataset", ID: name, Provider: d.Spec.Provider}); err != nil {
		return 0, nil, err
	}
	if d.Spec.Public {
		return 0, nil, errcode.New(errcode.NotFound, "dataset %q is a public lookup table and has no budget", name)
	}
	if err := s.gov.Settle(r.Context(), false); err != nil {
		return 0, nil, err
	}
	rep, err := s.eng.Budget(r.Context(), engine.DatasetAccount(name))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

// getDataset answers GET /v1/datasets/{name}: what an applicant may read about a dataset before
// and while using it. It is authorized like the list (every name and column is already public
// there); what it adds is disclosed as the policy says: the size (disclose_dataset_size), the
// dataset's own remaining budget (disclose_dataset_budget, or to who may read its budget
// report), and the budget left to each grant naming it that the caller may read the budget of.
func (s *Server) getDataset(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	ctx := r.Context()
	name := r.PathValue("name")
	d, ok := s.eng.Dataset(name)
	res := policy.Resource{Kind: "dataset", ID: name}
	if ok {
		res.Provider = d.Spec.Provider
	}
	if err := s.authorize(ctx, who, policy.ActionDatasetList, res); err != nil {
		return 0, nil, err
	}
	if !ok { // after authorization, so that who may not list datasets learns no name
		hint := "cleanroom dataset list shows those that are"
		if near := gate.Suggest(name, s.eng.DatasetNames()); near != "" {
			hint = fmt.Sprintf("did you mean %q?", near)
		}
		return 0, nil, errcode.New(errcode.NotFound, "no dataset named %q is registered; %s", name, hint)
	}
	params := s.eng.Params()
	out := api.DatasetDetail{Name: d.Spec.Name, Provider: d.Spec.Provider, Grade: string(d.Spec.Grade), Domain: d.Spec.Domain,
		PrivacyUnit: d.Spec.PrivacyUnit, Public: d.Spec.Public, Digest: d.Snapshot.Digest, Size: api.SizeNone,
		Columns: datasetColumns(d), Verify: d.Spec.Verify, Grants: []api.DatasetGrant{}}
	if params.DiscloseDatasetSize == policy.DatasetSizePublic {
		out.Size, out.Rows, out.Units = api.SizePublic, ptr(d.Snapshot.Rows), ptr(d.Snapshot.Units)
	}
	if d.Spec.Public {
		return http.StatusOK, out, nil // a lookup table has no budget and no grants draw on it
	}
	out.Budget = &api.Budget{Epsilon: d.Spec.Budget.Epsilon, Delta: d.Spec.Budget.Delta}
	// Ended grants give back what they never spent when the policy says so: settle first, so
	// that the balances below are current.
	if err := s.gov.Settle(ctx, false); err != nil {
		return 0, nil, err
	}
	if params.DiscloseDatasetBudget || s.allowed(ctx, who, policy.ActionDatasetUsage, res) {
		rep, err := s.eng.Budget(ctx, engine.DatasetAccount(name))
		if err != nil {
			return 0, nil, err
		}
		out.Remaining = ptr(rep.Balance.Remaining)
	}
	grants, err := s.store.Grants(ctx, "")
	if err != nil {
		return 0, nil, err
	}
	for _, g := range grants {
		if !slices.Contains(g.Datasets, name) || !s.allowed(ctx, who, policy.ActionGrantBudget, grantResource(g)) {
			continue
		}
		if g, err = s.grantDoc(ctx, g); err != nil {
			return 0, nil, err
		}
		out.Grants = append(out.Grants, api.DatasetGrant{ID: g.ID, State: g.State,
			Remaining: api.Budget{Epsilon: g.Budget.EpsilonRemaining, Delta: g.Budget.DeltaRemaining}})
	}
	return http.StatusOK, out, nil
}

// datasetColumns lists a dataset's columns in the snapshot's order, with their types, and the
// catalog's tags, bounds and domains.
func datasetColumns(d *engine.Dataset) []api.DatasetColumn {
	out := []api.DatasetColumn{}
	for _, c := range d.Snapshot.Columns {
		spec := d.Spec.Columns[c.Name]
		col := api.DatasetColumn{Name: c.Name, Type: c.Type, Bounds: spec.Bounds, Domain: spec.Domain,
			DateRange: spec.DateRange, PrivacyUnit: !d.Spec.Public && c.Name == d.Spec.PrivacyUnit}
		for _, t := range spec.Tags {
			col.Tags = append(col.Tags, string(t))
		}
		out = append(out, col)
	}
	return out
}
