package connectors

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestZZ(t *testing.T) {
	good := parquetBytes(t, 300, 100)
	rng := rand.New(rand.NewPCG(5, 4))
	for i := range 44 {
		data := bytes.Clone(good)
		for range 1 + i%4 {
			data[rng.IntN(len(data))] ^= byte(1 + rng.IntN(255))
		}
		if i != 43 { continue }
		path := writeFile(t, "c.bin", data)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		res := readAll(t, KindParquet, path, Options{BatchRows: 64, Alloc: mem})
		t.Log(res.err, res.batches)
		mem.AssertSize(t, 0)
	}
}
