package sandbox

import (
	"sync"

	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// snapTable is a snapshot as the worker holds it: its metadata, which crosses the pipe, and the
// DuckDB table with its rows, which never does.
type snapTable struct {
	wire.Snapshot
	table  string          // the DuckDB table holding the rows
	twins  map[string]bool // text columns with a hidden ENUM twin
	starts []int64         // first rowid of each unit, then the row count
	// unitTables are the snapshot's unit tables by privacy unit column (unitTable).
	unitMu     sync.Mutex
	unitTables map[string]string
}

// meta is what crosses the pipe of a snapshot (nil for none).
func (s *snapTable) meta() *wire.Snapshot {
	if s == nil {
		return nil
	}
	return &s.Snapshot
}
