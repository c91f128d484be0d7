package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
)

// MaxPublicPartitions is the engine's own ceiling on the public partitions one job may
// release, whatever the policy's output limits say (and when it sets none). Every public
// partition is noised in the server process, outside the sandbox's limits: two 998-bucket
// width_bucket keys (a million partitions) took 45–54 s of CPU and 1.5–1.8 GB there before the
// output was refused as too large. A hundred thousand is about five seconds of that work.
const MaxPublicPartitions = 100_000

// partitionLimit is the most public partitions a query with outputs output columns may
// enumerate under the policy's output limits (max_rows, and max_cells over the columns), and
// which limit that is.
func partitionLimit(outputs int, p policy.Params) (int64, string) {
	limit, which := int64(MaxPublicPartitions), fmt.Sprintf("the engine's ceiling of %d partitions", MaxPublicPartitions)
	if r := int64(p.OutputMaxRows); p.OutputMaxRows > 0 && r < limit {
		limit, which = r, fmt.Sprintf("the policy's max_rows of %d", r)
	}
	if p.OutputMaxCells > 0 && outputs > 0 {
		if r := int64(p.OutputMaxCells) / int64(outputs); r < limit {
			limit, which = r, fmt.Sprintf("the policy's max_cells of %d over %d output column(s)", int64(p.OutputMaxCells), outputs)
		}
	}
	return limit, which
}

// checkPartitions refuses, before anything runs, a query whose keys all have public domains
// and whose partitions — the product of the domains' sizes, every one released, empty ones
// with noise — exceed what the output limits allow. It reads only the catalog and the SQL
// (public), so the refusal is immediate and costs nothing. A query with a key whose values
// come from the data (DP partition selection) is not checked here: how many groups it has is
// known only in the worker, which bounds each unit's groups.
func checkPartitions(q *gate.Query, p policy.Params) error {
	if len(q.Keys) == 0 {
		return nil
	}
	sizes := make([]string, len(q.Keys))
	for i, k := range q.Keys {
		if len(k.Domain) == 0 {
			return nil
		}
		sizes[i] = strconv.Itoa(len(k.Domain))
	}
	limit, which := partitionLimit(len(q.Outputs), p)
	n, over := int64(1), false
	for _, k := range q.Keys {
		d := int64(len(k.Domain))
		if n > limit/d { // n·d > limit, without overflow
			over = true
			break
		}
		n *= d
	}
	if !over && n <= limit {
		return nil
	}
	count := fmt.Sprintf("%d", n)
	if over {
		count = fmt.Sprintf("more than %d", limit)
	}
	return errcode.New(errcode.TooManyPartitions,
		"the group keys' public domains make %s partitions (%s), over %s (at most %d partitions for this query); every public partition is computed and released, so nothing was run: group by fewer keys, or use fewer buckets (a smaller width_bucket count, a coarser date_trunc)",
		count, strings.Join(sizes, " × "), which, max(limit, 0))
}
