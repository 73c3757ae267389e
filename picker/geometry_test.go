package picker

import (
	"fmt"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/plugins/scorer/prefix"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// The learned prefix index holds per endpoint what the server's scraped
// cache geometry says it can hold: a prompt sent to a server whose cache
// has since been filled by others is no longer a reason to go there.
func TestPickPrefixIndexFollowsCacheGeometry(t *testing.T) {
	for _, tc := range []struct {
		name       string
		extra      string // pool fields
		blockSize  int    // scraped geometry, 0: not reported
		numBlocks  int
		remembered bool
	}{
		// 4 blocks of 16 tokens × 4 bytes: 256 bytes, 4 of our blocks,
		// less than one 1 KiB prompt.
		{name: "a small cache forgets", blockSize: 16, numBlocks: 4},
		{name: "a large cache remembers", blockSize: 16, numBlocks: 4096, remembered: true},
		{name: "no geometry: the Inference Extension's LRU remembers", remembered: true},
		{name: "lruCapacity overrides the geometry", extra: `"prefix":{"lruCapacity":31250}`, blockSize: 16, numBlocks: 4, remembered: true},
		{name: "bytesPerToken scales the geometry", extra: `"prefix":{"bytesPerToken":64}`, blockSize: 16, numBlocks: 64, remembered: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := `"prefix":{"mode":"learned"}` // the index is learned mode's
			if tc.extra != "" {
				extra = strings.Replace(tc.extra, `"prefix":{`, `"prefix":{"mode":"learned",`, 1)
			}
			p := openManual(t, staticConfig([]string{epA, epB}, extra))
			// epA is a little busier: without a prefix match epB wins.
			publish(t, p, epA, metrics.Sample{KVUsage: 0.2, BlockSize: tc.blockSize, NumGPUBlocks: tc.numBlocks})
			publish(t, p, epB, metrics.Sample{KVUsage: 0.1, BlockSize: tc.blockSize, NumGPUBlocks: tc.numBlocks})
			pick := func(prompt []byte, hint []string) string {
				var res Result
				p.Pick(&Request{Model: "m", Prompt: prompt, Subset: hint, HasSubset: hint != nil}, &res)
				require.Equal(t, StatusOK, res.Status)
				defer res.Done(OutcomeOK)
				return res.Endpoints()[0]
			}
			shared := chatPrompt("the shared system prompt", "first question", 1024)
			require.Equal(t, epA, pick(shared, []string{epA}))
			// Then others' conversations fill epA's cache.
			for i := range 8 {
				require.Equal(t, epA, pick(chatPrompt(fmt.Sprintf("tenant %d", i), "hello", 1024), []string{epA}))
			}
			prefixScorer(t, p).Index().Flush()
			want := epB
			if tc.remembered {
				want = epA
			}
			require.Equal(t, want, pick(shared, nil))
		})
	}
}

// prefixScorer is the pool's prefix-cache scorer.
func prefixScorer(t *testing.T, p *Pool) *prefix.Scorer {
	for _, r := range p.reporters {
		if s, ok := r.(*prefix.Scorer); ok {
			return s
		}
	}
	t.Fatal("the pool has no prefix scorer")
	return nil
}
