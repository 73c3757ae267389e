package picker

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFleetShare(t *testing.T) {
	for _, tc := range []struct {
		name      string
		load, own []float64 // one observation per pick
		want      float64
	}{
		{name: "unobserved: one proxy", want: 1},
		{name: "too few of ours to judge", load: []float64{40}, own: []float64{1}, want: 1},
		{name: "alone: the servers count only ours", load: []float64{6, 6}, own: []float64{6, 6}, want: 1},
		{name: "network lag never makes it below one", load: []float64{4}, own: []float64{6}, want: 1},
		{name: "first sight is taken whole", load: []float64{24}, own: []float64{6}, want: 4},
		{name: "then smoothed", load: []float64{24, 48}, own: []float64{6, 6}, want: 4 + fleetAlpha*(8-4)},
		{name: "capped", load: []float64{1e9}, own: []float64{2}, want: fleetMax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f fleetShare
			for i := range tc.load {
				f.observe(tc.load[i], tc.own[i])
			}
			require.InDelta(t, tc.want, f.value(), 1e-12)
		})
	}
}

// Each of four proxies converges on about four from noisy observations.
func TestFleetShareConverges(t *testing.T) {
	var f fleetShare
	for i := range 2000 {
		own := float64(4 + i%5)
		f.observe(own*(3+float64(i%3)), own) // ratios 3, 4, 5
	}
	require.InDelta(t, 4, f.value(), 0.3)
	require.False(t, math.IsNaN(f.value()))
}
