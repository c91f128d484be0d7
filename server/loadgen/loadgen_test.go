package loadgen

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// TestRunCountsWhatWentWrong: against a fake server whose explain fails, whose jobs end failed,
// whose repeats answer other rows and which answers the forbidden read, each is an unexpected
// error under its class, and the forbidden read answered 404 not_found is deliberate.
func TestRunCountsWhatWentWrong(t *testing.T) {
	for _, tc := range []struct {
		name            string
		forbiddenStatus int
		wantFailures    []string
	}{
		{"forbidden answered", http.StatusOK, []string{"explain: 500 internal", "job_wait: job failed (sandbox_failed)",
			"repeat_wait: a repeat's answer differs from its first release", "forbidden_read: a forbidden read was answered"}},
		{"forbidden refused", http.StatusNotFound, []string{"explain: 500 internal", "job_wait: job failed (sandbox_failed)",
			"repeat_wait: a repeat's answer differs from its first release"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			ok := func(doc string) http.HandlerFunc {
				return func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(doc)) }
			}
			mux.HandleFunc("GET /healthz", ok(`{"status":"ok"}`))
			mux.HandleFunc("GET /v1/datasets", ok(`{"datasets":[]}`))
			mux.HandleFunc("GET /v1/datasets/{name}", ok(`{"name":"d"}`))
			mux.HandleFunc("GET /v1/grants/g1/budget", ok(`{}`))
			mux.HandleFunc("POST /v1/explain", func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				w.Write([]byte(`{"error":{"code":"internal","message":"x"}}`))
			})
			mux.HandleFunc("POST /v1/jobs", func(w http.ResponseWriter, r *http.Request) {
				var req struct{ SQL string }
				_ = json.NewDecoder(r.Body).Decode(&req)
				id := "new"
				if req.SQL == "REPEAT" {
					id = "rep"
				}
				w.WriteHeader(http.StatusAccepted)
				w.Write([]byte(`{"id":"` + id + `","state":"queued"}`))
			})
			mux.HandleFunc("GET /v1/jobs/new", ok(`{"id":"new","state":"failed","error":{"code":"sandbox_failed","message":"x"}}`))
			mux.HandleFunc("GET /v1/jobs/rep", ok(`{"id":"rep","state":"released","result":{"rows":[[{"value":2}]]}}`))
			mux.HandleFunc("GET /v1/grants/secret/budget", func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.forbiddenStatus)
				if tc.forbiddenStatus == http.StatusOK {
					w.Write([]byte(`{}`))
					return
				}
				w.Write([]byte(`{"error":{"code":"not_found","message":"x"}}`))
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			c, err := client.New(srv.URL, "tok-0123456789")
			if err != nil {
				t.Fatal(err)
			}
			anon, _ := client.New(srv.URL, "")
			target := &Target{Anonymous: anon, Applicants: []Applicant{{Name: "a", Client: c, Grants: []string{"g1"}}},
				Dataset: "d", Repeat: jobRequest("REPEAT"), RepeatResults: map[string]json.RawMessage{"g1": json.RawMessage(`[[{"value":1}]]`)},
				Snoop: c, ForbiddenGrant: "secret"}
			rep, err := Run(context.Background(), target, Config{Rate: 200, ForbiddenRate: 20, Duration: 600 * time.Millisecond, MaxInFlight: 8})
			if err != nil {
				t.Fatal(err)
			}
			sum := 0
			for _, k := range tc.wantFailures {
				if rep.Failures[k] == 0 {
					t.Errorf("no failure %q in %v", k, rep.Failures)
				}
				sum += rep.Failures[k]
			}
			if len(rep.Failures) != len(tc.wantFailures) || rep.Unexpected != sum {
				t.Errorf("failures %v (unexpected %d), want exactly %q", rep.Failures, rep.Unexpected, tc.wantFailures)
			}
			var forbidden ClassReport
			for _, cr := range rep.Classes {
				if cr.Class == ClassForbidden {
					forbidden = cr
				}
			}
			if wantDelib := tc.forbiddenStatus == http.StatusNotFound; (forbidden.Deliberate == forbidden.Requests && forbidden.Requests > 0) != wantDelib || rep.Deliberate != forbidden.Deliberate {
				t.Errorf("forbidden reads %d, deliberate %d (report %d)", forbidden.Requests, forbidden.Deliberate, rep.Deliberate)
			}
		})
	}
}

func jobRequest(sql string) api.JobRequest { return api.JobRequest{Kind: api.KindSQL, SQL: sql} }

// TestSmoothMixKeepsTheShares: one cycle holds each class exactly its weight, and no class
// waits more than twice its even spacing between turns (a short run sees every class).
func TestSmoothMixKeepsTheShares(t *testing.T) {
	deck := smoothMix()
	count := map[string][]int{}
	for i, c := range deck {
		count[c] = append(count[c], i)
	}
	for _, m := range Mix {
		pos := count[m.Class]
		if len(pos) != m.Weight {
			t.Errorf("%s: %d in a cycle of %d, want %d", m.Class, len(pos), len(deck), m.Weight)
		}
		for i := 1; i < len(pos); i++ {
			if even := (len(deck) + m.Weight - 1) / m.Weight; pos[i]-pos[i-1] > 2*even {
				t.Errorf("%s: a gap of %d, want at most %d", m.Class, pos[i]-pos[i-1], 2*even)
			}
		}
	}
}

// TestProcMemSumsTheDescendants: the sampler reads the process's own RSS and, apart, its
// descendants' (the server's sandbox workers): with a child running, that sum is positive.
func TestProcMemSumsTheDescendants(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var m Mem
	var err error
	for range 50 { // the child may not have mapped its memory yet
		if m, err = ProcMem(os.Getpid())(); err == nil && m.WorkersRSSKiB > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || m.RSSKiB <= 0 || m.WorkersRSSKiB <= 0 {
		t.Fatalf("ProcMem: %+v, %v; want the process's RSS and its child's", m, err)
	}
	if _, err := ProcMem(-1)(); err == nil {
		t.Fatal("a process that does not exist was sampled")
	}
}

// TestResetPeaksForgetsAnEarlierPeak: after 64 MiB touched and freed, the process's VmHWM is
// well above its RSS; ResetPeaks brings the peak back down to about the RSS.
func TestResetPeaksForgetsAnEarlierPeak(t *testing.T) {
	const size = 64 << 20
	grow := func() {
		b := make([]byte, size)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		runtime.KeepAlive(b)
	}
	grow()
	debug.FreeOSMemory()
	before, err := ProcMem(os.Getpid())()
	if err != nil {
		t.Fatal(err)
	}
	if before.HWMKiB < before.RSSKiB+size>>10/2 {
		t.Fatalf("the 64 MiB did not show in the peak: %+v", before)
	}
	if err := ResetPeaks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	after, err := ProcMem(os.Getpid())()
	if err != nil {
		t.Fatal(err)
	}
	if after.HWMKiB >= before.HWMKiB-size>>10/2 {
		t.Fatalf("peak before the reset %d KiB, after %d KiB: not reset", before.HWMKiB, after.HWMKiB)
	}
	if err := ResetPeaks(-1); err == nil {
		t.Fatal("a process that does not exist was reset")
	}
}
