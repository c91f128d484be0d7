package provenance

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/events/*.json and the event list in docs/provenance.md")

// compatLogs are the compatibility witnesses (testdata/compat/README.md): logs written by the
// code before events were typed. They must never be regenerated.
var compatLogs = []string{"testdata/compat/demo", "testdata/compat/server"}

// TestCompatibilityLogsReadThroughTheRegistry: logs written before events were typed still verify
// (chain, tree, checkpoints: VerifyAll decodes every record through the registry), and every
// record decodes to its event and encodes back to exactly the bytes on disk.
func TestCompatibilityLogsReadThroughTheRegistry(t *testing.T) {
	for _, dir := range compatLogs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			key, err := os.ReadFile(filepath.Join(dir, "verifier.key"))
			if err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(dir, "provenance.log")
			rep, err := VerifyAll(logPath, strings.TrimSpace(string(key)))
			if err != nil || rep.Checkpoints == 0 || rep.TreeFile != TreeFileOK {
				t.Fatalf("VerifyAll = %+v, %v", rep, err)
			}
			ents, err := Read(logPath, func(string, string) bool { return true })
			if err != nil || uint64(len(ents)) != rep.Records {
				t.Fatalf("Read = %d entries, %v; want %d", len(ents), err, rep.Records)
			}
			for _, e := range ents {
				r, err := e.Decode()
				if err != nil {
					t.Fatalf("entry %d: %v", e.Index, err)
				}
				if r.Event.EventType() != r.Type || r.Version != 1 {
					t.Fatalf("entry %d: type %s v%d decoded as %T", e.Index, r.Type, r.Version, r.Event)
				}
				again, err := Canonical(RecordEnvelope{Type: r.Type, Job: r.Job, Time: r.Time, Data: r.Event})
				if err != nil || !bytes.Equal(again, e.Record) {
					t.Fatalf("entry %d (%s) does not encode back to its bytes:\n got %s\nwant %s", e.Index, r.Type, again, e.Record)
				}
			}
		})
	}
}

// extraSamples are events of types the compatibility logs do not hold.
var extraSamples = []Event{
	&JobFailed{JobEnd{Code: "sandbox_timeout", Message: "the worker ran past its deadline; nothing was released"}},
	&BudgetRefunded{Reason: "sandbox_failed"},
	&GrantOpened{Grant: "grant-1", Epsilon: 1, Delta: 1e-6},
	&ReleaseNotStored{Reason: "the answer could not be stored for repeated queries"},
	&RawSetRebuilt{Name: "residents", Snapshot: "sha256:1f2e", Reason: "the file is missing",
		RawSet: DocOf(map[string]any{"digest": "sha256:77aa", "entries": 1200, "key_id": "k1"})},
	&JobInterrupted{Released: false},
	&RequestsDenied{Principal: Principal{Name: "insurer-1", Role: "applicant", Org: "acme-insurance"},
		From: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC), Until: time.Date(2025, 3, 1, 9, 1, 0, 0, time.UTC), Total: 2000,
		Counts: []DeniedCount{
			{Action: "job.read", ResourceKind: "job", Code: "forbidden", Count: 1880, Resources: []string{"job-3421144a3f4ca92c"},
				Reasons: []string{"not_permitted: job of another organisation"}},
			{Action: "job.read", ResourceKind: "job", Code: "rate_limited", Count: 120},
		},
		BundleDigest: "sha256:7618fea97d5cb84130ec87217abcf18a4a0069ffa4f809d4aca3aa4e1e9e3dfd"},
	&RequestRefused{Principal: Principal{Name: "insurer-1", Role: "applicant", Org: "acme-insurance"}, Grant: "grant-1", Kind: "sql",
		Code: "unknown_dataset", Position: func() *int { p := 21; return &p }(), SQLDigest: "hmac-sha256:3b1f0c"},
	&GovernanceIntent{ID: "gov-1", Action: "approve_application", Subject: "app-1",
		By:     Principal{Name: "op-1", Role: "operator", Org: "platform"},
		Detail: DocOf(map[string]any{"id": "grant-1", "datasets": []string{"visits"}, "epsilon": 1})},
	&GovernanceOutcome{ID: "gov-1", Action: "approve_application", Subject: "app-1", Outcome: "rolled_back",
		Code: "dataset_budget_insufficient", Reconciled: true},
	&BoundsChosen{ProfilePlan: DocOf(map[string]any{"snapshot": "sha256:1f2e", "profile": map[string]any{"max_groups": 8, "max_rows": 64}}),
		Histograms: DocOf(map[string]any{"groups_per_unit": map[string]any{"edges": []int{1, 2}, "counts": []float64{812.4, 190.2, -3.1}}}),
		Chosen:     DocOf(map[string]any{"max_groups_contributed": 2, "max_contributions_per_group": 8}),
		Epsilon:    0.1, Share: 0.1, PreNoiseDigest: "hmac-sha256:9a0b",
		ClampPlan:      DocOf(map[string]any{"snapshot": "sha256:1f2e", "bounds": map[string]any{"max_groups_contributed": 1, "max_contributions_per_group": 1}}),
		ClampQuantiles: DocOf([][2]float64{{0, 18112.5}}), ClampBounds: DocOf([][2]float64{{0, 18112.5}}),
		ClampEpsilon: 0.1, ClampShare: 0.1, ClampPreNoiseDigest: "hmac-sha256:77c1"},
	&ChecksReserved{Checks: 300, FactsDigest: "hmac-sha256:5d1e", ConsentsDigest: "hmac-sha256:0c9a",
		PublicKey: "sha256:8e2f", Limits: DocOf(map[string]any{"PerFact": 1, "FactPeriod": 2592000000000000, "PerGrantDay": 300000})},
	&ClaimsAnswered{Domain: "platform", Snapshots: map[string]string{"residents": "sha256:1f2e"}, ParameterSet: "bgv-logn13-logq218-t40-v1",
		Batches: DocOf([]map[string]any{{"dataset": "residents", "attribute": "income_band", "checks": 300,
			"ciphertexts": []string{"sha256:aa01"}, "answers": []string{"sha256:bb02"}}}), DurationMS: 412},
	&CollectiveKey{Ceremony: "fed-3c1d", Domains: []string{"health-commission", "medical-insurance-bureau"}, KeyID: "9f2a",
		DomainKeys: map[string]string{"health-commission": "5b1c", "medical-insurance-bureau": "e07d"}, Aggregator: "a4f0",
		ParameterSet: "bgv-logn13-q3x60-t55-flood60-v1", KeyMessage: "sha256:71c3",
		ShareMessages: map[string]string{"health-commission": "sha256:02ab", "medical-insurance-bureau": "sha256:c3d4"}},
	&FederatedPlan{Ceremony: "fed-3c1d", KeyID: "9f2a",
		Datasets: DocOf([]map[string]any{{"dataset": "medical_visits", "domain": "health-commission", "snapshot": "sha256:1f2e",
			"worker_plan": map[string]any{"snapshot": "sha256:1f2e"}}}), Partitions: 16,
		Aggregates: DocOf([]map[string]any{{"name": "n", "kind": "count", "l0": 1, "linf_by_domain": map[string]int{"health-commission": 5}, "linf": 10,
			"noise": map[string]any{"Parties": 2, "Epsilon": 1, "Delta": 1e-6}}}),
		Cost: DocOf(map[string]any{"epsilon": 1, "delta": 1e-6})},
	&FederatedInputs{Inputs: map[string][]string{"health-commission": {"sha256:aa01"}, "medical-insurance-bureau": {"sha256:aa02"}}, DurationMS: 231},
	&FederatedSum{Sums: []string{"sha256:bb01"}, Receiver: "sha256:cc01"},
	&FederatedKeySwitch{Shares: map[string][]string{"health-commission": {"sha256:dd01"}, "medical-insurance-bureau": {"sha256:dd02"}},
		Results: []string{"sha256:ee01"}, DurationMS: 140},
	&FederatedOpened{Partitions: 16, Aggregates: 1, NoisyDigest: "hmac-sha256:4e2b"},
	&ModelPlan{Type: "linear_regression",
		Pass: DocOf(map[string]any{"job": "job-1", "relation": map[string]any{"sources": []map[string]any{{"snapshot": "sha256:1f2e", "alias": "medical_visits", "unit": "person_id"}},
			"max_rows_per_unit": 1}, "pass": "linear", "sampling_key": 7}),
		Cost:       DocOf(map[string]any{"epsilon": 1, "delta": 1e-6}),
		Components: DocOf([]map[string]any{{"name": "xtx", "mechanism": "gaussian", "epsilon": 0.5, "delta": 5e-7, "l0": 1, "linf": 2.449, "noise_scale": 17.1}})},
	&ModelTrained{Domain: "platform", Snapshots: map[string]string{"medical_visits": "sha256:1f2e"}, Passes: 1,
		PreNoiseDigest: "hmac-sha256:5a7c", DurationMS: 38},
	&WasmPlan{ModuleDigest: "sha256:9c1d", ModuleBytes: 1875412,
		Relation: DocOf(map[string]any{"sources": []map[string]any{{"snapshot": "sha256:1f2e", "alias": "medical_visits", "unit": "person_id"}},
			"columns": []map[string]any{{"name": "cost"}}}),
		Output: DocOf(map[string]any{"length": 1, "bounds": [][2]float64{{0, 5000}}, "default": []float64{0}}), Blocks: 20, DeadlineMS: 10000,
		Cost:       DocOf(map[string]any{"epsilon": 0.5, "delta": 0}),
		Components: DocOf([]map[string]any{{"name": "element_1", "mechanism": "laplace", "epsilon": 0.5, "delta": 0, "l0_sensitivity": 1, "linf_sensitivity": 250, "noise_stddev": 707.1}})},
	&WasmRan{Domain: "platform", Snapshots: map[string]string{"medical_visits": "sha256:1f2e"}, ModuleDigest: "sha256:9c1d", Blocks: 20,
		PreNoiseDigest: "hmac-sha256:6b8d", DurationMS: 912},
	&VerifyCommitted{Grant: "grant-1", Commitment: "vc-1", By: Principal{Name: "alice", Role: "applicant", Org: "insurer"}, Kind: "key",
		Candidates: 2, Digests: DocOf([][]string{{"sha256:aa", "sha256:bb"}}), Challenges: []int{1}, Deadline: "2026-12-05T10:10:00Z"},
	&VerifyOpened{Grant: "grant-1", Commitment: "vc-1", Kind: "key", KeyDigest: "sha256:bb"},
	&VerifySuspended{Grant: "grant-1", Commitment: "vc-2", Kind: "claims", Reason: "opening_mismatch", Object: 0, Candidate: 1,
		Committed: "sha256:cc", Opening: "Y3JodgEGAQA=", Detail: "the share the opening makes is not the one committed to"},
}

// samples returns one representative event per registered type: the first of its type in the
// compatibility logs, else from extraSamples.
func samples(t *testing.T) map[string]Event {
	out := map[string]Event{}
	for _, ev := range extraSamples {
		out[ev.EventType()] = ev
	}
	for _, dir := range compatLogs {
		ents, err := Read(filepath.Join(dir, "provenance.log"), func(string, string) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			r, err := e.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := out[r.Type]; !ok {
				out[r.Type] = r.Event
			}
		}
	}
	return out
}

func goldenName(typ string, version int) string {
	return filepath.Join("testdata", "events", fmt.Sprintf("%s.v%d.json", typ, version))
}

// TestEventGoldens: each registered event type and version has a golden file holding the
// canonical JSON of a representative event; the event encodes to it, decodes from it and
// encodes back to it; and there is no golden without a registered type. -rewrite regenerates.
func TestEventGoldens(t *testing.T) {
	s := samples(t)
	want := map[string]bool{}
	for _, r := range Registered() {
		path := goldenName(r.Type, r.Version)
		want[filepath.Base(path)] = true
		ev, ok := s[r.Type]
		if !ok {
			t.Errorf("no sample event of type %s: add one to extraSamples", r.Type)
			continue
		}
		got, err := Canonical(ev)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		if *rewrite {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		golden, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run go test -run TestEventGoldens -rewrite)", err)
			continue
		}
		if !bytes.Equal(golden, got) {
			t.Errorf("%s: event encodes to\n%s\nnot the golden\n%s(review, then -rewrite)", path, got, golden)
		}
		dec, err := Decode(r.Type, r.Version, golden)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if again, err := Canonical(dec); err != nil || !bytes.Equal(append(again, '\n'), golden) {
			t.Errorf("%s does not round-trip through Decode: %s", path, again)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("golden %s names no registered event type", f)
		}
	}
}

// TestRegistryCoversExactlyTheTypesWritten: every Type… constant is registered and vice versa
// (the writers name types only through registered events, so these are the types written).
func TestRegistryCoversExactlyTheTypesWritten(t *testing.T) {
	src, err := os.ReadFile("events.go")
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, line := range strings.Split(string(src), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && strings.HasPrefix(f[0], "Type") && f[1] == "=" {
			consts = append(consts, strings.Trim(f[2], `"`))
		}
	}
	var reg []string
	for _, r := range Registered() {
		reg = append(reg, r.Type)
	}
	slices.Sort(consts)
	if !slices.Equal(consts, reg) {
		t.Fatalf("Type constants %v\nregistered      %v", consts, reg)
	}
}

// TestAppendRefusesUnregisteredEvents: the writer takes only registered events, and the reader
// refuses unknown types, versions and fields with typed errors.
func TestAppendRefusesUnregisteredEvents(t *testing.T) {
	l, path := openTemp(t)
	if _, err := l.Append(t.Context(), "j", unregistered{}); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("Append(unregistered) = %v, want ErrUnknownEvent", err)
	}
	if _, err := l.Append(t.Context(), "j", nil); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Append(nil) = %v, want ErrInvalidRecord", err)
	}
	if _, err := Decode(TypeGate, 2, []byte(`{}`)); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("Decode(gate v2) = %v, want ErrUnknownEvent", err)
	}
	if _, err := Decode("no_such_event", 1, []byte(`{}`)); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("Decode(no_such_event) = %v, want ErrUnknownEvent", err)
	}
	if _, err := Decode(TypeGate, 1, []byte(`{"admitted":true,"extra":1}`)); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Decode(gate with an unknown field) = %v, want ErrInvalidRecord", err)
	}
	// A record of a type nobody registered, chained correctly, fails verification.
	mustAppend(t, l, RecordEnvelope{Type: "no_such_event", Time: time.Unix(0, 0)})
	l.Close()
	if rep, err := Verify(path); !errors.Is(err, ErrCorrupt) || rep.Problem != ProblemUnknownEvent {
		t.Fatalf("Verify = %+v, %v; want %s", rep, err, ProblemUnknownEvent)
	}
}

type unregistered struct{}

func (unregistered) EventType() string { return "unregistered" }
func (unregistered) EventVersion() int { return 1 }

const (
	docPath  = "../../docs/provenance.md"
	docBegin = "<!-- BEGIN EVENTS: generated from the registry by `go test ./engine/provenance -run TestDocListsEveryEvent -rewrite` -->\n"
	docEnd   = "<!-- END EVENTS -->\n"
)

// TestDocListsEveryEvent: docs/provenance.md lists every registered event type with its fields,
// generated from the registry, so the document cannot drift from the code.
func TestDocListsEveryEvent(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	gen := docBegin + eventDoc() + docEnd
	i, j := bytes.Index(doc, []byte(docBegin)), bytes.Index(doc, []byte(docEnd))
	if *rewrite {
		if i < 0 || j < i {
			doc = append(doc, "\n"+gen...)
		} else {
			doc = append(append(slices.Clone(doc[:i]), gen...), doc[j+len(docEnd):]...)
		}
		if err := os.WriteFile(docPath, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		i, j = bytes.Index(doc, []byte(docBegin)), bytes.Index(doc, []byte(docEnd))
	}
	if i < 0 || j < i {
		t.Fatalf("%s has no generated event list (run -rewrite)", docPath)
	}
	if got := string(doc[i : j+len(docEnd)]); got != gen {
		t.Fatalf("%s's event list differs from the registry (run -rewrite and review)", docPath)
	}
}

// eventDoc renders the registry as markdown: one section per type and version, one row per field.
func eventDoc() string {
	var b strings.Builder
	for _, r := range Registered() {
		ev := r.New()
		fmt.Fprintf(&b, "\n### `%s` (version %d, Go type `provenance.%s`)\n\n", r.Type, r.Version, reflect.TypeOf(ev).Elem().Name())
		b.WriteString("| field | JSON type | when absent |\n|---|---|---|\n")
		docFields(&b, reflect.TypeOf(ev).Elem())
	}
	b.WriteString("\n")
	return b.String()
}

func docFields(b *strings.Builder, t reflect.Type) {
	for f := range t.Fields() {
		if f.Anonymous {
			docFields(b, f.Type)
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		absent := "always written"
		if strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			absent = "omitted when empty"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", name, jsonType(f.Type), absent)
	}
}

func jsonType(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Doc]():
		return "JSON document (see the Go type's field comment)"
	case t == reflect.TypeFor[time.Time]():
		return "string (RFC 3339 time)"
	case t == reflect.TypeFor[Principal]():
		return "object {name, role, org}"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem()) + " or null"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		return "array of " + jsonType(t.Elem())
	case reflect.Map:
		return "object of " + jsonType(t.Elem())
	case reflect.Struct:
		var names []string
		for f := range t.Fields() {
			n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			names = append(names, n)
		}
		return "object {" + strings.Join(names, ", ") + "}"
	}
	return t.String()
}
