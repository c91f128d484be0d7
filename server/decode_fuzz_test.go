package server

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// FuzzDecodeRequests: any body, as any request document the API reads (a job, an
// application, an approval, a reason, a red-team run), is decoded or refused as
// invalid_request — never a panic, never another code — and a refusal never quotes a string
// value the body held (a body may carry SQL or a claim; only field names and offsets are named).
func FuzzDecodeRequests(f *testing.F) {
	f.Add(uint8(0), []byte(`{"grant":"g-1","sql":"SELECT COUNT(*) FROM medical_visits","options":{"epsilon":1}}`))
	f.Add(uint8(0), []byte(`{"grant":"g-1","sql":"x","options":{"epsilon":"secret-value-123"}}`))
	f.Add(uint8(1), []byte(`{"datasets":["medical_visits"],"purpose":"p","epsilon":1,"delta":1e-6,"expires":"9999-12-31"}`))
	f.Add(uint8(2), []byte(`{"epsilon": 1e999}`))
	f.Add(uint8(3), []byte(`{"reason":"ok"}{"reason":"again"}`))
	f.Add(uint8(4), []byte(``))
	f.Add(uint8(0), []byte(`{"grant":"g","secret-value-123":1}`))
	f.Add(uint8(0), []byte(`{"grant":"g","kind":"verify","verify":{"public_key":"AAEC","batches":[{"dataset":"residents","attribute":"income_band","subjects":["5301021980"],"consents":["c-1"],"ciphertexts":["AAEC"]}]}}`))
	f.Add(uint8(0), []byte(`{"grant":"g","kind":"verify","verify":{"public_key":"not base64 secret-value-123","batches":[]}}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		docs := []any{&api.JobRequest{}, &api.ApplicationRequest{}, &api.ApproveRequest{}, &api.ReasonRequest{}, &api.RedteamRequest{}}
		v := docs[int(which)%len(docs)]
		r := httptest.NewRequest("POST", "/v1/x", bytes.NewReader(body))
		err := decode(r, v, which%2 == 0)
		if err == nil {
			return
		}
		if errcode.Of(err) != errcode.InvalidRequest {
			t.Fatalf("refused as %s, want invalid_request: %v", errcode.Of(err), err)
		}
		msg := errcode.Public(err).Message
		for _, s := range stringValues(body) {
			if len(s) >= 8 && strings.Contains(msg, s) {
				t.Fatalf("the refusal %q quotes a value of the body", msg)
			}
		}
	})
}

// stringValues returns the JSON string literals that follow a colon in a body (values, not
// field names; a rough scan).
func stringValues(body []byte) []string {
	var out []string
	for _, part := range strings.Split(string(body), ":")[1:] {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, `"`) {
			if end := strings.Index(part[1:], `"`); end > 0 {
				out = append(out, part[1:1+end])
			}
		}
	}
	return out
}
