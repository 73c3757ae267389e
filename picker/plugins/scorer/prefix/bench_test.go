package prefix

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkAppendHashes hashes a 4 KiB prompt into 64-byte blocks, as every
// learned-mode pick does.
func BenchmarkAppendHashes(b *testing.B) {
	prompt := []byte(strings.Repeat("Follow the house rules carefully. ", 121)[:4096])
	h0 := ModelHash("m")
	dst := make([]uint64, 0, 64)
	b.SetBytes(int64(len(prompt)))
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendHashes(dst[:0], h0, prompt, 64, 256)
	}
}

// BenchmarkPrefixIndexRecord is the learned index's deferred work per
// request (4 KiB prompt, 64 blocks): what the timer goroutine spends, off the
// pick path, to record where a prompt went.
func BenchmarkPrefixIndexRecord(b *testing.B) {
	x := NewIndex(31250)
	defer x.Close()
	systems := make([][]uint64, 8)
	for i := range systems {
		prompt := []byte(fmt.Sprintf(`[{"role":"system","content":"tenant %d `, i) + strings.Repeat("Follow the rules. ", 120))
		systems[i] = AppendHashes(nil, ModelHash("m"), prompt[:2048], 64, 256)
	}
	hashes := make([]uint64, 0, 64)
	i := 0
	record := func() {
		// A shared 2 KiB system prompt, then 2 KiB unique to the request,
		// over 10 endpoints.
		hashes = append(hashes[:0], systems[i%8]...)
		for j := range 32 {
			hashes = append(hashes, uint64(i)<<8|uint64(j))
		}
		x.Record(int32(i%10), 0, hashes)
		x.Flush()
		i++
	}
	for range 20000 { // fill every endpoint's LRU: steady state evicts
		record()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		record()
	}
}
