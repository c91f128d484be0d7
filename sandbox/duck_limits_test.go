package sandbox

import (
	"context"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Every size DBLimits.Check accepts, DuckDB accepts as the worker's limits; every size it
// refuses is refused with invalid_options before a worker starts.
func TestDBLimitsCheckAcceptsWhatDuckDBAccepts(t *testing.T) {
	for _, size := range []string{"4GB", "512MiB", "512 MiB", "1.5GB", "2gb", "100000B", "3TB"} {
		t.Run("accepts "+size, func(t *testing.T) {
			l := DBLimits{MemoryLimit: size, MaxTempBytes: size}
			if err := l.Check(); err != nil {
				t.Fatal(err)
			}
			db, err := openLockedDB(l)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var got string
			if err := db.QueryRowContext(context.Background(), "SELECT current_setting('max_temp_directory_size')").Scan(&got); err != nil {
				t.Fatalf("DuckDB refused %q: %v", size, err)
			}
		})
	}
	for _, l := range []DBLimits{
		{MemoryLimit: "4"}, {MemoryLimit: "GB"}, {MemoryLimit: "4 GB; SET x=1"}, {MaxTempBytes: "-1GB"},
		{MaxTempBytes: "lots"}, {MaxTempBytes: "4PB"}, {Threads: -1},
	} {
		if err := l.Check(); errcode.Of(err) != errcode.InvalidOptions {
			t.Errorf("Check(%+v) = %v, want invalid_options", l, err)
		}
		if _, _, err := Start(context.Background(), Config{Worker: WorkerConfig{Dir: t.TempDir(), DB: l}}); errcode.Of(err) != errcode.InvalidOptions {
			t.Errorf("Start with %+v: %v, want invalid_options", l, err)
		}
	}
}
