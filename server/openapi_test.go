package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/dp/accountant"
	"github.com/c1b99f93/cleanroom/engine"
	"github.com/c1b99f93/cleanroom/engine/ledger"
	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// The tests here keep openapi.json true to the code: its operations to routes(), its schemas to
// the Go types the handlers encode and decode, its status codes to the handlers and statusOf.

// oaUnauthenticated are served by Handler outside routes(), without a token.
var oaUnauthenticated = []string{"GET /healthz", "GET /v1/openapi.json"}

// oaOperation is what each route answers and reads: the success status and schema (as the
// handler returns them), the request body schema (empty for none) and whether the body is
// required (false where the handler decodes with allowEmpty), and its query parameters.
type oaOperation struct {
	status   int
	response string
	text     bool     // the success answer is text/plain
	required []string // query parameters that are required whole numbers (the rest are optional strings)
	body     string
	bodyReq  bool
	query    []string
}

var oaOperations = map[string]oaOperation{
	"GET /healthz":                            {status: 200, response: "Health"},
	"GET /v1/openapi.json":                    {status: 200},
	"GET /v1/whoami":                          {status: 200, response: "Principal"},
	"POST /v1/datasets":                       {status: 201, response: "Registered", body: "CatalogSpec", bodyReq: true},
	"GET /v1/datasets":                        {status: 200, response: "Datasets"},
	"GET /v1/datasets/{name}":                 {status: 200, response: "DatasetDetail"},
	"GET /v1/datasets/{name}/budget":          {status: 200, response: "BudgetReport"},
	"POST /v1/applications":                   {status: 201, response: "Application", body: "ApplicationRequest", bodyReq: true},
	"GET /v1/applications":                    {status: 200, response: "Applications"},
	"GET /v1/applications/{id}":               {status: 200, response: "Application"},
	"POST /v1/applications/{id}/approve":      {status: 201, response: "Approved", body: "ApproveRequest"},
	"POST /v1/applications/{id}/reject":       {status: 200, response: "Application", body: "ReasonRequest", bodyReq: true},
	"GET /v1/grants":                          {status: 200, response: "Grants"},
	"GET /v1/grants/{id}":                     {status: 200, response: "Grant"},
	"GET /v1/grants/{id}/budget":              {status: 200, response: "BudgetReport"},
	"POST /v1/grants/{id}/suspend":            {status: 200, response: "Grant", body: "ReasonRequest"},
	"POST /v1/grants/{id}/resume":             {status: 200, response: "Grant", body: "ReasonRequest"},
	"POST /v1/grants/{id}/revoke":             {status: 200, response: "Grant", body: "ReasonRequest"},
	"POST /v1/grants/{id}/redteam":            {status: 201, response: "RedteamRecorded", body: "RedteamRequest", bodyReq: true},
	"GET /v1/grants/{id}/verify":              {status: 200, response: "VerifyStatus"},
	"POST /v1/grants/{id}/verify/key":         {status: 201, response: "VerifyChallenge", body: "VerifyKeyCommitRequest", bodyReq: true},
	"POST /v1/grants/{id}/verify/key/open":    {status: 200, response: "VerifyStatus", body: "VerifyKeyOpenRequest", bodyReq: true},
	"POST /v1/grants/{id}/verify/commitments": {status: 201, response: "VerifyChallenge", body: "VerifyClaimsCommitRequest", bodyReq: true},
	"POST /v1/wasm/modules":                   {status: 201, response: "WasmModule", body: "WasmModuleUpload", bodyReq: true, query: []string{"grant"}},
	"POST /v1/jobs":                           {status: 202, response: "Job", body: "JobRequest", bodyReq: true},
	"POST /v1/explain":                        {status: 200, response: "Explanation", body: "JobRequest", bodyReq: true},
	"GET /v1/jobs":                            {status: 200, response: "Jobs", query: []string{"grant", "state"}},
	"GET /v1/jobs/{id}":                       {status: 200, response: "Job", query: []string{"wait"}},
	"GET /v1/reviews":                         {status: 200, response: "Reviews"},
	"POST /v1/reviews/{job}/approve":          {status: 200, response: "Job", body: "ReasonRequest"},
	"POST /v1/reviews/{job}/reject":           {status: 200, response: "Job", body: "ReasonRequest", bodyReq: true},
	"GET /v1/audit/verify":                    {status: 200, response: "VerifyReport"},
	"GET /v1/audit/jobs/{id}":                 {status: 200, response: "AuditJob"},
	"POST /v1/audit/jobs/{id}/replay":         {status: 200, response: "ReplayReport"},
	"GET /v1/audit/pubkey":                    {status: 200, text: true},
	"GET /v1/audit/checkpoint":                {status: 200, text: true},
	"GET /v1/audit/proof/inclusion":           {status: 200, response: "InclusionProof", query: []string{"index", "size"}, required: []string{"index", "size"}},
	"GET /v1/audit/proof/consistency":         {status: 200, response: "ConsistencyProof", query: []string{"old", "new"}, required: []string{"old", "new"}},
}

