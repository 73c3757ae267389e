package weightedrandom

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

func eps(n int) []framework.Endpoint {
	out := make([]framework.Endpoint, n)
	for i := range out {
		out[i] = framework.Endpoint{Addr: fmt.Sprint(i), Key: framework.Mix(uint64(i) + 1)}
	}
	return out
}

func TestProportionalToScore(t *testing.T) {
	e := eps(3)
	scores := []float64{1, 3, 0}
	first := map[int]int{}
	const rounds = 4000
	p := New()
	for seed := range uint64(rounds) {
		c := &framework.Cycle{}
		c.Reset(&framework.Request{}, 0, seed)
		got := p.Pick(c, e, scores, 3, nil)
		require.Len(t, got, 3)
		require.Equal(t, 2, got[2], "a zero score never comes before a positive one")
		first[got[0]]++
	}
	require.Zero(t, first[2])
	// Expect 1000 and 3000; the seeds are fixed, so this is deterministic.
	require.InDelta(t, rounds/4, first[0], rounds/20)
	require.InDelta(t, 3*rounds/4, first[1], rounds/20)
}

func TestAllZeroIsUniform(t *testing.T) {
	e := eps(4)
	first := map[int]int{}
	for seed := range uint64(800) {
		c := &framework.Cycle{}
		c.Reset(&framework.Request{}, 0, seed)
		first[New().Pick(c, e, []float64{0, 0, 0, 0}, 1, nil)[0]]++
	}
	require.Len(t, first, 4)
	for i, n := range first {
		require.InDelta(t, 200, n, 60, "endpoint %d", i)
	}
}
