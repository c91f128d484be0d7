package engine

import (
	"slices"
	"strings"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
)

// sources are the registered datasets a query reads, distinct, in FROM order; the first one's
// privacy unit is bounded.
type sources []*Dataset

// sourcesOf resolves a query's datasets. They must share one data domain: one worker holds
// them all, and data never crosses domains.
func (e *Engine) sourcesOf(q *gate.Query) (sources, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out sources
	for _, spec := range q.Datasets() {
		d, ok := e.datasets[spec.Name]
		if !ok {
			return nil, errcode.New(errcode.UnknownDataset, "no dataset named %q is registered", spec.Name)
		}
		if len(out) > 0 && d.Spec.Domain != out.domain() {
			return nil, errcode.New(errcode.PolicyDenied, "datasets of different data domains (%s, %s) cannot be joined; data never leaves its domain", out[0].Spec.Domain, d.Spec.Domain)
		}
		out = append(out, d)
	}
	return out, nil
}

// primary is the dataset whose privacy units are bounded.
func (s sources) primary() *Dataset { return s[0] }

func (s sources) domain() string { return s[0].Spec.Domain }

// names are the datasets read, in FROM order.
func (s sources) names() []string {
	names := make([]string, len(s))
	for i, d := range s {
		names[i] = d.Spec.Name
	}
	return names
}

// within refuses a job that reads a dataset outside its grant's terms. Public lookup tables
// hold no personal data and need not be listed. Nil terms are unrestricted.
func (s sources) within(grant string, terms *policy.Grant) error {
	if terms == nil {
		return nil
	}
	for _, d := range s {
		if !d.Spec.Public && !slices.Contains(terms.Datasets, d.Spec.Name) {
			return errcode.New(errcode.Forbidden, "dataset %q is outside grant %s", d.Spec.Name, grant)
		}
	}
	return nil
}

// name describes the sources in results: the dataset, or the joined datasets.
func (s sources) name() string { return strings.Join(s.names(), "+") }

func (s sources) snapshots() map[string]string {
	out := make(map[string]string, len(s))
	for _, d := range s {
		out[d.Spec.Name] = d.Snapshot.Digest
	}
	return out
}

func (s sources) spec(name string) *catalog.Spec {
	for _, d := range s {
		if d.Spec.Name == name {
			return d.Spec
		}
	}
	return nil
}

// accounts are the ledger accounts a job on the grant debits: the grant's, and the lifetime
// cap of every dataset with a privacy unit it reads (a join spends each one's privacy).
func (s sources) accounts(grant string) []string {
	out := []string{GrantAccount(grant)}
	for _, d := range s {
		if !d.Spec.Public {
			out = append(out, DatasetAccount(d.Spec.Name))
		}
	}
	return out
}

func (s sources) refs() []policy.DatasetRef {
	out := make([]policy.DatasetRef, len(s))
	for i, d := range s {
		out[i] = policy.DatasetRef{Name: d.Spec.Name, Provider: d.Spec.Provider, Grade: string(d.Spec.Grade), Domain: d.Spec.Domain,
			PrivacyUnit: d.Spec.PrivacyUnit, Public: d.Spec.Public}
	}
	return out
}

// operable refuses when any source is graded L4 (the policy denies it too; this holds even
// under a lax bundle).
func (s sources) operable() error {
	for _, d := range s {
		if !d.Spec.Operable() {
			return errcode.New(errcode.NotOperable, "dataset %q is graded L4 (不予开放) and is never operated", d.Spec.Name)
		}
	}
	return nil
}