// oaSchemaTypes maps each Go type on the wire to its components schema. Several Go types with the
// same JSON shape share a schema. strict marks the types the server decodes with
// DisallowUnknownFields (their schemas say additionalProperties: false).
var oaSchemaTypes = []struct {
	name   string
	typ    reflect.Type
	strict bool
}{
	{"ErrorBody", reflect.TypeFor[api.ErrorBody](), false},
	{"Error", reflect.TypeFor[api.Error](), false},
	{"Error", reflect.TypeFor[errcode.PublicError](), false},
	{"Health", reflect.TypeFor[api.Health](), false},
	{"Principal", reflect.TypeFor[api.Principal](), false},
	{"Dataset", reflect.TypeFor[api.Dataset](), false},
	{"Datasets", reflect.TypeFor[api.Datasets](), false},
	{"Registered", reflect.TypeFor[api.Registered](), false},
	{"Budget", reflect.TypeFor[api.Budget](), false},
	{"Budget", reflect.TypeFor[ledger.Budget](), false},
	{"Budget", reflect.TypeFor[plan.Cost](), false},
	{"Budget", reflect.TypeFor[accountant.Cost](), false},
	{"CatalogSpec", reflect.TypeFor[catalog.Spec](), true},
	{"CatalogSource", reflect.TypeFor[catalog.Source](), true},
	{"CatalogBudget", reflect.TypeFor[catalog.Budget](), true},
	{"CatalogColumn", reflect.TypeFor[catalog.Column](), true},
	{"ApplicationRequest", reflect.TypeFor[api.ApplicationRequest](), true},
	{"Application", reflect.TypeFor[api.Application](), false},
	{"Applications", reflect.TypeFor[api.Applications](), false},
	{"ApproveRequest", reflect.TypeFor[api.ApproveRequest](), true},
	{"Approved", reflect.TypeFor[api.Approved](), false},
	{"ReasonRequest", reflect.TypeFor[api.ReasonRequest](), true},
	{"Grant", reflect.TypeFor[api.Grant](), false},
	{"GrantBudget", reflect.TypeFor[api.GrantBudget](), false},
	{"Grants", reflect.TypeFor[api.Grants](), false},
	{"RedteamRequest", reflect.TypeFor[api.RedteamRequest](), true},
	{"RedteamAttack", reflect.TypeFor[api.RedteamAttack](), true},
	{"RedteamRecorded", reflect.TypeFor[api.RedteamRecorded](), false},
	{"JobRequest", reflect.TypeFor[api.JobRequest](), true},
	{"JobOptions", reflect.TypeFor[api.JobOptions](), true},
	{"Job", reflect.TypeFor[api.Job](), false},
	{"JobReview", reflect.TypeFor[api.JobReview](), false},
	{"Review", reflect.TypeFor[api.Review](), false},
	{"Jobs", reflect.TypeFor[api.Jobs](), false},
	{"ReviewItem", reflect.TypeFor[api.ReviewItem](), false},
	{"Reviews", reflect.TypeFor[api.Reviews](), false},
	{"AuditJob", reflect.TypeFor[api.AuditJob](), false},
	{"ProvenanceEntry", reflect.TypeFor[api.AuditEntry](), false},
	{"ProvenanceRecord", reflect.TypeFor[provenance.RecordEnvelope](), false},
	{"VerifyReport", reflect.TypeFor[api.VerifyReport](), false},
	{"Result", reflect.TypeFor[api.Result](), false},
	{"Bias", reflect.TypeFor[api.Bias](), false},
	{"ClampedShare", reflect.TypeFor[api.ClampedShare](), false},
	{"ChosenBounds", reflect.TypeFor[api.ChosenBounds](), false},
	{"ResultColumn", reflect.TypeFor[api.ResultCol](), false},
	{"Cell", reflect.TypeFor[api.Cell](), false},
	{"Released", reflect.TypeFor[api.Released](), false},
	{"Derived", reflect.TypeFor[api.Derived](), false},
	{"BudgetReport", reflect.TypeFor[api.BudgetReport](), false},
	{"ReplayReport", reflect.TypeFor[api.ReplayReport](), false},
	{"ReplayStage", reflect.TypeFor[api.ReplayStage](), false},
	{"InclusionProof", reflect.TypeFor[api.InclusionProof](), false},
	{"ConsistencyProof", reflect.TypeFor[api.ConsistencyProof](), false},
	{"LedgerBalance", reflect.TypeFor[api.LedgerBalance](), false},
	{"LedgerAllocation", reflect.TypeFor[api.LedgerAllocation](), false},
	{"LedgerEntry", reflect.TypeFor[api.LedgerEntry](), false},
	{"AccountingReport", reflect.TypeFor[api.AccountingReport](), false},
	{"MechanismComponent", reflect.TypeFor[dp.Component](), false},
	{"MechanismComponent", reflect.TypeFor[api.NoiseComponent](), false},
	{"Explanation", reflect.TypeFor[api.Explanation](), false},
	{"ExplainedAggregate", reflect.TypeFor[api.ExplainedAggregate](), false},
	{"PolicyDecision", reflect.TypeFor[api.PolicyDecision](), false},
	{"DatasetDetail", reflect.TypeFor[api.DatasetDetail](), false},
	{"DatasetColumn", reflect.TypeFor[api.DatasetColumn](), false},
	{"DatasetGrant", reflect.TypeFor[api.DatasetGrant](), false},
	{"VerifyAttribute", reflect.TypeFor[catalog.VerifyAttribute](), true},
	{"FederatedRequest", reflect.TypeFor[api.FederatedRequest](), true},
	{"VerifyRequest", reflect.TypeFor[api.VerifyRequest](), true},
	{"VerifyBatch", reflect.TypeFor[api.VerifyBatch](), true},
	{"VerifyResult", reflect.TypeFor[api.VerifyResult](), false},
	{"VerifyAnswer", reflect.TypeFor[api.VerifyAnswer](), false},
	{"ModelRequest", reflect.TypeFor[api.ModelRequest](), true},
	{"ModelResult", reflect.TypeFor[api.ModelResult](), false},
	{"ModelRepeat", reflect.TypeFor[api.ModelRepeat](), false},
	{"ModelCoefficient", reflect.TypeFor[api.ModelCoefficient](), false},
	{"ModelMetrics", reflect.TypeFor[api.ModelMetrics](), false},
	{"ModelConfusion", reflect.TypeFor[api.ModelConfusion](), false},
	{"WasmRequest", reflect.TypeFor[api.WasmRequest](), true},
	{"WasmOutput", reflect.TypeFor[api.WasmOutput](), true},
	{"WasmModuleUpload", reflect.TypeFor[api.WasmModuleUpload](), true},
	{"WasmModule", reflect.TypeFor[api.WasmModule](), false},
	{"WasmElement", reflect.TypeFor[api.WasmElement](), false},
	{"WasmResult", reflect.TypeFor[api.WasmResult](), false},
	{"VerifyKeyCommitRequest", reflect.TypeFor[api.VerifyKeyCommitRequest](), true},
	{"VerifyKeyOpenRequest", reflect.TypeFor[api.VerifyKeyOpenRequest](), true},
	{"VerifyClaimsCommitRequest", reflect.TypeFor[api.VerifyClaimsCommitRequest](), true},
	{"VerifyChallenge", reflect.TypeFor[api.VerifyChallenge](), false},
	{"VerifyStatus", reflect.TypeFor[api.VerifyStatus](), false},
	{"VerifySuspension", reflect.TypeFor[api.VerifySuspension](), false},
}

