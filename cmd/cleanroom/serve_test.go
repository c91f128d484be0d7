package main

import (
	"maps"
	"strings"
	"testing"
)

// --import-root takes ORG=DIR once per organisation; the earlier single shared form is refused
// with an explanation rather than silently given a meaning.
func TestServeImportRootsAreOnePerOrganisation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    map[string]string
		errText string
	}{
		{"none", nil, map[string]string{}, ""},
		{"two organisations", []string{"hc=/srv/hc", "psb=/srv/psb"}, map[string]string{"hc": "/srv/hc", "psb": "/srv/psb"}, ""},
		{"a folder with = in it", []string{"hc=/srv/a=b"}, map[string]string{"hc": "/srv/a=b"}, ""},
		{"the old shared form", []string{"/srv/import"}, nil, "no longer accepted"},
		{"no organisation", []string{"=/srv/import"}, nil, "ORG=DIR"},
		{"no folder", []string{"hc="}, nil, "ORG=DIR"},
		{"an organisation twice", []string{"hc=/a", "hc=/b"}, nil, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseImportRoots(tc.args)
			if tc.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error %v, want one saying %q", err, tc.errText)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("roots %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

// serve and bench take the workers' DuckDB limits as flags, and refuse a size DuckDB could not
// use before anything starts.
func TestWorkerLimitFlagsRefuseWhatDuckDBCannotUse(t *testing.T) {
	for _, cmd := range [][]string{
		{"serve", "--data-dir", t.TempDir(), "--principals", "unused.yaml"},
		{"bench", "--scales", "1e6", "--http=false"},
	} {
		for _, bad := range [][]string{{"--worker-memory", "lots"}, {"--worker-max-temp", "60"}, {"--worker-threads", "-2"}} {
			_, err := run(t, append(append([]string{}, cmd...), bad...)...)
			if err == nil || !strings.Contains(err.Error(), "worker") {
				t.Errorf("%s %v: %v, want a refusal naming the worker's limit", cmd[0], bad, err)
			}
		}
	}
}
