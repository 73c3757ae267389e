package maxscore

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

func TestPickOrder(t *testing.T) {
	c := &framework.Cycle{}
	c.Reset(&framework.Request{}, 0, 42)
	for _, tc := range []struct {
		name   string
		scores []float64
		k      int
		want   []int
	}{
		{name: "best first", scores: []float64{1, 5, 3, 4, 2}, k: 3, want: []int{1, 3, 2}},
		{name: "k larger than the candidates", scores: []float64{1, 2}, k: 3, want: []int{1, 0}},
		{name: "k of one", scores: []float64{1, 2, 0}, k: 1, want: []int{1}},
		{name: "k of zero", scores: []float64{1}, k: 0, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := New().Pick(c, eps(len(tc.scores)), tc.scores, tc.k, nil)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestTiesSpread(t *testing.T) {
	e := eps(4)
	scores := []float64{2, 2, 2, 1}
	first := map[int]int{}
	for seed := range uint64(400) {
		c := &framework.Cycle{}
		c.Reset(&framework.Request{}, 0, seed)
		got := New().Pick(c, e, scores, 4, nil)
		require.Equal(t, 3, got[3], "the lower score is last")
		first[got[0]]++
	}
	require.Len(t, first, 3)
	for i, n := range first {
		require.Greater(t, n, 80, "endpoint %d picked first %d/400 times", i, n)
	}
}