// oaUnchecked have no exported Go type to reflect over: MechanismRecord is the engine's
// unexported mechanismRecord, stored as a ledger entry's raw "mechanism" JSON.
var oaUnchecked = []string{"MechanismRecord"}

// oaRawSchemas say what a json.RawMessage or interface field holds: "Name" is a $ref to that
// schema, "[]Name" an array of it, "A|B" one of the two schemas, "" any JSON value (no type).
var oaRawSchemas = map[string]string{
	"Job.result":             "Result|VerifyResult|ModelResult|WasmResult",
	"ReviewItem.result":      "Result",
	"ProvenanceEntry.record": "ProvenanceRecord",
	"LedgerEntry.mechanism":  "[]MechanismRecord",
	"ProvenanceRecord.data":  "",
	"Explanation.plan":       "",
}

// oaOptionalFields have no omitempty but the server treats them as optional: an absent
// kind is "sql" and absent options are the defaults; a reason is optional except on
// rejections, whose operations require it on top of ReasonRequest.
var oaOptionalFields = []string{"JobRequest.kind", "JobRequest.options", "JobRequest.sql", "ReasonRequest.reason"}

// oaEnums tie the document's enumerations to the Go constants. A key "Schema.prop[]" is the
// enumeration of an array property's items.
var oaEnums = map[string][]string{
	"Job.state":                      {api.JobQueued, api.JobRunning, api.JobInReview, api.JobReleased, api.JobDenied, api.JobFailed},
	"Grant.state":                    {api.GrantActive, api.GrantSuspended, api.GrantRevoked, api.GrantExpired},
	"Application.state":              {api.ApplicationPending, api.ApplicationApproved, api.ApplicationRejected},
	"Job.kind":                       {api.KindSQL, api.KindVerify, api.KindFederated, api.KindModel, api.KindWasm},
	"JobRequest.kind":                {"", api.KindSQL, api.KindVerify, api.KindFederated, api.KindModel, api.KindWasm},
	"ApplicationRequest.job_kinds[]": {api.KindSQL, api.KindVerify, api.KindFederated, api.KindModel, api.KindWasm},
	"Application.job_kinds[]":        {api.KindSQL, api.KindVerify, api.KindFederated, api.KindModel, api.KindWasm},
	"Grant.job_kinds[]":              {api.KindSQL, api.KindVerify, api.KindFederated, api.KindModel, api.KindWasm},
	"LedgerEntry.state":              {ledger.StateReserved, ledger.StateDebited, ledger.StateRefunded},
	"LedgerAllocation.closed":        {engine.CloseRevoked, engine.CloseExpired, engine.CloseCancelled},
	"AccountingReport.method":        {accountant.MethodBasic, accountant.MethodGDP, accountant.MethodZCDP},
	"VerifyReport.problem": {provenance.ProblemMalformedLine, provenance.ProblemBadIndex, provenance.ProblemBrokenLink,
		provenance.ProblemBadHash, provenance.ProblemTruncated, provenance.ProblemCheckpointMalformed,
		provenance.ProblemCheckpointBadSignature, provenance.ProblemCheckpointOutOfOrder, provenance.ProblemCheckpointBeyondLog,
		provenance.ProblemCheckpointRootMismatch},
	"VerifyReport.tree_file": {provenance.TreeFileOK, provenance.TreeFileMissing, provenance.TreeFileShort,
		provenance.TreeFileLong, provenance.TreeFileMismatch},
	"CatalogSpec.grade":     {string(catalog.GradeL1), string(catalog.GradeL2), string(catalog.GradeL3), string(catalog.GradeL4)},
	"Dataset.grade":         {string(catalog.GradeL1), string(catalog.GradeL2), string(catalog.GradeL3), string(catalog.GradeL4)},
	"DatasetDetail.grade":   {string(catalog.GradeL1), string(catalog.GradeL2), string(catalog.GradeL3), string(catalog.GradeL4)},
	"DatasetDetail.size":    {api.SizePublic, api.SizeNone},
	"DatasetGrant.state":    {api.GrantActive, api.GrantSuspended, api.GrantRevoked, api.GrantExpired},
	"PolicyDecision.result": {"allow", "review", "deny"},
	"CatalogSource.kind":    {string(catalog.SourceCSV), string(catalog.SourceParquet), string(catalog.SourceArrow)},
	"CatalogColumn.tags[]":  {string(catalog.TagIdentifier), string(catalog.TagQuasiIdentifier), string(catalog.TagSensitive), string(catalog.TagAttribute)},
}

