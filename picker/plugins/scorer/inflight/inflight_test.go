package inflight

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"
)

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		name string
		eps  []framework.Endpoint
		want []float64
	}{
		{name: "fewer in flight is better", eps: []framework.Endpoint{{InFlight: 4}, {InFlight: 0}, {InFlight: 2}}, want: []float64{0, 1, 0.5}},
		{name: "all equal", eps: []framework.Endpoint{{InFlight: 2}, {InFlight: 2}}, want: []float64{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]float64, len(tc.eps))
			New().Score(&framework.Cycle{}, tc.eps, out)
			require.Equal(t, tc.want, out)
		})
	}
}
