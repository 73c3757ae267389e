package prefix

import (
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
