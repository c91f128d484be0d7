package server

import (
	"context"
	"io"
	"net/http"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
)

func (s *Server) registerDataset(_ http.ResponseWriter, r *http.Request, who policy.Principal) (int, any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
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
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, api.Registered{Name: d.Spec.Name, Digest: d.Snapshot.Digest, Rows: d.Snapshot.Rows}, nil
}

// refuseRegistration records in provenance that who's registration was refused before its
// source was read (who, which dataset, the code; never the path) and returns err.
func (s *Server) refuseRegistration(ctx context.Context, who policy.Principal, spec *catalog.Spec, err error) error {
	if _, rerr := s.eng.Record(context.WithoutCancel(ctx), "", &provenance.DatasetRegistrationRefused{
		Principal: ptr(provenance.Principal(who)), Name: spec.Name, Provider: spec.Provider, Grade: string(spec.Grade), Code: string(errcode.Of(err)),
	}); rerr != nil {
		return rerr
	}
	return err
}

func datasetDoc(d *engine.Dataset) api.Dataset {
	out := api.Dataset{Name: d.Spec.Name, Provider: d.Spec.Provider, Grade: string(d.Spec.Grade), Domain: d.Spec.Domain,
		PrivacyUnit: d.Spec.PrivacyUnit, Public: d.Spec.Public, Digest: d.Snapshot.Digest, Rows: d.Snapshot.Rows, Columns: d.Spec.Columns}
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
		out.Datasets = append(out.Datasets, datasetDoc(d))
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