// oaDocumentedCodes must each appear in the document's text.
var oaDocumentedCodes = []errcode.Code{
	errcode.SeparationOfDuties, errcode.GrantExpired, errcode.GrantSuspended, errcode.GrantRevoked,
	errcode.Unauthenticated, errcode.Forbidden, errcode.NotFound, errcode.Conflict, errcode.InvalidRequest,
	errcode.InvalidSpec, errcode.InvalidOptions, errcode.UnsupportedJobKind, errcode.Unavailable,
	errcode.ReviewRejected, errcode.NotOperable, errcode.UnknownDataset, errcode.DatasetBudgetInsufficient,
	errcode.NoImportRoot, errcode.SourceOutsideImportRoot, errcode.SourceSymlink, errcode.DatasetAlreadyRegistered,
	errcode.QueueFull, errcode.RateLimited, errcode.RequestTooLarge,
}

// oaErrorCodes are the codes a request can fail with; statusOf gives the statuses a document may list.
var oaErrorCodes = []errcode.Code{
	errcode.Unauthenticated, errcode.Forbidden, errcode.PolicyDenied, errcode.SeparationOfDuties,
	errcode.GrantExpired, errcode.GrantSuspended, errcode.GrantRevoked, errcode.BudgetExhausted,
	errcode.NotOperable, errcode.NotFound, errcode.UnknownDataset, errcode.Conflict,
	errcode.UnsupportedJobKind, errcode.Unavailable, errcode.QueueFull, errcode.RateLimited, errcode.RequestTooLarge,
	errcode.Internal, errcode.ProvenanceFailed,
	errcode.SandboxFailed, errcode.InvalidRequest, errcode.InvalidSpec, errcode.InvalidOptions,
	errcode.DatasetBudgetInsufficient,
	errcode.NoImportRoot, errcode.SourceOutsideImportRoot, errcode.SourceSymlink, errcode.DatasetAlreadyRegistered,
	errcode.VerifySuspended, errcode.VerifyOpeningMismatch, errcode.VerifyOpeningLate, errcode.VerifyOpeningReplayed, errcode.VerifyKeyNotPinned,
}

var oaHTTPMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type oaObject = map[string]any

