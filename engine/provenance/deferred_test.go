package provenance

import (
	"context"
	"errors"
	"testing"
)

// countingFile counts the fsyncs of the log file.
type countingFile struct {
	logFile
	syncs int
}

func (f *countingFile) Sync() error {
	f.syncs++
	return f.logFile.Sync()
}

// TestDeferredAppendsAreSyncedOnceBeforeAnythingDependsOnThem: deferred records are written at
// once (readers see them) and fsynced together by the next Sync, durable Append or Checkpoint;
// a Sync with nothing pending costs nothing.
func TestDeferredAppendsAreSyncedOnceBeforeAnythingDependsOnThem(t *testing.T) {
	ctx := context.Background()
	k := testKey(t)
	path := t.TempDir() + "/provenance.log"
	l, err := Open(path, WithSigner(k), WithCheckpointEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := &countingFile{logFile: l.f}
	l.f = f
	steps := []struct {
		name      string
		do        func() error
		wantSyncs int
	}{
		{"three deferred appends", func() error {
			for range 3 {
				if _, err := l.AppendDeferred(ctx, "j", &JobSubmitted{Kind: "sql"}); err != nil {
					return err
				}
			}
			return nil
		}, 0},
		{"sync", func() error { return l.Sync(ctx) }, 1},
		{"sync with nothing pending", func() error { return l.Sync(ctx) }, 0},
		{"deferred then durable append", func() error {
			if _, err := l.AppendDeferred(ctx, "j", &JobSubmitted{Kind: "sql"}); err != nil {
				return err
			}
			_, err := l.Append(ctx, "j", &JobSubmitted{Kind: "sql"})
			return err
		}, 1},
		{"deferred then checkpoint", func() error {
			if _, err := l.AppendDeferred(ctx, "j", &JobSubmitted{Kind: "sql"}); err != nil {
				return err
			}
			cp, err := l.Checkpoint(ctx)
			if err == nil && cp.Size != 6 {
				err = errors.New("the checkpoint does not cover the deferred record")
			}
			return err
		}, 1},
	}
	for _, s := range steps {
		before := f.syncs
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := f.syncs - before; got != s.wantSyncs {
			t.Errorf("%s: %d fsyncs of the log, want %d", s.name, got, s.wantSyncs)
		}
	}
	// Readers see deferred lines before they are synced.
	if _, err := l.AppendDeferred(ctx, "k", &JobSubmitted{Kind: "sql"}); err != nil {
		t.Fatal(err)
	}
	ents, err := ReadJob(path, "k")
	if err != nil || len(ents) != 1 {
		t.Fatalf("ReadJob of an unsynced record: %d entries, %v", len(ents), err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(path); err != nil || rep.Records != 7 {
		t.Fatalf("Verify after Close: %+v, %v", rep, err)
	}
}

// TestFailedSyncOfDeferredRecordsPoisonsTheLog: a deferred record whose sync fails is reported
// by that Sync, and nothing is appended after it.
func TestFailedSyncOfDeferredRecordsPoisonsTheLog(t *testing.T) {
	ctx := context.Background()
	l, _ := openTemp(t)
	good := l.f
	l.f = &faultyFile{logFile: good, syncErr: errors.New("input/output error")}
	if _, err := l.AppendDeferred(ctx, "j", &JobSubmitted{Kind: "sql"}); err != nil {
		t.Fatalf("a deferred append does not sync, so it cannot see the fault: %v", err)
	}
	if err := l.Sync(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Sync = %v, want ErrUnavailable", err)
	}
	l.f = good
	if _, err := l.AppendDeferred(ctx, "j", &JobSubmitted{Kind: "sql"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("AppendDeferred after a failed sync = %v, want ErrUnavailable", err)
	}
	if err := l.Sync(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Sync after a failed sync = %v, want ErrUnavailable", err)
	}
}
