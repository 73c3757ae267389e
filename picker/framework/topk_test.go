package framework

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// refTopK is TopK before it kept the listed entries' tie keys, verbatim.
func refTopK(c *Cycle, eps []Endpoint, scores []float64, k int, dst []int) []int {
	if k <= 0 {
		return dst
	}
	base := len(dst)
	for i, s := range scores[:len(eps)] {
		if len(dst)-base == k {
			if last := dst[len(dst)-1]; s < scores[last] || !refBetter(c, eps, scores, i, last) {
				continue
			}
			dst = dst[:len(dst)-1]
		}
		dst = append(dst, i)
		j := len(dst) - 1
		for j > base && refBetter(c, eps, scores, i, dst[j-1]) {
			dst[j] = dst[j-1]
			j--
		}
		dst[j] = i
	}
	return dst
}

func refBetter(c *Cycle, eps []Endpoint, scores []float64, a, b int) bool {
	if scores[a] != scores[b] {
		return scores[a] > scores[b]
	}
	return c.TieBreak(&eps[a]) > c.TieBreak(&eps[b])
}

// TestTopKMatchesReference: the same list as the reference for random
// scores with many ties (and the odd NaN and infinity), every k, a
// non-empty dst prefix, and a Cycle reused across calls.
func TestTopKMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := &Cycle{}
	for round := range 2000 {
		n := rng.IntN(40)
		eps := make([]Endpoint, n)
		scores := make([]float64, n)
		for i := range eps {
			eps[i].Key = rng.Uint64()
			switch r := rng.IntN(50); {
			case r == 0:
				scores[i] = math.NaN()
			case r == 1:
				scores[i] = math.Inf(-1)
			default:
				scores[i] = float64(rng.IntN(6)) / 2
			}
		}
		c.Reset(&Request{}, 0, rng.Uint64())
		k := rng.IntN(n + 3)
		prefix := []int{7, 8}[:rng.IntN(3)]
		want := refTopK(c, eps, scores, k, append([]int(nil), prefix...))
		got := TopK(c, eps, scores, k, append([]int(nil), prefix...))
		require.Equal(t, want, got, "round %d, k %d", round, k)
	}
}
