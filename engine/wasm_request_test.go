package engine

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

const wasmDigest = `"module_digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`

// wasmRequestCases are custom model requests and the code CheckWasmRequest answers (""
// admits): the table test and the fuzz target's seeds.
var wasmRequestCases = []struct {
	name string
	json string
	code errcode.Code
}{
	{"by digest", `{` + wasmDigest + `,"sql":"SELECT p, a FROM d","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20}`, ""},
	{"inline with deadline", `{"module":"AGFzbQ==","sql":"SELECT p, a FROM d","output":{"length":2,"bounds":[[0,1],[-5,5]],"default":[1,0]},"blocks":2,"deadline_ms":60000}`, ""},
	{"no module", `{"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20}`, errcode.InvalidRequest},
	{"both", `{"module":"AGFzbQ==",` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20}`, errcode.InvalidRequest},
	{"upper-case digest", `{"module_digest":"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef","sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20}`, errcode.InvalidRequest},
	{"path as digest", `{"module_digest":"../../../etc/passwd","sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20}`, errcode.InvalidRequest},
	{"no sql", `{` + wasmDigest + `,"sql":"  ","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20}`, errcode.InvalidRequest},
	{"length 0", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":0,"bounds":[],"default":[]},"blocks":20}`, errcode.InvalidOptions},
	{"length and bounds differ", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":2,"bounds":[[0,1]],"default":[0,0]},"blocks":20}`, errcode.InvalidOptions},
	{"default short", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[]},"blocks":20}`, errcode.InvalidOptions},
	{"bounds equal", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[1,1]],"default":[1]},"blocks":20}`, errcode.InvalidOptions},
	{"default outside", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[2]},"blocks":20}`, errcode.InvalidOptions},
	{"huge bounds", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[-1e308,1e308]],"default":[0]},"blocks":20}`, errcode.InvalidOptions},
	{"one block", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":1}`, errcode.InvalidOptions},
	{"too many blocks", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":10001}`, errcode.InvalidOptions},
	{"negative deadline", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20,"deadline_ms":-5}`, errcode.InvalidOptions},
	{"deadline too long", `{` + wasmDigest + `,"sql":"SELECT 1","output":{"length":1,"bounds":[[0,1]],"default":[0]},"blocks":20,"deadline_ms":60001}`, errcode.InvalidOptions},
}

// TestCheckWasmRequestCodes: each malformed request has its stable code.
func TestCheckWasmRequestCodes(t *testing.T) {
	for _, tc := range wasmRequestCases {
		t.Run(tc.name, func(t *testing.T) {
			var r api.WasmRequest
			if err := json.Unmarshal([]byte(tc.json), &r); err != nil {
				t.Fatal(err)
			}
			err := CheckWasmRequest(&r)
			if got := errcode.Of(err); err != nil && got != tc.code || err == nil && tc.code != "" {
				t.Fatalf("CheckWasmRequest = %v (code %q), want code %q", err, got, tc.code)
			}
		})
	}
	if err := CheckWasmRequest(nil); errcode.Of(err) != errcode.InvalidRequest {
		t.Fatalf("nil request: %v", err)
	}
	big := api.WasmRequest{Module: make([]byte, MaxWasmModuleBytes+1), SQL: "SELECT 1", Blocks: 2,
		Output: api.WasmOutput{Length: 1, Bounds: [][2]float64{{0, 1}}, Default: []float64{0}}}
	if err := CheckWasmRequest(&big); errcode.Of(err) != errcode.WasmInvalidModule {
		t.Fatalf("a module over the cap: %v", err)
	}
}

// FuzzCheckWasmRequest: any request body decodes and checks without a panic; a refusal has one
// of the request's codes and never quotes the SQL or a bound or default value.
func FuzzCheckWasmRequest(f *testing.F) {
	for _, tc := range wasmRequestCases {
		f.Add([]byte(tc.json))
	}
	codes := map[errcode.Code]bool{errcode.InvalidRequest: true, errcode.InvalidOptions: true, errcode.WasmInvalidModule: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r api.WasmRequest
		if json.Unmarshal(body, &r) != nil {
			return
		}
		err := CheckWasmRequest(&r)
		if err == nil {
			if r.Output.Length < 1 || len(r.Output.Bounds) != r.Output.Length || r.Blocks < 2 {
				t.Fatalf("admitted a request with an impossible shape: %s", body)
			}
			return
		}
		if !codes[errcode.Of(err)] {
			t.Fatalf("code %q for %s", errcode.Of(err), body)
		}
		msg := errcode.Public(err).Message
		if len(r.SQL) > 8 && strings.Contains(msg, r.SQL) {
			t.Fatalf("the refusal quotes the SQL: %v", err)
		}
		for _, v := range r.Output.Default {
			if s := strconv.FormatFloat(v, 'g', -1, 64); len(s) > 4 && strings.Contains(msg, s) {
				t.Fatalf("the refusal quotes a value of the request: %v", err)
			}
		}
	})
}
