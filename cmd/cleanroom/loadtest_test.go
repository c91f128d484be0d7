package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/c1b99f93/cleanroom/server/loadgen"
)

// serveFromTestBinary starts `cleanroom serve` as this test binary (TestMain runs the CLI).
func serveFromTestBinary(args []string) *exec.Cmd {
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envTestMain+"="+string(raw))
	return cmd
}

func testLoadOptions() loadOptions {
	return loadOptions{dataset: "medical_visits", datasets: filepath.Join("..", "..", "testdata", "datasets"),
		rate: 20, forbiddenRate: 1, duration: 5 * time.Second, warmup: time.Second, maxInFlight: 48,
		rssGrowthMiB: 256, output: outputJSON}
}

// TestLoadtestShortRunHasNoUnexpectedErrors is the short version of `make loadtest`: five
// seconds of the mix against a real `cleanroom serve` child process. No request fails except the
// deliberate forbidden reads (each answered as a hidden object), every class of the mix is
// exercised, jobs are released and repeats answered from their release, and the report is sane.
// Nothing is asserted about speed.
func TestLoadtestShortRunHasNoUnexpectedErrors(t *testing.T) {
	var out bytes.Buffer
	if err := runLoadtest(context.Background(), &out, testLoadOptions(), serveFromTestBinary); err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("the JSON report: %v\n%s", err, out.String())
	}
	if rep.Unexpected != 0 || len(rep.Failures) != 0 {
		t.Fatalf("unexpected errors %d: %v", rep.Unexpected, rep.Failures)
	}
	classes := map[string]loadgen.ClassReport{}
	total := 0
	for _, c := range rep.Classes {
		classes[c.Class] = c
		total += c.Requests
		if c.Requests == 0 || c.P50 <= 0 || c.P50 > c.P99 || c.P99 > c.Max {
			t.Errorf("class %s: %d requests, p50 %v, p99 %v, max %v", c.Class, c.Requests, c.P50, c.P99, c.Max)
		}
		if want := 0; c.Class != loadgen.ClassForbidden && c.Deliberate != want {
			t.Errorf("class %s has %d deliberate errors", c.Class, c.Deliberate)
		}
	}
	for _, m := range loadgen.Mix {
		if classes[m.Class].Requests == 0 {
			t.Errorf("the mix's class %s sent nothing", m.Class)
		}
	}
	for _, c := range []string{loadgen.ClassJobWait, loadgen.ClassRepeatWait} {
		if classes[c].Requests == 0 {
			t.Errorf("no %s request", c)
		}
	}
	if f := classes[loadgen.ClassForbidden]; f.Requests == 0 || f.Deliberate != f.Requests || rep.Deliberate != f.Requests {
		t.Errorf("forbidden reads: %d sent, %d deliberate errors (report: %d)", f.Requests, f.Deliberate, rep.Deliberate)
	}
	if rep.JobsReleased == 0 || rep.Repeats == 0 {
		t.Errorf("jobs released %d, repeats answered %d", rep.JobsReleased, rep.Repeats)
	}
	if total != rep.Requests || rep.Requests < rep.Scheduled-rep.Shed || rep.Throughput <= 0 {
		t.Errorf("requests %d (classes %d), scheduled %d, shed %d, throughput %v", rep.Requests, total, rep.Scheduled, rep.Shed, rep.Throughput)
	}
	for name, m := range map[string]*loadgen.Mem{"before": rep.MemBefore, "warm": rep.MemWarm, "after": rep.MemAfter} {
		if m == nil || m.RSSKiB <= 0 || m.HWMKiB < m.RSSKiB {
			t.Errorf("server memory %s: %+v", name, m)
		}
	}
}

// TestServeSchedulingFlagsReachTheServer: `cleanroom serve --max-queued-per-org 1
// --queue-retry-after 7s` refuses an organisation's submissions beyond one queued job with
// queue_full and Retry-After: 7. The completion quantum of 5s keeps the first job running while
// the others are submitted.
func TestServeSchedulingFlagsReachTheServer(t *testing.T) {
	o := testLoadOptions()
	p, err := startLoadPlatform(context.Background(), serveFromTestBinary, o.datasets, o.dataset, loadHTTPClient(8),
		[]string{"--max-queued-per-org", "1", "--queue-retry-after", "7s", "--completion-quantum", "5s", "--shutdown-grace", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Error(err)
		}
	})
	grant := p.target.Applicants[0].Grants[0]
	var refused []string
	for i := range 3 {
		body := `{"grant":"` + grant + `","kind":"sql","sql":"SELECT age_band, COUNT(*) AS n FROM medical_visits GROUP BY age_band","options":{"epsilon":0.0` + string(rune('2'+i)) + `}}`
		req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/jobs", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.tokens[loadApplicants[0].name])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Error struct{ Code string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
		case http.StatusTooManyRequests:
			if doc.Error.Code != "queue_full" || resp.Header.Get("Retry-After") != "7" {
				t.Errorf("submission %d: 429 %s, Retry-After %q; want queue_full and 7", i+1, doc.Error.Code, resp.Header.Get("Retry-After"))
			}
			refused = append(refused, doc.Error.Code)
		default:
			t.Fatalf("submission %d: %d %s", i+1, resp.StatusCode, doc.Error.Code)
		}
	}
	if len(refused) == 0 {
		t.Fatal("three submissions with --max-queued-per-org 1 and one job running at most: none refused")
	}
}

// TestServeRefusesSchedulingCapsBelowOne: a cap of 0 or less would read as none; refused
// before anything starts.
func TestServeRefusesSchedulingCapsBelowOne(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--max-queued", "0"}, {"--max-queued-per-org", "-1"}, {"--max-running-per-org", "-2"}, {"--queue-retry-after", "0s"}} {
		_, err := run(t, append([]string{"serve", "--data-dir", dir, "--principals", filepath.Join(dir, "p.yaml")}, args...)...)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("serve %s %s: %v, want a refusal naming %s", args[0], args[1], err, args[0])
		}
	}
}
