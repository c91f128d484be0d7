package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
)

// beamLine is one line of the Beam binary's output: one repetition of a workload (the
// contract of bench/beam).
type beamLine struct {
	Workload   string  `json:"workload"`
	Rows       int64   `json:"rows"`
	Seconds    float64 `json:"seconds"`
	Partitions int     `json:"partitions"`
}

// beamArgs are the Beam binary's arguments for workload (count, sum or mean) on d: the same
// DP parameters as the cleanroom job (epsilon 1; the fixed bounds: one partition per person,
// five contributions in it; cost clamped to the catalog's [0, 50000]; the districts as
// public partitions). Delta is the Beam job's own (Privacy on Beam's Laplace needs none for
// public partitions; the contract asks for one).
func beamArgs(d *data, workload, partitions string) []string {
	return []string{
		"--parquet", d.path("medical_visits", ".parquet"), "--csv", d.path("medical_visits", ".csv"),
		"--workload", workload, "--epsilon", "1", "--delta", "1e-6",
		"--max-partitions", strconv.FormatInt(fixedBounds.MaxGroupsContributed, 10),
		"--max-contributions", strconv.FormatInt(fixedBounds.MaxContributionsPerGroup, 10),
		"--min", "0", "--max", "50000",
		"--partition-column", "district", "--value-column", "cost", "--unit-column", "person_id",
		"--partitions", partitions, "--reps", "1",
	}
}

// runBeam runs the Beam binary once and returns the seconds it reports for its run.
func runBeam(ctx context.Context, bin string, d *data, workload, partitions string) (float64, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, beamArgs(d, workload, partitions)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("bench: the Beam binary (%s %s): %w: %s", bin, workload, err, lastLine(stderr.String()))
	}
	lines, err := parseBeamOutput(stdout.Bytes())
	if err != nil {
		return 0, err
	}
	if len(lines) != 1 || lines[0].Workload != workload {
		return 0, fmt.Errorf("bench: the Beam binary printed %d result lines for %s, want one for it", len(lines), workload)
	}
	return lines[0].Seconds, nil
}

// parseBeamOutput reads the Beam binary's stdout: one JSON object per non-empty line, each
// with a known workload, a positive finite time and no negative counts.
func parseBeamOutput(out []byte) ([]beamLine, error) {
	var lines []beamLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var l beamLine
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil || dec.More() {
			return nil, fmt.Errorf("bench: Beam output line %d is not one result object", n)
		}
		switch {
		case l.Workload != "count" && l.Workload != "sum" && l.Workload != "mean":
			return nil, fmt.Errorf("bench: Beam output line %d: unknown workload", n)
		case !(l.Seconds > 0) || math.IsInf(l.Seconds, 0):
			return nil, fmt.Errorf("bench: Beam output line %d: seconds must be positive", n)
		case l.Rows < 0 || l.Partitions < 0:
			return nil, fmt.Errorf("bench: Beam output line %d: negative count", n)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: reading the Beam output: %w", err)
	}
	if len(lines) == 0 {
		return nil, errors.New("bench: the Beam binary printed no result")
	}
	return lines, nil
}

// lastLine is the last non-empty line of s (an error message), at most 300 bytes.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	if len(l) > 300 {
		l = l[:300]
	}
	return l
}