func loadOpenAPI(t *testing.T) oaObject {
	t.Helper()
	var doc oaObject
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

// oaGet follows keys through nested objects; nil when any is missing.
func oaGet(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(oaObject)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func oaObj(v any) oaObject {
	m, _ := v.(oaObject)
	return m
}

// oaResolve follows a local $ref ("#/a/b") to its target.
func oaResolve(doc oaObject, ref string) (any, error) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q is not local", ref)
	}
	var v any = doc
	for _, k := range strings.Split(p, "/") {
		k = strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~")
		m, ok := v.(oaObject)
		if !ok || m[k] == nil {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		v = m[k]
	}
	return v, nil
}

// oaDeref resolves v while it is a $ref object.
func oaDeref(t *testing.T, doc oaObject, v any) oaObject {
	t.Helper()
	for range 10 {
		ref, ok := oaObj(v)["$ref"].(string)
		if !ok {
			return oaObj(v)
		}
		var err error
		if v, err = oaResolve(doc, ref); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("$ref chain too long at %v", v)
	return nil
}

// oaSchemaName is the components schema a $ref names, or "".
func oaSchemaName(v any) string {
	ref, _ := oaObj(v)["$ref"].(string)
	name, _ := strings.CutPrefix(ref, "#/components/schemas/")
	return name
}

// oaBodySchemaName names a request or response schema: a $ref, or the first allOf member's $ref.
func oaBodySchemaName(v any) string {
	if n := oaSchemaName(v); n != "" {
		return n
	}
	if all, ok := oaObj(v)["allOf"].([]any); ok && len(all) > 0 {
		return oaSchemaName(all[0])
	}
	return ""
}

func oaKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func oaDiff(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

func oaStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// oaDocOperations lists the document's operations as "METHOD /path" with their operation and path item.
func oaDocOperations(doc oaObject) map[string][2]oaObject {
	out := map[string][2]oaObject{}
	for path, item := range oaObj(doc["paths"]) {
		for _, m := range oaHTTPMethods {
			if op := oaObj(oaObj(item)[m]); op != nil {
				out[strings.ToUpper(m)+" "+path] = [2]oaObject{op, oaObj(item)}
			}
		}
	}
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Errorf("openapi is %q, want 3.1.x", v)
	}
	if oaGet(doc, "info", "title") == nil || oaGet(doc, "info", "version") == nil {
		t.Error("info needs a title and a version")
	}

	// Every $ref resolves; every component is used.
	used := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case oaObject:
			if ref, ok := v["$ref"].(string); ok {
				if _, err := oaResolve(doc, ref); err != nil {
					t.Errorf("%s: %v", path, err)
				}
				used[ref] = true
			}
			for k, x := range v {
				walk(path+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				walk(path+"/"+strconv.Itoa(i), x)
			}
		}
	}
	walk("#", doc)
	for _, kind := range []string{"schemas", "responses"} {
		for name := range oaObj(oaGet(doc, "components", kind)) {
			if ref := "#/components/" + kind + "/" + name; !used[ref] {
				t.Errorf("%s is never referenced", ref)
			}
		}
	}

	// The texts name the codes clients branch on.
	for _, code := range oaDocumentedCodes {
		if !bytes.Contains(openapiDoc, []byte(code)) {
			t.Errorf("the document never mentions the error code %s", code)
		}
	}
	jobDesc, _ := oaGet(doc, "components", "schemas", "Job", "description").(string)
	for _, st := range oaEnums["Job.state"] {
		if !strings.Contains(jobDesc, "`"+st+"`") {
			t.Errorf("the Job schema's description does not explain the state %s", st)
		}
	}
	if resDesc, _ := oaGet(doc, "components", "schemas", "Job", "properties", "result", "description").(string); !strings.Contains(resDesc, "released") {
		t.Error("the Job schema does not say result is present only when released")
	}

	// The bearer scheme.
	if s := oaObj(oaGet(doc, "components", "securitySchemes", "bearerAuth")); s["type"] != "http" || s["scheme"] != "bearer" {
		t.Errorf("components.securitySchemes.bearerAuth is %v, want an http bearer scheme", s)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	want := slices.Clone(oaUnauthenticated)
	for _, rt := range (&Server{}).routes() {
		want = append(want, rt.pattern)
	}
	sort.Strings(want)
	ops := oaDocOperations(doc)
	got := oaKeys(ops)
	if onlyRoutes, onlyDoc := oaDiff(want, got); len(onlyRoutes)+len(onlyDoc) > 0 {
		t.Errorf("routes not in openapi.json: %q; operations in openapi.json without a route: %q", onlyRoutes, onlyDoc)
	}
	if onlyRoutes, onlyTable := oaDiff(want, oaKeys(oaOperations)); len(onlyRoutes)+len(onlyTable) > 0 {
		t.Errorf("the test's operations table is out of date: missing %q, extra %q", onlyRoutes, onlyTable)
	}

	// The query parameters the handlers read are the ones documented.
	var read, documented []string
	files, _ := filepath.Glob("*.go")
	queryGet := regexp.MustCompile(`(?:URL\.Query\(\)\.Get|uintParam)\((?:r, )?"([^"]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range queryGet.FindAllSubmatch(src, -1) {
			if !slices.Contains(read, string(m[1])) {
				read = append(read, string(m[1]))
			}
		}
	}

	statuses := map[int]bool{}
	for _, c := range oaErrorCodes {
		statuses[statusOf(c)] = true
	}
	params := regexp.MustCompile(`\{([^}]+)\}`)
	for _, key := range got {
		op, item := ops[key][0], ops[key][1]
		want, ok := oaOperations[key]
		if !ok {
			continue
		}
		path := strings.SplitN(key, " ", 2)[1]

		// Parameters: path ones exactly as the template, query ones as the table.
		var pathParams, queryParams []string
		for _, p := range append(slices.Clone(oaList(item["parameters"])), oaList(op["parameters"])...) {
			p := oaDeref(t, doc, p)
			name, _ := p["name"].(string)
			switch p["in"] {
			case "path":
				pathParams = append(pathParams, name)
				if p["required"] != true {
					t.Errorf("%s: path parameter %s is not required", key, name)
				}
			case "query":
				queryParams = append(queryParams, name)
				documented = append(documented, name)
				if req := slices.Contains(want.required, name); p["required"] != req && (req || p["required"] != nil) {
					t.Errorf("%s: query parameter %s: required is %v, want %v", key, name, p["required"], req)
				}
				if slices.Contains(want.required, name) {
					if oaGet(p, "schema", "type") != "integer" {
						t.Errorf("%s: parameter %s is not an integer", key, name)
					}
					continue
				}
			default:
				t.Errorf("%s: parameter %s is in %v", key, name, p["in"])
			}
			if oaGet(p, "schema", "type") != "string" {
				t.Errorf("%s: parameter %s is not a string", key, name)
			}
		}
		var inTemplate []string
		for _, m := range params.FindAllStringSubmatch(path, -1) {
			inTemplate = append(inTemplate, m[1])
		}
		if a, b := oaDiff(inTemplate, pathParams); len(a)+len(b) > 0 || len(pathParams) != len(inTemplate) {
			t.Errorf("%s: path parameters %q are not declared; declared but not in the path: %q (declared %q)", key, a, b, pathParams)
		}
		if a, b := oaDiff(want.query, queryParams); len(a)+len(b) > 0 {
			t.Errorf("%s: query parameters %q are not declared; declared but not read: %q", key, a, b)
		}

		// Security: a bearer token on every route but the unauthenticated ones.
		sec, own := op["security"]
		if !own {
			sec = doc["security"]
		}
		needsToken := false
		for _, req := range oaList(sec) {
			if _, ok := oaObj(req)["bearerAuth"]; ok {
				needsToken = true
			} else if len(oaObj(req)) == 0 {
				t.Errorf("%s: a security requirement lists an empty alternative, which makes the token optional", key)
			}
		}
		if authed := !slices.Contains(oaUnauthenticated, key); needsToken != authed {
			t.Errorf("%s: requires a bearer token: %v, want %v", key, needsToken, authed)
		}

		// Responses: exactly the handler's success status, and errors as ErrorBody.
		responses := oaObj(op["responses"])
		var success []string
		for code, r := range responses {
			status, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", key, code)
				continue
			}
			if status < 300 && want.text {
				if oaGet(oaDeref(t, doc, r), "content", "text/plain", "schema") == nil {
					t.Errorf("%s: response %s has no text/plain schema", key, code)
				}
				success = append(success, code)
				continue
			}
			schema := oaGet(oaDeref(t, doc, r), "content", "application/json", "schema")
			if schema == nil {
				t.Errorf("%s: response %s has no application/json schema", key, code)
				continue
			}
			if status < 300 {
				success = append(success, code)
				if want.response != "" && oaSchemaName(schema) != want.response {
					t.Errorf("%s: response %s is %v, want the %s schema", key, code, schema, want.response)
				}
				continue
			}
			if oaSchemaName(schema) != "ErrorBody" {
				t.Errorf("%s: error response %s is not an ErrorBody", key, code)
			}
			if !statuses[status] {
				t.Errorf("%s: error response %s is not a status statusOf gives", key, code)
			}
		}
		if !slices.Equal(success, []string{strconv.Itoa(want.status)}) {
			t.Errorf("%s: success responses %q, want exactly %d", key, success, want.status)
		}
		if needsToken {
			for _, code := range []string{"401", "403", "500"} {
				if responses[code] == nil {
					t.Errorf("%s: needs a token but does not document %s", key, code)
				}
			}
		}
		// The limits every request passes (server/limits.go, server/http.go): an authenticated
		// route can answer rate_limited (a backing-off address, a principal's empty denied-request
		// bucket), a route that reads a body request_too_large; job submission also queue_full.
		if needsToken {
			r429 := oaDeref(t, doc, responses["429"])
			if desc, _ := r429["description"].(string); !strings.Contains(desc, string(errcode.RateLimited)) {
				t.Errorf("%s: needs a token but its 429 does not name %s", key, errcode.RateLimited)
			}
			if oaGet(r429, "headers", "Retry-After") == nil {
				t.Errorf("%s: its 429 has no Retry-After header", key)
			}
		}
		if key == "POST /v1/jobs" {
			if desc, _ := oaDeref(t, doc, responses["429"])["description"].(string); !strings.Contains(desc, string(errcode.QueueFull)) {
				t.Errorf("%s: its 429 does not name %s", key, errcode.QueueFull)
			}
		}
		if strings.HasPrefix(key, "POST ") {
			if desc, _ := oaDeref(t, doc, responses["413"])["description"].(string); !strings.Contains(desc, string(errcode.RequestTooLarge)) {
				t.Errorf("%s: takes a body but does not document 413 %s", key, errcode.RequestTooLarge)
			}
		}
		if want.body != "" || slices.Contains(want.query, "wait") {
			if responses["400"] == nil {
				t.Errorf("%s: decodes a body or a duration but does not document 400", key)
			}
		}

		// Request body.
		rb := oaObj(op["requestBody"])
		switch {
		case want.body == "" && rb != nil:
			t.Errorf("%s: documents a request body the handler does not read", key)
		case want.body != "" && rb == nil:
			t.Errorf("%s: does not document its %s body", key, want.body)
		case want.body != "":
			rb = oaDeref(t, doc, rb)
			if got := oaBodySchemaName(oaGet(rb, "content", "application/json", "schema")); got != want.body {
				t.Errorf("%s: request body is %q, want %s", key, got, want.body)
			}
			if req, _ := rb["required"].(bool); req != want.bodyReq {
				t.Errorf("%s: requestBody.required is %v, want %v", key, req, want.bodyReq)
			}
		}
	}
	if a, b := oaDiff(read, documented); len(a)+len(b) > 0 {
		t.Errorf("query parameters the handlers read but the document lacks: %q; documented but never read: %q", a, b)
	}
}

func oaList(v any) []any {
	l, _ := v.([]any)
	return l
}

// oaField is a struct field as encoding/json sees it.
type oaField struct {
	name      string
	typ       reflect.Type
	omitempty bool
}

func oaFields(t reflect.Type) []oaField {
	var out []oaField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, oaFields(ft)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, oaField{name: name, typ: f.Type, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	return out
}

var (
	oaTimeType = reflect.TypeFor[time.Time]()
	oaRawType  = reflect.TypeFor[json.RawMessage]()
)

// oaTypes returns a schema's JSON types and whether null is among them.
func oaTypes(s oaObject) (set []string, nullable bool) {
	switch v := s["type"].(type) {
	case string:
		set = []string{v}
	case []any:
		set = oaStrings(v)
	}
	i := slices.Index(set, "null")
	if i >= 0 {
		set = slices.Delete(set, i, i+1)
	}
	return set, i >= 0
}

func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	schemas := oaObj(oaGet(doc, "components", "schemas"))
	byType := map[reflect.Type]string{}
	var names []string
	for _, st := range oaSchemaTypes {
		byType[st.typ] = st.name
		if !slices.Contains(names, st.name) {
			names = append(names, st.name)
		}
	}
	if a, b := oaDiff(append(slices.Clone(names), oaUnchecked...), oaKeys(schemas)); len(a)+len(b) > 0 {
		t.Errorf("schemas in the table but not the document: %q; in the document but not the table: %q", a, b)
	}

	// checkType checks that schema s fits a value of Go type typ at where ("Schema.prop").
	var checkType func(where string, s oaObject, typ reflect.Type, rawKey string)
	checkType = func(where string, s oaObject, typ reflect.Type, rawKey string) {
		if s == nil {
			t.Errorf("%s: no schema", where)
			return
		}
		pointer := typ.Kind() == reflect.Pointer
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ == oaRawType || typ.Kind() == reflect.Interface {
			want, ok := oaRawSchemas[rawKey]
			switch {
			case !ok:
				t.Errorf("%s: a %s needs an entry in rawSchemas", where, typ)
			case want == "":
				if _, hasType := s["type"]; hasType || s["$ref"] != nil {
					t.Errorf("%s: any JSON value, but the schema constrains it: %v", where, s)
				}
			case strings.HasPrefix(want, "[]"):
				if ts, _ := oaTypes(s); !slices.Equal(ts, []string{"array"}) || oaSchemaName(s["items"]) != want[2:] {
					t.Errorf("%s: want an array of %s, got %v", where, want[2:], s)
				}
			case strings.Contains(want, "|"):
				alts, _ := s["oneOf"].([]any)
				var got []string
				for _, a := range alts {
					got = append(got, oaSchemaName(a))
				}
				if !slices.Equal(got, strings.Split(want, "|")) {
					t.Errorf("%s: want one of %s, got %v", where, want, s)
				}
			default:
				if oaSchemaName(s) != want {
					t.Errorf("%s: want the %s schema, got %v", where, want, s)
				}
			}
			return
		}
		if typ.Kind() == reflect.Struct && typ != oaTimeType {
			want, ok := byType[typ]
			switch {
			case !ok:
				t.Errorf("%s: Go type %s has no schema in the test's table", where, typ)
			case oaSchemaName(s) != want:
				t.Errorf("%s: a %s is the %s schema, got %v", where, typ, want, s)
			}
			return
		}
		set, nullable := oaTypes(s)
		var want string
		switch typ.Kind() {
		case reflect.String:
			want = "string"
		case reflect.Bool:
			want = "boolean"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "integer"
		case reflect.Float32, reflect.Float64:
			want = "number"
		case reflect.Slice, reflect.Array:
			want = "array"
			if typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8 { // []byte: base64 text
				want = "string"
				if s["format"] != "byte" {
					t.Errorf("%s: bytes are a string of format byte, got format %v", where, s["format"])
				}
			}
		case reflect.Map:
			want = "object"
		case reflect.Struct: // time.Time
			want = "string"
			if s["format"] != "date-time" {
				t.Errorf("%s: a time is a date-time string, got format %v", where, s["format"])
			}
		default:
			t.Errorf("%s: unexpected Go kind %s", where, typ.Kind())
			return
		}
		if !slices.Equal(set, []string{want}) {
			t.Errorf("%s: Go %s is JSON %s, the schema says %v", where, typ, want, s["type"])
		}
		// encoding/json writes null for a nil slice, map or pointer only.
		if nullable && !pointer && typ.Kind() != reflect.Slice && typ.Kind() != reflect.Map {
			t.Errorf("%s: Go %s is never null", where, typ)
		}
		switch {
		case want == "string":
		case typ.Kind() == reflect.Slice, typ.Kind() == reflect.Array:
			checkType(where+"[]", oaObj(s["items"]), typ.Elem(), rawKey+"[]")
		case typ.Kind() == reflect.Map:
			if typ.Key().Kind() != reflect.String {
				t.Errorf("%s: map key %s", where, typ.Key())
			}
			checkType(where+"{}", oaObj(s["additionalProperties"]), typ.Elem(), rawKey+"{}")
		}
	}

	for _, st := range oaSchemaTypes {
		s := oaObj(schemas[st.name])
		where := fmt.Sprintf("%s (%s)", st.name, st.typ)
		if s == nil {
			t.Errorf("%s: no such schema", where)
			continue
		}
		if ts, _ := oaTypes(s); !slices.Equal(ts, []string{"object"}) {
			t.Errorf("%s: type %v, want object", where, s["type"])
		}
		if d, _ := s["description"].(string); d == "" {
			t.Errorf("%s: no description", where)
		}
		addl, hasAddl := s["additionalProperties"]
		if st.strict && addl != false {
			t.Errorf("%s: the server decodes it strictly: additionalProperties must be false", where)
		}
		if !st.strict && hasAddl && addl != true {
			t.Errorf("%s: additionalProperties %v on a document the server only writes", where, addl)
		}

		props := oaObj(s["properties"])
		var fields, required []string
		for _, f := range oaFields(st.typ) {
			fields = append(fields, f.name)
			if !f.omitempty && !slices.Contains(oaOptionalFields, st.name+"."+f.name) {
				required = append(required, f.name)
			}
			checkType(st.name+"."+f.name, oaObj(props[f.name]), f.typ, st.name+"."+f.name)
		}
		if a, b := oaDiff(fields, oaKeys(props)); len(a)+len(b) > 0 {
			t.Errorf("%s: fields missing from the schema: %q; properties the Go type lacks: %q", where, a, b)
		}
		docRequired := oaStrings(s["required"])
		if a, b := oaDiff(required, docRequired); len(a)+len(b) > 0 {
			t.Errorf("%s: fields without omitempty that are not required: %q; required but omitempty: %q", where, a, b)
		}
	}

	for key, want := range oaEnums {
		name, prop, _ := strings.Cut(key, ".")
		prop, items := strings.CutSuffix(prop, "[]")
		s := oaObj(oaGet(schemas, name, "properties", prop))
		if items {
			s = oaObj(s["items"])
		}
		if got := oaStrings(s["enum"]); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
			t.Errorf("%s: enum %q, want %q", key, got, want)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	rec := httptest.NewRecorder()
	(&Server{}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), openapiDoc) {
		t.Error("the served document differs from the embedded openapi.json")
	}
}
